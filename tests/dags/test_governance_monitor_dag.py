"""governance_monitor: four measurements and the limits in parallel, then the pure decision, then the
proposal last; nightly after the other nightly DAGs."""

from __future__ import annotations

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
