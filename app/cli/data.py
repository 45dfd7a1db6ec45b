"""``qb ingest``, ``qb backfill`` and ``qb status``: the lake, DAG runs over it, where things stand."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

from app.cli.common import airflow_bin, echo
from quantbridge.errors import ServiceError
from quantbridge.settings import Settings


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from marketdata.feed import FileFeed, SkfolioFeed
    from marketdata.ingest import ingest_range
    from marketdata.reference import load_reference_tables
    from quantbridge.lake import Lake

    feed = FileFeed(args.source) if args.source else SkfolioFeed(settings.universe)
    result = ingest_range(settings, feed, args.start, args.end, progress=lambda m: echo(args, m))
    out = result.as_dict()
    out["reference"] = load_reference_tables(Lake(settings.lake_root))
    out["lake_root"] = str(settings.lake_root)
    if result.published:
        _record_ingest(settings, out, args)
    return out, (1 if result.quarantined else 0)


def _record_ingest(settings: Settings, out: dict[str, Any], args: argparse.Namespace) -> None:
    """Best effort: the lake is the source of truth; Redis only mirrors the last ingest for dashboards."""
    from marketdata.ingest_record import record_ingest
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    client = connect(settings)
    try:
        record_ingest(client, RedisSchema(settings.redis_prefix), {**out, "run_id": "cli"})
        out["recorded_in_redis"] = True
    except Exception as exc:  # noqa: BLE001 - Redis being down must not undo a published ingest
        out["recorded_in_redis"] = False
        echo(
            args,
            f"note: Redis at {settings.redis_url_redacted()} not reachable ({exc}); "
            "ingest summary not mirrored (start it with `make services`)",
        )
    finally:
        client.close()


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from app.cli.backfill import backfill
    from app.services import RedisService

    if not RedisService(settings).ping():
        raise ServiceError(
            f"Redis at {settings.redis_url_redacted()} is not answering; DAG tasks record their "
            "results there: start it with `make services`"
        )
    bar = _progress_bar(args)

    def progress(i: int, n: int, day: date, state: str) -> None:
        bar(i, n, f"{day} {state}")

    with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; keep it for --json
        out = backfill(
            settings, args.dag_id, args.start, args.end, weekdays_only=not args.all_days, progress=progress
        )
    return out, (0 if out["failed"] == 0 and all(r["state"] == "success" for r in out["runs"]) else 1)


def _progress_bar(args: argparse.Namespace) -> Callable[[int, int, str], None]:
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(i: int, n: int, label: str) -> None:
        if args.quiet:
            return
        if "bar" not in state:
            state["bar"] = tqdm(total=n, file=sys.stderr, unit="run")
        state["bar"].set_postfix_str(label)
        state["bar"].update(1)
        if i == n:
            state["bar"].close()

    return update


def cmd_status(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from app.services import AirflowStack, RedisService
    from marketdata.ingest_record import read_ingest
    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    lake = Lake(settings.lake_root)
    dates = lake.price_dates()
    redis = RedisService(settings).status()
    out: dict[str, Any] = {
        "redis": redis,
        "airflow": AirflowStack(settings, airflow_bin()).status(),
        "lake": {
            "root": str(lake.root),
            "price_partitions": len(dates),
            "first_date": dates[0].isoformat() if dates else None,
            "last_date": dates[-1].isoformat() if dates else None,
            "quarantined": [d.isoformat() for d in lake.quarantined_dates()],
            "reference_tables": sorted(p.stem for p in (lake.root / "reference").glob("*.parquet")),
        },
        "last_ingest": None,
        "last_runs": _last_runs(),
    }
    if redis["up"]:
        client = connect(settings)
        try:
            out["last_ingest"] = read_ingest(client, RedisSchema(settings.redis_prefix)) or None
        finally:
            client.close()
    return out, 0


def _last_runs(limit: int = 10) -> list[dict[str, Any]]:
    """Latest DAG runs from the Airflow metadata DB (read-only, plain SQL; empty if there is no DB yet)."""
    import sqlite3

    from app.airflow_env import airflow_home

    db = airflow_home() / "airflow.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT dag_id, run_id, state, logical_date, end_date FROM dag_run ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
    except sqlite3.Error:
        return []
    return [
        dict(zip(("dag_id", "run_id", "state", "logical_date", "end_date"), r, strict=True)) for r in rows
    ]


def add_parser(sub: Any, common: argparse.ArgumentParser, date_type: Callable[[str], Any]) -> None:
    """Register ``qb ingest``, ``qb backfill`` and ``qb status``."""
    p = sub.add_parser("ingest", parents=[common], help="bulk-ingest a date range into the lake (Spark + GX)")
    p.add_argument("--start", type=date_type("--start"), required=True)
    p.add_argument("--end", type=date_type("--end"), required=True)
    p.add_argument(
        "--source", help="CSV or Parquet with columns date, ticker, close (default: bundled real S&P 500)"
    )
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("backfill", parents=[common], help="run a DAG in-process (dag.test) for each date")
    p.add_argument("dag_id")
    p.add_argument("--start", type=date_type("--start"), required=True)
    p.add_argument("--end", type=date_type("--end"), required=True)
    p.add_argument("--all-days", action="store_true", help="include Saturdays and Sundays")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("status", parents=[common], help="services up, lake extent, last runs")
    p.set_defaults(func=cmd_status)
