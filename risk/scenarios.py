"""Stress scenarios beyond rates: FX volatility spikes, ESG black-outs, and historical worst windows.

Every function returns rows ``{family, scenario, position, base_value, shocked_value, change}`` (money in the
portfolio currency, a loss is a negative change) with one ``TOTAL`` row per scenario, the shape of the
stress ledger.

* FX: exposures (notional x spot) revalued by Monte Carlo VaR at the stress confidence under volatility
  multipliers (2x, 3x) and with every correlation set to one; the "change" is minus the VaR.
* ESG: a scandal for each name (gap down plus a liquidity haircut on exit) and a sector-wide black-out of
  every name under an ESG threshold; the worst single-name scandal is reported as ``esg_worst_scandal``.
* Historical: the worst 1-day and 10-day windows of the equity book's return in the lake, each asset's
  return over that window applied to today's holdings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from risk.monte_carlo import monte_carlo_var

#: Correlation assumed between FX pairs in the base case (illustrative book, no FX history offline).
FX_BASE_CORRELATION = 0.3


def _rows(family: str, scenario: str, base: pd.Series, shocked: pd.Series) -> list[dict[str, Any]]:
    rows = [
        {
            "family": family,
            "scenario": scenario,
            "position": str(p),
            "base_value": float(base[p]),
            "shocked_value": float(shocked[p]),
            "change": float(shocked[p] - base[p]),
        }
        for p in base.index
    ]
    rows.append(
        {
            "family": family,
            "scenario": scenario,
            "position": "TOTAL",
            "base_value": float(base.sum()),
            "shocked_value": float(shocked.sum()),
            "change": float(shocked.sum() - base.sum()),
        }
    )
    return rows


def fx_vol_spikes(
    fx: pd.DataFrame,
    multipliers: Iterable[float] = (1.0, 2.0, 3.0),
    confidence: float = 0.99,
    paths: int = 50_000,
    seed: int = 20260101,
    horizon_days: int = 1,
) -> list[dict[str, Any]]:
    """FX VaR under volatility multipliers and a correlation-to-one stress (component VaR per currency)."""
    exposure = pd.Series((fx["notional"] * fx["spot_usd"]).to_numpy(), index=fx["currency"], dtype="float64")
    daily_vol = fx["annual_vol"].to_numpy(dtype=np.float64) / np.sqrt(252)
    n = len(exposure)
    cases: list[tuple[str, float, float]] = [
        (f"fx_vol_x{m:g}", float(m), FX_BASE_CORRELATION) for m in multipliers
    ]
    cases.append(("fx_correlation_one", 1.0, 1.0))
    rows: list[dict[str, Any]] = []
    for name, mult, rho in cases:
        if mult <= 0:
            raise InputError("fx multiplier", mult, "a positive number")
        corr = np.full((n, n), rho) + (1 - rho) * np.eye(n)
        vol = daily_vol * mult
        result = monte_carlo_var(
            exposure.to_numpy(),
            corr * np.outer(vol, vol),
            confidence=confidence,
            horizon_days=horizon_days,
            paths=paths,
            seed=seed,
            mode="full",
            tickers=list(exposure.index),
        )
        loss = pd.Series(result.component_var)
        rows += _rows("fx", name, exposure, exposure - loss)
    return rows


def esg_blackouts(
    holdings: pd.Series,
    esg: pd.DataFrame,
    gap: float = -0.30,
    haircut: float = 0.05,
    sector_gap: float = -0.15,
    threshold: float = 0.35,
) -> list[dict[str, Any]]:
    """ESG scandal per name and sector-wide black-outs of names under ``threshold``.

    holdings: money value per ticker. A scandal marks the name down by ``gap`` and a further ``haircut``
    for selling into a one-sided market; a black-out marks every name of a sector whose score is under
    the threshold down by ``sector_gap`` (plus the haircut).
    """
    if not -1 < gap < 0 or not -1 < sector_gap < 0 or not 0 <= haircut < 1:
        raise InputError("esg shocks", (gap, sector_gap, haircut), "gaps in (-1, 0) and a haircut in [0, 1)")
    scores = esg.set_index("ticker")
    missing = sorted(set(holdings.index) - set(scores.index))
    if missing:
        raise InputError("esg table", ",".join(missing), "an ESG score for every held ticker")
    rows: list[dict[str, Any]] = []
    worst: tuple[float, str] | None = None
    for ticker in holdings.index:
        shocked = holdings.copy()
        shocked[ticker] *= (1 + gap) * (1 - haircut)
        rows += _rows("esg", f"esg_scandal_{ticker}", holdings, shocked)
        change = float(shocked.sum() - holdings.sum())
        if worst is None or change < worst[0]:
            worst = (change, ticker)
    low = scores.loc[holdings.index]
    for sector in sorted(low.loc[low["esg_score"] < threshold, "sector"].unique()):
        names = low.index[(low["sector"] == sector) & (low["esg_score"] < threshold)]
        shocked = holdings.copy()
        shocked[names] *= (1 + sector_gap) * (1 - haircut)
        rows += _rows("esg", f"esg_blackout_{sector.replace(' ', '_').lower()}", holdings, shocked)
    if worst is not None:
        shocked = holdings.copy()
        shocked[worst[1]] *= (1 + gap) * (1 - haircut)
        rows += _rows("esg", "esg_worst_scandal", holdings, shocked)
    return rows


def historical_worst(
    holdings: pd.Series, closes: pd.DataFrame, windows: Iterable[int] = (1, 10)
) -> list[dict[str, Any]]:
    """Apply the lake's worst 1-day and 10-day windows (of the held book's return) to today's holdings."""
    prices = closes.loc[:, list(holdings.index)].dropna()
    rows: list[dict[str, Any]] = []
    for days in windows:
        if len(prices) <= days:
            raise InputError(
                "lake prices", f"{len(prices)} dates", f"more than {days} dates for a {days}-day window"
            )
        window_returns = prices / prices.shift(days) - 1
        book = (window_returns * holdings).sum(axis=1, min_count=1).dropna()
        end = book.idxmin()
        start = prices.index[prices.index.get_loc(end) - days]
        shocked = holdings * (1 + window_returns.loc[end])
        rows += _rows("historical", f"worst_{days}d_{start}_{end}", holdings, shocked)
    return rows
