"""Novelty, privacy and tail coverage of synthetic windows: does a generator make new markets, or replay the
ones it was trained on, and does it reach the tails?

Windows are (n, length, n_assets) in units of each asset's training volatility, compared as flattened
vectors (Euclidean distance). ``train`` are the generator's training windows, ``test`` the held-out real
windows it never saw (:mod:`synthetic.data`).

* **Distance to closest record (DCR)**: each synthetic window's distance to its nearest training window,
  against the same distance for held-out real windows. ``dcr_ratio`` = median synthetic DCR / median
  held-out DCR: near or above 1, the generator is no closer to its training data than new real data is;
  near 0, it copies. ``dcr_close_share``: share of synthetic windows closer to the training set than the
  5% quantile of held-out DCR (0.05 for a generator that does not copy).
* **Membership inference** (distance attack): an attacker scores a real window by minus its distance to
  the nearest synthetic window and guesses "in the training set" when the score is high. ``mia_auc`` is
  the attack's ROC AUC on as many training windows (members) as held-out ones (non-members): 0.5 = no
  leakage, 1 = every member recognised.
* **alpha-precision, beta-recall, authenticity** (Alaa et al., ICML 2022, their estimator on the
  identity embedding): the alpha-support of the held-out windows is the ball around their mean holding a
  share alpha of them; ``alpha_precision`` = 1 - 2 * mean over alpha of |P_alpha - alpha| with P_alpha the
  share of synthetic windows inside it (1 = the synthetic mass sits where the real mass sits, at every
  level); ``beta_recall`` the same with R_beta the share of held-out windows whose nearest synthetic
  window is no farther than their own k-th (5th) nearest other held-out window (k = 1 in the paper, whose
  recall then tops out near 0.5 for a sample of the real distribution itself) and lies in the synthetic
  beta-support (the ball around the synthetic mean holding a share beta of those nearest synthetic
  windows): 1 = every part of the real distribution is reached. ``authenticity``: share of synthetic
  windows farther from their nearest training window than that training window is from its own nearest
  training neighbour (a copy is not authentic). In 100 dimensions the nearest training window of any
  point tends to sit in a dense region, so new real data scores high, not 0.5: ``authenticity_holdout``,
  the same rule on held-out real windows, is the level a generator of genuinely new data reaches.
* **Tail coverage**: the loss of an equal-weight book over a window, ``-sum_t mean_i(scale_i x_ti)``
  (simple returns). ``tail_share_99`` / ``tail_share_999``: share of synthetic windows beyond the real
  windows' (training and held-out) 99% / 99.9% loss quantiles (0.01 / 0.001 for the real distribution);
  ``beyond_worst_share``: share beyond the worst real window (scenarios history did not contain).
  ``tail_plausible_99``: of the synthetic windows beyond the 99% quantile, the share a judge scores at
  least as plausible as the 5% quantile of its scores on the real windows beyond that quantile (the judge
  is a callable, higher = more plausible: the GAN's critic, the VAE's evidence lower bound).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

ALPHAS = np.linspace(0.05, 0.95, 19)


def _flat(windows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(windows.reshape(len(windows), -1), dtype=np.float64)


def book_loss(windows: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Loss (n,) of an equal-weight book over each window: minus the sum over days of the mean simple
    return across assets (``scale`` turns volatility units into simple returns; None: as given)."""
    values = windows if scale is None else windows * scale
    return -values.mean(axis=2).sum(axis=1)


def _nn(reference: np.ndarray, k: int = 1) -> Any:
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k, algorithm="brute").fit(reference)


class NoveltyReference:
    """The real side of every figure, computed once: ``score(synthetic)`` then measures one generator."""

    def __init__(
        self,
        train: np.ndarray,
        test: np.ndarray,
        scale: np.ndarray | None = None,
        k: int = 5,
        seed: int = 0,
    ) -> None:
        if train.ndim != 3 or test.ndim != 3 or train.shape[1:] != test.shape[1:]:
            raise ValueError(
                f"train shape {train.shape} and test shape {test.shape} are invalid: expected "
                "(n, length, n_assets) windows of the same length and assets"
            )
        if len(test) <= k or len(train) < 2:
            raise ValueError(
                f"test windows={len(test)} and train windows={len(train)} are invalid: expected more than "
                f"k={k} held-out and at least 2 training windows"
            )
        self.shape, self.k, self.scale = train.shape[1:], k, scale
        self.train, self.test = _flat(train), _flat(test)
        self.train_index = _nn(self.train, 2)
        # each training window's distance to its nearest other training window (authenticity's yardstick)
        self.train_self = self.train_index.kneighbors(self.train)[0][:, 1]
        self.test_dcr, nearest = (a[:, 0] for a in self.train_index.kneighbors(self.test, 1))
        self.test_authentic = float(np.mean(self.test_dcr > self.train_self[nearest]))
        members = np.random.default_rng(seed).choice(
            len(train), size=min(len(test), len(train)), replace=False
        )
        self.members = self.train[members]
        # alpha-support of the held-out windows, and each one's k-th nearest other held-out window
        self.center = self.test.mean(axis=0)
        self.test_radius = np.linalg.norm(self.test - self.center, axis=1)
        self.test_knn = _nn(self.test, k + 1).kneighbors(self.test)[0][:, k]
        self.real_loss = book_loss(np.r_[train, test], scale)
        self.q99, self.q999 = np.quantile(self.real_loss, [0.99, 0.999])
        self.real_tail = np.r_[train, test][self.real_loss > self.q99]

    def score(
        self,
        synthetic: np.ndarray,
        judge: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> dict[str, Any]:
        """Every figure of the module docstring for ``synthetic`` windows; the alpha/beta figures on the
        first ``len(test)`` of them (equal sizes), the others on all; ``tail_plausible_99`` is None
        without a judge or without synthetic tail windows."""
        if synthetic.ndim != 3 or synthetic.shape[1:] != self.shape or len(synthetic) <= self.k:
            raise ValueError(
                f"synthetic shape {synthetic.shape} is invalid: expected (n > {self.k}, "
                f"{', '.join(map(str, self.shape))})"
            )
        flat = _flat(synthetic)
        dcr, nearest = (a[:, 0] for a in self.train_index.kneighbors(flat, 1))
        holdout_median = float(np.median(self.test_dcr))
        out: dict[str, Any] = {
            "dcr_median": float(np.median(dcr)),
            "dcr_holdout_median": holdout_median,
            "dcr_ratio": float(np.median(dcr) / holdout_median) if holdout_median > 0 else float("nan"),
            "dcr_close_share": float(np.mean(dcr < np.quantile(self.test_dcr, 0.05))),
            "mia_auc": self._mia(flat),
            **self._alpha_beta(flat[: len(self.test)]),
            "authenticity": float(np.mean(dcr > self.train_self[nearest])),
            "authenticity_holdout": self.test_authentic,
        }
        loss = book_loss(synthetic, self.scale)
        tail = synthetic[loss > self.q99]
        out.update(
            tail_share_99=float(np.mean(loss > self.q99)),
            tail_share_999=float(np.mean(loss > self.q999)),
            beyond_worst_share=float(np.mean(loss > self.real_loss.max())),
            tail_windows=int(len(tail)),
            tail_plausible_99=None,
        )
        if judge is not None and len(tail):
            threshold = np.quantile(judge(self.real_tail), 0.05)
            out["tail_plausible_99"] = float(np.mean(judge(tail) >= threshold))
        return out

    def _mia(self, synthetic: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        index = _nn(synthetic, 1)
        members = -index.kneighbors(self.members)[0][:, 0]
        others = -index.kneighbors(self.test)[0][:, 0]
        labels = np.r_[np.ones(len(members)), np.zeros(len(others))]
        return float(roc_auc_score(labels, np.r_[members, others]))

    def _alpha_beta(self, synthetic: np.ndarray) -> dict[str, float]:
        radius = np.linalg.norm(synthetic - self.center, axis=1)
        to_synth, closest = (a[:, 0] for a in _nn(synthetic, 1).kneighbors(self.test))
        reached = to_synth <= self.test_knn
        closest_radius = np.linalg.norm(synthetic[closest] - synthetic.mean(axis=0), axis=1)
        precision, recall = [], []
        for alpha in ALPHAS:
            precision.append(np.mean(radius <= np.quantile(self.test_radius, alpha)))
            recall.append(np.mean(reached & (closest_radius <= np.quantile(closest_radius, alpha))))
        return {
            "alpha_precision": float(1 - 2 * np.mean(np.abs(np.array(precision) - ALPHAS))),
            "beta_recall": float(1 - 2 * np.mean(np.abs(np.array(recall) - ALPHAS))),
        }
