"""Stressed VaR (Basel 2.5): today's book under the worst 250-day window of the lake's history.

Definition: for every run of ``window`` (250) consecutive kept daily returns in the history (quarantine-aware,
:func:`quantbridge.returns.daily_returns`), the VaR model of ``spec`` (its confidence, horizon and quantile
estimator, with ``window`` returns) values the book as held today (shares x the latest close, or the money
of a reference book) as if that run were the latest year. The stressed VaR is the largest of these VaRs,
reported with its CVaR and the window's first and last return dates.

A model that rescales its window to the latest volatility (the filtered historical models, EWMA) is replaced
by its unfiltered counterpart (:data:`STRESS_MODELS`: historical simulation, normal): with the filter, the
"stressed" figure would be one day's peak volatility applied to a whole year (on the bundled data, March
2020 scaled the calm 2019 days up tenfold), not the "model inputs calibrated to a continuous 12-month
period of significant financial stress" of Basel 2.5, where each day of the year weighs the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from quantbridge.returns import daily_returns
from risk.backtest import HOLDS, rolling_figures
from risk.var import VarSpec

#: Basel 2.5: a continuous 12-month period of significant stress.
STRESS_WINDOW = 250
#: The model a stressed VaR runs for a model that rescales to the latest volatility.
STRESS_MODELS = {
    "filtered_historical": "historical",
    "filtered_historical_portfolio": "historical",
    "filtered_historical_garch": "historical",
    "ewma": "normal",
}


def stressed_var(
    closes: pd.DataFrame,
    positions: dict[str, float],
    spec: VarSpec,
    quarantined: Iterable[Any] = (),
    *,
    hold: str = "shares",
    window: int = STRESS_WINDOW,
) -> dict[str, Any]:
    """Stressed VaR and CVaR of the book (see the module docstring), in money.

    ``closes``: (dates, tickers) lake closes, the whole history; ``positions``: ticker -> shares
    (``hold="shares"``: valued at the latest close) or ticker -> money (``hold="money"``).
    Returns ``var``, ``cvar``, ``start`` and ``end`` (first and last return dates of the worst window),
    ``windows`` (how many were scanned), ``as_of`` (the latest close), ``exposure`` (gross money) and the
    ``model`` run (:data:`STRESS_MODELS`), ``confidence``, ``horizon_days`` and ``window``.
    """
    if hold not in HOLDS:
        raise InputError("hold", hold, "one of " + ", ".join(HOLDS))
    tickers = list(positions)
    unknown = sorted(set(tickers) - set(map(str, closes.columns)))
    if unknown or not tickers:
        raise InputError("positions", ",".join(unknown) or "{}", "tickers present in the lake's closes")
    stress_spec = replace(spec, model=STRESS_MODELS.get(spec.model, spec.model), window=window)
    prices = closes.sort_index().loc[:, tickers]
    returns = daily_returns(prices, quarantined)
    if len(returns) < window:
        raise InputError(
            "returns",
            f"{len(returns)} daily returns",
            f"at least window={window}",
            hint="ingest more history",
        )
    quantity = np.array([positions[t] for t in tickers], dtype=np.float64)
    if hold == "shares":
        # daily_returns kept some returns, so every ticker has a close to carry forward
        money = prices.ffill().iloc[-1].to_numpy(dtype=np.float64) * quantity
    else:
        money = quantity
    ends = np.arange(window, len(returns) + 1)
    var, cvar, _, _ = rolling_figures(
        returns.to_numpy(dtype=np.float64), ends, np.broadcast_to(money, (len(ends), len(money))), stress_spec
    )
    worst = int(np.argmax(var))
    end = int(ends[worst])
    return {
        "model": stress_spec.model,
        "confidence": spec.confidence,
        "horizon_days": spec.horizon_days,
        "window": window,
        "var": float(var[worst]),
        "cvar": float(cvar[worst]),
        "start": _day(returns.index[end - window]),
        "end": _day(returns.index[end - 1]),
        "windows": len(ends),
        "as_of": _day(prices.index[-1]),
        "exposure": float(np.abs(money).sum()),
    }


def _day(value: Any) -> str:
    return pd.Timestamp(value).date().isoformat()
