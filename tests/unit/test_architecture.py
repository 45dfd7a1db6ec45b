"""Dependencies point one way: domain packages and the shared package never import Airflow or the glue."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

DOMAIN = ["quantbridge", "marketdata", "strategy", "risk", "execution", "synthetic", "reporting"]
# The one entry point that runs DAGs in-process (qb backfill) must import Airflow.
ALLOWED = {ROOT / "quantbridge" / "cli" / "backfill.py"}


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("package", DOMAIN)
def test_domain_package_when_scanned_then_no_airflow_dags_or_plugins_import(package):
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        if path in ALLOWED:
            continue
        offenders += [f"{path.relative_to(ROOT)}: {m}" for m in _imports(path)
                      if m.split(".")[0] in {"airflow", "dags", "plugins", "quantbridge_airflow"}]
    assert offenders == []


def test_dag_files_when_scanned_then_heavy_libraries_are_not_imported_at_module_level():
    heavy = {"torch", "pyspark", "shap", "great_expectations", "QuantLib", "cupy", "dask", "sklearn", "skfolio",
             "matplotlib", "reporting"}
    offenders = []
    for path in (ROOT / "dags").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in heavy]
    assert offenders == []


def test_synthetic_package_when_scanned_then_never_touches_redis():
    offenders = []
    for path in (ROOT / "synthetic").rglob("*.py"):
        offenders += [f"{path.name}: {m}" for m in _imports(path)
                      if m.split(".")[0] == "redis" or m in {"quantbridge.state", "quantbridge.redis_schema"}]
    assert offenders == []
