"""Dependencies point one way: app -> dags -> plugins -> domain packages -> shared base; no allow-list."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

# Layers, lowest first. A module may import its own package and any package of a LOWER layer, never one of the
# same layer (siblings exchange plain data through the lake and Redis) nor one above. No exceptions.
LAYERS: list[set[str]] = [
    {"quantbridge"},  # the shared base: settings, schema, lake, messages, errors, Redis connection, audit
    {"marketdata"},  # lake ingestion and reference tables, read by every lane
    {"risk", "synthetic"},
    {"strategy", "execution"},
    {"reporting", "governance"},  # read every lane's output: the nightly report; policy releases and drift
    {"plugins", "quantbridge_airflow"},  # Airflow glue (hooks, operators, sensors, UI plugin)
    {"dags"},  # wiring only
    {"app"},  # the qb CLI, the demo, the local services: on top of everything
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
SCANNED = [
    "app",
    "quantbridge",
    "marketdata",
    "strategy",
    "risk",
    "execution",
    "synthetic",
    "reporting",
    "governance",
    "plugins",
    "dags",
]
AIRFLOW_FREE = [
    "quantbridge",
    "marketdata",
    "strategy",
    "risk",
    "execution",
    "synthetic",
    "reporting",
    "governance",
]


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports inside functions count too: a lazy import still runs back up
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("package", SCANNED)
def test_package_when_scanned_then_imports_only_its_own_package_and_lower_layers(package):
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        own = RANK[package]
        for module in _imports(path):
            top = module.split(".")[0]
            if top == package or top not in RANK or (package == "plugins" and top == "quantbridge_airflow"):
                continue
            if RANK[top] >= own:
                offenders.append(f"{path.relative_to(ROOT)}: imports {module} (layer {RANK[top]} >= {own})")
    assert offenders == []


@pytest.mark.parametrize("package", AIRFLOW_FREE)
def test_domain_package_when_scanned_then_no_airflow_import(package):
    offenders = [
        f"{path.relative_to(ROOT)}: {m}"
        for path in (ROOT / package).rglob("*.py")
        for m in _imports(path)
        if m.split(".")[0] == "airflow"
    ]
    assert offenders == []


def test_layers_when_listed_then_every_project_package_has_exactly_one_layer():
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert on_disk <= set(RANK), f"packages without a layer: {sorted(on_disk - set(RANK))}"
    assert sum(len(layer) for layer in LAYERS) == len(RANK)


def test_cli_modules_when_scanned_then_main_and_demo_do_not_import_each_other():
    demo = {m for m in _imports(ROOT / "app" / "cli" / "demo.py")}
    # main registers the demo's parser; the demo calls command modules, never main
    assert "app.cli.main" not in demo


def test_dag_files_when_scanned_then_heavy_libraries_are_not_imported_at_module_level():
    heavy = {
        "torch",
        "pyspark",
        "shap",
        "great_expectations",
        "QuantLib",
        "cupy",
        "dask",
        "sklearn",
        "skfolio",
        "matplotlib",
        "reporting",
    }
    offenders = []
    for path in (ROOT / "dags").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            )
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in heavy]
    assert offenders == []


def test_synthetic_package_when_scanned_then_never_touches_redis():
    offenders = []
    for path in (ROOT / "synthetic").rglob("*.py"):
        offenders += [
            f"{path.name}: {m}"
            for m in _imports(path)
            if m.split(".")[0] == "redis" or m in {"quantbridge.redis_client", "quantbridge.redis_schema"}
        ]
    assert offenders == []
