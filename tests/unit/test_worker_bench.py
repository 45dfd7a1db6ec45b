"""The worker bench's pure helpers: the core layouts of its modes and the profile's shares by part."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from bench.worker_bench import OTHER, cpu_s, layout, part_of, profile_counts, shares_table

LOOP = "Thread.run (threading.py:982);ExecutionWorker.run (execution/worker.py:326)"
BATCH = f"{LOOP};ExecutionWorker.process_batch (execution/worker.py:144)"


def test_layout_when_pinned_then_workers_get_the_last_core_and_the_rest_the_others():
    assert layout([3, 0, 1], "pinned") == ({3}, {0, 1})
    assert layout([0, 1], "unpinned") == ({0, 1}, {0, 1})


def test_layout_when_pinned_on_one_core_then_refused():
    with pytest.raises(SystemExit, match="at least two cores"):
        layout([0], "pinned")


def test_part_of_when_json_under_the_audit_commit_then_json_and_the_commit_itself_audit():
    commit = "ExecutionWorker._decide (execution/worker.py:208);AuditWriter.commit (quantbridge/audit.py:283)"
    assert part_of([commit, "JSONEncoder.iterencode (json/encoder.py:258)"]) == "JSON encoding"
    assert part_of([commit]) == "audit commit"
    assert part_of([commit, "Script.__call__ (redis/commands/core.py:5800)"]) == "Redis round trips"


def test_part_of_when_the_policy_input_or_the_query_then_told_apart():
    verdicts = "verdicts (execution/decisions.py:230)"
    assert part_of([verdicts, "risk_context (execution/decisions.py:270)"]) == "building the policy input"
    assert part_of([verdicts, "PolicyEngine.evaluate_many (execution/policy.py:99)"]) == "Rego evaluation"
    nested = "verdicts.<locals>.context (execution/decisions.py:240)"
    assert part_of([verdicts, nested]) == "building the policy input"
    regopy = "Interpreter.query (regopy/interpreter.py:10)"
    assert part_of([regopy, "rego_input_from_value.<locals>.add (regopy/input.py:5)"]) == (
        "building the policy input"
    )
    assert part_of([regopy]) == "Rego evaluation"
    assert part_of(["ExecutionWorker._execute (execution/worker.py:260)", "f (numpy/x.py:1)"]) == "venues"
    assert part_of(["ExecutionWorker.process_batch (execution/worker.py:144)"]) == OTHER


def test_profile_counts_when_samples_outside_process_batch_then_only_in_the_total():
    raw = [
        f"{BATCH};ExecutionWorker._read (execution/worker.py:180) 3",
        f"{BATCH};SimulatedVenue.execute (execution/venues.py:100) 1",
        f"{LOOP};StreamCommands.xreadgroup (redis/commands/core.py:8067) 4",
        "not a sample line",
    ]
    counts, total = profile_counts(raw)
    assert counts == {"Redis round trips": 3, "venues": 1}
    assert total == 8


def test_shares_table_when_counted_then_shares_of_process_batch_and_the_cpu_per_order():
    # 4 samples at 100 Hz in process_batch over 0.08 s sampled; 0.03 s user + 0.01 s kernel for 100 orders
    table = shares_table(Counter({"Redis round trips": 3, "venues": 1}), 100, 0.08, 0.03, 0.01, 100, "title")
    assert "| Redis round trips | 75.0% |\n| venues | 25.0% |" in table
    assert "process_batch ran 50% of the 0.08 s sampled" in table
    assert "0.03 s user + 0.01 s kernel, 400 us per order" in table


def test_profile_counts_when_no_sample_then_empty():
    assert profile_counts([]) == (Counter(), 0)


def test_cpu_s_when_this_process_works_then_its_cpu_grows():
    before = cpu_s([os.getpid()])
    sum(i * i for i in range(200_000))
    assert cpu_s([os.getpid()]) > before > 0
