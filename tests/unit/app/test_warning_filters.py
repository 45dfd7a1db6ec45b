"""pyproject's filterwarnings: a deprecation raised from the project's own code fails the test run.

These tests run under the configured filters (pytest applies them around each test), so they fail when an
entry is dropped or its module pattern stops matching one of our packages, or starts matching another's.
"""

from __future__ import annotations

import types
import warnings

import pytest

DAG_MODULE = "unusual_prefix_" + "0" * 40 + "_market_data_ingest"  # how Airflow's DagBag names a DAG file
OURS = [
    "app.cli.demo",
    "quantbridge",
    "risk.var",
    "quantbridge_airflow.config",
    "dags.retraining",
    DAG_MODULE,
]
THEIRS = ["pandas.core.frame", "airflow.exceptions", "riskfolio.src", "application", "strategy_lib"]
CATEGORIES = [DeprecationWarning, PendingDeprecationWarning, FutureWarning]


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("module", OURS)
def test_filters_when_deprecation_attributed_to_a_project_module_then_it_is_an_error(module, category):
    with pytest.raises(category):
        warnings.warn_explicit("old API", category, "file.py", 1, module=module, registry={})


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("module", THEIRS)
def test_filters_when_deprecation_inside_a_third_party_module_then_ignored(module, category):
    with warnings.catch_warnings(record=True) as caught:  # keeps the filters, records what they let through
        warnings.warn_explicit("old API", category, "file.py", 1, module=module, registry={})

    assert caught == []


def test_filters_when_a_dag_file_imports_a_deprecated_airflow_name_then_the_import_fails():
    dag_file = types.ModuleType(DAG_MODULE)
    exec("def task():\n    from airflow.exceptions import AirflowFailException\n", dag_file.__dict__)

    # Airflow's DeprecatedImportWarning is a FutureWarning, attributed to the importing module.
    with pytest.raises(FutureWarning, match="airflow.sdk.exceptions"):
        dag_file.task()
