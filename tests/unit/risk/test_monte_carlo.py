"""Monte Carlo engine: threads, the 1-D shortcut, streaming Euler contributions, the backend (NumPy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from quantbridge.errors import ConfigError, InputError
from risk.backend import array_module, default_backend
from risk.contributions import euler_contributions
from risk.monte_carlo import _simulate, monte_carlo_var, normal_var

N = 10
CPU = array_module("cpu")


@pytest.fixture(scope="module")
def book():
    rng = np.random.default_rng(21)
    loadings = rng.normal(size=(N, 3)) * 0.01
    cov = loadings @ loadings.T + np.diag(rng.uniform(1e-5, 4e-4, N))
    return rng.uniform(-3e5, 1e6, N), cov


def _components(result, key="component_var"):
    return np.array(list(getattr(result, key).values()))


@pytest.mark.parametrize("mode", ["shortcut", "full"])
def test_mc_var_when_thread_count_changes_then_same_figures_to_the_bit(book, mode):
    w, cov = book
    one = monte_carlo_var(w, cov, paths=20_000, mode=mode, batch_size=3_000, threads=1)
    three = monte_carlo_var(w, cov, paths=20_000, mode=mode, batch_size=3_000, threads=3)

    assert (one.var, one.cvar, one.volatility) == (three.var, three.cvar, three.volatility)
    assert one.component_var == three.component_var and one.component_cvar == three.component_cvar


def test_mc_var_shortcut_when_a_million_paths_then_one_normal_per_path_in_well_under_a_second(book):
    w, cov = book
    exact = normal_var(w, cov)

    monte_carlo_var(w, cov, paths=1_000, seed=4)  # warm-up: imports, and CuPy's kernels compile once
    r = monte_carlo_var(w, cov, paths=1_000_000, seed=4)

    se = math.sqrt(0.99 * 0.01 / 1e6) / norm.pdf(norm.ppf(0.99)) * exact.volatility
    assert abs(r.var - exact.var) < 4 * se and r.volatility == pytest.approx(exact.volatility, rel=0.003)
    assert r.seconds < 0.5  # ~0.03 s on 2 cores: 1e6 normals, not 1e6 x n_assets


@pytest.mark.parametrize("sampler", ["pseudo", "antithetic", "sobol"])
def test_mc_var_full_when_same_draws_then_components_are_risk_contributions_of_the_per_position_losses(
    book, sampler
):
    w, cov = book
    result, batches = _simulate(
        w, cov, paths=20_000, seed=3, mode="full", sampler=sampler, batch_size=6_000, collect=True
    )
    positions = np.concatenate([b.positions for b in batches])
    loss = np.concatenate([b.loss for b in batches])
    h = 1.06 * math.sqrt(w @ cov @ w) * 20_000**-0.2  # the engine's bandwidth

    reference = euler_contributions(positions, 0.99, bandwidth=h)

    np.testing.assert_allclose(positions.sum(axis=1), loss, rtol=1e-9)  # they add up to each path's loss
    assert result.var == pytest.approx(reference.var, rel=1e-12)
    assert result.cvar == pytest.approx(reference.cvar, rel=1e-12)
    # Binned kernel (bins of h/8) and the bin holding VaR split by weight: equal to ~1e-3 of the total.
    assert np.abs(_components(result) - reference.component_var).max() < 1e-3 * result.var
    assert np.abs(_components(result, "component_cvar") - reference.component_cvar).max() < 2e-3 * result.cvar


def test_mc_var_full_when_importance_sampled_then_components_are_ratio_weighted_tail_and_kernel_means(book):
    w, cov = book
    result, batches = _simulate(
        w,
        cov,
        paths=20_000,
        seed=4,
        mode="full",
        sampler="antithetic",
        importance=True,
        batch_size=6_000,
        collect=True,
    )
    positions = np.concatenate([b.positions for b in batches])
    loss = np.concatenate([b.loss for b in batches])
    ratio = np.concatenate([b.weight for b in batches])
    h = 1.06 * math.sqrt(w @ cov @ w) * 20_000**-0.2

    tail = loss >= result.var
    kernel = ratio * np.exp(-0.5 * ((loss - result.var) / h) ** 2)
    by_hand_cvar = ratio[tail] @ positions[tail] / ratio[tail].sum()
    by_hand_var = kernel @ positions / kernel.sum()

    assert result.cvar == pytest.approx(by_hand_cvar.sum(), rel=1e-12)
    assert np.abs(_components(result, "component_cvar") - by_hand_cvar).max() < 2e-3 * result.cvar
    assert (
        np.abs(_components(result) - by_hand_var * result.var / by_hand_var.sum()).max() < 1e-3 * result.var
    )


@pytest.mark.parametrize("model", ["normal", "student_t"])
def test_mc_var_full_when_elliptical_book_then_components_converge_to_the_euler_closed_form(book, model):
    w, cov = book
    names = [f"P{i}" for i in range(N)]

    r = monte_carlo_var(
        w, cov, paths=100_000, model=model, mode="full", importance=True, tickers=names, seed=5
    )

    # For elliptical P&L, E[L_i | L = v] = v w_i (Sigma w)_i / (w' Sigma w), and likewise for the tail mean.
    share = w * (cov @ w) / (w @ cov @ w)
    tol = 0.01 if model == "normal" else 0.03  # the t tail comes from large chi-square draws, unshifted
    assert np.abs(_components(r) - share * r.var).max() < tol * r.var
    assert np.abs(_components(r, "component_cvar") - share * r.cvar).max() < tol * r.cvar
    if model == "normal":
        exact = normal_var(w, cov)
        assert r.var == pytest.approx(exact.var, rel=0.003) and r.cvar == pytest.approx(exact.cvar, rel=0.003)


def test_mc_var_when_empty_book_then_zero_figures_and_zero_components(book):
    _, cov = book
    r = monte_carlo_var(np.zeros(N), cov, mode="full")

    assert (r.var, r.cvar, r.volatility) == (0.0, 0.0, 0.0) and set(r.component_var.values()) == {0.0}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sampler": "halton"}, "sampler"),
        ({"threads": 0}, "threads"),
        ({"threads": True}, "threads"),
        ({"batch_size": 1}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
    ],
)
def test_mc_var_when_new_argument_invalid_then_error_names_it(book, kwargs, field):
    w, cov = book
    with pytest.raises(InputError, match=f"^{field}="):
        monte_carlo_var(w, cov, **kwargs)


def test_default_backend_when_env_names_one_then_that_backend(monkeypatch):
    monkeypatch.setenv("QB_ARRAY_BACKEND", "cpu")
    assert default_backend().name == "numpy"
    monkeypatch.setenv("QB_ARRAY_BACKEND", "gpu")
    if array_module("auto").name == "numpy":  # no GPU here: asking for one must fail loudly
        with pytest.raises(ConfigError, match="requirements-gpu.txt"):
            default_backend()


def test_backend_generator_when_same_seed_sequence_then_same_stream_and_out_filled_in_place():
    a = CPU.generator([7, 1]).standard_normal(5)
    assert np.array_equal(a, CPU.generator([7, 1]).standard_normal(5))
    assert not np.array_equal(a, CPU.generator([7, 2]).standard_normal(5))
    out = np.empty((2, 3), dtype="float32")
    got = CPU.standard_normal(CPU.generator([7, 1]), (2, 3), "float32", out=out)
    assert got is out and np.isfinite(out).all()
