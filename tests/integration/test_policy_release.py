"""The four-eyes policy release end to end on the real Airflow stack (`qb airflow start`, SQLite metadata DB,
SimpleAuthManager with five users), driven over REST as people would drive it: Alice (Op) proposes limit
changes through the DAG's form, approvers answer through ``hitlDetails``.

One stack start for every case (the stack is what costs): a self-approval refused by the check, a viewer,
an Admin and an approver of the other step refused by Airflow, two distinct approvers activating (Redis
``policy_active`` and the audit chain), a rejection that never activates, and the dashboard plugin's policy
routes in the api-server (status for a viewer, rollback refused to a viewer and an Admin, done by the
compliance group)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.cli.main import main
from app.services import AIRFLOW_COMPONENTS
from quantbridge.audit import verify
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import Settings, load_settings
from tests.conftest import _free_port

pytestmark = pytest.mark.slow

DAG = "policy_release"
USERS = "admin:admin,alice:op,carol:user,dave:user,vera:viewer"
APPROVE, REJECT = ["Approve"], ["Reject"]


def _request(url: str, token: str | None = None, body: Any = None, method: str | None = None):
    """(status, JSON reply); a GET that times out (the api-server is busy) is (0, {}): polls try again."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")
    except TimeoutError:
        if req.get_method() != "GET":
            raise
        return 0, {}


@dataclass(frozen=True)
class Stack:
    base: str
    tokens: dict[str, str]
    logs: Path
    baseline: str  # the revision active before any release of the test


@pytest.fixture
def release_stack(tmp_path, monkeypatch, redis_client, capsys):
    """The stack with Alice (op), Carol and Dave (user), Vera (viewer); compliance = Carol or Alice, risk =
    Dave. The project's policies are the active revision already (released by Carol and Dave, as at go-live),
    so a proposal's diff reads ``old -> new``."""
    port = _free_port()
    home = tmp_path / "airflow"
    for name, value in {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
        "QB_COMPLIANCE_APPROVERS": "carol,alice",
        "QB_RISK_APPROVERS": "dave",
        "QB_KEY_DIR": str(tmp_path / "keys"),
        "QB_LAKE_ROOT": str(tmp_path / "lake"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AIRFLOW__API_AUTH__JWT_SECRET", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__UNIT_TEST_MODE", raising=False)
    baseline = _go_live(load_settings(), redis_client)
    assert main(["airflow", "start", "--json", "--quiet"]) == 0
    base = json.loads(capsys.readouterr().out)["url"]
    try:
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        tokens = {}
        for user in ("admin", "alice", "carol", "dave", "vera"):
            status, reply = _request(
                base + "/auth/token", body={"username": user, "password": passwords[user]}
            )
            assert status == 201, (user, status)
            tokens[user] = reply["access_token"]
        yield Stack(base, tokens, home / "logs", baseline)
    finally:
        assert main(["airflow", "stop", "--json", "--quiet"]) == 0
        assert sorted(json.loads(capsys.readouterr().out)["stopped"]) == sorted(AIRFLOW_COMPONENTS)


def _go_live(settings: Settings, client: Any) -> str:
    """The project's policies released (stored, approved by Carol and Dave, active); their revision."""
    from execution.bundle import build, store
    from execution.policy import POLICY_DIR
    from governance import release
    from quantbridge.lake import Lake
    from quantbridge.signing import keyring

    ring, lake = keyring(settings, "policy"), Lake(settings.lake_root)
    bundle = build(POLICY_DIR, "bob", "go-live")
    store(bundle, lake, ring)
    approvals = [{"user": "carol", "at": "t0", "task": "approve_compliance"}, {"user": "dave", "at": "t1"}]
    schema = RedisSchema(settings.redis_prefix)
    release.activate(client, schema, lake, ring, bundle.revision, approvals, "test:go-live")
    return bundle.revision


def _until(what: str, check, timeout_s: float = 90.0, every_s: float = 0.5, why=lambda: "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}; {why()}")


class Release:
    """One run of policy_release seen over REST."""

    def __init__(self, base: str, tokens: dict[str, str], run_id: str, logs: Path) -> None:
        self.base, self.tokens, self.run_id, self.logs = base, tokens, run_id, logs
        self.url = f"{base}/api/v2/dags/{DAG}/dagRuns/{run_id}"

    def hitl(self, task: str) -> str:
        return f"{self.url}/taskInstances/{task}/-1/hitlDetails"

    def waiting(self, task: str, timeout_s: float = 90.0) -> dict[str, Any]:
        """The approval's detail once the task has asked (the request exists: an answer is never lost)."""

        # Parked: the scheduler has seen the parked process exit. An answer before that can meet an Airflow
        # 3.3 race (the exit's stale "success" event fails the resumed, queued task), which people answering
        # after reading the request never meet; see docs/governance.md.
        parked = f"task_id={task}, run_id={self.run_id}, map_index=-1"

        def asked() -> dict[str, Any] | None:
            status, detail = _request(self.hitl(task), self.tokens["alice"])
            if status != 200 and "failed" in self.states().values():
                pytest.fail(f"{self.run_id} failed before {task} asked: {self.diagnosis()}")
            seen = (self.logs / "scheduler.out").read_text(errors="replace")
            finished = [
                line for line in seen.splitlines() if "TaskInstance Finished" in line and parked in line
            ]
            return detail if status == 200 and any("state=awaiting_input" in f for f in finished) else None

        return _until(f"{task} of {self.run_id} to ask", asked, timeout_s, why=self.diagnosis)

    def log(self, task: str) -> str:
        paths = self.logs.glob(f"dag_id={DAG}/run_id={self.run_id}/task_id={task}/*.log")
        return "\n".join(p.read_text(errors="replace") for p in sorted(paths))

    def diagnosis(self) -> str:
        """Task states and the end of every failed task's log (what a failure message needs)."""
        states = self.states()
        logs = [
            f"--- {task}\n{self.log(task)[-3000:]}" for task, state in states.items() if state == "failed"
        ]
        return f"task states {states}\n" + "\n".join(logs)

    def answer(self, task: str, user: str, options: list[str]) -> tuple[int, dict[str, Any]]:
        body = {"chosen_options": options, "params_input": {}}
        return _request(self.hitl(task), self.tokens[user], body, "PATCH")

    def finished(self, timeout_s: float = 90.0) -> str:
        def state() -> str | None:
            found = _request(self.url, self.tokens["alice"])[1].get("state")
            return found if found in ("success", "failed") else None

        return _until(f"{self.run_id} to finish", state, timeout_s, why=self.diagnosis)

    def states(self) -> dict[str, str]:
        reply = _request(self.url + "/taskInstances", self.tokens["alice"])[1]
        return {ti["task_id"]: ti["state"] for ti in reply.get("task_instances", [])}

    def xcom(self, task: str) -> Any:
        url = f"{self.url}/taskInstances/{task}/xcomEntries/return_value?deserialize=true"
        status, entry = _request(url, self.tokens["alice"])
        assert status == 200, (task, status)
        return entry["value"]


def _trigger(stack: Stack, limits: dict[str, float], reason: str) -> Release:
    base, tokens = stack.base, stack.tokens
    status, run = _request(
        f"{base}/api/v2/dags/{DAG}/dagRuns",
        tokens["alice"],
        {"logical_date": None, "conf": {"limits": limits, "reason": reason}},
    )
    assert status == 200, run
    return Release(base, tokens, run["dag_run_id"], stack.logs)


def test_policy_release_when_approved_by_two_others_then_active_and_self_approval_or_reject_never(
    release_stack, redis_client
):
    stack = release_stack
    base, tokens = stack.base, stack.tokens
    schema = RedisSchema(load_settings().redis_prefix)

    def listed() -> bool | None:
        status, dags = _request(base + "/api/v2/dags", tokens["alice"])
        return True if status == 200 and DAG in [d["dag_id"] for d in dags["dags"]] else None

    _until("the dag-processor to parse policy_release", listed)
    assert _request(f"{base}/api/v2/dags/{DAG}", tokens["alice"], {"is_paused": False}, "PATCH")[0] == 200
    assert _active(redis_client, schema)["revision"] == stack.baseline
    # Three proposals at once (each run waits on people, not on the others).
    selfish = _trigger(stack, {"max_order_notional": 111_000}, "alice approves her own change")
    good = _trigger(stack, {"max_order_notional": 222_000}, "tighter notional after the VaR review")
    rejected = _trigger(stack, {"max_order_notional": 333_000}, "looser notional, compliance says no")

    # Alice's own proposal: Airflow refuses Vera (viewer) and Dave (not assigned to compliance); Alice is
    # assigned, so Airflow takes her answer, and the four-eyes check refuses it.
    detail = selfish.waiting("approve_compliance")
    assert [u["name"] for u in detail["assigned_users"]] == ["carol", "alice"]
    assert "max_order_notional: 250000 -> 111000" in detail["body"] and detail["defaults"] is None
    assert selfish.answer("approve_compliance", "vera", APPROVE)[0] == 403
    assert selfish.answer("approve_compliance", "dave", APPROVE)[0] == 403
    assert selfish.answer("approve_compliance", "admin", APPROVE)[0] == 403  # Admin is not assigned either
    assert selfish.answer("approve_compliance", "alice", APPROVE)[0] == 200
    assert selfish.answer("approve_compliance", "carol", APPROVE)[0] == 409  # one answer per approval
    assert (
        rejected.waiting("approve_compliance")
        and rejected.answer("approve_compliance", "carol", REJECT)[0] == 200
    )
    selfish.waiting("approve_risk")
    assert selfish.answer("approve_risk", "carol", APPROVE)[0] == 403  # risk is Dave's
    assert selfish.answer("approve_risk", "dave", APPROVE)[0] == 200
    assert selfish.finished() == "failed", selfish.diagnosis()
    assert selfish.states() == {
        "propose": "success",
        "approve_compliance": "success",
        "approve_risk": "success",
        "check_four_eyes": "failed",
        "activate": "upstream_failed",
    }
    assert "alice is the proposer: no self-approval" in selfish.log("check_four_eyes")
    assert _active(redis_client, schema)["revision"] == stack.baseline  # nothing activated

    # Carol (compliance) and Dave (risk) approve Alice's other proposal: it becomes the active revision.
    proposal = good.xcom("propose")
    assert "max_order_notional: 250000 -> 222000" in proposal["diff"] and proposal["author"] == "alice"
    assert (
        good.waiting("approve_compliance") and good.answer("approve_compliance", "carol", APPROVE)[0] == 200
    )
    assert good.waiting("approve_risk") and good.answer("approve_risk", "dave", APPROVE)[0] == 200
    assert good.finished() == "success", good.diagnosis()
    assert set(good.states().values()) == {"success"}
    active = _active(redis_client, schema)
    assert active["revision"] == proposal["revision"]
    assert sorted(active["approvers"]) == ["carol", "dave"] and active["dag_run_id"] == good.run_id

    # Carol rejected the third: everything after the approval skipped, the active revision unchanged.
    assert rejected.finished() == "success", rejected.diagnosis()
    assert rejected.states() == {
        "propose": "success",
        "approve_compliance": "success",
        "approve_risk": "skipped",
        "check_four_eyes": "skipped",
        "activate": "skipped",
    }
    assert _active(redis_client, schema)["revision"] == proposal["revision"]
    # The audit chain: one activation, of the approved revision; it verifies end to end.
    entries = [f for _, f in redis_client.xrange(schema.key("audit"))]
    activated = [(e["ref"], json.loads(e["payload"])) for e in entries if e["kind"] == "policy_activated"]
    assert [ref for ref, _ in activated] == [stack.baseline, proposal["revision"]]
    assert sorted(activated[1][1]["approvers"]) == ["carol", "dave"]
    assert verify(redis_client, schema)["ok"] is True

    # The dashboard plugin in the api-server: everyone signed in reads the status, only the compliance
    # group (from the api-server's environment) rolls back, and only to an approved revision.
    policy = f"{base}/quantbridge/api/policy"
    status, seen = _request(policy, tokens["vera"])
    assert status == 200 and seen["active"]["revision"] == proposal["revision"] and not seen["may_roll_back"]
    back = {"revision": stack.baseline, "reason": "back to go-live limits"}
    for user in ("vera", "admin"):
        assert _request(policy + "/rollback", tokens[user], back, "POST")[0] == 403
    status, record = _request(policy + "/rollback", tokens["alice"], back, "POST")  # alice: compliance
    assert status == 200 and (record["action"], record["by"]) == ("rolled_back", "compliance:alice")
    assert _active(redis_client, schema)["revision"] == stack.baseline


def _active(client: Any, schema: RedisSchema) -> dict[str, Any]:
    raw = client.get(schema.key("policy_active"))
    assert raw, "no active policy revision in Redis"
    return json.loads(raw)
