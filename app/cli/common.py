"""What every ``qb`` command module shares: the date argument, progress on stderr, the human printer."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from quantbridge.settings import Settings

#: A command: parsed arguments and settings in, (result for ``--json``, exit code) out.
Command = Callable[[argparse.Namespace, Settings], tuple[dict[str, Any], int]]


def date_type(field: str) -> Callable[[str], date]:
    """An argparse ``type`` for an ISO date whose error names the flag and the value."""

    def parse(text: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{field}={text!r} is invalid: expected a date like 2020-01-02"
            ) from None

    return parse


def echo(args: argparse.Namespace, message: str) -> None:
    """Progress for humans goes to stderr, so ``--json`` output on stdout stays clean."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def airflow_bin() -> Path:
    """The ``airflow`` executable of this interpreter's environment."""
    return Path(sys.executable).with_name("airflow")


def prints_own(args: argparse.Namespace) -> bool:
    """Whether the command printed its own human output (a table), so ``main`` prints no summary.

    Set per parser with ``set_defaults(prints_own=True)``, or a predicate of the arguments where it
    depends on them (``qb var backtest`` prints a table, ``qb var`` does not).
    """
    flag = getattr(args, "prints_own", False)
    return bool(flag(args) if callable(flag) else flag)


def print_human(out: dict[str, Any], indent: str = "") -> None:
    """A command's result as indented ``key: value`` lines (long lists shortened)."""
    for key, value in out.items():
        if isinstance(value, dict) and value:
            print(f"{indent}{key}:")
            print_human(value, indent + "  ")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            print(f"{indent}{key}:")
            for item in value:
                print(f"{indent}  - " + ", ".join(f"{k}={v}" for k, v in item.items()))
        elif isinstance(value, list) and len(value) > 12:
            print(f"{indent}{key}: [{len(value)} items] {', '.join(map(str, value[:6]))}, ...")
        else:
            print(f"{indent}{key}: {value}")
