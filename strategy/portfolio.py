"""Mean-variance portfolio construction with a Ledoit-Wolf covariance and hard constraints.

maximise  mu'w - (risk_aversion / 2) w' Sigma w
s.t.      sum(w) = 1 (fully invested); long-only (w >= 0) or gross leverage sum|w| <= max_gross;
          |w_i| <= max_weight; sum|w - w_current| <= max_turnover + cash share (investing idle cash is
          not turnover: a current book summing to c < 1 may move 1 - c more).
Solved with cvxpy (Clarabel). Inputs: ``mu`` (n,) expected returns, ``cov`` (n, n), ``current`` (n,) weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantbridge.errors import InputError


@dataclass(frozen=True)
class Constraints:
    long_only: bool = True
    max_gross: float = 1.5
    max_weight: float = 0.15
    max_turnover: float = 0.5
    risk_aversion: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.max_weight <= 1:
            raise InputError("max_weight", self.max_weight, "a number in (0, 1]")
        if self.max_gross < 1:
            raise InputError("max_gross", self.max_gross, "at least 1 (fully invested)")
        if self.max_turnover <= 0 or self.risk_aversion <= 0:
            raise InputError(
                "max_turnover/risk_aversion", (self.max_turnover, self.risk_aversion), "positive numbers"
            )


def optimise(
    mu: np.ndarray,
    cov: np.ndarray,
    current: np.ndarray | None = None,
    constraints: Constraints = Constraints(),
) -> np.ndarray:
    """Target weights (n,) that satisfy every constraint (InputError when none can)."""
    import cvxpy as cp

    mu = np.asarray(mu, dtype=np.float64)
    n = mu.size
    if cov.shape != (n, n) or not np.isfinite(mu).all() or not np.isfinite(cov).all():
        raise InputError("mu/cov", (mu.shape, cov.shape), "finite mu (n,) and cov (n, n)")
    if n * constraints.max_weight < 1 - 1e-12:
        raise InputError(
            "max_weight", constraints.max_weight, f"at least 1/n = {1 / n:.4f} to be fully invested"
        )
    current = np.full(n, 1.0 / n) if current is None else np.asarray(current, dtype=np.float64)
    # Investing idle cash is not turnover: a book partly in cash (weights summing below 1, e.g. after
    # partial fills) may move by its cash share on top of max_turnover to become fully invested again.
    cash = max(0.0, 1.0 - float(current.sum()))
    w = cp.Variable(n)
    psd = cp.psd_wrap((cov + cov.T) / 2)
    objective = cp.Maximize(mu @ w - constraints.risk_aversion / 2 * cp.quad_form(w, psd))
    rules = [
        cp.sum(w) == 1,
        cp.abs(w) <= constraints.max_weight,
        cp.norm1(w - current) <= constraints.max_turnover + cash,
    ]
    rules.append(w >= 0 if constraints.long_only else cp.norm1(w) <= constraints.max_gross)
    problem = cp.Problem(objective, rules)
    problem.solve(solver=cp.CLARABEL)
    if problem.status not in {"optimal", "optimal_inaccurate"} or w.value is None:
        raise InputError(
            "portfolio constraints",
            problem.status,
            "a feasible problem (loosen max_turnover or max_weight from the current book)",
        )
    weights = np.asarray(w.value, dtype=np.float64)
    if constraints.long_only:
        weights = np.clip(weights, 0.0, None)
    return weights / weights.sum()
