"""Portfolio VaR from lake prices: the one call the VaR sensor, ``qb var`` and the backtest's forecasts share.

:func:`portfolio_var` turns closes up to and including a date D, the quarantined dates, positions in shares
and a :class:`~risk.var.VarSpec` into the VaR/CVaR forecast for the day after D. Its formula is
:func:`risk.var.forecast` on the last ``window`` returns of :func:`quantbridge.returns.daily_returns`;
:mod:`risk.backtest` rolls the same formula over history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.returns import daily_returns
from risk.portfolio import exposures
from risk.var import FORECAST_MODES, VAR_MODELS, VarResult, VarSpec, forecast

__all__ = ["VAR_MODELS", "equity_window", "portfolio_var", "recent_closes"]


def portfolio_var(
    closes: pd.DataFrame,
    positions: dict[str, float],
    *,
    quarantined: Iterable[Any] = (),
    model: str = VarSpec.model,  # one home for the model defaults: risk.var.VarSpec
    confidence: float = VarSpec.confidence,
    horizon_days: int = VarSpec.horizon_days,
    window: int = VarSpec.window,
    decay: float = VarSpec.decay,
    dof: float = VarSpec.dof,
    cov_method: str = VarSpec.cov_method,
    mode: str = "totals",
    spec: VarSpec | None = None,
    prices: pd.Series | None = None,
) -> VarResult:
    """VaR/CVaR for the next day of ``positions`` (ticker -> shares) held at the last date D of ``closes``.

    ``closes``: (dates x tickers) lake closes up to and including D; exposures are shares x D's close (the
    last known close of a ticker with none on D). The forecast uses the last ``window`` daily returns of
    the held tickers (fewer on a shorter history, at least ``MIN_RETURNS``), returns spanning a
    ``quarantined`` date or a missing price dropped. ``spec`` overrides the model keywords. ``mode``
    ``full`` adds component VaR/CVaR per position. ``prices`` (ticker -> price, e.g. trusted marks fresher
    than D's close) value the exposures instead of the last close; the returns stay the lake's.
    """
    spec = spec or VarSpec(
        model=model,
        confidence=confidence,
        horizon_days=horizon_days,
        window=window,
        decay=decay,
        dof=dof,
        cov_method=cov_method,
    )
    if mode not in FORECAST_MODES:
        raise InputError("mode", mode, "one of " + ", ".join(FORECAST_MODES))
    returns, money = equity_window(closes, positions, spec.window, quarantined, prices)
    return forecast(
        returns.to_numpy(dtype=np.float64),
        money.to_numpy(),
        spec,
        tickers=list(money.index),
        components=mode == "full",
    )


def equity_window(
    closes: pd.DataFrame,
    positions: dict[str, float],
    window: int,
    quarantined: Iterable[Any] = (),
    prices: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """(returns, exposures) of :func:`portfolio_var`: the last ``window`` daily returns (dates x held
    tickers) and the money held per ticker, shares x ``prices`` (default: the last close up to D).

    A held ticker without a close in ``closes`` (or a non-finite price) is an InputError naming it."""
    if closes.empty:
        raise InputError("closes", "empty", "lake prices up to the valuation date (run `qb ingest` first)")
    closes = closes.sort_index()
    last = closes.ffill().iloc[-1]
    money = exposures(positions, last if prices is None else prices)
    unpriced = [t for t in money.index if not (np.isfinite(money[t]) and np.isfinite(last.get(t, np.nan)))]
    if unpriced:
        raise InputError(
            "positions", ",".join(unpriced), "tickers with a close in the lake up to the valuation date"
        )
    returns = daily_returns(closes.loc[:, list(money.index)], quarantined).iloc[-window:]
    return returns, money


def recent_closes(lake: Lake, window: int, end: date | None = None) -> pd.DataFrame:
    """Closes (dates x tickers) of the latest lake dates up to ``end`` holding ``window`` daily returns.

    Reads ``window + 1`` dates, and more while returns spanning quarantined dates or gaps leave fewer than
    ``window`` (or the lake is exhausted), so :func:`portfolio_var` sees the same window as the backtest
    run on the whole lake.
    """
    dates = [d for d in lake.price_dates() if end is None or d <= end]
    if not dates:
        return pd.DataFrame()
    quarantined = lake.quarantined_dates()
    need = window + 1
    while True:
        closes = lake.read_close_matrix(dates[-need] if need < len(dates) else dates[0], dates[-1])
        try:
            kept = len(daily_returns(closes, quarantined))
        except InputError:
            kept = 0
        if kept >= window or need >= len(dates):
            return closes
        need += window - kept
