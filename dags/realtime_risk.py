"""
### realtime_risk

The live risk loop as a long-running task: the **VaR sensor** reads positions from Redis
(`qb:positions`) and the latest prices from the lake every `interval_s` seconds, computes VaR/CVaR
(model `QB_VAR_MODEL`, default filtered historical, the model that passed the backtest), writes
`qb:risk:current` and the `qb:risk:history` stream, and when VaR exceeds `limit` sets the kill switch
`qb:risk:kill_switch` (cleared below `limit x QB_VAR_CLEAR_RATIO`), publishes on `qb:alerts` and calls the
task's alert callback; last, it writes its heartbeat `qb:heartbeat:var_sensor` (TTL `QB_RISK_STALE_S`). A
refresh that fails (no prices, an unknown ticker, ...) writes no heartbeat, is alerted (`var_sensor_error`)
and retried after a back-off: the task keeps running, and the worker rejects risk-increasing orders once
the figures are stale. Beside it, the **execution worker** consumes `qb:orders` (Rego policies, routing,
simulated venues, fills, audit chain) and obeys the kill switch.

Scheduled at the US open on weekdays for one session (`duration_s` = 23,400 s); trigger it from the UI
with `duration_s` = 0 to run until stopped, or any number of seconds. `qb var-sensor` runs the same loop
outside Airflow.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag

from quantbridge_airflow.execution_worker import ExecutionWorkerOperator
from quantbridge_airflow.var_sensor import VarSensorOperator

log = logging.getLogger(__name__)


def _page_risk_desk(context: Any, alert: dict[str, Any]) -> None:
    """Alert hook: the task log carries the alert; wire a pager or e-mail here."""
    log.error("risk alert for run %s: %s", context["run_id"], alert)


@dag(
    dag_id="realtime_risk",
    schedule="30 13 * * 1-5",  # the US open (13:30 UTC); the session runs for duration_s
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["risk", "live", "redis"],
    default_args={"owner": "risk", "retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "duration_s": Param(
            23400,
            type="integer",
            minimum=0,
            maximum=604800,
            description="Seconds to run (default 6.5 h, one US session); 0 = until stopped.",
        ),
        "interval_s": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=3600,
            description="Seconds between VaR refreshes; empty = QB_VAR_INTERVAL_S (30).",
        ),
        "limit": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            description="VaR limit in the portfolio currency (kill switch above it); "
            "empty = QB_VAR_LIMIT (50,000).",
        ),
    },
)
def realtime_risk() -> None:
    VarSensorOperator(
        task_id="var_sensor",
        duration_s="{{ params.duration_s }}",
        interval_s="{{ params.interval_s }}",
        limit="{{ params.limit }}",
        alert_callback=_page_risk_desk,
        execution_timeout=None,
    )
    ExecutionWorkerOperator(
        task_id="execution_worker", duration_s="{{ params.duration_s }}", execution_timeout=None
    )


dag = realtime_risk()

if __name__ == "__main__":
    dag.test()
