"""Key rings (hybrid ML-DSA-65 + Ed25519), rotation with a grace period on an injected clock, key-file modes,
domain-separated tags and the Merkle tree (quantbridge.signing)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat

import pytest

from quantbridge.errors import ConfigError, InputError
from quantbridge.signing import (
    ED25519_SIGNATURE_BYTES,
    ML_DSA_65_SIGNATURE_BYTES,
    KeyRing,
    Signature,
    SignatureError,
    framed,
    keyring,
    merkle_fold,
    merkle_proof,
    merkle_root,
)

T0 = 1_780_000_000.0
DAY = 86_400.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ring(tmp_path, clock):
    return KeyRing(tmp_path / "keys", "orders", grace_s=DAY, clock=clock)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_sign_when_verified_then_both_halves_have_their_sizes_and_pass(ring):
    sig = ring.sign("t", b"message")

    ring.verify("t", b"message", sig)

    assert sig.key == ring.active
    assert len(base64.b64decode(sig.ml_dsa)) == ML_DSA_65_SIGNATURE_BYTES
    assert len(base64.b64decode(sig.ed25519)) == ED25519_SIGNATURE_BYTES
    assert Signature.from_json(sig.to_json()) == sig


def test_keyring_when_first_used_then_dir_0700_private_keys_0600_and_ring_file_lists_the_key(ring):
    files = sorted(p.name for p in ring.dir.iterdir())
    body = json.loads((ring.dir / "keyring.json").read_text())

    assert _mode(ring.dir) == 0o700
    assert [_mode(ring.dir / f) for f in files if f.endswith(".pem")] == [0o600, 0o600]
    assert body["active"] == ring.active and [k["id"] for k in body["keys"]] == [ring.active]
    assert {f.rsplit(".", 2)[-2] + "." + f.rsplit(".", 1)[-1] for f in files if ring.active in f} == {
        "mldsa65.pem",
        "ed25519.pem",
        "mldsa65.pub",
        "ed25519.pub",
    }


@pytest.mark.parametrize("message, other", [(b"m", b"n"), (b"", b"\0")])
def test_verify_when_message_differs_then_signature_error(ring, message, other):
    sig = ring.sign("t", message)

    with pytest.raises(SignatureError, match="does not verify"):
        ring.verify("t", other, sig)


def test_verify_when_tag_differs_then_refused_even_for_the_same_framed_text(ring):
    assert framed("a", b"b:c") != framed("a:b", b"c")  # injective: the tag's length comes first
    sig = ring.sign("quantbridge-policy-bundle-v1", b"root")

    with pytest.raises(SignatureError, match="over tag 'quantbridge-orders-batch-v1'"):
        ring.verify("quantbridge-orders-batch-v1", b"root", sig)
    with pytest.raises(InputError, match="tag"):
        framed("", b"x")


def test_verify_when_only_the_ml_dsa_half_forged_then_refused_but_an_ed25519_only_verifier_passes(ring):
    sig = ring.sign("t", b"m")
    forged = Signature(sig.key, _flip(sig.ml_dsa), sig.ed25519)

    with pytest.raises(SignatureError, match="ML-DSA-65 half"):
        ring.verify("t", b"m", forged)
    ring.verify_ed25519_only("t", b"m", forged)  # an older verifier sees only the classical half


def test_verify_when_the_ed25519_half_forged_then_refused_by_both_verifiers(ring):
    sig = ring.sign("t", b"m")
    forged = Signature(sig.key, sig.ml_dsa, _flip(sig.ed25519))

    with pytest.raises(SignatureError, match="Ed25519 half"):
        ring.verify("t", b"m", forged)
    with pytest.raises(SignatureError, match="Ed25519 half"):
        ring.verify_ed25519_only("t", b"m", forged)


def test_verify_when_a_half_is_not_base64_then_signature_error_names_the_field(ring):
    sig = ring.sign("t", b"m")

    with pytest.raises(SignatureError, match="ml_dsa is not base64"):
        ring.verify("t", b"m", Signature(sig.key, "***", sig.ed25519))


def test_verify_when_key_unknown_then_refused_naming_key_and_ring(ring, tmp_path):
    other = KeyRing(tmp_path / "other", "orders")
    sig = other.sign("t", b"m")

    with pytest.raises(SignatureError, match=f"key '{sig.key}', which is not in the orders key ring"):
        ring.verify("t", b"m", sig)


def test_rotate_when_within_grace_then_old_key_verifies_and_after_grace_it_is_refused(ring, clock):
    old_sig = ring.sign("t", b"m")
    old = ring.active

    clock.now += 60
    new = ring.rotate()
    new_sig = ring.sign("t", b"m")
    clock.now += DAY  # exactly the grace period after the retirement: still accepted
    ring.verify("t", b"m", old_sig)
    clock.now += 1

    assert new != old and new_sig.key == new
    with pytest.raises(
        SignatureError, match=f"key '{old}' of the orders ring, retired at .*beyond the grace"
    ):
        ring.verify("t", b"m", old_sig)
    ring.verify("t", b"m", new_sig)
    assert [(k["id"], k["verifies"]) for k in ring.status()["keys"]] == [(old, False), (new, True)]


def test_verify_when_record_signed_before_retirement_then_accepted_after_grace_with_at(ring, clock):
    sig = ring.sign("t", b"m")
    signed_at = clock.now
    ring.rotate()
    clock.now += 30 * DAY

    ring.verify("t", b"m", sig, at=signed_at)  # a checkpoint made before the rotation stays verifiable
    with pytest.raises(SignatureError, match="beyond the grace"):
        ring.verify("t", b"m", sig, at=clock.now)


def test_rotate_when_done_by_another_process_then_this_ring_reloads_and_signs_with_the_new_key(
    tmp_path, clock
):
    worker = KeyRing(tmp_path / "keys", "orders", grace_s=DAY, clock=clock)
    operator = KeyRing(tmp_path / "keys", "orders", grace_s=DAY, clock=clock)
    old = worker.active

    clock.now += 10
    new = operator.rotate()

    assert worker.sign("t", b"m").key == new != old
    assert worker.status()["keys"][0]["retired_at"] is not None


def test_status_when_rotated_then_lists_keys_with_times_and_fingerprints(ring, clock):
    first = ring.active
    clock.now += 3600
    second = ring.rotate()

    status = ring.status()

    assert status["purpose"] == "orders" and status["active"] == second and status["grace_s"] == DAY
    assert [k["id"] for k in status["keys"]] == [first, second]
    assert status["keys"][0]["retired_at"] == "2026-05-28T21:26:40+00:00"
    assert status["keys"][1]["retired_at"] is None
    assert all(k["fingerprint"].startswith("sha256:") and len(k["fingerprint"]) == 71 for k in status["keys"])


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_keyring_when_a_private_key_readable_by_group_or_others_then_config_error_names_path_and_fix(
    ring, tmp_path, mode
):
    path = ring.dir / f"{ring.active}.mldsa65.pem"
    os.chmod(path, mode)

    with pytest.raises(ConfigError) as refused:
        KeyRing(tmp_path / "keys", "orders")

    message = str(refused.value)
    assert str(path) in message and f"{mode:04o}" in message and f"chmod 600 {path}" in message


def test_sign_when_the_private_key_file_is_missing_then_config_error_says_verify_only(ring):
    (ring.dir / f"{ring.active}.ed25519.pem").unlink()
    verifier = KeyRing(ring.dir.parent, "orders")

    with pytest.raises(ConfigError, match="this ring can only verify"):
        verifier.sign("t", b"m")


def test_keyring_when_absent_and_create_false_then_config_error_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="qb keys rotate policy"):
        KeyRing(tmp_path / "keys", "policy", create=False)
    assert not (tmp_path / "keys" / "policy").exists()


def test_keyring_when_purpose_or_grace_invalid_then_errors_name_them(tmp_path):
    with pytest.raises(InputError, match="purpose='trades'"):
        KeyRing(tmp_path, "trades")
    with pytest.raises(ConfigError, match="key_grace_s"):
        KeyRing(tmp_path, "orders", grace_s=-1)


def test_keyring_when_a_public_key_was_replaced_then_config_error_on_fingerprint(ring, tmp_path):
    other = KeyRing(tmp_path / "other", "orders")
    src = other.dir / f"{other.active}.ed25519.pub"
    (ring.dir / f"{ring.active}.ed25519.pub").write_bytes(src.read_bytes())

    with pytest.raises(ConfigError, match="fingerprint"):
        KeyRing(tmp_path / "keys", "orders")


@pytest.mark.parametrize("body", ["{not json", '{"purpose": "policy", "active": "x", "keys": []}'])
def test_keyring_when_ring_file_malformed_then_config_error_names_it(ring, tmp_path, body):
    (ring.dir / "keyring.json").write_text(body)

    with pytest.raises(ConfigError, match="keyring.json"):
        KeyRing(tmp_path / "keys", "orders")


@pytest.mark.parametrize(
    "raw, field",
    [
        ("[]", "signature"),
        ('{"key": "k", "ml_dsa": "", "ed25519": "x"}', "signature.ml_dsa"),
        ('{"key": 1, "ml_dsa": "a", "ed25519": "x"}', "signature.key"),
        ("nope", "signature"),
    ],
)
def test_signature_from_json_when_malformed_then_input_error_names_field(raw, field):
    with pytest.raises(InputError, match=field):
        Signature.from_json(raw)


def test_keyring_from_settings_when_key_dir_set_then_ring_under_it_with_settings_grace(tmp_path, monkeypatch):
    from quantbridge.settings import load_settings

    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "k"))
    monkeypatch.setenv("QB_KEY_GRACE_S", "120")

    ring = keyring(load_settings(), "audit")

    assert ring.dir == tmp_path / "k" / "audit" and ring.grace_s == 120.0
    assert keyring(load_settings(), "audit", create=False).active == ring.active


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"order %d" % i).digest() for i in range(n)]


@pytest.mark.parametrize("n", range(1, 10))
def test_merkle_when_each_leaf_folded_with_its_proof_then_root_and_other_leaves_or_indexes_fail(n):
    leaves = _leaves(n)
    root = merkle_root(leaves)

    for index, leaf in enumerate(leaves):
        proof = merkle_proof(leaves, index)
        assert len(proof) == (n - 1).bit_length()
        assert merkle_fold(leaf, index, proof) == root
        assert merkle_fold(hashlib.sha256(b"forged").digest(), index, proof) != root
        if n > 1:
            assert merkle_fold(leaf, (index + 1) % n, proof) != root


def test_merkle_when_the_last_leaf_duplicated_then_root_differs():
    leaves = _leaves(3)

    assert merkle_root(leaves) != merkle_root([*leaves, leaves[-1]])
    assert merkle_root(leaves[:1]) != leaves[0]  # a leaf is hashed as a leaf node, never the root itself


def test_merkle_when_inputs_malformed_then_input_error_names_them():
    leaves = _leaves(4)
    with pytest.raises(InputError, match="leaves"):
        merkle_root([])
    with pytest.raises(InputError, match="leaf"):
        merkle_root([b"short"])
    with pytest.raises(InputError, match="index"):
        merkle_proof(leaves, 4)
    with pytest.raises(InputError, match="index"):
        merkle_fold(leaves[0], 4, merkle_proof(leaves, 0))
    with pytest.raises(InputError, match="proof"):
        merkle_fold(leaves[0], 0, [b"x", b"y"])
