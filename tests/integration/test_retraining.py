"""Retraining on real prices through dag.test(), and the Asset chain that schedules it."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from marketdata.feed import SkfolioFeed
from marketdata.ingest import ingest_range
from marketdata.reference import load_reference_tables
from quantbridge.errors import NoDataError
from quantbridge.lake import Lake
from quantbridge.settings import load_settings
from strategy.registry import champion
from strategy.training import retrain


@pytest.fixture(scope="module")
def history_lake(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("train-lake")
    ingest_range(load_settings({"lake_root": root}), SkfolioFeed(), date(2018, 1, 2), date(2019, 12, 31), spark=spark)
    load_reference_tables(Lake(root))
    return root


def test_retrain_when_two_years_of_prices_then_registered_with_out_of_sample_metrics(history_lake):
    out = retrain(Lake(history_lake), date(2019, 12, 31), window_days=400, folds=3)
    metrics = out["metrics"]
    assert metrics["folds"] == 3 and -1 < metrics["ic"] < 1 and 0 < metrics["hit_rate"] < 1
    assert metrics["end"] <= "2019-12-31" and out["rows"] > 5000
    with pytest.raises(NoDataError, match="ingest more history"):
        retrain(Lake(history_lake), date(2018, 3, 1))


def _run(dag_id: str, logical: datetime, conf: dict):
    from quantbridge.cli.backfill import _task_states, load_dag

    dag = load_dag(dag_id)
    run = dag.test(logical_date=logical, run_conf=conf)
    return str(run.state), _task_states(dag_id, run.run_id)


def test_retraining_dag_then_stress_asset_queues_the_next_retraining(airflow_db, history_lake, redis_client, monkeypatch):
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    monkeypatch.setenv("QB_LAKE_ROOT", str(history_lake))
    state, tasks = _run("retraining", datetime(2019, 12, 31, 23, tzinfo=timezone.utc),
                        {"model_kind": "gbm", "window_days": 400, "as_of": None})
    assert state == "success" and tasks == {"train": "success", "promote": "success"}
    assert champion(Lake(history_lake)) is not None
    from airflow.models.dag import DagModel
    from sqlalchemy import update

    with create_session() as session:  # as the UI toggle does: only unpaused DAGs are queued
        session.execute(update(DagModel).where(DagModel.dag_id == "retraining").values(is_paused=False))
    state, _ = _run("nightly_stress", datetime(2019, 12, 31, 23, 30, tzinfo=timezone.utc),
                    {"date": None, "families": ["esg"], "shock_scale": 1.0, "confidence": 0.99, "paths": 1000})
    assert state == "success"
    with create_session() as session:
        queued = session.execute(
            select(AssetModel.name).join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
            .where(AssetDagRunQueue.target_dag_id == "retraining")
        ).scalars().all()
    assert "stress_ledger" in queued  # what the scheduler turns into the next retraining run
