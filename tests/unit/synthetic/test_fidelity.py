"""The fidelity metrics are sound: real vs real looks identical, noise vs real is told apart."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from synthetic.fidelity import discriminative_score, discriminative_scores, fidelity, window_features


@pytest.fixture(scope="module")
def windows():
    from marketdata.feed import SkfolioFeed

    closes = (
        SkfolioFeed()
        .fetch(date(2005, 1, 3), date(2019, 12, 31))
        .pivot(index="date", columns="ticker", values="close")
    )
    r = closes.pct_change().dropna().to_numpy()
    r = r / r.std(axis=0)
    length = 5
    w = np.stack([r[i : i + length] for i in range(0, len(r) - length, length)])
    rng = np.random.default_rng(0)
    return w[rng.permutation(len(w))]


def test_discriminative_score_when_real_vs_real_then_near_zero_for_both_classifiers(windows):
    half = len(windows) // 2
    scores = discriminative_scores(windows[:half], windows[half : 2 * half])
    assert set(scores) == {"flat", "features"} and max(scores.values()) < 0.06
    tiny = np.random.default_rng(3).normal(size=(60, 2, 2))
    assert discriminative_score(tiny[:30], tiny[30:] * 5) == max(
        discriminative_scores(tiny[:30], tiny[30:] * 5).values()
    )


def test_discriminative_score_when_noise_vs_real_then_near_half(windows):
    # Independent noise scaled to the same variance: no cross-asset correlation, no fat tails.
    noise = np.random.default_rng(1).normal(0, 1, windows.shape) * windows.std()
    scores = discriminative_scores(windows, noise)
    assert min(scores.values()) > 0.35


def test_window_features_when_computed_then_flat_window_plus_cross_asset_summaries(windows):
    feats = window_features(windows[:3])
    n_len, n_assets = windows.shape[1:]
    assert feats.shape == (3, n_len * n_assets + 2 * n_len + n_assets + 3)
    perfectly_correlated = np.repeat(np.arange(10.0)[None, :, None], 4, axis=2)
    assert window_features(perfectly_correlated)[0, -1] == pytest.approx(1.0)


def test_fidelity_when_real_vs_shuffled_assets_then_correlation_distance_and_clustering_show(windows):
    half = 200
    same = fidelity(windows[:half], windows[half : 2 * half])
    rng = np.random.default_rng(2)
    iid = rng.standard_t(4, windows.shape) / np.sqrt(2)
    other = fidelity(windows[:half], iid[:half])
    assert same["correlation_distance"] < other["correlation_distance"]
    assert (
        same["acf_abs_real"][0] > 0.1 > abs(other["acf_abs_synthetic"][0])
    )  # real returns cluster in volatility
    assert len(same["acf_returns_real"]) == 4  # lags 1..4 inside 5-day windows
    assert same["ks_mean"] < other["ks_mean"] and same["kurtosis_real"] > 1
    with pytest.raises(ValueError, match="shapes"):
        fidelity(windows, windows[:, :3])
