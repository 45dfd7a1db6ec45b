"""GJR-GARCH filter: the fit recovers simulated parameters, the filter is the recursion, the model uses it."""

from __future__ import annotations

import numpy as np
import pytest

from quantbridge.errors import InputError
from risk.garch import GarchParams, check_params, fit_gjr, gjr_variance
from risk.var import VarSpec, forecast, scenario_returns

TRUE = GarchParams(omega=0.05, alpha=0.04, gamma=0.08, beta=0.88)


def simulate(n: int, params: GarchParams, seed: int) -> np.ndarray:
    """A GJR-GARCH(1,1) path with unit-variance Student-t(6) innovations (absolute omega)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(6, n) * np.sqrt(4 / 6)
    x = np.empty(n)
    s2 = params.omega / (1 - params.alpha - params.gamma / 2 - params.beta)
    for t in range(n):
        x[t] = np.sqrt(s2) * z[t]
        s2 = params.omega + (params.alpha + params.gamma * (x[t] < 0)) * x[t] ** 2 + params.beta * s2
    return x


def test_fit_gjr_when_simulated_path_then_recovers_the_dynamics():
    x = simulate(4_000, TRUE, seed=3)

    fitted = fit_gjr(x * 250.0)  # any scale: omega comes back relative to the mean square

    assert fitted.alpha == pytest.approx(TRUE.alpha, abs=0.03)
    assert fitted.gamma == pytest.approx(TRUE.gamma, abs=0.05)
    assert fitted.beta == pytest.approx(TRUE.beta, abs=0.05)
    assert fitted.omega * float(np.mean(x * x)) == pytest.approx(TRUE.omega, rel=0.6)
    assert fit_gjr(x) == pytest.approx(fitted, rel=1e-4)  # same answer at another scale


def test_gjr_variance_when_filtered_then_equals_the_recursion_by_hand():
    x = np.array([1.0, -2.0, 0.5, -0.5, 3.0])
    p = GarchParams(0.1, 0.05, 0.1, 0.8)
    m = float(np.mean(x * x))
    expected = [m]
    for v in x:
        expected.append(0.1 * m + (0.05 + 0.1 * (v < 0)) * v * v + 0.8 * expected[-1])

    assert gjr_variance(x, p) == pytest.approx(expected, rel=1e-12)


def test_fit_gjr_when_no_variance_then_identity_filter_and_when_too_short_then_error():
    assert fit_gjr(np.zeros(50)) == GarchParams(0.0, 0.0, 0.0, 0.0)
    assert (gjr_variance(np.zeros(5), GarchParams(0.0, 0.0, 0.0, 0.0)) > 0).all()
    with pytest.raises(InputError, match="pnl"):
        fit_gjr(np.ones(10))


def test_check_params_when_out_of_bounds_then_error_names_garch():
    assert check_params((0.1, 0.0, 0.0, 0.9)) == GarchParams(0.1, 0.0, 0.0, 0.9)
    for bad in ((0.1, 0.05, 0.1), (0.1, 0.05, -0.1, 0.8), (0.1, 0.05, 0.0, 1.0), (float("nan"), 0, 0, 0.5)):
        with pytest.raises(InputError, match="garch"):
            check_params(bad)
    with pytest.raises(InputError, match="garch"):
        VarSpec(model="filtered_historical_garch", garch=(0.1, -0.2, 0.0, 0.5))
    with pytest.raises(InputError, match="refit_days"):
        VarSpec(refit_days=0)
    with pytest.raises(InputError, match="quantile"):
        VarSpec(quantile="median")


def test_scenario_returns_when_garch_model_then_each_day_scaled_by_tomorrows_over_its_volatility():
    rng = np.random.default_rng(4)
    r = rng.standard_normal((300, 3)) * 0.01
    e = np.array([1e5, -5e4, 2e4])
    p = (0.05, 0.05, 0.1, 0.85)
    spec = VarSpec(model="filtered_historical_garch", window=300, garch=p)

    scenarios = scenario_returns(r, e, spec)

    level = np.sqrt(gjr_variance(r @ e, GarchParams(*p)))
    assert scenarios == pytest.approx(r * (level[-1] / level[:-1])[:, None], rel=1e-12)
    fitted = VarSpec(model="filtered_historical_garch", window=300, garch=fit_gjr(r @ e))
    live = forecast(r, e, VarSpec(model="filtered_historical_garch", window=300))
    assert live.var == pytest.approx(forecast(r, e, fitted).var, rel=1e-12)  # no parameters: fit the window
    assert live.var > 0 and live.cvar >= live.var and live.paths == 300
