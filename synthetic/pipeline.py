"""One synthetic-generation run, step by step, for the DAG and the CLI: train (resumable), generate,
evaluate. Everything of a run lives in the lake partition ``synthetic/run=R/``:

* ``checkpoint.pt``: the model (weights, optimiser and random states, epoch reached);
* ``samples.parquet``: ``samples`` windows as rows ``sample, day, regime`` plus one column per ticker of
  simple daily returns;
* ``metadata.json``: model version, configuration, data range, training time and fidelity metrics;
* ``report/index.html`` and its PNGs: the fidelity report against held-out real windows.

The run id is a pure function of the date and the parameters, and every random draw is seeded, so a
re-run for the same date and parameters writes the same samples (resuming, or skipping, the training).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError, NoDataError
from quantbridge.lake import Lake
from synthetic.cgan import ConditionalGAN, GANConfig
from synthetic.data import WindowSplit, split_windows
from synthetic.fidelity import fidelity
from synthetic.vae import VAEConfig, WindowVAE

MODEL_KINDS = ("cgan", "vae")
MAX_EPOCHS = 2000
MAX_SAMPLES = 100_000


@dataclass(frozen=True)
class RunSpec:
    """model_kind: ``cgan`` or ``vae``; beta: ESG weight (>= 0); epochs: training epochs (1..2000);
    samples: windows written to the lake (1..100000); seed: every random draw; end: last price date used
    (None = all)."""

    model_kind: str = "cgan"
    beta: float = 0.0
    epochs: int = GANConfig.epochs
    samples: int = 1000
    seed: int = 20260101
    end: str | None = None

    def __post_init__(self) -> None:
        if self.model_kind not in MODEL_KINDS:
            raise InputError("model_kind", self.model_kind, f"one of {', '.join(MODEL_KINDS)}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not self.beta >= 0:
            raise InputError("beta", self.beta, "a number >= 0")
        if (
            isinstance(self.epochs, bool)
            or not isinstance(self.epochs, int)
            or not 1 <= self.epochs <= MAX_EPOCHS
        ):
            raise InputError("epochs", self.epochs, f"an integer in 1..{MAX_EPOCHS}")
        if (
            isinstance(self.samples, bool)
            or not isinstance(self.samples, int)
            or not 1 <= self.samples <= MAX_SAMPLES
        ):
            raise InputError("samples", self.samples, f"an integer in 1..{MAX_SAMPLES}")

    def model(self) -> ConditionalGAN | WindowVAE:
        if self.model_kind == "cgan":
            return ConditionalGAN(GANConfig(epochs=self.epochs, beta=float(self.beta), seed=self.seed))
        return WindowVAE(VAEConfig(epochs=self.epochs, beta=float(self.beta), seed=self.seed))


def run_id(day: date, spec: RunSpec) -> str:
    """``YYYY-MM-DD-<kind>-<10 hex digits of the parameters' sha256>``: same date and parameters, same id."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(spec), sort_keys=True).encode()).hexdigest()[:10]
    return f"{day.isoformat()}-{spec.model_kind}-{digest}"


def run_folder(lake: Lake, run: str) -> Path:
    return lake.partition("synthetic", "run", run)


def load_data(lake: Lake, end: str | None = None, seed: int = 20260101) -> tuple[WindowSplit, np.ndarray]:
    """Training/held-out windows of the lake's prices up to ``end`` and the ESG score (n_assets,) per
    ticker."""
    from marketdata.reference import esg_scores

    closes = lake.read_close_matrix(None, date.fromisoformat(end) if end else None)
    scores = esg_scores(lake)
    if closes.empty or scores is None:
        raise NoDataError(f"the lake at {lake.root} holds no prices or no ESG table: run `qb ingest` first")
    missing = sorted(set(closes.columns) - set(scores.index))
    if missing:
        raise InputError("esg table", ",".join(missing), "an ESG score for every ticker in the lake")
    # Returns spanning a quarantined date are dropped, as everywhere else (quantbridge.returns).
    return split_windows(closes, seed=seed, quarantined=lake.quarantined_dates()), scores.loc[
        list(closes.columns)
    ].to_numpy(dtype=np.float64)


def load_model(lake: Lake, run: str, model_kind: str) -> ConditionalGAN | WindowVAE:
    path = run_folder(lake, run) / "checkpoint.pt"
    if not path.is_file():
        raise InputError("run", run, f"a trained run (no checkpoint at {path})", hint="train it first")
    return (ConditionalGAN if model_kind == "cgan" else WindowVAE).load(path)


def train_run(
    lake: Lake,
    run: str,
    spec: RunSpec,
    progress: Callable[[int, int, dict[str, float]], None] = lambda *_: None,
) -> dict[str, Any]:
    """Fit ``spec``'s model on the training windows, checkpointing into the run's folder (a re-run
    resumes)."""
    split, esg = load_data(lake, spec.end, spec.seed)
    folder = run_folder(lake, run)
    t0 = time.perf_counter()
    model = spec.model().fit(split.train, esg, checkpoint=folder / "checkpoint.pt", progress=progress)
    return {
        "run": run,
        "partition": str(folder),
        "model_kind": spec.model_kind,
        "version": model.version(),
        "epochs": spec.epochs,
        "resumed_from_epoch": model.resumed_from_,
        "train_seconds": round(time.perf_counter() - t0, 2),
        "train_windows": len(split.train),
        "test_windows": len(split.test),
        "data_start": split.start,
        "data_end": split.end,
    }


def samples_frame(
    windows: np.ndarray, labels: np.ndarray, tickers: tuple[str, ...], scale: np.ndarray
) -> pd.DataFrame:
    """Long-by-day frame of windows (n, length, n_assets) in volatility units, as simple daily returns."""
    n, length, assets = windows.shape
    frame = pd.DataFrame((windows * scale).reshape(n * length, assets), columns=list(tickers))
    frame.insert(0, "regime", np.repeat(labels, length).astype(np.int64))
    frame.insert(0, "day", np.tile(np.arange(length), n).astype(np.int64))
    frame.insert(0, "sample", np.repeat(np.arange(n), length).astype(np.int64))
    return frame


def _as_windows(samples: np.ndarray) -> np.ndarray:
    return samples if samples.ndim == 3 else samples[:, None, :]


def generate_run(lake: Lake, run: str, spec: RunSpec) -> dict[str, Any]:
    """Draw ``spec.samples`` windows from the run's model into ``samples.parquet``."""
    split, esg = load_data(lake, spec.end, spec.seed)
    model = load_model(lake, run, spec.model_kind)
    windows, labels = model.sample(spec.samples, seed=spec.seed + 1)
    windows = _as_windows(windows)
    if not np.isfinite(windows).all():
        raise ValueError(f"run {run} produced non-finite samples: retrain with other parameters")
    path = run_folder(lake, run) / "samples.parquet"
    samples_frame(windows, labels, split.tickers, split.scale).to_parquet(path, index=False)
    return {
        "run": run,
        "samples": str(path),
        "windows": len(windows),
        "shape": list(windows.shape),
        "mean_esg": model.esg_score(windows, esg),
    }


def evaluate_run(lake: Lake, run: str, spec: RunSpec, trained: dict[str, Any]) -> dict[str, Any]:
    """Fidelity against the held-out windows (as many synthetic windows as held-out ones), the HTML report
    and ``metadata.json``; returns the metadata."""
    split, esg = load_data(lake, spec.end, spec.seed)
    model = load_model(lake, run, spec.model_kind)
    synthetic = _as_windows(model.sample(len(split.test), seed=spec.seed + 2)[0])
    metrics = fidelity(split.test, synthetic, spec.seed)
    metrics["mean_esg"] = model.esg_score(synthetic, esg)
    metrics["mean_esg_real"] = model.esg_score(split.test, esg)
    folder = run_folder(lake, run)
    from synthetic.report_page import write_report

    report = write_report(
        folder / "report",
        split.test,
        synthetic,
        split.tickers,
        metrics,
        f"Synthetic run {run}",
        context={
            "model": model.version(),
            "beta": spec.beta,
            "epochs": spec.epochs,
            "data": f"{split.start}..{split.end}",
        },
    )
    metadata = {
        "run": run,
        "model_version": model.version(),
        "config": dataclasses.asdict(model.config),
        "spec": dataclasses.asdict(spec),
        "training": trained,
        "tickers": list(split.tickers),
        "scale": split.scale.round(8).tolist(),
        "metrics": metrics,
        "report": str(report),
        "samples": str(folder / "samples.parquet"),
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    return metadata
