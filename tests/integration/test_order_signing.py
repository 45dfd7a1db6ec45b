"""Operator orders (app.cli.ops.publish, real redis): each batch signed, its root signature written in the
same Lua call as the orders and their audit entries (a refused batch leaves none of them), and the worker's
verifier accepting what was written and refusing a forged or altered entry."""

from __future__ import annotations

import json

import pytest

from app.cli.ops import publish
from app.cli.order_rows import OrderRow
from execution.signatures import OrderVerifier
from quantbridge.audit import verify
from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from quantbridge.signing import KeyRing, Signature

SCHEMA = RedisSchema("qb")
BY = "operator:tester"


@pytest.fixture
def ring(tmp_path):
    return KeyRing(tmp_path / "keys", "orders")


def planned(n: int, prefix: str = "op") -> list[tuple[OrderRow, SubmitOrder]]:
    out = []
    for i in range(n):
        row = OrderRow(i + 2, f"T{i}", "BUY", 1.0 + i, None, f"{prefix}-{i}")
        order = SubmitOrder(
            order_id=f"{prefix}-{i}",
            ts="2026-01-02T15:00:00+00:00",
            strategy="operator",
            ticker=f"T{i}",
            side="BUY",
            quantity=1.0 + i,
            reference_price=50.0,
        )
        out.append((row, order))
    return out


def _entries(client):
    return [fields for _, fields in client.xrange(SCHEMA.key("orders"))]


def test_publish_when_orders_submitted_then_signed_root_stored_audited_and_every_order_verifies(
    redis_client, ring
):
    publish(redis_client, SCHEMA, planned(3), by=BY, source="cli", reason="hedge", ring=ring)

    entries, roots = _entries(redis_client), redis_client.hgetall(SCHEMA.key("order_signatures"))
    (root,) = roots
    audit = [json.loads(f["payload"]) for _, f in redis_client.xrange(SCHEMA.key("audit"))]

    assert [OrderVerifier(ring).check(e, roots) for e in entries] == [None] * 3
    assert Signature.from_json(roots[root]).key == ring.active
    assert [a["sig_root"] for a in audit] == [root] * 3 and verify(redis_client, SCHEMA)["ok"]


def test_publish_when_an_id_already_has_a_state_then_no_order_no_signature_and_no_audit_entry(
    redis_client, ring
):
    redis_client.hset(SCHEMA.key("order_state"), "op-1", json.dumps({"state": "NEW"}))

    with pytest.raises(InputError, match="another process used it meanwhile"):
        publish(redis_client, SCHEMA, planned(2), by=BY, source="cli", reason=None, ring=ring)

    assert redis_client.xlen(SCHEMA.key("orders")) == 0
    assert redis_client.hlen(SCHEMA.key("order_signatures")) == 0  # the guard ran before any write
    assert redis_client.xlen(SCHEMA.key("audit")) == 0


def test_publish_when_no_ring_given_then_the_settings_key_dir_ring_signs(redis_client, tmp_path, monkeypatch):
    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "settings-keys"))

    publish(redis_client, SCHEMA, planned(1), by=BY, source="cli", reason=None)

    ring = KeyRing(tmp_path / "settings-keys", "orders", create=False)
    roots = redis_client.hgetall(SCHEMA.key("order_signatures"))
    assert OrderVerifier(ring).check(_entries(redis_client)[0], roots) is None
    assert publish(redis_client, SCHEMA, [], by=BY, source="cli", reason=None) == []


def test_verifier_when_an_entry_was_altered_in_redis_or_its_root_signature_swapped_then_bad_signature(
    redis_client, ring, tmp_path
):
    publish(redis_client, SCHEMA, planned(2), by=BY, source="cli", reason=None, ring=ring)
    intruder = KeyRing(tmp_path / "intruder", "orders")
    publish(redis_client, SCHEMA, planned(1, "evil"), by=BY, source="cli", reason=None, ring=intruder)
    stream = SCHEMA.key("orders")
    first_id, first = redis_client.xrange(stream, count=1)[0]
    redis_client.xadd(stream, {**first, "quantity": "900.0"})  # a copy with a bigger quantity

    entries, roots = _entries(redis_client), redis_client.hgetall(SCHEMA.key("order_signatures"))
    verifier = OrderVerifier(ring)
    reasons = [verifier.check(e, roots) for e in entries]

    assert reasons[:2] == [None, None]
    assert reasons[2].startswith("BAD_SIGNATURE: root ") and intruder.active in reasons[2]
    assert reasons[3].startswith("BAD_SIGNATURE: leaf not under root")
    genuine_root = first["sig_root"]
    swapped = {**roots, genuine_root: roots[entries[2]["sig_root"]]}  # the intruder's signature, moved over
    assert "not in the orders key ring" in OrderVerifier(ring).check(first, swapped)
