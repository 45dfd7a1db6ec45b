"""Optimiser constraints, SHAP additivity, and the order message schema."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder
from strategy.explain import explain, top_contributions
from strategy.features import FEATURES, build_features
from strategy.model import fit
from strategy.portfolio import Constraints, optimise


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(4)
    n = 12
    a = rng.normal(size=(n, n)) * 0.01
    return rng.normal(0.002, 0.01, n), a @ a.T + np.eye(n) * 1e-4


@pytest.mark.parametrize(
    "constraints",
    [
        Constraints(),
        Constraints(max_weight=0.25, max_turnover=0.3),
        Constraints(long_only=False, max_gross=1.3, max_weight=0.3, max_turnover=2),
    ],
)
def test_optimise_when_solved_then_every_constraint_holds(problem, constraints):
    mu, cov = problem
    current = np.full(len(mu), 1 / len(mu))
    w = optimise(mu, cov, current, constraints)
    tol = 1e-6
    assert w.sum() == pytest.approx(1.0)
    assert np.abs(w).max() <= constraints.max_weight + tol
    assert np.abs(w - current).sum() <= constraints.max_turnover + 1e-4
    if constraints.long_only:
        assert (w >= 0).all()
    else:
        assert np.abs(w).sum() <= constraints.max_gross + 1e-4


def test_optimise_when_higher_expected_return_then_more_weight(problem):
    mu, cov = problem
    w = optimise(mu, cov, None, Constraints(max_turnover=2))
    assert w[np.argmax(mu)] >= w[np.argmin(mu)]


def test_optimise_when_infeasible_or_bad_then_clear_error(problem):
    mu, cov = problem
    with pytest.raises(InputError, match="max_weight"):
        optimise(mu, cov, None, Constraints(max_weight=0.05))  # 12 names x 5% < 100%
    with pytest.raises(InputError, match="max_weight"):
        Constraints(max_weight=0)
    with pytest.raises(InputError, match="mu/cov"):
        optimise(mu, cov[:3, :3])
    lopsided = np.zeros(len(mu))
    lopsided[0] = 1.0
    with pytest.raises(InputError, match="feasible"):
        optimise(mu, cov, lopsided, Constraints(max_weight=0.15, max_turnover=0.1))


def test_shap_when_model_explained_then_values_sum_to_prediction_minus_expected():
    from marketdata.feed import SkfolioFeed

    closes = (
        SkfolioFeed()
        .fetch(date(2018, 1, 2), date(2019, 6, 28))
        .pivot(index="date", columns="ticker", values="close")
    )
    panel = build_features(closes)
    model = fit(panel)
    today = panel[panel["date"] == panel["date"].max()]
    expected, values = explain(model, today)
    prediction = model.predict(today.loc[:, list(FEATURES)])
    assert np.allclose(values.sum(axis=1).to_numpy() + expected, prediction, atol=1e-9)
    top = top_contributions(values.iloc[0], k=3)
    assert list(top) == list(values.iloc[0].abs().sort_values(ascending=False).index[:3])


def test_submit_order_when_round_tripped_then_equal_and_bad_fields_named():
    order = SubmitOrder(
        order_id="2020-01-02:s:AAPL:v1",
        ts="2020-01-02T23:45:00+00:00",
        strategy="s",
        ticker="AAPL",
        side="BUY",
        quantity=10.0,
        reference_price=75.1,
        model_version="v1",
        explanation={"mom_21d": 0.01},
    )
    assert SubmitOrder.from_dict({k.encode(): v.encode() for k, v in order.to_dict().items()}) == order
    good = order.to_dict()
    for field, value, message in [
        ("quantity", "-1", "quantity"),
        ("quantity", "nan", "quantity"),
        ("side", "HOLD", "side"),
        ("ticker", "aapl", "ticker"),
        ("reference_price", "x", "reference_price"),
        ("explanation", "[1", "explanation"),
    ]:
        with pytest.raises(InputError, match=message):
            SubmitOrder.from_dict({**good, field: value})
    with pytest.raises(InputError, match="side"):
        SubmitOrder.from_dict({k: v for k, v in good.items() if k != "side"})
    with pytest.raises(InputError, match="explanation"):
        SubmitOrder.from_dict({**good, "explanation": "{" + " " * 5000 + "}"})
