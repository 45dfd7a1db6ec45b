"""nightly_stress ends with the report task, downstream of the ledger and the reconciliation."""

from __future__ import annotations

from tests.conftest import ROOT


def test_nightly_stress_when_loaded_then_report_runs_last_after_ledger_and_reconcile():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / "nightly_stress.py")).dags["nightly_stress"]
    assert set(dag.task_ids) == {"run_scenarios", "publish_ledger", "reconcile_execution", "report"}
    report = dag.get_task("report")
    assert report.upstream_task_ids == {"publish_ledger", "reconcile_execution"}
    assert report.downstream_task_ids == set()
    assert report.retries >= 2
