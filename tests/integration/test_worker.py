"""The execution worker on a real redis-server: fills, idempotency, dead letters, policies, replay."""

from __future__ import annotations

import json
import threading

import pytest

from quantbridge.audit import append, verify
from execution.venues import VenueSpec
from execution.worker import ExecutionWorker
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema

SCHEMA = RedisSchema("qb")
TICKERS = ["AAPL", "MSFT", "XOM", "RRC"]


def submit(client, order_id, ticker="AAPL", side="BUY", quantity=100.0, price=150.0):
    order = SubmitOrder(order_id=order_id, ts="2026-01-05T14:30:00+00:00", strategy="test", ticker=ticker, side=side,
                        quantity=quantity, reference_price=price)
    return client.xadd(SCHEMA.key("orders"), order.to_dict())


def worker(client, name="w1"):
    return ExecutionWorker(client, SCHEMA, name, TICKERS, esg={"AAPL": 0.7, "XOM": 0.27})


def positions(client):
    return {k: float(v) for k, v in client.hgetall(SCHEMA.key("positions")).items()}


def fills_total(client):
    total = {}
    for _, f in client.xrange(SCHEMA.key("fills")):
        sign = 1 if f["side"] == "BUY" else -1
        total[f["ticker"]] = total.get(f["ticker"], 0.0) + sign * float(f["quantity"])
    return total


def test_worker_when_orders_stream_then_filled_positions_equal_fills_and_audit_verifies(redis_client):
    w = worker(redis_client)
    submit(redis_client, "o1", quantity=100)
    submit(redis_client, "o2", ticker="MSFT", side="SELL", quantity=5000, price=30.0)  # split across venues
    assert w.run(threading.Event(), block_ms=50, max_orders=2) == 2
    states = {k: json.loads(v) for k, v in redis_client.hgetall(SCHEMA.key("order_state")).items()}
    assert states["o1"]["state"] == "FILLED" and states["o1"]["filled"] == 100
    assert states["o2"]["state"] in {"FILLED", "CANCELLED"} and len(states["o2"]["children"]) == 3
    assert positions(redis_client) == pytest.approx(fills_total(redis_client))
    assert redis_client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0
    assert verify(redis_client, SCHEMA)["ok"]
    trail = [(f["ref"], f["kind"]) for _, f in redis_client.xrange(SCHEMA.key("audit"))]
    assert [kind for ref, kind in trail if ref == "o1"] == ["order", "verdict", "route", "fill"]
    assert [kind for ref, kind in trail if ref == "o2"][:3] == ["order", "verdict", "route"]
    assert states["o1"]["history"] == ["NEW", "FILLED"]


def test_worker_when_same_order_delivered_twice_then_filled_once(redis_client):
    w = worker(redis_client)
    submit(redis_client, "dup")
    submit(redis_client, "dup")
    w.run(threading.Event(), block_ms=50, max_orders=2)
    assert positions(redis_client)["AAPL"] == 100
    assert redis_client.xlen(SCHEMA.key("fills")) == 1


@pytest.mark.parametrize(
    "fields, reason",
    [({"order_id": "m1"}, "MALFORMED"),
     ({"order_id": "m2", "ts": "t", "strategy": "s", "ticker": "AAPL", "side": "BUY", "quantity": "-5",
       "reference_price": "10"}, "MALFORMED: quantity"),
     ({"order_id": "m3", "ts": "t", "strategy": "s", "ticker": "AAPL", "side": "BUY", "quantity": "5",
       "reference_price": "nan"}, "MALFORMED: reference_price"),
     ({"order_id": "m4", "ts": "t", "strategy": "s", "ticker": "ZZZZ", "side": "BUY", "quantity": "5",
       "reference_price": "10"}, "UNKNOWN_TICKER"),
     ({"order_id": "m5", "ts": "t", "strategy": "s" * 9000, "ticker": "AAPL", "side": "BUY", "quantity": "5",
       "reference_price": "10"}, "PAYLOAD_TOO_LARGE")],
)
def test_worker_when_order_malformed_then_dead_lettered_and_worker_goes_on(redis_client, fields, reason):
    w = worker(redis_client)
    redis_client.xadd(SCHEMA.key("orders"), fields)
    submit(redis_client, "good")
    assert w.run(threading.Event(), block_ms=50, max_orders=2) == 2
    [(_, dead)] = redis_client.xrange(SCHEMA.key("dead_letter"))
    assert dead["reason"].startswith(reason)
    assert json.loads(redis_client.hget(SCHEMA.key("order_state"), "good"))["state"] == "FILLED"


def test_worker_when_policy_denies_or_kill_switch_set_then_rejected_with_reasons(redis_client):
    w = worker(redis_client)
    submit(redis_client, "r1", ticker="RRC")
    submit(redis_client, "r2", ticker="XOM", quantity=10, price=100)  # ESG 0.27 >= 0.25: allowed
    w.run(threading.Event(), block_ms=50, max_orders=2)
    redis_client.set(SCHEMA.key("kill_switch"), json.dumps({"reason": "test"}))
    submit(redis_client, "r3", quantity=10)
    w.run(threading.Event(), block_ms=50, max_orders=1)
    state = lambda oid: json.loads(redis_client.hget(SCHEMA.key("order_state"), oid))  # noqa: E731
    assert state("r1") == {"state": "REJECTED", "filled": 0.0, "reasons": ["RESTRICTED_INSTRUMENT: ticker=RRC"],
                           "history": ["REJECTED"]}
    assert state("r2")["state"] == "FILLED"
    assert state("r3")["reasons"] == ["KILL_SWITCH_ACTIVE: position=0, position_after=10"]


def test_worker_when_crash_after_fills_but_before_ack_then_replay_counts_nothing_twice(redis_client):
    first = worker(redis_client, "dead-worker")
    submit(redis_client, "c1", ticker="MSFT", quantity=2000, price=30.0)
    reply = redis_client.xreadgroup(ORDERS_GROUP, "dead-worker", {SCHEMA.key("orders"): ">"}, count=1)
    entry_id, raw = reply[0][1][0]
    first.process(entry_id, raw)  # fills recorded... then the process dies before XACK
    redis_client.hset(SCHEMA.key("order_state"), "c1", json.dumps(
        {**json.loads(redis_client.hget(SCHEMA.key("order_state"), "c1")), "state": "NEW"}))  # died mid-way
    before = positions(redis_client)
    second = worker(redis_client, "w2")
    assert second.reclaim(min_idle_ms=0) == 1  # XAUTOCLAIM takes the dead consumer's entry
    assert positions(redis_client) == before == pytest.approx(fills_total(redis_client))
    assert redis_client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0


def test_qb_worker_when_orders_waiting_then_handles_them_and_stops(redis_client, settings, spark, capsys):
    from datetime import date

    from marketdata.feed import SkfolioFeed
    from marketdata.ingest import ingest_range
    from quantbridge.cli.main import main

    ingest_range(settings, SkfolioFeed(), date(2020, 1, 2), date(2020, 1, 3), spark=spark)
    submit(redis_client, "cli-1")
    submit(redis_client, "cli-2", ticker="NOPE")
    assert main(["worker", "--consumer", "cli", "--max-orders", "2", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == {"consumer": "cli", "handled": 2}
    assert redis_client.xlen(SCHEMA.key("dead_letter")) == 1 and positions(redis_client)["AAPL"] == 100


def test_worker_when_another_consumer_dies_after_start_then_its_orders_are_reclaimed(redis_client):
    import time

    w = worker(redis_client, "survivor")
    stop = threading.Event()
    loop = threading.Thread(target=w.run, args=(stop,), kwargs={"block_ms": 50, "reclaim_idle_ms": 200})
    loop.start()
    time.sleep(0.3)  # the survivor's start-up reclaim has already run
    submit(redis_client, "orphan")
    redis_client.xreadgroup(ORDERS_GROUP, "ghost", {SCHEMA.key("orders"): ">"}, count=1)  # read, then "dies"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not redis_client.hexists(SCHEMA.key("order_state"), "orphan"):
        time.sleep(0.05)
    stop.set()
    loop.join(5)
    assert json.loads(redis_client.hget(SCHEMA.key("order_state"), "orphan"))["state"] == "FILLED"
    assert redis_client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0


THIN = (VenueSpec("THIN", taker_fee_bps=1.0, maker_fee_bps=0.0, half_spread_bps=1.0, true_slippage_bps=1.0,
                  noise_bps=0.1, depth=100, latency_ms=0.1, seed=5),)


def test_worker_when_book_thinner_than_order_then_partially_filled_and_rest_cancelled(redis_client):
    w = ExecutionWorker(redis_client, SCHEMA, "thin", TICKERS, venues=THIN)
    submit(redis_client, "p1", quantity=300)
    assert w.run(threading.Event(), block_ms=50, max_orders=1) == 1
    state = json.loads(redis_client.hget(SCHEMA.key("order_state"), "p1"))
    assert state["state"] == "CANCELLED" and state["filled"] == 100
    assert state["history"] == ["NEW", "PARTIALLY_FILLED", "CANCELLED"]
    assert positions(redis_client) == {"AAPL": 100}


def test_worker_when_crash_after_fills_before_final_commit_then_state_shows_partial_fill_and_replay_finishes(
        redis_client, monkeypatch):
    first = ExecutionWorker(redis_client, SCHEMA, "crashing", TICKERS, venues=THIN)
    submit(redis_client, "p2", quantity=300)
    real_queue = first.audit.queue

    def queue_after_another_writer(pipe, entries, effects):
        # Another audit writer appends first, so the queued final commit (fill audit, final state, ack) is
        # refused by its head check while the fills in the same pipeline are recorded...
        append(redis_client, SCHEMA, "explanation", "other", {"x": 1})
        return real_queue(pipe, entries, effects)

    real_settle = first.audit.settle

    def die_when_refused(pending, reply):  # ...and the process dies before re-chaining it
        if int(reply[0]) == 0:
            raise SystemExit("killed")
        return real_settle(pending, reply)

    monkeypatch.setattr(first.audit, "queue", queue_after_another_writer)
    monkeypatch.setattr(first.audit, "settle", die_when_refused)
    with pytest.raises(SystemExit):
        first.run(threading.Event(), block_ms=50, max_orders=1)
    mid = json.loads(redis_client.hget(SCHEMA.key("order_state"), "p2"))
    assert mid["state"] == "PARTIALLY_FILLED" and mid["filled"] == 100  # written with the fill, atomically
    assert redis_client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 1
    second = ExecutionWorker(redis_client, SCHEMA, "second", TICKERS, venues=THIN)
    assert second.reclaim(min_idle_ms=0) == 1
    final = json.loads(redis_client.hget(SCHEMA.key("order_state"), "p2"))
    assert final["state"] == "CANCELLED" and final["filled"] == 100
    assert positions(redis_client) == {"AAPL": 100} and redis_client.xlen(SCHEMA.key("fills")) == 1
    fill_audits = [f for _, f in redis_client.xrange(SCHEMA.key("audit")) if f["kind"] == "fill"]
    assert [json.loads(f["payload"])["replay"] for f in fill_audits] == ["True"]  # audited once, as a replay
    assert verify(redis_client, SCHEMA)["ok"]


def test_worker_when_one_order_of_a_batch_raises_then_it_stays_pending_and_the_rest_is_handled(redis_client):
    from execution.policy import PolicyEngine

    class BrokenFor(PolicyEngine):
        def evaluate_many(self, items):
            if any(order.order_id == "bad" for order, *_ in items):
                raise RuntimeError("policy engine fault")
            return super().evaluate_many(items)

        def evaluate(self, order, position, kill_switch, esg_score):
            if order.order_id == "bad":
                raise RuntimeError("policy engine fault")
            return super().evaluate(order, position, kill_switch, esg_score)

    w = ExecutionWorker(redis_client, SCHEMA, "w1", TICKERS, policy=BrokenFor())
    for oid in ("a", "bad", "b"):
        submit(redis_client, oid, quantity=10)
    entries = redis_client.xreadgroup(ORDERS_GROUP, "w1", {SCHEMA.key("orders"): ">"}, count=10)[0][1]
    outcomes = w.process_batch(entries, ack=True)
    assert [o and o.state for o in outcomes] == ["FILLED", None, "FILLED"]
    pending = redis_client.xpending_range(SCHEMA.key("orders"), ORDERS_GROUP, "-", "+", 10)
    assert [p["message_id"] for p in pending] == [entries[1][0]]
    assert not redis_client.hexists(SCHEMA.key("order_state"), "bad")


def test_worker_when_batch_holds_a_denied_order_then_later_orders_see_the_true_position(redis_client):
    # Position limit 20,000 shares: the first buy is denied (notional), so the second, which fits only
    # if the first did not fill, must be allowed, exactly as if they had been checked one by one.
    w = worker(redis_client)
    redis_client.hset(SCHEMA.key("positions"), "AAPL", 19_000)
    submit(redis_client, "big", quantity=3000, price=100.0)  # notional 300,000 > 250,000: denied
    submit(redis_client, "fits", quantity=900, price=10.0)  # 19,900 <= 20,000 once "big" is denied
    submit(redis_client, "over", quantity=200, price=10.0)  # 20,100 > 20,000 after "fits"
    entries = redis_client.xreadgroup(ORDERS_GROUP, "w1", {SCHEMA.key("orders"): ">"}, count=10)[0][1]
    assert [o.state for o in w.process_batch(entries, ack=True)] == ["REJECTED", "FILLED", "REJECTED"]
    over = json.loads(redis_client.hget(SCHEMA.key("order_state"), "over"))
    assert over["reasons"] == ["POSITION_EXCEEDS_MAX: max=20000, position_after=20100"]
