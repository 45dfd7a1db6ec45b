"""The beta sweep: train the conditional GAN at several ESG weights on real windows, and measure each
against held-out real windows (fidelity metrics and the mean ESG score of the samples)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from synthetic.cgan import GANConfig, regimes, sample, train
from synthetic.fidelity import fidelity
from synthetic.vae import mean_esg


def windows_from_closes(closes: pd.DataFrame, length: int = 5, seed: int = 0) -> np.ndarray:
    """Non-overlapping windows (n, length, assets) of daily returns in units of each asset's volatility,
    shuffled (seeded) so a held-out split covers every period."""
    returns = closes.sort_index().pct_change(fill_method=None).dropna()
    if len(returns) < 20 * length:
        raise ValueError(f"closes hold {len(returns)} usable daily returns: expected at least {20 * length}")
    scaled = (returns / returns.std()).to_numpy()
    windows = np.stack([scaled[i:i + length] for i in range(0, len(scaled) - length + 1, length)])
    return windows[np.random.default_rng(seed).permutation(len(windows))]


def beta_sweep(windows: np.ndarray, esg: np.ndarray, betas: Sequence[float] = (0.0, 0.5, 2.0), epochs: int = 60,
               seed: int = 20260101, progress: Callable[[str], None] = lambda _m: None) -> list[dict[str, Any]]:
    """One row per beta: training seconds, mean ESG of held-out-sized samples, and the fidelity metrics."""
    split = int(len(windows) * 0.7)
    train_w, test_w = windows[:split], windows[split:]
    test_labels = regimes(test_w)
    rows = []
    for beta in betas:
        t0 = time.perf_counter()
        gen = train(train_w, regimes(train_w), esg, GANConfig(epochs=epochs, beta=beta, seed=seed))
        seconds = time.perf_counter() - t0
        synthetic = np.concatenate([sample(gen, int((test_labels == 0).sum()), 0, seed + 1),
                                    sample(gen, int((test_labels == 1).sum()), 1, seed + 2)])
        metrics = fidelity(test_w, synthetic, seed)
        row = {"beta": beta, "train_seconds": round(seconds, 2), "mean_esg": mean_esg(synthetic.mean(axis=1), esg),
               **{k: v for k, v in metrics.items() if not isinstance(v, list)}}
        rows.append(row)
        progress(f"beta={beta}: mean ESG {row['mean_esg']:.4f}, discriminative {row['discriminative_score']:.3f}, "
                 f"{seconds:.1f} s")
    return rows
