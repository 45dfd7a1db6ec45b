"""VaR backtesting: rolling one-day VaR forecasts on real history, exceptions, Kupiec's proportion-of-failures
test, Christoffersen's independence test and the Basel traffic-light zone per 250-day window.

The rolling forecasts use each model's exact quantile (what its Monte Carlo converges to for a linear
portfolio), so decades of daily forecasts take seconds:

``normal``               z_c x portfolio volatility from the Ledoit-Wolf covariance of the last ``window`` returns
``student_t``            the same volatility, Student-t quantile (``dof`` = 5) scaled to unit variance
``ewma``                 z_c x RiskMetrics EWMA volatility (decay 0.94) of the portfolio return
``filtered_historical``  empirical quantile of EWMA-standardised past returns x today's EWMA volatility

Forecast t uses returns strictly before t. Losses and VaR are fractions of portfolio value.
(``arch`` 8.0.0, the newest release reachable here, does not ship these tests yet; they are written here
and checked against hand computations in the tests.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from quantbridge.errors import InputError
from risk.covariance import covariance

BACKTEST_MODELS = ("normal", "student_t", "ewma", "filtered_historical")
BASEL_WINDOW = 250


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(y)


def kupiec_pof(exceptions: int, observations: int, p: float) -> tuple[float, float]:
    """Kupiec's likelihood-ratio statistic for the exception rate, and its chi-square(1) p-value."""
    if observations <= 0 or not 0 <= exceptions <= observations:
        raise InputError("exceptions", exceptions, f"an integer in [0, observations={observations}]")
    x, n = exceptions, observations
    rate = x / n
    lr = -2.0 * (_xlogy(n - x, 1 - p) + _xlogy(x, p) - _xlogy(n - x, 1 - rate) - _xlogy(x, rate))
    lr = max(lr, 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def christoffersen_independence(hits: np.ndarray) -> tuple[float, float]:
    """Christoffersen's LR test that an exception today does not make one tomorrow likelier (chi-square(1))."""
    h = np.asarray(hits, dtype=bool)
    if h.size < 2:
        raise InputError("hits", h.size, "at least two observations")
    prev, cur = h[:-1], h[1:]
    n00 = int(np.sum(~prev & ~cur))
    n01 = int(np.sum(~prev & cur))
    n10 = int(np.sum(prev & ~cur))
    n11 = int(np.sum(prev & cur))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    restricted = _xlogy(n00 + n10, 1 - pi) + _xlogy(n01 + n11, pi)
    unrestricted = _xlogy(n00, 1 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1 - pi11) + _xlogy(n11, pi11)
    lr = max(-2.0 * (restricted - unrestricted), 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def traffic_light(exceptions: int, observations: int = BASEL_WINDOW, p: float = 0.01) -> str:
    """Basel zone from the binomial CDF of the exception count: green < 95%, yellow < 99.99%, red beyond."""
    cdf = float(stats.binom.cdf(exceptions, observations, p))
    return "green" if cdf < 0.95 else "yellow" if cdf < 0.9999 else "red"


def _ewma_sigma(r: np.ndarray, decay: float) -> np.ndarray:
    """sigma[t] forecasts the volatility of r[t] from r[:t] only."""
    var = np.empty(len(r))
    var[0] = np.var(r[: min(20, len(r))]) + 1e-18
    for t in range(1, len(r)):
        var[t] = decay * var[t - 1] + (1 - decay) * r[t - 1] ** 2
    return np.sqrt(var)


def rolling_var(returns: pd.DataFrame, weights: np.ndarray, model: str, confidence: float = 0.99,
                window: int = 500, dof: float = 5.0, decay: float = 0.94) -> pd.Series:
    """One-day VaR forecasts (fraction of value) for dates ``returns.index[window:]``."""
    if model not in BACKTEST_MODELS:
        raise InputError("model", model, "one of " + ", ".join(BACKTEST_MODELS))
    if len(returns) <= window:
        raise InputError("returns", f"{len(returns)} days", f"more than window={window} days of returns")
    data = returns.to_numpy(dtype=np.float64)
    port = data @ weights
    z = stats.norm.ppf(confidence)
    out = np.empty(len(data) - window)
    if model in {"normal", "student_t"}:
        q = z if model == "normal" else stats.t.ppf(confidence, dof) * math.sqrt((dof - 2) / dof)
        for i, t in enumerate(range(window, len(data))):
            sigma = covariance(data[t - window:t], "ledoit_wolf")
            out[i] = q * math.sqrt(weights @ sigma @ weights)
    else:
        sigma = _ewma_sigma(port, decay)
        if model == "ewma":
            out = z * sigma[window:]
        else:
            standardised = port / sigma
            for i, t in enumerate(range(window, len(data))):
                out[i] = -np.quantile(standardised[t - window:t], 1 - confidence) * sigma[t]
    return pd.Series(out, index=returns.index[window:], name=model)


@dataclass(frozen=True)
class BacktestRow:
    model: str
    observations: int
    exceptions: int
    expected_exceptions: float
    exception_rate: float
    kupiec_lr: float
    kupiec_p: float
    christoffersen_lr: float
    christoffersen_p: float
    zone_last_window: str
    windows_green: float
    windows_yellow: float
    windows_red: float
    passes: bool

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def evaluate(losses: pd.Series, var: pd.Series, confidence: float = 0.99, model: str = "") -> BacktestRow:
    """Exceptions (loss > VaR), the two LR tests and the traffic-light zones of every 250-day window."""
    aligned = pd.concat([losses.rename("loss"), var.rename("var")], axis=1, join="inner").dropna()
    hits = (aligned["loss"] > aligned["var"]).to_numpy()
    p = 1 - confidence
    n, x = len(hits), int(hits.sum())
    k_lr, k_p = kupiec_pof(x, n, p)
    c_lr, c_p = christoffersen_independence(hits)
    counts = np.convolve(hits.astype(int), np.ones(BASEL_WINDOW, dtype=int), mode="valid") if n >= BASEL_WINDOW else np.array([x])
    zones = [traffic_light(int(c), BASEL_WINDOW, p) for c in counts]
    share = {z: zones.count(z) / len(zones) for z in ("green", "yellow", "red")}
    return BacktestRow(model=model, observations=n, exceptions=x, expected_exceptions=n * p, exception_rate=x / n,
                       kupiec_lr=k_lr, kupiec_p=k_p, christoffersen_lr=c_lr, christoffersen_p=c_p,
                       zone_last_window=zones[-1], windows_green=share["green"], windows_yellow=share["yellow"],
                       windows_red=share["red"], passes=bool(k_p > 0.05 and c_p > 0.05))


def backtest(returns: pd.DataFrame, weights: np.ndarray | None = None, models: tuple[str, ...] = BACKTEST_MODELS,
             confidence: float = 0.99, window: int = 500) -> dict[str, Any]:
    """Backtest every model on ``returns`` (dates x tickers) for a portfolio (default: equal weight)."""
    w = np.full(returns.shape[1], 1 / returns.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    losses = -pd.Series(returns.to_numpy() @ w, index=returns.index)
    rows = [evaluate(losses, rolling_var(returns, w, m, confidence, window), confidence, m) for m in models]
    passing = [r for r in rows if r.passes]
    # Default: a model passing both tests; among those, the one whose exception rate is closest to 1 - c.
    best = min(passing or rows, key=lambda r: (abs(r.exception_rate - (1 - confidence)), -r.christoffersen_p))
    return {"confidence": confidence, "window": window, "start": str(returns.index[window]),
            "end": str(returns.index[-1]), "tickers": list(returns.columns), "models": [r.as_dict() for r in rows],
            "default_model": best.model, "default_passes": best.passes}


def lake_returns(closes: pd.DataFrame, quarantined: list[Any]) -> pd.DataFrame:
    """Daily returns between consecutive lake dates, dropping any return that spans a quarantined date."""
    closes = closes.sort_index()
    returns = closes.pct_change(fill_method=None).iloc[1:]
    dates = np.array(closes.index, dtype="datetime64[D]")
    blocked = np.sort(np.array(quarantined, dtype="datetime64[D]"))
    inside = np.searchsorted(blocked, dates[1:], "left") - np.searchsorted(blocked, dates[:-1], "right")
    keep = (inside == 0) & ~returns.isna().any(axis=1).to_numpy()
    return returns[keep]
