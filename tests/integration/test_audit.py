"""The audit hash chain on a real Redis stream: any edit, deletion, reordering or truncation is caught."""

from __future__ import annotations

import json
import threading

import pytest

from app.cli.main import main
from quantbridge.audit import append, canonical, checkpoint, entry_hash, load_signing_key, verify
from quantbridge.lake import Lake
from quantbridge.redis_client import connect
from quantbridge.redis_schema import RedisSchema

SCHEMA = RedisSchema("qb")
STREAM = SCHEMA.key("audit")


@pytest.fixture
def chain(redis_client):
    for i in range(20):
        append(redis_client, SCHEMA, "order", f"o{i}", {"ticker": "AAPL", "quantity": 10 + i})
    return redis_client


def _rewrite(client, entries):
    """Replace the stream with ``entries`` (id, fields), as someone with write access could."""
    client.delete(STREAM)
    for entry_id, fields in entries:
        client.xadd(STREAM, fields, id=entry_id)


def test_verify_when_chain_untouched_then_ok(chain, tmp_path):
    result = verify(chain, SCHEMA, Lake(tmp_path))
    assert result["ok"] and result["entries_checked"] == 20


def test_verify_when_one_byte_of_a_payload_edited_then_that_entry_is_named(chain):
    entries = chain.xrange(STREAM)
    target_id, fields = entries[7]
    fields["payload"] = fields["payload"].replace('"quantity":17', '"quantity":18')
    _rewrite(chain, entries)
    result = verify(chain, SCHEMA)
    assert not result["ok"] and result["first_bad"] == target_id and "edited" in result["reason"]


def test_entry_hash_when_a_separator_moves_between_fields_then_the_hashes_differ():
    one, other = ("0" * 64, "order", "a|b", "t", "{}"), ("0" * 64, "order|a", "b", "t", "{}")
    assert "|".join(one) == "|".join(other)  # the old separator join could not tell them apart

    assert entry_hash(*one) != entry_hash(*other)
    assert canonical("a|b", "c") == b"3:a|b1:c" and canonical("é") == b"2:\xc3\xa9"


def test_verify_when_a_pipe_shifted_from_ref_into_kind_then_the_edit_is_caught(redis_client):
    append(redis_client, SCHEMA, "order", "x|y", {"q": 1})
    entries = redis_client.xrange(STREAM)
    entries[0][1].update(kind="order|x", ref="y")
    _rewrite(redis_client, entries)

    result = verify(redis_client, SCHEMA)

    assert not result["ok"] and result["first_bad"] == entries[0][0] and "edited" in result["reason"]


def test_verify_when_entry_deleted_then_the_next_one_is_named(chain):
    entries = chain.xrange(STREAM)
    chain.xdel(STREAM, entries[5][0])
    result = verify(chain, SCHEMA)
    assert not result["ok"] and result["first_bad"] == entries[6][0] and "deleted" in result["reason"]


def test_verify_when_entries_reordered_then_caught(chain):
    entries = chain.xrange(STREAM)
    swapped = [
        (e[0], f)
        for e, f in zip(
            entries,
            [x[1] for x in entries[:3]] + [entries[4][1], entries[3][1]] + [x[1] for x in entries[5:]],
            strict=True,
        )
    ]
    _rewrite(chain, swapped)
    result = verify(chain, SCHEMA)
    assert not result["ok"] and result["first_bad"] == entries[3][0]


def test_verify_when_tail_truncated_then_head_mismatch(chain):
    entries = chain.xrange(STREAM)
    chain.xdel(STREAM, entries[-1][0])
    result = verify(chain, SCHEMA)
    assert not result["ok"] and "removed" in result["reason"]


def test_verify_when_whole_history_rewritten_consistently_then_the_lake_checkpoint_catches_it(
    chain, tmp_path
):
    lake, key = Lake(tmp_path / "lake"), load_signing_key(tmp_path / "keys" / "audit.pem")
    assert checkpoint(chain, SCHEMA, lake, key)["entries"] == 20
    chain.delete(STREAM, SCHEMA.key("audit_head"))
    for i in range(20):  # a forged but internally consistent chain
        append(chain, SCHEMA, "order", f"o{i}", {"ticker": "AAPL", "quantity": 99})

    assert verify(chain, SCHEMA)["ok"]  # the chain alone looks fine...
    result = verify(chain, SCHEMA, lake, public_key=key.public_key())  # ...the signed checkpoint does not

    assert not result["ok"] and "rewritten" in result["reason"] and result["checkpoint"]["line"] == 1


def test_append_when_writers_race_then_the_chain_stays_linear(redis_client, settings):
    def writer(n: int) -> None:
        client = connect(settings)
        for i in range(50):
            append(client, SCHEMA, "fill", f"w{n}-{i}", {"i": i})
        client.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify(redis_client, SCHEMA)
    assert result["ok"] and result["entries_checked"] == 200


def test_qb_audit_when_verified_then_exit_code_tells(chain, capsys, settings, tmp_path, monkeypatch):
    key_dir = tmp_path / "keys"
    monkeypatch.setenv("QB_KEY_DIR", str(key_dir))
    assert main(["audit", "checkpoint", "--json", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    # signed with the audit key ring: ML-DSA-65 and Ed25519 halves, by a key of the ring in QB_KEY_DIR
    assert record["entries"] == 20 and set(record["signature"]) == {"key", "ml_dsa", "ed25519"}
    assert (key_dir / "audit" / "keyring.json").exists()
    assert main(["audit", "verify", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    entries = chain.xrange(STREAM)
    entries[2][1]["ref"] = "o2x"
    _rewrite(chain, entries)
    assert main(["audit", "verify", "--json", "-q"]) == 1
    assert json.loads(capsys.readouterr().out)["first_bad"] == entries[2][0]
