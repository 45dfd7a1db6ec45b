"""Policy releases on a real redis-server with a real policy key ring: propose -> activate (four eyes) ->
status -> rollback, each activation with its audit entry in the same Lua call; refusals write nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from execution import bundle as B
from execution.policy import POLICY_DIR
from governance import release as R
from quantbridge import audit
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import load_settings
from quantbridge.signing import keyring

APPROVALS = [
    {"user": "carol", "at": "2026-01-01T10:00:00+00:00", "task": "approve_compliance"},
    {"user": "dave", "at": "2026-01-01T10:05:00+00:00", "task": "approve_risk"},
]
NOW = "2026-01-01T10:06:00+00:00"


@pytest.fixture
def env(lake_root, tmp_path, monkeypatch, redis_client):
    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))
    settings = load_settings()
    return (
        redis_client,
        RedisSchema(settings.redis_prefix),
        Lake(settings.lake_root),
        keyring(settings, "policy"),
    )


def audit_kinds(client, schema) -> list[tuple[str, str, dict]]:
    return [
        (f["kind"], f["ref"], json.loads(f["payload"]))
        for _, f in client.xrange(schema.key("audit"))
        if f["kind"].startswith("policy_")
    ]


def propose_folder(env, tmp_path: Path, edit=None, author="alice") -> dict:
    client, schema, lake, ring = env
    folder = tmp_path / f"work-{author}"
    shutil.copytree(POLICY_DIR, folder, dirs_exist_ok=True)
    if edit:
        edit(folder)
    return R.propose(
        lake, ring, author=author, reason="quarterly review", folder=folder, client=client, schema=schema
    )


def activate(env, revision, approvals=APPROVALS, **kw) -> dict:
    client, schema, lake, ring = env
    kw.setdefault("triggering_user", "erin")
    return R.activate(
        client,
        schema,
        lake,
        ring,
        revision,
        approvals,
        "policy_release",
        dag_run_id="run-1",
        clock=lambda: NOW,
        **kw,
    )


def test_release_when_two_other_approvers_then_active_with_its_audit_entry_and_status(env, tmp_path):
    client, schema, lake, ring = env
    proposed = propose_folder(env, tmp_path)
    assert (
        proposed["parent"] is None and all(ok for _, ok in proposed["tests"]) and len(proposed["tests"]) >= 25
    )
    assert (
        "policy (none) -> " in proposed["diff"]
        and "limits.max_order_notional: (absent) -> 250000" in proposed["diff"]
    )
    assert R.status(client, schema) == {"active": None, "workers": {}, "in_sync": False}

    record = activate(env, proposed["revision"])

    assert record == {
        "revision": proposed["revision"],
        "action": "activated",
        "activated_at": NOW,
        "by": "policy_release",
        "reason": "quarterly review",
        "author": "alice",
        "approvers": ["carol", "dave"],
        "triggered_by": "erin",
        "dag_run_id": "run-1",
        "previous": None,
    }
    assert json.loads(client.get(schema.key("policy_active"))) == record
    assert audit_kinds(client, schema) == [("policy_activated", proposed["revision"], record)]
    assert audit.verify(client, schema)["ok"]
    verified = B.verify(lake, proposed["revision"], ring)  # what a worker does before loading it
    assert [a["user"] for a in verified.approvals["approvers"]] == ["carol", "dave"]

    client.hset(schema.key("policy_workers"), "w1", B.worker_record(proposed["revision"], NOW))
    client.hset(schema.key("policy_workers"), "w2", B.worker_record(None, NOW, proposed["revision"], "x"))
    state = R.status(client, schema)
    assert state["active"] == record and state["workers"]["w1"]["revision"] == proposed["revision"]
    assert state["workers"]["w2"]["refused"] == proposed["revision"] and state["in_sync"] is False
    client.hdel(schema.key("policy_workers"), "w2")
    assert R.status(client, schema)["in_sync"] is True


@pytest.mark.parametrize(
    "approvals, trigger, problem",
    [
        ([{"user": "alice", "task": "approve_compliance"}, APPROVALS[1]], "erin", "alice is the proposer"),
        ([APPROVALS[0], {**APPROVALS[0], "task": "approve_risk"}], "erin", "carol already approved"),
        (APPROVALS, "carol", "carol triggered the release"),
        (APPROVALS[:1], "erin", "1 approval(s)"),
    ],
)
def test_activate_when_four_eyes_broken_then_refused_and_nothing_written(
    env, tmp_path, approvals, trigger, problem
):
    client, schema, lake, ring = env
    proposed = propose_folder(env, tmp_path)
    with pytest.raises(R.ReleaseRefused, match="was not activated") as err:
        activate(env, proposed["revision"], approvals, triggering_user=trigger)
    assert problem in str(err.value)
    assert client.get(schema.key("policy_active")) is None and audit_kinds(client, schema) == []
    assert not (B.bundle_dir(lake, proposed["revision"]) / "approvals.json").exists()


def test_propose_when_limit_changes_then_built_on_the_active_revision_with_a_readable_diff(env, tmp_path):
    client, schema, lake, ring = env
    first = propose_folder(env, tmp_path)["revision"]
    activate(env, first)
    second = R.propose(
        lake,
        ring,
        author="bob",
        reason="VaR zone yellow",
        changes={"max_order_notional": 100_000},
        client=client,
        schema=schema,
    )
    assert second["parent"] == first
    assert second["diff"] == (
        f"policy {first[:12]} -> {second['revision'][:12]}\n\nlimits:\n"
        "  limits.max_order_notional: 250000 -> 100000\n\nrules:\n  (unchanged)\n"
    )
    with pytest.raises(R.ReleaseRefused, match="already the active revision"):
        propose_folder(env, tmp_path, author="zed")  # same content as the active one


def test_rollback_when_earlier_revision_was_approved_then_reactivated_without_new_approval(env, tmp_path):
    client, schema, lake, ring = env
    first = propose_folder(env, tmp_path)["revision"]
    activate(env, first)
    second = R.propose(
        lake, ring, author="bob", reason="tighter", changes={"price_band": 0.05}, client=client, schema=schema
    )["revision"]
    activate(env, second, triggering_user="bob2")
    assert json.loads(client.get(schema.key("policy_active")))["previous"] == first

    record = R.rollback(client, schema, lake, ring, first, "oncall", "band too tight", clock=lambda: NOW)

    assert record["revision"] == first and record["action"] == "rolled_back" and record["previous"] == second
    assert (
        record["approvers"] == ["carol", "dave"]
        and record["reason"] == "band too tight"
        and record["by"] == "oncall"
    )
    assert [k for k, _, _ in audit_kinds(client, schema)] == [
        "policy_activated",
        "policy_activated",
        "policy_rolled_back",
    ]
    assert audit.verify(client, schema)["ok"]
    with pytest.raises(R.ReleaseRefused, match="already the active revision"):
        R.rollback(client, schema, lake, ring, first, "oncall", "again")


def test_rollback_when_revision_never_approved_then_refused_and_nothing_written(env, tmp_path):
    client, schema, lake, ring = env
    first = propose_folder(env, tmp_path)["revision"]
    activate(env, first)
    never = R.propose(
        lake,
        ring,
        author="bob",
        reason="x",
        changes={"max_position_shares": 1000},
        client=client,
        schema=schema,
    )["revision"]
    before = client.get(schema.key("policy_active"))
    with pytest.raises(B.BundleError, match="approvals.json: missing: .* never approved"):
        R.rollback(client, schema, lake, ring, never, "oncall", "try it")
    with pytest.raises(Exception, match="reason"):
        R.rollback(client, schema, lake, ring, first, "oncall", " ")
    assert client.get(schema.key("policy_active")) == before
    assert [k for k, _, _ in audit_kinds(client, schema)] == ["policy_activated"]


def test_activate_when_bundle_tampered_after_proposal_then_refused(env, tmp_path):
    client, schema, lake, ring = env
    revision = propose_folder(env, tmp_path)["revision"]
    path = B.bundle_dir(lake, revision) / "data.json"
    path.write_text(path.read_text().replace("250000", "2500000"))
    with pytest.raises(B.BundleError, match="data.json: SHA-256 is"):
        activate(env, revision)
    assert client.get(schema.key("policy_active")) is None


def test_propose_when_a_rego_test_fails_then_refused_naming_it_and_nothing_stored(env, tmp_path):
    client, schema, lake, ring = env

    def break_rule(folder: Path) -> None:
        rego = (folder / "pretrade.rego").read_text()
        (folder / "pretrade.rego").write_text(
            rego.replace('order.side == "BUY"\n\t\tit.esg_score', "it.esg_score")
        )

    with pytest.raises(
        R.ReleaseRefused, match="test_esg_when_selling_a_low_score_then_not_denied; nothing was stored"
    ):
        propose_folder(env, tmp_path, break_rule)
    assert B.stored_revisions(lake) == []
    with pytest.raises(Exception, match="either a folder or limit changes"):
        R.propose(lake, ring, author="a", reason="r", folder=POLICY_DIR, changes={"price_band": 0.2})


def test_commit_when_policy_active_moved_meanwhile_then_nothing_written(env, tmp_path):
    client, schema, lake, ring = env
    revision = propose_folder(env, tmp_path)["revision"]
    activate(env, revision)
    record = {"revision": "b" * 64}
    with pytest.raises(R.ReleaseRefused, match="changed while this release ran"):
        R._commit_active(client, schema, record, "policy_activated", None)  # read "absent", it is set now
    assert json.loads(client.get(schema.key("policy_active")))["revision"] == revision
    assert len(audit_kinds(client, schema)) == 1


def test_check_approvals_when_pure_then_lists_every_problem():
    assert R.check_approvals("alice", "erin", APPROVALS) == []
    problems = R.check_approvals(
        "alice",
        "erin",
        [{"user": "ALICE", "task": "a"}, {"user": "", "task": "b"}, {"user": "x", "approved": False}],
    )
    assert problems == [
        "a: ALICE is the proposer: no self-approval",
        "b: the approver is not named",
        "response 3: x did not approve",
    ]
