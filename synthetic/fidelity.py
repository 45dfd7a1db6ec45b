"""Fidelity of synthetic return windows against held-out real ones.

Windows: arrays (n_windows, length, n_assets) of daily returns (any common scale).

* per-asset Wasserstein distance and Kolmogorov-Smirnov statistic of the pooled daily returns;
* kurtosis and skew (real vs synthetic, per asset);
* autocorrelation at lags 1..5 of returns and of absolute returns (volatility clustering);
* correlation-matrix distance (Frobenius norm of the difference of the two correlation matrices);
* TimeGAN's discriminative score: a classifier trained to tell real from synthetic windows, scored on
  held-out windows as |accuracy - 0.5| (0 = indistinguishable, 0.5 = trivially told apart);
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
    """Mean over assets and windows of the autocorrelation at lags 1..lags, (lags,)."""
    x = x - x.mean(axis=1, keepdims=True)
    denom = (x ** 2).sum(axis=1)
    out = []
    for k in range(1, lags + 1):
        num = (x[:, k:, :] * x[:, :-k, :]).sum(axis=1)
        out.append(np.nanmean(num / np.where(denom > 0, denom, np.nan)))
    return np.array(out)


def discriminative_score(real: np.ndarray, synthetic: np.ndarray, seed: int = 0) -> float:
    """|held-out accuracy - 0.5| of a gradient-boosting classifier on flattened windows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    n = min(len(real), len(synthetic))
    x = np.vstack([real[:n].reshape(n, -1), synthetic[:n].reshape(n, -1)])
    y = np.r_[np.ones(n), np.zeros(n)]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(x_tr, y_tr)
    return float(abs((clf.predict(x_te) == y_te).mean() - 0.5))


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
        raise ValueError(f"windows shapes {real.shape} and {synthetic.shape} are invalid: expected (n, length, assets) "
                         "with the same length and assets")
    pr, ps = _pooled(real), _pooled(synthetic)
    n_assets = real.shape[-1]
    corr_r, corr_s = np.corrcoef(pr, rowvar=False), np.corrcoef(ps, rowvar=False)
    return {
        "wasserstein_mean": float(np.mean([stats.wasserstein_distance(pr[:, i], ps[:, i]) for i in range(n_assets)])),
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
        "discriminative_score": discriminative_score(real, synthetic, seed),
        "predictive_score": predictive_score(real, synthetic, seed),
    }
