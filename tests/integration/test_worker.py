"""The execution worker on a real redis-server: fills at trusted marks, idempotency, dead letters once,
policies on independent marks, fail-closed risk, reservations across racing workers, a complete audit."""

from __future__ import annotations

import json
import threading

import pytest

from execution.policy import PolicyEngine
from execution.venues import VenueSpec
from execution.worker import ExecutionWorker
from quantbridge.audit import verify
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema
from tests.risk_support import publish_fresh_risk

SCHEMA = RedisSchema("qb")
TICKERS = ["AAPL", "MSFT", "XOM", "RRC"]
MARKS = {"AAPL": 150.0, "MSFT": 30.0, "XOM": 100.0, "RRC": 10.0}


@pytest.fixture
def client(redis_client):
    publish_fresh_risk(redis_client, SCHEMA)
    return redis_client


def submit(client, order_id, ticker="AAPL", side="BUY", quantity=100.0, price=None):
    order = SubmitOrder(
        order_id=order_id,
        ts="2026-01-05T14:30:00+00:00",
        strategy="test",
        ticker=ticker,
        side=side,
        quantity=quantity,
        reference_price=MARKS[ticker] if price is None else price,
    )
    return client.xadd(SCHEMA.key("orders"), order.to_dict())


def worker(client, name="w1", **kwargs):
    kwargs.setdefault("esg", {"AAPL": 0.7, "XOM": 0.27})
    kwargs.setdefault("marks", MARKS)
    return ExecutionWorker(client, SCHEMA, name, TICKERS, **kwargs)


def read_batch(client, consumer="w1"):
    return [
        (e, raw)
        for e, raw in client.xreadgroup(ORDERS_GROUP, consumer, {SCHEMA.key("orders"): ">"}, count=100)[0][1]
    ]


def state(client, oid):
    return json.loads(client.hget(SCHEMA.key("order_state"), oid))


def positions(client):
    return {k: float(v) for k, v in client.hgetall(SCHEMA.key("positions")).items()}


def fills_total(client):
    total = {}
    for _, f in client.xrange(SCHEMA.key("fills")):
        sign = 1 if f["side"] == "BUY" else -1
        total[f["ticker"]] = total.get(f["ticker"], 0.0) + sign * float(f["quantity"])
    return total


def trail(client, ref):
    return [f["kind"] for _, f in client.xrange(SCHEMA.key("audit")) if f["ref"] == ref]


def test_worker_when_orders_stream_then_filled_positions_equal_fills_and_every_transition_audited(client):
    w = worker(client)
    submit(client, "o1", quantity=100)
    submit(client, "o2", ticker="MSFT", side="SELL", quantity=5000)  # split across venues
    assert w.run(threading.Event(), block_ms=50, max_orders=2) == 2
    assert state(client, "o1")["state"] == "FILLED" and state(client, "o1")["filled"] == 100
    assert state(client, "o1")["history"] == ["NEW", "FILLED"]
    o2 = state(client, "o2")
    assert o2["state"] in {"FILLED", "CANCELLED"} and len(o2["children"]) == 3
    assert positions(client) == pytest.approx(fills_total(client))
    assert client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0
    assert client.hlen(SCHEMA.key("inflight")) == 0  # every reservation released
    assert verify(client, SCHEMA)["ok"]
    assert trail(client, "o1") == ["order", "verdict", "state", "fill"]
    assert trail(client, "o2")[:3] == ["order", "verdict", "state"]
    payloads = [json.loads(f["payload"]) for _, f in client.xrange(SCHEMA.key("audit")) if f["ref"] == "o1"]
    assert payloads[2]["state"] == "NEW" and payloads[3]["state"] == "FILLED"
    assert trail(client, "w1") == ["limits_loaded"]


def test_worker_when_order_price_far_from_mark_then_fills_at_the_mark_and_notional_uses_the_mark(client):
    w = worker(client)
    submit(client, "band", quantity=10, price=200.0)  # 33% above the mark of 150
    submit(client, "cheap", quantity=1_700, price=136.0)  # 231,200 at its own price, 255,000 at the mark
    submit(client, "ok", quantity=10, price=140.0)  # 6.7% off the mark: inside the 10% band
    w.run(threading.Event(), block_ms=50, max_orders=3)
    assert state(client, "band")["reasons"] == ["PRICE_BAND: band=0.1, mark=150, reference_price=200"]
    assert state(client, "cheap")["reasons"] == [
        "NOTIONAL_EXCEEDS_MAX: max=250000, notional=255000, mark=150"
    ]
    [(_, fill)] = client.xrange(SCHEMA.key("fills"))
    assert abs(float(fill["price"]) / 150.0 - 1) < 0.002  # around the mark, not the order's 140


def test_worker_when_redis_mark_present_then_it_wins_over_the_lake_close(client):
    client.hset(SCHEMA.key("marks"), "AAPL", "200")
    w = worker(client)
    submit(client, "m", quantity=10, price=150.0)  # 25% below the fresher mark
    w.run(threading.Event(), block_ms=50, max_orders=1)
    assert state(client, "m")["reasons"] == ["PRICE_BAND: band=0.1, mark=200, reference_price=150"]


def test_worker_when_no_mark_for_ticker_then_rejected_no_mark(client):
    w = worker(client, marks={"AAPL": 150.0})
    submit(client, "nomark", ticker="MSFT", quantity=10)
    w.run(threading.Event(), block_ms=50, max_orders=1)
    assert state(client, "nomark")["reasons"] == ["NO_MARK: ticker=MSFT, mark=None"]


def test_worker_when_same_order_delivered_twice_then_filled_once_and_duplicate_audited(client):
    w = worker(client)
    submit(client, "dup")
    submit(client, "dup")
    w.run(threading.Event(), block_ms=50, max_orders=2)
    assert positions(client)["AAPL"] == 100
    assert client.xlen(SCHEMA.key("fills")) == 1
    assert trail(client, "dup").count("duplicate") == 1
    assert verify(client, SCHEMA)["ok"]


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"order_id": "m1"}, "MALFORMED"),
        (
            {
                "order_id": "m2",
                "ts": "t",
                "strategy": "s",
                "ticker": "AAPL",
                "side": "BUY",
                "quantity": "-5",
                "reference_price": "10",
            },
            "MALFORMED: quantity",
        ),
        (
            {
                "order_id": "m3",
                "ts": "t",
                "strategy": "s",
                "ticker": "AAPL",
                "side": "BUY",
                "quantity": "5",
                "reference_price": "nan",
            },
            "MALFORMED: reference_price",
        ),
        (
            {
                "order_id": "m4",
                "ts": "t",
                "strategy": "s",
                "ticker": "ZZZZ",
                "side": "BUY",
                "quantity": "5",
                "reference_price": "10",
            },
            "UNKNOWN_TICKER",
        ),
        (
            {
                "order_id": "m5",
                "ts": "t",
                "strategy": "s" * 9000,
                "ticker": "AAPL",
                "side": "BUY",
                "quantity": "5",
                "reference_price": "10",
            },
            "PAYLOAD_TOO_LARGE",
        ),
        (
            {
                "order_id": "m6",
                "ts": "t",
                "strategy": "s",
                "ticker": "AAPL",
                "side": "BUY",
                "quantity": "1e300",
                "reference_price": "150",
            },
            "MALFORMED: quantity=1e+300",
        ),
    ],
)
def test_worker_when_order_malformed_then_dead_lettered_once_with_audit_and_worker_goes_on(
    client, fields, reason
):
    w = worker(client)
    client.xadd(SCHEMA.key("orders"), fields)
    submit(client, "good")
    assert w.run(threading.Event(), block_ms=50, max_orders=2) == 2
    [(_, dead)] = client.xrange(SCHEMA.key("dead_letter"))
    assert dead["reason"].startswith(reason)
    assert state(client, "good")["state"] == "FILLED"
    assert trail(client, fields["order_id"]) == ["dead_letter"]
    assert w.reclaim(min_idle_ms=0) == 0 and client.xlen(SCHEMA.key("dead_letter")) == 1  # acked: never again


def test_worker_when_policy_denies_or_kill_switch_set_then_rejected_with_reasons(client):
    w = worker(client)
    submit(client, "r1", ticker="RRC")
    submit(client, "r2", ticker="XOM", quantity=10)  # ESG 0.27 >= 0.25: allowed
    w.run(threading.Event(), block_ms=50, max_orders=2)
    client.set(SCHEMA.key("kill_switch"), json.dumps({"reason": "test", "by": "operator:t"}))
    submit(client, "r3", quantity=10)
    submit(client, "r4", ticker="XOM", side="SELL", quantity=20)  # +10 -> -10: through zero
    submit(client, "r5", ticker="XOM", side="SELL", quantity=10)  # +10 -> 0: reduces
    w.run(threading.Event(), block_ms=50, max_orders=3)
    assert state(client, "r1") == {
        "state": "REJECTED",
        "filled": 0.0,
        "reasons": ["RESTRICTED_INSTRUMENT: ticker=RRC"],
        "history": ["REJECTED"],
    }
    assert state(client, "r2")["state"] == "FILLED"
    assert state(client, "r3")["reasons"] == [
        "KILL_SWITCH_ACTIVE: position=0, position_after=10, reducible=0"
    ]
    assert state(client, "r4")["reasons"] == [
        "KILL_SWITCH_ACTIVE: position=10, position_after=-10, reducible=10"
    ]
    assert (
        state(client, "r5")["state"] == "FILLED" and positions(client).get("XOM", 0.0) == 0
    )  # flat: no entry


@pytest.mark.parametrize("age_s, heartbeat", [(500.0, True), (0.0, False)])
def test_worker_when_risk_figures_stale_or_sensor_heartbeat_gone_then_only_reducing_orders_pass(
    redis_client, age_s, heartbeat
):
    redis_client.hset(SCHEMA.key("positions"), "AAPL", 50)
    publish_fresh_risk(redis_client, SCHEMA, age_s=age_s, heartbeat=heartbeat)
    w = worker(redis_client, risk_stale_after_s=90.0)
    submit(redis_client, "up", quantity=10)
    submit(redis_client, "down", side="SELL", quantity=10)
    w.run(threading.Event(), block_ms=50, max_orders=2)
    [reason] = state(redis_client, "up")["reasons"]
    assert reason.startswith("RISK_STALE: age_s=") and reason.endswith("max_s=90")
    assert state(redis_client, "down")["state"] == "FILLED"


def test_worker_when_no_risk_figures_at_all_then_risk_increasing_orders_rejected(redis_client):
    w = worker(redis_client)
    submit(redis_client, "blind", quantity=10)
    w.run(threading.Event(), block_ms=50, max_orders=1)
    assert state(redis_client, "blind")["reasons"] == ["RISK_STALE: age_s=null, max_s=90"]


def test_worker_when_crash_after_decision_before_fills_then_replay_fills_once(client, monkeypatch):
    first = worker(client, "dead-worker")
    submit(client, "c1", ticker="MSFT", quantity=2000)
    [(entry_id, raw)] = read_batch(client, "dead-worker")

    def die(*_args, **_kwargs):
        raise SystemExit("killed between the decision and the fills")

    monkeypatch.setattr(first, "_fill_and_commit", die)
    with pytest.raises(SystemExit):
        first.process_batch([(entry_id, raw)], ack=True)
    assert state(client, "c1")["state"] == "NEW" and client.hexists(SCHEMA.key("inflight"), "c1")
    second = worker(client, "w2")
    assert second.reclaim(min_idle_ms=0) == 1  # XAUTOCLAIM takes the dead consumer's entry
    assert state(client, "c1")["state"] in {"FILLED", "CANCELLED"}
    assert positions(client) == pytest.approx(fills_total(client)) and client.xlen(SCHEMA.key("fills")) >= 1
    assert not client.hexists(SCHEMA.key("inflight"), "c1")
    assert client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0
    assert verify(client, SCHEMA)["ok"]


def test_qb_worker_when_orders_waiting_then_handles_them_and_stops(redis_client, settings, spark, capsys):
    from datetime import date

    from app.cli.main import main
    from marketdata.feed import SkfolioFeed
    from marketdata.ingest import ingest_range
    from quantbridge.lake import Lake
    from strategy.rebalance import publish_orders

    ingest_range(settings, SkfolioFeed(), date(2020, 1, 2), date(2020, 1, 3), spark=spark)
    publish_fresh_risk(redis_client, SCHEMA)
    close = float(Lake(settings.lake_root).read_close_matrix()["AAPL"].iloc[-1])
    order = SubmitOrder(
        order_id="cli-1",
        ts="t",
        strategy="s",
        ticker="AAPL",
        side="BUY",
        quantity=100.0,
        reference_price=close,
    )
    unknown = SubmitOrder("cli-2", "t", "s", "NOPE", "BUY", 100.0, close)
    # published as the strategy publishes: qb worker checks every order's signature first
    assert publish_orders(redis_client, SCHEMA, [order, unknown], ["{}", "{}"]) == 2
    assert main(["worker", "--consumer", "cli", "--max-orders", "2", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == {"consumer": "cli", "handled": 2}
    assert redis_client.xlen(SCHEMA.key("dead_letter")) == 1 and positions(redis_client)["AAPL"] == 100
    [(_, fill)] = redis_client.xrange(SCHEMA.key("fills"))
    assert abs(float(fill["price"]) / close - 1) < 0.002  # the lake close is the worker's mark


def test_worker_when_another_consumer_dies_after_start_then_its_orders_are_reclaimed(client):
    import time

    w = worker(client, "survivor")
    stop = threading.Event()
    loop = threading.Thread(target=w.run, args=(stop,), kwargs={"block_ms": 50, "reclaim_idle_ms": 200})
    loop.start()
    time.sleep(0.3)  # the survivor's start-up reclaim has already run
    submit(client, "orphan")
    client.xreadgroup(ORDERS_GROUP, "ghost", {SCHEMA.key("orders"): ">"}, count=1)  # read, then "dies"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not client.hexists(SCHEMA.key("order_state"), "orphan"):
        time.sleep(0.05)
    stop.set()
    loop.join(5)
    assert state(client, "orphan")["state"] == "FILLED"
    assert client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0


THIN = (
    VenueSpec(
        "THIN",
        taker_fee_bps=1.0,
        maker_fee_bps=0.0,
        half_spread_bps=1.0,
        true_slippage_bps=1.0,
        noise_bps=0.1,
        depth=100,
        latency_ms=0.1,
        seed=5,
    ),
)


def test_worker_when_book_thinner_than_order_then_partially_filled_rest_cancelled_and_audited(client):
    w = worker(client, "thin", venues=THIN)
    submit(client, "p1", quantity=300)
    assert w.run(threading.Event(), block_ms=50, max_orders=1) == 1
    final = state(client, "p1")
    assert final["state"] == "CANCELLED" and final["filled"] == 100
    assert final["history"] == ["NEW", "PARTIALLY_FILLED", "CANCELLED"]
    assert positions(client) == {"AAPL": 100}
    assert trail(client, "p1") == ["order", "verdict", "state", "fill", "state"]
    last = json.loads([f for _, f in client.xrange(SCHEMA.key("audit")) if f["ref"] == "p1"][-1]["payload"])
    assert last == {"state": "CANCELLED", "filled": 100.0, "cancelled": 200.0}


class BrokenFor(PolicyEngine):
    """The real policies, except that one order id makes the engine raise (a poison order)."""

    def evaluate_many(self, items):
        if any(order.order_id == "bad" for order, _ in items):
            raise RuntimeError("policy engine fault")
        return super().evaluate_many(items)

    def evaluate(self, order, context):
        if order.order_id == "bad":
            raise RuntimeError("policy engine fault")
        return super().evaluate(order, context)


def test_worker_when_one_order_of_a_batch_raises_then_it_stays_pending_and_the_rest_is_handled(client):
    w = worker(client, policy=BrokenFor())
    for oid in ("a", "bad", "b"):
        submit(client, oid, quantity=10)
    entries = read_batch(client)
    outcomes = w.process_batch(entries, ack=True)
    assert [o and o.state for o in outcomes] == ["FILLED", None, "FILLED"]
    pending = client.xpending_range(SCHEMA.key("orders"), ORDERS_GROUP, "-", "+", 10)
    assert [p["message_id"] for p in pending] == [entries[1][0]]
    assert not client.hexists(SCHEMA.key("order_state"), "bad")


def test_worker_when_poison_order_redelivered_past_the_cap_then_dead_lettered_once_with_its_count(client):
    w = worker(client, policy=BrokenFor(), max_deliveries=3)
    submit(client, "bad", quantity=10)
    assert w._read_once(block_ms=None) == 0  # delivery 1: left pending
    for _ in range(3):  # each reclaim delivers it again (its own pending list, then XAUTOCLAIM)
        w.reclaim(min_idle_ms=0)
    [(_, dead)] = client.xrange(SCHEMA.key("dead_letter"))
    assert dead["reason"] == "MAX_DELIVERIES: delivered=4, max=3"
    assert client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0
    assert trail(client, "bad") == ["dead_letter"] and verify(client, SCHEMA)["ok"]


def test_worker_when_batch_holds_a_denied_order_then_later_orders_see_the_true_position(client):
    # Position limit 20,000 shares: the first buy is denied (notional), so the second, which fits only
    # if the first did not fill, must be allowed, exactly as if they had been checked one by one.
    w = worker(client, marks={**MARKS, "AAPL": 10.0})
    client.hset(SCHEMA.key("positions"), "AAPL", 19_000)
    submit(client, "big", quantity=30_000, price=10.0)  # notional 300,000 > 250,000: denied
    submit(client, "fits", quantity=900, price=10.0)  # 19,900 <= 20,000 once "big" is denied
    submit(client, "over", quantity=200, price=10.0)  # 20,100 > 20,000 after "fits"
    assert [o.state for o in w.process_batch(read_batch(client), ack=True)] == [
        "REJECTED",
        "FILLED",
        "REJECTED",
    ]
    assert state(client, "over")["reasons"] == [
        "POSITION_EXCEEDS_MAX: max=20000, position_after=20100, in_flight=900"
    ]


def test_worker_when_open_orders_in_flight_then_position_limit_counts_them(client):
    client.hset(
        SCHEMA.key("inflight"), "elsewhere", json.dumps({"ticker": "AAPL", "side": "BUY", "remaining": 1000})
    )
    client.hset(SCHEMA.key("positions"), "AAPL", 19_000)
    w = worker(client, marks={**MARKS, "AAPL": 10.0})
    submit(client, "late", quantity=100, price=10.0)
    w.run(threading.Event(), block_ms=50, max_orders=1)
    assert state(client, "late")["reasons"] == [
        "POSITION_EXCEEDS_MAX: max=20000, position_after=20100, in_flight=1000"
    ]


def test_worker_when_another_worker_reserves_between_read_and_commit_then_decision_is_made_again(client):
    # A deterministic race: worker A reads the book, then worker B accepts an order that uses the room
    # left under the position limit; A's commit is refused by its guard, A reads again and rejects.
    client.hset(SCHEMA.key("positions"), "AAPL", 19_500)
    a = worker(client, "A", marks={**MARKS, "AAPL": 10.0})
    b = worker(client, "B", marks={**MARKS, "AAPL": 10.0})
    submit(client, "a1", quantity=400, price=10.0)
    entries_a = read_batch(client, "A")
    submit(client, "b1", quantity=400, price=10.0)
    entries_b = read_batch(client, "B")
    real_read, raced = a._read, []

    def read_then_b_decides(works):
        view = real_read(works)
        if not raced:
            raced.append(b._decide([_item(b, entries_b)], 0.0))  # B reserves 400
        return view

    a._read = read_then_b_decides
    [outcome] = a.process_batch(entries_a, ack=True)
    assert outcome.state == "REJECTED"
    assert outcome.reasons == ("POSITION_EXCEEDS_MAX: max=20000, position_after=20300, in_flight=400",)
    assert client.hexists(SCHEMA.key("inflight"), "b1")  # B's order stays reserved until it fills


def _item(w, entries):
    from execution.intake import intake

    [(entry_id, raw)] = entries
    return intake(0, entry_id, raw, w.tickers)


def test_worker_when_two_workers_race_orders_that_together_breach_the_limit_then_none_breaches(redis_server):
    from quantbridge.redis_client import connect
    from quantbridge.settings import load_settings

    settings = load_settings()
    setup = connect(settings)
    setup.flushdb()
    publish_fresh_risk(setup, SCHEMA)
    setup.hset(SCHEMA.key("positions"), "AAPL", 15_000)
    for i in range(200):  # 200 x 100 = 20,000 shares of buys, room for 5,000
        order = SubmitOrder(
            order_id=f"race{i}",
            ts="t",
            strategy="s",
            ticker="AAPL",
            side="BUY",
            quantity=100.0,
            reference_price=10.0,
        )
        setup.xadd(SCHEMA.key("orders"), order.to_dict())
    stop = threading.Event()
    workers = [
        ExecutionWorker(connect(settings), SCHEMA, f"racer{n}", TICKERS, marks={"AAPL": 10.0})
        for n in range(2)
    ]
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda w=w: counts.append(w.run(stop, block_ms=20, max_orders=200)))
        for w in workers
    ]
    for t in threads:
        t.start()
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and setup.hlen(SCHEMA.key("order_state")) < 200:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    states = [json.loads(v) for v in setup.hvals(SCHEMA.key("order_state"))]
    assert len(states) == 200
    position = float(setup.hget(SCHEMA.key("positions"), "AAPL"))
    assert position <= 20_000  # never beyond the limit...
    assert position == 15_000 + sum(s["filled"] for s in states)
    assert sum(s["state"] == "REJECTED" for s in states) >= 150  # ...and the room was used, not refused
    assert sum(s["state"] == "FILLED" for s in states) >= 45
    assert setup.hlen(SCHEMA.key("inflight")) == 0
    assert verify(setup, SCHEMA)["ok"]


def test_worker_when_a_batch_raises_unexpectedly_then_the_loop_survives_and_the_entry_is_retried(
    client, monkeypatch
):
    w = worker(client)
    submit(client, "flaky", quantity=10)
    real, calls = w.process_batch, []

    def fails_once(entries, ack=False, deliveries=None):
        calls.append(len(entries))
        if len(calls) == 1:
            raise ValueError("a bug in one batch")
        return real(entries, ack, deliveries)

    monkeypatch.setattr(w, "process_batch", fails_once)
    assert w.run(threading.Event(), block_ms=20, max_orders=1, reclaim_idle_ms=0) == 1
    assert state(client, "flaky")["state"] == "FILLED"
    assert w.metrics.errors._value.get() == 1


def test_worker_when_looping_then_heartbeat_and_last_poll_show_it_alive(client):
    import time

    before = time.time()
    w = worker(client, "beating")
    w.run(threading.Event(), block_ms=20, max_orders=0)  # max reached before the first poll: no beat
    assert not client.exists(SCHEMA.heartbeat("execution_worker"))
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    w.run(stop, block_ms=20)
    beat = client.get(SCHEMA.heartbeat("execution_worker"))
    assert beat.endswith(" beating") and 0 < client.ttl(SCHEMA.heartbeat("execution_worker")) <= 10
    assert w.metrics.last_poll._value.get() >= before


def test_worker_when_redis_refuses_its_password_then_run_stops_with_a_clear_error(client, redis_server):
    import redis as redis_py

    from quantbridge.errors import ServiceError

    w = worker(client)
    w.client = redis_py.Redis(port=redis_server, password="wrong", decode_responses=True, retry=None)
    with pytest.raises(ServiceError, match="QB_REDIS_PASSWORD"):
        w.run(threading.Event(), block_ms=20)


def test_worker_when_its_decision_commit_loses_a_race_then_it_takes_the_turn_and_gives_it_back(client):
    turn = SCHEMA.key("decide_turn")
    seen = []

    def on_event(kind, ref):
        if kind != "decision":
            return
        seen.append(client.get(turn))
        if len(seen) == 1:  # another worker's reservation lands between this read and this commit
            client.hincrby(SCHEMA.key("inflight_rev"), "AAPL", 1)

    submit(client, "race-1")
    w = worker(client, on_event=on_event)
    [outcome] = w.process_batch(read_batch(client), ack=True)

    assert outcome.state == "FILLED"
    assert seen == [None, "w1"]  # decided twice: the second time holding the turn
    assert client.get(turn) is None  # given back once committed


def test_worker_when_another_worker_holds_the_turn_then_it_waits_until_the_turn_expires(client):
    import time

    submit(client, "patient-1")
    w = worker(client)
    batch = read_batch(client)
    client.set(SCHEMA.key("decide_turn"), "w2", px=40)  # set last: the wait is measured from here
    t0 = time.perf_counter()
    [outcome] = w.process_batch(batch, ack=True)

    assert outcome.state == "FILLED"
    assert time.perf_counter() - t0 >= 0.03  # it waited for w2's turn (40 ms TTL) before deciding


def test_worker_run_when_started_then_what_lives_at_start_is_frozen_out_of_full_collections(client):
    import gc

    w = worker(client)
    submit(client, "frozen-1")
    gc.unfreeze()
    try:
        assert w.run(threading.Event(), block_ms=50, max_orders=1) == 1
        # The worker and everything built before its loop: never walked again by a full collection (one took
        # 17-33 ms per 4,000 orders before, measured in-process; none after).
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
