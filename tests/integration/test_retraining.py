"""Retraining on real prices through dag.test() (train, the promotion rule, the book decision), the rebalance
that trades the decided book, and the Asset chain that schedules retraining."""

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
from strategy.selection import read_decision
from strategy.training import retrain

#: The books of the evaluation and of the book decision: the model and the four baselines.
BOOKS = ["model", "equal_weight", "min_variance", "hrp", "momentum_12_1"]


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Gradient boosting's OpenMP threads crawl on a busy 2-core machine: one thread keeps these tests fast
    and their results the same (as tests/dags/test_retraining_rebalance_dags.py)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


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
    assert state == "success" and tasks == {"train": "success", "promote": "success", "decide": "success"}
    lake = Lake(history_lake)
    decision = read_decision(lake)  # the champion, or the best baseline when no model earned its place
    assert decision is not None and decision["as_of"] == "2019-12-31" and decision["trade"] in BOOKS
    current = champion(lake)
    assert decision["champion"] == (current.version if current else None) and decision["reason"]
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


def test_daily_rebalance_after_retraining_then_the_decided_book_trades_and_rerun_adds_only_missing(
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
    decision = read_decision(Lake(history_lake))
    assert decision is not None
    prefix = "gbm_mv" if decision["trade"] == "model" else f"baseline_{decision['trade']}"
    conf = {"date": "2019-12-31", "portfolio_value": 1_000_000, "max_weight": 0.15, "max_turnover": 2.0}
    state, tasks = _run("daily_rebalance", datetime(2019, 12, 31, 23, 45, tzinfo=UTC), conf)
    assert state == "success", tasks
    entries = redis_client.xrange(schema.key("orders"))
    orders = [SubmitOrder.from_dict(fields) for _, fields in entries]  # valid under the worker's schema
    assert orders and all(o.order_id.startswith(f"2019-12-31:{prefix}:") for o in orders)
    assert sum(o.quantity * o.reference_price for o in orders if o.side == "BUY") <= 1_000_000
    capsys.readouterr()  # drop the DAG runs' log lines
    assert main(["explain", orders[0].order_id, "--json", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    if decision["trade"] == "model":
        _assert_shap(orders, record)
    else:  # a baseline's orders carry no SHAP; their record names the baseline and the decision's reason
        assert all(o.explanation == {} for o in orders)
        assert record["baseline"] == decision["trade"] and record["reason"] == decision["reason"]
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


def _assert_shap(orders: list, record: dict) -> None:
    """The model's orders: five top contributions each, the stored SHAP values sum to the prediction."""
    assert all(len(o.explanation) == 5 for o in orders)
    assert record["prediction"] == pytest.approx(
        record["base_value"] + sum(record["contributions"].values()), abs=1e-9
    )
    assert {t["feature"] for t in record["top"]} == set(orders[0].explanation)  # the top 5 by |contribution|


def test_daily_rebalance_when_a_champion_is_set_by_hand_before_any_decision_then_the_model_trades_with_shap(
    airflow_db, history_lake, redis_client, monkeypatch, capsys, tmp_path
):
    """The model's path (scores, mean-variance weights, SHAP), which the rule keeps from trading on this
    lake: an operator's champion (registry.set_champion) on a registry that holds no book decision yet."""
    import json
    import shutil

    from app.cli.main import main
    from quantbridge.messages import SubmitOrder
    from quantbridge.redis_schema import RedisSchema
    from strategy.registry import get, set_champion

    lake = Lake(tmp_path / "lake")
    shutil.copytree(Lake(history_lake).prices, lake.prices)
    load_reference_tables(lake)
    registered = retrain(lake, date(2019, 12, 31), window_days=400, folds=3, version="by-hand")
    set_champion(lake, get(lake, registered["version"]), "fixture: the model's orders and SHAP")
    assert read_decision(lake) is None
    monkeypatch.setenv("QB_LAKE_ROOT", str(lake.root))
    conf = {"date": "2019-12-31", "portfolio_value": 1_000_000, "max_weight": 0.15, "max_turnover": 2.0}
    state, tasks = _run("daily_rebalance", datetime(2019, 12, 31, 23, 45, tzinfo=UTC), conf)
    assert state == "success", tasks
    orders = [SubmitOrder.from_dict(f) for _, f in redis_client.xrange(RedisSchema("qb").key("orders"))]
    assert orders and all(o.order_id.startswith("2019-12-31:gbm_mv:") for o in orders)
    assert {o.model_version for o in orders} == {"by-hand"}
    capsys.readouterr()  # drop the DAG run's log lines
    assert main(["explain", orders[0].order_id, "--json", "-q"]) == 0
    _assert_shap(orders, json.loads(capsys.readouterr().out))


def test_qb_evaluate_when_history_then_model_and_baselines_out_of_sample(history_lake, monkeypatch, capsys):
    import json

    from app.cli.main import main

    monkeypatch.setenv("QB_LAKE_ROOT", str(history_lake))
    assert main(["evaluate", "--folds", "3", "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["book"] for r in out["rows"]] == BOOKS
    from strategy.evaluation import HISTORY

    dates = Lake(history_lake).price_dates()  # every book decides only with HISTORY closes behind it
    assert out["start"] >= max(out["walk_forward"]["start"], dates[HISTORY].isoformat())
    assert "cost_bps" not in out
    costs = out["costs"]  # the execution lane's model: cheapest venue's half spread + fee, sqrt impact
    assert costs["spread_fee_bps"] > 0 and costs["book_value"] == 1_000_000
    for row in out["rows"]:
        assert -1 < row["max_drawdown"] <= 0 and row["annual_volatility"] > 0
        assert row["annual_turnover"] > 0 and row["annual_cost"] > 0  # every book pays to trade
    assert out["decision"]["trade"] in BOOKS and out["decision"]["reason"]
    assert main(["evaluate", "--folds", "3", "-q"]) == 0
    text = capsys.readouterr().out
    assert "momentum_12_1" in text and f"decision: {out['decision']['trade']}" in text


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
    # no holdout: the window's 2019-05 rows would otherwise be held out of training (the last 250 dates)
    plain = retrain(lake, date(2019, 12, 31), window_days=400, folds=3, holdout_days=0)
    weighted = retrain(lake, date(2019, 12, 31), window_days=400, folds=3, stress_weight=5.0, holdout_days=0)
    assert plain["holdout"]["days"] == weighted["holdout"]["days"] == 0
    assert plain["stress_rows"] == 0 and weighted["stress_rows"] == 11 * 20  # 11 trading days x 20 names
    assert get(lake, weighted["version"]).meta["stress_windows"] == [["2019-05-01", "2019-05-15"]]
    assert weighted["metrics"] != plain["metrics"]  # the weights change what the model learns
