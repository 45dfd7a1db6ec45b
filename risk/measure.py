"""Portfolio VaR from lake prices: the one call the CLI (and later the VaR sensor) makes."""

from __future__ import annotations

import pandas as pd

from quantbridge.errors import InputError
from risk.backend import array_module
from risk.covariance import covariance, daily_returns, ewma_covariance
from risk.portfolio import exposures
from risk.var import VarResult, historical_var, monte_carlo_var

#: Models ``qb var --model`` accepts.
VAR_MODELS = ("normal", "student_t", "ewma", "historical", "filtered_historical")


def portfolio_var(
    closes: pd.DataFrame,
    positions: dict[str, float],
    *,
    model: str = "normal",
    confidence: float = 0.99,
    horizon_days: int = 1,
    paths: int = 100_000,
    seed: int = 20260101,
    mode: str = "shortcut",
    window: int = 500,
    cov_method: str = "ledoit_wolf",
    backend_preference: str = "auto",
) -> VarResult:
    """VaR/CVaR of ``positions`` (ticker -> shares) valued at the last close of ``closes`` (dates x tickers).

    The covariance (or the historical sample) uses the last ``window`` daily returns of the held tickers.
    """
    if model not in VAR_MODELS:
        raise InputError("model", model, "one of " + ", ".join(VAR_MODELS))
    if isinstance(window, bool) or not isinstance(window, int) or window < 20:
        raise InputError("window", window, "an integer >= 20 (daily returns used)")
    money = exposures(positions, closes.ffill().iloc[-1])
    returns = daily_returns(closes.loc[:, list(money.index)]).iloc[-window:]
    if model in {"historical", "filtered_historical"}:
        return historical_var(money.to_numpy(), returns.to_numpy(), confidence, horizon_days,
                              filtered=model == "filtered_historical")
    sigma = ewma_covariance(returns) if model == "ewma" else covariance(returns, cov_method)
    result = monte_carlo_var(money.to_numpy(), sigma, confidence=confidence, horizon_days=horizon_days, paths=paths,
                             model="student_t" if model == "student_t" else "normal", seed=seed, mode=mode,
                             tickers=list(money.index), backend=array_module(backend_preference))
    return VarResult(**{**result.__dict__, "model": model})
