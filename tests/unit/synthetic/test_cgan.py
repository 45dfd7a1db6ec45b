from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from synthetic.cgan import GANConfig, regimes, sample, train
from synthetic.vae import mean_esg


@pytest.fixture(scope="module")
def data():
    from marketdata.feed import SkfolioFeed
    from marketdata.reference import read_reference_csv

    closes = SkfolioFeed().fetch(date(2006, 1, 3), date(2012, 12, 31)).pivot(index="date", columns="ticker", values="close")
    r = closes.pct_change().dropna().to_numpy()
    r = r / r.std(axis=0)
    w = np.stack([r[i:i + 5] for i in range(0, len(r) - 5, 5)])
    esg = read_reference_csv("esg").set_index("ticker").loc[closes.columns, "esg_score"].to_numpy()
    return w, regimes(w), esg


def test_cgan_when_trained_then_conditional_samples_are_finite_and_turbulent_is_wilder(data):
    windows, labels, esg = data
    gen = train(windows, labels, esg, GANConfig(epochs=40, seed=1))
    calm, wild = sample(gen, 400, 0), sample(gen, 400, 1)
    assert calm.shape == (400, 5, 20) and np.isfinite(calm).all() and np.isfinite(wild).all()
    assert np.abs(wild).mean() > np.abs(calm).mean()
    with pytest.raises(ValueError, match="regime"):
        sample(gen, 1, 2)


def test_cgan_when_beta_grows_then_mean_esg_rises(data):
    windows, labels, esg = data
    scores = []
    for beta in (0.0, 5.0):
        gen = train(windows, labels, esg, GANConfig(epochs=10, beta=beta, seed=2))
        scores.append(mean_esg(sample(gen, 400, 0).mean(axis=1), esg))
    assert scores[1] > scores[0]
    with pytest.raises(ValueError, match="windows"):
        train(windows[:, :, :3], labels[:5], esg, GANConfig(epochs=1))
