"""Novelty and tail coverage: a copy machine is caught (DCR ratio 0, authenticity 0, membership leaks), a
fresh sample of the real distribution is not; the tail shares count what they say."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic.baselines import normal_iid, resample_windows
from synthetic.novelty import NoveltyReference, book_loss


def _real(n: int, seed: int) -> np.ndarray:
    """Windows (n, 3, 4) of i.i.d. Student-t days (nu 5, unit variance): the 'real' market."""
    return np.random.default_rng(seed).standard_t(5, (n, 3, 4)) * np.sqrt(3 / 5)


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, NoveltyReference]:
    train = _real(600, 0)
    return train, NoveltyReference(train, _real(200, 1), seed=0)


def test_score_when_copy_machine_then_ratio_and_authenticity_zero_and_membership_leaks(reference):
    train, ref = reference
    out = ref.score(resample_windows(train, 600, seed=2))
    assert out["dcr_median"] == 0 and out["dcr_ratio"] == 0 and out["dcr_close_share"] == 1
    assert out["authenticity"] == 0
    assert out["mia_auc"] > 0.7  # ~63% of members are copied exactly: the attack recognises them


def test_score_when_fresh_sample_of_the_real_distribution_then_no_copying_signal(reference):
    _, ref = reference
    out = ref.score(_real(600, 3))
    assert 0.85 < out["dcr_ratio"] < 1.15 and out["dcr_close_share"] < 0.12
    assert abs(out["mia_auc"] - 0.5) < 0.08
    assert out["authenticity"] > 0.8 * ref.test_authentic > 0.3
    assert out["alpha_precision"] > 0.8 and out["beta_recall"] > 0.5


def test_score_when_normal_sample_then_novel_but_thin_tailed(reference):
    train, ref = reference
    days = train.reshape(-1, 4)
    out = ref.score(normal_iid(days, 600, 3, seed=4))
    fresh = ref.score(_real(600, 5))
    assert out["dcr_ratio"] > 0.85 and out["authenticity"] > 0.3
    # the normal puts less mass beyond the real 99.9% loss quantile than a real sample does
    assert out["tail_share_999"] <= fresh["tail_share_999"]
    assert out["tail_windows"] == round(out["tail_share_99"] * 600)


def test_tail_plausibility_when_judge_given_then_share_of_tail_windows_it_accepts(reference):
    _, ref = reference
    synthetic = _real(600, 6)
    accept_all = ref.score(synthetic, judge=lambda w: np.zeros(len(w)))
    # a judge that rejects every window with a loss beyond any real one
    strict = ref.score(synthetic * 3, judge=lambda w: -book_loss(w))
    assert accept_all["tail_plausible_99"] == 1.0
    assert strict["tail_windows"] > 0 and strict["tail_plausible_99"] < 0.5
    assert ref.score(synthetic)["tail_plausible_99"] is None


def test_book_loss_is_minus_the_summed_mean_return():
    w = np.zeros((1, 2, 2))
    w[0, 0] = [0.01, 0.03]
    w[0, 1] = [-0.04, 0.0]
    assert book_loss(w) == pytest.approx([0.0])
    assert book_loss(w, scale=np.array([2.0, 0.0])) == pytest.approx([0.03])


def test_reference_when_shapes_bad_then_error_names_them():
    with pytest.raises(ValueError, match="train shape"):
        NoveltyReference(_real(50, 0), _real(50, 1)[:, :2])
    ref = NoveltyReference(_real(50, 0), _real(20, 1))
    with pytest.raises(ValueError, match="synthetic shape"):
        ref.score(_real(20, 2)[:, :, :3])
