"""VaR engines against closed forms and hand computations (NumPy backend; the CuPy path is the same code)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from quantbridge.errors import ConfigError, InputError
from risk.backend import array_module
from risk.var import historical_var, monte_carlo_var, normal_var

N = 12


@pytest.fixture(scope="module")
def book():
    rng = np.random.default_rng(11)
    loadings = rng.normal(size=(N, 3)) * 0.01
    cov = loadings @ loadings.T + np.diag(rng.uniform(1e-5, 4e-4, N))
    exposures = rng.uniform(-2e5, 1e6, N)
    return exposures, cov


def test_mc_var_when_normal_then_agrees_with_closed_form_within_monte_carlo_error(book):
    w, cov = book
    exact = normal_var(w, cov, 0.99, horizon_days=10)
    mc = monte_carlo_var(w, cov, confidence=0.99, horizon_days=10, paths=400_000, seed=3)
    # Standard error of a quantile estimate: sqrt(p(1-p)/n) / f(q), with f the normal density at q.
    se = math.sqrt(0.99 * 0.01 / 400_000) / norm.pdf(norm.ppf(0.99)) * exact.volatility
    assert abs(mc.var - exact.var) < 4 * se
    assert mc.cvar == pytest.approx(exact.cvar, rel=0.01)
    assert mc.volatility == pytest.approx(exact.volatility, rel=0.005)
    assert exact.volatility == pytest.approx(math.sqrt(w @ cov @ w * 10))


@pytest.mark.parametrize("model", ["normal", "student_t"])
@pytest.mark.parametrize("confidence", [0.95, 0.99, 0.999])
def test_mc_cvar_when_any_model_then_at_least_var(book, model, confidence):
    w, cov = book
    r = monte_carlo_var(w, cov, confidence=confidence, paths=50_000, model=model)
    assert r.cvar >= r.var > 0


def test_mc_var_when_student_t_then_fatter_tail_than_normal_at_same_volatility(book):
    w, cov = book
    normal = monte_carlo_var(w, cov, confidence=0.999, paths=300_000, seed=5)
    t = monte_carlo_var(w, cov, confidence=0.999, paths=300_000, seed=5, model="student_t", dof=4)
    assert t.volatility == pytest.approx(normal.volatility, rel=0.03)
    assert t.var > 1.1 * normal.var and t.cvar > t.var


def test_mc_var_when_full_mode_then_same_figures_as_shortcut_and_components_sum(book):
    w, cov = book
    names = [f"T{i}" for i in range(N)]
    short = monte_carlo_var(w, cov, paths=60_000, seed=9, batch_size=25_000)
    full = monte_carlo_var(w, cov, paths=60_000, seed=9, mode="full", tickers=names, batch_size=25_000)
    # Same draws: (w'L)Z and w'(LZ) differ only by float rounding.
    assert full.var == pytest.approx(short.var, rel=1e-9) and full.cvar == pytest.approx(short.cvar, rel=1e-9)
    assert sum(full.component_var.values()) == pytest.approx(full.var, rel=1e-9)
    assert sum(full.component_cvar.values()) == pytest.approx(full.cvar, rel=1e-9)
    # Euler allocation for elliptical P&L: w_i (Sigma w)_i / (w' Sigma w) of the total.
    euler = w * (cov @ w) / (w @ cov @ w) * full.var
    got = np.array([full.component_var[n] for n in names])
    assert np.abs(got - euler).max() < 0.03 * full.var


def test_mc_var_when_same_seed_then_identical_and_other_seed_differs(book):
    w, cov = book
    a = monte_carlo_var(w, cov, paths=20_000, seed=1)
    assert monte_carlo_var(w, cov, paths=20_000, seed=1).var == a.var
    assert monte_carlo_var(w, cov, paths=20_000, seed=2).var != a.var


def test_mc_var_when_float32_then_close_to_float64(book):
    w, cov = book
    r64 = monte_carlo_var(w, cov, paths=100_000, seed=4)
    r32 = monte_carlo_var(w, cov, paths=100_000, seed=4, dtype="float32")
    assert r32.dtype == "float32" and r32.var == pytest.approx(r64.var, rel=0.02)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"confidence": -0.5}, "confidence"), ({"confidence": 1.0}, "confidence"), ({"confidence": float("nan")}, "confidence"),
     ({"horizon_days": 0}, "horizon_days"), ({"paths": 10}, "paths"), ({"model": "cauchy"}, "model"),
     ({"mode": "fast"}, "mode"), ({"dtype": "float16"}, "dtype"), ({"model": "student_t", "dof": 2}, "dof"),
     ({"tickers": ["A"]}, "tickers")],
)
def test_mc_var_when_argument_invalid_then_error_names_it(book, kwargs, field):
    w, cov = book
    with pytest.raises(InputError, match=field):
        monte_carlo_var(w, cov, **kwargs)


def test_mc_var_when_exposure_nan_or_cov_mismatched_then_error_names_it(book):
    w, cov = book
    with pytest.raises(InputError, match="exposures"):
        monte_carlo_var(np.r_[w[:-1], np.nan], cov)
    with pytest.raises(InputError, match="cov"):
        monte_carlo_var(w, cov[:-1, :-1])
    with pytest.raises(InputError, match="cov"):
        monte_carlo_var(w, cov + np.triu(np.ones_like(cov), 1))
    with pytest.raises(InputError, match="positive semi-definite"):
        monte_carlo_var(w, -np.eye(N))


def test_mc_var_when_covariance_singular_then_still_computes(book):
    w, cov = book
    twin = np.block([[cov, cov], [cov, cov]])  # every asset held twice: rank N, not 2N
    r = monte_carlo_var(np.r_[w, w], twin, paths=50_000)
    assert r.var == pytest.approx(normal_var(2 * w, cov).var, rel=0.03)


def test_historical_var_when_hand_computed_then_same_quantile_and_tail_mean():
    rng = np.random.default_rng(2)
    returns = rng.normal(0, 0.01, size=(250, 3))
    w = np.array([1e5, 2e5, -5e4])
    losses = -(returns @ w)
    r = historical_var(w, returns, 0.95)
    assert r.var == pytest.approx(np.quantile(losses, 0.95))
    assert r.cvar == pytest.approx(losses[losses >= np.quantile(losses, 0.95)].mean())
    assert historical_var(w, returns, 0.95, horizon_days=4).var == pytest.approx(2 * r.var)


def test_filtered_historical_var_when_volatility_rises_then_var_rises():
    rng = np.random.default_rng(3)
    calm = rng.normal(0, 0.005, size=(400, 2))
    stormy = np.vstack([calm, rng.normal(0, 0.03, size=(30, 2))])
    w = np.array([1e6, 1e6])
    plain = historical_var(w, stormy, 0.99)
    filtered = historical_var(w, stormy, 0.99, filtered=True)
    assert filtered.model == "filtered_historical" and filtered.var > 2 * plain.var
    with pytest.raises(InputError, match="returns"):
        historical_var(w, stormy[:5], 0.99)
    with pytest.raises(InputError, match="returns"):
        historical_var(np.ones(3), stormy, 0.99)


def test_array_module_when_cpu_or_auto_without_gpu_then_numpy_and_gpu_demand_explains():
    assert array_module("cpu").name == "numpy"
    backend = array_module("auto")
    assert backend.name in {"numpy", "cupy"}
    if backend.name == "numpy":
        with pytest.raises(ConfigError, match="requirements-gpu.txt"):
            array_module("gpu")
    with pytest.raises(ConfigError, match="array_backend"):
        array_module("tpu")


def test_mc_var_full_when_a_batch_holds_more_tail_than_kept_then_redrawn_with_same_result(book, monkeypatch):
    w, cov = book
    names = [f"T{i}" for i in range(N)]
    kept = monte_carlo_var(w, cov, paths=30_000, seed=8, mode="full", tickers=names, batch_size=5_000)
    monkeypatch.setattr("risk.var._TAIL_KEEP_FACTOR", 0.0)  # keep 0.2% of each batch: every batch is redrawn
    redrawn = monte_carlo_var(w, cov, paths=30_000, seed=8, mode="full", tickers=names, batch_size=5_000)
    assert redrawn.var == kept.var
    for name in names:
        assert redrawn.component_var[name] == pytest.approx(kept.component_var[name], rel=1e-9, abs=1e-6)
