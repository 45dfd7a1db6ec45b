"""Rego pre-trade policies evaluated for real with regopy; limits come from data."""

from __future__ import annotations

import pytest

from execution.policy import PolicyEngine
from quantbridge.messages import SubmitOrder


def order(ticker="AAPL", side="BUY", quantity=100.0, price=100.0) -> SubmitOrder:
    return SubmitOrder(order_id="o1", ts="t", strategy="s", ticker=ticker, side=side, quantity=quantity,
                       reference_price=price)


@pytest.fixture(scope="module")
def engine():
    return PolicyEngine()


def test_policy_when_order_within_limits_then_allowed(engine):
    verdict = engine.evaluate(order(), position=0, kill_switch=False, esg_score=0.7)
    assert verdict.allowed and verdict.reasons == ()


@pytest.mark.parametrize(
    "kwargs, position, kill, esg, reason",
    [({"ticker": "RRC"}, 0, False, 0.5, "RESTRICTED_INSTRUMENT: ticker=RRC"),
     ({"quantity": 3000.0}, 0, False, 0.5, "NOTIONAL_EXCEEDS_MAX: max=250000, notional=300000"),
     ({"quantity": 100.0, "price": 10.0}, 19950, False, 0.5, "POSITION_EXCEEDS_MAX: max=20000, position_after=20050"),
     ({}, 0, False, 0.2, "ESG_EXCLUDED: min=0.25, score=0.2"),
     ({}, 50, True, 0.5, "KILL_SWITCH_ACTIVE: position=50, position_after=150")],
)
def test_policy_when_a_rule_is_broken_then_denied_with_reason_code(engine, kwargs, position, kill, esg, reason):
    verdict = engine.evaluate(order(**kwargs), position=position, kill_switch=kill, esg_score=esg)
    assert not verdict.allowed
    assert verdict.reasons == (reason,)


def test_policy_when_kill_switch_set_then_risk_reducing_orders_still_pass(engine):
    assert engine.evaluate(order(side="SELL", quantity=50), position=200, kill_switch=True, esg_score=0.1).allowed
    assert not engine.evaluate(order(side="SELL", quantity=500), position=200, kill_switch=True, esg_score=0.5).allowed


def test_policy_when_limit_changed_in_data_then_no_code_change_needed():
    loose = PolicyEngine(data_overrides={"max_order_notional": 1_000_000})
    assert loose.evaluate(order(quantity=3000.0), position=0, kill_switch=False, esg_score=0.5).allowed
    assert loose.evaluate(order(quantity=3000.0), 0, False, 0.5).as_dict() == {"allowed": True, "reasons": []}


def test_policy_when_folder_has_no_rego_then_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="rego"):
        PolicyEngine(tmp_path)


def test_evaluate_many_when_batch_of_varied_orders_then_each_verdict_equals_the_single_evaluation(engine):
    cases = [(order(), 0.0, False, 0.7), (order(ticker="RRC"), 0.0, False, 0.5),
             (order(quantity=3000.0), 0.0, True, 0.5), (order(side="SELL", quantity=50.0), 100.0, True, None),
             (order(side="BUY", quantity=100.0, price=10.0), 19950.0, True, 0.1), (order(ticker="XOM"), -5.0, False, 0.3)]
    batch = engine.evaluate_many(cases)
    assert batch == [engine.evaluate(*case) for case in cases]
    assert [v.allowed for v in batch] == [True, False, False, True, False, True]
    assert len(batch[4].reasons) == 3 and engine.evaluate_many([]) == []
