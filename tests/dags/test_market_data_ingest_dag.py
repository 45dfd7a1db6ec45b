"""The market_data_ingest DAG run for real through dag.test(): SQLite metadata DB, Spark, GX, Redis."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from marketdata.feed import SkfolioFeed
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema


@pytest.fixture(scope="module")
def dag(airflow_db):
    from app.cli.backfill import load_dag

    return load_dag("market_data_ingest")


def _run(dag, day: date, **conf):
    from app.cli.backfill import _task_states

    # Every Param is sent, as the UI's trigger form does (dag.test keeps a previous run's conf otherwise).
    conf = {"date": None, "source": "", **conf}
    run = dag.test(logical_date=datetime(day.year, day.month, day.day, 22, tzinfo=UTC), run_conf=conf)
    return str(run.state), _task_states(dag.dag_id, run.run_id)


def test_dag_when_three_trading_days_then_partitions_published_and_summary_in_redis(
    dag, settings, spark, redis_client
):
    lake = Lake(settings.lake_root)
    for day in (date(2021, 6, 1), date(2021, 6, 2), date(2021, 6, 3)):
        state, tasks = _run(dag, day)
        assert state == "success", tasks
        assert set(tasks.values()) == {"success"}
    assert lake.price_dates() == [date(2021, 6, 1), date(2021, 6, 2), date(2021, 6, 3)]
    pd.testing.assert_frame_equal(lake.read_prices(), SkfolioFeed().fetch(date(2021, 6, 1), date(2021, 6, 3)))
    assert lake.reference("esg").is_file()
    last = redis_client.hgetall(RedisSchema(settings.redis_prefix).ingest_last)
    assert (
        last["last_date"] == "2021-06-03" and last["rows"] == "20" and last["run_id"].startswith("manual__")
    )


def test_dag_when_same_date_rerun_then_partition_byte_identical(dag, settings, spark, redis_client):
    day = date(2021, 6, 4)
    _run(dag, day)
    part = Lake(settings.lake_root).price_partition(day) / "part-00000.snappy.parquet"
    first = part.read_bytes()
    assert _run(dag, day)[0] == "success"
    assert part.read_bytes() == first


def test_dag_when_weekend_then_extract_skips_and_nothing_published(dag, settings, spark, redis_client):
    state, tasks = _run(dag, date(2021, 6, 5))
    assert tasks["extract"] == "skipped" and tasks["publish"] == "skipped"
    assert Lake(settings.lake_root).price_dates() == []


def test_dag_when_source_param_has_corrupted_batch_then_gate_fails_and_batch_is_quarantined(
    dag, settings, spark, redis_client, tmp_path
):
    day = date(2021, 6, 8)
    batch = SkfolioFeed().fetch(day, day)
    batch.loc[batch["ticker"] == "BAC", "close"] = None
    path = tmp_path / "vendor.parquet"
    batch.to_parquet(path)
    state, tasks = _run(dag, day, source=str(path))
    assert state == "failed"
    assert tasks["quality_gate"] == "failed" and tasks["publish"] == "upstream_failed"
    lake = Lake(settings.lake_root)
    assert lake.price_dates() == [] and lake.quarantined_dates() == [day]
    report = json.loads((lake.quarantine(day) / "report.json").read_text())
    assert report["violations"] == [
        {"rule": "missing", "date": "2021-06-08", "ticker": "BAC", "column": "close", "value": None}
    ]


def test_dag_when_date_param_given_then_it_overrides_the_logical_date(dag, settings, spark, redis_client):
    state, tasks = _run(dag, date(2021, 6, 5), date="2021-06-09")
    assert state == "success", tasks
    assert Lake(settings.lake_root).price_dates() == [date(2021, 6, 9)]


def test_dag_when_settings_variable_set_then_tasks_use_it(dag, settings, spark, redis_client, monkeypatch):
    # A real Airflow Variable, from the environment-variables secrets backend.
    monkeypatch.setenv("AIRFLOW_VAR_QUANTBRIDGE_SETTINGS", json.dumps({"universe": ["AAPL", "MSFT"]}))
    state, tasks = _run(dag, date(2021, 6, 10))
    assert state == "success", tasks
    assert sorted(Lake(settings.lake_root).read_prices()["ticker"]) == ["AAPL", "MSFT"]


def test_dag_when_settings_variable_not_json_then_run_fails_naming_the_variable(
    dag, settings, spark, redis_client, monkeypatch, capfd
):
    monkeypatch.setenv("AIRFLOW_VAR_QUANTBRIDGE_SETTINGS", "{max_stale_days: 3")
    state, tasks = _run(dag, date(2021, 6, 11))
    assert state == "failed" and tasks["load_reference"] == "failed" and tasks["extract"] == "upstream_failed"
    logged = capfd.readouterr()
    assert "Airflow Variable quantbridge_settings" in logged.out + logged.err
    monkeypatch.setenv("AIRFLOW_VAR_QUANTBRIDGE_SETTINGS", "[1, 2]")
    from airflow.sdk.exceptions import AirflowFailException

    from quantbridge_airflow.config import airflow_settings

    with pytest.raises(AirflowFailException, match="a JSON object"):
        airflow_settings()
