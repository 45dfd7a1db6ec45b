"""Expected Shortfall backtests: hand computations, and a right model passes while an understated ES fails."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from quantbridge.errors import InputError
from risk.es_backtest import (
    CLOSED_FORM_ATOMS,
    TailAtoms,
    closed_form_atoms,
    largest_losses,
    mcneil_frey_test,
    tail_count,
    z2_statistic,
    z2_test,
)

ALPHA = 0.01
Z = float(stats.norm.ppf(1 - ALPHA))
ES_UNIT = float(stats.norm.pdf(Z)) / ALPHA  # ES of a standard normal loss at 99%


def normal_days(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Losses with a volatility that moves from day to day, and those volatilities."""
    rng = np.random.default_rng(seed)
    vol = np.exp(rng.normal(0.0, 0.4, n)) * 1_000.0
    return rng.standard_normal(n) * vol, vol


def test_z2_statistic_when_four_days_then_hand_computed():
    # exceptions on days 1 and 3: 1 - (5/5 + 3/4) / (4 x 0.25) = -0.75
    z2 = z2_statistic([5.0, 1.0, 3.0, 0.0], [4.0, 2.0, 2.0, 1.0], [5.0, 3.0, 4.0, 2.0], 0.25)

    assert z2 == pytest.approx(-0.75)


def test_z2_test_when_one_day_of_four_atoms_then_p_is_the_chance_of_a_draw_as_bad():
    # the day's forecast: 4 equally likely losses, the largest 10 and 6, VaR 5, ES at 75% = 10 (the top atom)
    atoms = TailAtoms(np.array([[10.0, 6.0]]), np.array([4]))
    # null Z2 = 1 - I L / (1 x 0.25 x 10): -3 (atom 10), -1.4 (atom 6), 1 (else); observed loss 10: -3
    z2, p = z2_test([10.0], [5.0], [10.0], atoms, 0.25, simulations=20_000, seed=1)

    assert z2 == pytest.approx(-3.0)
    assert p == pytest.approx(0.25, abs=0.01)
    assert z2_test([6.0], [5.0], [10.0], atoms, 0.25, simulations=20_000, seed=1)[1] == pytest.approx(
        0.5, abs=0.01
    )


def test_z2_test_when_normal_model_right_then_passes_and_when_es_30_percent_too_low_then_fails():
    loss, vol = normal_days(5_000, seed=7)
    right = closed_form_atoms("normal", 1 - ALPHA, 5.0, vol)
    low = closed_form_atoms(
        "normal", 1 - ALPHA, 5.0, 0.7 * vol
    )  # a model whose volatility, so ES, is 30% low

    z2, p = z2_test(loss, Z * vol, ES_UNIT * vol, right, ALPHA, simulations=2_000)
    z2_low, p_low = z2_test(loss, 0.7 * Z * vol, 0.7 * ES_UNIT * vol, low, ALPHA, simulations=2_000)

    assert abs(z2) < 0.3 and p > 0.05
    assert z2_low < -0.5 and p_low < 0.01


def test_z2_test_when_var_right_but_tail_fatter_than_the_model_then_fails():
    # Student-t(3) losses scaled to the normal's 99% quantile: the VaR is right, the ES 26% too low
    rng = np.random.default_rng(11)
    n = 20_000
    scale = Z / float(stats.t.ppf(1 - ALPHA, 3))
    loss = rng.standard_t(3, n) * scale
    ones = np.ones(n)
    atoms = closed_form_atoms("normal", 1 - ALPHA, 5.0, ones)

    z2, p = z2_test(loss, Z * ones, ES_UNIT * ones, atoms, ALPHA, simulations=2_000)
    mf = mcneil_frey_test(loss, Z * ones, ES_UNIT * ones, ones, simulations=2_000)

    assert abs(np.mean(loss > Z) - ALPHA) < 0.003  # the VaR test would not see it
    assert z2 < -0.15 and p < 0.01
    assert mf["mean_residual"] > 0 and mf["p"] < 0.01


def test_z2_test_when_student_t_model_right_then_passes():
    rng = np.random.default_rng(5)
    dof, n = 4.0, 5_000
    vol = np.exp(rng.normal(0.0, 0.3, n))
    loss = rng.standard_t(dof, n) * math.sqrt((dof - 2) / dof) * vol
    atoms = closed_form_atoms("student_t", 1 - ALPHA, dof, vol)
    q = float(stats.t.ppf(1 - ALPHA, dof))
    unit = math.sqrt((dof - 2) / dof)
    es = float(stats.t.pdf(q, dof)) / ALPHA * (dof + q * q) / (dof - 1) * unit * vol
    var = q * unit * vol

    z2, p = z2_test(loss, var, es, atoms, ALPHA, simulations=2_000)
    mf = mcneil_frey_test(loss, var, es, vol, simulations=2_000)

    above = int(CLOSED_FORM_ATOMS * ALPHA)  # the atoms above the VaR average to the closed-form ES
    assert atoms.largest.shape[1] == tail_count(CLOSED_FORM_ATOMS, 1 - ALPHA) == above + 2
    assert np.mean(atoms.largest[:, :above], axis=1) == pytest.approx(es, rel=1e-9)
    assert (atoms.largest[:, above - 1] > var).all() and (atoms.largest[:, above] < var).all()
    assert p > 0.05 and mf["p"] > 0.05


def test_z2_test_when_scenario_atoms_of_the_truth_then_passes():
    # each day's forecast: 500 scenarios drawn from the day's true distribution (a historical-family model)
    rng = np.random.default_rng(3)
    n, scenarios = 3_000, 500
    vol = np.exp(rng.normal(0.0, 0.3, n))
    draws = rng.standard_normal((n, scenarios)) * vol[:, None]
    k = tail_count(scenarios, 1 - ALPHA)
    largest = np.stack([largest_losses(row, k) for row in draws])
    var = np.quantile(draws, 1 - ALPHA, axis=1)
    es = np.array([row[row >= v].mean() for row, v in zip(draws, var, strict=True)])
    loss = rng.standard_normal(n) * vol

    z2, p = z2_test(loss, var, es, TailAtoms(largest, np.full(n, scenarios)), ALPHA, simulations=2_000)

    assert k == 7 and (largest[:, 0] == draws.max(axis=1)).all()
    assert p > 0.05


def test_mcneil_frey_when_hand_residuals_then_mean_and_t_and_one_sided_p():
    loss = np.array([0.0, 3.0, 0.0, 5.0, 4.0, 0.0])
    var = np.full(6, 2.0)
    es = np.full(6, 3.0)
    vol = np.array([1.0, 1.0, 1.0, 2.0, 1.0, 1.0])
    # exceptions 3, 5, 4: residuals (3-3)/1, (5-3)/2, (4-3)/1 = 0, 1, 1; mean 2/3, sd 0.57735, t = 2

    out = mcneil_frey_test(loss, var, es, vol, simulations=4_000, seed=2)

    assert out["exceptions"] == 3 and out["mean_residual"] == pytest.approx(2 / 3)
    assert out["t"] == pytest.approx(2.0)
    assert 0 < out["p"] < 0.5
    below = mcneil_frey_test(np.array([2.5, 2.6, 0.0]), var[:3], es[:3], vol[:3])
    assert below["t"] < 0 and below["p"] > 0.5


def test_mcneil_frey_when_normal_model_right_then_passes_and_es_too_low_then_fails():
    loss, vol = normal_days(5_000, seed=1)  # a right model is rejected at 5% with one seed in twenty

    right = mcneil_frey_test(loss, Z * vol, ES_UNIT * vol, vol, simulations=2_000)
    low = mcneil_frey_test(loss, Z * vol, 0.7 * ES_UNIT * vol, vol, simulations=2_000)

    assert right["p"] > 0.05
    assert low["p"] < 0.01


def test_mcneil_frey_when_fewer_than_two_exceptions_then_nothing_to_reject():
    one = mcneil_frey_test([5.0, 0.0], [1.0, 1.0], [2.0, 2.0], [1.0, 1.0])
    none = mcneil_frey_test([0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [1.0, 1.0])
    same = mcneil_frey_test([5.0, 5.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [1.0, 1.0, 1.0])

    assert one == {"exceptions": 1, "mean_residual": 3.0, "t": 0.0, "p": 1.0}
    assert none["exceptions"] == 0 and none["p"] == 1.0
    assert same["t"] == math.inf and same["p"] < 0.001  # every residual +3: no spread, all above


def test_es_tests_when_inputs_invalid_then_errors_name_them():
    with pytest.raises(InputError, match="losses/forecasts"):
        z2_statistic([1.0, 2.0], [1.0], [1.0, 1.0], ALPHA)
    with pytest.raises(InputError, match="alpha"):
        z2_statistic([1.0], [1.0], [1.0], 0.7)
    with pytest.raises(InputError, match="atoms"):
        z2_test([1.0, 2.0], [1.0, 1.0], [2.0, 2.0], TailAtoms(np.ones((1, 2)), np.array([10])), ALPHA)
    with pytest.raises(InputError, match="tail atoms total"):
        TailAtoms(np.ones((1, 3)), np.array([2]))
    with pytest.raises(InputError, match="tail atoms"):
        TailAtoms(np.ones(3), np.array([5]))
    with pytest.raises(InputError, match="volatility"):
        mcneil_frey_test([5.0], [1.0], [2.0], [0.0])
