"""Signed order batches (execution.signatures): leaves, batch signing, and the verifier's BAD_SIGNATURE
reasons for altered, added, unsigned, forged and expired entries."""

from __future__ import annotations

import pytest

from execution.signatures import ORDER_TAG, OrderVerifier, order_leaf, sign_orders
from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder
from quantbridge.signing import KeyRing, Signature

T0 = 1_780_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ring(tmp_path, clock):
    return KeyRing(tmp_path / "keys", "orders", grace_s=3600, clock=clock)


def orders(n: int) -> list[dict[str, str]]:
    return [
        SubmitOrder(
            order_id=f"2026-01-02:gbm_mv:T{i}:v1",
            ts="2026-01-02T21:00:00+00:00",
            strategy="gbm_mv",
            ticker=f"T{i}",
            side="BUY" if i % 2 else "SELL",
            quantity=10.0 + i,
            reference_price=100.0 + i,
            explanation={"mom": 0.1 * i},
        ).to_dict()
        for i in range(n)
    ]


def test_order_leaf_when_fields_reordered_or_sig_fields_added_then_same_leaf_and_any_change_differs():
    fields = orders(1)[0]
    leaf = order_leaf(fields)

    assert order_leaf(dict(reversed(list(fields.items())))) == leaf
    assert order_leaf({**fields, "sig_root": "x", "sig_index": "0"}) == leaf
    assert order_leaf({**fields, "quantity": "11.0"}) != leaf
    assert order_leaf({**fields, "note": ""}) != leaf
    assert order_leaf({k.encode(): v.encode() for k, v in fields.items()}) == leaf  # undecoded stream entry


@pytest.mark.parametrize(
    "extra, field", [({"a=b": "1"}, "order field name"), ({"note": "x\nquantity=1"}, "order field note")]
)
def test_order_leaf_when_a_name_or_value_could_fake_another_line_then_input_error(extra, field):
    with pytest.raises(InputError, match=field):
        order_leaf({**orders(1)[0], **extra})


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_sign_orders_when_batch_signed_then_every_order_verifies_with_one_root_signature(ring, n):
    batch = orders(n)

    root, signature, signed = sign_orders(ring, batch)

    assert batch == orders(n)  # the input is not modified
    assert {o["sig_root"] for o in signed} == {root} and [o["sig_index"] for o in signed] == [
        str(i) for i in range(n)
    ]
    assert (signed[0]["sig_proof"] == "") == (n == 1)
    ring.verify(ORDER_TAG, bytes.fromhex(root), Signature.from_json(signature))
    verifier = OrderVerifier(ring)
    assert [verifier.check(o, {root: signature}) for o in signed] == [None] * n


def test_sign_orders_when_empty_then_input_error():
    with pytest.raises(InputError, match="orders"):
        sign_orders(None, [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field, value", [("quantity", "1000.0"), ("side", "SELL"), ("ticker", "T9"), ("reference_price", "1")]
)
def test_check_when_an_order_field_altered_then_bad_signature_leaf_not_under_root(ring, field, value):
    root, signature, signed = sign_orders(ring, orders(4))
    altered = {**signed[1], field: value}

    reason = OrderVerifier(ring).check(altered, {root: signature})

    assert reason is not None and reason.startswith("BAD_SIGNATURE: leaf not under root " + root[:16])


def test_check_when_a_field_added_or_the_index_moved_then_refused(ring):
    root, signature, signed = sign_orders(ring, orders(4))
    verifier = OrderVerifier(ring)

    assert "leaf not under root" in verifier.check({**signed[0], "limit_price": "1"}, {root: signature})
    assert "leaf not under root" in verifier.check({**signed[0], "sig_index": "1"}, {root: signature})
    assert "sig_index 9 is beyond a proof of 2" in verifier.check(
        {**signed[0], "sig_index": "9"}, {root: signature}
    )
    assert "order field note" in verifier.check({**signed[0], "note": "a\nb"}, {root: signature})


def test_check_when_neighbours_verified_first_then_altered_moved_or_rerooted_orders_still_refused(ring):
    root, signature, signed = sign_orders(ring, orders(16))
    other_root, other_signature, _ = sign_orders(ring, orders(3))
    verifier, roots = OrderVerifier(ring), {root: signature, other_root: other_signature}
    assert all(verifier.check(entry, roots) is None for entry in signed[:8])  # nodes of the tree remembered
    assert len(verifier._nodes) >= 8

    assert "leaf not under root" in verifier.check({**signed[8], "quantity": "7"}, roots)
    assert "leaf not under root" in verifier.check({**signed[9], "sig_index": "8"}, roots)
    assert "leaf not under root" in verifier.check({**signed[3], "sig_root": other_root}, roots)
    assert all(verifier.check(entry, roots) is None for entry in signed[8:])  # stop at a known ancestor


@pytest.mark.parametrize(
    "drop, missing",
    [
        (("sig_root", "sig_proof", "sig_index"), "sig_root, sig_proof, sig_index"),
        (("sig_proof",), "sig_proof"),
    ],
)
def test_check_when_sig_fields_absent_then_bad_signature_unsigned_order(ring, drop, missing):
    _, _, signed = sign_orders(ring, orders(2))
    entry = {k: v for k, v in signed[0].items() if k not in drop}

    assert OrderVerifier(ring).check(entry, {}) == f"BAD_SIGNATURE: unsigned order (no {missing})"


@pytest.mark.parametrize(
    "field, value, why",
    [
        ("sig_root", "zz", "sig_root 'zz' is not a SHA-256 hex digest"),
        ("sig_proof", "abc,def", "sig_proof 'abc,def' is not comma-separated SHA-256 hex digests"),
        ("sig_index", "-1", "sig_index '-1' is not a non-negative integer"),
    ],
)
def test_check_when_sig_fields_malformed_then_reason_names_the_field(ring, field, value, why):
    root, signature, signed = sign_orders(ring, orders(2))

    assert (
        OrderVerifier(ring).check({**signed[0], field: value}, {root: signature}) == f"BAD_SIGNATURE: {why}"
    )


def test_check_when_root_signature_absent_then_bad_signature_names_the_root(ring):
    root, _, signed = sign_orders(ring, orders(3))

    assert (
        OrderVerifier(ring).check(signed[0], {root: None})
        == f"BAD_SIGNATURE: no signature stored for root {root[:16]}"
    )


def test_check_when_root_signed_by_a_foreign_key_then_refused_naming_the_key(ring, tmp_path):
    intruder = KeyRing(tmp_path / "intruder", "orders")
    root, forged, signed = sign_orders(intruder, orders(3))  # a well-formed batch, signed by the wrong key

    reason = OrderVerifier(ring).check(signed[2], {root: forged})

    assert reason.startswith(f"BAD_SIGNATURE: root {root[:16]}: signature by key '{intruder.active}'")
    assert "not in the orders key ring" in reason


def test_check_when_one_half_of_the_root_signature_forged_then_refused_naming_the_half(ring):
    root, signature, signed = sign_orders(ring, orders(2))
    _, other, _ = sign_orders(ring, orders(3))  # a genuine ML-DSA signature, over another root
    parsed, foreign = Signature.from_json(signature), Signature.from_json(other)
    forged = Signature(parsed.key, foreign.ml_dsa, parsed.ed25519).to_json()

    assert "ML-DSA-65 half" in OrderVerifier(ring).check(signed[0], {root: forged})
    assert "signature" in OrderVerifier(ring).check(signed[0], {root: "{not json"})


def test_check_when_root_verified_once_then_cached_and_refused_after_its_key_expires(ring, clock):
    root, signature, signed = sign_orders(ring, orders(3))
    verifier = OrderVerifier(ring)
    assert verifier.check(signed[0], {root: signature}) is None

    assert verifier.missing_roots(signed) == [] and verifier.check(signed[1], {}) is None  # from the cache
    ring.rotate()
    clock.now += 3601

    assert "beyond the grace period" in verifier.check(signed[2], {})


def test_missing_roots_when_entries_of_two_batches_then_each_unverified_root_once(ring):
    root_a, sig_a, batch_a = sign_orders(ring, orders(2))
    root_b, sign_b, batch_b = sign_orders(ring, orders(3))
    verifier = OrderVerifier(ring, cache_size=1)
    unsigned = orders(1)

    assert verifier.missing_roots([*batch_a, *batch_b, *unsigned, {"sig_root": "bad"}]) == [root_a, root_b]
    verifier.check(batch_a[0], {root_a: sig_a})
    assert verifier.missing_roots([{b"sig_root": root_a.encode()}, *batch_b]) == [root_b]
    verifier.check(batch_b[0], {root_b: sign_b})
    assert verifier.missing_roots([*batch_a, *batch_b]) == [root_a]  # cache_size=1: the oldest root dropped
