"""Euler allocation of VaR and CVaR to positions from simulated (or historical) per-position losses.

For a book whose loss is the sum of its positions' losses, L = sum_i L_i, the Euler contributions are
the partial derivatives of the risk measure along the positions' sizes (Tasche 1999):

* component CVaR_i = E[L_i | L >= VaR]: the mean loss of position i over the tail paths; they sum to CVaR
  exactly (the tail mean of the total);
* component VaR_i = E[L_i | L = VaR]: the mean loss of position i on the paths whose total is at VaR. A
  sample has (almost) no path exactly there, so the conditional mean is kernel-smoothed (Nadaraya-Watson,
  Gaussian kernel of bandwidth ``h`` around VaR; Epperlein and Smillie 2006). Their sum is the same
  smoother applied to L, VaR up to the kernel's O(h^2) bias, which is reported (``kernel_sum``) and then
  removed by scaling the components to sum to VaR.

``weights`` (one per path, e.g. importance-sampling likelihood ratios) turn every mean and the quantile
into weighted ones. On a normal book both converge to the closed form
e_i (Sigma e)_i / sqrt(e' Sigma e) x z (and x phi(z) / (1 - c) for CVaR) (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantbridge.errors import InputError


@dataclass(frozen=True)
class Contributions:
    """Totals and their Euler allocation (arrays in the order of the positions' columns)."""

    var: float
    cvar: float
    component_var: np.ndarray
    component_cvar: np.ndarray
    #: The kernel-smoothed E[L | L = VaR] before scaling to VaR (its distance to VaR is the kernel's bias).
    kernel_sum: float
    bandwidth: float

    def named(self, names: list[str]) -> dict[str, dict[str, float]]:
        """{"component_var": {name: value}, "component_cvar": {...}} for a JSON answer."""
        if len(names) != len(self.component_var):
            raise InputError("names", len(names), f"{len(self.component_var)} names, one per position")
        return {
            "component_var": dict(zip(names, self.component_var.tolist(), strict=True)),
            "component_cvar": dict(zip(names, self.component_cvar.tolist(), strict=True)),
        }


def weighted_quantile(values: np.ndarray, q: float, weights: np.ndarray | None = None) -> float:
    """The ``q`` quantile of ``values``; without weights np.quantile's default (linear interpolation), with
    weights the smallest value whose cumulative weight share reaches ``q`` (the weighted empirical CDF)."""
    x = np.asarray(values, dtype=np.float64)
    if weights is None:
        return float(np.quantile(x, q))
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order])
    i = int(np.searchsorted(cum, q * cum[-1], side="left"))
    return float(x[order[min(i, len(x) - 1)]])


def default_bandwidth(loss: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Silverman's rule on the total loss, 1.06 sigma n^(-1/5) (``n`` Kish's effective sample with weights).

    A wider rule (e.g. on the n (1 - c) tail paths only) lets the falling tail density pull the smoothed
    mean below VaR by several per cent (measured: 5% at 99% on 200,000 normal paths)."""
    if weights is None:
        sigma = float(np.std(loss))
        n_eff = float(len(loss))
    else:
        w = weights / weights.sum()
        mean = float(w @ loss)
        sigma = math.sqrt(max(float(w @ (loss - mean) ** 2), 0.0))
        n_eff = float(weights.sum() ** 2 / (weights @ weights))  # Kish's effective sample size
    return 1.06 * max(sigma, 1e-300) * max(n_eff, 1.0) ** -0.2


def euler_contributions(
    position_losses: Any,
    confidence: float = 0.99,
    *,
    weights: Any = None,
    bandwidth: float | None = None,
) -> Contributions:
    """VaR, CVaR and their Euler allocation from ``position_losses`` (n_paths, n_positions), losses positive.

    ``weights``: (n_paths,) non-negative path weights (None: equal); ``bandwidth``: the kernel's, in money
    (None: :func:`default_bandwidth`)."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
        raise InputError("confidence", confidence, "a number in [0.5, 1), e.g. 0.99")
    x = np.asarray(position_losses, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise InputError("position_losses", f"shape {x.shape}", "(n_paths >= 2, n_positions >= 1)")
    if not np.isfinite(x).all():
        raise InputError("position_losses", "non-finite values", "finite losses")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (x.shape[0],) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise InputError("weights", f"shape {w.shape}", f"{x.shape[0]} finite non-negative path weights")
    loss = x.sum(axis=1)
    var = weighted_quantile(loss, confidence, w)
    tail = loss >= var
    tail_w = w[tail] if w is not None else np.ones(int(tail.sum()))
    component_cvar = (tail_w @ x[tail]) / tail_w.sum()
    cvar = float(component_cvar.sum())
    h = bandwidth if bandwidth is not None else default_bandwidth(loss, w)
    if not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise InputError("bandwidth", h, "a positive number (money)")
    # Only paths within 6 bandwidths of VaR carry weight (exp(-18) ~ 1.5e-8 of the centre's).
    near = np.abs(loss - var) <= 6 * h
    kernel = np.exp(-0.5 * ((loss[near] - var) / h) ** 2)
    if w is not None:
        kernel = kernel * w[near]
    raw = (kernel @ x[near]) / kernel.sum()
    kernel_sum = float(raw.sum())
    component_var = raw * (var / kernel_sum) if kernel_sum != 0 else raw
    return Contributions(
        var=float(var),
        cvar=cvar,
        component_var=component_var,
        component_cvar=component_cvar,
        kernel_sum=kernel_sum,
        bandwidth=float(h),
    )


def by_group(components: dict[str, float], groups: dict[str, str]) -> dict[str, float]:
    """Sum per-position components into groups (e.g. asset classes); every position must have a group."""
    missing = sorted(set(components) - set(groups))
    if missing:
        raise InputError("groups", ",".join(missing), "a group for every position")
    out: dict[str, float] = {}
    for name, value in components.items():
        out[groups[name]] = out.get(groups[name], 0.0) + value
    return out
