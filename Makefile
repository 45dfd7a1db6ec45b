# quantbridge: `make demo` runs the main job on embedded defaults, `make test` runs the whole suite.
# Both install what is missing (venv, pinned packages, redis-server, Java) and are idempotent.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
QB := $(BIN)/qb
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: help venv system services stop airflow airflow-stop demo lint test test-fast bench profile-worker status lock clean

help:
	@echo "make demo      - ingest real prices (Spark + GX) and run the daily DAG; prints what it did"
	@echo "make lint      - ruff (lint + format check) over the tree, mypy over the domain packages"
	@echo "make test      - make lint, then the whole test suite with coverage (starts its own redis-server)"
	@echo "make services  - start the project's redis-server (AOF, .services/redis); make stop stops everything"
	@echo "make airflow   - start the local Airflow 3 stack, UI on http://127.0.0.1:8080 (login: admin)"
	@echo "make status    - services, lake extent, last runs"
	@echo "make bench     - VaR Monte Carlo and execution-worker latency benchmarks against floors measured in the same run"
	@echo "make bench-gpu - CuPy extras, the CuPy path's tests and the 1,000 assets x 1e7 paths VaR benchmark (needs a CUDA GPU)"
	@echo "make profile-worker - py-spy flame graph of the execution worker under the bench's load (.bench/worker-profile.svg)"
	@echo "make lock      - re-resolve requirements.in into the pinned requirements.txt"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

# redis-server, a Java runtime for Spark and (best effort) Chromium and promtool, from Debian's packages, only when missing.
system:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }
	@command -v java >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless; }
	@# Best effort: headless Chromium for the dashboard's end-to-end test, which skips (saying why) without it.
	@{ test -x /usr/bin/chromium && test -x /usr/bin/chromedriver; } || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; } \
		|| echo "make system: chromium/chromium-driver not installed; the dashboard end-to-end test will be skipped"
	@# Best effort (the services run without it): promtool, from Debian's prometheus package, for the alert-rule
	@# tests, which fail (saying why) without it.
	@command -v promtool >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; } \
		|| echo "make system: prometheus (promtool) not installed; tests/ops/test_prometheus_rules.py will fail"

services: venv system
	$(QB) services start

airflow: services
	$(QB) airflow start

airflow-stop:
	-@test -x $(QB) && $(QB) airflow stop -q

stop: airflow-stop
	-@test -x $(QB) && $(QB) services stop -q

status: venv
	$(QB) status

demo: services
	$(QB) demo

# ruff over the whole tree; mypy over the domain packages and the base ([tool.mypy] files in pyproject.toml).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# CI: lint first, so a lint finding fails the build before the 15-minute suite starts.
test: venv system lint
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=90 tests

# Quick loop while developing: no coverage, no slow tests (the Airflow stack).
test-fast: venv system
	$(BIN)/pytest -m "not slow" -x -q tests

# Full-size benchmarks; figures are ratios to a floor measured in the same run.
bench: venv
	$(BIN)/python -m bench.var_bench --assets 500 --paths 1000000 --repeats 3
	$(BIN)/python -m bench.var_reduction --mode full --assets 100 --paths 100000 --replications 50
	$(BIN)/python -m bench.var_reduction --mode shortcut --paths 1000000 --replications 50
	$(BIN)/python -m bench.worker_bench --orders 4000 --rates 400 2000 --workers 1 2 --modes unpinned pinned --signatures off on

# The GPU check in one command: exits non-zero with the reason when no CUDA device is visible.
.PHONY: bench-gpu
bench-gpu: venv
	bench/gpu.sh

# Where the worker's time goes: one worker pinned to its own core at 1,000 orders/s, sampled by py-spy
# (non-blocking, by pid: no root needed beyond ptrace of our own child). Writes the SVG, the collapsed stacks
# and a Markdown table of the shares by part next to it, and prints the SVG's path.
profile-worker: venv
	@mkdir -p .bench
	$(BIN)/python -m bench.worker_bench --orders 4000 --rates 1000 --workers 1 --modes pinned --no-flat-out \
		--profile .bench/worker-profile

lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/python -m pip install -q --upgrade pip
	.lockenv/bin/pip install -r requirements.in
	{ head -2 requirements.txt; .lockenv/bin/pip freeze | sed 's/^torch==\(.*\)+cpu/torch==\1/'; } > requirements.lock.new
	mv requirements.lock.new requirements.txt && rm -rf .lockenv

clean: stop
	rm -rf .lake .airflow .services .pytest-airflow .coverage htmlcov
