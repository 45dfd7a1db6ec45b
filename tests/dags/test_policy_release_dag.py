"""policy_release without the stack: its shape (two approvals with their assigned users from the environment,
no default answer, decisions never retried), and its tasks' glue run on a real lake, Redis and key ring (the
whole DAG on the real stack is tests/integration/test_policy_release.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from quantbridge.redis_schema import RedisSchema
from tests.conftest import ROOT

COMPLIANCE = [{"id": "carol", "name": "carol"}, {"id": "alice", "name": "alice"}]
RISK = [{"id": "dave", "name": "dave"}]
ASSIGNED = {"approve_compliance": COMPLIANCE, "approve_risk": RISK}


@pytest.fixture
def approvers(monkeypatch):
    monkeypatch.setenv("QB_COMPLIANCE_APPROVERS", " carol, alice ,carol")
    monkeypatch.setenv("QB_RISK_APPROVERS", "dave")


@pytest.fixture
def release_env(settings, redis_client, tmp_path, monkeypatch):
    """The tasks' settings: this test's lake, Redis and a fresh policy key ring."""
    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))
    return RedisSchema(settings.redis_prefix)


def _load():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "policy_release.py"))
    return bag.dags.get("policy_release"), bag.import_errors


def _response(user: str, option: str = "Approve") -> dict[str, Any]:
    """An approval task's return value, as ApprovalOperator hands it to XCom."""
    return {
        "chosen_options": [option],
        "params_input": {},
        "responded_at": datetime(2026, 1, 5, 10, 0, tzinfo=UTC),
        "responded_by_user": {"id": user, "name": user},
    }


def test_policy_release_when_parsed_then_propose_two_approvals_check_activate_in_a_chain(approvers):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag, errors = _load()

    assert errors == {} and dag.schedule is None and dag.catchup is False
    assert {t: dag.get_task(t).upstream_task_ids for t in dag.task_ids} == {
        "propose": set(),
        "approve_compliance": {"propose"},
        "approve_risk": {"approve_compliance"},
        "check_four_eyes": {"propose", "approve_compliance", "approve_risk"},
        "activate": {"propose", "check_four_eyes"},
    }
    compliance, risk = dag.get_task("approve_compliance"), dag.get_task("approve_risk")
    assert isinstance(compliance, ApprovalOperator) and isinstance(risk, ApprovalOperator)
    assert compliance.assigned_users == COMPLIANCE and risk.assigned_users == RISK
    for approval in (compliance, risk):
        assert approval.defaults is None  # a timeout fails: there is no default answer
        assert approval.response_timeout is not None and approval.retries == 0
        assert approval.fail_on_reject is False  # a Reject succeeds and skips what follows
        assert "xcom_pull(task_ids='propose')['body']" in approval.body
        assert "params.reason" in approval.subject
    assert dag.get_task("check_four_eyes").retries == 0 and dag.get_task("activate").retries >= 2
    assert set(dag.params) == {"revision", "limits", "reason"}


@pytest.mark.parametrize("value", ["", " , ", "carol;dave", "carol,,dave", "bob smith"])
def test_policy_release_when_approvers_setting_invalid_then_import_error_naming_it(monkeypatch, value):
    monkeypatch.setenv("QB_COMPLIANCE_APPROVERS", value)

    dag, errors = _load()

    assert dag is None
    (error,) = errors.values()
    assert "compliance_approvers" in error and "comma-separated Airflow user names" in error


def test_policy_release_file_when_parsed_then_assigned_users_come_from_the_environment_not_a_variable(
    approvers,
):
    # A fresh interpreter, as the dag-processor parses: the Variable (editable by Op users) names someone
    # else, the approvals still list the environment's users.
    code = (
        f"import sys, runpy; sys.path.insert(0, {str(ROOT / 'plugins')!r}); "
        f"dag = runpy.run_path({str(ROOT / 'dags' / 'policy_release.py')!r})['dag']; "
        "import json; print(json.dumps([dag.get_task(t).assigned_users "
        "for t in ('approve_compliance', 'approve_risk')]))"
    )
    env = {"AIRFLOW_VAR_QUANTBRIDGE_SETTINGS": json.dumps({"compliance_approvers": "mallory"})}
    import os

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [COMPLIANCE, RISK]


# --- the tasks' glue ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"revision": None, "limits": None, "reason": "x"},
        {"revision": "a" * 64, "limits": {"max_order_notional": 1}, "reason": "x"},
        {"revision": None, "limits": {}, "reason": "x"},
    ],
)
def test_propose_when_neither_or_both_of_revision_and_limits_then_fails_naming_both(release_env, params):
    from airflow.sdk.exceptions import AirflowFailException

    from quantbridge_airflow.release_tasks import propose_release

    with pytest.raises(AirflowFailException, match="expected exactly one of them"):
        propose_release(params, "alice")


def test_propose_when_limits_then_bundle_stored_tested_and_body_shows_the_diff(release_env, settings):
    from execution.bundle import verify
    from quantbridge.lake import Lake
    from quantbridge.signing import keyring
    from quantbridge_airflow.config import airflow_settings
    from quantbridge_airflow.release_tasks import propose_release

    proposal = propose_release(
        {"revision": None, "limits": {"max_order_notional": 200_000}, "reason": "tighter"}, "alice"
    )

    assert proposal["author"] == "alice" and proposal["reason"] == "tighter"
    assert "max_order_notional" in proposal["diff"] and "200000" in proposal["diff"]
    assert proposal["tests"] and all(passed for _, passed in proposal["tests"])
    body = proposal["body"]
    assert body.startswith("**Proposed by** alice: tighter") and proposal["diff"] in body
    assert f"{len(proposal['tests'])} of {len(proposal['tests'])} passed" in body
    ring = keyring(airflow_settings(), "policy")
    stored = verify(Lake(settings.lake_root), proposal["revision"], ring, require_approvals=False)
    assert stored.data["limits"]["max_order_notional"] == 200_000


def test_propose_when_stored_revision_then_reviewed_and_when_tampered_then_fails(release_env, settings):
    from airflow.sdk.exceptions import AirflowFailException

    from execution.bundle import bundle_dir
    from quantbridge.lake import Lake
    from quantbridge_airflow.release_tasks import propose_release

    first = propose_release({"revision": None, "limits": {"price_band": 0.05}, "reason": "cli"}, "bob")

    again = propose_release({"revision": first["revision"], "limits": None, "reason": "release it"}, "alice")

    assert again["revision"] == first["revision"] and again["author"] == "bob"  # the manifest's author
    assert again["diff"] == first["diff"] and again["reason"] == "release it"
    data = bundle_dir(Lake(settings.lake_root), first["revision"]) / "data.json"
    data.write_text(data.read_text().replace("0.05", "0.5"))
    with pytest.raises(AirflowFailException, match="data.json"):
        propose_release({"revision": first["revision"], "limits": None, "reason": "again"}, "alice")


def test_propose_when_limit_unknown_then_fails_naming_it(release_env):
    from airflow.sdk.exceptions import AirflowFailException

    from quantbridge_airflow.release_tasks import propose_release

    with pytest.raises(AirflowFailException, match="limits.max_notionall"):
        propose_release({"revision": None, "limits": {"max_notionall": 1}, "reason": "typo"}, "alice")


@pytest.mark.parametrize(
    "compliance, risk, trigger, says",
    [
        ("alice", "dave", "alice", "alice is the proposer: no self-approval"),
        ("carol", "carol", "alice", "two distinct approvers"),
        ("carol", "dave", "dave", "triggered the release"),
        ("eve", "dave", "alice", "eve is not assigned to it"),
        (None, "dave", "alice", "approve_compliance: no response"),
    ],
)
def test_four_eyes_when_rule_broken_then_fails_naming_it_and_returns_nothing(compliance, risk, trigger, says):
    from airflow.sdk.exceptions import AirflowFailException

    from quantbridge_airflow.release_tasks import four_eyes

    assigned = {**ASSIGNED, "approve_risk": [*RISK, {"id": "carol", "name": "carol"}]}
    responses = {
        "approve_compliance": _response(compliance) if compliance else None,
        "approve_risk": _response(risk),
    }

    with pytest.raises(AirflowFailException, match="nothing activated") as refused:
        four_eyes({"revision": "b" * 64, "author": "alice"}, trigger, responses, assigned)

    assert says in str(refused.value)


def test_four_eyes_when_answer_is_reject_then_fails():
    from airflow.sdk.exceptions import AirflowFailException

    from quantbridge_airflow.release_tasks import four_eyes

    responses = {"approve_compliance": _response("carol"), "approve_risk": _response("dave", "Reject")}
    with pytest.raises(AirflowFailException, match="dave did not approve"):
        four_eyes({"revision": "b" * 64, "author": "alice"}, "alice", responses, ASSIGNED)


def test_four_eyes_when_two_others_approve_then_approvals_for_activation():
    from quantbridge_airflow.release_tasks import four_eyes

    responses = {"approve_compliance": _response("carol"), "approve_risk": _response("dave")}

    approvals = four_eyes({"revision": "b" * 64, "author": "alice"}, "alice", responses, ASSIGNED)

    assert approvals == [
        {"user": "carol", "at": "2026-01-05T10:00:00+00:00", "task": "approve_compliance", "approved": True},
        {"user": "dave", "at": "2026-01-05T10:00:00+00:00", "task": "approve_risk", "approved": True},
    ]


def test_activate_when_approved_then_active_revision_in_redis_and_when_self_approved_then_refused(
    release_env, redis_client
):
    from airflow.sdk.exceptions import AirflowFailException

    from quantbridge_airflow.release_tasks import activate_release, propose_release

    proposal = propose_release(
        {"revision": None, "limits": {"max_position_shares": 10_000}, "reason": "smaller"}, "alice"
    )
    key = release_env.key("policy_active")
    selfish = [{"user": "alice", "at": "t", "task": "approve_compliance"}, {"user": "dave", "at": "t"}]
    with pytest.raises(AirflowFailException, match="no self-approval"):
        activate_release(proposal, selfish, "alice", "manual__1")
    assert redis_client.get(key) is None

    approvals = [{"user": "carol", "at": "t", "task": "approve_compliance"}, {"user": "dave", "at": "t"}]
    record = activate_release(proposal, approvals, "alice", "manual__2")

    active = json.loads(redis_client.get(key))
    assert active["revision"] == record["revision"] == proposal["revision"]
    assert (active["approvers"], active["dag_run_id"], active["by"]) == (
        ["carol", "dave"],
        "manual__2",
        "airflow:policy_release",
    )
    assert active["reason"] == "smaller" and active["triggered_by"] == "alice"


def test_propose_when_stored_revision_fails_its_rego_tests_or_is_active_then_refused(release_env, settings):
    from airflow.sdk.exceptions import AirflowFailException

    from execution.bundle import build, store, with_limits
    from execution.policy import POLICY_DIR
    from quantbridge.lake import Lake
    from quantbridge.signing import keyring
    from quantbridge_airflow.config import airflow_settings
    from quantbridge_airflow.release_tasks import activate_release, propose_release

    # Stored without `qb policy propose` (which would have refused it): a limit that breaks the Rego tests.
    broken = with_limits(build(POLICY_DIR, "bob", "x"), {"max_order_notional": 1}, "bob", "x")
    store(broken, Lake(settings.lake_root), keyring(airflow_settings(), "policy"))
    with pytest.raises(AirflowFailException, match="policy tests.*failed: pretrade_test.test_base_item"):
        propose_release({"revision": broken.revision, "limits": None, "reason": "x"}, "alice")

    proposal = propose_release({"revision": None, "limits": {"price_band": 0.2}, "reason": "x"}, "bob")
    approvals = [{"user": "carol", "at": "t", "task": "approve_compliance"}, {"user": "dave", "at": "t"}]
    activate_release(proposal, approvals, "bob", "manual__1")
    with pytest.raises(AirflowFailException, match="already the active revision"):
        propose_release({"revision": proposal["revision"], "limits": None, "reason": "again"}, "alice")


def test_approvals_when_timeout_set_in_environment_then_each_waits_that_long(monkeypatch):
    from datetime import timedelta

    from quantbridge_airflow.release_tasks import approval_timeout

    assert approval_timeout() == timedelta(days=3)
    monkeypatch.setenv("QB_APPROVAL_TIMEOUT_S", "3600")
    assert approval_timeout() == timedelta(hours=1)
