"""Euler contributions: they add up, and converge to the closed form on a normal book."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from quantbridge.errors import InputError
from risk.contributions import by_group, euler_contributions, weighted_quantile


def _normal_book(n_paths: int = 200_000, seed: int = 11) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(4, 4)) * 0.01
    cov = a @ a.T + np.diag([1e-4, 2e-4, 5e-5, 3e-4])
    e = np.array([1e6, -4e5, 7e5, 2e5])
    returns = rng.multivariate_normal(np.zeros(4), cov, size=n_paths)
    return -(returns * e), cov, e


def test_components_add_up_and_match_the_closed_form() -> None:
    losses, cov, e = _normal_book()
    c = euler_contributions(losses, 0.99)
    sigma = float(np.sqrt(e @ cov @ e))
    z = stats.norm.ppf(0.99)
    marginal = e * (cov @ e) / sigma
    assert c.component_var.sum() == pytest.approx(c.var, rel=1e-12)
    assert c.component_cvar.sum() == pytest.approx(c.cvar, rel=1e-12)
    assert c.var == pytest.approx(z * sigma, rel=0.02)
    assert c.cvar == pytest.approx(sigma * stats.norm.pdf(z) / 0.01, rel=0.02)
    # each component within 3% of the book's VaR of its closed form (a short position contributes < 0)
    np.testing.assert_allclose(c.component_var, marginal * z, atol=0.03 * c.var)
    np.testing.assert_allclose(c.component_cvar, marginal * stats.norm.pdf(z) / 0.01, atol=0.03 * c.cvar)
    assert abs(c.kernel_sum - c.var) < 0.05 * c.var  # the smoother's bias before scaling is small


def test_kernel_beats_tail_share_rescaling() -> None:
    """The old allocation (CVaR shares scaled to VaR) is not Euler VaR; the kernel estimate is closer."""
    losses, cov, e = _normal_book(seed=3)
    c = euler_contributions(losses, 0.975)
    sigma = float(np.sqrt(e @ cov @ e))
    exact = e * (cov @ e) / sigma * stats.norm.ppf(0.975)
    kernel_err = np.abs(c.component_var - exact).max()
    assert kernel_err < 0.02 * c.var


def test_weights_reproduce_duplicated_paths() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    doubled = np.vstack([x, x[:100]])
    w = np.ones(400)
    w[:100] = 2.0
    a = euler_contributions(x, 0.9, weights=w, bandwidth=0.3)
    b = euler_contributions(doubled, 0.9, weights=np.ones(500), bandwidth=0.3)
    assert a.var == pytest.approx(b.var)
    np.testing.assert_allclose(a.component_cvar, b.component_cvar)
    np.testing.assert_allclose(a.component_var, b.component_var)
    assert weighted_quantile(np.arange(10.0), 0.5, np.ones(10)) == 4.0
    assert weighted_quantile(np.arange(11.0), 0.5) == 5.0


def test_named_and_groups() -> None:
    losses, _, _ = _normal_book(n_paths=5_000)
    c = euler_contributions(losses, 0.99)
    named = c.named(["A", "B", "C", "D"])
    grouped = by_group(named["component_var"], {"A": "equity", "B": "equity", "C": "rates", "D": "fx"})
    assert set(grouped) == {"equity", "rates", "fx"}
    assert sum(grouped.values()) == pytest.approx(c.var)
    with pytest.raises(InputError, match="groups"):
        by_group(named["component_var"], {"A": "equity"})
    with pytest.raises(InputError, match="names"):
        c.named(["A"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"position_losses": np.ones(5)}, "position_losses"),
        ({"position_losses": np.array([[np.nan], [1.0]])}, "position_losses"),
        ({"position_losses": np.ones((5, 2)), "confidence": 1.0}, "confidence"),
        ({"position_losses": np.ones((5, 2)), "weights": -np.ones(5)}, "weights"),
        ({"position_losses": np.arange(10.0).reshape(5, 2), "bandwidth": -1.0}, "bandwidth"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InputError, match=field):
        euler_contributions(**kwargs)
