"""The Grafana dashboard and the Prometheus rules name only metrics that the VaR sensor and the execution
worker really expose (both scraped over HTTP here), so neither can drift from the code."""

from __future__ import annotations

import json
import re
import threading
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from execution.worker import ExecutionWorker
from quantbridge.lake import Lake
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from risk.sensor import SensorConfig, SensorMetrics, VarSensor
from tests.conftest import ROOT, _free_port

SCHEMA = RedisSchema("qb")
DASHBOARD = ROOT / "ops" / "grafana" / "quantbridge.json"
# PromQL words and the label names the queries group by; every other identifier must be a metric.
PROMQL = {
    "sum",
    "max",
    "min",
    "avg",
    "by",
    "without",
    "rate",
    "increase",
    "histogram_quantile",
    "time",
    "and",
    "or",
    "unless",
    "on",
    "le",
    "outcome",
    "venue",
    "absent",
    "changes",
    "delta",
    "clamp_min",
    "bool",
    "offset",
    "count",
    "ignoring",
    "group_left",
    "group_right",
    "vector",
    "label_replace",
}


def _targets(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out += panel.get("targets", []) + _targets(panel.get("panels", []))
    return out


def _metric_names(expr: str) -> set[str]:
    bare = re.sub(r"\[[^\]]*\]|\{[^}]*\}|\"[^\"]*\"", " ", expr)  # ranges, matchers, strings
    return {w for w in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare) if w not in PROMQL}


def _scrape(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        body = reply.read().decode()
    return {s.name for family in text_string_to_metric_families(body) for s in family.samples}


@pytest.fixture
def exposed(redis_client, tmp_path) -> set[str]:
    """Sample names served by a real sensor refresh and a real worker that handled an order."""
    sensor_metrics = SensorMetrics()
    VarSensor(
        SensorConfig(limit=50_000), Lake(tmp_path), SCHEMA, lambda: redis_client, metrics=sensor_metrics
    ).refresh(redis_client)
    worker = ExecutionWorker(redis_client, SCHEMA, "g1", ["AAPL"], esg={}, marks={"AAPL": 100.0})
    redis_client.xadd(
        SCHEMA.key("orders"),
        SubmitOrder(
            order_id="g",
            ts="2026-01-05T14:30:00+00:00",
            strategy="t",
            ticker="AAPL",
            side="BUY",
            quantity=10.0,
            reference_price=100.0,
        ).to_dict(),
    )
    assert worker.run(threading.Event(), block_ms=50, max_orders=1) == 1
    ports = _free_port(), _free_port()
    servers = [sensor_metrics.serve(ports[0]), worker.metrics.serve(ports[1])]
    try:
        return _scrape(ports[0]) | _scrape(ports[1])
    finally:
        for server in servers:
            server.shutdown()


def test_dashboard_when_loaded_then_every_query_names_only_exposed_metrics(exposed):
    dashboard = json.loads(DASHBOARD.read_text())
    targets = _targets(dashboard["panels"])
    assert len(targets) >= 10
    used: set[str] = set()
    for t in targets:
        names = _metric_names(t["expr"])
        assert names, f"query {t['expr']!r} names no metric"
        used |= names
    assert used - exposed == set()
    # The panels the operators asked for are all there.
    assert {
        "qb_var",
        "qb_cvar",
        "qb_var_limit",
        "qb_kill_switch",
        "qb_worker_orders_total",
        "qb_worker_decision_seconds_bucket",
        "qb_worker_fees_total",
    } <= used


def test_dashboard_when_loaded_then_var_panel_draws_the_limit_as_a_red_threshold():
    panels = {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}
    var = panels["VaR and CVaR vs limit"]
    steps = var["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert (
        steps[-1]["color"] == "red"
        and var["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
    )
    limit_ref = next(t["refId"] for t in var["targets"] if t["expr"] == "qb_var_limit")
    config = next(t for t in var["transformations"] if t["id"] == "configFromData")["options"]
    assert config["configRefId"] == limit_ref and config["mappings"][0]["handlerKey"] == "threshold1"
    gauge_steps = panels["VaR / limit"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 1} in gauge_steps


def test_prometheus_config_when_loaded_then_scrapes_both_ports_and_rules_use_exposed_metrics(exposed):
    config = yaml.safe_load((ROOT / "ops" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"127.0.0.1:9108", "127.0.0.1:9109"}
    rules = yaml.safe_load((ROOT / "ops" / config["rule_files"][0]).read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert any("qb_var_limit" in e for e in exprs)
    for expr in exprs:  # `up` is Prometheus's own series per scrape target (absent once a target is gone)
        assert _metric_names(expr) - exposed - {"up"} == set(), expr
