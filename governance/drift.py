"""Distribution drift between a reference sample and a recent one: PSI and the KS two-sample test.

The population stability index compares the shares of two samples in the same bins:
``PSI = sum_i (a_i - e_i) ln(a_i / e_i)`` with ``e_i`` the reference (training) shares and ``a_i`` the
recent shares. Bins are cut at the reference sample's quantiles (equal-share bins for the reference), the
outer bins are open-ended (a recent value beyond the training range still counts) and every share is
floored at ``epsilon`` so an empty bin gives a large but finite term. Usual reading: < 0.10 stable, 0.10 to
0.25 moderate shift, > 0.25 significant shift.

With few recent observations PSI is biased upward: for ``k`` bins and no drift its expectation is about
``(k - 1) (1/n + 1/m)`` (n, m the two sample sizes), so 20 recent days in 10 bins read about 0.45 by chance
alone. That is why a name is judged with fewer bins than the pooled universe and only together with the
KS p-value (see docs/governance.md, "Governance monitor").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from quantbridge.errors import InputError

BANDS = ("stable", "moderate", "significant")


@dataclass(frozen=True)
class Drift:
    """PSI and KS of one recent sample against its reference. ``n_reference``, ``n_recent``: finite
    observations used; ``ks_p``: two-sided p-value of the two-sample Kolmogorov-Smirnov test."""

    psi: float
    ks_statistic: float
    ks_p: float
    n_reference: int
    n_recent: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "psi": round(self.psi, 6),
            "ks_statistic": round(self.ks_statistic, 6),
            "ks_p": float(f"{self.ks_p:.6g}"),
            "n_reference": self.n_reference,
            "n_recent": self.n_recent,
        }


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Interior cut points of ``bins`` equal-share bins of ``reference`` (finite values), ascending and
    distinct (ties in the reference merge bins, so a feature with few values gets fewer bins)."""
    if bins < 2:
        raise InputError("bins", bins, "an integer >= 2")
    x = np.asarray(reference, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise InputError("reference", "no finite values", "at least one finite observation")
    return np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def shares(values: np.ndarray, edges: np.ndarray, epsilon: float) -> np.ndarray:
    """Share of the finite ``values`` in each of the ``len(edges) + 1`` bins cut at ``edges`` (a value equal
    to an edge goes to the bin above), each floored at ``epsilon``."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    return np.maximum(counts / max(x.size, 1), epsilon)


def psi(reference: np.ndarray, recent: np.ndarray, bins: int = 10, epsilon: float = 1e-4) -> float:
    """Population stability index of ``recent`` against ``reference`` in ``bins`` quantile bins of the
    reference, shares floored at ``epsilon`` (> 0)."""
    if not 0 < epsilon < 1:
        raise InputError("epsilon", epsilon, "a share in (0, 1)")
    edges = quantile_edges(reference, bins)
    e, a = shares(reference, edges, epsilon), shares(recent, edges, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def drift(reference: np.ndarray, recent: np.ndarray, bins: int = 10, epsilon: float = 1e-4) -> Drift:
    """PSI and the KS two-sample test of ``recent`` against ``reference`` (NaN and inf dropped).

    Raises InputError naming the sample when either holds no finite value."""
    ref = np.asarray(reference, dtype=np.float64)
    new = np.asarray(recent, dtype=np.float64)
    ref, new = ref[np.isfinite(ref)], new[np.isfinite(new)]
    for name, sample in (("reference", ref), ("recent", new)):
        if sample.size == 0:
            raise InputError(name, "no finite values", "at least one finite observation")
    ks = stats.ks_2samp(ref, new)
    return Drift(
        psi=psi(ref, new, bins, epsilon),
        ks_statistic=float(ks.statistic),
        ks_p=float(ks.pvalue),
        n_reference=int(ref.size),
        n_recent=int(new.size),
    )


def band(value: float, moderate: float, significant: float) -> str:
    """``stable`` below ``moderate``, ``moderate`` up to ``significant``, ``significant`` above it."""
    return BANDS[0] if value < moderate else BANDS[1] if value <= significant else BANDS[2]
