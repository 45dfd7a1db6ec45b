"""The HTML fidelity report: figures written as small PNGs, the sweep table and plot, metrics listed."""

from __future__ import annotations

import numpy as np

from synthetic.report_page import write_report


def test_write_report_when_sweep_given_then_html_links_every_png_and_lists_rows(tmp_path):
    rng = np.random.default_rng(0)
    real = rng.standard_t(4, (200, 5, 4))
    synthetic = rng.normal(size=(200, 5, 4))
    rows = [
        {
            "beta": b,
            "train_seconds": 1.0,
            "mean_esg": 0.5 + b / 10,
            "discriminative_score": 0.1 + b / 20,
            "discriminative_flat": 0.1,
            "discriminative_features": 0.1,
            "predictive_score": 0.8,
            "wasserstein_mean": 0.1,
            "ks_mean": 0.05,
            "kurtosis_synthetic": 3.0,
            "correlation_distance": 1.0,
        }
        for b in (0.0, 0.5, 2.0)
    ]
    path = write_report(
        tmp_path / "r",
        real,
        synthetic,
        ["A", "B", "C", "D"],
        {"ks_mean": 0.05, "acf": [0.1, 0.2]},
        "Test report",
        context={"command": "qb synth report"},
        sweep_rows=rows,
        generator_rows=[*rows, {"generator": "copy machine", "discriminative_score": 0.0123}],
    )
    page = path.read_text()
    assert "Models and baselines" in page and "<td>copy machine</td>" in page and "<td>0.0123</td>" in page
    pngs = sorted(p.name for p in (tmp_path / "r").glob("*.png"))
    assert pngs == ["acf.png", "correlations.png", "distributions.png", "sweep.png"]
    assert all(f'src="{name}"' in page for name in pngs)
    assert all((tmp_path / "r" / name).read_bytes()[:4] == b"\x89PNG" for name in pngs)
    assert sum((tmp_path / "r" / n).stat().st_size for n in pngs) < 300_000
    assert "<td>0.7000</td>" in page and "qb synth report" in page and "0.100, 0.200" in page


def test_write_report_when_no_sweep_then_three_figures_and_no_sweep_table(tmp_path):
    windows = np.random.default_rng(1).normal(size=(50, 5, 3))
    page = write_report(tmp_path, windows, windows, ["A", "B", "C"], {"x": 1}, "run").read_text()
    assert "Beta sweep" not in page and "sweep.png" not in page
    assert len(list(tmp_path.glob("*.png"))) == 3
