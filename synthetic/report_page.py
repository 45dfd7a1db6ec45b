"""The fidelity report as one HTML page with its PNG figures beside it (``index.html`` + ``*.png``)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthetic import plots

SWEEP_COLUMNS = (
    ("beta", "beta"),
    ("train_seconds", "train s"),
    ("mean_esg", "mean ESG"),
    ("discriminative_score", "discriminative (worst)"),
    ("discriminative_flat", "disc. flat"),
    ("discriminative_features", "disc. features"),
    ("predictive_score", "predictive (MAE)"),
    ("wasserstein_mean", "Wasserstein"),
    ("ks_mean", "KS"),
    ("kurtosis_synthetic", "kurtosis synth."),
    ("correlation_distance", "corr. distance"),
)

GENERATOR_COLUMNS = (
    ("generator", "generator"),
    ("train_seconds", "fit s"),
    ("mean_esg", "mean ESG"),
    ("discriminative_score", "discriminative (worst)"),
    ("predictive_score", "predictive (MAE)"),
    ("wasserstein_mean", "Wasserstein"),
    ("ks_mean", "KS"),
    ("kurtosis_synthetic", "kurtosis synth."),
    ("acf_abs_synthetic", "ACF |r| lags 1-4"),
    ("correlation_distance", "corr. distance"),
)

NOVELTY_COLUMNS = (
    ("generator", "generator"),
    ("dcr_ratio", "DCR ratio"),
    ("dcr_close_share", "DCR close share"),
    ("mia_auc", "MIA AUC"),
    ("alpha_precision", "alpha-precision"),
    ("beta_recall", "beta-recall"),
    ("authenticity", "authenticity"),
    ("tail_share_99", "beyond real 99% loss"),
    ("tail_share_999", "beyond real 99.9% loss"),
    ("beyond_worst_share", "beyond worst real"),
    ("tail_plausible_99", "tail plausible"),
)
NOVELTY_NOTE = (
    "<p>DCR ratio: median distance of synthetic windows to their closest training window over the same "
    "for held-out real windows (near or above 1: no copying; 0: copies). DCR close share: synthetic windows "
    "closer than the held-out 5% quantile (0.05 expected). MIA AUC: a distance membership-inference attack "
    "on training vs held-out windows (0.5: no leakage). alpha-precision, beta-recall, authenticity: Alaa "
    "et al. (2022) on the flattened windows (1, 1 best; authenticity 0 for a copy machine, held-out real "
    "windows reach the 'real' row's value). Tail: share of windows whose 5-day equal-weight book loss is "
    "beyond the real windows' 99% / 99.9% quantile (0.01 / 0.001 for the real distribution) or beyond the "
    "worst real window; tail plausible: share of those beyond 99% that the judge (the GAN's critic, the "
    "VAE's evidence lower bound; for a baseline, the first model's) scores at least at the 5% quantile of "
    "its scores on the real windows beyond 99%.</p>"
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, list):
        return ", ".join(f"{v:.3f}" for v in value)
    if value is None:
        return "n/a"
    return html.escape(str(value))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(key, ''))}</td>" for key, _ in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(
    folder: Path,
    real: np.ndarray,
    synthetic: np.ndarray,
    tickers: Sequence[str],
    metrics: dict[str, Any],
    title: str,
    context: dict[str, Any] | None = None,
    sweep_rows: Sequence[dict[str, Any]] | None = None,
    generator_rows: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """Write ``folder/index.html`` and its figures; ``real`` are the held-out windows, ``synthetic`` the
    model's, both (n, length, n_assets). Returns the HTML path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = [
        ("Return distributions", plots.distributions(real, synthetic, folder / "distributions.png")),
        (
            "Autocorrelation of returns and of absolute returns",
            plots.acfs(real, synthetic, folder / "acf.png"),
        ),
        ("Correlation matrices", plots.correlations(real, synthetic, tickers, folder / "correlations.png")),
    ]
    sections = []
    if context:
        sections.append("<h2>Run</h2>" + _table([context], [(k, k) for k in context]))
    if sweep_rows:
        figures.append(
            ("Mean ESG and discriminative score vs beta", plots.sweep(sweep_rows, folder / "sweep.png"))
        )
        sections.append("<h2>Beta sweep</h2>" + _table(sweep_rows, SWEEP_COLUMNS))
    if generator_rows:
        held_out = {
            "generator": "real (held out)",
            "kurtosis_synthetic": metrics.get("kurtosis_real", ""),
            "acf_abs_synthetic": metrics.get("acf_abs_real", ""),
        }
        sections.append(
            "<h2>Models and baselines (same split, same metrics)</h2>"
            + _table([*generator_rows, held_out], GENERATOR_COLUMNS)
        )
        if any("dcr_ratio" in r for r in generator_rows):
            reference = {
                "generator": "real (held out)",
                "dcr_ratio": 1.0,
                "dcr_close_share": 0.05,
                "mia_auc": 0.5,
                "authenticity": generator_rows[0].get("authenticity_holdout", ""),
                "tail_share_99": 0.01,
                "tail_share_999": 0.001,
            }
            sections.append(
                "<h2>Novelty, privacy and tail coverage</h2>"
                + NOVELTY_NOTE
                + _table([*generator_rows, reference], NOVELTY_COLUMNS)
            )
    metric_rows = [{"metric": k, "value": v} for k, v in metrics.items()]
    sections.append(
        "<h2>Fidelity (held-out real vs synthetic)</h2>"
        + _table(metric_rows, (("metric", "metric"), ("value", "value")))
    )
    sections += [
        f'<h2>{html.escape(name)}</h2><img src="{path.name}" alt="{html.escape(name)}">'
        for name, path in figures
    ]
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right}"
    )
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        "<p>Discriminative score: |out-of-fold accuracy - 0.5| of gradient-boosting classifiers telling "
        "held-out real windows from synthetic ones (0 = indistinguishable, 0.5 = told apart); the worst of "
        "two classifiers is reported. Returns are in units of each asset's daily volatility.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )
    path = folder / "index.html"
    path.write_text(page)
    return path
