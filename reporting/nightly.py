"""The nightly report for one date: ``reports/date=D/report.html`` with PNG pictures and ``report.json``.

Sections, each computed from the lake and Redis as they are (a missing input gives a "no data yet: <why>"
note in its place, never made-up figures):

``var``        today's book (in shares) backtested with the live VaR code over the last ``days`` valuation
               dates (``risk.backtest.forecast_history``: each forecast from returns up to its date, against
               the book's P&L to the next lake date), exceptions marked, the next-day VaR as of the date
               (``risk.portfolio_var.portfolio_var``, the sensor's call) and the sensor's ``risk:history`` points
``stress``     heat map scenario x position of the ``stress/date=D/`` ledger partition (change in % of the
               position's base value) and the worst scenario totals
``synthetic``  the latest ``synthetic/run=*/`` samples against the lake's real daily returns
``execution``  fees and slippage by venue from the ``fills`` stream
``quality``    quarantined batches by rule (``quarantine/prices/date=*/report.json``), the day's partition
               and the last ingest (``ingest:last``)

Rendering uses matplotlib's Agg canvas without pyplot (no global state) and PNGs without a version stamp,
so a re-run on the same inputs writes byte-identical files.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.positions import read_positions
from quantbridge.redis_client import text
from quantbridge.redis_schema import RedisSchema
from quantbridge.returns import daily_returns

SECTIONS = ("var", "stress", "synthetic", "execution", "quality")
REPORT_FILE = "report.html"
SUMMARY_FILE = "report.json"
#: Fewest returns behind one forecast, and fewest forecasts worth a chart, on a short lake.
MIN_WINDOW, MIN_FORECASTS = 60, 20
DEMO_NOTIONAL = 1_000_000.0
_DPI = 100


@dataclass(frozen=True)
class RedisSnapshot:
    """What the report reads from Redis, read once (or built by hand when Redis is not reachable).

    ``error`` says why the Redis-backed parts are empty (shown in their notes)."""

    positions: dict[str, float] = field(default_factory=dict)
    risk_history: list[dict[str, str]] = field(default_factory=list)
    fills: list[dict[str, str]] = field(default_factory=list)
    ingest_last: dict[str, str] = field(default_factory=dict)
    error: str = ""


def read_redis_snapshot(client: Any, schema: RedisSchema, max_entries: int = 100_000) -> RedisSnapshot:
    """Positions, VaR history, fills (the latest ``max_entries`` of each stream) and the last ingest.

    A Redis error gives an empty snapshot whose ``error`` names it: the report still builds."""
    import redis

    def stream(name: str) -> list[dict[str, str]]:
        entries = client.xrevrange(schema.key(name), count=max_entries)
        return [{text(k): text(v) for k, v in fields.items()} for _, fields in reversed(entries)]

    try:
        return RedisSnapshot(
            positions={t: q for t, q in read_positions(client, schema).items() if q != 0.0},
            risk_history=stream("risk_history"),
            fills=stream("fills"),
            ingest_last={text(k): text(v) for k, v in client.hgetall(schema.key("ingest_last")).items()},
        )
    except redis.RedisError as exc:
        return RedisSnapshot(error=f"Redis not reachable ({type(exc).__name__}: {exc})")


@dataclass
class Section:
    key: str
    title: str
    note: str = ""
    png: str = ""
    body: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


# --- helpers ---------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(fig: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    # No "Software" stamp: the file depends on the inputs only, not on the matplotlib version.
    fig.savefig(tmp, format="png", dpi=_DPI, metadata={"Software": None})
    tmp.replace(path)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.0f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _no_data(why: str) -> str:
    return f"no data yet: {why}"


# --- VaR history -------------------------------------------------------------------------------------


def var_history(
    lake: Lake,
    day: date,
    positions: dict[str, float],
    *,
    model: str = "filtered_historical_portfolio",
    confidence: float = 0.99,
    window: int = 500,
    days: int = 250,
) -> dict[str, Any]:
    """Today's book backtested over the last ``days`` valuation dates, and its next-day VaR as of ``day``.

    The book is ``positions`` (shares), else the $1M equal-weight demo book of ``qb var`` (shares at the
    last close on or before ``day``), held constant in shares. The forecasts are the live code's
    (:func:`risk.backtest.forecast_history`, :func:`risk.portfolio_var.portfolio_var` for ``day``). Returns a
    dict with ``frame`` (index the valuation date D; ``var``, ``cvar``, the book's ``pnl`` from D to the
    next lake date ``loss_date``, ``exception``), ``today`` (the forecast as of ``day``, what the VaR
    sensor publishes), the backtest row (Kupiec, Christoffersen, zone), the window used and the book's
    source; raises InputError naming what is missing when the lake cannot support it.
    """
    from risk.backtest import evaluate, forecast_history
    from risk.portfolio import equal_weight_book, exposures
    from risk.portfolio_var import portfolio_var, recent_closes
    from risk.var import VarSpec

    closes = recent_closes(lake, window + days + 1, end=day)
    if closes.empty:
        raise InputError(
            "lake prices", f"none on or before {day.isoformat()}", "published prices (qb ingest)"
        )
    last = closes.ffill().iloc[-1].dropna()
    source = "Redis positions"
    if not positions:
        positions, source = equal_weight_book(last, DEMO_NOTIONAL), "demo equal-weight book ($1,000,000)"
    money = exposures(positions, last)  # raises InputError naming tickers the lake does not price
    gross = float(money.abs().sum())
    if gross <= 0:
        raise InputError("positions", positions, "a book with a non-zero exposure")
    quarantined = lake.quarantined_dates()
    n = len(daily_returns(closes.loc[:, list(money.index)], quarantined))
    used = min(window, max(MIN_WINDOW, n - days))
    if n - used < MIN_FORECASTS:
        raise InputError(
            "lake history",
            f"{n} daily returns on or before {day.isoformat()}",
            f"at least {MIN_WINDOW + MIN_FORECASTS} ({MIN_WINDOW} behind a forecast, "
            f"{MIN_FORECASTS} forecasts)",
            hint="ingest more history with `qb ingest`",
        )
    spec = VarSpec(model=model, confidence=confidence, window=used)
    history = forecast_history(closes, positions, spec, quarantined=quarantined, last=days)
    today = portfolio_var(closes, positions, quarantined=quarantined, spec=spec)
    row = evaluate(history["loss"], history["var"], confidence, model)
    frame = history.assign(pnl=-history["loss"]).loc[:, ["loss_date", "var", "cvar", "pnl", "exception"]]
    return {
        "frame": frame,
        "today": today,
        "backtest": row.as_dict(),
        "window": used,
        "source": source,
        "gross": gross,
        "positions": len(money),
        "as_of": str(closes.index[-1]),
    }


def _live_points(
    history: list[dict[str, str]], first: date, last: date
) -> tuple[list[date], list[float], int]:
    """Live sensor VaR by valuation date (``as_of``) inside [first, last]; and how many fell outside."""
    xs, ys, outside = [], [], 0
    for entry in history:
        try:
            as_of, var = date.fromisoformat(entry.get("as_of", "")[:10]), float(entry["var"])
        except (KeyError, ValueError):
            continue  # a refresh with an empty book has no valuation date
        if first <= as_of <= last:
            xs.append(as_of)
            ys.append(var)
        else:
            outside += 1
    return xs, ys, outside


def _var_section(
    lake: Lake, day: date, snap: RedisSnapshot, folder: Path, options: dict[str, Any]
) -> Section:
    s = Section("var", "VaR history against realised P&L")
    try:
        out = var_history(lake, day, snap.positions, **options)
    except InputError as exc:
        s.note = _no_data(str(exc))
        return s
    frame, bt, today = out["frame"], out["backtest"], out["today"]
    as_of = date.fromisoformat(out["as_of"])
    exc_days = frame.index[frame["exception"]]
    live_x, live_y, outside = _live_points(snap.risk_history, frame.index[0], as_of)

    fig = _figure(10, 4.2)
    ax = fig.add_subplot()
    x = pd.to_datetime(pd.Index(frame.index))
    ax.bar(
        x,
        frame["pnl"],
        width=1.0,
        color=np.where(frame["exception"], "#c0392b", "#7f8c8d"),
        label="next-day P&L of today's book (hypothetical)",
    )
    ax.plot(
        x,
        -frame["var"],
        color="#2c3e50",
        lw=1.4,
        label=f"-VaR {options['confidence']:.0%} 1-day ({bt['model']})",
    )
    ax.scatter(
        pd.to_datetime([as_of]),
        [-today.var],
        marker="D",
        color="#2c3e50",
        zorder=4,
        label=f"-VaR for the next day as of {as_of}",
    )
    if len(exc_days):
        ax.scatter(
            pd.to_datetime(pd.Index(exc_days)),
            frame.loc[exc_days, "pnl"],
            marker="v",
            color="#c0392b",
            zorder=3,
            label=f"exceptions ({len(exc_days)})",
        )
    if live_x:
        ax.scatter(
            pd.to_datetime(pd.Index(live_x)),
            -np.asarray(live_y),
            marker="o",
            facecolors="none",
            edgecolors="#2980b9",
            s=60,
            zorder=5,
            label="live sensor -VaR (risk:history)",
        )
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("valuation date (VaR for, and P&L to, the next lake date)")
    ax.set_ylabel("money")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(
        f"{len(frame)} forecasts, {frame.index[0]}..{frame.index[-1]}, window {out['window']} returns"
    )
    _save(fig, folder / "var.png")
    s.png = "var.png"

    zone = bt["zone_last_window"] if bt["observations"] >= 250 else "n/a (fewer than 250 forecasts)"
    s.figures = {
        "forecasts": bt["observations"],
        "exceptions": bt["exceptions"],
        "expected_exceptions": round(bt["expected_exceptions"], 2),
        "kupiec_p": bt["kupiec_p"],
        "christoffersen_p": bt["christoffersen_p"],
        "zone_last_250": zone,
        "model": bt["model"],
        "window": out["window"],
        "book": out["source"],
        "gross_exposure": round(out["gross"], 2),
        "first": str(frame.index[0]),
        "last": str(frame.index[-1]),
        "as_of": out["as_of"],
        "var_next_day": today.var,
        "cvar_next_day": today.cvar,
        "exception_dates": [str(d) for d in exc_days],
        "live_points": len(live_x),
    }
    live = (
        f"{len(live_x)} live sensor points in range" + (f", {outside} outside it" if outside else "")
        if snap.risk_history
        else (
            _no_data(snap.error)
            if snap.error
            else "no live sensor points: risk:history is empty (run `qb var-sensor`)"
        )
    )
    s.body += _table(
        ["figure", "value"],
        [
            [
                "book",
                f"{out['source']}, {out['positions']} positions, gross {out['gross']:,.0f}, "
                f"as of {out['as_of']}, held constant in shares",
            ],
            ["model", f"{bt['model']}, one day, {options['confidence']:.0%}, window {out['window']} returns"],
            [f"next-day VaR / CVaR as of {out['as_of']}", f"{today.var:,.0f} / {today.cvar:,.0f}"],
            ["forecasts", bt["observations"]],
            ["exceptions", f"{bt['exceptions']} (expected {bt['expected_exceptions']:.1f})"],
            ["Kupiec p", bt["kupiec_p"]],
            ["Christoffersen p", bt["christoffersen_p"]],
            ["Basel zone (last 250)", zone],
            ["latest exceptions", ", ".join(str(d) for d in exc_days[-8:]) or "none"],
            ["live sensor", live],
        ],
    )
    return s


# --- stress heat map ----------------------------------------------------------------------------------


def _stress_section(lake: Lake, day: date, folder: Path) -> Section:
    from risk.ledger import partition_path

    s = Section("stress", "Stress heat map")
    path = partition_path(lake, day)
    if not path.is_file():
        s.note = _no_data(
            f"no stress ledger partition for {day.isoformat()} ({path.relative_to(lake.root)}): "
            "run nightly_stress or `qb stress`"
        )
        return s
    frame = pd.read_parquet(path)
    cells = frame[frame["position"] != "TOTAL"].copy()
    cells["label"] = cells["family"] + ": " + cells["scenario"]
    base = cells["base_value"].abs().replace(0.0, np.nan)
    cells["pct"] = 100.0 * cells["change"] / base
    grid = cells.pivot_table(index="label", columns="position", values="pct", aggfunc="sum", sort=True)
    totals = frame[frame["position"] == "TOTAL"].sort_values(["change", "family", "scenario"])

    fig = _figure(max(8.0, 0.32 * grid.shape[1] + 4), max(4.0, 0.22 * grid.shape[0] + 1.5))
    ax = fig.add_subplot()
    bound = float(np.nanmax(np.abs(grid.to_numpy()))) if grid.notna().any().any() else 1.0
    image = ax.imshow(
        np.ma.masked_invalid(grid.to_numpy()), cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto"
    )
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
    ax.set_facecolor("#eeeeee")  # grey: the position is not in that scenario's family
    fig.colorbar(image, ax=ax, label="change, % of the position's base value")
    ax.set_title(f"stress {day.isoformat()}: {grid.shape[0]} scenarios x {grid.shape[1]} positions")
    _save(fig, folder / "stress.png")
    s.png = "stress.png"
    worst = totals.head(10)
    s.figures = {
        "rows": len(frame),
        "scenarios": int(totals.shape[0]),
        "positions": int(grid.shape[1]),
        "worst": [
            {"family": r.family, "scenario": r.scenario, "change": round(float(r.change), 2)}
            for r in worst.itertuples()
        ],
    }
    s.body = "<p>Worst scenario totals (money):</p>" + _table(
        ["family", "scenario", "base", "shocked", "change"],
        [
            [r.family, r.scenario, float(r.base_value), float(r.shocked_value), float(r.change)]
            for r in worst.itertuples()
        ],
    )
    return s


# --- synthetic vs real ----------------------------------------------------------------------------------

_TICKER = re.compile(r"^[A-Z][A-Z0-9.\-]{0,14}$")


def synthetic_samples(lake: Lake) -> tuple[str, pd.DataFrame] | None:
    """The latest ``synthetic/run=R/`` samples as (run, long frame ``ticker, value``), or None.

    Reads every Parquet file of the run: long format (a ``ticker`` column and one numeric value column,
    ``return`` preferred) or wide (one numeric column per ticker)."""
    root = lake.root / "synthetic"
    runs = (
        sorted(p for p in root.glob("run=*") if p.is_dir() and any(p.rglob("*.parquet")))
        if root.is_dir()
        else []
    )
    if not runs:
        return None
    latest = runs[-1]
    parts = []
    for path in sorted(latest.rglob("*.parquet")):
        data = pd.read_parquet(path)
        if "ticker" in data.columns:
            numeric = [c for c in data.columns if c != "ticker" and pd.api.types.is_float_dtype(data[c])]
            column = "return" if "return" in numeric else (numeric[0] if len(numeric) == 1 else None)
            if column is None:
                continue
            parts.append(pd.DataFrame({"ticker": data["ticker"].astype(str), "value": data[column]}))
        else:
            tickers = [
                c
                for c in data.columns
                if isinstance(c, str) and _TICKER.match(c) and pd.api.types.is_float_dtype(data[c])
            ]
            if tickers:
                parts.append(data.loc[:, tickers].melt(var_name="ticker", value_name="value"))
    if not parts:
        return None
    long = pd.concat(parts, ignore_index=True).dropna()
    return latest.name[len("run=") :], long


def _moments(values: np.ndarray) -> dict[str, float]:
    from scipy import stats

    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)),
        "skew": float(stats.skew(values)),
        "excess_kurtosis": float(stats.kurtosis(values)),
        "q01": float(np.quantile(values, 0.01)),
        "q99": float(np.quantile(values, 0.99)),
    }


def _synthetic_section(lake: Lake, day: date, folder: Path, window: int) -> Section:
    from scipy import stats

    s = Section("synthetic", "Synthetic vs real return distributions")
    found = synthetic_samples(lake)
    if found is None:
        s.note = _no_data(
            "no synthetic/run=*/ samples with return columns in the lake "
            "(the synthetic_generation DAG writes them)"
        )
        return s
    run, synth = found
    closes = lake.read_close_matrix(end=day)
    tickers = sorted(set(synth["ticker"]) & set(closes.columns))
    if closes.empty or not tickers:
        s.note = _no_data(f"no real prices on or before {day.isoformat()} for the tickers of run {run}")
        return s
    try:
        real = daily_returns(closes.loc[:, tickers], lake.quarantined_dates()).tail(window)
    except InputError as exc:
        s.note = _no_data(str(exc))
        return s
    real_v = real.to_numpy().ravel()
    synth_v = synth.loc[synth["ticker"].isin(tickers), "value"].to_numpy(dtype=np.float64)
    if real_v.size < 2 or synth_v.size < 2:
        s.note = _no_data(f"fewer than two values to compare (real {real_v.size}, synthetic {synth_v.size})")
        return s
    m_real, m_syn = _moments(real_v), _moments(synth_v)
    wasserstein = float(stats.wasserstein_distance(real_v, synth_v))
    ks = stats.ks_2samp(real_v, synth_v)

    fig = _figure(10, 3.8)
    left, right = fig.subplots(1, 2)
    lo, hi = np.quantile(np.concatenate([real_v, synth_v]), [0.001, 0.999])
    bins = np.linspace(lo, hi, 61)
    left.hist(
        real_v, bins=bins, density=True, alpha=0.55, color="#2c3e50", label=f"real (last {len(real)} days)"
    )
    left.hist(synth_v, bins=bins, density=True, alpha=0.55, color="#e67e22", label=f"synthetic run {run}")
    left.set_xlabel("daily return")
    left.legend(fontsize=8)
    q = np.linspace(0.005, 0.995, 199)
    rq, sq = np.quantile(real_v, q), np.quantile(synth_v, q)
    right.plot(rq, sq, ".", ms=3, color="#e67e22")
    edge = [min(rq[0], sq[0]), max(rq[-1], sq[-1])]
    right.plot(edge, edge, color="black", lw=0.7)
    right.set_xlabel("real quantile")
    right.set_ylabel("synthetic quantile")
    right.set_title("Q-Q")
    _save(fig, folder / "synthetic.png")
    s.png = "synthetic.png"
    s.figures = {
        "run": run,
        "tickers": len(tickers),
        "real": m_real,
        "synthetic": m_syn,
        "wasserstein": wasserstein,
        "ks_statistic": float(ks.statistic),
        "ks_p": float(ks.pvalue),
    }
    ratio = m_syn["std"] / m_real["std"] if m_real["std"] else math.inf
    warn = (
        (
            f"<p><b>Units differ</b>: synthetic std is {ratio:.1f}x the real one; the samples may be scaled "
            "(for example in units of volatility), not simple daily returns.</p>"
        )
        if not 0.2 < ratio < 5
        else ""
    )
    s.body = (
        warn
        + _table(
            ["", "n", "mean", "std", "skew", "excess kurtosis", "1%", "99%"],
            [
                [name, m["n"], m["mean"], m["std"], m["skew"], m["excess_kurtosis"], m["q01"], m["q99"]]
                for name, m in (("real", m_real), ("synthetic", m_syn))
            ],
        )
        + (
            f"<p>Wasserstein distance {wasserstein:.5f}; two-sample KS statistic {ks.statistic:.4f} "
            f"(p = {ks.pvalue:.3g}).</p>"
        )
    )
    return s


# --- execution cost by venue --------------------------------------------------------------------------


def venue_costs(fills: list[dict[str, str]]) -> pd.DataFrame:
    """Per venue: fills, shares, notional, fees, slippage cost (notional x bps / 1e4) and both in bps."""
    frame = pd.DataFrame(fills)
    for column in ("quantity", "price", "fee", "slippage_bps"):
        frame[column] = pd.to_numeric(frame[column], errors="raise")
    frame["notional"] = frame["quantity"] * frame["price"]
    frame["slippage_cost"] = frame["notional"] * frame["slippage_bps"] / 1e4
    out = frame.groupby("venue", sort=True).agg(
        fills=("fill_id", "count"),
        shares=("quantity", "sum"),
        notional=("notional", "sum"),
        fees=("fee", "sum"),
        slippage_cost=("slippage_cost", "sum"),
    )
    out["fees_bps"] = 1e4 * out["fees"] / out["notional"]
    out["slippage_bps"] = 1e4 * out["slippage_cost"] / out["notional"]
    return out


def _execution_section(snap: RedisSnapshot, folder: Path) -> Section:
    s = Section("execution", "Execution cost by venue")
    if snap.error:
        s.note = _no_data(snap.error)
        return s
    if not snap.fills:
        s.note = _no_data("the fills stream is empty (the execution worker has not filled any order)")
        return s
    try:
        table = venue_costs(snap.fills)
    except (KeyError, ValueError) as exc:
        s.note = _no_data(f"fills without the fields venue, quantity, price, fee, slippage_bps ({exc})")
        return s
    fig = _figure(10, 3.6)
    left, right = fig.subplots(1, 2)
    x = np.arange(len(table))
    left.bar(x - 0.2, table["fees"], 0.4, label="fees", color="#8e44ad")
    left.bar(x + 0.2, table["slippage_cost"], 0.4, label="slippage", color="#e67e22")
    left.set_xticks(x, table.index)
    left.set_ylabel("money")
    left.legend(fontsize=8)
    left.set_title("cost by venue")
    right.bar(x - 0.2, table["fees_bps"], 0.4, color="#8e44ad")
    right.bar(x + 0.2, table["slippage_bps"], 0.4, color="#e67e22")
    right.set_xticks(x, table.index)
    right.set_ylabel("bps of notional")
    right.set_title("cost per unit traded")
    _save(fig, folder / "execution.png")
    s.png = "execution.png"
    dates = sorted({f.get("ts", "")[:10] for f in snap.fills if f.get("ts")})
    s.figures = {
        "fills": len(snap.fills),
        "venues": {v: {k: round(float(x), 6) for k, x in row.items()} for v, row in table.iterrows()},
    }
    s.body = (
        f"<p>{len(snap.fills)} fills in the fills stream"
        + (f", orders dated {dates[0]}..{dates[-1]}" if dates else "")
        + ".</p>"
        + _table(
            ["venue", "fills", "shares", "notional", "fees", "slippage", "fees bps", "slippage bps"],
            [
                [
                    v,
                    int(r.fills),
                    float(r.shares),
                    float(r.notional),
                    float(r.fees),
                    float(r.slippage_cost),
                    float(r.fees_bps),
                    float(r.slippage_bps),
                ]
                for v, r in table.iterrows()
            ],
        )
    )
    return s


# --- data quality ----------------------------------------------------------------------------------------


def quarantine_rules(lake: Lake, day: date) -> dict[str, list[str]]:
    """Quarantined dates on or before ``day`` per failed rule (from each batch's ``report.json``)."""
    out: dict[str, list[str]] = {}
    for q in lake.quarantined_dates():
        if q > day:
            continue
        report = lake.quarantine(q) / "report.json"
        rules = (
            {v["rule"] for v in json.loads(report.read_text()).get("violations", [])}
            if report.is_file()
            else {"(report.json missing)"}
        )
        for rule in sorted(rules):
            out.setdefault(rule, []).append(q.isoformat())
    return out


def _quality_section(lake: Lake, day: date, snap: RedisSnapshot, folder: Path) -> Section:
    s = Section("quality", "Data quality")
    dates = [d for d in lake.price_dates() if d <= day]
    if not dates and not lake.quarantined_dates():
        s.note = _no_data(
            f"no price partition and no quarantined batch on or before {day.isoformat()} (qb ingest)"
        )
        return s
    rules = quarantine_rules(lake, day)
    quarantined = sorted({d for ds in rules.values() for d in ds})
    partition = lake.price_partition(day)
    today = (
        f"published ({len(lake.read_prices(day, day))} rows)"
        if day in dates
        else "quarantined"
        if day.isoformat() in quarantined
        else "no partition (holiday, or not ingested yet)"
    )
    # Left: published vs quarantined dates per month (last 24 months); right: quarantined dates per rule.
    months = pd.period_range(end=pd.Period(day, "M"), periods=24, freq="M")
    published = pd.Series(pd.PeriodIndex([pd.Period(d, "M") for d in dates], freq="M")).value_counts()
    blocked = pd.Series(pd.PeriodIndex([pd.Period(d, "M") for d in quarantined], freq="M")).value_counts()
    fig = _figure(10, 3.4)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    x = np.arange(len(months))
    left.bar(x, [published.get(m, 0) for m in months], color="#27ae60", label="published")
    left.bar(
        x,
        [blocked.get(m, 0) for m in months],
        bottom=[published.get(m, 0) for m in months],
        color="#c0392b",
        label="quarantined",
    )
    left.set_xticks(x[::3], [str(m) for m in months[::3]], fontsize=7)
    left.set_ylabel("trading dates")
    left.legend(fontsize=8)
    left.set_title(f"price partitions per month, up to {day.isoformat()}")
    if rules:
        names = sorted(rules, key=lambda r: (len(rules[r]), r))
        right.barh(names, [len(rules[r]) for r in names], color="#c0392b")
        right.set_xlabel("quarantined dates")
    else:
        right.text(0.5, 0.5, "no quarantined batch:\nevery batch passed its gates", ha="center", va="center")
        right.set_axis_off()
    right.set_title(f"quarantined dates by rule, up to {day.isoformat()}")
    _save(fig, folder / "quality.png")
    s.png = "quality.png"
    ingest = (
        _no_data(snap.error)
        if snap.error
        else ", ".join(f"{k}={v}" for k, v in sorted(snap.ingest_last.items()) if k != "tickers")
        if snap.ingest_last
        else _no_data("ingest:last is empty (no ingest recorded in Redis)")
    )
    s.figures = {
        "published_dates": len(dates),
        "quarantined_dates": len(quarantined),
        "rules": {r: len(ds) for r, ds in rules.items()},
        "day": today,
    }
    s.body = _table(
        ["figure", "value"],
        [
            [
                "published partitions up to the date",
                f"{len(dates)}" + (f" ({dates[0]}..{dates[-1]})" if dates else ""),
            ],
            [f"partition {partition.name}", today],
            [
                "quarantined dates",
                f"{len(quarantined)}"
                + (
                    f", latest {', '.join(quarantined[-5:])}"
                    if quarantined
                    else ": every batch passed its gates"
                ),
            ],
            *[[f"rule {r}", f"{len(ds)} dates"] for r, ds in sorted(rules.items())],
            ["last ingest (ingest:last)", ingest],
        ],
    )
    return s


# --- the page ----------------------------------------------------------------------------------------------

_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    ".note{background:#fff4e5;border-left:4px solid #e67e22;padding:.5em 1em}"
)


def _page(day: date, sections: list[Section]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>quantbridge nightly report "
        f"{day.isoformat()}</title><style>{_CSS}</style></head><body>",
        f"<h1>quantbridge nightly report, {day.isoformat()}</h1>",
        "<p>" + " · ".join(f"<a href='#{s.key}'>{html.escape(s.title)}</a>" for s in sections) + "</p>",
    ]
    for s in sections:
        parts.append(f"<h2 id='{s.key}'>{html.escape(s.title)}</h2>")
        if s.note:
            parts.append(f"<p class='note'>{html.escape(s.note)}</p>")
        if s.png:
            parts.append(f"<img src='{s.png}' alt='{html.escape(s.title)}'>")
        parts.append(s.body)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def build_nightly_report(
    lake: Lake,
    day: date,
    redis: Any = None,
    *,
    prefix: str = "qb",
    model: str = "filtered_historical_portfolio",
    confidence: float = 0.99,
    window: int = 500,
    days: int = 250,
    progress: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Write ``reports/date=D/report.html`` (+ PNGs and ``report.json``) and return the HTML's path.

    ``redis`` is a client (read once with :func:`read_redis_snapshot`), a :class:`RedisSnapshot`, or None
    (Redis-backed parts then carry a note). A re-run for the same date and inputs rewrites identical files.
    """
    if not isinstance(day, date):
        raise InputError("day", day, "a datetime.date")
    if redis is None:
        snap = RedisSnapshot(error="no Redis client given")
    elif isinstance(redis, RedisSnapshot):
        snap = redis
    else:
        snap = read_redis_snapshot(redis, RedisSchema(prefix))
    folder = lake.partition("reports", "date", day.isoformat())
    folder.mkdir(parents=True, exist_ok=True)
    for key in SECTIONS:  # a section that now has no picture must not leave an old one behind
        (folder / f"{key}.png").unlink(missing_ok=True)
    options = {"model": model, "confidence": confidence, "window": window, "days": days}
    builders: list[tuple[str, Callable[[], Section]]] = [
        ("var", lambda: _var_section(lake, day, snap, folder, options)),
        ("stress", lambda: _stress_section(lake, day, folder)),
        ("synthetic", lambda: _synthetic_section(lake, day, folder, window)),
        ("execution", lambda: _execution_section(snap, folder)),
        ("quality", lambda: _quality_section(lake, day, snap, folder)),
    ]
    sections = []
    for key, build in builders:
        sections.append(build())
        progress(f"{key}: " + (sections[-1].note or "done"))
    summary = {
        "date": day.isoformat(),
        "redis": snap.error or "ok",
        "sections": {
            s.key: {"title": s.title, "note": s.note, "png": s.png, "figures": s.figures} for s in sections
        },
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    path = folder / REPORT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_page(day, sections))
    tmp.replace(path)
    return path


__all__ = [
    "RedisSnapshot",
    "SECTIONS",
    "build_nightly_report",
    "read_redis_snapshot",
    "var_history",
    "venue_costs",
    "synthetic_samples",
    "quarantine_rules",
]
