"""``qb replay``: the strategy carried to market day by day over real (or synthetic) history."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from quantbridge.settings import Settings


def cmd_replay(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Run or resume the replay; progress on stderr, the KPIs as the result."""
    from app.replay.loop import ReplayArgs, run_replay

    # The replay builds its own settings (its lake and Redis live under --out); the user's lake is read only
    # for a --synthetic run's stored windows.
    replay_args = ReplayArgs(
        start=args.start,
        end=args.end,
        out=Path(args.out).resolve(),
        capital=args.capital,
        seed=args.seed,
        stress_paths=args.stress_paths,
        var_limit_pct=args.var_limit_pct,
        synthetic=args.synthetic,
        regime=args.regime,
        history_days=args.history_days,
        synthetic_lake=settings.lake_root if args.synthetic else None,
    )

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    kpis = run_replay(replay_args, progress)
    if not args.json:
        print(summary(kpis))
    violations = kpis["policy_violations"]["violations"]
    return kpis, 0 if violations == 0 and kpis["reconciliation_breaks"] == 0 else 1


def add_replay_parser(sub: Any, common: argparse.ArgumentParser, date_type: Any) -> None:
    """Register ``qb replay``."""
    p = sub.add_parser(
        "replay",
        parents=[common],
        help="carry the strategy through history day by day through the real components",
    )
    p.add_argument("--start", type=date_type("--start"), required=True, help="first trading day")
    p.add_argument("--end", type=date_type("--end"), required=True, help="last trading day")
    p.add_argument(
        "--out", required=True, help="run folder (lake, Redis, checkpoints, results); resumed if it exists"
    )
    p.add_argument("--capital", type=float, default=10_000_000.0, help="starting cash (default 10,000,000)")
    p.add_argument("--seed", type=int, default=20260101, help="seed of the market, training and stress")
    p.add_argument(
        "--stress-paths", type=int, default=5000, help="FX Monte Carlo paths of the nightly stress"
    )
    p.add_argument(
        "--var-limit-pct", type=float, default=5.0, help="the kill switch's VaR limit, %% of capital"
    )
    p.add_argument(
        "--history-days", type=int, default=1000, help="trading days of real history ingested before --start"
    )
    p.add_argument("--synthetic", metavar="RUN", help="prices from this synthetic run's regime paths")
    p.add_argument("--regime", type=int, default=3, help="regime of --synthetic (3: turbulent)")
    # The human result is a short KPI table and the files' paths, not the whole dict (that is --json).
    p.set_defaults(func=cmd_replay, prints_own=True)


def summary(kpis: dict[str, Any]) -> str:
    """The seed's KPIs, one per line, and where the tear sheet is."""
    from app.replay.results import kpi_table

    rows = kpi_table(kpis)
    width = max(len(k) for k in rows)
    lines = [f"replay {kpis['period'][0]}..{kpis['period'][1]}: {kpis['trading_days']} trading days"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows.items()]
    lines.append(f"tear sheet: {kpis['tear_sheet']}")
    return "\n".join(lines)
