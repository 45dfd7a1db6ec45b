"""Daily returns of lake closes: the one function risk, strategy, synthetic and reporting use.

A return is the simple return between two consecutive lake dates. A return is dropped (never filled or
bridged) when it spans a quarantined date, the quarantined batch's prices being untrusted and the move
across it being a multi-day move, or when a price at either end is missing: dropping keeps every kept
return a true one-step move of the prices the quality gates let through.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError


def daily_returns(closes: pd.DataFrame, quarantined: Iterable[date | str | Any] = ()) -> pd.DataFrame:
    """Simple returns between consecutive lake dates, dropping spans of quarantined dates and gaps.

    Parameters
    ----------
    closes: (n_dates, n_tickers) closes, index the lake dates (any order), columns the tickers.
    quarantined: dates whose batch was quarantined (``Lake.quarantined_dates()``).

    Returns
    -------
    (n_kept, n_tickers) simple daily returns indexed by the later date of each pair, ascending. A return
    from date a to the next lake date b is kept only if every ticker has a price on a and on b and no
    quarantined date q lies in [a, b].

    Raises
    ------
    InputError naming ``closes`` when no return is left.
    """
    if closes.shape[0] < 2 or closes.shape[1] == 0:
        raise InputError(
            "closes",
            f"{closes.shape[0]} dates x {closes.shape[1]} tickers",
            "a (dates x tickers) matrix of prices with at least two dates",
            hint="ingest prices with `qb ingest`",
        )
    closes = closes.sort_index()
    returns = closes.pct_change(fill_method=None).iloc[1:]
    dates = pd.to_datetime(closes.index).to_numpy().astype("datetime64[D]")
    blocked = np.sort(pd.to_datetime(list(quarantined)).to_numpy().astype("datetime64[D]"))
    # quarantined dates in [previous date, this date]: none for a kept return
    spanned = np.searchsorted(blocked, dates[1:], "right") - np.searchsorted(blocked, dates[:-1], "left")
    keep = (spanned == 0) & np.isfinite(returns.to_numpy(dtype=np.float64)).all(axis=1)
    if not keep.any():
        raise InputError(
            "closes",
            f"{closes.shape[0]} dates x {closes.shape[1]} tickers, {len(blocked)} quarantined dates",
            "at least two consecutive lake dates with every price and no quarantined date between",
            hint="ingest more history with `qb ingest`",
        )
    return returns[keep]
