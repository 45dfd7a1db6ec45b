"""The stated rate/FX factor model: its volatilities, correlations and draws."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from marketdata.reference import read_reference_csv
from quantbridge.errors import InputError
from risk.factors import FX_PAIR_CORRELATION, FactorModel, rate_correlation, rate_vols
from risk.scenarios import FX_BASE_CORRELATION


def test_rate_vols_and_correlation_when_read_at_tenors_then_the_stated_figures():
    assert rate_vols(np.array([0.0, 2.0, 4.0, 50.0])) * 1e4 == pytest.approx([4.0, 7.0, 7.5, 6.0])
    corr = rate_correlation(np.array([0.25, 2.0, 10.0, 30.0]))
    assert corr[1, 2] == pytest.approx(math.exp(-0.09 * math.log(5)))  # 2y-10y about 0.87
    assert 0.85 < corr[1, 2] < 0.9 and 0.7 < corr[0, 2] < 0.75 and corr[2, 3] > 0.9
    assert np.allclose(np.diag(corr), 1.0)


def test_factor_model_when_drawn_then_sample_covariance_is_the_stated_one():
    fx = read_reference_csv("fx")
    model = FactorModel.build(np.array([0.0, 1.0, 5.0, 10.0]), fx)

    rates, moves = model.draw(np.random.default_rng(1), 200_000, scale=2.0)

    assert rates.shape == (200_000, 4) and moves.shape == (200_000, 5)
    sample = np.corrcoef(np.hstack([rates, moves]), rowvar=False)
    np.testing.assert_allclose(sample, model.correlation, atol=0.01)
    expected = 2.0 * fx["annual_vol"].to_numpy() / math.sqrt(252)
    np.testing.assert_allclose(moves.std(axis=0), expected, rtol=0.01)
    assert FX_PAIR_CORRELATION == FX_BASE_CORRELATION and abs(sample[0, 4]) < 0.01  # rates-FX: 0
    assert model.describe()["factors"] == 9 and "stated assumptions" in model.describe()["source"]


def test_factor_model_when_empty_or_fx_vol_unusable_then_no_factors_or_input_error():
    rates, moves = FactorModel.build(None, None).draw(np.random.default_rng(0), 10)
    assert rates.shape == (10, 0) and moves.shape == (10, 0)
    bad = pd.DataFrame({"currency": ["EUR"], "notional": [1.0], "spot_usd": [1.1], "annual_vol": [0.0]})
    with pytest.raises(InputError, match="EUR annual_vol"):
        FactorModel.build(None, bad)
