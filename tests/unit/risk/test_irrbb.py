"""IRRBB shocks: the standard's formulas, and QuantLib prices against an independent discounting
calculation."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from dateutil.relativedelta import relativedelta

from marketdata.reference import read_reference_csv
from quantbridge.errors import InputError
from risk.irrbb import (
    BCBS_SCENARIOS,
    bcbs_shock,
    bootstrap_par_curve,
    key_rate_durations,
    price_book,
    rate_scenarios,
    scenario_shift,
)

AS_OF = date(2022, 12, 28)


def test_bcbs_shocks_when_evaluated_then_match_d368_formulas_for_usd():
    t = np.array([0.0, 1.0, 4.0, 10.0, 1e6])
    short = 0.03 * np.exp(-t / 4)
    long = 0.015 * (1 - np.exp(-t / 4))
    assert np.allclose(bcbs_shock("parallel_up", t), 0.02) and np.allclose(
        bcbs_shock("parallel_down", t), -0.02
    )
    assert np.allclose(bcbs_shock("short_up", t), short) and np.allclose(bcbs_shock("short_down", t), -short)
    assert np.allclose(bcbs_shock("steepener", t), -0.65 * short + 0.9 * long)
    assert np.allclose(bcbs_shock("flattener", t), 0.8 * short - 0.6 * long)
    assert bcbs_shock("steepener", 0.0) == pytest.approx(-0.0195)
    assert bcbs_shock("flattener", 1e6) == pytest.approx(-0.009)
    assert bcbs_shock("short_up", 4.0) == pytest.approx(0.03 / math.e)


def test_scenario_shift_when_user_sized_parallel_then_bp_parsed_and_bad_names_rejected():
    assert np.allclose(scenario_shift("parallel_+50bp")(np.array([1.0, 30.0])), 0.005)
    assert np.allclose(scenario_shift("parallel_-25bp")(np.array([2.0])), -0.0025)
    for bad in ("parallel_xbp", "twist"):
        with pytest.raises(InputError, match="scenario"):
            scenario_shift(bad)
    with pytest.raises(InputError, match="currency"):
        bcbs_shock("parallel_up", 1.0, "XXX")


@pytest.fixture(scope="module")
def nodes():
    return bootstrap_par_curve(AS_OF, read_reference_csv("curve"))


def test_bootstrap_when_par_bonds_repriced_then_each_prices_at_par(nodes):
    # Tenors in whole coupon periods: a bond rolled back from maturity then starts exactly today, as the
    # bootstrap's par bonds do (the 3-month par bond is a short stub, which the book's model does not have).
    curve = read_reference_csv("curve").query("tenor_years >= 0.5")
    book = pd.DataFrame(
        {
            "id": [f"P{t}" for t in curve["tenor_years"]],
            "face": 100.0,
            "coupon_rate": curve["par_rate"],
            "maturity_date": [AS_OF + relativedelta(months=int(round(t * 12))) for t in curve["tenor_years"]],
            "coupon_frequency": 2,
            "currency": "USD",
        }
    )
    assert np.allclose(price_book(book, nodes).to_numpy(), 100.0, atol=1e-8)


def _independent_pv(face, rate, freq, maturity, node_times, node_zeros):
    """Cash flows rolled back from maturity, 30/360 regular coupons, linear zero interpolation, continuous
    DF."""
    pv, k = 0.0, 0
    while (pay := maturity - relativedelta(months=k * 12 // freq)) > AS_OF:
        t = (pay - AS_OF).days / 365.0
        cash = face * rate / freq + (face if k == 0 else 0.0)
        pv += cash * math.exp(-np.interp(t, node_times, node_zeros) * t)
        k += 1
    return pv


@pytest.mark.parametrize("scenario", BCBS_SCENARIOS)
def test_bullet_bond_delta_eve_when_each_bcbs_scenario_then_matches_independent_discounting(nodes, scenario):
    maturity = date(2029, 6, 28)
    book = pd.DataFrame(
        {
            "id": ["B"],
            "face": [1_000_000.0],
            "coupon_rate": [0.045],
            "maturity_date": [maturity],
            "coupon_frequency": [2],
            "currency": ["USD"],
        }
    )
    [outcome] = rate_scenarios(book, nodes, [scenario])
    shocked_zeros = nodes.zeros + bcbs_shock(scenario, nodes.times)
    base = _independent_pv(1e6, 0.045, 2, maturity, nodes.times, nodes.zeros)
    shocked = _independent_pv(1e6, 0.045, 2, maturity, nodes.times, shocked_zeros)
    assert outcome.base["B"] == pytest.approx(base, rel=1e-8)
    assert outcome.shocked["B"] == pytest.approx(shocked, rel=1e-8)
    assert outcome.change["B"] == pytest.approx(shocked - base, rel=1e-8)


def test_rate_scenarios_when_illustrative_book_then_rows_per_position_and_total(nodes):
    book = read_reference_csv("bond_book")
    outcomes = rate_scenarios(book, nodes, ["parallel_up", "parallel_+100bp"], shock_scale=1.0)
    rows = outcomes[0].rows()
    assert [r["position"] for r in rows] == [*book["id"], "TOTAL"]
    assert rows[-1]["change"] == pytest.approx(sum(r["change"] for r in rows[:-1]))
    assert rows[-1]["change"] < 0 < outcomes[1].base.sum()  # rates up: a long bond book loses value
    assert abs(outcomes[1].change.sum()) < abs(outcomes[0].change.sum())
    with pytest.raises(InputError, match="shock_scale"):
        rate_scenarios(book, nodes, shock_scale=0)


def test_key_rate_durations_when_summed_then_close_to_effective_duration(nodes):
    book = read_reference_csv("bond_book").iloc[[2]]  # the 10-year Treasury
    krd = key_rate_durations(book, nodes)
    [up] = rate_scenarios(book, nodes, ["parallel_+1bp"])
    effective = -up.change.iloc[0] / (up.base.iloc[0] * 1e-4)
    assert krd.sum(axis=1).iloc[0] == pytest.approx(effective, rel=1e-3)
    assert krd.idxmax(axis=1).iloc[0] == "10.01y"


def test_price_book_when_bond_matured_or_bad_then_error_names_bond(nodes):
    row = dict(
        id="OLD",
        face=1.0,
        coupon_rate=0.01,
        maturity_date=date(2020, 1, 1),
        coupon_frequency=2,
        currency="USD",
    )
    with pytest.raises(InputError, match="bond OLD maturity_date"):
        price_book(pd.DataFrame([row]), nodes)
    with pytest.raises(InputError, match="coupon_frequency"):
        price_book(pd.DataFrame([{**row, "maturity_date": date(2030, 1, 1), "coupon_frequency": 3}]), nodes)
    with pytest.raises(InputError, match="face"):
        price_book(pd.DataFrame([{**row, "maturity_date": date(2030, 1, 1), "face": -5.0}]), nodes)
