"""``qb report --date D``: build the nightly report for one date and print its path."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from app.cli.common import date_type
from quantbridge.settings import Settings


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"--days={value!r} is invalid: expected a positive whole number of days"
        )
    return number


def cmd_report(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Build ``reports/date=D/report.html`` from the lake and Redis (Redis down: sections carry a note)."""
    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect
    from reporting import build_nightly_report

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"report {args.date}: {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    client = connect(settings)
    try:
        path = build_nightly_report(
            Lake(settings.lake_root),
            args.date,
            client,
            prefix=settings.redis_prefix,
            model=settings.var_model,
            confidence=settings.var_confidence,
            window=settings.var_window,
            days=args.days,
            progress=progress,
        )
    finally:
        client.close()
    return {
        "date": args.date.isoformat(),
        "report": str(path),
        "seconds": round(time.perf_counter() - started, 2),
    }, 0


def add_report_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``qb report`` on the ``qb`` sub-parsers."""
    p = sub.add_parser(
        "report", parents=[common], help="the nightly report (HTML + PNGs) for one date; prints its path"
    )
    p.add_argument("--date", type=date_type("--date"), required=True, help="report date, YYYY-MM-DD")
    p.add_argument("--days", type=_positive, default=250, help="trading days of VaR history (default 250)")
    p.set_defaults(func=cmd_report)
