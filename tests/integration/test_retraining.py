"""Retraining on real prices through dag.test(), and the Asset chain that schedules it."""

from __future__ import annotations

from datetime import UTC, date, datetime

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
    ingest_range(
        load_settings({"lake_root": root}), SkfolioFeed(), date(2018, 1, 2), date(2019, 12, 31), spark=spark
    )
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
    from app.cli.backfill import _task_states, load_dag

    dag = load_dag(dag_id)
    run = dag.test(logical_date=logical, run_conf=conf)
    return str(run.state), _task_states(dag_id, run.run_id)


def test_retraining_dag_then_stress_asset_queues_the_next_retraining(
    airflow_db, history_lake, redis_client, monkeypatch
):
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    monkeypatch.setenv("QB_LAKE_ROOT", str(history_lake))
    state, tasks = _run(
        "retraining",
        datetime(2019, 12, 31, 23, tzinfo=UTC),
        {"model_kind": "gbm", "window_days": 400, "as_of": None},
    )
    assert state == "success" and tasks == {"train": "success", "promote": "success"}
    assert champion(Lake(history_lake)) is not None
    from airflow.models.dag import DagModel
    from sqlalchemy import update

    with create_session() as session:  # as the UI toggle does: only unpaused DAGs are queued
        session.execute(update(DagModel).where(DagModel.dag_id == "retraining").values(is_paused=False))
    state, _ = _run(
        "nightly_stress",
        datetime(2019, 12, 31, 23, 30, tzinfo=UTC),
        {"date": None, "families": ["esg"], "shock_scale": 1.0, "confidence": 0.99, "paths": 1000},
    )
    assert state == "success"
    with create_session() as session:
        queued = (
            session.execute(
                select(AssetModel.name)
                .join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
                .where(AssetDagRunQueue.target_dag_id == "retraining")
            )
            .scalars()
            .all()
        )
    assert "stress_ledger" in queued  # what the scheduler turns into the next retraining run


def test_daily_rebalance_after_retraining_then_orders_with_shap_on_stream_and_rerun_adds_only_missing(
    airflow_db, history_lake, redis_client, monkeypatch, capsys
):
    import json

    from app.cli.main import main
    from quantbridge.messages import SubmitOrder
    from quantbridge.redis_schema import RedisSchema

    monkeypatch.setenv("QB_LAKE_ROOT", str(history_lake))
    schema = RedisSchema("qb")
    state, _ = _run(
        "retraining",
        datetime(2019, 12, 31, 23, tzinfo=UTC),
        {"model_kind": "gbm", "window_days": 400, "as_of": None},
    )
    assert state == "success"
    conf = {"date": "2019-12-31", "portfolio_value": 1_000_000, "max_weight": 0.15, "max_turnover": 2.0}
    state, tasks = _run("daily_rebalance", datetime(2019, 12, 31, 23, 45, tzinfo=UTC), conf)
    assert state == "success", tasks
    entries = redis_client.xrange(schema.key("orders"))
    orders = [SubmitOrder.from_dict(fields) for _, fields in entries]  # valid under the worker's schema
    assert orders and all(o.order_id.startswith("2019-12-31:gbm_mv:") for o in orders)
    assert sum(o.quantity * o.reference_price for o in orders if o.side == "BUY") <= 1_000_000
    assert all(len(o.explanation) == 5 for o in orders)
    capsys.readouterr()  # drop the DAG runs' log lines
    assert main(["explain", orders[0].order_id, "--json", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["prediction"] == pytest.approx(
        record["base_value"] + sum(record["contributions"].values()), abs=1e-9
    )
    assert {t["feature"] for t in record["top"]} == set(orders[0].explanation)  # the top 5 by |contribution|
    state, _ = _run("daily_rebalance", datetime(2019, 12, 31, 23, 45, tzinfo=UTC), conf)
    assert state == "success" and redis_client.xlen(schema.key("orders")) == len(entries)
    assert main(["explain", "nope", "-q"]) == 2
    # Two orders never made it (as if the first run had stopped before them): a re-run adds exactly those.
    lost = [entry_id for entry_id, _ in entries[-2:]]
    redis_client.xdel(schema.key("orders"), *lost)
    redis_client.hdel(schema.key("explanations"), *[o.order_id for o in orders[-2:]])
    state, _ = _run("daily_rebalance", datetime(2019, 12, 31, 23, 45, tzinfo=UTC), conf)
    again = [SubmitOrder.from_dict(f) for _, f in redis_client.xrange(schema.key("orders"))]
    assert state == "success" and [o.order_id for o in again] == [o.order_id for o in orders]


def test_qb_evaluate_when_history_then_model_and_baselines_out_of_sample(history_lake, monkeypatch, capsys):
    import json

    from app.cli.main import main

    monkeypatch.setenv("QB_LAKE_ROOT", str(history_lake))
    assert main(["evaluate", "--folds", "3", "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["book"] for r in out["rows"]] == ["model", "momentum_21d", "equal_weight"]
    assert out["start"] == out["walk_forward"]["start"] and out["cost_bps"] == 10.0
    for row in out["rows"]:
        assert -1 < row["max_drawdown"] <= 0 and row["annual_volatility"] > 0
    assert main(["evaluate", "--folds", "3", "-q"]) == 0
    assert "equal_weight" in capsys.readouterr().out


def test_retrain_when_stress_weight_set_then_rows_in_the_ledger_windows_weigh_more(history_lake, tmp_path):
    import shutil

    from risk.ledger import write_partition
    from strategy.registry import get
    from strategy.training import stress_windows

    lake = Lake(tmp_path)
    shutil.copytree(Lake(history_lake).prices, lake.prices)
    ledger = __import__("pandas").DataFrame(
        {
            "id": ["x"],
            "date": ["2019-12-31"],
            "family": ["historical"],
            "scenario": ["worst_10d_2019-05-01_2019-05-15"],
            "position": ["TOTAL"],
            "base_value": [1.0],
            "shocked_value": [0.9],
            "change": [-0.1],
        }
    )
    write_partition(lake, date(2019, 12, 31), ledger)
    assert stress_windows(lake) == [(date(2019, 5, 1), date(2019, 5, 15))]
    plain = retrain(lake, date(2019, 12, 31), window_days=400, folds=3)
    weighted = retrain(lake, date(2019, 12, 31), window_days=400, folds=3, stress_weight=5.0)
    assert plain["stress_rows"] == 0 and weighted["stress_rows"] == 11 * 20  # 11 trading days x 20 names
    assert get(lake, weighted["version"]).meta["stress_windows"] == [["2019-05-01", "2019-05-15"]]
    assert weighted["metrics"] != plain["metrics"]  # the weights change what the model learns
