"""``qb demo``: the whole story on real data, in a few minutes on 2 cores.

The nightly chain for one date, each DAG run in-process with ``dag.test()`` exactly as the scheduler would
run it (same tasks, same Params), then a short live period in which the execution worker trades the
rebalance's orders through Redis while the VaR sensor refreshes, then reconciliation and the nightly
report. Sizes are the DAGs' defaults except where stated in :data:`DEMO_CONF` (smaller, for 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from datetime import UTC, date, datetime
from typing import Any

from quantbridge.settings import Settings

#: Run conf per DAG (every Param given, as the UI form sends them); smaller than the defaults where noted.
DEMO_CONF: dict[str, dict[str, Any]] = {
    "market_data_ingest": {"date": None, "source": ""},
    "nightly_stress": {
        "date": None,
        "families": ["rates", "fx", "esg", "historical"],
        "shock_scale": 1.0,
        "confidence": 0.99,
        "paths": 20000,
    },  # default 50,000 paths
    "retraining": {"model_kind": "gbm", "window_days": 750, "as_of": None},
    "daily_rebalance": {"date": None, "portfolio_value": 1000000, "max_weight": 0.15, "max_turnover": 2.0},
}


def _echo(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _run_dag(dag_id: str, day: date, conf: dict[str, Any]) -> dict[str, Any]:
    """One ``dag.test()`` run for ``day`` (22:00 UTC), its state and task states."""
    from app.cli.backfill import _task_states, load_dag

    t0 = time.perf_counter()
    dag = load_dag(dag_id)
    run = dag.test(logical_date=datetime(day.year, day.month, day.day, 22, tzinfo=UTC), run_conf=conf)
    tasks = _task_states(dag_id, run.run_id)
    return {
        "dag_id": dag_id,
        "state": str(getattr(run, "state", "unknown")),
        "tasks": tasks,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _live(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The worker trades every waiting order while the VaR sensor refreshes; returns what happened."""
    from execution.worker import ExecutionWorker, lake_marks
    from marketdata.reference import esg_scores
    from quantbridge.lake import Lake
    from quantbridge.positions import read_positions
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema
    from risk.portfolio import equal_weight_book
    from risk.sensor import SensorConfig, VarSensor

    schema, lake = RedisSchema(settings.redis_prefix), Lake(settings.lake_root)
    client = connect(settings)
    try:
        waiting = client.xlen(schema.key("orders"))
        scores = esg_scores(lake)
        config = SensorConfig.from_settings(settings, interval_s=args.sensor_interval)
        sensor = VarSensor(config, lake, schema, lambda: client)
        # Fresh risk figures first: the worker refuses risk-increasing orders without them (RISK_STALE).
        refreshes = sensor.run(threading.Event(), max_refreshes=1)
        worker = ExecutionWorker(
            connect(settings),
            schema,
            "demo",
            lake.read_close_matrix().columns,
            esg=None if scores is None else scores.to_dict(),
            marks=lake_marks(lake),
            risk_stale_after_s=settings.risk_stale_after_s,
            max_deliveries=settings.max_deliveries,
        )
        stop = threading.Event()
        handled: list[int] = []
        thread = threading.Thread(target=lambda: handled.append(worker.run(stop, block_ms=100)), daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            info = client.xinfo_groups(schema.key("orders"))
            group = next((g for g in info if g["name"] == ORDERS_GROUP), None)
            if group and group["lag"] == 0 and group["pending"] == 0:
                break
            time.sleep(0.1)
        seeded = False
        if not client.exists(schema.key("positions")):  # nothing traded (e.g. every order refused)
            client.hset(
                schema.key("positions"), mapping=equal_weight_book(lake.read_close_matrix().ffill().iloc[-1])
            )
            seeded = True
        refreshes += sensor.run(threading.Event(), max_refreshes=args.sensor_refreshes)
        stop.set()
        thread.join(10)
        states: dict[str, int] = {}
        for raw in client.hvals(schema.key("order_state")):
            import json

            state = json.loads(raw)["state"]
            states[state] = states.get(state, 0) + 1
        current = client.hgetall(schema.key("risk_current"))
        return {
            "orders_waiting": waiting,
            "orders_handled": sum(handled),
            "order_states": states,
            "fills": client.xlen(schema.key("fills")),
            "dead_letters": client.xlen(schema.key("dead_letter")),
            "positions": read_positions(client, schema),
            "seeded_demo_book": seeded,
            "var_refreshes": refreshes,
            "var": float(current.get("var", "nan")),
            "cvar": float(current.get("cvar", "nan")),
            "var_model": current.get("model"),
            "kill_switch": bool(client.exists(schema.key("kill_switch"))),
        }
    finally:
        client.close()


def cmd_demo(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Ingest history, run the nightly chain for one date, trade live for a moment, reconcile, report."""
    with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; keep stdout for --json
        return _demo(args, settings)


def _demo(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from app.airflow_env import apply_airflow_environment
    from app.cli.backfill import migrate_metadata_db
    from app.cli.data import cmd_ingest, cmd_status

    started = time.perf_counter()
    day, steps, ok = args.date, {}, True
    _echo(args, f"[1/7] bulk ingest {args.start}..{args.end} through Spark + GX into {settings.lake_root}")
    bulk, code = cmd_ingest(argparse.Namespace(**{**vars(args), "source": None}), settings)
    ok &= code == 0
    steps["bulk_ingest"] = {
        k: bulk[k]
        for k in ("first_date", "last_date", "published", "rows", "tickers", "quarantined", "seconds")
    }
    _echo(
        args,
        f"      {bulk['published']} partitions x {len(bulk['tickers'])} tickers, "
        f"{len(bulk['quarantined'])} quarantined, {bulk['seconds']} s",
    )
    apply_airflow_environment(settings)
    migrate_metadata_db()
    chain = [
        ("market_data_ingest", "[2/7] DAG market_data_ingest (extract, GX gates, Spark publish)"),
        (
            "nightly_stress",
            "[3/7] DAG nightly_stress (QuantLib rates, FX vol, ESG black-outs, ledger, report)",
        ),
        *(
            (
                (
                    "synthetic_generation",
                    "      DAG synthetic_generation (conditional GAN, ESG loss, fidelity)",
                ),
            )
            if "synthetic_generation" in _conf()
            else ()
        ),
        ("retraining", "[4/7] DAG retraining (Dask features, purged walk-forward, registry, promotion)"),
        ("daily_rebalance", "[5/7] DAG daily_rebalance (champion scores, mean-variance, SHAP, orders)"),
    ]
    runs = []
    for dag_id, title in chain:
        _echo(args, f"{title} for {day}")
        run = _run_dag(dag_id, day, _conf()[dag_id])
        runs.append(run)
        ok &= run["state"] == "success"
        _echo(
            args,
            f"      {run['state']} in {run['seconds']} s: "
            + ", ".join(f"{t}={s}" for t, s in run["tasks"].items()),
        )
    steps["dag_runs"] = runs
    _echo(
        args,
        "[6/7] live: the execution worker trades the orders through Redis; "
        f"VaR sensor x{args.sensor_refreshes}",
    )
    live = _live(args, settings)
    steps["live"] = live
    _echo(
        args,
        f"      {live['orders_handled']} orders handled {live['order_states']}, {live['fills']} fills, "
        f"VaR {live['var']:,.0f} CVaR {live['cvar']:,.0f} ({live['var_model']}), kill switch "
        f"{'SET' if live['kill_switch'] else 'off'}",
    )
    _echo(args, "[7/7] reconciliation against lake marks, then the nightly report with the day's fills")
    steps["reconcile"], steps["report"] = _reconcile_and_report(settings, day)
    ok &= steps["reconcile"]["ok"]
    breaks = str(steps["reconcile"].get("breaks"))
    _echo(
        args,
        f"      reconciliation {'clean' if steps['reconcile']['ok'] else 'BREAKS: ' + breaks}"
        f"; report {steps['report']}",
    )
    status, _ = cmd_status(args, settings)
    steps["lake"] = status["lake"]
    steps["seconds"] = round(time.perf_counter() - started, 1)
    _echo(args, f"done in {steps['seconds']} s; open {steps['report']}")
    return steps, (0 if ok else 1)


def _conf() -> dict[str, dict[str, Any]]:
    """:data:`DEMO_CONF` plus the synthetic DAG's when that DAG exists in the folder."""
    from quantbridge.settings import PROJECT_ROOT

    conf = dict(DEMO_CONF)
    if (PROJECT_ROOT / "dags" / "synthetic_generation.py").is_file():
        conf["synthetic_generation"] = SYNTHETIC_CONF
    return conf


#: Every Param of synthetic_generation, with a mild ESG tilt (beta 0.5).
SYNTHETIC_CONF: dict[str, Any] = {"model_kind": "cgan", "beta": 0.5, "epochs": 60, "samples": 1000}


def _reconcile_and_report(settings: Settings, day: date) -> tuple[dict[str, Any], str]:
    from execution.reconcile import reconcile
    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema
    from reporting import build_nightly_report

    lake, client = Lake(settings.lake_root), connect(settings)
    try:
        result = reconcile(client, RedisSchema(settings.redis_prefix), lake, day)
        path = build_nightly_report(
            lake,
            day,
            client,
            prefix=settings.redis_prefix,
            model=settings.var_model,
            confidence=settings.var_confidence,
            window=settings.var_window,
        )
    finally:
        client.close()
    return result, str(path)


def add_demo_parser(sub: Any, common: argparse.ArgumentParser, date_type: Any) -> None:
    """Register ``qb demo``."""
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="the whole story on real data: nightly chain, live trading, reconciliation, report",
    )
    p.add_argument("--start", type=date_type("--start"), default=date(2019, 6, 3), help="bulk ingest from")
    p.add_argument("--end", type=date_type("--end"), default=date(2020, 3, 31), help="bulk ingest to")
    p.add_argument("--date", type=date_type("--date"), default=date(2020, 4, 1), help="the night to run")
    p.add_argument("--sensor-refreshes", type=int, default=3)
    p.add_argument("--sensor-interval", type=float, default=1.0)
    p.set_defaults(func=cmd_demo)
