"""Risk factors of the rates and FX legs of the consolidated book, and their stated joint distribution.

The bundled reference tables hold one snapshot each (one par curve, one FX table with an annual volatility
per currency), so nothing in the lake can be estimated for these factors: the volatilities and correlations
below are assumptions, stated here, in ``qb var --json`` (``factors``) and in docs/risk.md.

Factors, drawn jointly once per path, one day (scaled by sqrt(horizon days), as the equity VaR):

* **rates**: the change of the USD zero rate (continuously compounded, decimal) at each pillar of the
  bootstrapped curve (:func:`risk.irrbb.bootstrap_par_curve`); daily standard deviation :data:`RATE_VOL_BP`
  (interpolated linearly in tenor, flat outside the table), correlation between tenors t_i and t_j
  exp(-:data:`RATE_CORRELATION_DECAY` x |ln(t_i / t_j)|) (tenors under :data:`RATE_MIN_TENOR` read as it);
* **fx**: the log-return of each currency's USD spot; daily standard deviation the table's annual_vol /
  sqrt(252), pair correlation :data:`FX_PAIR_CORRELATION` (the stress lane's base case,
  :data:`risk.scenarios.FX_BASE_CORRELATION`);
* **cross**: rates with FX :data:`RATES_FX_CORRELATION`; equities with rates and FX
  :data:`EQUITY_CROSS_CORRELATION` (the equity scenarios are drawn independently of the rate and FX draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from risk.covariance import psd_root
from risk.scenarios import FX_BASE_CORRELATION

#: Daily standard deviation (basis points) of USD zero-rate changes by tenor (years). Round numbers of the
#: size of the daily moves of US Treasury zero rates over 2000-2022: smaller at the policy-anchored short
#: end, largest around 2-5 years, a little lower at the long end. An assumption, not an estimate.
RATE_VOL_BP: tuple[tuple[float, float], ...] = (
    (0.25, 4.0),
    (0.5, 4.5),
    (1.0, 5.5),
    (2.0, 7.0),
    (3.0, 7.5),
    (5.0, 7.5),
    (7.0, 7.0),
    (10.0, 6.5),
    (20.0, 6.0),
    (30.0, 6.0),
)
#: Decay of the correlation between two tenors' daily changes in the log of their ratio: 0.09 gives about
#: 0.87 for 2y-10y, 0.91 for 10y-30y and 0.72 for 3m-10y, the order of the historical US figures.
RATE_CORRELATION_DECAY = 0.09
#: Tenors below this (the curve's pillar at the valuation date, t = 0) read as this many years.
RATE_MIN_TENOR = 1.0 / 12.0
#: Correlation between two currencies' spot log-returns against USD (the FX stress lane's base case).
FX_PAIR_CORRELATION = FX_BASE_CORRELATION
#: Correlation between rate and FX factors: none stated, so none assumed.
RATES_FX_CORRELATION = 0.0
#: Correlation between equity returns and the rate/FX factors. The stock-bond correlation changes sign
#: between regimes (positive before 2000 and in 2022, negative 2000-2021), and the lake holds no rate or FX
#: history to estimate it on the equity window: 0, i.e. independent draws.
EQUITY_CROSS_CORRELATION = 0.0
TRADING_DAYS = 252
SOURCE = (
    "stated assumptions (risk/factors.py, docs/risk.md 'Consolidated book'): the bundled curve and FX "
    "tables hold one snapshot, no history to estimate from"
)


def rate_vols(times: np.ndarray) -> np.ndarray:
    """Daily standard deviation (decimal) of the zero-rate change at pillar ``times`` (years)."""
    tenors, bp = (np.array(x, dtype=np.float64) for x in zip(*RATE_VOL_BP, strict=True))
    return np.interp(np.maximum(times, RATE_MIN_TENOR), tenors, bp) / 10_000


def rate_correlation(times: np.ndarray) -> np.ndarray:
    """exp(-decay |ln(t_i / t_j)|) between pillar ``times`` (years)."""
    logs = np.log(np.maximum(np.asarray(times, dtype=np.float64), RATE_MIN_TENOR))
    return np.exp(-RATE_CORRELATION_DECAY * np.abs(logs[:, None] - logs[None, :]))


@dataclass(frozen=True)
class FactorModel:
    """The joint normal distribution of one day's rate and FX factor moves.

    ``names``: rate factors ``rate:<tenor>y`` (one per pillar) then ``fx:<currency>``; ``vols`` daily
    standard deviations; ``correlation`` their correlation; ``root`` a matrix square root of the covariance
    (rows: factors), so that Z @ root.T has that covariance.
    """

    names: tuple[str, ...]
    n_rates: int
    vols: np.ndarray
    correlation: np.ndarray
    root: np.ndarray

    @classmethod
    def build(cls, pillar_times: np.ndarray | None, fx: pd.DataFrame | None) -> FactorModel:
        """From the curve's pillar times (None: no rate factors) and the FX table (None/empty: no FX)."""
        times = np.asarray(pillar_times if pillar_times is not None else [], dtype=np.float64)
        fx_vols = np.zeros(0)
        currencies: list[str] = []
        if fx is not None and len(fx):
            annual = fx["annual_vol"].to_numpy(dtype=np.float64)
            bad = ~(np.isfinite(annual) & (annual > 0))
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(
                    f"fx {fx['currency'].iloc[i]} annual_vol", float(annual[i]), "a positive number"
                )
            fx_vols = annual / math.sqrt(TRADING_DAYS)
            currencies = [str(c) for c in fx["currency"]]
        n_r, n_f = len(times), len(currencies)
        corr = np.eye(n_r + n_f)
        corr[:n_r, :n_r] = rate_correlation(times)
        corr[n_r:, n_r:] = FX_PAIR_CORRELATION + (1 - FX_PAIR_CORRELATION) * np.eye(n_f)
        corr[:n_r, n_r:] = RATES_FX_CORRELATION
        corr[n_r:, :n_r] = RATES_FX_CORRELATION
        vols = np.concatenate([rate_vols(times) if n_r else np.zeros(0), fx_vols])
        cov = corr * np.outer(vols, vols)
        root, values = psd_root(cov)  # eigen-decomposition: robust where two pillars nearly coincide
        if len(values) and values.min() < -1e-12 * max(values.max(), 1e-300):
            raise InputError("factor correlation", float(values.min()), "a positive semi-definite matrix")
        names = tuple(f"rate:{t:.2f}y" for t in times) + tuple(f"fx:{c}" for c in currencies)
        return cls(names, n_r, vols, corr, root)

    def draw(self, rng: np.random.Generator, paths: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(rate shocks (paths, n_pillars), FX log-returns (paths, n_fx)), one joint normal draw per path,
        standard deviations times ``scale`` (sqrt of the horizon in days)."""
        k = len(self.names)
        if k == 0:
            return np.zeros((paths, 0)), np.zeros((paths, 0))
        moves = rng.standard_normal((paths, k)) @ (self.root.T * scale)
        return moves[:, : self.n_rates], moves[:, self.n_rates :]

    def describe(self) -> dict[str, Any]:
        """The assumptions, for ``qb var --json`` and the sensor's logs."""
        return {
            "source": SOURCE,
            "rate_vol_bp_by_tenor": {f"{t:g}y": bp for t, bp in RATE_VOL_BP},
            "rate_correlation": f"exp(-{RATE_CORRELATION_DECAY} |ln(t_i/t_j)|)",
            "fx_vol": "annual_vol / sqrt(252) from the fx table",
            "fx_pair_correlation": FX_PAIR_CORRELATION,
            "rates_fx_correlation": RATES_FX_CORRELATION,
            "equity_cross_correlation": EQUITY_CROSS_CORRELATION,
            "factors": len(self.names),
        }
