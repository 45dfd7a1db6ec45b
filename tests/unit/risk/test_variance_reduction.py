"""Variance reduction of the Monte Carlo engine: unbiased, and smaller spread across seeds (NumPy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from risk.monte_carlo import _simulate, _tail_quantile, monte_carlo_var, normal_var

N = 8


@pytest.fixture(scope="module")
def book():
    rng = np.random.default_rng(5)
    loadings = rng.normal(size=(N, 2)) * 0.01
    cov = loadings @ loadings.T + np.diag(rng.uniform(1e-5, 4e-4, N))
    return rng.uniform(-2e5, 1e6, N), cov


@pytest.mark.parametrize("mode", ["shortcut", "full"])
@pytest.mark.parametrize("sampler", ["pseudo", "antithetic", "sobol"])
@pytest.mark.parametrize("importance", [False, True])
def test_mc_var_when_any_variance_reduction_then_closed_form_within_plain_monte_carlo_error(
    book, mode, sampler, importance
):
    w, cov = book
    exact = normal_var(w, cov)

    r = monte_carlo_var(w, cov, paths=40_000, mode=mode, sampler=sampler, importance=importance, seed=2)

    se = math.sqrt(0.99 * 0.01 / 40_000) / norm.pdf(norm.ppf(0.99)) * exact.volatility  # plain MC's
    assert abs(r.var - exact.var) < 4 * se
    assert r.cvar == pytest.approx(exact.cvar, rel=0.03)
    # Importance sampling thins the body out (its weights are large there): its volatility is rougher.
    assert r.volatility == pytest.approx(exact.volatility, rel=0.15 if importance else 0.02)
    if mode == "full":
        assert sum(r.component_var.values()) == pytest.approx(r.var, rel=1e-9)
        assert sum(r.component_cvar.values()) == pytest.approx(r.cvar, rel=1e-9)


def _spread(book, seeds=12, **kwargs):
    w, cov = book
    runs = [monte_carlo_var(w, cov, seed=s, **kwargs) for s in range(seeds)]
    return np.std([r.var for r in runs], ddof=1), np.std([r.cvar for r in runs], ddof=1)


@pytest.mark.parametrize(("kwargs", "factor"), [({"importance": True}, 3.0), ({"sampler": "sobol"}, 5.0)])
def test_mc_var_when_importance_or_sobol_then_var_and_cvar_spread_across_seeds_several_times_smaller(
    book, kwargs, factor
):
    plain = _spread(book, paths=20_000)
    reduced = _spread(book, paths=20_000, **kwargs)

    assert reduced[0] * factor < plain[0] and reduced[1] * factor < plain[1]


def test_mc_var_antithetic_when_drawn_then_paths_come_in_opposite_pairs(book):
    w, cov = book
    _, batches = _simulate(w, cov, paths=1_001, mode="full", sampler="antithetic", batch_size=1_001)
    loss = batches[0].loss  # 501 draws: paths 0..500 and their mirrors 501..1000

    np.testing.assert_allclose(loss[501:], -loss[:500], rtol=1e-12)


def test_mc_var_importance_when_drawn_then_likelihood_ratios_of_the_shift_along_the_loss(book):
    w, cov = book
    _, batches = _simulate(w, cov, paths=50_000, importance=True, batch_size=50_000)
    s = batches[0].loss / math.sqrt(w @ cov @ w)  # the standardised loss is the shifted normal
    mu = norm.ppf(0.99)
    ratio = batches[0].weight
    assert ratio is not None

    np.testing.assert_allclose(ratio, np.exp(-mu * s + mu**2 / 2), rtol=1e-9)
    assert np.mean(s) == pytest.approx(mu, abs=0.03)  # half the paths in the 1% tail
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.1)  # an unbiased change of measure


def test_tail_quantile_when_weights_then_smallest_loss_whose_tail_weight_reaches_one_minus_c():
    loss = np.array([5.0, 1.0, 4.0, 3.0, 2.0])
    # Tail sums from the top, divided by n = 5: 5 -> 0.1, 4 -> 0.3, 3 -> 0.7: 3 is the first >= 0.5.
    weights = np.array([0.5, 1.0, 1.0, 2.0, 0.5])

    assert _tail_quantile(loss, weights, 0.5, hint=4.5) == 3.0  # hint too high: every path is sorted
    assert _tail_quantile(loss, weights, 0.9, hint=0.0) == 5.0
    assert _tail_quantile(loss, None, 0.5, hint=0.0) == 3.0


def test_tail_quantile_when_weighted_then_the_full_sort_answer_with_ties_and_any_hint():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(5, 3_000))
        loss = rng.normal(size=n) + 2.3
        if trial % 3 == 0:
            loss = np.round(loss, 1)  # ties, some across the histogram's bins
        ratios = np.exp(-2.3 * loss + 2.3**2 / 2)
        c = float(rng.choice([0.5, 0.9, 0.99, 0.999]))
        order = np.argsort(-loss, kind="stable")
        cum = np.cumsum(ratios[order])
        expected = loss[order][min(int(np.searchsorted(cum, (1 - c) * n)), n - 1)]

        assert _tail_quantile(loss, ratios, c, hint=float(rng.normal() * 2)) == expected
    assert _tail_quantile(np.array([1.0, 2.0]), np.array([1e-9, 1e-9]), 0.5, hint=0.0) == 1.0
