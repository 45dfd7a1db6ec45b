"""Fidelity of synthetic return windows against held-out real ones.

Windows: arrays (n_windows, length, n_assets) of daily returns (any common scale).

* per-asset Wasserstein distance and Kolmogorov-Smirnov statistic of the pooled daily returns;
* kurtosis and skew (real vs synthetic, per asset);
* autocorrelation at lags 1..4 (inside 5-day windows) of returns and of absolute returns (volatility
  clustering);
* correlation-matrix distance (Frobenius norm of the difference of the two correlation matrices);
* TimeGAN's discriminative score: classifiers trained to tell real from synthetic windows, scored out
  of fold as |accuracy - 0.5| (0 = indistinguishable, 0.5 = trivially told apart); two gradient-boosting
  classifiers (flattened windows; flattened windows plus summary features) and the worst case of the two;
* TimeGAN's predictive score: a model trained on synthetic windows to predict the last day from the
  previous ones, tested on real windows (mean absolute error; lower is better).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats


def _pooled(windows: np.ndarray) -> np.ndarray:
    return windows.reshape(-1, windows.shape[-1])


def _acf(x: np.ndarray, lags: int = 5) -> np.ndarray:
    """Autocorrelation at lags 1..min(lags, length - 1) inside windows (n, length, assets), each asset
    centred on its mean over all windows and days, averaged over assets: (lags,)."""
    x = x - x.mean(axis=(0, 1), keepdims=True)
    var = (x**2).mean(axis=(0, 1))
    out = []
    for k in range(1, min(lags, x.shape[1] - 1) + 1):
        cov = (x[:, k:, :] * x[:, :-k, :]).mean(axis=(0, 1))
        out.append(np.nanmean(cov / np.where(var > 0, var, np.nan)))
    return np.array(out)


def window_features(windows: np.ndarray) -> np.ndarray:
    """Flattened window (length * n_assets) plus summaries a tree cannot easily build from single cells:
    each day's cross-sectional mean and dispersion, each asset's mean absolute return, the window's mean
    and largest absolute return and its mean pairwise cross-asset correlation. (n, features)."""
    n = len(windows)
    centred = windows - windows.mean(axis=1, keepdims=True)
    norm = np.sqrt((centred**2).sum(axis=1)) + 1e-12
    unit = centred / norm[:, None, :]
    corr = np.einsum("nta,ntb->nab", unit, unit)
    k = windows.shape[-1]
    mean_corr = (corr.sum(axis=(1, 2)) - k) / (k * (k - 1))
    return np.c_[
        windows.reshape(n, -1),
        windows.mean(axis=2),
        windows.std(axis=2),
        np.abs(windows).mean(axis=1),
        np.abs(windows).mean(axis=(1, 2)),
        np.abs(windows).max(axis=(1, 2)),
        mean_corr,
    ]


def discriminative_scores(
    real: np.ndarray, synthetic: np.ndarray, seed: int = 0, folds: int = 5
) -> dict[str, float]:
    """|accuracy - 0.5| of two gradient-boosting classifiers telling real from synthetic windows, accuracy
    measured out of fold (stratified ``folds``-fold cross-validation, so every window is scored once):

    * ``flat``: on the flattened windows (TimeGAN's protocol with a tree ensemble in place of the GRU);
    * ``features``: on the flattened windows plus :func:`window_features`' summaries (a stronger one).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    n = min(len(real), len(synthetic))
    y = np.r_[np.ones(n), np.zeros(n)]
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    out = {}
    for name, make in (("flat", lambda w: w.reshape(len(w), -1)), ("features", window_features)):
        x = np.vstack([make(real[:n]), make(synthetic[:n])])
        clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
        with threadpool_limits(1):  # OpenMP threads only spin on shared cores at these sizes
            out[name] = float(abs(cross_val_score(clf, x, y, cv=cv).mean() - 0.5))
    return out


def discriminative_score(real: np.ndarray, synthetic: np.ndarray, seed: int = 0) -> float:
    """The worst case (largest) of :func:`discriminative_scores`: 0 = indistinguishable, 0.5 = told apart."""
    return max(discriminative_scores(real, synthetic, seed).values())


def predictive_score(real: np.ndarray, synthetic: np.ndarray, seed: int = 0) -> float:
    """MAE on real windows of a ridge model trained on synthetic ones to predict the last day."""
    from sklearn.linear_model import Ridge

    def split(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return w[:, :-1, :].reshape(len(w), -1), w[:, -1, :]

    x_s, y_s = split(synthetic)
    x_r, y_r = split(real)
    model = Ridge(alpha=1.0, random_state=seed).fit(x_s, y_s)
    return float(np.abs(model.predict(x_r) - y_r).mean())


def fidelity(real: np.ndarray, synthetic: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Every metric of the module docstring, as plain numbers."""
    if real.ndim != 3 or synthetic.shape[1:] != real.shape[1:]:
        raise ValueError(
            f"windows shapes {real.shape} and {synthetic.shape} are invalid: expected (n, length, assets) "
            "with the same length and assets"
        )
    pr, ps = _pooled(real), _pooled(synthetic)
    n_assets = real.shape[-1]
    corr_r, corr_s = np.corrcoef(pr, rowvar=False), np.corrcoef(ps, rowvar=False)
    scores = discriminative_scores(real, synthetic, seed)
    return {
        "wasserstein_mean": float(
            np.mean([stats.wasserstein_distance(pr[:, i], ps[:, i]) for i in range(n_assets)])
        ),
        "ks_mean": float(np.mean([stats.ks_2samp(pr[:, i], ps[:, i]).statistic for i in range(n_assets)])),
        "kurtosis_real": float(np.mean(stats.kurtosis(pr, axis=0))),
        "kurtosis_synthetic": float(np.mean(stats.kurtosis(ps, axis=0))),
        "skew_real": float(np.mean(stats.skew(pr, axis=0))),
        "skew_synthetic": float(np.mean(stats.skew(ps, axis=0))),
        "acf_returns_real": _acf(real).round(4).tolist(),
        "acf_returns_synthetic": _acf(synthetic).round(4).tolist(),
        "acf_abs_real": _acf(np.abs(real)).round(4).tolist(),
        "acf_abs_synthetic": _acf(np.abs(synthetic)).round(4).tolist(),
        "correlation_distance": float(np.linalg.norm(corr_r - corr_s)),
        **{f"discriminative_{k}": v for k, v in scores.items()},
        "discriminative_score": max(scores.values()),
        "predictive_score": predictive_score(real, synthetic, seed),
    }
