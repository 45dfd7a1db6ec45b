"""The Rego unit tests of policies/tests/ (opa test style) run for real with regopy: the project's own pass,
a broken rule or an insane limit fails the test that covers it, by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from execution import bundle as B
from execution.policy import POLICY_DIR
from execution.policy_tests import PolicyTestError, failed, run_policy_tests

RULES = ("restricted", "notional", "band", "position", "esg", "kill_switch", "stale_risk", "verdicts", "deny")


def work_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    shutil.copytree(POLICY_DIR, folder)
    return folder


def test_policy_tests_when_project_policies_then_every_test_passes_and_every_rule_is_covered():
    results = run_policy_tests(POLICY_DIR)
    assert failed(results) == []
    names = [name for name, _ in results]
    assert len(names) >= 25 and len(set(names)) == len(names)
    for rule in RULES:
        assert any(name.startswith(f"pretrade_test.test_{rule}_") for name in names), rule


def test_policy_tests_when_a_rule_is_broken_then_the_tests_covering_it_fail_by_name(tmp_path):
    folder = work_copy(tmp_path)
    rego = (folder / "pretrade.rego").read_text()
    # Off by one: an order exactly at the maximum notional would now be denied.
    (folder / "pretrade.rego").write_text(
        rego.replace("notional > limits.max_order_notional", "notional >= limits.max_order_notional")
    )
    assert failed(run_policy_tests(folder)) == ["pretrade_test.test_notional_when_at_max_then_not_denied"]


def test_policy_tests_when_limits_change_sanely_then_pass_and_when_insane_then_fail(tmp_path):
    base = B.build(POLICY_DIR, "alice", "base")
    tighter = B.with_limits(base, {"max_order_notional": 100_000, "max_position_shares": 5_000}, "alice", "x")
    assert failed(run_policy_tests(tighter)) == []  # the tests derive their figures from the limits
    broken = B.with_limits(base, {"price_band": 2}, "alice", "x")
    assert failed(run_policy_tests(broken)) == ["pretrade_test.test_limits_are_sane"]


def test_policy_tests_when_a_test_crashes_the_engine_then_an_error_names_the_cause(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    # regopy 1.5.2 dies (SIGSEGV) on this form: it must not take the caller down.
    (tests / "crash_test.rego").write_text(
        "package crash_test\nimport rego.v1\n"
        'test_crashes if { data.pretrade.allow with input as {"order": {"side": "BUY"}} }\n'
    )
    with pytest.raises(PolicyTestError, match="regopy.* died .*with input as"):
        run_policy_tests(POLICY_DIR, tests)


def test_policy_tests_when_one_rule_errors_then_the_others_still_judged(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "mixed_test.rego").write_text(
        "package mixed_test\nimport rego.v1\n"
        "test_fine if { data.limits.max_order_notional > 0 }\n"
        "test_false if { data.limits.max_order_notional < 0 }\n"
        "test_conflict := 1 if { true }\ntest_conflict := 2 if { true }\n"
        "todo_test_later if { false }\n"
    )
    assert run_policy_tests(POLICY_DIR, tests) == [
        ("mixed_test.test_fine", True),
        ("mixed_test.test_false", False),
        ("mixed_test.test_conflict", False),
    ]


@pytest.mark.parametrize(
    "source, match",
    [
        ("package empty\n", "no test_\\* rule"),
        ("test_x if { true }\n", "no package line"),
        ("package bad\ntest_x if { 1 = }\n", "do not compile"),
    ],
)
def test_policy_tests_when_no_test_or_bad_module_then_error(tmp_path, source, match):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "t.rego").write_text(source)
    with pytest.raises(PolicyTestError, match=match):
        run_policy_tests(POLICY_DIR, tests)


def test_policy_tests_when_tests_folder_missing_then_input_error(tmp_path):
    folder = work_copy(tmp_path)
    shutil.rmtree(folder / "tests")
    with pytest.raises(Exception, match="tests"):
        run_policy_tests(folder)
    assert json.loads((folder / "data.json").read_text())["limits"]  # the bundle itself is intact
