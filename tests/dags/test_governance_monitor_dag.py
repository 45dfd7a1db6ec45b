"""governance_monitor: four measurements and the limits in parallel, then the pure decision, then the
proposal last; nightly after the other nightly DAGs."""

from __future__ import annotations

import json

from tests.conftest import ROOT


def _dag(name: str = "governance_monitor"):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{name}.py"))
    assert bag.import_errors == {}
    return bag.dags[name]


def test_governance_monitor_when_loaded_then_measures_feed_decide_and_propose_runs_last():
    dag = _dag()
    measures = {"measure_drift", "measure_ic", "measure_var", "measure_costs", "read_limits"}
    assert set(dag.task_ids) == measures | {"decide", "propose"}
    assert dag.get_task("decide").upstream_task_ids == measures
    assert dag.get_task("propose").upstream_task_ids == measures | {"decide"}
    assert dag.get_task("propose").downstream_task_ids == set()
    for task_id in measures:
        assert dag.get_task(task_id).upstream_task_ids == set()
    assert all(task.retries >= 2 for task in dag.tasks)


def test_governance_monitor_when_scheduled_then_weeknights_after_rebalance_without_catchup():
    dag = _dag()
    assert dag.catchup is False and dag.max_active_runs == 1
    minute, hour, _, _, days = str(dag.schedule).split()
    for other in ("market_data_ingest", "nightly_stress", "daily_rebalance"):
        o_minute, o_hour, _, _, o_days = str(_dag(other).schedule).split()
        assert days == o_days and (int(hour), int(minute)) > (int(o_hour), int(o_minute)), other
    assert dag.params["date"] is None
    assert "date" in dag.params.get_param("date").schema["format"]


def test_governance_monitor_when_run_on_a_planted_lake_then_propose_returns_a_stored_revision_and_reason(
    airflow_db, settings, redis_client, monkeypatch, tmp_path
):
    from datetime import UTC, datetime

    from app.cli.backfill import _task_states, load_dag
    from execution.bundle import verify
    from governance.monitor import proposal_path
    from quantbridge.redis_schema import RedisSchema
    from quantbridge.signing import KeyRing
    from tests.integration.test_governance_monitor import BOOK, DRIFTED, _write_lake

    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("QB_VAR_MODEL", "historical")  # the planted crashes are sized for a 100-day history
    monkeypatch.setenv("QB_VAR_WINDOW", "100")
    lake, dates = _write_lake(settings.lake_root, planted=True, oos_ic=0.5)
    redis_client.hset(RedisSchema(settings.redis_prefix).key("positions"), mapping=BOOK)
    day = dates[-1]
    dag = load_dag("governance_monitor")

    run = dag.test(
        logical_date=datetime(day.year, day.month, day.day, 23, 55, tzinfo=UTC), run_conf={"date": str(day)}
    )

    assert str(run.state) == "success", _task_states(dag.dag_id, run.run_id)
    document = json.loads(proposal_path(lake, day).read_text())
    stored = verify(lake, document["revision"], KeyRing(tmp_path / "keys", "policy"), require_approvals=False)
    assert DRIFTED in stored.data["limits"]["restricted"]
    assert stored.data["limits"]["max_order_notional"] == 187500
    assert document["findings"]["var"]["exceptions"] >= 5
    assert document["demote"]["model_version"] == "v1"
    assert redis_client.get(RedisSchema(settings.redis_prefix).key("policy_active")) is None
