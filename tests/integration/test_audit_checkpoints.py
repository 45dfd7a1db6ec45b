"""Signed checkpoints of the audit chain on a real redis-server: the Ed25519 key file's modes, the signature,
the tail deleted or rewritten together with the head, untrusted checkpoint lines, and malformed entries
reported as breaks (never a crash); hybrid (ML-DSA-65 + Ed25519) checkpoints signed with the audit key ring,
tampered ones refused with a named reason, older Ed25519-only lines still trusted beside them."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime

import pytest

from quantbridge.audit import (
    ChainBroken,
    append,
    audit_keyring,
    checkpoint,
    checkpoints_path,
    fingerprint,
    load_public_key,
    load_signing_key,
    public_key_path,
    verify,
)
from quantbridge.errors import ConfigError
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.signing import SCHEME, KeyRing

SCHEMA = RedisSchema("qb")
STREAM, HEAD = SCHEMA.key("audit"), SCHEMA.key("audit_head")


@pytest.fixture
def key_path(tmp_path):
    return tmp_path / "keys" / "audit" / "checkpoint_ed25519.pem"


@pytest.fixture
def key(key_path):
    return load_signing_key(key_path)


@pytest.fixture
def lake(tmp_path):
    return Lake(tmp_path / "lake")


@pytest.fixture
def chain(redis_client):
    for i in range(20):
        append(redis_client, SCHEMA, "order", f"o{i}", {"ticker": "AAPL", "quantity": 10 + i})
    return redis_client


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _drop_tail(client, n: int) -> None:
    """Delete the newest ``n`` entries and point the head at the new last one, as an intruder would."""
    entries = client.xrange(STREAM)
    client.xdel(STREAM, *[entry_id for entry_id, _ in entries[-n:]])
    client.set(HEAD, entries[-n - 1][1]["hash"])


def test_load_signing_key_when_first_used_then_key_0600_folder_0700_and_public_key_beside(key_path):
    key = load_signing_key(key_path)

    assert _mode(key_path) == 0o600 and _mode(key_path.parent) == 0o700
    assert public_key_path(key_path).name == "checkpoint_ed25519.pub"
    assert fingerprint(load_public_key(key_path)) == fingerprint(key.public_key())
    assert fingerprint(load_signing_key(key_path).public_key()) == fingerprint(key.public_key())  # reused


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_load_signing_key_when_readable_by_group_or_others_then_refused_naming_path_and_mode(key_path, mode):
    load_signing_key(key_path)
    os.chmod(key_path, mode)

    with pytest.raises(ConfigError) as refused:
        load_signing_key(key_path)

    assert str(key_path) in str(refused.value) and f"{mode:04o}" in str(refused.value)


def test_load_signing_key_when_absent_and_create_false_then_config_error(key_path):
    with pytest.raises(ConfigError, match="audit_key_path"):
        load_signing_key(key_path, create=False)
    assert load_public_key(key_path) is None


def test_load_public_key_when_pub_file_missing_then_derived_from_the_private_key(key_path, key):
    public_key_path(key_path).unlink()

    assert fingerprint(load_public_key(key_path)) == fingerprint(key.public_key())


def test_checkpoint_when_signed_then_lake_line_holds_count_head_id_signature_and_key(chain, lake, key):
    at = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    last_id, last = chain.xrevrange(STREAM, count=1)[0]

    record = checkpoint(chain, SCHEMA, lake, key, now=at)

    assert (record["entries"], record["hash"], record["entry_id"]) == (20, chain.get(HEAD), last_id)
    assert record["at"] == "2026-05-04T12:00:00+00:00" and record["key"] == fingerprint(key.public_key())
    assert len(base64.b64decode(record["signature"])) == 64
    assert [json.loads(line) for line in checkpoints_path(lake).read_text().splitlines()] == [record]
    assert last["hash"] == record["hash"]


def test_checkpoint_when_chain_empty_then_nothing_written(redis_client, lake, key):
    assert checkpoint(redis_client, SCHEMA, lake, key) == {"entries": 0}
    assert not checkpoints_path(lake).exists()


def test_checkpoint_when_head_is_not_the_last_entry_then_refused(chain, lake, key):
    chain.set(HEAD, "f" * 64)

    with pytest.raises(ChainBroken, match="head"):
        checkpoint(chain, SCHEMA, lake, key)
    assert not checkpoints_path(lake).exists()


def test_verify_when_checkpointed_chain_untouched_then_ok_against_the_newest(chain, lake, key):
    checkpoint(chain, SCHEMA, lake, key)
    append(chain, SCHEMA, "fill", "o1", {})
    checkpoint(chain, SCHEMA, lake, key)
    append(chain, SCHEMA, "fill", "o2", {})

    result = verify(chain, SCHEMA, lake, public_key=key.public_key())

    assert result["ok"] and result["entries_checked"] == 22 and result["checkpoint"]["entries"] == 21


def test_verify_when_tail_deleted_together_with_the_head_then_the_checkpoint_is_named(chain, lake, key):
    checkpoint(chain, SCHEMA, lake, key)
    _drop_tail(chain, 3)
    assert verify(chain, SCHEMA)["ok"]  # without the checkpoint the shortened chain looks whole

    result = verify(chain, SCHEMA, lake, public_key=key.public_key())

    assert not result["ok"] and result["entries_checked"] == 17
    assert result["checkpoint"]["line"] == 1 and result["checkpoint"]["entries"] == 20
    assert "fewer than the signed checkpoint at line 1" in result["reason"]


def test_verify_when_tail_rewritten_together_with_the_head_then_the_checkpoint_is_named(chain, lake, key):
    checkpoint(chain, SCHEMA, lake, key)
    _drop_tail(chain, 2)
    for i in (18, 19):  # same count again, consistent hashes, different content
        append(chain, SCHEMA, "order", f"o{i}", {"ticker": "AAPL", "quantity": 0})

    result = verify(chain, SCHEMA, lake, public_key=key.public_key())

    assert not result["ok"] and result["checkpoint"]["line"] == 1 and "entry number 20" in result["reason"]


def test_verify_when_a_checkpoint_has_a_bad_signature_then_rejected_and_older_valid_ones_still_checked(
    chain, lake, key
):
    checkpoint(chain, SCHEMA, lake, key)
    _drop_tail(chain, 5)
    forged = checkpoint(chain, SCHEMA, lake, key)  # a checkpoint of the shortened chain...
    lines = checkpoints_path(lake).read_text().splitlines()
    forged["signature"] = base64.b64encode(b"\0" * 64).decode()  # ...with a signature an intruder can't make
    checkpoints_path(lake).write_text("\n".join([lines[0], json.dumps(forged)]) + "\n")

    result = verify(chain, SCHEMA, lake, public_key=key.public_key())

    assert not result["ok"] and result["checkpoint"]["line"] == 1
    assert result["checkpoints_rejected"] == [{"line": 2, "reason": "bad signature"}]


def test_verify_when_chain_fine_but_a_checkpoint_line_untrusted_then_not_ok_and_listed(
    chain, lake, key, tmp_path
):
    checkpoint(chain, SCHEMA, lake, key)
    other = load_signing_key(tmp_path / "intruder.pem")
    checkpoint(chain, SCHEMA, lake, other)
    with checkpoints_path(lake).open("a") as out:
        out.write("{not json\n" + json.dumps({"entries": "20"}) + "\n[]\n")

    result = verify(chain, SCHEMA, lake, public_key=key.public_key())

    assert not result["ok"] and result["first_bad"] is None and result["checkpoint"]["line"] == 1
    reasons = {r["line"]: r["reason"] for r in result["checkpoints_rejected"]}
    assert "signed by key" in reasons[2] and "not JSON" in reasons[3]
    assert "entries" in reasons[4] and "not a JSON object" in reasons[5]


def test_verify_when_checkpoints_exist_but_no_public_key_then_none_is_trusted(chain, lake, key):
    checkpoint(chain, SCHEMA, lake, key)

    result = verify(chain, SCHEMA, lake)

    assert not result["ok"] and result["checkpoints_rejected"][0]["reason"].startswith("no public key")


@pytest.mark.parametrize(
    "field, value, why",
    [
        ("hash", None, "missing"),
        ("kind", None, "missing"),
        ("payload", None, "missing"),
        ("payload", b"\xff\xfe", "not UTF-8"),
        ("payload", "{not json", "not JSON"),
        ("prev", "xyz", "SHA-256"),
        ("hash", "A" * 64, "SHA-256"),
        ("ref", b"\xc3", "not UTF-8"),
    ],
)
def test_verify_when_an_entry_field_is_missing_or_malformed_then_a_break_names_entry_and_field(
    chain, field, value, why
):
    entries = chain.xrange(STREAM)
    target_id, fields = entries[4]
    if value is None:
        del fields[field]
    else:
        fields[field] = value
    chain.delete(STREAM)
    for entry_id, entry in entries:
        chain.xadd(STREAM, entry, id=entry_id)

    result = verify(chain, SCHEMA)

    assert not result["ok"] and result["first_bad"] == target_id and result["field"] == field
    assert why in result["reason"] and result["entries_checked"] == 4


def test_verify_when_chain_spans_several_batches_then_every_entry_checked(chain, lake, key):
    checkpoint(chain, SCHEMA, lake, key)

    result = verify(chain, SCHEMA, lake, public_key=key.public_key(), batch=3)

    assert result["ok"] and result["entries_checked"] == 20


def test_load_keys_when_files_hold_another_key_type_then_config_error_names_the_type(key_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    key_path.parent.mkdir(parents=True)
    key_path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(key_path, 0o600)
    public_key_path(key_path).write_bytes(
        other.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    with pytest.raises(ConfigError, match="Ed25519 private key, found"):
        load_signing_key(key_path)
    with pytest.raises(ConfigError, match="Ed25519 public key, found"):
        load_public_key(key_path)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ring(tmp_path, clock):
    return KeyRing(tmp_path / "keys", "audit", grace_s=3600, clock=clock)


def _rewrite(lake, edit) -> None:
    """Apply ``edit`` to the last checkpoint line's record, as an intruder editing the lake would."""
    lines = checkpoints_path(lake).read_text().splitlines()
    record = json.loads(lines[-1])
    edit(record)
    checkpoints_path(lake).write_text("\n".join([*lines[:-1], json.dumps(record)]) + "\n")


def test_checkpoint_when_signed_with_the_audit_ring_then_hybrid_line_verifies(chain, lake, ring):
    record = checkpoint(chain, SCHEMA, lake, ring, now=datetime(2026, 5, 4, 12, 0, tzinfo=UTC))

    result = verify(chain, SCHEMA, lake, ring=ring)

    assert record["scheme"] == SCHEME and record["key"] == ring.active == record["signature"]["key"]
    assert len(base64.b64decode(record["signature"]["ml_dsa"])) == 3309
    assert result["ok"] and result["checkpoint"]["entries"] == 20


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda r: r.update(entries=19), "bad signature: the ML-DSA-65 half"),
        (lambda r: r.update(hash="0" * 64), "bad signature: the ML-DSA-65 half"),
        (lambda r: r["signature"].update(ml_dsa=base64.b64encode(b"\0" * 3309).decode()), "ML-DSA-65 half"),
        (lambda r: r["signature"].update(key="audit-x"), "is not the signature's key"),
        (lambda r: r.update(scheme="rsa"), "unknown signature scheme 'rsa'"),
        (lambda r: r.update(signature="abc"), "field signature missing or not dict"),
        (lambda r: r.update(at="yesterday"), "malformed signature or time"),
    ],
)
def test_verify_when_a_hybrid_checkpoint_was_tampered_then_refused_with_a_named_reason(
    chain, lake, ring, edit, reason
):
    checkpoint(chain, SCHEMA, lake, ring)
    _rewrite(lake, edit)

    result = verify(chain, SCHEMA, lake, ring=ring)

    assert not result["ok"] and reason in result["checkpoints_rejected"][0]["reason"]


def test_verify_when_the_ed25519_half_alone_forged_then_refused(chain, lake, ring, tmp_path):
    checkpoint(chain, SCHEMA, lake, ring)
    other = KeyRing(tmp_path / "other", "audit")
    forged = other.sign("quantbridge-audit-checkpoint-v2", b"anything")
    _rewrite(lake, lambda r: r["signature"].update(ed25519=forged.ed25519))

    result = verify(chain, SCHEMA, lake, ring=ring)

    assert "bad signature: the Ed25519 half" in result["checkpoints_rejected"][0]["reason"]


def test_verify_when_old_ed25519_lines_and_new_hybrid_lines_then_both_trusted_with_their_keys(
    chain, lake, key, ring
):
    checkpoint(chain, SCHEMA, lake, key)  # before the upgrade: the Ed25519-only key file
    append(chain, SCHEMA, "fill", "o1", {})
    checkpoint(chain, SCHEMA, lake, ring)

    both = verify(chain, SCHEMA, lake, public_key=key.public_key(), ring=ring)
    ring_only = verify(chain, SCHEMA, lake, ring=ring)
    key_only = verify(chain, SCHEMA, lake, public_key=key.public_key())

    assert both["ok"] and both["checkpoint"]["entries"] == 21
    assert ring_only["checkpoints_rejected"] == [
        {"line": 1, "reason": "no public key to check its signature"}
    ]
    assert key_only["checkpoints_rejected"] == [
        {"line": 2, "reason": "no audit key ring to check its signature"}
    ]


def test_verify_when_the_audit_key_rotated_long_ago_then_checkpoints_signed_before_still_trusted(
    chain, lake, ring, clock
):
    checkpoint(chain, SCHEMA, lake, ring, now=datetime.fromtimestamp(clock.now, UTC))
    clock.now += 60
    ring.rotate()
    clock.now += 30 * 86_400  # far beyond the one-hour grace period
    append(chain, SCHEMA, "fill", "o1", {})
    checkpoint(chain, SCHEMA, lake, ring, now=datetime.fromtimestamp(clock.now, UTC))

    assert verify(chain, SCHEMA, lake, ring=ring)["ok"]
    # a line claiming a time after the old key's retirement (plus grace) is refused: the key is retired
    _rewrite(lake, lambda r: r["signature"].update(key=ring.status()["keys"][0]["id"]))
    _rewrite(lake, lambda r: r.update(key=r["signature"]["key"]))
    assert (
        "beyond the grace period"
        in verify(chain, SCHEMA, lake, ring=ring)["checkpoints_rejected"][0]["reason"]
    )


def test_audit_keyring_when_settings_key_dir_empty_then_none_without_create_and_a_ring_with_it(
    tmp_path, monkeypatch
):
    from quantbridge.settings import load_settings

    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))

    assert audit_keyring(load_settings(), create=False) is None
    made = audit_keyring(load_settings())
    assert made is not None and made.purpose == "audit"
    assert audit_keyring(load_settings(), create=False).active == made.active
