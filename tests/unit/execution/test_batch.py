"""The worker's pure batch decisions: no Redis, no venues (execution/batch.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from execution import batch as core
from execution.orders import InvalidTransition
from execution.policy import PolicyEngine, PolicyVerdict
from quantbridge.messages import SubmitOrder

TICKERS = frozenset({"AAPL", "MSFT"})
NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def fields(**kw):
    base = {
        "order_id": "o1",
        "ts": "t",
        "strategy": "s",
        "ticker": "AAPL",
        "side": "BUY",
        "quantity": "10",
        "reference_price": "100",
    }
    base.update(kw)
    return base


def order(oid="o1", ticker="AAPL", side="BUY", quantity=10.0, price=100.0):
    return SubmitOrder(oid, "t", "s", ticker, side, quantity, price)


def fresh_view(**kw):
    values = dict(marks={"AAPL": 100.0, "MSFT": 50.0}, risk_updated_at=NOW.isoformat(), heartbeat=True)
    values.update(kw)
    return core.BookView(**values)


def test_intake_when_entry_valid_then_order_parsed():
    item = core.intake(
        3, "1-0", {b"order_id": b"o1", **{k: v for k, v in fields().items() if k != "order_id"}}, TICKERS
    )
    assert item.dead is None and item.order.quantity == 10.0 and item.ref == "o1" and item.index == 3


@pytest.mark.parametrize(
    "raw, deliveries, reason",
    [
        (fields(quantity="nan"), 1, "MALFORMED: quantity"),
        (fields(quantity="1e300"), 1, "MALFORMED: quantity=1e+300 is above 1e+09 shares"),
        (fields(ticker="ZZZ"), 1, "UNKNOWN_TICKER: ticker=ZZZ"),
        (fields(strategy="x" * 10_000), 1, "PAYLOAD_TOO_LARGE: max=8192 bytes, size="),
        (fields(), 6, "MAX_DELIVERIES: delivered=6, max=5"),
    ],
)
def test_intake_when_entry_unusable_then_dead_letter_reason(raw, deliveries, reason):
    item = core.intake(0, "9-0", raw, TICKERS, deliveries=deliveries)
    assert item.dead.startswith(reason)
    assert (item.order is not None) == (deliveries > 1)  # a capped order is kept: an open one gets cancelled
    assert all(len(v) <= 256 for v in item.fields.values()) or reason.startswith(("MALFORMED", "UNKNOWN"))


def test_intake_when_bytes_not_utf8_then_dead_letter_names_the_field():
    raw = {
        b"order_id": b"o1",
        b"strategy": b"\xff\xfe",
        **{k.encode(): v.encode() for k, v in fields().items() if k not in ("order_id", "strategy")},
    }
    item = core.intake(0, "9-0", raw, TICKERS)
    assert item.order is None and item.dead == "MALFORMED: field 'strategy' is not UTF-8 text"
    assert item.fields["strategy"] == "\ufffd\ufffd"


def test_intake_when_order_id_unusable_then_audited_under_the_entry_id():
    assert core.intake(0, "9-0", {"order_id": "x" * 500}, TICKERS).ref == "9-0"
    assert core.intake(0, "9-0", {"order_id": "a|b"}, TICKERS).ref == "a|b"


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


def decide(engine, orders, view, now=NOW.timestamp()):
    return core.verdicts(orders, view, {}, now, 90.0, engine.evaluate_many, engine.evaluate)


def test_verdicts_when_batch_fills_the_limit_then_later_orders_see_earlier_accepted_ones(engine):
    view = fresh_view(marks={"AAPL": 10.0}, positions={"AAPL": 19_800.0})
    out = decide(
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
    out = decide(engine, [order("a", ticker="MSFT"), order("b")], view)
    assert out[0] == PolicyVerdict(False, ("NO_MARK: ticker=MSFT, mark=None",)) and out[1].allowed


def test_verdicts_when_figures_stale_then_buys_from_flat_rejected(engine):
    out = decide(engine, [order()], fresh_view(), now=NOW.timestamp() + 500)
    assert out[0].reasons == ("RISK_STALE: age_s=500, max_s=90",)


def test_verdicts_when_engine_raises_for_one_order_then_only_that_one_is_none(engine):
    def many(items):
        raise RuntimeError("engine down")

    def one(o, c):
        if o.order_id == "bad":
            raise RuntimeError("poison")
        return engine.evaluate(o, c)

    out = core.verdicts(
        [order("a"), order("bad"), order("c")], fresh_view(), {}, NOW.timestamp(), 90.0, many, one
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
