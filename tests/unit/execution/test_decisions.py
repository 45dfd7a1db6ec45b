"""The worker's pure batch decisions: no Redis, no venues (execution/decisions.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from execution import decisions as core
from execution.orders import InvalidTransition
from execution.policy import PolicyEngine, PolicyVerdict
from quantbridge.messages import SubmitOrder

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()


def order(oid="o1", ticker="AAPL", side="BUY", quantity=10.0, price=100.0):
    return SubmitOrder(oid, "t", "s", ticker, side, quantity, price)


def fresh_view(**kw):
    values = dict(marks={"AAPL": 100.0, "MSFT": 50.0}, risk_updated_at=NOW.isoformat(), heartbeat=True)
    values.update(kw)
    return core.BookView(**values)


@pytest.mark.parametrize(
    "updated_at, heartbeat, stale, age",
    [
        (NOW.isoformat(), True, False, 10.0),
        ((NOW - timedelta(seconds=100)).isoformat(), True, True, 110.0),
        (NOW.isoformat(), False, True, 10.0),
        (None, True, True, None),
        ("yesterday", True, True, None),
        ("2026-01-05T15:00:00", True, True, None),  # no offset: not the sensor's, not trusted
    ],
)
def test_risk_age_when_figures_old_missing_or_heartbeat_gone_then_stale(updated_at, heartbeat, stale, age):
    assert core.risk_age(updated_at, heartbeat, NOW.timestamp() + 10, 90.0) == (stale, age)


def test_pending_sums_reservations_per_ticker_and_side():
    flight = {
        "a": {"ticker": "AAPL", "side": "BUY", "remaining": 5},
        "b": {"ticker": "AAPL", "side": "BUY", "remaining": 7.5},
        "c": {"ticker": "AAPL", "side": "SELL", "remaining": 1},
    }
    assert core.pending(flight) == {("AAPL", "BUY"): 12.5, ("AAPL", "SELL"): 1.0}


@pytest.fixture(scope="module")
def engine():
    return PolicyEngine()


def judge(engine, orders, view, now=NOW_S):
    return core.verdicts(orders, view, now, core.Rules(engine.evaluate_many, engine.evaluate))


def test_verdicts_when_batch_fills_the_limit_then_later_orders_see_earlier_accepted_ones(engine):
    view = fresh_view(marks={"AAPL": 10.0}, positions={"AAPL": 19_800.0})
    out = judge(
        engine,
        [
            order("a", price=10.0, quantity=150),
            order("b", price=10.0, quantity=100),
            order("c", price=10.0, quantity=50),
        ],
        view,
    )
    assert [v.allowed for v in out] == [True, False, True]  # b would breach after a; c still fits
    assert out[1].reasons == ("POSITION_EXCEEDS_MAX: max=20000, position_after=20050, in_flight=150",)


def test_verdicts_when_ticker_has_no_usable_mark_then_no_mark_rejection(engine):
    view = fresh_view(marks={"AAPL": 100.0, "MSFT": None})
    out = judge(engine, [order("a", ticker="MSFT"), order("b")], view)
    assert out[0] == PolicyVerdict(False, ("NO_MARK: ticker=MSFT, mark=None",)) and out[1].allowed


def test_verdicts_when_figures_stale_then_buys_from_flat_rejected(engine):
    out = judge(engine, [order()], fresh_view(), now=NOW.timestamp() + 500)
    assert out[0].reasons == ("RISK_STALE: age_s=500, max_s=90",)


def test_verdicts_when_engine_raises_for_one_order_then_only_that_one_is_none(engine):
    def many(items):
        raise RuntimeError("engine down")

    def one(o, c):
        if o.order_id == "bad":
            raise RuntimeError("poison")
        return engine.evaluate(o, c)

    out = core.verdicts(
        [order("a"), order("bad"), order("c")], fresh_view(), NOW.timestamp(), core.Rules(many, one)
    )
    assert [v and v.allowed for v in out] == [True, None, True]


def test_after_fills_when_partial_then_rest_cancelled_and_when_complete_then_filled():
    steps, final = core.after_fills(["NEW"], [40.0, 30.0], 100.0)
    assert steps == [["NEW", "PARTIALLY_FILLED"], ["NEW", "PARTIALLY_FILLED"]]
    assert final == ["NEW", "PARTIALLY_FILLED", "CANCELLED"]
    assert core.after_fills(["NEW"], [60.0, 40.0], 100.0)[1] == ["NEW", "PARTIALLY_FILLED", "FILLED"]
    assert core.after_fills(["NEW"], [], 100.0)[1] == ["NEW", "CANCELLED"]
    with pytest.raises(InvalidTransition):
        core.after_fills(["NEW", "FILLED"], [1.0], 1.0)


def test_records_are_canonical_json():
    assert core.reservation(order(quantity=3.0)) == json.dumps(
        {"remaining": 3.0, "side": "BUY", "ticker": "AAPL"}
    )
    assert core.state_record("NEW", 0.0, ["NEW"], children=[]) == core.state_record(
        "NEW", 0.0, ["NEW"], children=[]
    )
    assert json.loads(core.state_record("REJECTED", 0.0, ["REJECTED"], reasons=["X"]))["reasons"] == ["X"]
