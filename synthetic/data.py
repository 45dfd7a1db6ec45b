"""Real return windows for training and for held-out evaluation, with no leakage between the two.

The daily returns of the close matrix are cut into non-overlapping ``length``-day windows; consecutive
groups of ``block`` windows (20 trading days by default) are drawn at random (seeded) into the held-out
set. Held-out windows are non-overlapping and never seen in training. Training windows overlap (stride
1) and are taken only from days outside every held-out block, so no held-out day enters training.

Returns are scaled by each asset's daily volatility measured on the training days only (unit variance
per asset); ``scale`` turns a scaled window back into simple daily returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from quantbridge.returns import daily_returns

__all__ = ["WindowSplit", "daily_returns", "split_windows"]


@dataclass(frozen=True)
class WindowSplit:
    """train: (n_train, length, n_assets) overlapping windows; test: (n_test, length, n_assets) held out,
    both in units of each asset's training volatility; scale: (n_assets,) daily volatility of simple
    returns; train_days: (n_days, n_assets) the training days in date order, same units (the held-out
    blocks cut out, so a series fitted on it, e.g. a GARCH, sees only training days)."""

    train: np.ndarray
    test: np.ndarray
    scale: np.ndarray
    tickers: tuple[str, ...]
    start: str
    end: str
    train_days: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


def split_windows(
    closes: pd.DataFrame,
    length: int = 5,
    test_fraction: float = 0.3,
    block: int = 4,
    seed: int = 0,
    quarantined: Iterable[Any] = (),
) -> WindowSplit:
    """Overlapping training windows and non-overlapping held-out windows of ``closes`` (dates x tickers).

    Returns are :func:`quantbridge.returns.daily_returns` (spans of ``quarantined`` dates and gaps
    dropped)."""
    returns = daily_returns(closes, quarantined)
    n_blocks = len(returns) // (length * block)
    if n_blocks < 4:
        raise InputError(
            "prices",
            f"{len(returns)} usable daily returns",
            f"at least {4 * length * block} (four blocks of {block} windows of {length} days)",
            hint="ingest more history with `qb ingest`",
        )
    if not 0 < test_fraction < 1:
        raise InputError("test_fraction", test_fraction, "a number strictly between 0 and 1")
    values = returns.to_numpy(dtype=np.float64)
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(n_blocks * test_fraction)))
    test_blocks = np.sort(rng.choice(n_blocks, size=n_test, replace=False))
    held = np.zeros(len(values), dtype=bool)
    for b in test_blocks:
        held[b * length * block : (b + 1) * length * block] = True
    scale = values[~held].std(axis=0)
    scaled = values / scale
    test = np.stack(
        [
            scaled[s : s + length]
            for b in test_blocks
            for s in range(b * length * block, (b + 1) * length * block, length)
        ]
    )
    # a stride-1 window is for training iff none of its days is held out
    blocked = np.convolve(held.astype(int), np.ones(length, dtype=int), mode="valid") > 0
    starts = np.flatnonzero(~blocked)
    train = np.stack([scaled[s : s + length] for s in starts])
    return WindowSplit(
        train=train,
        test=test,
        scale=scale,
        tickers=tuple(map(str, returns.columns)),
        start=str(returns.index[0]),
        end=str(returns.index[-1]),
        train_days=scaled[~held],
    )
