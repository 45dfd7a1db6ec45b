"""The fidelity metrics are sound: real vs real looks identical, noise vs real is told apart."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from synthetic.fidelity import discriminative_score, fidelity


@pytest.fixture(scope="module")
def windows():
    from marketdata.feed import SkfolioFeed

    closes = SkfolioFeed().fetch(date(2005, 1, 3), date(2019, 12, 31)).pivot(index="date", columns="ticker", values="close")
    r = closes.pct_change().dropna().to_numpy()
    r = r / r.std(axis=0)
    length = 10
    w = np.stack([r[i:i + length] for i in range(0, len(r) - length, length)])
    rng = np.random.default_rng(0)
    return w[rng.permutation(len(w))]


def test_discriminative_score_when_real_vs_real_then_near_zero(windows):
    half = len(windows) // 2
    assert discriminative_score(windows[:half], windows[half:2 * half]) < 0.07


def test_discriminative_score_when_noise_vs_real_then_near_half(windows):
    # Independent noise scaled to the same variance: no cross-asset correlation, no fat tails.
    noise = np.random.default_rng(1).normal(0, 1, windows.shape) * windows.std()
    assert discriminative_score(windows, noise) > 0.35


def test_fidelity_when_real_vs_shuffled_assets_then_correlation_distance_and_clustering_show(windows):
    half = len(windows) // 2
    same = fidelity(windows[:half], windows[half:2 * half])
    rng = np.random.default_rng(2)
    iid = rng.standard_t(4, windows.shape) / np.sqrt(2)
    other = fidelity(windows[:half], iid[:half])
    assert same["correlation_distance"] < other["correlation_distance"]
    assert same["acf_abs_real"][0] > other["acf_abs_synthetic"][0]  # real returns cluster in volatility
    assert same["ks_mean"] < other["ks_mean"] and same["kurtosis_real"] > 1
    with pytest.raises(ValueError, match="shapes"):
        fidelity(windows, windows[:, :5])
