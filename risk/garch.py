"""GJR-GARCH(1,1) volatility filter of a book's daily P&L, for filtered historical simulation.

The model, on a zero-mean P&L series x_t scaled to unit mean square over the window (m = mean(x^2)):

    sigma2_t = omega m + (alpha + gamma 1[x_{t-1} < 0]) x_{t-1}^2 + beta sigma2_{t-1},   sigma2_0 = m

fitted by maximum likelihood with Student-t innovations (``arch``; the t only makes the fit robust to
fat tails: the filtered scenarios keep the empirical standardised residuals). ``omega`` is relative to
the window's mean square, so one parameter set filters any window of any book size (the backtest refits
every few weeks and filters daily on fixed parameters).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from quantbridge.errors import InputError

#: Floor of a variance, so a constant series has a finite volatility ratio (1).
_TINY = 1e-300


class GarchParams(NamedTuple):
    """GJR-GARCH(1,1) parameters; ``omega`` is relative to the filtered window's mean square."""

    omega: float
    alpha: float
    gamma: float
    beta: float


def check_params(params: tuple[float, ...]) -> GarchParams:
    """``params`` as :class:`GarchParams`, or an :class:`InputError` naming them."""
    values = tuple(float(v) for v in params)
    if (
        len(values) != 4
        or not all(math.isfinite(v) for v in values)
        or min(values[0], values[1], values[1] + values[2], values[3]) < 0
        or values[3] >= 1
    ):
        raise InputError(
            "garch",
            params,
            "(omega, alpha, gamma, beta): finite, omega, alpha, alpha + gamma >= 0, 0 <= beta < 1",
        )
    return GarchParams(*values)


def fit_gjr(pnl: np.ndarray) -> GarchParams:
    """Maximum-likelihood GJR-GARCH(1,1) with Student-t innovations on ``pnl`` (n_obs,), oldest first.

    Deterministic (``arch``'s starting-value grid and SLSQP). A series with no variance gets (0, 0, 0, 0):
    its filter is the identity.
    """
    from arch.univariate import GARCH, StudentsT, ZeroMean

    x = np.asarray(pnl, dtype=np.float64)
    if x.ndim != 1 or len(x) < 20 or not np.isfinite(x).all():
        raise InputError("pnl", f"shape {x.shape}", "a finite 1-D series of at least 20 daily P&Ls")
    mean_square = float(x @ x) / len(x)
    if mean_square <= _TINY:
        return GarchParams(0.0, 0.0, 0.0, 0.0)
    model = ZeroMean(
        x / math.sqrt(mean_square), volatility=GARCH(1, 1, 1), distribution=StudentsT(), rescale=False
    )
    with warnings.catch_warnings():
        # a fit that stops on its iteration limit still holds its best (constrained) point: use it
        warnings.simplefilter("ignore")
        result = model.fit(disp="off", show_warning=False)
    p = result.params
    omega, alpha, beta = (max(float(p[k]), 0.0) for k in ("omega", "alpha[1]", "beta[1]"))
    # the optimiser meets its bounds to within ~1e-7: clip, so the parameters pass check_params
    return GarchParams(omega, alpha, max(float(p["gamma[1]"]), -alpha), min(beta, 1 - 1e-9))


def gjr_variance(pnl: np.ndarray, params: GarchParams) -> np.ndarray:
    """Variance forecasts (n_obs + 1,) of ``pnl`` (n_obs,): row t from observations before t, like
    :func:`risk.covariance.ewma_variance`; the last row is tomorrow's. In the units of ``pnl``."""
    from scipy.signal import lfilter

    x = np.asarray(pnl, dtype=np.float64)
    mean_square = float(x @ x) / len(x)
    omega, alpha, gamma, beta = params
    shock = omega * mean_square + (alpha + gamma * (x < 0)) * x * x
    out = np.empty(len(x) + 1)
    out[0] = mean_square
    # sigma2[t+1] = beta sigma2[t] + shock[t]: a first-order linear filter once the shocks are known
    out[1:] = lfilter([1.0], [1.0, -beta], shock, zi=[beta * mean_square])[0]
    return np.maximum(out, _TINY)
