"""``qb``: the quantbridge command line. Every command prints JSON with ``--json``.

Exit codes: 0 success, 1 the work ran but data was blocked or a run failed, 2 bad input or
configuration, 3 a service is missing or down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from quantbridge.errors import ConfigError, InputError, NoDataError, QuantbridgeError, ServiceError
from quantbridge.settings import Settings, load_settings


def _date(field: str) -> Callable[[str], date]:
    def parse(text: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{field}={text!r} is invalid: expected a date like 2020-01-02"
            ) from None

    return parse


def _echo(args: argparse.Namespace, message: str) -> None:
    """Progress for humans goes to stderr, so ``--json`` output on stdout stays clean."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


# --- commands ---------------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from marketdata.feed import FileFeed, SkfolioFeed
    from marketdata.ingest import ingest_range
    from marketdata.reference import load_reference_tables
    from quantbridge.lake import Lake

    feed = FileFeed(args.source) if args.source else SkfolioFeed(settings.universe)
    result = ingest_range(settings, feed, args.start, args.end, progress=lambda m: _echo(args, m))
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
        _echo(
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
        "airflow": AirflowStack(settings, _airflow_bin()).status(),
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
    return [dict(zip(("dag_id", "run_id", "state", "logical_date", "end_date"), r)) for r in rows]


def _airflow_bin() -> Path:
    return Path(sys.executable).with_name("airflow")


def cmd_services(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from app.services import RedisService

    service = RedisService(settings)
    return getattr(service, args.action)(), 0


def cmd_airflow(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from app.services import AirflowStack

    stack = AirflowStack(settings, _airflow_bin())
    out = getattr(stack, args.action)()
    if args.action == "start":
        _echo(
            args,
            f"Airflow UI: {out['url']}  user: admin  password: {out['password']} "
            f"(from {out['password_file']})",
        )
    return out, 0


def cmd_stress(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Stress the book for one date and print per scenario the base, shocked value and change."""
    from quantbridge.lake import Lake
    from risk.portfolio import load_positions
    from risk.stress_night import load_inputs, run_stress

    lake = Lake(settings.lake_root)
    positions = load_positions(args.positions) if args.positions else _redis_positions(settings)
    inputs = load_inputs(lake, args.date, positions, args.book)
    frame = run_stress(
        inputs,
        args.scenarios,
        shock_scale=args.shock_scale,
        paths=args.paths,
        seed=settings.seed,
        dask_scheduler=settings.dask_scheduler,
        progress=lambda m: _echo(args, m),
    )
    scenarios = []
    for (family, scenario), rows in frame.groupby(["family", "scenario"], sort=False):
        total = rows[rows["position"] == "TOTAL"].iloc[0]
        scenarios.append(
            {
                "family": family,
                "scenario": scenario,
                "base_value": total["base_value"],
                "shocked_value": total["shocked_value"],
                "change": total["change"],
                "positions": rows[rows["position"] != "TOTAL"]
                .loc[:, ["position", "base_value", "shocked_value", "change"]]
                .to_dict("records"),
            }
        )
    scenarios.sort(key=lambda r: r["change"])
    out: dict[str, Any] = {"date": args.date.isoformat(), "rows": len(frame), "scenarios": scenarios}
    if "rates" in args.scenarios:
        from risk.irrbb import bootstrap_par_curve, key_rate_durations

        krd = key_rate_durations(inputs.bond_book, bootstrap_par_curve(args.date, inputs.curve))
        out["key_rate_durations"] = {
            bond: {k: round(v, 4) for k, v in row.items()} for bond, row in krd.iterrows()
        }
    if not args.json:
        print(f"stress {args.date}: {len(scenarios)} scenarios, worst first")
        print(f"{'family':<11}{'scenario':<36}{'base':>16}{'shocked':>16}{'change':>14}")
        for r in scenarios:
            print(
                f"{r['family']:<11}{r['scenario']:<36}{r['base_value']:>16,.0f}{r['shocked_value']:>16,.0f}"
                f"{r['change']:>14,.0f}"
            )
    return out, 0


def cmd_explain(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """The SHAP explanation stored with an order."""
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema
    from strategy.rebalance import explanation

    client = connect(settings)
    try:
        record = explanation(client, RedisSchema(settings.redis_prefix), args.order_id)
    except KeyError:
        raise InputError(
            "ORDER_ID", args.order_id, "an order published by the rebalance (see the qb:orders stream)"
        ) from None
    finally:
        client.close()
    ranked = sorted(record["contributions"].items(), key=lambda kv: -abs(kv[1]))
    record["top"] = [
        {"feature": k, "contribution": v, "value": record["features"].get(k)} for k, v in ranked[:5]
    ]
    return record, 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Out-of-sample evaluation of the strategy vs equal weight and momentum (walk-forward, purged)."""
    from marketdata.reference import esg_scores
    from quantbridge.lake import Lake
    from strategy.evaluation import evaluate
    from strategy.features import build_features
    from strategy.model import walk_forward

    lake = Lake(settings.lake_root)
    closes = lake.read_close_matrix(args.start, args.end)
    if closes.empty:
        raise InputError("lake prices", str(settings.lake_root), "published prices: run `qb ingest` first")
    esg = esg_scores(lake)
    _echo(
        args,
        f"features and {args.folds}-fold purged walk-forward on {closes.shape[0]} dates x {closes.shape[1]} tickers",
    )
    panel = build_features(closes, esg)
    model_eval, oos = walk_forward(panel, folds=args.folds, seed=settings.seed)
    out = evaluate(oos, closes, panel, top_k=args.top_k, cost_bps=args.cost_bps)
    out["walk_forward"] = model_eval.as_dict()
    if not args.json:
        print(
            f"out of sample {out['start']}..{out['end']}, rebalanced every {out['rebalance_days']} days, "
            f"top {out['top_k']}, cost {out['cost_bps']} bp per unit turnover"
        )
        print(f"{'book':<14}{'IC':>8}{'hit':>7}{'ann.ret':>9}{'ann.vol':>9}{'Sharpe':>8}{'maxDD':>8}")
        for r in out["rows"]:
            print(
                f"{r['book']:<14}{r['ic']:>8.4f}{r['hit_rate']:>7.3f}{r['annual_return']:>9.2%}"
                f"{r['annual_volatility']:>9.2%}{r['sharpe']:>8.2f}{r['max_drawdown']:>8.1%}"
            )
    return out, 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Verify the audit hash chain against the signed lake checkpoints (exit 1 on a break), or sign a
    checkpoint of its head (count, hash, entry id, time) with ``settings.audit_key_path`` and append it."""
    from quantbridge.audit import checkpoint, load_public_key, load_signing_key, verify
    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    client, schema, lake = connect(settings), RedisSchema(settings.redis_prefix), Lake(settings.lake_root)
    try:
        if args.action == "checkpoint":
            return checkpoint(client, schema, lake, load_signing_key(settings.audit_key_path)), 0
        out = verify(client, schema, lake, public_key=load_public_key(settings.audit_key_path))
        return out, (0 if out["ok"] else 1)
    finally:
        client.close()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """The execution worker: consumes the orders stream until SIGTERM (or --duration/--max-orders)."""
    import signal
    import socket
    import threading

    from execution.worker import ExecutionWorker, lake_marks
    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    lake = Lake(settings.lake_root)
    tickers = (
        set(lake.read_close_matrix(start=lake.price_dates()[-1]).columns) if lake.price_dates() else set()
    )
    if not tickers:
        raise InputError(
            "lake prices",
            str(settings.lake_root),
            "published prices (the tradable universe): run `qb ingest`",
        )
    from marketdata.reference import esg_scores

    scores = esg_scores(lake)
    esg = scores.to_dict() if scores is not None else {}
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.duration:
        threading.Timer(args.duration, stop.set).start()
    consumer = args.consumer or f"{socket.gethostname()}-{os.getpid()}"
    client = connect(settings, verify=True)  # a refused password is reported clearly, before anything else
    worker = ExecutionWorker(
        client,
        RedisSchema(settings.redis_prefix),
        consumer,
        tickers,
        esg,
        marks=lake_marks(lake),
        risk_stale_after_s=settings.risk_stale_after_s,
        max_deliveries=settings.max_deliveries,
    )
    port = settings.worker_metrics_port if args.metrics_port is None else args.metrics_port
    server = None
    try:
        server = worker.metrics.serve(port) if port else None
    except OSError as exc:
        if args.metrics_port is not None:
            raise ServiceError(
                f"--metrics-port={port} cannot be served ({exc}): pick a free port or 0"
            ) from None
        # Workers run side by side in one group: only the first one on a host gets the default port.
        _echo(args, f"note: metrics port {port} busy ({exc}); this worker runs without /metrics")
        port = 0
    _echo(
        args,
        f"execution worker {consumer}: {len(tickers)} tickers, policies from policies/"
        + (f", metrics on 127.0.0.1:{port}/metrics" if port else ""),
    )
    try:
        handled = worker.run(stop, max_orders=args.max_orders, reclaim_idle_ms=args.reclaim_idle_ms)
    finally:
        if server is not None:
            server.shutdown()
    return {"consumer": consumer, "handled": handled}, 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Execution positions and P&L against lake marks; exit 1 when there is any break."""
    from execution.reconcile import reconcile
    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    client = connect(settings)
    try:
        out = reconcile(client, RedisSchema(settings.redis_prefix), Lake(settings.lake_root), args.date)
    finally:
        client.close()
    return out, (0 if out["ok"] else 1)


def _redis_positions(settings: Settings) -> dict[str, float]:
    from app.cli.var import redis_positions

    return redis_positions(settings)


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


# --- parser -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress messages on stderr")
    parser = argparse.ArgumentParser(
        prog="qb", description="quantbridge: from model to market", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", parents=[common], help="bulk-ingest a date range into the lake (Spark + GX)")
    p.add_argument("--start", type=_date("--start"), required=True)
    p.add_argument("--end", type=_date("--end"), required=True)
    p.add_argument(
        "--source", help="CSV or Parquet with columns date, ticker, close (default: bundled real S&P 500)"
    )
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("backfill", parents=[common], help="run a DAG in-process (dag.test) for each date")
    p.add_argument("dag_id")
    p.add_argument("--start", type=_date("--start"), required=True)
    p.add_argument("--end", type=_date("--end"), required=True)
    p.add_argument("--all-days", action="store_true", help="include Saturdays and Sundays")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("status", parents=[common], help="services up, lake extent, last runs")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("services", parents=[common], help="the project's own redis-server (AOF on)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_services)

    p = sub.add_parser(
        "airflow", parents=[common], help="the local Airflow 3 stack (api-server, scheduler, ...)"
    )
    p.add_argument("action", choices=["start", "stop", "status", "migrate"])
    p.set_defaults(func=cmd_airflow)

    from app.cli.var import add_parser as add_var_parser  # qb var, qb var backtest, qb var-sensor

    add_var_parser(sub, common, _date)

    p = sub.add_parser(
        "stress", parents=[common], help="stress scenarios for one date (rates, fx, esg, historical)"
    )
    p.add_argument("--date", type=_date("--date"), required=True)
    p.add_argument(
        "--book",
        help="your fixed-income book: CSV id, face, coupon_rate, maturity_date, "
        "coupon_frequency, currency (default: the illustrative book in the lake)",
    )
    p.add_argument("--positions", help="equity positions CSV/JSON (default: Redis, else the demo book)")
    p.add_argument(
        "--scenarios",
        nargs="+",
        default=["rates", "fx", "esg", "historical"],
        choices=["rates", "fx", "esg", "historical"],
        help="scenario families",
    )
    p.add_argument("--shock-scale", type=float, default=1.0)
    p.add_argument("--paths", type=int, default=50_000)
    p.set_defaults(func=cmd_stress)

    p = sub.add_parser("explain", parents=[common], help="SHAP explanation of an order")
    p.add_argument("order_id")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("evaluate", parents=[common], help="out-of-sample strategy evaluation vs baselines")
    p.add_argument("--start", type=_date("--start"), default=None)
    p.add_argument("--end", type=_date("--end"), default=None)
    p.add_argument("--folds", type=int, default=8)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--cost-bps", type=float, default=10.0)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "audit",
        parents=[common],
        help="verify the audit chain against the signed checkpoints, or sign a checkpoint",
    )
    p.add_argument("action", choices=["verify", "checkpoint"])
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "worker", parents=[common], help="the execution worker (orders stream -> policies -> venues)"
    )
    p.add_argument("--consumer", default=None, help="consumer name in the group (default host-pid)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--max-orders", type=int, default=None)
    p.add_argument(
        "--reclaim-idle-ms",
        type=int,
        default=30_000,
        help="take over other consumers' pending orders idle this long (XAUTOCLAIM)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=None, help="0 disables /metrics (default QB_WORKER_METRICS_PORT)"
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "reconcile", parents=[common], help="execution positions/P&L vs the risk engine's marks"
    )
    p.add_argument("--date", type=_date("--date"), required=True)
    p.set_defaults(func=cmd_reconcile)

    from app.cli.synth import add_parser as add_synth_parser

    add_synth_parser(sub, common, _date)

    from app.cli.ops import add_parser as add_ops_parser  # qb kill-switch, qb order: operator controls

    add_ops_parser(sub, common)

    from app.cli.report import add_report_parser  # the nightly report: its own module

    add_report_parser(sub, common)

    p = sub.add_parser("schema", parents=[common], help="the Redis state schema (Markdown, or --json)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("settings", parents=[common], help="effective settings (secrets redacted)")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_settings)

    from app.cli.demo import add_demo_parser

    add_demo_parser(sub, common, _date)
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
    elif args.command not in {"schema", "settings", "stress", "evaluate"} and not (
        args.command == "var" and args.action == "backtest"
    ):
        _print_human(out)
    return code


def _print_human(out: dict[str, Any], indent: str = "") -> None:
    for key, value in out.items():
        if isinstance(value, dict) and value:
            print(f"{indent}{key}:")
            _print_human(value, indent + "  ")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            print(f"{indent}{key}:")
            for item in value:
                print(f"{indent}  - " + ", ".join(f"{k}={v}" for k, v in item.items()))
        elif isinstance(value, list) and len(value) > 12:
            print(f"{indent}{key}: [{len(value)} items] {', '.join(map(str, value[:6]))}, ...")
        else:
            print(f"{indent}{key}: {value}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
