"""Unit tests of the Rego policies, ``opa test`` style, run with regopy.

A test module (``policies/tests/*.rego``) has its own package and rules named ``test_*``; each is queried as
``data.<package>.<rule>`` with the bundle's modules and ``data.json`` loaded beside it. A rule that is true
passes; one that is undefined or false (or whose module does not compile) fails, as with ``opa test``.
Rules named ``todo_test_*`` are skipped, as OPA does.

The queries run in a child interpreter: regopy 1.5.2 crashes the process (SIGSEGV) on ``with input as
{...}`` when a function of the policy is applied to ``input`` (and on ``with input.order as <a rule>``); a
test module must not take the proposer's command or the test run down with it, so a crash is reported as
:class:`PolicyTestError` naming the known triggers. Tests replace single input fields by literals instead
(``with input.items as [...]``), which works. One query per test package (one compile, about 0.4 s).
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
#: A whole run's time limit (seconds): about 0.5 s is typical.
TIMEOUT_S = 60.0

# The child: modules and data from stdin (JSON); one line of JSON out: {"results": {query: "true" | "false" |
# "error: ..."}} or {"error": ...} when a module does not load. One query per package (one compile, ~0.4 s);
# a package whose query fails is queried rule by rule, so one failing rule does not hide the others.
_CHILD = r"""
import json, sys
from regopy import Interpreter
job = json.load(sys.stdin)
rego = Interpreter()
try:
    for name, source in job["modules"]:
        rego.add_module(name, source)
    rego.add_data(job["data"])
except Exception as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(0)
def ask(query):
    result = str(rego.query(query))
    if result == "undefined":
        return None
    if not result.startswith("{"):
        raise ValueError(result)  # regopy's "<error>"
    return json.loads(result)["expressions"][0]
out = {}
for package, rules in job["packages"].items():
    try:
        values = ask("data." + package)
        values = values if isinstance(values, dict) else {}
        for rule in rules:
            out[package + "." + rule] = "true" if values.get(rule) is True else "false"
    except Exception:
        for rule in rules:
            try:
                out[package + "." + rule] = "true" if ask("data." + package + "." + rule) is True else "false"
            except Exception as exc:
                out[package + "." + rule] = "error: " + (str(exc).splitlines() or [""])[0]
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


def _tests(tests: Mapping[str, str]) -> dict[str, list[str]]:
    """package -> its ``test_*`` rule names, in file and source order."""
    found: dict[str, list[str]] = {}
    for name, source in tests.items():
        package = _PACKAGE.search(source)
        if package is None:
            raise PolicyTestError(f"policy test module {name} has no package line")
        rules = found.setdefault(package.group(1), [])
        rules += [r for r in dict.fromkeys(_TEST_RULE.findall(source)) if r not in rules]  # a rule may repeat
    return found


def _run_child(job: dict[str, object]) -> dict[str, object]:
    """The child's answer; :class:`PolicyTestError` when it died."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise PolicyTestError(
            f"the Rego engine (regopy) died with exit status {done.returncode} loading the policy and its "
            "tests: regopy 1.5.2 crashes on `with input as {...}` over a policy function and on "
            "`with input.<field> as <rule>`; replace single input fields by literals (see "
            f"policies/tests/pretrade_test.rego). {done.stderr.strip()[-300:]}"
        )
    return dict(json.loads(lines[-1]))


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
    packages = _tests(test_sources)
    if not any(packages.values()):
        raise PolicyTestError(f"no test_* rule in {tests}: a bundle is released only with its tests")
    modules = [[name.removesuffix(".rego"), raw.decode()] for name, raw in files.items() if name != DATA_FILE]
    modules += [[f"tests/{name.removesuffix('.rego')}", text] for name, text in test_sources.items()]
    answer = _run_child({"modules": modules, "data": json.loads(files[DATA_FILE]), "packages": packages})
    if "error" in answer:
        raise PolicyTestError(f"the policy or its tests do not compile: {answer['error']}")
    outcome = dict(answer["results"])  # type: ignore[call-overload]
    names = [f"{package}.{rule}" for package, rules in packages.items() for rule in rules]
    return [(name, outcome.get(name) == "true") for name in names]


def failed(results: list[tuple[str, bool]]) -> list[str]:
    """The names of the failed tests."""
    return [name for name, passed in results if not passed]
