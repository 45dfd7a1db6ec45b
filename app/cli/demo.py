"""``qb demo``: the whole story on real data, in a few minutes on 2 cores.

The nightly chain for one date, each DAG run in-process with ``dag.test()`` exactly as the scheduler would
run it (same tasks, same Params), then a short live period in which the execution worker trades the
rebalance's orders through Redis while the VaR sensor refreshes, then reconciliation and the nightly
report. Sizes are the DAGs' defaults except where stated in :data:`DEMO_CONF` (smaller, for 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from app.cli.story import INDENT, Story, log_path, output_to
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
    from execution.worker import ExecutionWorker, governed, lake_marks
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
            **governed(settings, lake),
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
    """Ingest history, run the nightly chain for one date, trade live for a moment, reconcile, report.

    The story (steps, results, times) goes to stderr; what Airflow, Spark, Dask and Python's warnings
    write goes to ``<AIRFLOW_HOME>/logs/demo-<time>.log``, or with ``--verbose`` to the terminal.
    """
    from app.airflow_env import airflow_home

    if args.verbose:  # the libraries' output on the terminal, the story's lines among it
        log = None
        with (
            contextlib.redirect_stdout(sys.stderr),
            Story(None if args.quiet else sys.stderr, fancy=False) as story,
        ):
            steps, code = _demo(args, settings, story, log)
    else:
        log = log_path(airflow_home() / "logs")
        with output_to(log) as stream, Story(None if args.quiet else stream) as story:
            steps, code = _demo(args, settings, story, log)
    steps["log"] = None if log is None else str(log)
    if not args.json:
        print(f"report: {steps['report']}")
        if log is not None:
            print(f"log: {log}")
    return steps, code


def _demo(
    args: argparse.Namespace, settings: Settings, story: Story, log: Path | None
) -> tuple[dict[str, Any], int]:
    from app.airflow_env import apply_airflow_environment
    from app.cli.backfill import migrate_metadata_db
    from app.cli.data import cmd_ingest, cmd_status

    started = time.perf_counter()
    day, steps, ok = args.date, {}, True
    story.line(f"qb demo: the nightly chain for {day} on real prices, lake {settings.lake_root}")
    story.line(
        INDENT
        + (
            "Airflow, Spark and Dask write below (--verbose)"
            if log is None
            else f"Airflow, Spark and Dask write to {log}"
        )
    )
    with story.step(f"[1/7] bulk ingest {args.start}..{args.end} through Spark + GX") as step:
        bulk, code = cmd_ingest(argparse.Namespace(**{**vars(args), "source": None}), settings)
        step.result = (
            f"{bulk['published']} partitions x {len(bulk['tickers'])} tickers, "
            f"{len(bulk['quarantined'])} quarantined"
        )
    ok &= code == 0
    steps["bulk_ingest"] = {
        k: bulk[k]
        for k in ("first_date", "last_date", "published", "rows", "tickers", "quarantined", "seconds")
    }
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
                    INDENT + "DAG synthetic_generation (conditional GAN, ESG loss, fidelity)",
                ),
            )
            if "synthetic_generation" in _conf()
            else ()
        ),
        ("retraining", "[4/7] DAG retraining (Dask features, purged walk-forward, registry, promotion)"),
        ("daily_rebalance", "[5/7] DAG daily_rebalance (champion scores, mean-variance, SHAP, orders)"),
    ]
    runs = []
    for i, (dag_id, title) in enumerate(chain):
        with story.step(f"{title} for {day}") as step:
            if i == 0:  # the metadata DB, created on a fresh clone (a few seconds), counts to the first run
                apply_airflow_environment(settings)
                migrate_metadata_db()
            run = _run_dag(dag_id, day, _conf()[dag_id])
            step.result = run_summary(run)
        runs.append(run)
        ok &= run["state"] == "success"
    steps["dag_runs"] = runs
    with story.step(
        "[6/7] live: the execution worker trades the orders through Redis; "
        f"VaR sensor x{args.sensor_refreshes}"
    ) as step:
        live = _live(args, settings)
        step.result = live_summary(live)
    steps["live"] = live
    with story.step(
        "[7/7] reconciliation against lake marks, then the nightly report with the day's fills"
    ) as step:
        steps["reconcile"], steps["report"] = _reconcile_and_report(settings, day)
        breaks = steps["reconcile"].get("breaks")
        step.result = "reconciliation " + ("clean" if steps["reconcile"]["ok"] else f"BREAKS: {breaks}")
    ok &= steps["reconcile"]["ok"]
    status, _ = cmd_status(args, settings)
    steps["lake"] = status["lake"]
    steps["seconds"] = round(time.perf_counter() - started, 1)
    story.line(f"done in {steps['seconds']} s" + ("" if ok else ": something failed, see above"))
    return steps, (0 if ok else 1)


def run_summary(run: dict[str, Any]) -> str:
    """One line for a DAG run: its state, how many tasks succeeded, and any that did not."""
    tasks = run["tasks"]
    others = [f"{task}={state}" for task, state in tasks.items() if state != "success"]
    done = sum(state == "success" for state in tasks.values())
    return f"{run['state']}: {done}/{len(tasks)} tasks succeeded" + (
        f" ({', '.join(others)})" if others else ""
    )


def live_summary(live: dict[str, Any]) -> str:
    """One line for the live period: orders by final state, fills, the VaR figures, the kill switch."""
    states = ", ".join(f"{n} {state}" for state, n in sorted(live["order_states"].items()))
    switch = "SET" if live["kill_switch"] else "off"
    return (
        f"{live['orders_handled']} orders ({states or 'none'}), {live['fills']} fills, "
        f"VaR {live['var']:,.0f} CVaR {live['cvar']:,.0f}, kill switch {switch}"
    )


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
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="show Airflow's, Spark's and Dask's output on the terminal instead of in the log file",
    )
    # The story is on stderr; the human result is the report's and the log's paths, not the whole dict.
    p.set_defaults(func=cmd_demo, prints_own=True)
