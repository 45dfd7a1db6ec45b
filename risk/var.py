"""Value at Risk and Conditional VaR (expected shortfall) of a linear portfolio.

Conventions: ``exposures`` (n_assets,) money held in each asset (quantity x price, portfolio currency);
``cov`` (n_assets, n_assets) covariance of daily simple returns; losses are positive numbers; the
horizon scales one-day figures by sqrt(``horizon_days``) (i.i.d. returns).

Forecasts (:class:`VarSpec`, :func:`forecast`, :func:`window_figures`): the next-day VaR/CVaR of every
model from a window of daily returns, in closed form (normal, Student-t) or on the window's scenarios
(historical, filtered historical). This is the one formula of the VaR sensor, ``qb var``, the nightly
report and the backtest (:mod:`risk.portfolio_var`, :mod:`risk.backtest`).

Monte Carlo (:func:`monte_carlo_var`, used by the FX stress and ``make bench``; NumPy or CuPy), two modes
on the same random draws:

* ``shortcut``: portfolio P&L = (w'L) Z, exact for linear positions (L the Cholesky factor): one
  matrix-vector product per batch of paths, no per-asset paths kept.
* ``full``: per-asset paths X = L Z, P&L = w'X; each position's mean loss over the tail paths gives
  component CVaRs that sum to CVaR, and component VaRs (the same shares scaled to VaR) that sum to VaR.
  One pass: each batch keeps its worst paths' per-position losses (a batch holding more of the global
  tail than it kept is redrawn from its seed).

Innovations are normal or Student-t (multivariate t with ``dof`` > 2, scaled to the same covariance); for
a linear book they converge to the closed forms of the forecasts (tested). Batches draw from
``default_rng([seed, batch])``, so every figure is reproducible for a seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from quantbridge.errors import InputError
from risk.backend import Backend, array_module
from risk.covariance import covariance, ewma_variance

MODELS = ("normal", "student_t")
MODES = ("shortcut", "full")
#: Full mode keeps this many times the expected tail share of each batch's worst paths.
_TAIL_KEEP_FACTOR = 3.0
#: Floor of an EWMA variance (a constant price has none), so a standardised return stays finite.
_TINY = 1e-300


@dataclass(frozen=True)
class VarResult:
    """VaR/CVaR in the portfolio currency; ``volatility`` is the P&L standard deviation over the horizon."""

    var: float
    cvar: float
    volatility: float
    confidence: float
    horizon_days: int
    paths: int
    model: str
    backend: str
    seconds: float
    mode: str = "closed_form"
    dtype: str = "float64"
    #: Daily returns behind the forecast (0 for Monte Carlo on a given covariance).
    observations: int = 0
    component_var: dict[str, float] = field(default_factory=dict)
    component_cvar: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "var",
                "cvar",
                "volatility",
                "confidence",
                "horizon_days",
                "paths",
                "model",
                "backend",
                "seconds",
                "mode",
                "dtype",
                "observations",
            )
        }
        if self.component_var:
            out["component_var"] = self.component_var
            out["component_cvar"] = self.component_cvar
        return out


def check_inputs(
    exposures: Any, cov: Any, confidence: float, horizon_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return float64 copies; every error names the field and the value."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
        raise InputError("confidence", confidence, "a number in [0.5, 1), e.g. 0.99")
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, np.integer)) or horizon_days < 1:
        raise InputError("horizon_days", horizon_days, "an integer >= 1")
    w = np.asarray(exposures, dtype=np.float64)
    sigma = np.asarray(cov, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise InputError("exposures", f"shape {w.shape}", "a non-empty 1-D vector")
    if not np.isfinite(w).all():
        raise InputError("exposures", w.tolist(), "finite numbers (no NaN or infinity)")
    if sigma.shape != (w.size, w.size):
        raise InputError("cov", f"shape {sigma.shape}", f"shape ({w.size}, {w.size}) to match the exposures")
    if not np.isfinite(sigma).all() or not np.allclose(sigma, sigma.T, rtol=1e-8, atol=1e-14):
        raise InputError("cov", "non-finite or asymmetric", "a finite symmetric covariance matrix")
    return w, sigma


def _cholesky(sigma: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        # Positive semi-definite (e.g. duplicated assets): a tiny ridge keeps the factor real.
        ridge = 1e-12 * max(float(np.trace(sigma)) / len(sigma), 1e-300)
        try:
            return np.linalg.cholesky(sigma + ridge * np.eye(len(sigma)))
        except np.linalg.LinAlgError:
            raise InputError("cov", "not positive semi-definite", "a valid covariance matrix") from None


def normal_var(exposures: Any, cov: Any, confidence: float = 0.99, horizon_days: int = 1) -> VarResult:
    """Closed-form (delta-normal) VaR and CVaR: the reference the Monte Carlo engine must agree with."""
    from scipy.stats import norm

    t0 = time.perf_counter()
    w, sigma = check_inputs(exposures, cov, confidence, horizon_days)
    vol = math.sqrt(max(float(w @ sigma @ w), 0.0) * horizon_days)
    z = norm.ppf(confidence)
    return VarResult(
        var=float(vol * z),
        cvar=float(vol * norm.pdf(z) / (1 - confidence)),
        volatility=vol,
        confidence=confidence,
        horizon_days=horizon_days,
        paths=0,
        model="normal",
        backend="numpy",
        seconds=time.perf_counter() - t0,
    )


def _batch_pnl(
    backend: Backend,
    seed: int,
    batch: int,
    size: int,
    factor: Any,
    model: str,
    dof: float,
    dtype: str,
    full: bool,
    weights: Any,
) -> tuple[Any, Any | None]:
    """P&L of one batch of paths, and the per-asset paths when ``full``."""
    xp = backend.xp
    rng = backend.generator([seed, batch] if backend.name == "numpy" else seed * 1_000_003 + batch)
    z = rng.standard_normal((factor.shape[-1], size), dtype=dtype)
    if full:
        paths = factor @ z  # (n_assets, size) per-asset returns
        pnl = weights @ paths
    else:
        paths = None
        pnl = factor @ z  # factor is w'L, (n_assets,)
    if model == "student_t":
        scale = xp.sqrt((dof - 2.0) / rng.chisquare(dof, size)).astype(dtype)
        pnl = pnl * scale
        if full:
            paths = paths * scale
    return pnl, paths


def monte_carlo_var(
    exposures: Any,
    cov: Any,
    *,
    confidence: float = 0.99,
    horizon_days: int = 1,
    paths: int = 100_000,
    model: str = "normal",
    dof: float = 5.0,
    seed: int = 20260101,
    mode: str = "shortcut",
    dtype: str = "float64",
    tickers: Sequence[str] | None = None,
    backend: Backend | None = None,
    batch_size: int = 200_000,
) -> VarResult:
    """Monte Carlo VaR/CVaR on correlated paths (see the module docstring for the two modes)."""
    t0 = time.perf_counter()
    w, sigma = check_inputs(exposures, cov, confidence, horizon_days)
    if model not in MODELS:
        raise InputError("model", model, "one of " + ", ".join(MODELS))
    if mode not in MODES:
        raise InputError("mode", mode, "one of " + ", ".join(MODES))
    if dtype not in {"float32", "float64"}:
        raise InputError("dtype", dtype, "float32 or float64")
    if isinstance(paths, bool) or not isinstance(paths, (int, np.integer)) or paths < 100:
        raise InputError("paths", paths, "an integer >= 100")
    if model == "student_t" and not dof > 2:
        raise InputError("dof", dof, "a number > 2 (the variance must exist)")
    if tickers is not None and len(tickers) != w.size:
        raise InputError("tickers", len(tickers), f"{w.size} names, one per exposure")
    backend = backend or array_module("auto")
    xp = backend.xp
    chol = _cholesky(sigma * horizon_days)
    full = mode == "full"
    weights = xp.asarray(w, dtype=dtype)
    factor = xp.asarray(chol, dtype=dtype) if full else xp.asarray(w @ chol, dtype=dtype)
    # Batches of at most ~20M normals keep memory bounded (160 MB in float64) whatever the book size.
    step = max(1_000, min(batch_size, 20_000_000 // w.size))
    sizes = [min(step, paths - start) for start in range(0, paths, step)]
    # Full mode keeps, per batch, the per-position losses of its worst ``keep`` paths: the global tail
    # (the worst (1 - c) of all paths) is almost surely among them, and a batch where it is not is
    # drawn again below, so the components are exact in one pass (not two).
    keep_frac = min(1.0, _TAIL_KEEP_FACTOR * (1 - confidence) + 0.002)
    pnls, kept = [], []
    for b, n in enumerate(sizes):
        batch_pnl, asset_paths = _batch_pnl(backend, seed, b, n, factor, model, dof, dtype, full, weights)
        pnls.append(backend.to_numpy(batch_pnl).astype(np.float64))
        if full:
            assert asset_paths is not None  # _batch_pnl returns the per-asset paths when full
            k = min(n, max(1, math.ceil(keep_frac * n)))
            worst = np.argpartition(pnls[-1], k - 1)[:k]
            contrib = -(weights[:, None] * asset_paths[:, xp.asarray(worst)])
            kept.append((worst, backend.to_numpy(contrib).astype(np.float64)))
    pnl = np.concatenate(pnls)
    loss = -pnl
    var = float(np.quantile(loss, confidence))
    tail = loss >= var
    cvar = float(loss[tail].mean())
    component_var: dict[str, float] = {}
    component_cvar: dict[str, float] = {}
    if full:
        names = list(tickers) if tickers is not None else [str(i) for i in range(w.size)]
        tail_loss = np.zeros(w.size)
        offset = 0
        for b, (n, (worst, contrib)) in enumerate(zip(sizes, kept, strict=True)):
            batch_tail = tail[offset : offset + n]
            if batch_tail.sum() <= len(worst):  # every tail path of the batch is among its kept worst
                tail_loss += contrib[:, batch_tail[worst]].sum(axis=1)
            else:  # rare: draw the batch again (same seed) and take its whole tail
                _, asset_paths = _batch_pnl(backend, seed, b, n, factor, model, dof, dtype, True, weights)
                assert asset_paths is not None  # full=True
                mask = xp.asarray(batch_tail)
                tail_loss += backend.to_numpy(-(weights[:, None] * asset_paths[:, mask]).sum(axis=1)).astype(
                    np.float64
                )
            offset += n
        contrib_total = tail_loss / tail.sum()  # sums to CVaR (up to float rounding of the batches)
        contrib_total *= cvar / contrib_total.sum()
        component_cvar = dict(zip(names, contrib_total.tolist(), strict=True))
        component_var = dict(zip(names, (contrib_total * var / cvar).tolist(), strict=True))
    return VarResult(
        var=var,
        cvar=cvar,
        volatility=float(pnl.std()),
        confidence=confidence,
        horizon_days=int(horizon_days),
        paths=int(paths),
        model=model,
        backend=backend.name,
        seconds=time.perf_counter() - t0,
        mode=mode,
        dtype=dtype,
        component_var=component_var,
        component_cvar=component_cvar,
    )


VAR_MODELS = (
    "normal",
    "student_t",
    "ewma",
    "historical",
    "filtered_historical",
    "filtered_historical_portfolio",
)
FORECAST_MODES = ("totals", "full")
#: Fewest daily returns behind one forecast.
MIN_RETURNS = 20


@dataclass(frozen=True)
class VarSpec:
    """A VaR model and its parameters: what turns a window of daily returns into the next day's VaR.

    ``model``: ``normal`` / ``student_t`` (Ledoit-Wolf covariance of the window, closed forms),
    ``ewma`` (normal on the EWMA variance of the book's P&L), ``historical`` (the book's P&L on the
    window's returns), ``filtered_historical`` (each asset's returns divided by its EWMA volatility at the
    time, times its volatility for tomorrow), ``filtered_historical_portfolio`` (the same filter on the
    book's P&L). ``window``: daily returns behind one forecast; ``decay``: EWMA decay; ``dof``: Student-t
    degrees of freedom (unit variance).
    """

    model: str = "filtered_historical_portfolio"
    confidence: float = 0.99
    horizon_days: int = 1
    window: int = 500
    decay: float = 0.94
    dof: float = 5.0
    cov_method: str = "ledoit_wolf"

    def __post_init__(self) -> None:
        if self.model not in VAR_MODELS:
            raise InputError("model", self.model, "one of " + ", ".join(VAR_MODELS))
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.5 <= c < 1:
            raise InputError("confidence", c, "a number in [0.5, 1), e.g. 0.99")
        h = self.horizon_days
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
            raise InputError("horizon_days", h, "an integer >= 1")
        if (
            isinstance(self.window, bool)
            or not isinstance(self.window, (int, np.integer))
            or self.window < MIN_RETURNS
        ):
            raise InputError(
                "window", self.window, f"an integer >= {MIN_RETURNS} (daily returns per forecast)"
            )
        if not 0 < self.decay < 1:
            raise InputError("decay", self.decay, "a number in (0, 1), e.g. 0.94")
        if not self.dof > 2:
            raise InputError("dof", self.dof, "a number > 2 (the variance must exist)")


@lru_cache(maxsize=64)
def _tail_factors(model: str, confidence: float, dof: float) -> tuple[float, float]:
    """(VaR, CVaR) of a unit-variance normal or Student-t loss at ``confidence``."""
    from scipy import stats

    if model == "student_t":
        q = float(stats.t.ppf(confidence, dof))
        unit = math.sqrt((dof - 2) / dof)
        es = float(stats.t.pdf(q, dof)) / (1 - confidence) * (dof + q * q) / (dof - 1)
        return q * unit, es * unit
    z = float(stats.norm.ppf(confidence))
    return z, float(stats.norm.pdf(z)) / (1 - confidence)


def forecast(
    returns: Any,
    exposures: Any,
    spec: VarSpec,
    *,
    tickers: Sequence[str] | None = None,
    components: bool = False,
) -> VarResult:
    """Next-day VaR/CVaR of ``exposures`` from a window of daily returns, checked; see :func:`window_figures`.

    ``returns``: (n_obs, n_assets) simple daily returns, oldest first, the last one ending on the valuation
    date (the caller takes the last ``spec.window``); ``exposures``: (n_assets,) money held at that date's
    close. ``components``: also the Euler allocation per position (component VaR/CVaR sum to VaR/CVaR).
    """
    t0 = time.perf_counter()
    r = np.asarray(returns, dtype=np.float64)
    e = np.asarray(exposures, dtype=np.float64)
    if r.ndim != 2 or len(r) < MIN_RETURNS or e.ndim != 1 or r.shape[1] != e.size:
        raise InputError(
            "returns",
            f"shape {r.shape} for {e.size} exposures",
            f"a (n_obs >= {MIN_RETURNS}, n_assets) window with one column per exposure",
        )
    if not (np.isfinite(r).all() and np.isfinite(e).all()):
        raise InputError(
            "returns/exposures", "non-finite values", "finite numbers (daily_returns drops gaps)"
        )
    var, cvar, vol, scenarios, share = window_figures(r, e, spec, components)
    result: dict[str, Any] = {}
    if share is not None:
        names = list(tickers) if tickers is not None else [str(i) for i in range(e.size)]
        result = {
            "component_var": dict(zip(names, (share * var).tolist(), strict=True)),
            "component_cvar": dict(zip(names, (share * cvar).tolist(), strict=True)),
        }
    return VarResult(
        var=var,
        cvar=cvar,
        volatility=vol,
        confidence=spec.confidence,
        horizon_days=int(spec.horizon_days),
        paths=scenarios,
        model=spec.model,
        backend="numpy",
        seconds=time.perf_counter() - t0,
        mode="full" if components else "totals",
        observations=len(r),
        **result,
    )


def window_figures(
    r: np.ndarray, e: np.ndarray, spec: VarSpec, components: bool = False
) -> tuple[float, float, float, int, np.ndarray | None]:
    """The formula of every model: (VaR, CVaR, volatility, scenarios, Euler shares or None).

    ``r``: (n_obs, n_assets) finite float64 daily returns ending on the valuation date; ``e``: (n_assets,)
    finite money exposures. Losses are positive, in money, over ``spec.horizon_days`` (sqrt-time scaling).
    The live path (:func:`forecast` from :func:`risk.portfolio_var.portfolio_var`: the sensor, ``qb var``) and
    the backtest (:func:`risk.backtest.forecast_history`: ``qb var backtest``, the nightly report) both
    run this function on the same window; only the checks of :func:`forecast` are done once per history
    by the backtest. Shares (when ``components``) sum to 1: position i's share of VaR and of CVaR.
    """
    root_h = math.sqrt(spec.horizon_days)
    share = None
    if spec.model in {"normal", "student_t", "ewma"}:
        if spec.model == "ewma":
            pnl = r @ e
            variance = float(ewma_variance(pnl * pnl, spec.decay)[-1])
        else:
            cov = covariance(r, spec.cov_method)
            variance = float(e @ cov @ e)
        vol = math.sqrt(max(variance, 0.0)) * root_h
        k_var, k_es = _tail_factors(
            "student_t" if spec.model == "student_t" else "normal", spec.confidence, spec.dof
        )
        if components and variance > 0:
            if spec.model == "ewma":
                cov = ewma_variance(r[:, :, None] * r[:, None, :], spec.decay)[-1]
            share = e * (cov @ e) / variance  # Euler: e_i (cov e)_i / e'cov e
        return k_var * vol, k_es * vol, vol, 0, share
    pnl = r @ e
    if spec.model == "filtered_historical":
        level = np.sqrt(np.maximum(ewma_variance(r * r, spec.decay), _TINY))
        scenarios = r / level[:-1] * level[-1]
        pnl = scenarios @ e
    elif spec.model == "filtered_historical_portfolio":
        level = np.sqrt(np.maximum(ewma_variance(pnl * pnl, spec.decay), _TINY))
        ratio = level[-1] / level[:-1]
        pnl = pnl * ratio
        scenarios = r * ratio[:, None] if components else r
    else:
        scenarios = r
    loss = -pnl * root_h
    var = _quantile(loss, spec.confidence)
    tail = loss >= var
    cvar = float(loss[tail].mean())
    centred = loss - loss.mean()
    vol = math.sqrt(float(centred @ centred) / len(loss))
    if components and cvar != 0:
        share = -(scenarios[tail] * e).mean(axis=0) * root_h / cvar  # mean tail loss per position
    return var, cvar, vol, len(loss), share


def _quantile(x: np.ndarray, q: float) -> float:
    """np.quantile's default (linear interpolation between order statistics) by partial sort: faster."""
    h = (len(x) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(x) - 1)
    part = np.partition(x, [lo, hi])
    return float(part[lo] + (h - lo) * (part[hi] - part[lo]))
