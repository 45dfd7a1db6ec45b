"""The worker's pure batch decisions: no Redis, no venues (execution/decisions.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from execution import decisions as core
from execution.decisions import Outcome
from execution.intake import Intake
from execution.orders import InvalidTransition
from execution.policy import PolicyEngine, PolicyVerdict, RiskContext
from execution.router import Child
from execution.venues import DEFAULT_VENUES, Fill
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import ORDERS_GROUP

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()
KEYS = core.Keys(
    "orders",
    "state",
    "positions",
    "inflight",
    "inflight_rev",
    "kill",
    "fills",
    "dead",
    "marks",
    "risk",
    "sigs",
)


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


def test_risk_context_when_shares_in_flight_then_pending_per_side_at_the_workers_own_mark(engine):
    view = fresh_view(positions={"AAPL": 7.0}, kill_switch="operator")
    flight = {("AAPL", "BUY"): 5.0, ("AAPL", "SELL"): 2.0, ("MSFT", "BUY"): 9.0}
    rules = core.Rules(engine.evaluate_many, engine.evaluate, esg={"AAPL": 0.5})
    context = core.risk_context(order(price=90.0), view, flight, rules, True, 120.0)
    assert context == RiskContext(
        mark=100.0,  # the worker's mark, not the 90 the order carries
        position=7.0,
        pending_buy=5.0,
        pending_sell=2.0,
        kill_switch=True,
        risk_stale=True,
        risk_age_s=120.0,
        risk_max_age_s=90.0,
        esg_score=0.5,
    )


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
        {"ticker": "AAPL", "side": "BUY", "remaining": 3.0}, sort_keys=True, separators=(",", ":")
    )
    assert core.state_record("NEW", 0.0, ["NEW"], children=[]) == core.state_record(
        "NEW", 0.0, ["NEW"], children=[]
    )
    assert json.loads(core.state_record("REJECTED", 0.0, ["REJECTED"], reasons=["X"]))["reasons"] == ["X"]


# --- the decision commit ------------------------------------------------------------------------------
def item(index, o, dead=None):
    return Intake(index, f"{index + 1}-0", o.to_dict(), order=o, dead=dead)


def decide(engine, orders, view, now=NOW_S):
    rules = core.Rules(engine.evaluate_many, engine.evaluate, "sha")
    return core.decide([item(i, o) for i, o in enumerate(orders)], view, now, rules, DEFAULT_VENUES, {}, KEYS)


def test_decide_when_risk_figures_stale_then_risk_increasing_orders_rejected_and_reducing_ones_routed(engine):
    # Arrange: long 100 AAPL, the VaR figures 500 s old (bound 90 s).
    view = fresh_view(positions={"AAPL": 100.0}, risk_updated_at=(NOW - timedelta(seconds=500)).isoformat())
    orders = [
        order("buy", quantity=10.0),  # 100 -> 110: adds risk
        order("cut", side="SELL", quantity=10.0),  # 100 -> 90: reduces
        order("flip", side="SELL", quantity=150.0),  # 90 (after cut) -> -60: through zero, opens a short
        order("close", side="SELL", quantity=90.0),  # 90 -> 0: reduces
    ]

    # Act
    decision = decide(engine, orders, view)

    # Assert: the two risk-increasing orders rejected RISK_STALE, the two reducing ones NEW and reserved.
    stale = ("RISK_STALE: age_s=500, max_s=90",)
    assert decision.outcomes == {
        0: Outcome("buy", "REJECTED", reasons=stale),
        2: Outcome("flip", "REJECTED", reasons=stale),
    }
    assert [o.order.order_id for o in decision.send] == ["cut", "close"]
    assert [(oid, json.loads(raw)["state"]) for oid, raw in decision.commit.update] == [
        ("buy", "REJECTED"),
        ("cut", "NEW"),
        ("flip", "REJECTED"),
        ("close", "NEW"),
    ]
    assert decision.commit.hset == [
        ("inflight", "cut", '{"remaining":10.0,"side":"SELL","ticker":"AAPL"}'),
        ("inflight", "close", '{"remaining":90.0,"side":"SELL","ticker":"AAPL"}'),
    ]
    verdict = decision.commit.trail[1]
    assert verdict == (
        "verdict",
        "buy",
        {
            "allowed": False,
            "reasons": list(stale),
            "mark": 100.0,
            "position": 100.0,
            "kill_switch": False,
            "policy_revision": "sha",
        },
    )


def test_decide_when_an_order_is_accepted_then_commit_guarded_on_absent_states_revision_and_kill_switch(
    engine,
):
    view = fresh_view(revisions={"AAPL": "7"})
    decision = decide(engine, [order("a"), order("r", ticker="MSFT", price=80.0)], view)
    assert decision.commit.guards == [
        ("state", "a", None),
        ("state", "r", None),
        ("inflight_rev", "AAPL", "7"),  # the reservations the verdict saw
        ("kill", None, None),  # and no kill switch
    ]
    assert decision.commit.hincr == [("inflight_rev", "AAPL", 1.0)]
    assert [kind for kind, _, _ in decision.commit.trail] == ["order", "verdict", "state"] * 2
    assert decision.outcomes == {
        1: Outcome("r", "REJECTED", reasons=("PRICE_BAND: band=0.1, mark=50, reference_price=80",))
    }
    [child] = decision.send[0].children  # 10 shares: GAMMA is cheapest (see the router's tests)
    assert (child.child_id, child.venue, child.quantity) == ("a#0", "GAMMA", 10.0)
    stored = json.loads(decision.commit.update[0][1])
    assert stored["history"] == ["NEW"] and stored["children"][0]["venue"] == "GAMMA"


def test_decide_when_only_rejections_then_no_revision_or_kill_switch_guard(engine):
    decision = decide(engine, [order("r", price=200.0)], fresh_view(kill_switch="operator"))
    assert decision.commit.guards == [("state", "r", None)]
    assert decision.commit.hset == [] and decision.send == []


def test_decide_when_final_twice_in_batch_or_open_then_duplicate_or_resumed_without_a_new_verdict(engine):
    # Arrange: "done" already FILLED, "open" decided NEW by a worker that died before its fills.
    child = {
        "child_id": "open#0",
        "venue": "BETA",
        "quantity": 10.0,
        "limit_price": 101.0,
        "expected_cost_bps": 3.5,
    }
    open_raw = core.state_record("NEW", 0.0, ["NEW"], children=[child])
    done_raw = core.state_record("FILLED", 4.0, ["NEW", "FILLED"], children=[])
    view = fresh_view(states={"open": open_raw, "done": done_raw, "new": None}, marks={"AAPL": 102.0})

    # Act
    decision = decide(engine, [order("done", quantity=4.0), order("open"), order("new"), order("new")], view)

    # Assert
    assert decision.outcomes == {0: Outcome("done", "DUPLICATE", 4.0), 3: Outcome("new", "DUPLICATE", 0.0)}
    assert decision.commit.trail[:2] == [
        ("duplicate", "done", {"entry_id": "1-0", "state": "FILLED"}),
        ("duplicate", "new", {"entry_id": "4-0", "state": "IN_BATCH"}),
    ]
    resumed, fresh = decision.send
    assert (resumed.order.order_id, resumed.mark, resumed.raw_state) == ("open", 102.0, open_raw)
    assert resumed.children == [Child(**child)]  # its stored route, not a new one
    assert fresh.order.order_id == "new" and [i.entry_id for i in decision.decided] == ["3-0"]


def test_decide_when_nothing_to_write_then_no_commit_and_the_duplicates_ride_with_the_fill_commit(engine):
    done_raw = core.state_record("FILLED", 4.0, ["NEW", "FILLED"], children=[])
    open_raw = core.state_record("NEW", 0.0, ["NEW"], children=[])
    view = fresh_view(states={"done": done_raw, "open": open_raw}, marks={})  # no mark: the open one waits
    decision = decide(engine, [order("done"), order("open")], view)
    assert decision.commit is None and decision.send == [] and decision.decided == []
    assert decision.carry == [("duplicate", "done", {"entry_id": "1-0", "state": "FILLED"})]


# --- the fill commit ----------------------------------------------------------------------------------
def fill(oid, child, venue, quantity, side="BUY"):
    return Fill(child, oid, venue, "AAPL", side, quantity, 100.0, fee=0.5, slippage_bps=1.0, latency_ms=0.2)


def opened(o, index=0):
    state = {"state": "NEW", "filled": 0.0, "children": [], "history": ["NEW"]}
    return core.Open(item(index, o), o, [], 100.0, state, core.state_record(**state))


def test_record_fills_when_children_fill_part_then_rest_cancelled_positions_moved_reservation_released():
    sent = opened(order("p", quantity=1000.0))
    plan, outcomes = core.record_fills(
        [(sent, [fill("p", "p#0", "GAMMA", 400.0), fill("p", "p#1", "BETA", 500.0)])], KEYS
    )
    assert outcomes == {0: Outcome("p", "CANCELLED", 900.0)}
    assert [(kind, p["state"], p["filled"]) for kind, _, p in plan.trail] == [
        ("fill", "PARTIALLY_FILLED", 400.0),
        ("fill", "PARTIALLY_FILLED", 900.0),
        ("state", "CANCELLED", 900.0),
    ]
    assert plan.trail[-1][2]["cancelled"] == 100.0
    assert plan.hincr == [("positions", "AAPL", 400.0), ("positions", "AAPL", 500.0)]
    assert plan.guards == [("state", "p", sent.raw_state)] and plan.hdel == [("inflight", "p")]
    assert json.loads(plan.update[0][1]) == {
        "state": "CANCELLED",
        "filled": 900.0,
        "history": ["NEW", "PARTIALLY_FILLED", "CANCELLED"],
        "children": [],
    }
    assert [stream for stream, _ in plan.xadd] == ["fills", "fills"]
    assert dict(plan.xadd[1][1]) == {
        "fill_id": "p#1",
        "order_id": "p",
        "venue": "BETA",
        "ticker": "AAPL",
        "side": "BUY",
        "quantity": "500.0",
        "price": "100.0",
        "fee": "0.5",
        "slippage_bps": "1.0",
        "latency_ms": "0.2",
        "ts": "t",
    }


def test_record_fills_when_sell_fills_in_full_then_filled_short_shares_and_no_cancel_entry():
    plan, outcomes = core.record_fills(
        [(opened(order("s", side="SELL", quantity=30.0)), [fill("s", "s#0", "GAMMA", 30.0, "SELL")])], KEYS
    )
    assert outcomes == {0: Outcome("s", "FILLED", 30.0)}
    assert plan.hincr == [("positions", "AAPL", -30.0)]
    assert [(kind, p["state"]) for kind, _, p in plan.trail] == [("fill", "FILLED")]


def test_record_fills_when_nothing_fills_then_cancelled_with_the_whole_quantity():
    plan, outcomes = core.record_fills([(opened(order("n", quantity=25.0)), [])], KEYS)
    assert outcomes == {0: Outcome("n", "CANCELLED", 0.0)}
    assert plan.trail == [("state", "n", {"state": "CANCELLED", "filled": 0.0, "cancelled": 25.0})]
    assert json.loads(plan.update[0][1])["history"] == ["NEW", "CANCELLED"] and plan.hincr == []


def test_cancel_capped_when_order_open_then_cancelled_and_released_and_when_final_or_unknown_then_untouched():
    reason = "MAX_DELIVERIES: delivered=6, max=5"
    child = {
        "child_id": "a#0",
        "venue": "BETA",
        "quantity": 10.0,
        "limit_price": 101.0,
        "expected_cost_bps": 3.5,
    }
    raw_open = core.state_record("NEW", 0.0, ["NEW"], children=[child])
    raw_done = core.state_record("FILLED", 10.0, ["NEW", "FILLED"], children=[])
    capped = [
        (item(0, order("a"), dead=reason), raw_open),
        (item(1, order("b"), dead=reason), raw_done),
        (item(2, order("c"), dead=reason), None),
    ]
    plan = core.cancel_capped(capped, KEYS)
    assert plan.guards == [("state", "a", raw_open)] and plan.hdel == [("inflight", "a")]
    assert json.loads(plan.update[0][1]) == {
        "state": "CANCELLED",
        "filled": 0.0,
        "history": ["NEW", "CANCELLED"],
        "children": [child],
        "reasons": [reason],
    }
    assert plan.trail == [("state", "a", {"state": "CANCELLED", "filled": 0.0, "reason": reason})]


def test_dead_letters_when_entries_unusable_then_one_letter_and_audit_entry_each():
    bad = Intake(1, "2-0", {"order_id": "x", "quantity": "abc"}, dead="MALFORMED: quantity")
    anonymous = Intake(2, "3-0", {"order_id": ""}, dead="MALFORMED: order_id")
    plan, outcomes = core.dead_letters([item(0, order("ok")), bad, anonymous], KEYS, "rev1")
    assert outcomes == {
        1: Outcome("x", "DEAD_LETTER", reasons=("MALFORMED: quantity",)),
        2: Outcome("3-0", "DEAD_LETTER", reasons=("MALFORMED: order_id",)),  # filed under its entry id
    }
    assert plan.trail[0] == (
        "dead_letter",
        "x",
        {"entry_id": "2-0", "reason": "MALFORMED: quantity", "policy_revision": "rev1"},
    )
    assert plan.xadd[0] == (
        "dead",
        (
            ("entry_id", "2-0"),
            ("reason", "MALFORMED: quantity"),
            ("fields", '{"order_id": "x", "quantity": "abc"}'),
            ("policy_revision", "rev1"),  # which revision's worker refused it
        ),
    )


def test_trusted_marks_when_live_price_usable_then_it_wins_else_the_lake_close():
    live = {"A": "51.5", "B": "nan", "C": "-3", "D": None, "E": b"\xff", "F": "inf", "G": None}
    lake = {"A": 50.0, "B": 40.0, "C": 30.0, "D": 20.0, "E": 10.0, "F": 5.0}
    marks = core.trusted_marks(live, lake)
    assert marks == {"A": 51.5, "B": 40.0, "C": 30.0, "D": 20.0, "E": 10.0, "F": 5.0, "G": None}


def test_plan_when_added_then_entries_and_changes_keep_their_order_and_acks_name_the_orders_stream():
    letters = core.Plan(trail=[("dead_letter", "x", {})], xadd=[("dead", (("entry_id", "1-0"),))])
    fills = core.Plan(
        trail=[("fill", "y", {})],
        guards=[("state", "y", "raw")],
        update=[("y", "record")],
        hdel=[("inflight", "y")],
        hincr=[("positions", "AAPL", 5.0)],
        xadd=[("fills", (("fill_id", "y#0"),))],
    )
    both = letters + fills
    assert [ref for _, ref, _ in both.trail] == ["x", "y"] and [s for s, _ in both.xadd] == ["dead", "fills"]
    effects = both.effects(KEYS, ack=("1-0", "2-0"))
    assert (effects.state_key, effects.stream, effects.group, effects.ack) == (
        "state",
        "orders",
        ORDERS_GROUP,
        ("1-0", "2-0"),
    )
    assert effects.update == (("y", "record"),) and effects.guards == (("state", "y", "raw"),)
    assert (fills.effects(KEYS).stream, fills.effects(KEYS).group) == ("", "")  # nothing to acknowledge
