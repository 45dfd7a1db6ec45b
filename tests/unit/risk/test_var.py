"""VaR engines against closed forms and hand computations (NumPy backend; the CuPy path is the same code)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from quantbridge.errors import ConfigError, InputError
from risk.backend import array_module
from risk.monte_carlo import monte_carlo_var, normal_var
from risk.var import VAR_MODELS, VarSpec, forecast

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


def test_mc_var_when_full_mode_then_closed_form_figures_and_euler_components_that_sum(book):
    w, cov = book
    names = [f"T{i}" for i in range(N)]
    exact = normal_var(w, cov)
    full = monte_carlo_var(w, cov, paths=60_000, seed=9, mode="full", tickers=names, batch_size=25_000)
    # n_assets normals per path, loss from u'Z: the same law as the 1-D shortcut, within Monte Carlo error.
    se = math.sqrt(0.99 * 0.01 / 60_000) / norm.pdf(norm.ppf(0.99)) * exact.volatility
    assert abs(full.var - exact.var) < 4 * se and full.cvar == pytest.approx(exact.cvar, rel=0.03)
    assert list(full.component_var) == names
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
    [
        ({"confidence": -0.5}, "confidence"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"paths": 10}, "paths"),
        ({"model": "cauchy"}, "model"),
        ({"mode": "fast"}, "mode"),
        ({"dtype": "float16"}, "dtype"),
        ({"model": "student_t", "dof": 2}, "dof"),
        ({"tickers": ["A"]}, "tickers"),
    ],
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


def _window(seed: int = 2, n: int = 250, assets: int = 3, scale: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, size=(n, assets))


def _ewma_by_hand(x: np.ndarray, decay: float = 0.94) -> np.ndarray:
    """The RiskMetrics recursion written out: start at the mean square, one step per observation."""
    out = [x.mean(axis=0)]
    for value in x:
        out.append(decay * out[-1] + (1 - decay) * value)
    return np.array(out)


def test_forecast_when_historical_then_hand_computed_quantile_tail_mean_and_sqrt_time():
    r, w = _window(), np.array([1e5, 2e5, -5e4])
    losses = -(r @ w)

    f = forecast(r, w, VarSpec(model="historical", confidence=0.95))

    assert f.var == pytest.approx(np.quantile(losses, 0.95, method="weibull"), rel=1e-12)
    assert f.cvar == pytest.approx(
        losses[losses >= np.quantile(losses, 0.95, method="weibull")].mean(), rel=1e-12
    )
    assert f.volatility == pytest.approx(losses.std(), rel=1e-12) and f.paths == f.observations == 250
    four = forecast(r, w, VarSpec(model="historical", confidence=0.95, horizon_days=4))
    assert four.var == pytest.approx(2 * f.var) and four.horizon_days == 4


def test_forecast_when_filtered_historical_then_each_asset_rescaled_by_its_own_ewma_volatility():
    r, w = _window(seed=5), np.array([3e5, -1e5, 2e5])
    sigma = np.sqrt(_ewma_by_hand(r**2))
    losses = -((r / sigma[:-1] * sigma[-1]) @ w)

    f = forecast(r, w, VarSpec(model="filtered_historical"))

    assert f.var == pytest.approx(np.quantile(losses, 0.99, method="weibull"), rel=1e-12)
    assert f.cvar == pytest.approx(losses[losses >= f.var].mean(), rel=1e-12)


def test_forecast_when_filtered_historical_portfolio_then_book_pnl_rescaled_by_its_ewma_volatility():
    r, w = _window(seed=6), np.array([3e5, -1e5, 2e5])
    pnl = r @ w
    sigma = np.sqrt(_ewma_by_hand(pnl**2))
    losses = -(pnl / sigma[:-1] * sigma[-1])

    f = forecast(r, w, VarSpec(model="filtered_historical_portfolio"))

    assert f.var == pytest.approx(np.quantile(losses, 0.99, method="weibull"), rel=1e-12)
    assert f.cvar == pytest.approx(losses[losses >= f.var].mean(), rel=1e-12)


def test_forecast_when_volatility_rises_then_filtered_models_rise_above_plain_history():
    rng = np.random.default_rng(3)
    stormy = np.vstack([rng.normal(0, 0.005, size=(400, 2)), rng.normal(0, 0.03, size=(30, 2))])
    w = np.array([1e6, 1e6])

    plain = forecast(stormy, w, VarSpec(model="historical"))

    for model in ("filtered_historical", "filtered_historical_portfolio", "ewma"):
        assert forecast(stormy, w, VarSpec(model=model)).var > 1.8 * plain.var, model


def test_forecast_when_normal_then_closed_form_of_the_ledoit_wolf_covariance():
    from sklearn.covariance import LedoitWolf

    r, w = _window(seed=7, n=300, assets=4), np.array([1e5, 2e5, -5e4, 3e4])

    f = forecast(r, w, VarSpec(model="normal", horizon_days=10))

    exact = normal_var(w, LedoitWolf().fit(r).covariance_, 0.99, horizon_days=10)
    assert f.var == pytest.approx(exact.var, rel=1e-12) and f.cvar == pytest.approx(exact.cvar, rel=1e-12)
    assert f.volatility == pytest.approx(exact.volatility, rel=1e-12) and f.paths == 0


def test_forecast_when_student_t_or_ewma_then_closed_forms_agree_with_monte_carlo(book):
    w, cov = book
    r = np.random.default_rng(8).multivariate_normal(np.zeros(N), cov, size=2000)
    from risk.covariance import covariance, ewma_variance

    t = forecast(r, w, VarSpec(model="student_t", confidence=0.975, dof=5))
    mc = monte_carlo_var(w, covariance(r), confidence=0.975, paths=400_000, model="student_t", dof=5, seed=3)
    assert t.var == pytest.approx(mc.var, rel=0.01) and t.cvar == pytest.approx(mc.cvar, rel=0.01)
    e = forecast(r, w, VarSpec(model="ewma"))
    assert e.var == pytest.approx(norm.ppf(0.99) * np.sqrt(ewma_variance((r @ w) ** 2)[-1]), rel=1e-12)


@pytest.mark.parametrize("model", VAR_MODELS)
def test_forecast_when_full_then_components_sum_to_var_and_cvar(model):
    r, w = _window(seed=9, n=400, assets=4), np.array([1e5, 2e5, -5e4, 3e4])
    names = ["A", "B", "C", "D"]

    f = forecast(r, w, VarSpec(model=model), tickers=names, components=True)

    assert f.mode == "full" and list(f.component_var) == names
    assert sum(f.component_var.values()) == pytest.approx(f.var, rel=1e-9)
    assert sum(f.component_cvar.values()) == pytest.approx(f.cvar, rel=1e-9)
    assert f.as_dict()["component_var"] == f.component_var


def test_forecast_when_empty_book_then_zero_figures():
    f = forecast(_window(), np.zeros(3), VarSpec(model="normal"), components=True)

    assert (f.var, f.cvar, f.volatility, f.component_var) == (0.0, 0.0, 0.0, {})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "garch"}, "model"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"window": 5}, "window"),
        ({"decay": 1.0}, "decay"),
        ({"dof": 2.0}, "dof"),
    ],
)
def test_var_spec_when_argument_invalid_then_error_names_it(kwargs, field):
    with pytest.raises(InputError, match=f"^{field}="):
        VarSpec(**kwargs)


def test_forecast_when_window_short_mismatched_or_not_finite_then_error_names_it():
    r, w = _window(), np.ones(3)
    with pytest.raises(InputError, match="returns"):
        forecast(r[:5], w, VarSpec())
    with pytest.raises(InputError, match="returns"):
        forecast(r, np.ones(2), VarSpec())
    with pytest.raises(InputError, match="non-finite"):
        forecast(np.where(r > 0.02, np.nan, r), w, VarSpec())


def test_array_module_when_cpu_or_auto_without_gpu_then_numpy_and_gpu_demand_explains():
    assert array_module("cpu").name == "numpy"
    backend = array_module("auto")
    assert backend.name in {"numpy", "cupy"}
    if backend.name == "numpy":
        with pytest.raises(ConfigError, match="requirements-gpu.txt"):
            array_module("gpu")
    with pytest.raises(ConfigError, match="array_backend"):
        array_module("tpu")


def test_mc_var_full_when_var_leaves_the_binned_band_then_binned_again_with_same_result(book, monkeypatch):
    w, cov = book
    names = [f"T{i}" for i in range(N)]
    kept = monte_carlo_var(w, cov, paths=30_000, seed=8, mode="full", tickers=names, batch_size=5_000)
    # A closed form far off (VaR at 1 sigma instead of 2.33) puts the band where the VaR is not.
    monkeypatch.setattr("risk.monte_carlo._unit_quantile", lambda model, dof, c: (1.0, 0.24))
    rebinned = monte_carlo_var(w, cov, paths=30_000, seed=8, mode="full", tickers=names, batch_size=5_000)
    assert rebinned.var == kept.var and rebinned.cvar == kept.cvar
    for name in names:
        assert rebinned.component_var[name] == pytest.approx(kept.component_var[name], rel=1e-6, abs=1e-6)
        assert rebinned.component_cvar[name] == pytest.approx(kept.component_cvar[name], rel=1e-6, abs=1e-6)


def test_cli_model_choices_when_listed_then_the_engines_models():
    from app.cli.var import MODELS

    assert MODELS == VAR_MODELS
