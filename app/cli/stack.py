"""``qb services`` and ``qb airflow``: the local redis-server and the local Airflow 3 stack."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import airflow_bin, echo
from quantbridge.settings import Settings


def cmd_services(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from app.services import RedisService

    service = RedisService(settings)
    return getattr(service, args.action)(), 0


def cmd_airflow(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from app.services import AirflowStack

    stack = AirflowStack(settings, airflow_bin())
    out = getattr(stack, args.action)()
    if args.action == "start":
        echo(
            args,
            f"Airflow UI: {out['url']}  user: admin  password: {out['password']} "
            f"(from {out['password_file']})",
        )
    return out, 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``qb services`` and ``qb airflow``."""
    p = sub.add_parser("services", parents=[common], help="the project's own redis-server (AOF on)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_services)

    p = sub.add_parser(
        "airflow", parents=[common], help="the local Airflow 3 stack (api-server, scheduler, ...)"
    )
    p.add_argument("action", choices=["start", "stop", "status", "migrate"])
    p.set_defaults(func=cmd_airflow)
