"""``qb keys status`` and ``qb keys rotate`` through ``app.cli.main.main`` (settings from the environment,
the key directory under tmp_path, the rotation audited on the test redis-server)."""

from __future__ import annotations

import json

import pytest

from app.cli.main import main
from quantbridge.audit import verify
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import load_settings
from quantbridge.signing import KeyRing


@pytest.fixture
def key_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("QB_KEY_GRACE_S", "3600")
    return tmp_path / "keys"


def _run(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out else {}), captured.err


def test_keys_status_when_no_ring_yet_then_each_purpose_listed_without_keys_and_nothing_made(capsys, key_dir):
    code, out, _ = _run(capsys, "keys", "status")

    assert code == 0 and out["key_dir"] == str(key_dir) and out["grace_s"] == 3600
    assert [(r["purpose"], r["active"], r["keys"]) for r in out["rings"]] == [
        ("orders", None, []),
        ("policy", None, []),
        ("audit", None, []),
    ]
    assert not key_dir.exists()


def test_keys_rotate_when_run_twice_then_first_key_then_rotation_audited_and_status_shows_both(
    capsys, key_dir, redis_client
):
    code, first, _ = _run(capsys, "keys", "rotate", "orders", "--reason", "first key")
    code2, second, _ = _run(capsys, "keys", "rotate", "orders", "--reason", "quarterly rotation")
    _, status, _ = _run(capsys, "keys", "status")

    assert (code, code2) == (0, 0) and first["previous"] is None
    assert second["previous"] == first["active"] != second["active"]
    assert second["by"].startswith("operator:") and second["reason"] == "quarterly rotation"
    orders = status["rings"][0]
    assert orders["active"] == second["active"] == KeyRing(key_dir, "orders", create=False).active
    assert [(k["id"], k["verifies"]) for k in orders["keys"]] == [
        (first["active"], True),  # retired, still within its grace period
        (second["active"], True),
    ]
    schema = RedisSchema(load_settings().redis_prefix)
    entries = [f for _, f in redis_client.xrange(schema.key("audit"))]
    assert [(e["kind"], e["ref"]) for e in entries] == [("key_rotated", "orders")] * 2
    assert json.loads(entries[1]["payload"])["active"] == second["active"]
    assert verify(redis_client, schema)["ok"]


def test_keys_rotate_when_reason_missing_then_exit_2_and_no_key_made(capsys, key_dir):
    code, out, err = _run(capsys, "keys", "rotate", "audit")

    assert code == 2 and out == {} and "--reason" in err
    assert not (key_dir / "audit").exists()


def test_keys_rotate_when_purpose_unknown_then_argparse_refuses(capsys, key_dir):
    with pytest.raises(SystemExit) as exited:
        main(["keys", "rotate", "trades", "--reason", "x"])

    assert exited.value.code == 2 and "invalid choice: 'trades'" in capsys.readouterr().err
