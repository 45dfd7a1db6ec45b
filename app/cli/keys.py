"""``qb keys``: the signing key rings of :mod:`quantbridge.signing` (``settings.key_dir``).

* ``qb keys status [--json]``: per purpose (orders, policy, audit) the active key id and every key with its
  creation and retirement time, fingerprint and whether it still verifies (``key_grace_s``).
* ``qb keys rotate PURPOSE --reason TEXT``: a new active key; the previous one is retired now and still
  verifies for ``key_grace_s`` seconds (orders and records in flight). Recorded in the audit chain as
  ``key_rotated`` (who, why, old and new key id, fingerprint); Redis is checked before the key changes, so a
  rotation never happens without its record.
"""

from __future__ import annotations

import argparse
from typing import Any

from quantbridge.settings import Settings


def cmd_keys(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Show every key ring, or rotate one (audited)."""
    from quantbridge.signing import PURPOSES, KeyRing, keyring

    if args.keys_action == "status":
        rings = []
        for purpose in PURPOSES:
            if (settings.key_dir / purpose / "keyring.json").exists():
                rings.append(keyring(settings, purpose, create=False).status())
            else:
                rings.append({"purpose": purpose, "active": None, "keys": [], "note": "no key yet"})
        return {"key_dir": str(settings.key_dir), "grace_s": settings.key_grace_s, "rings": rings}, 0

    from app.cli.ops import _connect, _reason, operator_name
    from quantbridge.audit import AuditWriter

    reason = _reason(args, required=True)
    by = operator_name()
    client, schema = _connect(settings)  # refuse before the key changes when the record cannot be written
    try:
        existed = (settings.key_dir / args.purpose / "keyring.json").exists()
        ring: KeyRing = keyring(settings, args.purpose)
        previous = ring.active if existed else None
        active = ring.rotate() if existed else ring.active  # a first key is made, nothing to retire
        status = ring.status()
        fingerprint = next(k["fingerprint"] for k in status["keys"] if k["id"] == active)
        payload = {
            "by": by,
            "reason": reason,
            "purpose": args.purpose,
            "previous": previous,
            "active": active,
            "fingerprint": fingerprint,
            "grace_s": ring.grace_s,
        }
        AuditWriter(client, schema).append_many([("key_rotated", args.purpose, payload)])
    finally:
        client.close()
    return {**payload, "keys": status["keys"]}, 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``qb keys status`` and ``qb keys rotate``."""
    from quantbridge.signing import PURPOSES

    p = sub.add_parser("keys", parents=[common], help="signing key rings: status, rotation (audited)")
    actions = p.add_subparsers(dest="keys_action", required=True)
    s = actions.add_parser("status", parents=[common], help="active and retired keys of every purpose")
    s.set_defaults(func=cmd_keys)
    s = actions.add_parser(
        "rotate", parents=[common], help="a new active key; the previous one verifies for key_grace_s more"
    )
    s.add_argument("purpose", choices=list(PURPOSES), metavar="PURPOSE", help=", ".join(PURPOSES))
    s.add_argument("--reason", default=None, help="why (required; kept in the audit trail)")
    s.set_defaults(func=cmd_keys)
