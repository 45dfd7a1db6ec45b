"""The beta sweep: train a generator (the conditional GAN by default, or the VAE) at several ESG weights on
the training windows, and measure each against the held-out real windows (fidelity metrics and the mean
ESG score of the samples, as that model's loss defines it); and the baselines of
:mod:`synthetic.baselines`, fitted on the same training data and measured the same way."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthetic.baselines import BASELINES, LABELS, Baselines
from synthetic.cgan import GANConfig
from synthetic.data import WindowSplit
from synthetic.fidelity import fidelity
from synthetic.novelty import NoveltyReference

BETAS = (0.0, 0.1, 0.5, 1.0, 2.0)
ESG_SAMPLES = 20_000  # windows drawn per beta for the mean ESG score (its sampling error is then ~1e-4)
NOVELTY_SAMPLES = 5_000  # windows drawn per row for the novelty figures (about as many as training windows)


def _model(model_kind: str, beta: float, epochs: int, seed: int) -> Any:
    from synthetic.pipeline import RunSpec  # the one place that maps a model kind to its estimator

    return RunSpec(model_kind=model_kind, beta=beta, epochs=epochs, seed=seed).model()


def beta_sweep(
    split: WindowSplit,
    esg: np.ndarray,
    betas: Sequence[float] = BETAS,
    epochs: int = GANConfig.epochs,
    seed: int = 20260101,
    progress: Callable[[str], None] = lambda _m: None,
    epoch_progress: Callable[[int, int, dict[str, float]], None] = lambda *_: None,
    model_kind: str = "cgan",
    novelty: NoveltyReference | None = None,
) -> tuple[list[dict[str, Any]], dict[float, np.ndarray], dict[float, Any]]:
    """One row per beta (training seconds, mean ESG score of ``ESG_SAMPLES`` sampled windows, every fidelity
    metric of held-out-sized samples against the held-out windows, and with ``novelty`` its figures on
    ``NOVELTY_SAMPLES`` windows, tail windows judged by the model's own ``plausibility``), the synthetic
    windows of each beta and the fitted model of each beta."""
    if any(b < 0 for b in betas) or not betas:
        raise ValueError(f"betas={list(betas)!r} are invalid: expected one or more numbers >= 0")
    rows, samples, models = [], {}, {}
    for beta in betas:
        t0 = time.perf_counter()
        model = _model(model_kind, beta, epochs, seed).fit(split.train, esg, progress=epoch_progress)
        seconds = time.perf_counter() - t0
        synthetic, _ = model.sample(len(split.test), seed=seed + 2)
        metrics = fidelity(split.test, synthetic, seed)
        many, _ = model.sample(ESG_SAMPLES, seed=seed + 3)
        row = {
            "generator": f"{model_kind} beta={beta:g}",
            "beta": beta,
            "train_seconds": round(seconds, 2),
            "mean_esg": model.esg_score(many, esg),
            **metrics,
        }
        if novelty is not None:
            row.update(novelty.score(model.sample(NOVELTY_SAMPLES, seed=seed + 4)[0], model.plausibility))
        rows.append(row)
        samples[beta], models[beta] = synthetic, model
        progress(
            f"beta={beta}: mean ESG {row['mean_esg']:.4f}, discriminative {row['discriminative_score']:.3f}, "
            f"{seconds:.1f} s"
        )
    return rows, samples, models


def baseline_rows(
    split: WindowSplit,
    esg: np.ndarray,
    seed: int = 20260101,
    model_kind: str = "cgan",
    progress: Callable[[str], None] = lambda _m: None,
    novelty: NoveltyReference | None = None,
    judge: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """One row per baseline, fitted on the training data of ``split`` and measured as a sweep row is
    (held-out-sized samples drawn with the same seed offset, the same fidelity metrics; mean ESG as
    ``model_kind``'s loss defines it; with ``novelty`` its figures, tail windows judged by ``judge``, the
    sweep's first model's plausibility, as a baseline has no critic of its own), and each baseline's
    synthetic windows."""
    scorer = _model(model_kind, 0.0, 1, seed)
    t0 = time.perf_counter()
    fitted = Baselines(split.train, split.train_days)
    fit_seconds = time.perf_counter() - t0
    rows, samples = [], {}
    for name in BASELINES:
        t0 = time.perf_counter()
        synthetic = fitted.sample(name, len(split.test), seed + 2)
        seconds = (fit_seconds if name == "ccc_garch_t" else 0.0) + time.perf_counter() - t0
        many = fitted.sample(name, ESG_SAMPLES, seed + 3)
        row = {
            "generator": LABELS[name],
            "baseline": name,
            "train_seconds": round(seconds, 2),
            "mean_esg": scorer.esg_score(many, esg),
            **fidelity(split.test, synthetic, seed),
        }
        if novelty is not None:
            row.update(novelty.score(fitted.sample(name, NOVELTY_SAMPLES, seed + 4), judge))
        rows.append(row)
        samples[name] = synthetic
        progress(f"baseline {name}: discriminative {row['discriminative_score']:.3f}")
    return rows, samples


def sweep_report(
    split: WindowSplit,
    esg: np.ndarray,
    rows: list[dict[str, Any]],
    samples: dict[float, np.ndarray],
    folder: Path,
    command: str,
    seed: int = 20260101,
    model_kind: str = "cgan",
    baselines: list[dict[str, Any]] | None = None,
) -> Path:
    """HTML report of a sweep: the table, the baselines beside the models, the sweep plot, and the figures
    and metrics of the first beta's model (its row of the sweep)."""
    from synthetic.report_page import write_report

    first = rows[0]
    metrics = {k: v for k, v in first.items() if k not in ("generator", "beta", "train_seconds", "mean_esg")}
    metrics["mean_esg_real"] = _model(model_kind, 0.0, 1, seed).esg_score(split.test, esg)
    context = {
        "command": command,
        "data": f"{split.start}..{split.end}",
        "train windows (overlapping)": len(split.train),
        "held-out windows": len(split.test),
        "figures for beta": first["beta"],
    }
    return write_report(
        folder,
        split.test,
        samples[first["beta"]],
        split.tickers,
        metrics,
        "Synthetic markets: fidelity and beta sweep",
        context=context,
        sweep_rows=rows,
        generator_rows=[*rows, *(baselines or [])],
    )
