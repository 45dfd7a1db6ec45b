"""``qb policy`` end to end in-process: a real redis-server, a real key ring in a temporary key dir, the
bundles in a temporary lake; human output and ``--json``, exit codes 0/1/2."""

from __future__ import annotations

import json
import shutil

import pytest

from app.cli.main import main
from app.cli.policy import parse_changes
from execution.policy import POLICY_DIR
from governance import release as R
from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import load_settings
from quantbridge.signing import keyring

APPROVALS = [{"user": "carol", "task": "approve_compliance"}, {"user": "dave", "task": "approve_risk"}]


@pytest.fixture
def qb(lake_root, tmp_path, monkeypatch, redis_client, capsys):
    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def release(redis_client, revision: str) -> None:
    """What the policy_release DAG's last task does after its two approvals."""
    settings = load_settings()
    schema, lake = RedisSchema(settings.redis_prefix), Lake(settings.lake_root)
    R.activate(redis_client, schema, lake, keyring(settings, "policy"), revision, APPROVALS, "policy_release")


def test_policy_propose_when_folder_then_stored_with_tests_and_diff(qb, tmp_path):
    code, out, _ = qb("policy", "propose", "--reason", "first release", "--author", "alice", "--json")
    assert code == 0
    result = json.loads(out)
    assert len(result["revision"]) == 64 and result["author"] == "alice" and result["parent"] is None
    assert all(ok for _, ok in result["tests"]) and "policy_release" in result["next"]
    code, out, _ = qb("policy", "propose", "--reason", "same again", "--author", "bob")
    assert code == 0 and out.startswith(f"proposed {result['revision']} by alice: first release\n")
    assert "tests: " in out and "passed" in out and "limits:" in out


def test_policy_propose_when_set_changes_the_active_limits_then_diff_names_them(qb, redis_client):
    _, out, _ = qb("policy", "propose", "--reason", "first", "--author", "alice", "--json")
    first = json.loads(out)["revision"]
    release(redis_client, first)
    code, out, _ = qb(
        "policy", "propose", "--reason", "drift", "--author", "bob", "--set", "max_order_notional=100000",
        "--set", 'restricted=["RRC","XOM"]', "--json",
    )  # fmt: skip
    assert code == 0
    second = json.loads(out)
    assert second["parent"] == first
    assert '  limits.restricted: ["RRC"] -> ["RRC", "XOM"] (+XOM)' in second["diff"]
    code, out, _ = qb("policy", "diff", second["revision"][:10])  # against the active revision
    assert code == 0 and out == second["diff"]
    code, out, _ = qb("policy", "diff", first[:10], "--against", second["revision"], "--json")
    assert "limits.max_order_notional: 100000 -> 250000" in json.loads(out)["diff"]


def test_policy_status_and_rollback_when_released_then_shown_and_reactivated(qb, redis_client):
    _, out, _ = qb("policy", "propose", "--reason", "first", "--author", "alice", "--json")
    first = json.loads(out)["revision"]
    code, out, _ = qb("policy", "status")
    assert code == 0 and out.startswith("active: none")
    release(redis_client, first)
    _, out, _ = qb(
        "policy", "propose", "--reason", "x", "--author", "bob", "--set", "price_band=0.05", "--json"
    )
    second = json.loads(out)["revision"]

    code, _, err = qb("policy", "rollback", second, "--reason", "never released")
    assert code == 1 and "approvals.json: missing" in err
    release(redis_client, second)
    code, out, _ = qb("policy", "rollback", first[:12], "--reason", "band too tight", "--json")
    assert code == 0 and json.loads(out)["previous"] == second

    code, out, _ = qb("policy", "status", "--json")
    state = json.loads(out)
    assert state["active"]["revision"] == first and state["active"]["action"] == "rolled_back"
    code, out, _ = qb("policy", "status")
    assert f"active: {first} (rolled_back" in out and "approvers carol, dave" in out


def test_policy_test_when_folder_passes_or_breaks_then_exit_code_says_so(qb, tmp_path):
    code, out, _ = qb("policy", "test")
    assert code == 0 and "PASS: pretrade_test.test_limits_are_sane" in out and "FAIL" not in out
    folder = tmp_path / "broken"
    shutil.copytree(POLICY_DIR, folder)
    data = json.loads((folder / "data.json").read_text())
    data["limits"]["price_band"] = 3
    (folder / "data.json").write_text(json.dumps(data))
    code, out, _ = qb("policy", "test", "--folder", str(folder), "--json")
    assert code == 1 and json.loads(out)["failed"] == ["pretrade_test.test_limits_are_sane"]
    code, _, err = qb("policy", "propose", "--reason", "x", "--folder", str(folder))
    assert code == 1 and "test_limits_are_sane; nothing was stored" in err


def test_policy_cli_when_input_is_bad_then_exit_2_naming_it(qb):
    assert qb("policy", "propose", "--reason", " ")[0] == 2
    code, _, err = qb("policy", "propose", "--reason", "x", "--set", "nosuch=1")
    assert code == 2 and "limits.nosuch" in err
    code, _, err = qb("policy", "diff", "abc")
    assert code == 2 and "at least 8 hex digits" in err
    code, _, err = qb("policy", "propose", "--reason", "x", "--folder", "policies", "--set", "price_band=0.2")
    assert code == 2 and "--set" in err


def test_parse_changes_when_values_are_json_or_words_then_typed():
    assert parse_changes(["a=1", 'b=["X"]', "c=word", "d=0.5"]) == {"a": 1, "b": ["X"], "c": "word", "d": 0.5}
    with pytest.raises(InputError, match="LIMIT=VALUE"):
        parse_changes(["novalue"])
    with pytest.raises(InputError, match="given twice"):
        parse_changes(["a=1", "a=2"])
