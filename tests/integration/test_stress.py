"""Nightly stress end to end: Dask grid, QuantLib, ledger in the lake and on a real Redis stream, the DAG."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from app.cli.main import main
from marketdata.feed import SkfolioFeed
from marketdata.ingest import ingest_range
from marketdata.reference import load_reference_tables
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import load_settings
from risk.ledger import publish_stream, read_partition, stream_rows, write_partition
from risk.stress_night import FAMILIES, load_inputs, run_stress, summary

DAY = date(2020, 12, 31)
SCHEMA = RedisSchema("qb")


@pytest.fixture(scope="module")
def stress_lake(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("stress-lake")
    settings = load_settings({"lake_root": root})
    ingest_range(settings, SkfolioFeed(), date(2019, 6, 3), DAY, spark=spark)
    load_reference_tables(Lake(root))
    return root


def test_run_stress_when_all_families_then_unique_ids_totals_and_worst_first(stress_lake):
    frame = run_stress(load_inputs(Lake(stress_lake), DAY, {"AAPL": 100, "XOM": 300}), paths=5_000)
    assert set(frame["family"]) == set(FAMILIES) and frame["id"].is_unique
    assert frame["id"].str.startswith("2020-12-31:").all()
    top = summary(frame)
    assert list(top["change"]) == sorted(top["change"])
    rates = frame[(frame["family"] == "rates") & (frame["position"] != "TOTAL")]
    assert set(rates["position"]) == {"UST-2Y", "UST-5Y", "UST-10Y", "UST-30Y", "CORP-A-7Y", "CORP-BBB-3Y"}
    hist = frame[(frame["family"] == "historical") & (frame["position"] == "TOTAL")]
    assert any("2020-03" in s for s in hist["scenario"])  # the lake's worst window in 2019-2020 is March 2020
    with pytest.raises(Exception, match="families"):
        run_stress(load_inputs(Lake(stress_lake), DAY, {}), ["weather"])


def test_ledger_when_date_written_twice_then_replaced_not_duplicated(stress_lake, redis_client, tmp_path):
    lake = Lake(tmp_path)
    frame = run_stress(load_inputs(Lake(stress_lake), DAY, {}), ["esg"], paths=2_000)
    write_partition(lake, DAY, frame)
    first = publish_stream(redis_client, SCHEMA, DAY, frame)
    other_day = frame.assign(date="2020-12-30", id=frame["id"].str.replace("2020-12-31", "2020-12-30"))
    publish_stream(redis_client, SCHEMA, date(2020, 12, 30), other_day)
    write_partition(lake, DAY, frame)
    again = publish_stream(redis_client, SCHEMA, DAY, frame)
    assert first == {"removed": 0, "added": len(frame)} and again == {
        "removed": len(frame),
        "added": len(frame),
    }
    assert len(stream_rows(redis_client, SCHEMA, DAY)) == len(frame)
    assert len(stream_rows(redis_client, SCHEMA)) == 2 * len(frame)  # the other date is untouched
    pd.testing.assert_frame_equal(read_partition(lake, DAY), frame)
    assert {r["id"] for r in stream_rows(redis_client, SCHEMA, DAY)} == set(frame["id"])


def test_nightly_stress_dag_when_run_for_a_date_then_partition_and_ledger_entries(
    airflow_db, stress_lake, redis_client, monkeypatch
):
    from app.cli.backfill import _task_states, load_dag

    monkeypatch.setenv("QB_LAKE_ROOT", str(stress_lake))
    dag = load_dag("nightly_stress")
    conf = {"date": None, "families": ["rates", "esg"], "shock_scale": 1.0, "confidence": 0.99, "paths": 2000}
    logical = datetime(2020, 12, 31, 23, 30, tzinfo=UTC)
    run = dag.test(logical_date=logical, run_conf=conf)
    assert str(run.state) == "success", _task_states("nightly_stress", run.run_id)
    frame = read_partition(Lake(stress_lake), DAY)
    assert set(frame["family"]) == {"rates", "esg"}
    assert len(stream_rows(redis_client, SCHEMA, DAY)) == len(frame)
    report = json.loads(
        (Lake(stress_lake).partition("reports", "date", "2020-12-31") / "reconciliation.json").read_text()
    )
    assert report["ok"] and report["date"] == "2020-12-31"
    run = dag.test(logical_date=logical, run_conf=conf)  # idempotent re-run
    assert str(run.state) == "success"
    assert len(stream_rows(redis_client, SCHEMA, DAY)) == len(frame)


def test_qb_stress_when_user_book_then_per_scenario_base_shocked_change(
    stress_lake, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("QB_LAKE_ROOT", str(stress_lake))
    monkeypatch.setenv("QB_REDIS_URL", "redis://127.0.0.1:1/0")  # no Redis: the demo book is used
    book = tmp_path / "my_book.csv"
    book.write_text(
        "id,face,coupon_rate,maturity_date,coupon_frequency,currency\nMINE-5Y,1000000,0.05,2025-12-31,2,USD\n"
    )
    assert (
        main(["stress", "--date", "2020-12-31", "--book", str(book), "--scenarios", "rates", "--json", "-q"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    scenarios = {s["scenario"]: s for s in out["scenarios"]}
    assert set(scenarios) == {
        "parallel_up",
        "parallel_down",
        "steepener",
        "flattener",
        "short_up",
        "short_down",
        "parallel_+100bp",
        "parallel_-100bp",
    }
    up = scenarios["parallel_up"]
    assert [p["position"] for p in up["positions"]] == ["MINE-5Y"]
    assert up["change"] == pytest.approx(up["shocked_value"] - up["base_value"]) and up["change"] < 0
    krd = out["key_rate_durations"]["MINE-5Y"]
    assert max(krd, key=krd.get) == "5.00y" and 3.5 < sum(krd.values()) < 5  # a 5-year bond
    book.write_text(
        "id,face,coupon_rate,maturity_date,coupon_frequency,currency\nX,1,0.05,2025-12-31,7,USD\n"
    )
    assert main(["stress", "--date", "2020-12-31", "--book", str(book), "--scenarios", "rates", "-q"]) == 2
    assert "coupon_frequency" in capsys.readouterr().err
    assert main(["stress", "--date", "2020-12-31", "--scenarios", "esg", "-q"]) == 0
    assert "esg_worst_scandal" in capsys.readouterr().out


def test_load_inputs_when_night_lies_weeks_after_the_lakes_last_prices_then_no_data_error(stress_lake):
    from quantbridge.errors import NoDataError

    load_inputs(Lake(stress_lake), date(2021, 1, 7), {})  # a week after the last close: still stressed
    with pytest.raises(NoDataError, match="last prices are of 2020-12-31, 24 days before 2021-01-24"):
        load_inputs(Lake(stress_lake), date(2021, 1, 24), {})
