"""Orders, their explanations and their batch's root signature reach Redis together
(strategy.rebalance.publish_orders, real redis); the worker's verifier accepts what was written and refuses
an entry altered in Redis."""

from __future__ import annotations

import json

import pytest

from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from quantbridge.signing import KeyRing
from strategy.rebalance import publish_orders

SCHEMA = RedisSchema("qb")


@pytest.fixture(autouse=True)
def key_dir(tmp_path, monkeypatch):
    """The orders key ring of load_settings() (what publish_orders uses without a ring) under tmp_path."""
    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))
    return tmp_path / "keys"


def _stream(client):
    return [fields for _, fields in client.xrange(SCHEMA.key("orders"))]


def orders(n):
    return [
        SubmitOrder(
            order_id=f"2020-01-02:s:T{i}:v1",
            ts="t",
            strategy="s",
            ticker=f"T{i}",
            side="BUY",
            quantity=10.0 + i,
            reference_price=100.0,
            explanation={"mom": 0.1},
        )
        for i in range(n)
    ]


def test_publish_when_run_twice_then_each_order_once_with_its_explanation(redis_client):
    batch = orders(4)
    records = [json.dumps({"order_id": o.order_id}) for o in batch]
    assert publish_orders(redis_client, SCHEMA, batch, records) == 4
    assert publish_orders(redis_client, SCHEMA, batch, records) == 0
    stream = [SubmitOrder.from_dict(f) for _, f in redis_client.xrange(SCHEMA.key("orders"))]
    assert stream == batch
    assert redis_client.hlen(SCHEMA.key("explanations")) == 4


def test_publish_when_some_orders_lost_then_rerun_publishes_exactly_the_missing(redis_client):
    batch = orders(5)
    records = [json.dumps({"order_id": o.order_id}) for o in batch]
    publish_orders(redis_client, SCHEMA, batch[:2], records[:2])  # a run that stopped after two orders
    assert publish_orders(redis_client, SCHEMA, batch, records) == 3
    ids = [f["order_id"] for _, f in redis_client.xrange(SCHEMA.key("orders"))]
    assert ids == [o.order_id for o in batch]


def test_publish_when_stream_unwritable_then_no_explanation_left_behind(redis_client):
    redis_client.set(SCHEMA.key("orders"), "not a stream")  # the XADD fails inside the script
    batch = orders(1)
    with pytest.raises(Exception, match="WRONGTYPE"):
        publish_orders(redis_client, SCHEMA, batch, [json.dumps({})])
    assert redis_client.hlen(SCHEMA.key("explanations")) == 0  # so a re-run will publish it


def test_publish_when_explanations_do_not_match_orders_then_error_names_field(redis_client):
    with pytest.raises(InputError, match="explanations"):
        publish_orders(redis_client, SCHEMA, orders(2), ["{}"])
    assert publish_orders(redis_client, SCHEMA, [], []) == 0


def test_publish_when_no_ring_given_then_batch_signed_with_the_settings_ring_and_every_order_verifies(
    redis_client, key_dir
):
    from execution.signatures import OrderVerifier

    batch = orders(5)
    publish_orders(redis_client, SCHEMA, batch, [json.dumps({}) for _ in batch])

    entries, roots = _stream(redis_client), redis_client.hgetall(SCHEMA.key("order_signatures"))
    ring = KeyRing(key_dir, "orders", create=False)
    assert len(roots) == 1 and {e["sig_root"] for e in entries} == set(roots)
    assert [OrderVerifier(ring).check(e, roots) for e in entries] == [None] * 5


def test_publish_when_rerun_after_a_partial_run_then_the_missing_orders_verify_under_the_new_root(
    redis_client, key_dir
):
    from execution.signatures import OrderVerifier

    ring = KeyRing(key_dir, "orders")
    batch = orders(4)
    records = [json.dumps({}) for _ in batch]
    publish_orders(redis_client, SCHEMA, batch[:1], records[:1], ring=ring)
    publish_orders(redis_client, SCHEMA, batch, records, ring=ring)
    assert publish_orders(redis_client, SCHEMA, batch, records, ring=ring) == 0

    entries, roots = _stream(redis_client), redis_client.hgetall(SCHEMA.key("order_signatures"))
    assert len(roots) == 2  # nothing stored for the third call, which published nothing
    assert [OrderVerifier(ring).check(e, roots) for e in entries] == [None] * 4


@pytest.mark.parametrize("field, value", [("quantity", "100000.0"), ("side", "SELL")])
def test_publish_when_an_entry_is_altered_in_redis_then_the_verifier_refuses_only_it(
    redis_client, key_dir, field, value
):
    from execution.signatures import OrderVerifier

    ring = KeyRing(key_dir, "orders")
    publish_orders(redis_client, SCHEMA, orders(3), ["{}"] * 3, ring=ring)
    stream = SCHEMA.key("orders")
    entries = redis_client.xrange(stream)
    redis_client.delete(stream)
    for n, (entry_id, fields) in enumerate(entries):  # an intruder rewrites the second entry in place
        redis_client.xadd(stream, {**fields, field: value} if n == 1 else fields, id=entry_id)

    roots = redis_client.hgetall(SCHEMA.key("order_signatures"))
    reasons = [OrderVerifier(ring).check(e, roots) for e in _stream(redis_client)]

    assert reasons[0] is None and reasons[2] is None
    assert reasons[1].startswith("BAD_SIGNATURE: leaf not under root")


def test_publish_when_an_order_is_injected_without_signature_then_the_verifier_says_unsigned(redis_client):
    from execution.signatures import OrderVerifier
    from quantbridge.settings import load_settings
    from quantbridge.signing import keyring

    publish_orders(redis_client, SCHEMA, orders(1), ["{}"])
    redis_client.xadd(SCHEMA.key("orders"), orders(2)[1].to_dict())  # any process that can write Redis

    entries = _stream(redis_client)
    verifier = OrderVerifier(keyring(load_settings(), "orders", create=False))
    roots = redis_client.hgetall(SCHEMA.key("order_signatures"))

    assert verifier.check(entries[0], roots) is None
    assert verifier.check(entries[1], roots).startswith("BAD_SIGNATURE: unsigned order")
