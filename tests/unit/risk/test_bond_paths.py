"""Vectorised bond revaluation against QuantLib: same cash flows, same curve rule (inside, before the first
pillar and flat-forward past the last), 1e-6 relative on random shocks."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from marketdata.reference import read_reference_csv
from quantbridge.errors import InputError
from risk.bond_paths import CHECK_TOLERANCE, Revaluer, cash_flows, check_against_quantlib, zero_weights
from risk.irrbb import ZeroNodes, bootstrap_par_curve, price_book

AS_OF = date(2022, 12, 28)


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    """The bundled book plus a 40-year annual bond, whose last flows lie past the curve's 30-year pillar."""
    long = {
        "id": "LONG-40Y",
        "face": 1e6,
        "coupon_rate": 0.04,
        "maturity_date": date(2062, 6, 1),
        "coupon_frequency": 1,
        "currency": "USD",
    }
    return pd.concat([read_reference_csv("bond_book"), pd.DataFrame([long])], ignore_index=True)


@pytest.fixture(scope="module")
def nodes() -> ZeroNodes:
    return bootstrap_par_curve(AS_OF, read_reference_csv("curve"))


def test_revalue_when_pillars_shocked_then_equals_quantlib_to_1e6(book, nodes):
    revaluer = Revaluer.build(book, nodes)
    shocks = np.random.default_rng(3).normal(0, 0.004, (8, len(nodes.times)))  # 40 bp a pillar: large moves

    error = check_against_quantlib(book, revaluer, shocks, sample=8)

    assert error < CHECK_TOLERANCE
    np.testing.assert_allclose(revaluer.base_values(), price_book(book, nodes).to_numpy(), rtol=1e-12)
    assert revaluer.flows.times.max() > nodes.times[-1]  # the extrapolation was exercised


def test_zero_weights_when_read_inside_and_past_pillars_then_quantlib_zero_curve_rule():
    import QuantLib as ql

    nodes = ZeroNodes(  # the first pillar is the curve's reference date, as bootstrap_par_curve makes it
        AS_OF,
        (AS_OF, date(2023, 12, 28), date(2025, 12, 27), date(2032, 12, 25)),
        np.array([0, 365, 1095, 3650]) / 365.0,
        np.array([0.028, 0.03, 0.035, 0.04]),
    )
    ql.Settings.instance().evaluationDate = ql.Date(28, 12, 2022)
    curve = nodes.curve()
    t = np.array([0.5, 1.0, 2.2, 3.0, 9.9, 12.0, 25.0])

    ours = zero_weights(nodes.times, t) @ nodes.zeros

    theirs = [curve.zeroRate(float(x), ql.Continuous).rate() for x in t]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_cash_flows_when_flow_falls_on_valuation_date_then_it_has_occurred(book):
    flows = cash_flows(book.iloc[:1], date(2023, 6, 30))  # UST-2Y pays a coupon on 2023-06-30

    # 2023-12-31, 2024-06-30, 2024-12-31 and the redemption; not the coupon of 2023-06-30
    assert flows.times.min() > 0.5 and len(flows.times) == 4
    assert flows.amounts.tolist() == pytest.approx([106_250.0] * 3 + [5_000_000.0])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"maturity_date": date(2022, 1, 1)}, "maturity_date"),
        ({"face": -1.0}, "face"),
        ({"currency": "EUR"}, "currency"),
    ],
)
def test_cash_flows_when_bond_row_invalid_then_input_error_names_the_bond(book, change, field):
    bad = book.iloc[:1].assign(**change)
    with pytest.raises(InputError, match=f"UST-2Y {field}"):
        cash_flows(bad, AS_OF)


def test_cash_flows_when_ids_repeat_then_input_error(book):
    with pytest.raises(InputError, match="unique bond ids"):
        cash_flows(pd.concat([book.iloc[:1], book.iloc[:1]]), AS_OF)


def test_revalue_when_shocks_or_pillars_malformed_then_input_error(book, nodes):
    late = ZeroNodes(AS_OF, nodes.dates[1:], nodes.times[1:], nodes.zeros[1:])
    with pytest.raises(InputError, match="first pillar"):
        Revaluer.build(book, late)
    revaluer = Revaluer.build(book.iloc[:2], nodes)
    with pytest.raises(InputError, match="pillars"):
        revaluer.revalue(np.zeros((3, 2)))
    with pytest.raises(InputError, match="increasing"):
        zero_weights(np.array([1.0, 1.0]), np.array([0.5]))
