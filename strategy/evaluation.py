"""Out-of-sample evaluation of the strategy against baselines that can win, without optimism.

One walk-forward for every book: at the close of each decision day D (every ``HORIZON`` trading days of
the out-of-sample dates) each book decides target weights from data up to D only; the orders execute at
the close of D+1 (the replay's convention, ``EXECUTION_LAG``), paying the execution lane's cost model
(:class:`strategy.costs.CostModel`) on each name's traded weight; the book then drifts with prices. So the
return of day D is never earned by a decision of the close of D (nor is D+1's: the book is only in place
from D+1's close). Books: ``model`` (the ``top_k`` names by out-of-sample prediction, equal weights) and
the baselines of :func:`strategy.baselines.baseline_weights` (equal weight, minimum variance and HRP from
skfolio, 12-1 momentum). A decision day where a baseline lacks history is skipped for every book.

Reported per book: IC (daily Spearman correlation of the ranking signal with the executable relative 5-day
return) with its Newey-West t-statistic, hit rate, annual return, volatility, Sharpe with its standard error,
maximum drawdown, annual turnover and annual cost; and :func:`choose`'s decision: the model trades only when
its IC t-statistic reaches :data:`MIN_IC_T` and its daily net return beats the best baseline's (by Sharpe)
with a Newey-West t-statistic of at least :data:`MIN_EDGE_T`; otherwise the best baseline trades.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from strategy.baselines import BASELINE_WINDOW, BASELINES, baseline_weights
from strategy.costs import CostModel
from strategy.features import EXECUTION_LAG, HORIZON, TARGET
from strategy.model import daily_ic
from strategy.stats import book_stats, newey_west_t

#: The least IC t-statistic (Newey-West) for a model to trade at all.
MIN_IC_T = 2.0
#: The least t-statistic (Newey-West) of the daily net-return edge over the best baseline for the model to
#: trade instead of it.
MIN_EDGE_T = 1.96
#: Newey-West lags for overlapping 5-day labels scored daily.
NW_LAGS = HORIZON + EXECUTION_LAG
#: Closes a decision needs behind it (12-1 momentum and the baselines' return window).
HISTORY = BASELINE_WINDOW + 1


def simulate(closes: pd.DataFrame, targets: Mapping[Any, pd.Series], costs: CostModel) -> pd.DataFrame:
    """Daily book of target weights decided at the close of each key of ``targets``, traded at D+1.

    Returns one row per trading day from the first execution on: ``ret`` (net of costs), ``gross``,
    ``turnover`` (sum |w_target - w_drifted| on execution days) and ``cost`` (share of the book).
    """
    closes = closes.sort_index()
    dates = list(closes.index)
    position = {d: i for i, d in enumerate(dates)}
    tickers = list(closes.columns)
    execute: dict[int, np.ndarray] = {}
    for day, weights in targets.items():
        if day not in position:
            raise InputError("targets", str(day), "decision dates that are trading days of closes")
        unknown = sorted(set(weights.index) - set(tickers))
        if unknown:
            raise InputError("targets", unknown, "tickers of closes")
        if position[day] + EXECUTION_LAG < len(dates):
            execute[position[day] + EXECUTION_LAG] = weights.reindex(tickers).fillna(0.0).to_numpy(np.float64)
    returns = closes.pct_change(fill_method=None).fillna(0.0).to_numpy(np.float64)
    prices = closes.ffill().to_numpy(np.float64)
    vol = closes.pct_change(fill_method=None).rolling(21, min_periods=5).std().to_numpy(np.float64)
    w = np.zeros(len(tickers))
    started = False
    rows: dict[Any, tuple[float, float, float, float]] = {}
    for t in range(1, len(dates)):
        gross = float(w @ returns[t])
        if started:
            grown = w * (1 + returns[t])
            w = grown / grown.sum() if grown.sum() > 0 else grown
        turnover = cost = 0.0
        if t in execute:
            target = execute[t]
            dw = target - w
            turnover = float(np.abs(dw).sum())
            known_vol = vol[t - 1]  # the volatility known at the decision's close
            cost = sum(
                costs.cost(tickers[i], dw[i], prices[t, i], known_vol[i])
                for i in np.flatnonzero(np.abs(dw) > 1e-12)
            )
            w, started = target, True
        if started:
            rows[dates[t]] = (gross - cost, gross, turnover, cost)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["ret", "gross", "turnover", "cost"])


def _top(rows: pd.Series, top_k: int) -> pd.Series:
    chosen = rows.dropna().nlargest(top_k).index
    return pd.Series(1.0 / len(chosen), index=chosen, dtype=np.float64)


def decisions(oos: pd.DataFrame, closes: pd.DataFrame, top_k: int = 5) -> dict[str, dict[Any, pd.Series]]:
    """Target weights of every book at each decision day (every ``HORIZON`` out-of-sample dates)."""
    closes = closes.sort_index()
    position = {d: i for i, d in enumerate(closes.index)}
    out: dict[str, dict[Any, pd.Series]] = {name: {} for name in ("model", *BASELINES)}
    by_date = oos.set_index(["date", "ticker"])["pred"]
    for day in sorted(oos["date"].unique())[::HORIZON]:
        i = position.get(day)
        if i is None or i < HISTORY:
            continue  # too little history for the baselines: no book decides on this day
        window = closes.iloc[i - HISTORY : i + 1]
        try:
            books = {name: baseline_weights(name, window, top_k) for name in BASELINES}
        except InputError:
            continue
        out["model"][day] = _top(by_date.loc[day], top_k)
        for name, weights in books.items():
            out[name][day] = weights
    return out


def _ic(frame: pd.DataFrame, signal: str) -> dict[str, float]:
    rows = frame.dropna(subset=[signal, TARGET])
    daily = daily_ic(rows, rows[signal].to_numpy())
    demeaned = rows[signal] - rows.groupby("date")[signal].transform("mean")
    nw = newey_west_t(daily, NW_LAGS)
    return {
        "ic": nw["mean"],
        "ic_t": nw["t"],
        "hit_rate": float(np.mean(np.sign(demeaned) == np.sign(rows[TARGET]))),
    }


def choose(books: Mapping[str, pd.DataFrame], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Which book trades: the model only with IC t >= MIN_IC_T and a significant edge over the best
    baseline (by Sharpe); otherwise that baseline."""
    by_name = {r["book"]: r for r in rows}
    best = max(BASELINES, key=lambda b: (np.nan_to_num(by_name[b]["sharpe"], nan=-np.inf), b))
    diff = (books["model"]["ret"] - books[best]["ret"]).dropna()
    edge = newey_west_t(diff, NW_LAGS)
    ic_t = float(by_name["model"]["ic_t"])
    model_trades = bool(ic_t >= MIN_IC_T and edge["t"] >= MIN_EDGE_T)
    if model_trades:
        reason = f"model IC t {ic_t:.2f} >= {MIN_IC_T} and edge over {best} t {edge['t']:.2f} >= {MIN_EDGE_T}"
    elif not ic_t >= MIN_IC_T:
        reason = f"model IC t {ic_t:.2f} < {MIN_IC_T}: the best baseline {best} trades"
    else:
        reason = f"model edge over {best} t {edge['t']:.2f} < {MIN_EDGE_T}: the best baseline {best} trades"
    return {
        "trade": "model" if model_trades else best,
        "best_baseline": best,
        "edge_daily_mean": edge["mean"],
        "edge_t": edge["t"],
        "model_ic_t": ic_t,
        "min_ic_t": MIN_IC_T,
        "min_edge_t": MIN_EDGE_T,
        "reason": reason,
    }


def evaluate(oos: pd.DataFrame, closes: pd.DataFrame, costs: CostModel, top_k: int = 5) -> dict[str, Any]:
    """Table of the model and every baseline over the out-of-sample dates of ``oos`` (columns ``date``,
    ``ticker``, ``pred``, ``target_5d``), with the decision of :func:`choose`."""
    closes = closes.sort_index()
    targets = decisions(oos, closes, top_k)
    if not targets["model"]:
        raise InputError(
            "oos",
            f"{oos['date'].nunique()} dates",
            f"decision days with {HISTORY} closes of history behind them",
        )
    books = {name: simulate(closes, t, costs) for name, t in targets.items()}
    mom = (closes.shift(21) / closes.shift(252) - 1).stack(future_stack=True).rename("momentum_12_1")
    frame = oos.merge(mom.rename_axis(["date", "ticker"]).reset_index(), on=["date", "ticker"], how="left")
    frame = frame[frame["date"] >= min(targets["model"])]
    none = {"ic": float("nan"), "ic_t": float("nan"), "hit_rate": float("nan")}
    rows = []
    for name, book in books.items():
        signal = {"model": "pred", "momentum_12_1": "momentum_12_1"}.get(name)
        rows.append({"book": name, **(_ic(frame, signal) if signal else none), **book_stats(book)})
    first = min(targets["model"])
    return {
        "start": str(first),
        "end": str(max(b.index.max() for b in books.values())),
        "top_k": top_k,
        "rebalance_days": HORIZON,
        "execution_lag_days": EXECUTION_LAG,
        "decisions": len(targets["model"]),
        "costs": {
            "spread_fee_bps": costs.spread_fee_bps,
            "impact_y": costs.impact_y,
            "book_value": costs.book_value,
        },
        "rows": rows,
        "decision": choose(books, rows),
    }


__all__ = ["MIN_EDGE_T", "MIN_IC_T", "NW_LAGS", "choose", "decisions", "evaluate", "simulate"]
