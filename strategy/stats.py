"""Small statistics for the strategy's evaluation: Newey-West t-statistics and the Sharpe ratio's error."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS = 252


def newey_west_t(values: pd.Series | np.ndarray, lags: int) -> dict[str, float]:
    """Mean of ``values`` with its Newey-West (Bartlett kernel, ``lags``) standard error and t-statistic.

    For overlapping observations (a 5-day label scored every day) the plain standard error is too small;
    the HAC error counts the autocovariances up to ``lags``. NaNs are dropped; fewer than 3 values give NaN.
    """
    x = np.asarray(pd.Series(values).dropna(), dtype=np.float64)
    n = x.size
    if n < 3:
        return {"mean": float("nan"), "se": float("nan"), "t": float("nan"), "n": float(n)}
    e = x - x.mean()
    var = float(e @ e) / n
    for lag in range(1, min(lags, n - 1) + 1):
        var += 2 * (1 - lag / (lags + 1)) * float(e[lag:] @ e[:-lag]) / n
    se = math.sqrt(max(var, 0.0) / n)
    mean = float(x.mean())
    return {"mean": mean, "se": se, "t": mean / se if se > 0 else float("nan"), "n": float(n)}


def sharpe(daily: pd.Series) -> dict[str, float]:
    """Annualised Sharpe ratio (no risk-free rate) of daily returns with its standard error.

    Standard error (Lo 2002, i.i.d. returns): sqrt((1 + SR_d^2 / 2) / T) on the daily ratio, annualised by
    sqrt(252).
    """
    x = np.asarray(daily.dropna(), dtype=np.float64)
    if x.size < 3 or x.std(ddof=1) == 0:
        return {"sharpe": float("nan"), "sharpe_se": float("nan")}
    sr = float(x.mean() / x.std(ddof=1))
    se = math.sqrt((1 + sr**2 / 2) / x.size)
    return {"sharpe": sr * math.sqrt(TRADING_DAYS), "sharpe_se": se * math.sqrt(TRADING_DAYS)}


def book_stats(book: pd.DataFrame) -> dict[str, Any]:
    """Figures of a simulated book (columns ``ret``, ``turnover``, ``cost``, one row a trading day)."""
    ret = book["ret"]
    years = len(ret) / TRADING_DAYS
    wealth = (1 + ret).cumprod()
    return {
        "annual_return": float(wealth.iloc[-1] ** (1 / years) - 1) if years > 0 else float("nan"),
        "annual_volatility": float(ret.std() * math.sqrt(TRADING_DAYS)),
        **sharpe(ret),
        "max_drawdown": float((wealth / wealth.cummax() - 1).min()),
        "annual_turnover": float(book["turnover"].sum() / years) if years > 0 else float("nan"),
        "annual_cost": float(book["cost"].sum() / years) if years > 0 else float("nan"),
        "days": len(ret),
    }


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) as None, recursively: strict JSON (the lake's
    records, Airflow's XCom) has no NaN."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


__all__ = ["TRADING_DAYS", "book_stats", "json_safe", "newey_west_t", "sharpe"]
