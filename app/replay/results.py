"""What a replay shows: the TCA (router and naive executor), the independent violation check, the seed's
KPIs (``OUT/kpis.json``) and the pyfolio tear sheet (``OUT/index.html``), from the days' records, Redis and
the lake.
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NOTES = (
    "Survivorship bias: the 20 names are S&P 500 members that survived to 2022 (the bundled data); a "
    "universe chosen today flatters any strategy run on the past.",
    "The data has daily closes only: orders decided at the close of D execute on D+1 against a market "
    "anchored on D+1's close, with intraday noise, spread, depth and square-root impact "
    "(execution/market.py).",
    "ADV per name is ILLUSTRATIVE (execution/data/adv.csv); the TCA shows how the cost moves with it.",
    "ESG scores are one illustrative snapshot applied to every date.",
)


def load_days(out: Path, days: list[date]) -> list[dict[str, Any]]:
    """The records of ``days`` (each written when its day completed)."""
    return [json.loads((out / "days" / f"{d.isoformat()}.json").read_text()) for d in days]


def frames(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Orders, fills, NAV, positions (money), transactions and the VaR against the next day's P&L."""
    traded = [r for r in records if "skipped" not in r]
    orders = pd.DataFrame([o for r in traded for o in r.get("orders", [])])
    fills = pd.DataFrame([{**f, "exec_day": r["day"]} for r in traded for f in r.get("fills", [])])
    index = pd.DatetimeIndex([pd.Timestamp(r["day"]) for r in traded])
    nav = pd.Series([r["nav"] for r in traded], index=index, name="nav")
    money = pd.DataFrame(
        [{t: q * r["closes"].get(t, np.nan) for t, q in r["positions"].items() if q} for r in traded],
        index=index,
    ).fillna(0.0)
    positions = money.assign(cash=nav - money.sum(axis=1))
    var_rows = []
    for today, nxt in zip(traded, traded[1:], strict=False):
        pnl = sum(
            q * (nxt["closes"].get(t, np.nan) - today["closes"][t])
            for t, q in today["positions"].items()
            if q
        )
        var_rows.append(
            {"date": pd.Timestamp(today["day"]), "var": float(today["var"]["var"]), "pnl": float(pnl)}
        )
    var = pd.DataFrame(var_rows).set_index("date") if var_rows else pd.DataFrame(columns=["var", "pnl"])
    transactions = (
        pd.DataFrame(
            {
                "amount": np.where(fills["side"] == "BUY", fills["quantity"], -fills["quantity"]),
                "price": fills["price"].to_numpy(),
                "symbol": fills["ticker"].to_numpy(),
            },
            index=pd.DatetimeIndex(pd.to_datetime(fills["exec_day"])),
        )
        if len(fills)
        else pd.DataFrame(columns=["amount", "price", "symbol"])
    )
    return {
        "orders": orders,
        "fills": fills,
        "nav": nav,
        "positions": positions,
        "var": var,
        "tx": transactions,
    }


def var_backtest(var: pd.DataFrame, confidence: float) -> dict[str, Any]:
    """Exceptions of the traded book (loss beyond the VaR published after the day's fills), Kupiec,
    Christoffersen and the Basel zone (scaled to the observations when fewer than 250)."""
    from risk.backtest import christoffersen_independence, kupiec_pof, traffic_light

    held = var[var["var"] > 0]
    n = len(held)
    if n < 2:
        return {"observations": n, "exceptions": None, "note": "fewer than two days with a held book"}
    hits = (-held["pnl"] > held["var"]).to_numpy()
    p = 1 - confidence
    _, kupiec = kupiec_pof(int(hits.sum()), n, p)
    _, christoffersen = christoffersen_independence(hits)
    return {
        "observations": n,
        "exceptions": int(hits.sum()),
        "expected": round(n * p, 2),
        "kupiec_p": round(kupiec, 4),
        "christoffersen_p": round(christoffersen, 4),
        # The zones are defined on 250 days; on fewer, a run with no exception would read yellow.
        "basel_zone": traffic_light(int(hits.sum()), n, p) if n >= 250 else f"n/a ({n} < 250 observations)",
    }


def _latency(orders: pd.DataFrame) -> dict[str, Any]:
    done = orders["latency_ms"].dropna().astype(float) if "latency_ms" in orders else pd.Series(dtype=float)
    if done.empty:
        return {"orders_filled": 0, "mean_ms": None, "p99_ms": None}
    return {
        "orders_filled": int(len(done)),
        "mean_ms": round(float(done.mean()), 3),
        "p50_ms": round(float(done.quantile(0.5)), 3),
        "p99_ms": round(float(done.quantile(0.99)), 3),
        "definition": "wall clock from the session releasing the order to the worker to its last fill",
    }


def _episodes(records: list[dict[str, Any]], audit_episodes: list[Any]) -> dict[str, Any]:
    days_on = [r["day"] for r in records if r.get("var", {}).get("kill_switch")]
    return {"episodes": len(audit_episodes), "days_with_switch_set_after_fills": days_on}


def _books(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The books the rebalance traded (rebalance days per book) and every book decision the retraining took
    (the day, the book it names or None when the lake was too short to decide, and why)."""
    traded: dict[str, int] = {}
    for r in records:
        book = r.get("rebalance", {}).get("book")
        if book is not None:
            traded[book] = traded.get(book, 0) + 1
    decisions = [
        {"day": r["day"], **r["retrain"]["decision"]} for r in records if "decision" in r.get("retrain", {})
    ]
    return {"traded_days": traded, "decisions": decisions}


def build_results(replay: Any, days: list[date]) -> dict[str, Any]:
    """Everything after the last day: files under ``OUT`` and the KPIs (returned and in ``kpis.json``)."""
    from execution.naive import naive_execute
    from execution.surveillance import check_fills, fill_times_from_audit, summary, timeline_from_audit
    from execution.tca import adv_sensitivity, compare, monthly_tca, order_tca

    out: Path = replay.args.out
    records = load_days(out, days)
    f = frames(records)
    orders, fills, nav = f["orders"], f["fills"], f["nav"]
    market_state = replay.market.state()
    kpis: dict[str, Any] = {
        "period": [days[0].isoformat(), days[-1].isoformat()],
        "trading_days": len(days),
        "skipped_days": [r["day"] for r in records if "skipped" in r],
        "capital": replay.args.capital,
        "final_nav": round(float(nav.iloc[-1]), 2) if len(nav) else None,
        "orders": int(len(orders)),
        "order_states": orders["state"].value_counts().to_dict() if len(orders) else {},
        "fills": int(len(fills)),
        "latency": _latency(orders) if len(orders) else {"orders_filled": 0},
        "synthetic": replay.args.synthetic is not None,
        "source": replay.feed.name,  # synthetic:RUN:regimeN for prices that never happened
    }
    monthly = pd.DataFrame()
    if len(fills):
        executed = orders[orders["state"] != "REJECTED"]
        router = order_tca(executed, fills)
        naive = order_tca(executed, naive_execute(executed, market_state))
        monthly = monthly_tca(router, nav)
        naive_monthly = monthly_tca(naive, nav)
        monthly["naive_pct_aum"] = naive_monthly["execution_cost_pct_aum"].to_numpy()
        router.to_csv(out / "tca_orders.csv", index=False)
        monthly.to_csv(out / "tca_monthly.csv", index=False)
        sensitivity = adv_sensitivity(executed, fills, market_state)
        sensitivity.to_csv(out / "tca_adv_sensitivity.csv", index=False)
        kpis["execution_cost"] = {
            "pct_aum_per_month_mean": round(float(monthly["execution_cost_pct_aum"].mean()), 5),
            "pct_aum_per_month_worst": round(float(monthly["execution_cost_pct_aum"].max()), 5),
            "naive_pct_aum_per_month_mean": round(float(monthly["naive_pct_aum"].mean()), 5),
            **{k: _round(v) for k, v in compare(router, naive).items()},
            "adv_sensitivity": sensitivity.round(4).to_dict(orient="records"),
        }
    # The independent check: limits and kill-switch episodes from the (verified) audit chain, positions
    # rebuilt from the fills, marks from the lake.
    limits, episodes = timeline_from_audit(replay.client, replay.schema)
    if len(fills):
        times = fill_times_from_audit(replay.client, replay.schema, verify_chain=False)
        checked = fills.assign(ts=fills["fill_id"].map(times))
        closes = replay.lake.read_close_matrix(days[0], days[-1])
        from marketdata.reference import esg_scores

        scores = esg_scores(replay.lake)
        violations = check_fills(
            checked,
            orders,
            limits,
            closes,
            scores.to_dict() if scores is not None else {},
            episodes,
        )
        kpis["policy_violations"] = summary(violations)
    else:
        kpis["policy_violations"] = {"violations": 0, "by_rule": {}, "examples": {}}
    kpis["reconciliation_breaks"] = sum(len(r.get("reconcile", {}).get("breaks", [])) for r in records)
    kpis["kill_switch"] = _episodes(records, episodes)
    kpis["var_backtest"] = var_backtest(f["var"], replay.settings.var_confidence)
    kpis["books"] = _books(records)
    kpis["seconds_by_step"] = {k: round(v, 1) for k, v in sorted(replay.timings.items())}
    if len(orders):
        orders.to_parquet(out / "orders.parquet", index=False)
    if len(fills):
        fills.to_parquet(out / "fills.parquet", index=False)
    kpis["tear_sheet"] = str(_tear_sheet(replay, f, monthly, kpis, days))
    (out / "kpis.json").write_text(json.dumps(kpis, indent=1, sort_keys=True, default=str) + "\n")
    return kpis


def _round(v: Any) -> Any:
    return round(v, 6) if isinstance(v, float) and math.isfinite(v) else v


def _tear_sheet(
    replay: Any, f: dict[str, Any], monthly: pd.DataFrame, kpis: dict[str, Any], days: list[date]
) -> Path:
    from reporting.tearsheet import build_tearsheet
    from strategy.baselines import equal_weight_returns, min_variance_returns

    lake = replay.lake
    dates = [d for d in lake.price_dates() if d <= days[-1]]
    first = dates[max(0, dates.index(days[0]) - 260)] if days[0] in dates else dates[0]
    closes = lake.read_close_matrix(first, days[-1])
    before = int((closes.index < days[0]).sum())
    quarantined = lake.quarantined_dates()
    nav = f["nav"]
    returns = nav.pct_change()
    returns.iloc[0] = nav.iloc[0] / replay.args.capital - 1
    window = returns.index

    def on_days(series: pd.Series) -> pd.Series:
        series.index = pd.DatetimeIndex(pd.to_datetime(series.index))
        return series.reindex(window).fillna(0.0)

    benchmarks = {
        "equal weight": on_days(equal_weight_returns(closes, quarantined)),
        "minimum variance": on_days(
            # A year's window where the lake has one before the first day (a short --history-days has less)
            min_variance_returns(closes, window=max(20, min(250, before - 1)), quarantined=quarantined)
        ),
    }
    cost = (
        monthly.set_index("month").rename(
            columns={"execution_cost": "cost", "execution_cost_pct_aum": "pct_aum"}
        )[["cost", "pct_aum", "naive_pct_aum"]]
        if len(monthly)
        else pd.DataFrame(columns=["cost", "pct_aum", "naive_pct_aum"])
    )
    synthetic_days = list(days) if replay.args.synthetic is not None else []
    table = kpi_table(kpis)
    return build_tearsheet(
        replay.args.out,
        returns,
        benchmarks,
        f["positions"],
        f["tx"],
        f["var"],
        cost,
        table,
        synthetic_days,
        list(NOTES),
    )


def kpi_table(kpis: dict[str, Any]) -> dict[str, Any]:
    """The seed's KPIs as label -> value for the page."""
    lat, cost = kpis.get("latency", {}), kpis.get("execution_cost", {})
    var = kpis.get("var_backtest", {})
    traded = kpis.get("books", {}).get("traded_days", {})
    return {
        "books traded (rebalance days)": ", ".join(f"{b} {n}" for b, n in sorted(traded.items())) or "none",
        "signal-to-fill latency, mean (ms)": lat.get("mean_ms"),
        "signal-to-fill latency, p99 (ms)": lat.get("p99_ms"),
        "execution cost, % of AUM per month (mean)": cost.get("pct_aum_per_month_mean"),
        "execution cost, % of AUM per month (worst)": cost.get("pct_aum_per_month_worst"),
        "saving against the naive executor (% of its cost per notional)": cost.get("saving_pct"),
        "policy violations (independent check)": kpis["policy_violations"]["violations"],
        "reconciliation breaks": kpis["reconciliation_breaks"],
        "kill-switch episodes": kpis["kill_switch"]["episodes"],
        "VaR exceptions / observations": f"{var.get('exceptions')} / {var.get('observations')}",
        "Kupiec p / Christoffersen p / Basel zone": (
            f"{var.get('kupiec_p')} / {var.get('christoffersen_p')} / {var.get('basel_zone')}"
        ),
    }
