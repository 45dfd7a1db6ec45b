"""PSI and KS of governance.drift against hand computations and planted shifts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from governance.drift import band, drift, psi, quantile_edges, shares
from quantbridge.errors import InputError


def test_psi_when_computed_by_hand_on_two_bins_then_matches_the_formula():
    reference = np.array([0.0, 0.0, 1.0, 1.0])  # one edge at 0.5: shares 0.5 / 0.5
    recent = np.array([0.0, 1.0, 1.0, 1.0])  # shares 0.25 / 0.75
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(reference, recent, bins=2) == pytest.approx(expected)


def test_psi_when_recent_falls_in_an_empty_bin_then_epsilon_floor_keeps_it_finite():
    reference = np.linspace(0, 1, 1000)
    recent = np.full(20, 5.0)  # all beyond the training range: the open top bin
    value = psi(reference, recent, bins=10, epsilon=1e-4)
    e = np.full(10, 0.1)
    a = np.r_[np.full(9, 1e-4), 1.0]
    assert value == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-3)
    assert math.isfinite(value) and value > 5


def test_drift_when_distribution_shifted_then_psi_above_025_and_ks_rejects():
    rng = np.random.default_rng(7)
    reference = rng.normal(0, 1, 2000)
    shifted = drift(reference, rng.normal(1.0, 1, 400))
    same = drift(reference, rng.normal(0, 1, 400))
    assert shifted.psi > 0.25 and shifted.ks_p < 1e-6
    assert same.psi < 0.10 and same.ks_p > 0.01
    assert shifted.n_reference == 2000 and shifted.n_recent == 400


def test_drift_when_values_are_nan_then_they_are_dropped():
    out = drift(np.r_[np.arange(100.0), np.nan], np.r_[np.arange(50.0), np.inf], bins=5)
    assert (out.n_reference, out.n_recent) == (100, 50)
    assert out.as_dict()["n_recent"] == 50


def test_quantile_edges_when_reference_has_ties_then_edges_are_distinct():
    edges = quantile_edges(np.r_[np.zeros(90), np.arange(10.0)], 10)
    assert list(edges) == sorted(set(edges))
    assert shares(np.zeros(4), edges, 1e-4).sum() == pytest.approx(1 + 1e-4 * len(edges), abs=1e-3)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: psi(np.arange(10.0), np.arange(3.0), bins=1), "bins"),
        (lambda: psi(np.arange(10.0), np.arange(3.0), epsilon=0), "epsilon"),
        (lambda: drift(np.arange(10.0), np.array([np.nan])), "recent"),
        (lambda: drift(np.array([np.nan]), np.arange(3.0)), "reference"),
    ],
)
def test_drift_when_input_is_unusable_then_input_error_names_the_field(call, field):
    with pytest.raises(InputError) as caught:
        call()
    assert caught.value.field == field


def test_band_when_psi_on_each_side_of_the_bands_then_stable_moderate_significant():
    assert [band(v, 0.10, 0.25) for v in (0.05, 0.10, 0.25, 0.26)] == [
        "stable",
        "moderate",
        "moderate",
        "significant",
    ]
