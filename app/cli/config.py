"""``qb schema`` and ``qb settings``: the Redis state schema and the effective settings (secrets redacted)."""

from __future__ import annotations

import argparse
from typing import Any

from quantbridge.errors import InputError
from quantbridge.settings import Settings


def cmd_schema(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from quantbridge.redis_schema import KEYS, schema_markdown

    if not args.json:
        print(schema_markdown(settings.redis_prefix))
    return {
        "prefix": settings.redis_prefix,
        "keys": [
            {
                "key": f"{settings.redis_prefix}:{k.suffix}",
                "type": k.type,
                "writer": k.writer,
                "reader": k.reader,
                "description": k.description,
            }
            for k in KEYS
        ],
    }, 0


def cmd_settings(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    out = settings.as_public_dict()
    if args.name:
        if args.name not in out:
            raise InputError("NAME", args.name, "one of " + ", ".join(sorted(out)))
        # Secrets (the password, a URL that may carry one) print redacted, as in the whole listing.
        value = (
            out[args.name] if args.name in {"redis_password", "redis_url"} else getattr(settings, args.name)
        )
        if not args.json:
            print(value)
        return {args.name: out[args.name]}, 0
    return out, 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``qb schema`` and ``qb settings`` (both print their own output)."""
    p = sub.add_parser("schema", parents=[common], help="the Redis state schema (Markdown, or --json)")
    p.set_defaults(func=cmd_schema, prints_own=True)

    p = sub.add_parser("settings", parents=[common], help="effective settings (secrets redacted)")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_settings, prints_own=True)
