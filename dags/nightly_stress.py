"""
### nightly_stress

Revalues the whole book under macro scenarios every weeknight (after `market_data_ingest`), or on demand
with chosen scenarios from the trigger form:

- **rates**: QuantLib curve from the par table, the bond book repriced under the six BCBS d368 IRRBB
  scenarios plus user parallel shifts (delta EVE per position and in total);
- **fx**: FX exposures by Monte Carlo VaR under volatility multipliers and correlation one;
- **esg**: a scandal per name and sector black-outs of names under the ESG threshold;
- **historical**: the lake's worst 1-day and 10-day windows applied to today's equity book.

The grid runs on Dask (`QB_DASK_SCHEDULER`, in-process by default). Outcomes go to the ledger: the Parquet
partition `stress/date=D/` and the Redis stream `qb:stress:ledger`, each row with a unique id; re-running a
date replaces its rows. The `stress_ledger` Asset it emits schedules the retraining DAG (issue 6).
Bond book, curve, FX and ESG tables are ILLUSTRATIVE (see docs/stress.md). Alongside, **reconcile_execution**
compares the execution worker's positions and fills with the lake's marks and writes
`reports/date=D/reconciliation.json` (breaks listed with their cause). Last, **report** writes the
nightly report `reports/date=D/report.html` with its pictures: VaR history against P&L with exceptions, the
stress heat map, synthetic vs real distributions, execution cost by venue and data quality (`qb report
--date D` too).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from quantbridge_airflow.assets import STRESS_LEDGER


@dag(
    dag_id="nightly_stress",
    schedule="30 23 * * 1-5",  # after market_data_ingest (22:00)
    start_date=pendulum.datetime(1990, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["risk", "stress", "ledger"],
    default_args={"owner": "risk", "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Valuation date (YYYY-MM-DD); empty = the run's logical date.",
        ),
        "families": Param(
            ["rates", "fx", "esg", "historical"],
            type="array",
            items={"type": "string", "enum": ["rates", "fx", "esg", "historical"]},
            minItems=1,
            description="Scenario families to run.",
        ),
        "shock_scale": Param(
            1.0,
            type="number",
            minimum=0.1,
            maximum=5.0,
            description="Multiplier on the standard rate shocks and FX vol multipliers.",
        ),
        "confidence": Param(
            0.99,
            type="number",
            minimum=0.9,
            maximum=0.999,
            description="Confidence of the FX Monte Carlo VaR.",
        ),
        "paths": Param(
            50000,
            type="integer",
            minimum=1000,
            maximum=2000000,
            description="Monte Carlo paths for the FX scenarios.",
        ),
    },
)
def nightly_stress() -> None:
    @task
    def run_scenarios() -> dict[str, Any]:

        from airflow.sdk.exceptions import AirflowSkipException

        from quantbridge.errors import NoDataError
        from quantbridge.lake import Lake
        from quantbridge.positions import read_positions
        from quantbridge.redis_schema import RedisSchema
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client
        from quantbridge_airflow.run_date import run_date
        from risk.ledger import write_partition
        from risk.stress_night import load_inputs, run_stress

        context = get_current_context()
        params, settings = context["params"], airflow_settings()
        day = run_date(context)
        lake = Lake(settings.lake_root)
        positions = read_positions(redis_client(), RedisSchema(settings.redis_prefix))
        try:
            inputs = load_inputs(lake, day, positions)
        except NoDataError as exc:  # the night's prices never arrived: skip, do not retry for hours
            raise AirflowSkipException(str(exc)) from None
        frame = run_stress(
            inputs,
            params["families"],
            shock_scale=params["shock_scale"],
            confidence=params["confidence"],
            paths=params["paths"],
            seed=settings.seed,
            dask_scheduler=settings.dask_scheduler,
        )
        path = write_partition(lake, day, frame)
        return {"date": day.isoformat(), "rows": len(frame), "partition": str(path)}

    @task(outlets=[STRESS_LEDGER])
    def publish_ledger(run: dict[str, Any]) -> dict[str, Any]:
        from datetime import date

        from quantbridge.lake import Lake
        from quantbridge.redis_schema import RedisSchema
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client
        from risk.ledger import publish_stream, read_partition

        settings = airflow_settings()
        day = date.fromisoformat(run["date"])
        frame = read_partition(Lake(settings.lake_root), day)
        return {**run, **publish_stream(redis_client(), RedisSchema(settings.redis_prefix), day, frame)}

    @task
    def reconcile_execution() -> dict[str, Any]:
        """Execution positions/P&L vs lake marks; the report goes to reports/date=D/reconciliation.json."""
        import json

        from execution.reconcile import reconcile
        from quantbridge.lake import Lake
        from quantbridge.redis_schema import RedisSchema
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client
        from quantbridge_airflow.run_date import run_date

        context = get_current_context()
        settings = airflow_settings()
        day = run_date(context)
        lake = Lake(settings.lake_root)
        report = reconcile(redis_client(), RedisSchema(settings.redis_prefix), lake, day)
        path = lake.partition("reports", "date", day.isoformat()) / "reconciliation.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        return {"date": day.isoformat(), "breaks": len(report["breaks"]), "report": str(path)}

    @task
    def report() -> dict[str, Any]:
        """The nightly report from the lake and Redis, after the ledger and the reconciliation are written."""
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client
        from quantbridge_airflow.run_date import run_date
        from reporting import build_nightly_report

        settings = airflow_settings()
        day = run_date(get_current_context())
        path = build_nightly_report(
            Lake(settings.lake_root),
            day,
            redis_client(),
            prefix=settings.redis_prefix,
            model=settings.var_model,
            confidence=settings.var_confidence,
            window=settings.var_window,
        )
        return {"date": day.isoformat(), "report": str(path)}

    [publish_ledger(run_scenarios()), reconcile_execution()] >> report()


dag = nightly_stress()

if __name__ == "__main__":
    dag.test()
