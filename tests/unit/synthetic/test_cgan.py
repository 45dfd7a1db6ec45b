"""The conditional WGAN: sound conditional samples, ESG tilt with beta, exact resume from a checkpoint."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from synthetic.cgan import ConditionalGAN, GANConfig, regime_edges, regimes

SMALL = dict(hidden=32, noise=8, batch_size=64, epochs=6, seed=1)


@pytest.fixture(scope="module")
def data():
    from marketdata.feed import SkfolioFeed
    from marketdata.reference import read_reference_csv
    from synthetic.data import split_windows

    closes = (
        SkfolioFeed()
        .fetch(date(2006, 1, 3), date(2012, 12, 31))
        .pivot(index="date", columns="ticker", values="close")
    )
    esg = read_reference_csv("esg").set_index("ticker").loc[closes.columns, "esg_score"].to_numpy()
    return split_windows(closes, seed=0).train[::2], esg


def test_regimes_when_quantile_edges_then_balanced_bins_and_median_split_by_default():
    windows = np.random.default_rng(0).normal(size=(400, 5, 3)) * np.linspace(0.5, 2, 400)[:, None, None]
    edges = regime_edges(windows, 4)
    assert np.bincount(regimes(windows, edges)).tolist() == [100, 100, 100, 100]
    assert regimes(windows).sum() == 200 and regimes(windows)[-1] == 1


def test_cgan_when_trained_then_samples_finite_right_shape_and_turbulent_regime_is_wilder():
    rng = np.random.default_rng(0)
    windows = rng.standard_normal((800, 5, 4)) * rng.choice([0.3, 1.0, 2.0, 4.0], 800)[:, None, None]
    model = ConditionalGAN(GANConfig(**{**SMALL, "epochs": 100, "lr": 1e-3, "factors": 2})).fit(
        windows, np.array([0.2, 0.4, 0.6, 0.8])
    )
    calm, labels = model.sample(300, regime=0, seed=5)
    wild, _ = model.sample(300, regime=3, seed=5)
    assert calm.shape == (300, 5, 4) and np.isfinite(calm).all() and np.isfinite(wild).all()
    assert (labels == 0).all() and np.abs(wild).mean() > 2 * np.abs(calm).mean()
    mixed, mixed_labels = model.sample(400, seed=6)
    assert set(mixed_labels) == {0, 1, 2, 3}
    assert np.array_equal(model.sample(10, seed=7)[0], model.sample(10, seed=7)[0])
    assert model.version().startswith("cgan-wgangp-2-") and len(model.history_) == 100
    with pytest.raises(ValueError, match="regime"):
        model.sample(1, regime=4)
    with pytest.raises(ValueError, match="n=0"):
        model.sample(0)
    with pytest.raises(RuntimeError, match="not fitted"):
        ConditionalGAN().sample(1)


def test_cgan_when_beta_grows_then_mean_esg_of_samples_rises(data):
    windows, esg = data
    scores = []
    for beta in (0.0, 2.0, 8.0):
        model = ConditionalGAN(GANConfig(**{**SMALL, "epochs": 8, "beta": beta})).fit(windows, esg)
        samples, _ = model.sample(2000, seed=2)
        assert samples.shape == (2000, 5, 20) and np.isfinite(samples).all()
        scores.append(model.esg_score(samples, esg))  # the score the loss pushes on
    assert scores[0] < scores[1] < scores[2]


def test_cgan_when_interrupted_then_resume_from_checkpoint_equals_uninterrupted_fit(data, tmp_path):
    windows, esg = data
    path = tmp_path / "checkpoint.pt"
    cfg = GANConfig(**{**SMALL, "epochs": 4, "checkpoint_every": 2})
    whole = ConditionalGAN(cfg).fit(windows, esg)
    ConditionalGAN(GANConfig(**{**SMALL, "epochs": 2})).fit(windows, esg, checkpoint=path)  # stops after 2
    resumed = ConditionalGAN(cfg).fit(windows, esg, checkpoint=path)
    assert resumed.resumed_from_ == 2 and len(resumed.history_) == 4
    assert np.array_equal(resumed.sample(50, seed=3)[0], whole.sample(50, seed=3)[0])
    again = ConditionalGAN(cfg).fit(windows, esg, checkpoint=path)  # finished: nothing left to train
    assert again.resumed_from_ == 4 and again.version() == whole.version()
    loaded = ConditionalGAN.load(path)
    assert np.array_equal(loaded.sample(50, seed=3)[0], whole.sample(50, seed=3)[0])
    critic = loaded.plausibility(windows[:40])  # the critic is restored too (tail plausibility)
    assert critic.shape == (40,) and np.isfinite(critic).all()
    assert np.array_equal(critic, whole.plausibility(windows[:40]))
    other = ConditionalGAN(GANConfig(**{**SMALL, "epochs": 4, "beta": 1.0})).fit(
        windows, esg, checkpoint=path
    )
    assert other.resumed_from_ == 0  # a checkpoint of another configuration is not resumed


def test_cgan_when_input_invalid_then_errors_name_the_problem(data, tmp_path):
    windows, esg = data
    with pytest.raises(ValueError, match="windows shape"):
        ConditionalGAN(GANConfig(epochs=1)).fit(windows[:, :, :3], esg)
    with pytest.raises(ValueError, match="beta"):
        ConditionalGAN(GANConfig(epochs=1, beta=-1)).fit(windows, esg)
    with pytest.raises(FileNotFoundError, match="train first"):
        ConditionalGAN.load(tmp_path / "missing.pt")
