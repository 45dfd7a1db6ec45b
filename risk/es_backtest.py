"""Expected Shortfall backtests of a forecast history: Acerbi-Szekely Z2 and McNeil-Frey exceedance residuals.

Conventions: ``losses`` (n_days,) realised losses (positive is a loss), ``var`` and ``es`` (n_days,) the
forecasts made the day before, in the same money; ``alpha`` = 1 - confidence.

* **Acerbi-Szekely Z2** (Acerbi and Szekely 2014, "Backtesting Expected Shortfall"):
  ``Z2 = 1 - sum_t I_t L_t / (T alpha ES_t)`` with ``I_t = 1[L_t > VaR_t]``. Under the null (each day's
  loss drawn from that day's forecast distribution) E[Z2] = 0; Z2 < 0 says the tail losses are larger
  than the ES forecasts (ES understated). The p-value is simulated under the null from each day's own
  forecast distribution, stored as its largest losses (:class:`TailAtoms`), so it holds for any model
  (empirical scenarios or closed form), not only a normal one.
* **McNeil-Frey** (McNeil and Frey 2000): on exception days the residuals ``(L_t - ES_t) / sigma_t``
  (``sigma_t`` the forecast volatility) have mean zero under the null; a one-sided bootstrap of the
  t-statistic of their mean (Efron and Tibshirani's test with the residuals centred) rejects when the
  tail losses exceed the ES on average.

Both simulations are seeded: the same history gives the same p-values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from quantbridge.errors import InputError

#: Equally likely atoms standing for a closed-form (continuous) forecast distribution in the Z2 simulation.
CLOSED_FORM_ATOMS = 10_000
SIMULATIONS = 5_000
SEED = 20_150_101


@dataclass(frozen=True)
class TailAtoms:
    """Each day's forecast loss distribution as ``total`` equally likely atoms, of which ``largest`` holds
    the biggest (n_days, k), descending; the others are below the day's VaR.

    Historical-family models: the window's scenario losses (``total`` = scenarios). Closed forms: the
    distribution cut into :data:`CLOSED_FORM_ATOMS` slices of equal probability, each atom its slice's mean
    loss, so the atoms above the VaR average to the closed-form ES exactly.
    """

    largest: np.ndarray
    total: np.ndarray

    def __post_init__(self) -> None:
        if self.largest.ndim != 2 or self.total.shape != (len(self.largest),):
            raise InputError(
                "tail atoms", f"shapes {self.largest.shape}, {self.total.shape}", "(n_days, k) and (n_days,)"
            )
        if (self.total < self.largest.shape[1]).any():
            raise InputError("tail atoms total", int(self.total.min()), f">= k={self.largest.shape[1]}")


def tail_count(scenarios: int, confidence: float) -> int:
    """How many of the largest atoms a day keeps: every atom that can exceed the VaR, plus one."""
    return min(scenarios, math.floor(scenarios * (1 - confidence)) + 2)


def largest_losses(loss: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest of ``loss`` (n,), descending."""
    top = np.partition(loss, len(loss) - k)[len(loss) - k :]
    return np.sort(top)[::-1]


@lru_cache(maxsize=16)
def _unit_atoms(family: str, confidence: float, dof: float) -> np.ndarray:
    """Atom j: the mean loss of its slice (1 - (j+1)/N, 1 - j/N] of probability, exact (no midpoint rule)."""
    from scipy import stats

    k = tail_count(CLOSED_FORM_ATOMS, confidence)
    edges = 1 - np.arange(1, k + 1) / CLOSED_FORM_ATOMS  # lower probability edge of each slice
    if family == "student_t":
        x = stats.t.ppf(edges, dof)
        # x f(x) integrates to -(dof + x^2) / (dof - 1) f(x) for the t density f
        partial = -(dof + x**2) / (dof - 1) * stats.t.pdf(x, dof)
        scale = math.sqrt((dof - 2) / dof)
    else:
        partial = -stats.norm.pdf(stats.norm.ppf(edges))  # x phi(x) integrates to -phi(x)
        scale = 1.0
    partial = np.concatenate([[0.0], partial])  # the integral's value at +infinity
    return np.asarray((partial[:-1] - partial[1:]) * CLOSED_FORM_ATOMS * scale)


def closed_form_atoms(family: str, confidence: float, dof: float, volatility: np.ndarray) -> TailAtoms:
    """Tail atoms of zero-mean normal (``family`` "normal") or unit-variance Student-t losses scaled by
    ``volatility`` (n_days,)."""
    vol = np.asarray(volatility, dtype=np.float64)
    unit = _unit_atoms(family, confidence, dof)
    return TailAtoms(vol[:, None] * unit[None, :], np.full(len(vol), CLOSED_FORM_ATOMS))


def _checked(*arrays: Any) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    n = len(out[0])
    if n == 0 or any(a.shape != (n,) for a in out) or not all(np.isfinite(a).all() for a in out):
        raise InputError("losses/forecasts", [a.shape for a in out], "finite 1-D arrays of one length >= 1")
    return out


def z2_statistic(losses: Any, var: Any, es: Any, alpha: float) -> float:
    """Acerbi-Szekely Z2 = 1 - sum(I_t L_t / ES_t) / (T alpha): 0 expected, negative if ES is understated."""
    loss, v, e = _checked(losses, var, es)
    if not 0 < alpha < 0.5:
        raise InputError("alpha", alpha, "a tail probability in (0, 0.5), e.g. 0.01")
    hits = loss > v
    return 1.0 - float(np.sum(loss[hits] / e[hits])) / (len(loss) * alpha)


def z2_test(
    losses: Any,
    var: Any,
    es: Any,
    atoms: TailAtoms,
    alpha: float,
    *,
    simulations: int = SIMULATIONS,
    seed: int = SEED,
) -> tuple[float, float]:
    """Z2 and its one-sided p-value P(Z2_null <= Z2) simulated from each day's forecast distribution.

    Each simulated day draws one of its ``atoms.total`` equally likely atoms; a draw outside the stored
    largest ones is below the VaR and adds nothing. The p-value counts the observed history as one of
    the draws ((1 + #{Z2_null <= Z2}) / (1 + simulations)), so it is never 0.
    """
    z2 = z2_statistic(losses, var, es, alpha)
    _, v, e = _checked(losses, var, es)
    if len(atoms.largest) != len(v):
        raise InputError("atoms", len(atoms.largest), f"one row per day ({len(v)})")
    k = atoms.largest.shape[1]
    # a stored atom adds atom / ES_t to the sum when it exceeds the day's VaR, else nothing
    gain = np.where(atoms.largest > v[:, None], atoms.largest / e[:, None], 0.0)
    total = atoms.total.astype(np.float64)
    rng = np.random.default_rng(seed)
    sums = np.zeros(simulations)
    chunk = max(1, 4_000_000 // len(v))
    for start in range(0, simulations, chunk):
        n = min(chunk, simulations - start)
        draw = rng.random((n, len(v))) * total  # atom index, 0 the largest
        sim, day = np.nonzero(draw < k)  # ~ 1 - c of the draws: the rest is below the VaR
        sums[start : start + n] = np.bincount(sim, gain[day, draw[sim, day].astype(np.int64)], minlength=n)
    null = 1.0 - sums / (len(v) * alpha)
    return z2, float((1 + np.sum(null <= z2)) / (1 + simulations))


def mcneil_frey_test(
    losses: Any,
    var: Any,
    es: Any,
    volatility: Any,
    *,
    simulations: int = SIMULATIONS,
    seed: int = SEED,
) -> dict[str, float]:
    """McNeil-Frey exceedance residuals (L - ES) / sigma on exception days, and the one-sided bootstrap
    p-value of "their mean is zero" against "positive" (ES understated).

    Returns ``exceptions``, ``mean_residual``, ``t`` (mean over its standard error) and ``p``; with fewer
    than two exceptions there is nothing to test and ``p`` is 1.
    """
    loss, v, e, s = _checked(losses, var, es, volatility)
    hits = loss > v
    if (s[hits] <= 0).any():
        raise InputError(
            "volatility", float(s[hits].min()), "a positive forecast volatility on exception days"
        )
    res = (loss[hits] - e[hits]) / s[hits]
    n = len(res)
    if n < 2:
        return {"exceptions": n, "mean_residual": float(res.mean()) if n else 0.0, "t": 0.0, "p": 1.0}
    sd = float(res.std(ddof=1))
    t = float(res.mean()) / (sd / math.sqrt(n)) if sd > 0 else math.copysign(math.inf, res.mean())
    centred = res - res.mean()
    rng = np.random.default_rng(seed)
    draws = centred[rng.integers(0, n, size=(simulations, n))]
    sd_b = draws.std(axis=1, ddof=1)
    t_b = np.divide(draws.mean(axis=1), sd_b / math.sqrt(n), out=np.zeros(simulations), where=sd_b > 0)
    p = float((1 + np.sum(t_b >= t)) / (1 + simulations))
    return {"exceptions": n, "mean_residual": float(res.mean()), "t": t, "p": p}
