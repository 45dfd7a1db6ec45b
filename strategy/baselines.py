"""Baseline books: the replay tear sheet's daily series, and the strategy walk-forward's target weights.

:func:`baseline_weights` gives the target weights each baseline would decide at the close of D from closes
up to D only (equal weight, minimum variance and hierarchical risk parity from ``skfolio``, 12-1
momentum); :mod:`strategy.evaluation` trades them at D+1 with the model's costs, and the rebalance trades the
best of them when no model has beaten it with significance.

For the tear sheet's series below:
The replay's convention holds for both: weights decided at the close of D earn the return from D's close to
the next trading day's close, indexed by that next day; a decision never earns the return of the day that
produced it. A quarantined date is skipped as the replay skips it (no decision, no close used): the books
hold through it and earn the move from the trading day before it to the one after, as the replay's book
does. The minimum-variance covariance, however, uses only true one-step returns
(:func:`quantbridge.returns.daily_returns` with the quarantined dates), as every estimator in the project.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from quantbridge.returns import daily_returns
from risk.covariance import covariance
from strategy.portfolio import Constraints, optimise

# Minimum variance as a special case of the project's optimiser: no expected returns, no cap on a weight,
# and a turnover bound of 2 (the largest L1 distance between two fully invested long-only books), so the
# only active constraints are long-only and fully invested.
_MIN_VARIANCE = Constraints(long_only=True, max_weight=1.0, max_turnover=2.0)


def _held_returns(closes: pd.DataFrame, quarantined: Iterable[date | str | Any]) -> pd.DataFrame:
    """Returns a book earns between consecutive trading days, the quarantined dates' closes left out."""
    skipped = pd.to_datetime(list(quarantined)).normalize()
    keep = ~pd.to_datetime(closes.index).normalize().isin(skipped)
    return daily_returns(closes.loc[keep])


def equal_weight_returns(closes: pd.DataFrame, quarantined: Iterable[date | str | Any] = ()) -> pd.Series:
    """Daily returns of an equal-weight book rebalanced to 1/n at every close.

    Parameters
    ----------
    closes: (n_dates, n_tickers) lake closes, index the dates, columns the tickers.
    quarantined: dates whose batch was quarantined (skipped: held through, their closes unused).

    Returns
    -------
    (n_returns,) simple daily returns named ``"equal weight"``, indexed by the day each is earned (the
    trading day after the decision's close).
    """
    held = _held_returns(closes, quarantined)
    return held.mean(axis=1).rename("equal weight")


def min_variance_returns(
    closes: pd.DataFrame,
    window: int = 250,
    rebalance_every: int = 21,
    quarantined: Iterable[date | str | Any] = (),
) -> pd.Series:
    """Daily returns of a long-only, fully invested minimum-variance book.

    Every ``rebalance_every`` trading days, at the close of D, the weights minimise w' Sigma w with Sigma the
    Ledoit-Wolf covariance (:func:`risk.covariance.covariance`) of the last ``window`` one-step returns up to
    and including D; between rebalances the weights drift with the prices (no trading).

    Parameters
    ----------
    closes: (n_dates, n_tickers) lake closes, index the dates, columns the tickers; history before the first
        day to report must be included (the book starts once ``window`` returns are known).
    window: returns in the covariance estimate (at least 2).
    rebalance_every: trading days between rebalances (at least 1; 5 weekly, 21 monthly).
    quarantined: dates whose batch was quarantined.

    Returns
    -------
    (n_returns,) simple daily returns named ``"minimum variance"``, indexed by the day each is earned,
    from the first trading day after the first close with ``window`` returns behind it.

    Raises
    ------
    InputError naming ``window``/``rebalance_every`` when out of range, ``closes`` when no close has
    ``window`` returns before it and a trading day after it.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise InputError("window", window, "an integer of at least 2 (returns in the covariance)")
    if isinstance(rebalance_every, bool) or not isinstance(rebalance_every, int) or rebalance_every < 1:
        raise InputError("rebalance_every", rebalance_every, "an integer of at least 1 (trading days)")
    quarantined = list(quarantined)
    estimation = daily_returns(closes, quarantined)
    held = _held_returns(closes, quarantined)
    calendar = pd.DatetimeIndex(pd.to_datetime(held.index))
    # the decision of each held return: the close of the trading day before it (held rows are consecutive
    # closes, but a row with a missing price is dropped, so look each predecessor up in the closes)
    trading_days = pd.DatetimeIndex(pd.to_datetime(closes.index)).sort_values()
    skipped = pd.to_datetime(quarantined).normalize()
    trading_days = trading_days[~trading_days.normalize().isin(skipped)]
    decided = trading_days[trading_days.get_indexer(calendar) - 1]
    known = np.searchsorted(pd.to_datetime(estimation.index).to_numpy(), decided.to_numpy(), side="right")
    estimates = estimation.to_numpy(dtype=np.float64)
    moves = held.to_numpy(dtype=np.float64)

    out: dict[Any, float] = {}
    weights: np.ndarray | None = None
    held_days = 0
    for i, day in enumerate(held.index):
        if weights is None or held_days >= rebalance_every:
            if known[i] < window:
                continue  # not enough history behind this close yet: no book
            sigma = covariance(estimates[known[i] - window : known[i]])
            weights = optimise(np.zeros(len(sigma)), sigma, None, _MIN_VARIANCE)
            held_days = 0
        out[day] = float(weights @ moves[i])
        # buy and hold until the next rebalance: each weight grows with its own return
        weights = weights * (1.0 + moves[i])
        weights = weights / weights.sum()
        held_days += 1
    if not out:
        raise InputError(
            "closes",
            f"{len(estimation)} one-step returns up to {calendar[-1].date().isoformat()}",
            f"at least {window} returns before a close that has a trading day after it",
            hint="include more history before the first day, or lower window",
        )
    return pd.Series(out, name="minimum variance", dtype=np.float64).rename_axis(held.index.name)


#: The walk-forward's baselines (each with :func:`baseline_weights`).
BASELINES = ("equal_weight", "min_variance", "hrp", "momentum_12_1")
#: Daily returns behind a minimum-variance or HRP decision (one trading year).
BASELINE_WINDOW = 252


def momentum_12_1(closes: pd.DataFrame) -> pd.Series:
    """12-1 momentum per ticker at the last close: the return from 252 to 21 trading days before it."""
    if len(closes) < 253:
        raise InputError("closes", f"{len(closes)} dates", "at least 253 closes for 12-1 momentum")
    return (closes.iloc[-22] / closes.iloc[-253] - 1).dropna()


def baseline_weights(name: str, closes: pd.DataFrame, top_k: int = 5) -> pd.Series:
    """Target weights the baseline ``name`` decides at the last close of ``closes`` (closes up to D only).

    ``equal_weight``: 1/n over the names priced at D. ``min_variance`` (long-only, fully invested, sample
    covariance) and ``hrp`` (hierarchical risk parity): ``skfolio`` fitted on the last
    :data:`BASELINE_WINDOW` daily returns of the names with a full window. ``momentum_12_1``: the ``top_k``
    names by 12-1 momentum, equally weighted. Returns weights indexed by ticker, summing to 1.
    """
    if name not in BASELINES:
        raise InputError("baseline", name, "one of " + ", ".join(BASELINES))
    priced = closes.columns[closes.iloc[-1].notna()]
    if len(priced) == 0:
        raise InputError("closes", "no price on the last date", "a close for at least one ticker")
    if name == "equal_weight":
        return pd.Series(1.0 / len(priced), index=priced, dtype=np.float64)
    if name == "momentum_12_1":
        chosen = momentum_12_1(closes.loc[:, priced]).nlargest(top_k).index
        return pd.Series(1.0 / len(chosen), index=chosen, dtype=np.float64)
    from skfolio import RiskMeasure
    from skfolio.optimization import HierarchicalRiskParity, MeanRisk, ObjectiveFunction

    returns = closes.loc[:, priced].pct_change(fill_method=None).iloc[1:].iloc[-BASELINE_WINDOW:]
    returns = returns.dropna(axis=1, how="any")
    if len(returns) < BASELINE_WINDOW or returns.shape[1] < 2:
        raise InputError(
            "closes",
            f"{len(returns)} returns x {returns.shape[1]} names",
            f"{BASELINE_WINDOW} returns, 2 names",
        )
    model = (
        MeanRisk(objective_function=ObjectiveFunction.MINIMIZE_RISK, risk_measure=RiskMeasure.VARIANCE)
        if name == "min_variance"
        else HierarchicalRiskParity()
    )
    weights = pd.Series(np.clip(model.fit(returns).weights_, 0.0, None), index=returns.columns)
    return weights / weights.sum()


__all__ = [
    "BASELINES",
    "BASELINE_WINDOW",
    "baseline_weights",
    "equal_weight_returns",
    "min_variance_returns",
    "momentum_12_1",
]
