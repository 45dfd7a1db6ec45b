"""Out-of-sample evaluation of the strategy against equal weight and a plain momentum baseline.

Every ``HORIZON`` trading days (non-overlapping), each book is rebuilt and held ``HORIZON`` days:
``model`` holds the ``top_k`` names by out-of-sample prediction (equal weights), ``momentum`` the top_k by
21-day return, ``equal_weight`` every name. Costs: ``cost_bps`` per unit of turnover (sum |w_new - w_old|).
Reported: information coefficient and hit rate (of the ranking signal vs the relative 5-day return),
annualised return, volatility, Sharpe (no risk-free rate) and maximum drawdown after costs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from strategy.features import HORIZON, TARGET


def _book_returns(frame: pd.DataFrame, signal: str | None, top_k: int, cost_bps: float) -> pd.Series:
    dates = sorted(frame["date"].unique())[::HORIZON]
    previous = pd.Series(dtype="float64")
    out = {}
    for day in dates:
        rows = frame[frame["date"] == day].dropna(subset=["fwd"])
        if rows.empty:
            continue
        chosen = rows if signal is None else rows.nlargest(top_k, signal)
        weights = pd.Series(1.0 / len(chosen), index=chosen["ticker"].to_numpy())
        turnover = weights.sub(previous, fill_value=0.0).abs().sum()
        gross = float((chosen.set_index("ticker")["fwd"] * weights).sum())
        out[day] = gross - turnover * cost_bps / 10_000
        previous = weights
    return pd.Series(out, dtype="float64")


def _stats(returns: pd.Series) -> dict[str, float]:
    periods = 252 / HORIZON
    wealth = (1 + returns).cumprod()
    vol = float(returns.std() * math.sqrt(periods))
    ann = float(wealth.iloc[-1] ** (periods / len(returns)) - 1)
    return {
        "annual_return": ann,
        "annual_volatility": vol,
        "sharpe": ann / vol if vol > 0 else float("nan"),
        "max_drawdown": float((wealth / wealth.cummax() - 1).min()),
    }


def _signal_quality(frame: pd.DataFrame, signal: str) -> dict[str, float]:
    rows = frame.dropna(subset=[signal, TARGET])
    ic = (
        rows.groupby("date")
        .apply(lambda g: g[signal].rank().corr(g[TARGET].rank()), include_groups=False)
        .dropna()
    )
    demeaned = rows[signal] - rows.groupby("date")[signal].transform("mean")
    return {"ic": float(ic.mean()), "hit_rate": float(np.mean(np.sign(demeaned) == np.sign(rows[TARGET])))}


def evaluate(
    oos: pd.DataFrame, closes: pd.DataFrame, panel: pd.DataFrame, top_k: int = 5, cost_bps: float = 10.0
) -> dict[str, Any]:
    """Table of the model, momentum and equal-weight books over the out-of-sample dates of ``oos``."""
    fwd = (closes.shift(-HORIZON) / closes - 1).stack(future_stack=True).rename("fwd").reset_index()
    fwd.columns = ["date", "ticker", "fwd"]
    frame = oos.merge(panel.loc[:, ["date", "ticker", "mom_21d"]], on=["date", "ticker"], how="left").merge(
        fwd, on=["date", "ticker"], how="left"
    )
    rows = []
    for name, signal in (("model", "pred"), ("momentum_21d", "mom_21d"), ("equal_weight", None)):
        quality = _signal_quality(frame, signal) if signal else {"ic": float("nan"), "hit_rate": float("nan")}
        rows.append({"book": name, **quality, **_stats(_book_returns(frame, signal, top_k, cost_bps))})
    return {
        "start": str(frame["date"].min()),
        "end": str(frame["date"].max()),
        "top_k": top_k,
        "cost_bps": cost_bps,
        "rebalance_days": HORIZON,
        "rows": rows,
    }
