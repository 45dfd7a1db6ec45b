"""Unit tests of the Rego policies, ``opa test`` style, run with regopy.

A test module (``policies/tests/*.rego``) has its own package and rules named ``test_*``; each is queried as
``data.<package>.<rule>`` with the bundle's modules and ``data.json`` loaded beside it. A rule that is true
passes; one that is undefined or false (or whose module does not compile) fails, as with ``opa test``.
Rules named ``todo_test_*`` are skipped, as OPA does.

The queries run in a child interpreter: regopy 1.5.2 crashes the process (SIGSEGV) on ``with input as
{...}`` when a function of the policy is applied to ``input``; a test module must not take the proposer's
command or the test run down with it. Such a crash fails the tests it hit (each is run alone to find them).
Tests replace single input fields instead (``with input.items as [...]``), which works.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from execution.bundle import DATA_FILE, Bundle, bundle_files
from quantbridge.errors import InputError, QuantbridgeError

#: Where the project's policy tests live: ``tests/`` beside the modules.
TESTS_FOLDER = "tests"
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)
#: A whole run's time limit (seconds): about 0.3 s is typical.
TIMEOUT_S = 60.0

# The child: modules and data from stdin (JSON), one line of JSON out: [[query, "true"|"false"|error]].
_CHILD = r"""
import json, sys
from regopy import Interpreter
job = json.load(sys.stdin)
rego = Interpreter()
out = []
try:
    for name, source in job["modules"]:
        rego.add_module(name, source)
    rego.add_data(job["data"])
except Exception as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(0)
for query in job["queries"]:
    try:
        result = str(rego.query(query))
        out.append([query, "true" if json.loads(result).get("expressions") == [True] else "false"]
                   if result.startswith("{") else [query, "false"])
    except Exception as exc:
        out.append([query, "error: " + str(exc).splitlines()[0]])
print(json.dumps({"results": out}))
"""


class PolicyTestError(QuantbridgeError):
    """The policy tests could not run (no test, a module that does not compile, the engine crashed)."""


def load_test_modules(folder: Path) -> dict[str, str]:
    """The ``*.rego`` test modules of ``folder`` by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("tests", str(folder), "a folder of *.rego test modules (rules named test_*)")
    return {p.name: p.read_text() for p in sorted(folder.glob("*.rego"))}


def _queries(tests: Mapping[str, str]) -> list[tuple[str, str]]:
    """(display name ``package.test_x``, query) of every test rule, in file and source order."""
    found: list[tuple[str, str]] = []
    for name, source in tests.items():
        package = _PACKAGE.search(source)
        if package is None:
            raise PolicyTestError(f"policy test module {name} has no package line")
        for rule in dict.fromkeys(_TEST_RULE.findall(source)):  # a rule may have several bodies
            found.append((f"{package.group(1)}.{rule}", f"data.{package.group(1)}.{rule}"))
    return found


def _run_child(job: dict[str, object]) -> dict[str, object] | None:
    """The child's answer, or None when it died (a crash of the engine)."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        return None
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "{}"
    return dict(json.loads(last))


def run_policy_tests(source: Path | Bundle, tests: Path | None = None) -> list[tuple[str, bool]]:
    """Run the ``test_*`` rules of ``tests`` (default: ``source/tests`` for a folder, the project's
    ``policies/tests`` for a bundle) against the modules and data of ``source`` (a folder or a
    :class:`~execution.bundle.Bundle`). Returns ``[(package.test_name, passed)]`` in source order.

    Raises :class:`PolicyTestError` when there is no test or a module does not compile."""
    if isinstance(source, Bundle):
        files = dict(source.files)
        if tests is None:
            from execution.policy import POLICY_DIR

            tests = POLICY_DIR / TESTS_FOLDER
    else:
        files = bundle_files(Path(source))
        tests = tests if tests is not None else Path(source) / TESTS_FOLDER
    test_sources = load_test_modules(tests)
    queries = _queries(test_sources)
    if not queries:
        raise PolicyTestError(f"no test_* rule in {tests}: a bundle is released only with its tests")
    modules = [[name.removesuffix(".rego"), raw.decode()] for name, raw in files.items() if name != DATA_FILE]
    modules += [[f"tests/{name.removesuffix('.rego')}", text] for name, text in test_sources.items()]
    job: dict[str, object] = {
        "modules": modules,
        "data": json.loads(files[DATA_FILE]),
        "queries": [q for _, q in queries],
    }
    answer = _run_child(job)
    if answer is None:  # the engine crashed: run each test alone, a crash fails that test only
        outcome = {}
        for _, query in queries:
            alone = _run_child({**job, "queries": [query]})
            outcome[query] = (
                "true" if alone is not None and alone.get("results") == [[query, "true"]] else "crash"
            )
    elif "error" in answer:
        raise PolicyTestError(f"the policy or its tests do not compile: {answer['error']}")
    else:
        outcome = {query: verdict for query, verdict in answer["results"]}  # type: ignore[attr-defined]
    return [(name, outcome.get(query) == "true") for name, query in queries]


def failed(results: list[tuple[str, bool]]) -> list[str]:
    """The names of the failed tests."""
    return [name for name, passed in results if not passed]
