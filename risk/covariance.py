"""Returns and covariance estimates for the VaR engines.

Shapes: ``closes`` (n_obs, n_assets) prices; ``returns`` (n_obs - 1, n_assets) simple daily returns;
covariances (n_assets, n_assets) of daily returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantbridge.errors import InputError

METHODS = ("ledoit_wolf", "oas", "sample")


def daily_returns(closes: pd.DataFrame) -> pd.DataFrame:
    """Simple daily returns of a (dates x tickers) close matrix; rows with any gap are dropped, loudly."""
    if closes.empty:
        raise InputError("closes", "empty", "a (dates x tickers) matrix of prices with at least two dates")
    returns = closes.sort_index().pct_change(fill_method=None).iloc[1:]
    bad = returns.isna().any(axis=1)
    if bad.all():
        raise InputError("closes", f"{len(closes)} dates", "at least two consecutive dates with every price")
    return returns[~bad]


def covariance(returns: np.ndarray | pd.DataFrame, method: str = "ledoit_wolf") -> np.ndarray:
    """Shrunk (Ledoit-Wolf or OAS) or sample covariance of daily returns, (n_assets, n_assets)."""
    from sklearn.covariance import OAS, LedoitWolf, empirical_covariance

    data = np.asarray(returns, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2:
        raise InputError("returns", f"shape {data.shape}", "a 2-D array with at least two observations")
    if not np.isfinite(data).all():
        raise InputError("returns", "non-finite values", "finite returns (drop or fill gaps first)")
    if method == "ledoit_wolf":
        return LedoitWolf().fit(data).covariance_
    if method == "oas":
        return OAS().fit(data).covariance_
    if method == "sample":
        return empirical_covariance(data)
    raise InputError("method", method, "one of " + ", ".join(METHODS))


def ewma_covariance(returns: np.ndarray | pd.DataFrame, decay: float = 0.94) -> np.ndarray:
    """RiskMetrics EWMA covariance (zero mean), weight ``decay**k`` on the return k days before the last."""
    if not 0 < decay < 1:
        raise InputError("decay", decay, "a number in (0, 1), e.g. 0.94")
    data = np.asarray(returns, dtype=np.float64)
    weights = decay ** np.arange(len(data))[::-1]
    weights /= weights.sum()
    return (data * weights[:, None]).T @ data


def ewma_volatility(returns: np.ndarray, decay: float = 0.94) -> np.ndarray:
    """Per-date EWMA volatility forecast, (n_obs, n_assets): row t uses returns before t only."""
    data = np.asarray(returns, dtype=np.float64)
    var = np.empty_like(data)
    var[0] = data[: min(20, len(data))].var(axis=0) + 1e-12
    for t in range(1, len(data)):
        var[t] = decay * var[t - 1] + (1 - decay) * data[t - 1] ** 2
    return np.sqrt(var)
