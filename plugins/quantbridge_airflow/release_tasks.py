"""Policy release inside Airflow: who is assigned to the approvals, and the three steps around them
(propose, the four-eyes check, activation) as thin calls into :mod:`governance.release`.

The approvers come from the environment (``QB_COMPLIANCE_APPROVERS``, ``QB_RISK_APPROVERS``) through
:func:`quantbridge.settings.load_settings`, never from the ``quantbridge_settings`` Airflow Variable: Op
users may edit Variables, and whoever may change the approvers must not be able to approve themselves in.
With SimpleAuthManager a user's id is its name, so an approver is ``{"id": name, "name": name}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from quantbridge.errors import ConfigError
from quantbridge.settings import Settings, load_settings

if TYPE_CHECKING:
    from airflow.sdk.execution_time.hitl import HITLUser

"""How long an approval waits for its answer; then it fails (no default answer) and nothing activates."""
APPROVE, REJECT = "Approve", "Reject"
APPROVAL_TASKS = ("approve_compliance", "approve_risk")
_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")


def approver_names(value: str, field: str) -> list[str]:
    """The user names of a comma-separated setting, in order, without duplicates.

    Raises ConfigError naming ``field`` when the list is empty or a name is not an Airflow user name.
    """
    names = [name.strip() for name in value.split(",")]
    if not value.strip() or not all(_NAME.fullmatch(name) for name in names):
        raise ConfigError(field, value, "comma-separated Airflow user names, e.g. carol,alice")
    return list(dict.fromkeys(names))


def release_assignees(settings: Settings | None = None) -> tuple[list[HITLUser], list[HITLUser]]:
    """``assigned_users`` of the compliance and the risk approval (environment settings by default)."""
    settings = settings or load_settings()
    return (
        [{"id": n, "name": n} for n in approver_names(settings.compliance_approvers, "compliance_approvers")],
        [{"id": n, "name": n} for n in approver_names(settings.risk_approvers, "risk_approvers")],
    )


def approval_timeout(settings: Settings | None = None) -> timedelta:
    """How long each approval waits for its answer (``QB_APPROVAL_TIMEOUT_S``, default 3 days)."""
    return timedelta(seconds=(settings or load_settings()).approval_timeout_s)


def compliance_group(settings: Settings | None = None) -> set[str]:
    """Everyone assigned to either approval: the users who may also roll back to an approved revision."""
    compliance, risk = release_assignees(settings)
    return {user["name"] for user in (*compliance, *risk)}


def _fail(message: str) -> Exception:
    """AirflowFailException: the release's inputs are wrong, a retry would read the same ones."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(message)


def _context() -> tuple[Settings, Any, Any, Any, Any]:
    """Settings (environment + Variable), the policy key ring, the lake, Redis and its schema."""
    from quantbridge.lake import Lake
    from quantbridge.redis_schema import RedisSchema
    from quantbridge.signing import keyring
    from quantbridge_airflow.config import airflow_settings
    from quantbridge_airflow.redis_state import redis_client

    settings = airflow_settings()
    schema = RedisSchema(settings.redis_prefix)
    return settings, keyring(settings, "policy"), Lake(settings.lake_root), redis_client(), schema


def propose_release(params: Mapping[str, Any], triggering_user: str | None) -> dict[str, Any]:
    """The ``propose`` task: a new bundle from ``params["limits"]`` (built, tested, signed, stored by
    :func:`governance.release.propose`) or the stored ``params["revision"]`` checked (signature, file
    hashes, Rego tests). Returns ``{revision, parent, author, reason, diff, tests, body}``; ``body`` is the
    approvals' Markdown. Fails the task (no retry) on bad params, a bundle that does not verify or a test
    that fails."""
    from governance import release
    from quantbridge.errors import QuantbridgeError

    revision, limits, reason = params.get("revision"), params.get("limits"), str(params.get("reason") or "")
    if (revision is None) == (not limits):
        raise _fail(
            f"params revision={revision!r}, limits={limits!r}: expected exactly one of them "
            "(a proposed revision from `qb policy propose`, or limit changes)"
        )
    _, ring, lake, client, schema = _context()
    try:
        if revision is not None:
            proposal = release.review(lake, ring, client, schema, str(revision))
        else:
            author = triggering_user or "unknown"
            proposal = release.propose(
                lake, ring, author=author, reason=reason, changes=limits, client=client, schema=schema
            )
    except QuantbridgeError as exc:
        raise _fail(str(exc)) from None
    return {
        **{k: proposal[k] for k in ("revision", "parent", "author", "diff", "tests")},
        "reason": reason or proposal.get("reason"),
        "body": approval_body(proposal, reason),
    }


def approval_body(proposal: Mapping[str, Any], reason: str) -> str:
    """What an approver reads (Markdown): who proposed what and why, the tests, the diff."""
    tests = proposal["tests"]
    passed = sum(1 for _, ok in tests if ok)
    return (
        f"**Proposed by** {proposal['author']}: {reason or proposal.get('reason') or '(no reason given)'}\n\n"
        f"**Revision** `{proposal['revision']}` (parent `{proposal.get('parent') or 'none'}`)\n\n"
        f"**Policy tests**: {passed} of {len(tests)} passed\n\n"
        f"```diff\n{proposal['diff']}```\n\n"
        "Approve only a change you have read; you may not approve your own proposal, and the two "
        "approvals must come from two different people."
    )


def four_eyes(
    proposal: Mapping[str, Any],
    triggering_user: str | None,
    responses: Mapping[str, Mapping[str, Any] | None],
    assigned: Mapping[str, Sequence[Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """The ``check_four_eyes`` task: the approvals (``{user, at, task, approved}``) from the approval
    tasks' results (``responded_by_user``, ``chosen_options``, ``responded_at``), checked by
    :func:`governance.release.check_approvals` and against each task's assigned users (Airflow enforces
    that already; a second look costs nothing). Fails the task naming every problem."""
    from governance.release import check_approvals

    approvals, problems = [], []
    for task, response in responses.items():
        if not response:
            problems.append(f"{task}: no response")
            continue
        user = (response.get("responded_by_user") or {}).get("name")
        at = response.get("responded_at")
        approvals.append(
            {
                "user": user,
                "at": at.isoformat() if isinstance(at, datetime) else str(at),
                "task": task,
                "approved": list(response.get("chosen_options") or []) == [APPROVE],
            }
        )
        allowed = {u["name"] for u in assigned.get(task, ())}
        if user not in allowed:
            problems.append(f"{task}: {user} is not assigned to it (assigned: {', '.join(sorted(allowed))})")
    problems += check_approvals(str(proposal["author"]), triggering_user, approvals)
    if problems:
        raise _fail(
            f"four eyes refused revision {str(proposal['revision'])[:12]} (nothing activated): "
            + "; ".join(problems)
        )
    return approvals


def activate_release(
    proposal: Mapping[str, Any],
    approvals: Sequence[Mapping[str, Any]],
    triggering_user: str | None,
    run_id: str,
) -> dict[str, Any]:
    """The ``activate`` task: :func:`governance.release.activate` (signed approvals, then ``policy_active``
    with its audit entry in one Lua call; it checks the approvals again). A refusal fails without retry."""
    from governance import release
    from quantbridge.errors import QuantbridgeError

    _, ring, lake, client, schema = _context()
    try:
        return release.activate(
            client,
            schema,
            lake,
            ring,
            str(proposal["revision"]),
            approvals,
            "airflow:policy_release",
            triggering_user=triggering_user,
            dag_run_id=run_id,
            reason=proposal.get("reason"),
        )
    except QuantbridgeError as exc:
        raise _fail(str(exc)) from None
