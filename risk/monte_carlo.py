"""Monte Carlo VaR and CVaR of a linear book on a covariance; the closed form it must agree with.

Conventions as in :mod:`risk.var`: ``exposures`` (n_assets,) money per asset, ``cov`` (n_assets, n_assets)
covariance of daily simple returns, losses positive, sqrt(``horizon_days``) scaling.

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
from typing import Any

import numpy as np

from quantbridge.errors import InputError
from risk.backend import Backend, array_module
from risk.var import VarResult

MODELS = ("normal", "student_t")
MODES = ("shortcut", "full")
#: Full mode keeps this many times the expected tail share of each batch's worst paths.
_TAIL_KEEP_FACTOR = 3.0


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
