"""Report figures (matplotlib, Agg backend, small PNGs): real vs synthetic return distributions, ACFs of
returns and absolute returns, correlation matrices, and the beta sweep. Windows are (n, length, n_assets)
in units of each asset's daily volatility."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthetic.fidelity import _acf

DPI = 72


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return path


def distributions(real: np.ndarray, synthetic: np.ndarray, path: Path) -> Path:
    """Histogram (log density) of the pooled daily returns, real vs synthetic."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = np.linspace(-8, 8, 81)
    for data, label in ((real, "real (held out)"), (synthetic, "synthetic")):
        ax.hist(
            np.clip(data.ravel(), -8, 8),
            bins=bins,
            density=True,
            histtype="step",
            lw=1.4,
            label=label,
            log=True,
        )
    ax.set_xlabel("daily return / asset volatility")
    ax.set_ylabel("density (log)")
    ax.set_title("Return distribution, all assets pooled")
    ax.legend(fontsize=8)
    return _save(fig, path)


def acfs(real: np.ndarray, synthetic: np.ndarray, path: Path) -> Path:
    """Autocorrelation of returns and of absolute returns (volatility clustering) at lags inside windows."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), sharey=True)
    for ax, transform, title in ((axes[0], lambda w: w, "returns"), (axes[1], np.abs, "|returns|")):
        for data, label, marker in ((real, "real", "o"), (synthetic, "synthetic", "s")):
            values = _acf(transform(data))
            ax.plot(np.arange(1, len(values) + 1), values, marker=marker, label=label)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"ACF of {title}")
        ax.set_xlabel("lag (days)")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def correlations(real: np.ndarray, synthetic: np.ndarray, tickers: Sequence[str], path: Path) -> Path:
    """Cross-asset correlation matrices of the pooled daily returns, real and synthetic."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, data, title in ((axes[0], real, "real (held out)"), (axes[1], synthetic, "synthetic")):
        corr = np.corrcoef(data.reshape(-1, data.shape[-1]), rowvar=False)
        image = ax.imshow(corr, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(title)
        ax.set_xticks(range(len(tickers)), tickers, rotation=90, fontsize=5)
        ax.set_yticks(range(len(tickers)), tickers, fontsize=5)
    fig.colorbar(image, ax=axes, shrink=0.8)
    return _save(fig, path)


def sweep(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Mean ESG score and discriminative score of the samples against beta."""
    plt = _pyplot()
    betas = [r["beta"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(betas, [r["mean_esg"] for r in rows], "o-", color="tab:green", label="mean ESG")
    ax.set_xlabel("beta (ESG weight in the generator loss)")
    ax.set_ylabel("mean ESG score of samples", color="tab:green")
    other = ax.twinx()
    other.plot(
        betas, [r["discriminative_score"] for r in rows], "s--", color="tab:red", label="discriminative"
    )
    other.axhline(0.15, color="tab:red", lw=0.8, ls=":")
    other.set_ylim(0, 0.5)
    other.set_ylabel("discriminative score (0 best)", color="tab:red")
    ax.set_title("The price of ESG tilt in realism")
    return _save(fig, path)
