"""Policy releases: propose a bundle, activate it with four eyes, roll back to an approved revision.

* :func:`propose` builds a bundle from a folder (a working copy of ``policies/``) or from the active
  revision with limit changes, runs the Rego unit tests (a bundle whose tests fail is refused, naming them),
  signs and stores it, and returns its revision, the readable diff against the active revision and the test
  results. Nothing is active yet.
* :func:`activate` (the ``policy_release`` DAG's last task) checks the approvals (:func:`check_approvals`:
  two distinct approvers, neither the proposer nor the user who triggered the release), writes the signed
  ``approvals.json`` into the bundle's folder, verifies the whole bundle again, then sets ``policy_active``
  and appends the audit entry ``policy_activated`` in ONE Lua call (:meth:`AuditWriter.commit`), guarded on
  ``policy_active`` still holding what was read: two racing activations cannot both land, and ``previous``
  is always the revision really replaced.
* :func:`rollback` re-activates an earlier revision whose signature and approvals verify (it was released
  through four eyes once; no new approval), with the audit entry ``policy_rolled_back``.
* :func:`status`: the active record and what every worker judges by (``policy_workers``).

``policy_active`` is a Redis string holding JSON ``{revision, activated_at, by, approvers, dag_run_id,
previous, triggered_by, reason, action}`` (``action``: ``activated`` or ``rolled_back``); the workers read
it with :func:`execution.bundle.read_active` and load a revision only after :func:`execution.bundle.verify`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from execution.bundle import (
    Bundle,
    BundleError,
    Signer,
    VerifiedBundle,
    approval_problems,
    approvals_record,
    build,
    diff,
    parse_active,
    read_active,
    store,
    verify,
    with_limits,
    write_active_record,
    write_approvals,
)
from execution.policy import POLICY_DIR
from execution.policy_tests import TESTS_FOLDER, failed, run_policy_tests
from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.redis_client import text
from quantbridge.redis_schema import RedisSchema


class ReleaseRefused(BundleError):
    """A release step refused: failing tests, missing or invalid approvals, a revision already active."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_approvals(
    proposer: str, triggering_user: str | None, responses: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The problems of ``responses`` (``[{user, at, task, approved?}]``) for a release proposed by
    ``proposer`` and triggered by ``triggering_user``; ``[]`` when four eyes hold. Pure."""
    return approval_problems(proposer, triggering_user, responses)


def active_revision(client: Any, schema: RedisSchema) -> str | None:
    record = read_active(client, schema)
    return None if record is None else str(record["revision"])


def propose(
    lake: Lake,
    ring: Signer,
    *,
    author: str,
    reason: str,
    folder: Path | None = None,
    changes: Mapping[str, Any] | None = None,
    client: Any = None,
    schema: RedisSchema | None = None,
    tests: Path | None = None,
) -> dict[str, Any]:
    """Build, test, sign and store a proposed bundle; returns ``{revision, parent, diff, tests, path,
    author, reason}`` (``tests``: ``[[name, passed]]``).

    ``changes`` (limit -> value): the active revision (read with ``client``/``schema``; the bundle of
    ``folder``, default ``policies/``, when none is active) with those limits changed. Otherwise the bundle
    of ``folder`` (default ``policies/``). ``tests``: the Rego tests folder (default ``<folder>/tests``, or
    ``policies/tests`` for a change of limits). Raises :class:`ReleaseRefused` naming the failed tests."""
    if folder is not None and changes:
        raise InputError("changes", dict(changes), "either a folder or limit changes, not both")
    active = active_revision(client, schema) if client is not None and schema is not None else None
    parent_bundle: Bundle | None = verify(lake, active, ring) if active is not None else None
    source = Path(folder) if folder is not None else POLICY_DIR
    shown = parent_bundle  # what the diff compares with: the active revision, else the changes' base
    if changes:
        base = parent_bundle if parent_bundle is not None else build(source, author, reason)
        bundle, shown = with_limits(base, changes, author, reason), base
        tests = tests if tests is not None else POLICY_DIR / TESTS_FOLDER
    else:
        bundle = build(source, author, reason, active)
        tests = tests if tests is not None else source / TESTS_FOLDER
    if active is not None and bundle.revision == active:
        raise ReleaseRefused(f"revision {active}", "is already the active revision: nothing to propose")
    results = _tested(bundle, tests, f"policy tests ({tests})", "; nothing was stored")
    path = store(bundle, lake, ring)
    stored = verify(lake, bundle.revision, ring, require_approvals=False)
    return {**_summary(stored, shown, results), "path": str(path)}


def review(lake: Lake, ring: Signer, client: Any, schema: RedisSchema, revision: str) -> dict[str, Any]:
    """A stored, not yet approved revision checked as :func:`propose` checks a new one: signature and file
    hashes, its Rego tests (a failing test refuses it), the diff against the active revision (the
    repository's policies while none is, as in :func:`propose`). Same keys as :func:`propose`, no ``path``."""
    bundle = verify(lake, revision, ring, require_approvals=False)
    active = active_revision(client, schema)
    if active == revision:
        raise ReleaseRefused(f"revision {revision}", "is already the active revision: nothing to propose")
    results = _tested(bundle, None, "policy tests", "")
    shown = verify(lake, active, ring) if active is not None else build(POLICY_DIR, "repository", "go-live")
    return _summary(bundle, shown, results)


def _tested(bundle: Bundle, tests: Path | None, what: str, consequence: str) -> list[tuple[str, bool]]:
    """The Rego tests' results on ``bundle``; ReleaseRefused naming the failed ones."""
    results = run_policy_tests(bundle, tests)
    bad = failed(results)
    if bad:
        raise ReleaseRefused(what, f"{len(bad)} of {len(results)} failed: {', '.join(bad)}{consequence}")
    return results


def _summary(bundle: Bundle, shown: Bundle | None, results: list[tuple[str, bool]]) -> dict[str, Any]:
    """What an approver reads of a proposal: who, why, the diff from ``shown``, the tests."""
    return {
        "revision": bundle.revision,
        "parent": bundle.metadata.get("parent"),
        "author": bundle.metadata.get("author"),
        "reason": bundle.metadata.get("reason"),
        "created": bundle.metadata.get("created"),
        "diff": diff(shown, bundle),
        "tests": [[name, passed] for name, passed in results],
    }


def _commit_active(
    client: Any,
    schema: RedisSchema,
    record: dict[str, Any],
    kind: str,
    expected_raw: str | None,
) -> None:
    """SET ``policy_active`` and append the audit entry ``kind`` in one Lua call, guarded on the key still
    holding ``expected_raw`` (None: absent)."""
    from quantbridge.audit import AuditWriter, Effects, GuardFailed

    key = schema.key("policy_active")
    effects = Effects(
        guards=((key, None, expected_raw),), set_keys=((key, json.dumps(record, sort_keys=True)),)
    )
    try:
        AuditWriter(client, schema).commit([(kind, record["revision"], record)], effects)
    except GuardFailed as exc:
        raise ReleaseRefused(
            "policy_active",
            f"changed while this release ran (now {exc.actual!r}): nothing was written; run it again",
        ) from None


def _read_raw(client: Any, schema: RedisSchema) -> str | None:
    raw = client.get(schema.key("policy_active"))
    return None if raw is None else text(raw)


def activate(
    client: Any,
    schema: RedisSchema,
    lake: Lake,
    ring: Signer,
    revision: str,
    approvals: Sequence[Mapping[str, Any]],
    by: str,
    *,
    triggering_user: str | None = None,
    dag_run_id: str | None = None,
    reason: str | None = None,
    clock: Callable[[], str] = _now,
) -> dict[str, Any]:
    """Release ``revision``: check ``approvals`` (``[{user, at, task}]``) against its author and
    ``triggering_user``, write the signed ``approvals.json``, verify the bundle with its approvals, then set
    ``policy_active`` with the audit entry ``policy_activated`` in one Lua call. Returns the record.

    Raises :class:`ReleaseRefused` (nothing activated) on any approval problem, and
    :class:`~execution.bundle.BundleError` when the bundle does not verify."""
    bundle = verify(lake, revision, ring, require_approvals=False)
    author = str(bundle.metadata.get("author", ""))
    problems = check_approvals(author, triggering_user, approvals)
    if problems:
        raise ReleaseRefused(
            "approvals", "; ".join(problems) + f"; revision {revision[:12]} was not activated"
        )
    previous_raw = _read_raw(client, schema)
    previous = None if previous_raw is None else parse_active(previous_raw)
    if previous is not None and previous["revision"] == revision:
        raise ReleaseRefused(f"revision {revision}", "is already the active revision")
    write_approvals(
        lake,
        ring,
        approvals_record(revision, author, approvals, triggered_by=triggering_user, dag_run_id=dag_run_id),
    )
    checked = verify(lake, revision, ring, require_approvals=True)
    record = _record(
        checked, "activated", by, clock(), previous, reason or str(bundle.metadata.get("reason"))
    )
    _commit_active(client, schema, record, "policy_activated", previous_raw)
    write_active_record(lake, ring, record)  # the signed copy a worker checks when the Redis record is gone
    return record


def _record(
    bundle: VerifiedBundle, action: str, by: str, at: str, previous: Mapping[str, Any] | None, reason: str
) -> dict[str, Any]:
    approvals = bundle.approvals or {}
    return {
        "revision": bundle.revision,
        "action": action,
        "activated_at": at,
        "by": by,
        "reason": reason,
        "author": bundle.metadata.get("author"),
        "approvers": [a.get("user") for a in approvals.get("approvers", [])],
        "triggered_by": approvals.get("triggered_by"),
        "dag_run_id": approvals.get("dag_run_id"),
        "previous": None if previous is None else previous.get("revision"),
    }


def rollback(
    client: Any,
    schema: RedisSchema,
    lake: Lake,
    ring: Signer,
    revision: str,
    by: str,
    reason: str,
    *,
    clock: Callable[[], str] = _now,
) -> dict[str, Any]:
    """Re-activate ``revision``, which must verify with its approvals (released through four eyes before;
    no new approval), with the audit entry ``policy_rolled_back``. Returns the record."""
    if not (reason or "").strip():
        raise InputError("reason", reason, "why the rollback (the audit trail records who and why)")
    checked = verify(lake, revision, ring, require_approvals=True)
    previous_raw = _read_raw(client, schema)
    previous = None if previous_raw is None else parse_active(previous_raw)
    if previous is not None and previous["revision"] == revision:
        raise ReleaseRefused(f"revision {revision}", "is already the active revision")
    record = _record(checked, "rolled_back", by, clock(), previous, reason.strip())
    _commit_active(client, schema, record, "policy_rolled_back", previous_raw)
    write_active_record(lake, ring, record)
    return record


def status(client: Any, schema: RedisSchema) -> dict[str, Any]:
    """``{active: record | None, workers: {consumer: {revision, since, refused, ...}}, in_sync: bool}``:
    ``in_sync`` is true when every worker judges by the active revision (and there is at least one)."""
    active = read_active(client, schema)
    workers: dict[str, Any] = {}
    for consumer, raw in sorted((client.hgetall(schema.key("policy_workers")) or {}).items()):
        try:
            workers[text(consumer)] = json.loads(text(raw))
        except ValueError:
            workers[text(consumer)] = {"unreadable": text(raw)}
    revision = None if active is None else active["revision"]
    in_sync = bool(workers) and all(w.get("revision") == revision for w in workers.values())
    return {"active": active, "workers": workers, "in_sync": in_sync}
