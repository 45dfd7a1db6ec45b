"""One month of the nightly chain as Airflow backfills on the real stack, driven over the REST API as a user
drives it (issue 13: "the same chain also runs as Airflow backfills of the DAGs ... for one month").

The history the strategy needs before the month (2019-01-02..2020-02-28) goes into the stack's lake through
the bulk path (`qb ingest`'s ``ingest_range``: one Spark job instead of 290 DAG runs), to keep the test
short; the month itself (2020-03-02..2020-03-31, 22 weekdays, no US market holiday) is ingested by the
``market_data_ingest`` backfill. Then, in the order the nightly chain runs: ``nightly_stress`` backfilled
over the month, ``retraining`` triggered once with a dagRun POST (an Asset-scheduled DAG cannot be
backfilled: the API says so), trained as of the day before the month so no March price leaks into the
model, and ``daily_rebalance`` backfilled over the month. Each backfill's runs are polled until finished
(the backfill's own ``completed_at`` lags up to 30 s and is checked at the end); a second backfill of the
same range with ``reprocess_behavior`` "none" must create no run and publish nothing.

The stack runs on PostgreSQL, with the scheduler preloading the tasks' imports and the tasks writing through a
Spark Connect server (see ``backfill_support``: without those, a month took well over 15 minutes on 2
cores). The phases' wall-clock seconds and where each DAG's time went (task run time against time queued)
are printed to stderr for docs/measured.md.
"""

from __future__ import annotations

import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from risk.ledger import partition_path
from strategy.registry import champion
from strategy.selection import read_decision
from tests.integration.backfill_support import (
    Api,
    airflow_stack,  # noqa: F401 - fixtures, used by name
    backfill_body,
    postgres_metadata_db,  # noqa: F401
    runs_by_date,
    spark_connect,  # noqa: F401
    start_backfill,
    task_states,
    timing,
    unpause,
    wait_for_completed,
    wait_for_dags,
    wait_for_run,
    wait_for_runs,
)

pytestmark = pytest.mark.slow

HISTORY = (date(2019, 1, 2), date(2020, 2, 28))
MONTH = (date(2020, 3, 2), date(2020, 3, 31))
CHAIN = ("market_data_ingest", "nightly_stress", "daily_rebalance")
#: Every Param as the trigger form sends it; the stress night's Monte Carlo is the demo's size (2 cores).
CONF: dict[str, dict[str, Any]] = {
    "market_data_ingest": {"date": None, "source": ""},
    "nightly_stress": {"date": None, "paths": 20000},
    "daily_rebalance": {"date": None, "max_turnover": 2.0},
}


def _weekdays(start: date, end: date) -> list[str]:
    days = (start + timedelta(n) for n in range((end - start).days + 1))
    return [d.isoformat() for d in days if d.weekday() < 5]


def _ingest_history(settings, spark) -> float:
    from marketdata.feed import SkfolioFeed
    from marketdata.ingest import ingest_range

    t0 = time.monotonic()
    result = ingest_range(settings, SkfolioFeed(settings.universe), *HISTORY, spark=spark)
    assert not result.quarantined and len(result.published) > 250
    return round(time.monotonic() - t0, 1)


def _finished(api: Api, dag_id: str) -> dict[str, tuple[str, str, str]]:
    """Run id, state and end of each date's run: what a re-run would change."""
    return {d: (r["dag_run_id"], r["state"], r["end_date"]) for d, r in runs_by_date(api, dag_id).items()}


def _order_ids(redis_client, settings) -> list[str]:
    return [f["order_id"] for _, f in redis_client.xrange(RedisSchema(settings.redis_prefix).key("orders"))]


def test_backfill_over_rest_when_one_month_of_the_chain_then_every_date_ran_once_and_published(
    airflow_stack,  # noqa: F811 - the fixture imported above
    settings,
    redis_client,
    spark,
):
    def lap(name: str, value: Any) -> None:
        # To the real stderr: the stack fixture captures stdout/stderr (capsys) for the `qb airflow` JSON.
        print(f"[backfill over REST] {name}: {value}", file=sys.__stderr__, flush=True)

    lap("stack_start", airflow_stack["start_seconds"])
    lake, schema = Lake(settings.lake_root), RedisSchema(settings.redis_prefix)
    lap("history_ingest", _ingest_history(settings, spark))
    api = Api(airflow_stack["url"])
    assert api.call("GET", "/api/v2/backfills?dag_id=market_data_ingest")[0] == 401  # no token, no backfill
    api.login("admin", airflow_stack["password"])
    t0 = time.monotonic()
    wait_for_dags(api, {*CHAIN, "retraining"})
    lap("dags_parsed", round(time.monotonic() - t0, 1))
    month = _weekdays(*MONTH)
    assert len(month) == 22

    # An Asset-scheduled DAG has no intervals to backfill: refused before anything is created.
    status, answer = api.call("POST", "/api/v2/backfills", backfill_body("retraining", *MONTH, {}, "none", 1))
    assert status == 422 and "non-periodic" in str(answer), (status, answer)

    # market_data_ingest, then nightly_stress: a backfill each over the month, until every run finished.
    first: dict[str, int] = {}
    for dag_id in CHAIN[:2]:
        t0 = time.monotonic()
        unpause(api, dag_id)
        created, dates = start_backfill(api, backfill_body(dag_id, *MONTH, CONF[dag_id], "none", 10))
        assert dates == month, dag_id  # the dry run: one run per weekday, no market-holiday in March 2020
        first[dag_id] = created["id"]
        wait_for_runs(api, dag_id, month)
        lap(dag_id, round(time.monotonic() - t0, 1))
    prices = [d.isoformat() for d in lake.price_dates() if MONTH[0] <= d <= MONTH[1]]
    assert prices == month  # one partition per trading day of the month, written by the DAG runs
    assert all(partition_path(lake, date.fromisoformat(d)).is_file() for d in month)
    assert {f["date"] for _, f in redis_client.xrange(schema.key("stress_ledger"))} == set(month)

    # retraining once, as of the eve of the month (no March close in the training window).
    t0 = time.monotonic()
    unpause(api, "retraining")
    run = api.ok(
        "POST",
        "/api/v2/dags/retraining/dagRuns",
        {"logical_date": None, "conf": {"model_kind": "gbm", "window_days": 750, "as_of": "2020-02-28"}},
    )
    assert wait_for_run(api, "retraining", run["dag_run_id"])["state"] == "success"
    lap("retraining", round(time.monotonic() - t0, 1))

    t0 = time.monotonic()
    unpause(api, "daily_rebalance")
    body = backfill_body("daily_rebalance", *MONTH, CONF["daily_rebalance"], "none", 10)
    first["daily_rebalance"] = start_backfill(api, body)[0]["id"]
    wait_for_runs(api, "daily_rebalance", month)
    lap("daily_rebalance", round(time.monotonic() - t0, 1))

    # Every logical date of the month ran exactly once per DAG, as a backfill run, and every task succeeded.
    for dag_id in CHAIN:
        runs = runs_by_date(api, dag_id)
        assert sorted(runs) == month, dag_id
        assert {r["run_type"] for r in runs.values()} == {"backfill"}, dag_id
        assert {d: r["state"] for d, r in runs.items() if r["state"] != "success"} == {}, dag_id
        tasks = task_states(api, dag_id)
        assert {d: t for d, t in tasks.items() if set(t.values()) != {"success"}} == {}, dag_id
        lap(f"{dag_id} tasks", timing(api, dag_id))

    # The rebalance published orders dated on each day of the month, all from the one book decided before it:
    # the model trained on February's eve if it earned its place, else the best baseline (decision.json;
    # without a decision, the champion, else equal weight).
    ids = _order_ids(redis_client, settings)
    assert len(ids) == len(set(ids))
    assert sorted({i.split(":")[0] for i in ids}) == month
    model, decision = champion(lake), read_decision(lake)
    assert model is None or model.meta["data_window"][1][:10] <= "2020-02-28"  # no March close in it
    assert decision is None or decision["as_of"] <= "2020-02-28"
    if decision is not None and decision["trade"] != "model":
        book = f"baseline-{decision['trade']}"
    else:
        book = model.version if model is not None else "baseline-equal_weight"
    assert {i.split(":")[-1] for i in ids} == {book}

    # The same range again, reprocess "none": nothing to run (dry run), no run created, nothing published.
    t0 = time.monotonic()
    assert all(b["completed_at"] for b in wait_for_completed(api, list(first.values())))
    ledger = redis_client.xlen(schema.key("stress_ledger"))
    again = []
    for dag_id in CHAIN:
        before = _finished(api, dag_id)
        created, dates = start_backfill(api, backfill_body(dag_id, *MONTH, CONF[dag_id], "none", 10))
        assert dates == [], dag_id
        again.append(created["id"])
        assert _finished(api, dag_id) == before, dag_id
    assert all(b["completed_at"] for b in wait_for_completed(api, again))
    assert _order_ids(redis_client, settings) == ids
    assert redis_client.xlen(schema.key("stress_ledger")) == ledger
    assert {dag_id: len(runs_by_date(api, dag_id)) for dag_id in CHAIN} == dict.fromkeys(CHAIN, len(month))
    lap("second_backfills", round(time.monotonic() - t0, 1))
    scheduler_log = Path(airflow_stack["home"], "logs", "scheduler.out").read_text(errors="replace")
    lap("scheduler preload", [line for line in scheduler_log.splitlines() if "preloaded in" in line])
