"""The ESG constraint loss has the design's form and gradient; the VAE leans toward ESG as beta grows."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
import torch
from scipy import stats

from synthetic.esg import esg_constrained_loss, esg_score
from synthetic.vae import VAEConfig, WindowVAE


def test_esg_loss_when_evaluated_then_recon_plus_beta_times_one_minus_score_and_its_gradient():
    x = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]], requires_grad=True)
    esg = torch.tensor([0.2, 0.9, 0.5])
    recon = torch.tensor(0.3)
    w = torch.softmax(x.detach(), dim=-1)
    score = (w @ esg).mean()
    loss = esg_constrained_loss(recon, x, esg, beta=2.0)
    assert float(loss) == pytest.approx(0.3 + 2.0 * (1 - float(score)))
    loss.backward()
    # d/dx of -beta * mean(w . esg): softmax Jacobian, w_i (esg_i - w . esg), over the batch of 2
    expected = -2.0 * w * (esg - (w @ esg)[:, None]) / 2
    assert torch.allclose(x.grad, expected, atol=1e-6)
    assert 0 <= float(esg_score(torch.randn(5, 3) * 10, esg).min()) and float(esg_score(x, esg).max()) <= 1
    with pytest.raises(ValueError, match="beta"):
        esg_constrained_loss(recon, x, esg, beta=-1)


@pytest.fixture(scope="module")
def real_cross_sections():
    from marketdata.feed import SkfolioFeed
    from marketdata.reference import read_reference_csv

    closes = (
        SkfolioFeed()
        .fetch(date(2018, 1, 2), date(2019, 12, 31))
        .pivot(index="date", columns="ticker", values="close")
    )
    returns = closes.pct_change().dropna()
    data = (returns / returns.std()).to_numpy()
    esg = read_reference_csv("esg").set_index("ticker").loc[closes.columns, "esg_score"].to_numpy()
    return data, esg


def test_vae_when_beta_grows_then_mean_esg_of_samples_rises_and_samples_are_sound(real_cross_sections):
    data, esg = real_cross_sections
    scores = []
    for beta in (0.0, 1.0, 4.0):
        model = WindowVAE(VAEConfig(epochs=15, beta=beta, seed=3)).fit(data, esg)
        samples, labels = model.sample(500, seed=4)
        assert samples.shape == (500, data.shape[1]) and np.isfinite(samples).all() and labels.shape == (500,)
        assert model.history_[-1]["loss"] < model.history_[0]["loss"]
        scores.append(model.esg_score(samples, esg))  # the score the loss pushes on
    assert scores[0] < scores[1] < scores[2]


def test_vae_when_trained_then_samples_carry_the_data_scale_and_fat_tails_not_just_the_decoder_mean(
    real_cross_sections,
):
    data, esg = real_cross_sections  # unit variance per asset, excess kurtosis 4.6
    samples, _ = WindowVAE(VAEConfig(epochs=15, seed=3)).fit(data, esg).sample(4000, seed=4)
    assert 0.7 < samples.std(axis=0).mean() < 1.3  # a decoder mean alone gave 0.36
    assert stats.kurtosis(samples, axis=0).mean() > 2.5  # the noise scale varies with z (mean alone: 0.7)


def test_vae_when_windows_and_checkpoint_then_window_samples_and_exact_resume(real_cross_sections, tmp_path):
    data, esg = real_cross_sections
    windows = np.stack([data[i : i + 5] for i in range(0, len(data) - 5, 5)])
    whole = WindowVAE(VAEConfig(epochs=4, seed=5)).fit(windows, esg)
    WindowVAE(VAEConfig(epochs=2, seed=5)).fit(windows, esg, checkpoint=tmp_path / "vae.pt")
    resumed = WindowVAE(VAEConfig(epochs=4, seed=5)).fit(windows, esg, checkpoint=tmp_path / "vae.pt")
    assert resumed.resumed_from_ == 2
    assert np.array_equal(resumed.sample(20, seed=1)[0], whole.sample(20, seed=1)[0])
    loaded = WindowVAE.load(tmp_path / "vae.pt")
    samples, labels = loaded.sample(20, seed=1)
    assert samples.shape == (20, 5, 20) and set(labels) <= {0, 1, 2, 3}
    assert loaded.version() == whole.version() and loaded.version().startswith("vae-3-")
    elbo = loaded.plausibility(windows)  # its tail-plausibility judge: real windows beat blown-up ones
    assert np.array_equal(elbo, whole.plausibility(windows))
    assert np.median(elbo) > np.median(loaded.plausibility(windows * 20))
    with pytest.raises(ValueError, match="unconditional"):
        loaded.sample(1, regime=0)
    with pytest.raises(ValueError, match="n=0"):
        loaded.sample(0)
    with pytest.raises(RuntimeError, match="not fitted"):
        WindowVAE().sample(1)
    with pytest.raises(FileNotFoundError, match="train first"):
        WindowVAE.load(tmp_path / "missing.pt")


def test_vae_when_data_malformed_then_error_names_shape():
    with pytest.raises(ValueError, match="shape"):
        WindowVAE(VAEConfig(epochs=1)).fit(np.full((10, 3), np.nan), np.ones(3) / 2)
    with pytest.raises(ValueError, match="beta"):
        WindowVAE(VAEConfig(epochs=1, beta=-1)).fit(np.zeros((10, 3)), np.ones(3) / 2)
