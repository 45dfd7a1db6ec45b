"""
### market_data_ingest

Ingests one trading day of daily closes into the Parquet lake, behind data-quality gates.

1. **load_reference**: (re)writes the reference tables (illustrative ESG, par curve, bond book, FX;
   real factor-ETF prices) to `reference/`.
2. **extract**: the vendor feed's batch for the logical date goes to `_staging/` (skipped when the
   market was closed: weekends, holidays, or dates past the bundled feed's last day, 2022-12-28).
3. **quality_gate**: Great Expectations rules (schema, date skew, missing, duplicates, stale prices,
   outlier returns, cross-sectional skew). A failing batch is moved to `quarantine/prices/date=D/`
   with a readable report, and the task fails without retry: nothing downstream sees it.
4. **publish**: PySpark writes `prices/date=D/` (dynamic partition overwrite: re-runs replace the
   date) and emits the `lake_prices` Asset.
5. **record**: the summary goes to Redis (`qb:ingest:last`) through the Redis provider's hook.

Params: `date` (override the logical date) and `source` (a CSV/Parquet file of date, ticker, close in
place of the bundled real S&P 500 feed). Backfill: `qb backfill market_data_ingest --start D1 --end D2`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from quantbridge_airflow.assets import PRICES, REFERENCE


def _feed(source: str, universe: tuple[str, ...]) -> Any:
    from marketdata.feed import FileFeed, SkfolioFeed

    return FileFeed(source) if source else SkfolioFeed(universe)


@dag(
    dag_id="market_data_ingest",
    schedule="0 22 * * 1-5",  # after the US close, on weekdays; holidays are skipped by `extract`
    start_date=pendulum.datetime(1990, 1, 1, tz="UTC"),  # research backfills reach back to the feed's start
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ingestion", "lake", "quality"],
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Trading date to ingest (YYYY-MM-DD); empty = the run's logical date.",
        ),
        "source": Param(
            "",
            type="string",
            maxLength=4096,
            description="Optional CSV/Parquet file with columns date, ticker, close; "
            "empty = the bundled real S&P 500 feed.",
        ),
    },
)
def market_data_ingest() -> None:
    @task(outlets=[REFERENCE])
    def load_reference() -> dict[str, int]:
        from marketdata.reference import load_reference_tables
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings

        return load_reference_tables(Lake(airflow_settings().lake_root))

    @task
    def extract() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from marketdata.ingest import stage
        from quantbridge.errors import NoDataError
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings

        settings = airflow_settings()
        from quantbridge_airflow.run_date import run_date

        day = run_date(get_current_context())
        feed = _feed(get_current_context()["params"]["source"], settings.universe)
        try:
            staged = stage(Lake(settings.lake_root), feed, day, day)
        except NoDataError as exc:
            raise AirflowSkipException(str(exc)) from None
        return staged.as_dict()

    @task
    def quality_gate(staged: dict[str, Any]) -> dict[str, Any]:
        from datetime import date

        from airflow.sdk.exceptions import AirflowFailException

        from marketdata.ingest import gate
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings

        settings = airflow_settings()
        day = date.fromisoformat(staged["start"])
        report = gate(Lake(settings.lake_root), settings, day, day)
        if not report.passed:
            # A retry would see the same data: fail now, the batch is already in quarantine.
            raise AirflowFailException(report.to_text())
        return report.as_dict()

    @task(outlets=[PRICES])
    def publish(staged: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
        from datetime import date

        from marketdata.ingest import publish as publish_batch
        from marketdata.spark_writer import get_spark
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings

        settings = airflow_settings()
        day = date.fromisoformat(staged["start"])
        partitions = publish_batch(Lake(settings.lake_root), get_spark(settings.spark_master), day, day)
        return {
            "partitions": len(partitions),
            "rows": sum(partitions.values()),
            "last_date": max(partitions, default=None),
            "tickers": staged["tickers"],
            "source": staged["source"],
            "passed": verdict["passed"],
        }

    @task
    def record(summary: dict[str, Any]) -> dict[str, str]:
        from marketdata.ingest_record import record_ingest
        from quantbridge.redis_schema import RedisSchema
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client

        summary = {**summary, "run_id": get_current_context()["run_id"]}
        return record_ingest(redis_client(), RedisSchema(airflow_settings().redis_prefix), summary)

    staged = extract()
    verdict = quality_gate(staged)
    load_reference() >> staged
    record(publish(staged, verdict))


dag = market_data_ingest()

if __name__ == "__main__":
    dag.test()
