"""``qb``: the quantbridge command line. Every command prints JSON with ``--json``.

Exit codes: 0 success, 1 the work ran but data was blocked or a run failed, 2 bad input or
configuration, 3 a service is missing or down.

Each command lives in the module named after what it holds (``data``: ingest, backfill, status; ``stack``:
services, airflow; ``var``; ``stress``; ``strategy``: explain, evaluate; ``execution``: audit, worker,
reconcile; ``synth``; ``ops``: kill-switch, order; ``report``; ``config``: schema, settings; ``demo``), which
registers its own sub-parsers. This module only assembles them and maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from app.cli import config, data, execution, keys, ops, policy, report, stack, strategy, stress, synth, var
from app.cli.common import date_type, print_human, prints_own
from app.cli.demo import add_demo_parser
from app.cli.replay import add_replay_parser
from quantbridge.errors import ConfigError, InputError, NoDataError, QuantbridgeError, ServiceError
from quantbridge.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress messages on stderr")
    parser = argparse.ArgumentParser(
        prog="qb", description="quantbridge: from model to market", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # The order here is the order of `qb --help`.
    data.add_parser(sub, common, date_type)
    stack.add_parser(sub, common)
    var.add_parser(sub, common, date_type)  # qb var, qb var backtest, qb var-sensor
    stress.add_parser(sub, common, date_type)
    strategy.add_parser(sub, common, date_type)
    execution.add_parser(sub, common, date_type)
    synth.add_parser(sub, common, date_type)
    ops.add_parser(sub, common)  # qb kill-switch, qb order: operator controls
    policy.add_parser(sub, common)  # qb policy: bundles, proposals, status, rollback
    keys.add_parser(sub, common)  # qb keys: the signing key rings
    report.add_report_parser(sub, common)
    config.add_parser(sub, common)
    add_demo_parser(sub, common, date_type)
    add_replay_parser(sub, common, date_type)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        out, code = args.func(args, settings)
    except (InputError, ConfigError) as exc:
        print(f"qb {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"qb {args.command}: service error: {exc}", file=sys.stderr)
        return 3
    except NoDataError as exc:
        print(f"qb {args.command}: no data: {exc}", file=sys.stderr)
        return 1
    except QuantbridgeError as exc:
        print(f"qb {args.command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    elif not prints_own(args):
        print_human(out)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
