"""Monte Carlo VaR and CVaR of a linear book on a covariance; the closed form it must agree with.

Conventions as in :mod:`risk.var`: ``exposures`` (n_assets,) money per asset, ``cov`` (n_assets, n_assets)
covariance of daily simple returns, losses positive, sqrt(``horizon_days``) scaling. With L the Cholesky
factor of the horizon's covariance and a = L'w, a path's P&L is a'Z (normal) or a'Z tau (multivariate
Student-t, tau = sqrt((dof - 2) / chi2(dof)), unit variance), so its loss is |a| s tau with
s = u'Z ~ N(0, 1) along the book's loss direction u = -a / |a|.

Two modes (:func:`monte_carlo_var`, used by the FX stress and ``make bench``; NumPy or CuPy):

* ``shortcut``: the exact 1-D path of a linear book: one normal s per path (and one chi-square for
  Student-t), loss = |a| s tau. Milliseconds for 1e6 paths.
* ``full``: n_assets normals Z per path (what a full revaluation needs), loss from u'Z, and Euler
  contributions in one streaming pass: per batch, the paths near the closed-form VaR are binned by loss
  (bins of h / 8, h the kernel bandwidth) and each bin keeps sum(coef Z) (n_assets numbers), so memory is
  O(bins x n_assets) whatever the paths. Component VaR_i = kernel-smoothed E[L_i | L ~ VaR] (binned
  Gaussian kernel, as :func:`risk.contributions.euler_contributions` with ``bandwidth`` h), component
  CVaR_i = E[L_i | L >= VaR]; both scaled to sum to the totals. If the sample VaR's kernel window leaves
  the binned band (a bad closed form, never seen), the pass is run again centred on it (same draws).

Variance reduction (both modes, all acting on s, the only coordinate the book's loss depends on):
``sampler="antithetic"`` (paths Z and -Z), ``sampler="sobol"`` (s from a scrambled 1-D Sobol sequence,
randomised by the seed; the other coordinates stay pseudo-random), ``importance=True`` (s shifted by
mu = z_c toward the tail, likelihood ratio exp(-mu s + mu^2 / 2) per path; VaR from the tail-sum estimator
P(L > x) = sum(w 1{L > x}) / n, CVaR and the components weighted).

Batches are drawn on all cores (threads; NumPy's generators release the GIL), batch b from its own stream
``SFC64([seed, b])``, so every figure is reproducible for (seed, batch_size) whatever the thread count.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantbridge.errors import InputError
from risk.backend import Backend, default_backend
from risk.var import VarResult

MODELS = ("normal", "student_t")
MODES = ("shortcut", "full")
SAMPLERS = ("pseudo", "antithetic", "sobol")
#: Full mode bins the paths within this many kernel bandwidths (plus 10 quantile standard errors) of the
#: closed-form VaR; the kernel reaches 6 of them, so the sample VaR may sit 2 bandwidths (+ 10 SE) off it.
_BAND_BANDWIDTHS = 8.0
_BINS_PER_BANDWIDTH = 8
#: Normals drawn at once on the CPU: 2^18 (2 MB in float64) stay in a core's L2 cache for the product.
_CHUNK_NUMBERS = 1 << 18
#: Paths per batch (one random stream each) on the GPU; on the CPU see :func:`default_batch_size`.
_DEFAULT_BATCH = {"numpy": 1 << 16, "cupy": 1 << 18}


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


def _unit_quantile(model: str, dof: float, confidence: float) -> tuple[float, float]:
    """The ``confidence`` quantile of the unit-variance innovation s tau, and its density there."""
    from scipy.stats import norm, t

    if model == "normal":
        q = float(norm.ppf(confidence))
        return q, float(norm.pdf(q))
    k = math.sqrt((dof - 2.0) / dof)  # a t variable times k has unit variance
    q = float(t.ppf(confidence, dof))
    return k * q, float(t.pdf(q, dof)) / k


@dataclass(frozen=True)
class _Plan:
    """What every batch needs, fixed before the first draw (losses in money)."""

    backend: Backend
    seed: int
    model: str
    dof: float
    dtype: str
    full: bool
    sampler: str
    shift: float  # importance-sampling mean shift of s (0: off)
    scale: float  # |a|: loss = scale * s * tau
    direction: Any  # u, (n_assets,) on the backend, in dtype
    band_lo: float  # lower edge of the binned band
    bin_width: float
    n_bins: int  # bins of the band; index n_bins holds every path above it
    collect: Any = None  # tests only: (chol, exposures) on the backend to return per-position losses


@dataclass
class _Batch:
    loss: np.ndarray  # (n,) float64
    weight: np.ndarray | None  # (n,) likelihood ratios, None without importance sampling
    sums: np.ndarray | None  # (n_bins + 1, n_assets + 1): per bin, sum of coef [Z, s - u'Z] (full mode)
    positions: np.ndarray | None = None  # tests only: (n, n_assets) per-position losses


def _sobol_normals(seed: int, start: int, n: int) -> np.ndarray:
    """Normals at points start..start+n of one scrambled 1-D Sobol sequence (the seed's scrambling)."""
    from scipy.special import ndtri
    from scipy.stats import qmc

    engine = qmc.Sobol(1, scramble=True, rng=np.random.default_rng(seed))
    if start:
        engine.fast_forward(start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "balance properties": a batch need not be 2^k points
        points = engine.random(n)[:, 0]
    return np.asarray(ndtri(np.clip(points, 1e-16, 1 - 1e-16)))


def _run_batch(plan: _Plan, b: int, start: int, n: int) -> _Batch:
    """Draw batch ``b`` (paths start..start+n) from its own stream; its losses and, in full mode, bin sums."""
    bk, xp = plan.backend, plan.backend.xp
    rng = bk.generator([plan.seed, b])
    anti = plan.sampler == "antithetic"
    n_draw = (n + 1) // 2 if anti else n
    tau_draw = None
    if plan.model == "student_t":
        tau_draw = xp.sqrt((plan.dof - 2.0) / rng.chisquare(plan.dof, n_draw)).astype(plan.dtype)
    sobol = (
        xp.asarray(_sobol_normals(plan.seed, start, n), dtype=plan.dtype) if plan.sampler == "sobol" else None
    )
    d = int(plan.direction.shape[0])
    loss_out = np.empty(n)
    weight_out = np.empty(n) if plan.shift else None
    sums = xp.zeros((plan.n_bins + 1, d + 1)) if plan.full else None
    positions = np.empty((n, d)) if plan.collect is not None else None
    if plan.full:
        rows = n_draw if bk.name == "cupy" else max(16, _CHUNK_NUMBERS // d)
        buffer = np.empty((min(rows, n_draw), d), dtype=plan.dtype) if bk.name == "numpy" else None
    else:
        rows = n_draw
        buffer = None
    for r0 in range(0, n_draw, rows):
        r1 = min(r0 + rows, n_draw)
        if plan.full:
            out = buffer[: r1 - r0] if buffer is not None else None
            z = bk.standard_normal(rng, (r1 - r0, d), plan.dtype, out=out)
            p = z @ plan.direction  # u'Z: the only coordinate the book's loss depends on
        else:
            z = None
            p = bk.standard_normal(rng, (r1 - r0,), plan.dtype)
        pos = np.arange(r0, r1)
        k2 = max(0, min(r1, n - n_draw) - r0) if anti else 0  # mirrored paths of this chunk
        if k2:
            pos = np.concatenate([pos, n_draw + np.arange(r0, r0 + k2)])
            p = xp.concatenate([p, -p[:k2]])
        s = sobol[r0:r1] if sobol is not None else p
        if plan.shift:
            s = s + plan.shift
        loss = plan.scale * s
        tau = None
        if tau_draw is not None:
            tau = xp.concatenate([tau_draw[r0:r1], tau_draw[r0 : r0 + k2]]) if k2 else tau_draw[r0:r1]
            loss = loss * tau
        loss = loss.astype(xp.float64)
        weight = xp.exp(-plan.shift * s.astype(xp.float64) + plan.shift**2 / 2) if plan.shift else None
        loss_out[pos] = bk.to_numpy(loss)
        if weight is not None:
            assert weight_out is not None  # allocated whenever shift != 0
            weight_out[pos] = bk.to_numpy(weight)
        if not plan.full:
            continue
        assert z is not None and sums is not None  # full mode draws the per-asset normals
        coef = xp.ones(len(pos)) if weight is None else weight
        if tau is not None:
            coef = coef * tau.astype(xp.float64)
        sign = xp.concatenate([xp.ones(r1 - r0), -xp.ones(k2)]) if k2 else None
        # Each path's normals are sign * Z_source + (s - p) u: u'Z becomes s, the rest is untouched.
        correction = (s - p).astype(xp.float64) * coef
        if plan.collect is not None:
            chol, exposures = plan.collect
            zs = _drawn(z, xp.arange(len(pos)), k2).astype(xp.float64)
            zs = zs if sign is None else zs * sign[:, None]
            zs = zs + (s - p).astype(xp.float64)[:, None] * plan.direction.astype(xp.float64)[None, :]
            scaled = zs @ chol.T
            if tau is not None:
                scaled = scaled * tau.astype(xp.float64)[:, None]
            assert positions is not None
            positions[pos] = bk.to_numpy(-(scaled * exposures[None, :]))
        factor = coef if sign is None else coef * sign
        top = plan.band_lo + plan.n_bins * plan.bin_width
        # Paths above the band lie wholly in the tail and outside the kernel: one product sums them, over
        # the few rows gathered (plain sampling) or over every drawn row with coefficient 0 elsewhere
        # (importance sampling puts a third of the paths there; a mirrored path adds to its twin's row).
        above = loss >= top
        n_above = int(above.sum())
        if 8 * n_above < len(pos):
            index = xp.nonzero(above)[0]
            sums[plan.n_bins, :d] += factor[index] @ _drawn(z, index, k2).astype(xp.float64, copy=False)
        else:
            per_row = xp.where(above, factor, 0.0)
            if k2:
                drawn = r1 - r0  # mirrored path drawn + t reads drawn row t
                per_row = xp.concatenate([per_row[:k2] + per_row[drawn:], per_row[k2:drawn]])
            sums[plan.n_bins, :d] += per_row.astype(z.dtype) @ z
        sums[plan.n_bins, d] += correction[above].sum()
        picked = xp.nonzero((loss >= plan.band_lo) & (loss < top))[0]
        if int(picked.size) == 0:
            continue
        # In the band: sort the paths by bin, then per-bin sums are differences of one cumulative sum.
        bins = xp.floor((loss[picked] - plan.band_lo) / plan.bin_width).astype(xp.int64)
        order = xp.argsort(bins)
        picked, bins = picked[order], bins[order]
        block = _drawn(z, picked, k2).astype(xp.float64, copy=False)
        block *= factor[picked][:, None]
        # Only the bins this chunk touches (a dozen, plain): segment ends, cumulative sums' differences.
        ends = xp.concatenate([xp.nonzero(bins[1:] != bins[:-1])[0], xp.asarray([len(bins) - 1])])
        touched = bins[ends]
        segment = xp.cumsum(block, axis=0)[ends]
        segment[1:] -= segment[:-1].copy()
        sums[touched, :d] += segment
        last = xp.cumsum(correction[picked])[ends]
        last[1:] -= last[:-1].copy()
        sums[touched, d] += last
    return _Batch(loss_out, weight_out, bk.to_numpy(sums) if sums is not None else None, positions)


def _drawn(z: Any, index: Any, mirrored: int) -> Any:
    """The drawn normals behind a chunk's paths ``index``: a mirrored path reads its twin's row."""
    return z[index % len(z)] if mirrored else z[index]


def _tail_quantile(loss: np.ndarray, weight: np.ndarray | None, confidence: float, hint: float) -> float:
    """VaR: np.quantile without weights; with likelihood ratios, the smallest sampled loss x whose tail
    sum(w 1{L >= x}) / n reaches 1 - c (the tail-sum estimator: the total weight's noise stays out)."""
    n = len(loss)
    if weight is None:
        # np.quantile's linear interpolation between order statistics lo and lo + 1, read from the paths
        # above the hint only (about 1% of them) when the two lie there: a small sort, not a partition.
        lo = int(math.floor((n - 1) * confidence))
        near = loss[loss >= hint]
        if lo < n - len(near):
            return float(np.quantile(loss, confidence))
        top = np.sort(near)
        a, b = top[lo - (n - len(near))], top[min(lo + 1, n - 1) - (n - len(near))]
        return float(np.quantile(np.array([a, b]), (n - 1) * confidence - lo))
    target = (1 - confidence) * n
    near = loss >= hint  # only the upper part is searched; all paths if it holds too little weight
    if weight[near].sum() < target:
        near = np.ones(n, dtype=bool)
    values, ratios = loss[near], weight[near]
    # Importance sampling puts half the paths past VaR: a weighted histogram finds the bin where the tail
    # weight crosses the target, and only that bin is sorted (the same answer as sorting them all).
    low, high = float(values.min()), float(values.max())
    bins = 4096
    index = np.minimum(((values - low) / max(high - low, 1e-300) * bins).astype(np.int64), bins - 1)
    from_top = np.cumsum(np.bincount(index, weights=ratios, minlength=bins)[::-1])
    if from_top[-1] < target:  # every ratio together under n (1 - c): the smallest loss, as a full sort gives
        return low
    k = min(int(np.searchsorted(from_top, target, side="left")), bins - 1)
    above = float(from_top[k - 1]) if k else 0.0
    inside = index == bins - 1 - k
    order = np.argsort(-values[inside], kind="stable")
    cum = above + np.cumsum(ratios[inside][order])
    i = min(int(np.searchsorted(cum, target, side="left")), len(cum) - 1)
    return float(values[inside][order][i])


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
    batch_size: int | None = None,
    sampler: str = "pseudo",
    importance: bool = False,
    threads: int | None = None,
) -> VarResult:
    """Monte Carlo VaR/CVaR (see the module docstring for the modes and the variance reduction).

    ``paths``: number of paths; ``batch_size``: paths per random stream (default
    :func:`default_batch_size`; the figures depend on it, not on ``threads``); ``threads``: CPU threads
    (default all cores; 1 on CuPy). ``tickers`` name the components (full mode; default "0", "1", ...).
    """
    return _simulate(
        exposures,
        cov,
        confidence=confidence,
        horizon_days=horizon_days,
        paths=paths,
        model=model,
        dof=dof,
        seed=seed,
        mode=mode,
        dtype=dtype,
        tickers=tickers,
        backend=backend,
        batch_size=batch_size,
        sampler=sampler,
        importance=importance,
        threads=threads,
    )[0]


def _simulate(
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
    batch_size: int | None = None,
    sampler: str = "pseudo",
    importance: bool = False,
    threads: int | None = None,
    collect: bool = False,
) -> tuple[VarResult, list[_Batch]]:
    """:func:`monte_carlo_var` and its batches (``collect``: every path's per-position losses, for tests)."""
    t0 = time.perf_counter()
    w, sigma = check_inputs(exposures, cov, confidence, horizon_days)
    if model not in MODELS:
        raise InputError("model", model, "one of " + ", ".join(MODELS))
    if mode not in MODES:
        raise InputError("mode", mode, "one of " + ", ".join(MODES))
    if sampler not in SAMPLERS:
        raise InputError("sampler", sampler, "one of " + ", ".join(SAMPLERS))
    if dtype not in {"float32", "float64"}:
        raise InputError("dtype", dtype, "float32 or float64")
    if isinstance(paths, bool) or not isinstance(paths, (int, np.integer)) or paths < 100:
        raise InputError("paths", paths, "an integer >= 100")
    if model == "student_t" and not dof > 2:
        raise InputError("dof", dof, "a number > 2 (the variance must exist)")
    if tickers is not None and len(tickers) != w.size:
        raise InputError("tickers", len(tickers), f"{w.size} names, one per exposure")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2
    ):
        raise InputError("batch_size", batch_size, "an integer >= 2 (paths per random stream)")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError("threads", threads, "an integer >= 1")
    backend = backend or default_backend()
    full = mode == "full"
    names = list(tickers) if tickers is not None else [str(i) for i in range(w.size)]
    with _single_threaded_blas(True):  # 500 x 500 in ms; threaded BLAS stalls when the cores are busy
        chol = _cholesky(sigma * horizon_days)
    a = chol.T @ w  # P&L of a path = a'Z
    scale = float(np.linalg.norm(a))
    common: dict[str, Any] = {
        "confidence": confidence,
        "horizon_days": int(horizon_days),
        "paths": int(paths),
        "model": model,
        "backend": backend.name,
        "mode": mode,
        "dtype": dtype,
    }
    if scale == 0.0:  # an empty (or fully hedged) book loses nothing on any path
        zeros = dict.fromkeys(names, 0.0) if full else {}
        empty = VarResult(
            0.0,
            0.0,
            0.0,
            seconds=time.perf_counter() - t0,
            component_var=zeros,
            component_cvar=dict(zeros),
            **common,
        )
        return empty, []
    u = -a / scale
    q_unit, density = _unit_quantile(model, dof, confidence)
    h = 1.06 * scale * paths**-0.2  # Silverman's bandwidth on the loss (unit-variance innovations)
    se = math.sqrt(confidence * (1 - confidence) / paths) / density * scale
    shift = float(_importance_shift(confidence)) if importance else 0.0
    step = batch_size or default_batch_size(paths, backend.name)
    starts = list(range(0, paths, step))
    # One thread feeds a GPU (its kernels queue on one stream); the CPU draws on every core.
    n_threads = 1 if backend.name == "cupy" else threads or os.cpu_count() or 1
    center = q_unit * scale
    for _attempt in range(3):
        half = _BAND_BANDWIDTHS * h + 10 * se
        width = h / _BINS_PER_BANDWIDTH
        plan = _Plan(
            backend,
            seed,
            model,
            float(dof),
            dtype,
            full,
            sampler,
            shift,
            scale,
            backend.xp.asarray(u, dtype=dtype),
            math.floor((center - half) / width) * width,  # one grid whatever the centre
            width,
            math.ceil(2 * half / width),
            (backend.xp.asarray(chol), backend.xp.asarray(w)) if collect else None,
        )
        batches = _run_all(plan, starts, paths, step, n_threads)
        loss = np.concatenate([x.loss for x in batches])
        weight = np.concatenate([x.weight for x in batches if x.weight is not None]) if shift else None
        var = _tail_quantile(loss, weight, confidence, max(plan.band_lo, center - 10 * se))
        top = plan.band_lo + plan.n_bins * width
        if not full or (plan.band_lo <= var - 6 * h and var + 6 * h <= top):
            break
        center = var  # the kernel window left the band: bin again around the sample VaR (same draws)
    tail = loss >= var
    tail_w = weight[tail] if weight is not None else None
    cvar = float(np.average(loss[tail], weights=tail_w))
    mean = float(np.average(loss, weights=weight))
    vol = math.sqrt(float(np.average((loss - mean) ** 2, weights=weight)))
    component_var: dict[str, float] = {}
    component_cvar: dict[str, float] = {}
    if full:
        cv, cc = _components(plan, batches, loss, weight, var, cvar, h, chol, w, u)
        component_var = dict(zip(names, cv.tolist(), strict=True))
        component_cvar = dict(zip(names, cc.tolist(), strict=True))
    result = VarResult(
        var=var,
        cvar=cvar,
        volatility=vol,
        seconds=time.perf_counter() - t0,
        component_var=component_var,
        component_cvar=component_cvar,
        **common,
    )
    return result, batches


def default_batch_size(paths: int, backend: str = "numpy") -> int:
    """Paths per batch: on the CPU about 32 batches (threads stay balanced), a power of two in
    16,384..65,536 (a stream's set-up is amortised); 262,144 on the GPU. Depends on neither the threads
    nor the machine, so a seed gives the same figures everywhere."""
    if backend == "cupy":
        return _DEFAULT_BATCH["cupy"]
    return min(_DEFAULT_BATCH["numpy"], max(1 << 14, 1 << max(0, math.ceil(math.log2(max(paths, 1) / 32)))))


def _importance_shift(confidence: float) -> float:
    """Mean shift of s toward the tail: the normal quantile z_c (optimal for the tail probability at VaR)."""
    from scipy.stats import norm

    return float(norm.ppf(confidence))


def _run_all(plan: _Plan, starts: list[int], paths: int, step: int, n_threads: int) -> list[_Batch]:
    """Every batch, in batch order; on ``n_threads`` threads with BLAS single-threaded inside each."""
    jobs = [(b, start, min(step, paths - start)) for b, start in enumerate(starts)]
    if n_threads == 1 or len(jobs) == 1:
        return [_run_batch(plan, *job) for job in jobs]
    with _single_threaded_blas(plan.full), ThreadPoolExecutor(min(n_threads, len(jobs))) as pool:
        return list(pool.map(lambda job: _run_batch(plan, *job), jobs))


_BLAS: list[Any] = []  # threadpoolctl's controller, built once (inspecting the loaded libraries takes ms)


def _single_threaded_blas(needed: bool) -> Any:
    """BLAS limited to one thread while ours draw (each would start its own on the same cores)."""
    if not needed:
        return contextlib.nullcontext()
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _components(
    plan: _Plan,
    batches: list[_Batch],
    loss: np.ndarray,
    weight: np.ndarray | None,
    var: float,
    cvar: float,
    h: float,
    chol: np.ndarray,
    w: np.ndarray,
    u: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Euler component VaR and CVaR from the binned sums (each scaled to sum to its total)."""
    d = len(w)
    total = np.sum(
        [x.sums for x in batches if x.sums is not None], axis=0
    )  # batch order: the same sum for any thread count
    g = total[:, :d] + total[:, d:] * u[None, :]  # per bin: sum of coef * (each path's normals)
    picked = loss >= plan.band_lo
    bins = np.minimum(np.floor((loss[picked] - plan.band_lo) / plan.bin_width), plan.n_bins).astype(np.int64)
    bin_weight = np.bincount(
        bins, weights=None if weight is None else weight[picked], minlength=plan.n_bins + 1
    )
    centres = plan.band_lo + (np.arange(plan.n_bins) + 0.5) * plan.bin_width
    kernel = np.exp(-0.5 * ((centres - var) / h) ** 2)  # the top bin lies > 6 h above VaR: weight ~0
    raw_var = -(w * (chol @ (kernel @ g[:-1]))) / (kernel @ bin_weight[:-1])
    # The bin holding VaR is split by its share of tail weight; every bin above lies wholly in the tail.
    at = int(math.floor((var - plan.band_lo) / plan.bin_width))
    in_at = bins == at
    tail_in_at = loss[picked][in_at] >= var
    w_at = weight[picked][in_at] if weight is not None else np.ones(int(in_at.sum()))
    share = float(w_at[tail_in_at].sum() / w_at.sum()) if w_at.sum() > 0 else 0.0
    raw_cvar = -(w * (chol @ (g[at + 1 :].sum(axis=0) + share * g[at])))
    return raw_var * (var / raw_var.sum()), raw_cvar * (cvar / raw_cvar.sum())
