"""The Prometheus alert rules (ops/prometheus-rules.yml) proven with Prometheus' own ``promtool``: the files
load, every alert fires in the case written for it and stays quiet when healthy
(tests/ops/prometheus-rules.test.yml), and the unit tests catch a staleness rule with no ``absent()`` twin.

promtool comes with Debian's ``prometheus`` package, which ``make system`` installs; without it these tests
fail (they do not skip), so the rules can never go unproven unnoticed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

RULES = ROOT / "ops" / "prometheus-rules.yml"
CONFIG = ROOT / "ops" / "prometheus.yml"
RULE_TESTS = Path(__file__).with_name("prometheus-rules.test.yml")


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is not installed: `make system` installs it with Debian's prometheus package "
            "(apt-get install prometheus)"
        )
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def _alerts(rules_path: Path) -> set[str]:
    rules = yaml.safe_load(rules_path.read_text())
    return {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}


def test_rules_when_checked_by_promtool_then_rules_and_scrape_config_are_valid():
    rules = _promtool("check", "rules", RULES)
    config = _promtool("check", "config", CONFIG)

    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert config.returncode == 0, config.stdout + config.stderr


def test_rules_when_unit_tested_by_promtool_then_each_alert_fires_and_stays_quiet_as_written():
    result = _promtool("test", "rules", RULE_TESTS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_tests_when_read_then_every_alert_has_a_firing_and_a_quiet_case():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]

    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}

    alerts = _alerts(RULES)
    assert {
        "QbVarSensorDown",
        "QbVarSensorAbsent",
        "QbVarFiguresStale",
        "QbVarFiguresAbsent",
        "QbVarSensorErrors",
        "QbWorkerDown",
        "QbWorkerAbsent",
        "QbWorkerBatchErrors",
        "QbKillSwitchSet",
    } <= alerts
    assert firing == alerts and quiet == alerts


def test_rule_tests_when_staleness_rule_has_no_absent_twin_then_promtool_reports_the_gone_sensor(tmp_path):
    # Arrange: the rules as they were before the absent() twin, with the tests' relative layout.
    rules = yaml.safe_load(RULES.read_text())
    for rule in rules["groups"][0]["rules"]:
        if rule.get("alert") == "QbVarFiguresAbsent":
            rule["expr"] = "time() - max(qb_var_last_refresh_timestamp) > 120"
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "prometheus-rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "tests" / "ops").mkdir(parents=True)
    copy = tmp_path / "tests" / "ops" / RULE_TESTS.name
    copy.write_text(RULE_TESTS.read_text())

    result = _promtool("test", "rules", copy)

    report = result.stdout + result.stderr
    assert result.returncode != 0
    assert "name: sensor process down" in report and "alertname: QbVarFiguresAbsent" in report
