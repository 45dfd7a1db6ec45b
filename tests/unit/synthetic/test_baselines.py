"""The baselines: a normal without tails, a GARCH-t with them, a copy machine that copies; all seeded."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from synthetic.baselines import Baselines, fit_ccc_garch_t, normal_iid, resample_windows


def _garch_days(n: int = 1500, assets: int = 3, seed: int = 0) -> np.ndarray:
    """Correlated GARCH(1,1)-t days (alpha 0.1, beta 0.85, nu 5): the process the baseline fits."""
    rng = np.random.default_rng(seed)
    corr = np.full((assets, assets), 0.5) + 0.5 * np.eye(assets)
    chol = np.linalg.cholesky(corr)
    h, out = np.ones(assets), np.empty((n, assets))
    for t in range(n):
        e = (rng.standard_t(5, assets) * np.sqrt(3 / 5)) @ chol.T
        out[t] = np.sqrt(h) * e
        h = 0.05 + 0.1 * out[t] ** 2 + 0.85 * h
    return out


def _windows(days: np.ndarray, length: int = 5) -> np.ndarray:
    return np.stack([days[s : s + length] for s in range(len(days) - length + 1)])


def test_normal_iid_when_sampled_then_no_excess_kurtosis_and_training_covariance():
    days = _garch_days()
    sample = normal_iid(days, 2000, 5, seed=1)
    pooled = sample.reshape(-1, 3)
    assert sample.shape == (2000, 5, 3)
    assert np.abs(stats.kurtosis(pooled, axis=0)).max() < 0.15
    assert np.abs(np.corrcoef(pooled, rowvar=False) - np.corrcoef(days, rowvar=False)).max() < 0.05


def test_ccc_garch_t_when_fitted_on_garch_data_then_heavier_tails_and_clustering_than_normal():
    days = _garch_days()
    fit = fit_ccc_garch_t(days)
    assert np.all((fit.alpha > 0.02) & (fit.alpha + fit.beta < 1) & (fit.alpha + fit.beta > 0.8))
    assert np.all((fit.nu > 3) & (fit.nu < 12))
    assert np.all(np.abs(fit.corr[np.triu_indices(3, 1)] - 0.5) < 0.1)
    garch = fit.sample(2000, 5, seed=2)
    assert fit.h_start.shape == days.shape and np.all(fit.h_start > 0)
    normal = normal_iid(days, 2000, 5, seed=2)
    kurt = {k: stats.kurtosis(v.reshape(-1, 3), axis=0).mean() for k, v in (("g", garch), ("n", normal))}
    assert kurt["g"] > 1.0 > kurt["n"]
    # volatility clustering: |r| on consecutive days correlates across the window
    a = np.abs(garch)
    lag1 = np.mean([np.corrcoef(a[:, 0, i], a[:, 1, i])[0, 1] for i in range(3)])
    assert lag1 > 0.05


def test_resample_windows_when_drawn_then_every_window_is_a_training_window():
    train = _windows(_garch_days(300))
    copies = resample_windows(train, 100, seed=3)
    distance = np.linalg.norm(copies.reshape(100, 1, -1) - train.reshape(1, len(train), -1), axis=2)
    assert np.all(distance.min(axis=1) == 0)


def test_baselines_when_same_seed_then_same_windows_and_other_seed_differs():
    days = _garch_days(400)
    fitted = Baselines(_windows(days), days)
    for name in ("normal", "ccc_garch_t", "copy"):
        a, b, c = (fitted.sample(name, 50, s) for s in (7, 7, 8))
        assert a.shape == (50, 5, 3) and np.array_equal(a, b) and not np.array_equal(a, c)


def test_baselines_when_input_bad_then_error_names_the_field():
    days = _garch_days(200)
    with pytest.raises(ValueError, match="baseline='gan'"):
        Baselines(_windows(days), days).sample("gan", 5, 0)
    with pytest.raises(ValueError, match="train_days shape"):
        normal_iid(days[:10], 5, 5, 0)
    with pytest.raises(ValueError, match="n=0"):
        resample_windows(_windows(days), 0, 0)
