"""``qb policy``: policy bundles from proposal to rollback (docs/governance.md).

* ``qb policy propose --reason TEXT [--folder DIR] [--author NAME] [--set LIMIT=VALUE ...]``: build the bundle
  of a working copy (default ``policies/``), or the active revision with limits changed (``--set``, values in
  JSON: ``--set max_order_notional=100000 --set 'restricted=["RRC","XOM"]'``), run its Rego tests (a failing
  test refuses it, named), sign and store it; prints the revision and the diff against the active revision.
  Nothing is active until the ``policy_release`` DAG's two approvals.
* ``qb policy diff REVISION [--against REVISION]``: rules as a unified diff, limits as ``key: old -> new``
  (against the active revision by default, or the bundle's parent).
* ``qb policy test [--folder DIR]``: the ``test_*`` rules of ``DIR/tests`` against ``DIR`` (exit 1 on a
  failure).
* ``qb policy status [--json]``: the active revision and the revision every worker judges by.
* ``qb policy rollback REVISION --reason TEXT``: re-activate an earlier released revision (its signature and
  approvals must verify; no new approval), audited ``policy_rolled_back``.

Revisions may be given as a unique prefix of 8 or more hex digits. The user is the login name.
"""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path
from typing import Any

from app.cli.ops import _connect, _reason
from quantbridge.errors import InputError
from quantbridge.settings import Settings


def _lake(settings: Settings) -> Any:
    from quantbridge.lake import Lake

    return Lake(settings.lake_root)


def _ring(settings: Settings, *, create: bool) -> Any:
    from quantbridge.signing import keyring

    return keyring(settings, "policy", create=create)


def parse_changes(items: list[str] | None) -> dict[str, Any]:
    """``["max_order_notional=100000", 'restricted=["RRC"]']`` -> ``{name: JSON value}``; a bare word that is
    not JSON is taken as a string."""
    changes: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError("--set", item, "LIMIT=VALUE, e.g. max_order_notional=100000")
        if name in changes:
            raise InputError("--set", item, f"each limit once ({name} is given twice)")
        try:
            changes[name] = json.loads(raw)
        except ValueError:
            changes[name] = raw
    return changes


def cmd_propose(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from governance.release import propose

    changes = parse_changes(args.set)
    folder = Path(args.folder) if args.folder else None
    if folder is not None and changes:
        raise InputError("--set", args.set, "no --set with --folder (edit the folder's data.json instead)")
    client, schema = _connect(settings)
    try:
        out = propose(
            _lake(settings),
            _ring(settings, create=True),
            author=args.author or getpass.getuser(),
            reason=_reason(args, required=True),
            folder=folder,
            changes=changes or None,
            client=client,
            schema=schema,
        )
    finally:
        client.close()
    out["next"] = (
        f"trigger the policy_release DAG with revision={out['revision']} (two approvers of the compliance "
        "and risk groups, neither the proposer)"
    )
    if not args.json:
        passed = sum(1 for _, ok in out["tests"] if ok)
        print(f"proposed {out['revision']} by {out['author']}: {out['reason']}")
        print(f"tests: {passed}/{len(out['tests'])} passed; stored in {out['path']}")
        print(out["diff"], end="")
        print(out["next"])
    return out, 0


def cmd_diff(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from execution.bundle import diff, resolve, verify
    from governance.release import active_revision

    lake, ring = _lake(settings), _ring(settings, create=False)
    revision = resolve(lake, args.revision)
    new = verify(lake, revision, ring, require_approvals=False)
    if args.against:
        against: str | None = resolve(lake, args.against)
    else:
        client, schema = _connect(settings)
        try:
            against = active_revision(client, schema)
        finally:
            client.close()
        if against is None or against == revision:
            against = new.metadata.get("parent")
    old = verify(lake, against, ring, require_approvals=False) if against else None
    text = diff(old, new)
    if not args.json:
        print(text, end="")
    return {"revision": revision, "against": against, "diff": text}, 0


def cmd_test(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from execution.policy import POLICY_DIR
    from execution.policy_tests import failed, run_policy_tests

    folder = Path(args.folder) if args.folder else POLICY_DIR
    results = run_policy_tests(folder)
    bad = failed(results)
    if not args.json:
        for name, ok in results:
            print(f"{'PASS' if ok else 'FAIL'}: {name}")
        print(f"{len(results) - len(bad)}/{len(results)} passed")
    out = {"folder": str(folder), "tests": [[n, ok] for n, ok in results], "failed": bad}
    return out, 1 if bad else 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from governance.release import status

    client, schema = _connect(settings)
    try:
        out = status(client, schema)
    finally:
        client.close()
    if not args.json:
        active = out["active"]
        if active is None:
            print("active: none (workers judge by the policies/ folder until a release)")
        else:
            print(
                f"active: {active['revision']} ({active.get('action')} {active.get('activated_at')} by "
                f"{active.get('by')}; approvers {', '.join(map(str, active.get('approvers') or []))})"
            )
        for consumer, worker in out["workers"].items():
            refused = f", refused {worker['refused']}" if worker.get("refused") else ""
            print(f"  {consumer}: {worker.get('revision')} since {worker.get('since')}{refused}")
        print(f"in sync: {out['in_sync']}")
    return out, 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from execution.bundle import resolve
    from governance.release import rollback

    lake = _lake(settings)
    revision = resolve(lake, args.revision)
    reason = _reason(args, required=True)
    client, schema = _connect(settings)
    try:
        record = rollback(
            client, schema, lake, _ring(settings, create=False), revision, getpass.getuser(), reason
        )
    finally:
        client.close()
    return record, 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``qb policy propose|diff|test|status|rollback``."""
    p = sub.add_parser(
        "policy", parents=[common], help="policy bundles: propose, diff, test, status, rollback"
    )
    actions = p.add_subparsers(dest="policy_action", required=True)
    own = {"prints_own": lambda a: not a.json}

    s = actions.add_parser("propose", parents=[common], help="build, test, sign and store a bundle")
    s.add_argument("--reason", required=True, help="why (kept in the manifest)")
    s.add_argument("--folder", default=None, help="working copy of policies/ (*.rego, data.json, tests/)")
    s.add_argument("--author", default=None, help="the proposer (default: your login name)")
    s.add_argument(
        "--set",
        action="append",
        metavar="LIMIT=VALUE",
        help="change a limit of the active revision (JSON value); repeat for several",
    )
    s.set_defaults(func=cmd_propose, **own)

    s = actions.add_parser("diff", parents=[common], help="rules and limits changed by a revision")
    s.add_argument("revision", metavar="REVISION")
    s.add_argument("--against", default=None, metavar="REVISION", help="default: the active revision")
    s.set_defaults(func=cmd_diff, **own)

    s = actions.add_parser("test", parents=[common], help="run the Rego unit tests (test_* rules)")
    s.add_argument("--folder", default=None, help="policies folder (default policies/; tests in its tests/)")
    s.set_defaults(func=cmd_test, **own)

    s = actions.add_parser("status", parents=[common], help="the active revision on every worker")
    s.set_defaults(func=cmd_status, **own)

    s = actions.add_parser("rollback", parents=[common], help="re-activate an earlier approved revision")
    s.add_argument("revision", metavar="REVISION")
    s.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    s.set_defaults(func=cmd_rollback)
