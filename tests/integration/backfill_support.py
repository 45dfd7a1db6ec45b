"""What the REST backfill test needs: the real Airflow stack as `qb airflow start` runs it (on PostgreSQL,
with two speed-ups described at :data:`LOCAL_SETTINGS`), a Spark Connect server for its tasks, and a small
client of its REST API (`/api/v2`) that logs in as a user does (SimpleAuthManager user -> JWT bearer token).

Kept apart from the test so the scenario reads as the user's steps; nothing here talks to the metadata DB.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from app.cli.main import main
from app.services import AIRFLOW_COMPONENTS, read_pid
from quantbridge.settings import load_settings
from tests.conftest import _free_port

#: The API's largest page ([api] maximum_page_limit); listings are paged with it.
PAGE = 100


class ApiError(AssertionError):
    """A REST call answered with an unexpected status; the message holds the answer's body."""


@dataclass
class Api:
    """A logged-in user of the api-server: every call carries the bearer token from ``/auth/token``."""

    base: str
    token: str = ""

    def login(self, username: str, password: str) -> Api:
        status, body = self.call("POST", "/auth/token", {"username": username, "password": password})
        if status != 201:
            raise ApiError(f"login as {username} refused: {status} {body}")
        self.token = body["access_token"]
        return self

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        """``(status, decoded JSON body)``; an HTTP error status is returned, not raised."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as reply:
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as err:
            raw = err.read() or b"{}"
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: dict | None = None, expect: int = 200) -> Any:
        status, answer = self.call(method, path, body)
        if status != expect:
            raise ApiError(f"{method} {path} -> {status} (expected {expect}): {answer}")
        return answer

    def paged(self, path: str, key: str, **query: str) -> list[dict[str, Any]]:
        """Every item of a listing endpoint, page by page."""
        items: list[dict[str, Any]] = []
        while True:
            params = urllib.parse.urlencode({**query, "limit": PAGE, "offset": len(items)})
            page = self.ok("GET", f"{path}?{params}")
            items += page[key]
            if not page[key] or len(items) >= page["total_entries"]:
                return items


def wait_for_dags(api: Api, dag_ids: set[str], timeout_s: float = 120) -> None:
    """Until the dag-processor has parsed and serialized every DAG of ``dag_ids``."""
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = {d["dag_id"] for d in api.paged("/api/v2/dags", "dags")}
        if dag_ids <= seen:
            return
        time.sleep(1)
    pytest.fail(f"DAGs {sorted(dag_ids - seen)} never appeared in the API within {timeout_s:.0f} s")


def unpause(api: Api, dag_id: str) -> None:
    """Backfill runs are queued by the scheduler only for an unpaused DAG (DAGs start paused here)."""
    assert api.ok("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})["is_paused"] is False


def backfill_body(
    dag_id: str, start: date, end: date, conf: dict[str, Any], reprocess: str, max_active_runs: int
) -> dict[str, Any]:
    """The POST body for the logical dates in [start 00:00, end 23:59:59] (UTC), oldest first."""
    return {
        "dag_id": dag_id,
        "from_date": f"{start.isoformat()}T00:00:00Z",
        "to_date": f"{end.isoformat()}T23:59:59Z",
        "run_backwards": False,
        "dag_run_conf": conf,
        "reprocess_behavior": reprocess,
        "max_active_runs": max_active_runs,
    }


def start_backfill(api: Api, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The dry run's dates (what the backfill will run), then the backfill itself; its runs exist (queued)
    when the POST returns."""
    dry = api.ok("POST", "/api/v2/backfills/dry_run", body)
    dates = sorted(b["logical_date"][:10] for b in dry["backfills"])
    assert dry["total_entries"] == len(dates)
    return api.ok("POST", "/api/v2/backfills", body), dates


def wait_for_runs(api: Api, dag_id: str, dates: list[str], timeout_s: float = 600) -> dict[str, dict]:
    """Until the DAG's run of each date has finished (success or failed); returns them by date.

    The runs, not the backfill's ``completed_at``: the scheduler marks backfills complete on a fixed 30 s
    timer (``SchedulerJobRunner._mark_backfills_complete``), so that field lags the last run by up to 30 s.
    """
    deadline = time.monotonic() + timeout_s
    runs: dict[str, dict] = {}
    while time.monotonic() < deadline:
        runs = {d: r for d, r in runs_by_date(api, dag_id).items() if d in dates}
        if sorted(runs) == dates and all(r["state"] in {"success", "failed"} for r in runs.values()):
            return runs
        time.sleep(2)
    states = {d: r["state"] for d, r in runs.items()}
    pytest.fail(f"{dag_id}: runs not finished within {timeout_s:.0f} s: {states}, expected {dates}")


def wait_for_completed(api: Api, backfill_ids: list[int], timeout_s: float = 90) -> list[dict[str, Any]]:
    """Until every backfill of ``backfill_ids`` has ``completed_at`` (GET /api/v2/backfills/{id})."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = [api.ok("GET", f"/api/v2/backfills/{i}") for i in backfill_ids]
        if all(b["completed_at"] for b in current) or time.monotonic() > deadline:
            return current
        time.sleep(2)


def wait_for_run(api: Api, dag_id: str, run_id: str, timeout_s: float = 300) -> dict[str, Any]:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = api.ok("GET", path)
        if run["state"] in {"success", "failed"}:
            return run
        time.sleep(1)
    pytest.fail(f"{dag_id} run {run_id} not finished within {timeout_s:.0f} s")


def runs_by_date(api: Api, dag_id: str) -> dict[str, dict[str, Any]]:
    """The DAG's runs keyed by logical date (``YYYY-MM-DD``); a second run of a date would be a bug."""
    runs = api.paged(f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs", order_by="logical_date")
    dates = [r["logical_date"][:10] for r in runs]
    assert len(dates) == len(set(dates)), f"{dag_id}: more than one run for a date: {sorted(dates)}"
    return dict(zip(dates, runs, strict=True))


def task_states(api: Api, dag_id: str) -> dict[str, dict[str, str]]:
    """``{logical date: {task_id: state}}`` of every run of the DAG."""
    out: dict[str, dict[str, str]] = {}
    for ti in api.paged(f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", "task_instances"):
        out.setdefault(ti["logical_date"][:10], {})[ti["task_id"]] = ti["state"]
    return out


def timing(api: Api, dag_id: str) -> dict[str, Any]:
    """Where a DAG's backfill time went, from its task instances: seconds running (sum), seconds queued
    before starting (sum), the wall clock from the first start to the last end, and the retried tasks."""
    from datetime import datetime

    tis = api.paged(f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", "task_instances")
    ran = [t for t in tis if t["start_date"] and t["end_date"]]

    def ts(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    running = sum((ts(t["end_date"]) - ts(t["start_date"])).total_seconds() for t in ran)
    waiting = sum(
        (ts(t["start_date"]) - ts(t["queued_when"])).total_seconds() for t in ran if t.get("queued_when")
    )
    wall = (max(ts(t["end_date"]) for t in ran) - min(ts(t["start_date"]) for t in ran)).total_seconds()
    return {
        "tasks": len(tis),
        "retried": sorted(f"{t['logical_date'][:10]}:{t['task_id']}" for t in tis if t["try_number"] > 1),
        "task_seconds": round(running, 1),
        "queued_seconds": round(waiting, 1),
        "wall_seconds": round(wall, 1),
    }


def descendants(roots: set[int]) -> set[int]:
    """Every live process below ``roots`` (from /proc), roots excluded."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def end_processes(pids: set[int], grace_s: float = 10) -> list[int]:
    """SIGTERM, then SIGKILL after ``grace_s``, each of ``pids`` still alive; returns those that were."""
    import signal

    alive = [p for p in pids if Path(f"/proc/{p}").exists()]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in alive):
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


PG_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture
def postgres_metadata_db(monkeypatch) -> Iterator[str]:
    """A fresh PostgreSQL database as the stack's metadata DB (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``),
    dropped after. Backfills need it: on SQLite, POST /api/v2/backfills answers 503 "Database is locked"
    whenever the scheduler writes meanwhile, and the runs it had already created are deleted again under a
    scheduler that may have picked them up (which then stops on a StaleDataError). Without a server the test
    is skipped, except under CI, where it fails (as test_airflow_stack's PostgreSQL case)."""
    import psycopg2

    name = f"qb_backfill_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg2.connect(PG_DSN + "/postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_DSN} is needed for the backfill test: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_DSN} (set TEST_POSTGRES_DSN): {exc}")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    monkeypatch.setenv(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        f"{PG_DSN.replace('postgresql://', 'postgresql+psycopg2://')}/{name}",
    )
    yield name
    cur = admin.cursor()
    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    cur.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


#: What the DAGs' tasks import (the project's modules and the libraries they import inside functions).
PRELOAD = (
    "marketdata.ingest",
    "marketdata.reference",
    "marketdata.quality",
    "marketdata.spark_writer",
    "marketdata.ingest_record",
    "risk.stress_night",
    "risk.ledger",
    "risk.irrbb",
    "execution.reconcile",
    "reporting",
    "strategy.training",
    "strategy.rebalance",
    "quantbridge_airflow.redis_state",
    "airflow.providers.redis.hooks.redis",
    "great_expectations",
    "great_expectations.expectations",
    "skfolio.datasets",
    "pyspark.sql",
    "pyspark.sql.connect.session",
    "QuantLib",
    "dask.dataframe",
    "dask.distributed",
    "sklearn.ensemble",
    "cvxpy",
    "shap",
    "matplotlib.pyplot",
)

#: The stack's ``airflow_local_settings.py`` (Airflow imports it in every component). In the scheduler only,
#: before its LocalExecutor forks the worker processes that fork each task: (1) import what the tasks
#: import, so a task starts with its libraries loaded instead of importing them again (a cold
#: market_data_ingest task took 30-60 s on 2 cores, great_expectations and skfolio alone several seconds
#: each); (2) give the tasks a session of the test's Spark Connect server instead of a JVM of their own
#: (22 publish tasks each starting a local JVM took 160-290 s apiece, four at a time). Both stand in for
#: changes to app/ and marketdata/ proposed with this test (see its closing note); the code the tasks run is
#: otherwise the DAGs' own, and ``write_prices`` writes the partitions through Spark as always.
LOCAL_SETTINGS = """
import importlib
import os
import sys
import time

if sys.argv[1:2] == ["scheduler"]:
    started, missing = time.monotonic(), []
    for name in {modules!r}:
        try:  # a module renamed since: the tasks import it cold, the scheduler still starts
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    import marketdata.spark_writer as spark_writer

    def get_spark(master="local[*]", app_name="quantbridge"):
        from pyspark.sql import SparkSession

        url = os.environ["BACKFILL_SPARK_CONNECT"]
        with spark_writer._LOCK:
            if url not in spark_writer._SESSIONS:
                session = SparkSession.builder.remote(url).getOrCreate()
                session.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
                session.conf.set("spark.sql.session.timeZone", "UTC")
                spark_writer._SESSIONS[url] = session
            return spark_writer._SESSIONS[url]

    spark_writer.get_spark = get_spark
    took = time.monotonic() - started
    print(f"preloaded in {{took:.1f}} s, missing: {{missing}}", file=sys.stderr, flush=True)
"""


def _wait_for_port(port: int, proc: Any, timeout_s: float, log: Path) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(
        f"Spark Connect server not listening on {port} within {timeout_s:.0f} s:\n{log.read_text()[-2000:]}"
    )


@pytest.fixture
def spark_connect(tmp_path) -> Iterator[str]:
    """A Spark Connect server (one JVM, ``local[2]``, the settings of ``marketdata.spark_writer.get_spark``)
    on a free loopback port; its ``sc://`` URL. Ended by pid after."""
    import subprocess

    import pyspark

    from marketdata.spark_writer import _DETERMINISTIC_JVM

    home = Path(pyspark.__file__).parent
    port = _free_port()
    log = tmp_path / "spark-connect.log"
    confs = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.sql.parquet.compression.codec": "snappy",
        "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
        "spark.hadoop.fs.file.impl.disable.cache": "true",
        "spark.driver.extraJavaOptions": _DETERMINISTIC_JVM,
    }
    args = [str(home / "bin" / "spark-submit"), "--master", "local[2]", "--driver-memory", "2g"]
    for key, value in confs.items():
        args += ["--conf", f"{key}={value}"]
    args += ["--class", "org.apache.spark.sql.connect.service.SparkConnectServer"]
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, proc, 90, log)
        yield f"sc://127.0.0.1:{port}"
    finally:
        end_processes({proc.pid, *descendants({proc.pid})})
        proc.wait(10)


@pytest.fixture
def airflow_stack(
    tmp_path, monkeypatch, settings, redis_client, capsys, postgres_metadata_db, spark_connect
) -> Iterator[dict[str, Any]]:
    """The real stack (`qb airflow start`: api-server, scheduler, dag-processor, triggerer; LocalExecutor) on
    PostgreSQL (the production configuration), in a fresh AIRFLOW_HOME, on the test's lake and redis-server;
    stopped by pid after.

    ``use_job_schedule`` is off: unpausing a DAG to let its backfill run would otherwise also make the
    scheduler create the run of the latest cron interval (today), which is not part of the backfill. The
    scheduler loads :data:`LOCAL_SETTINGS` (``$AIRFLOW_HOME/config`` is on Airflow's path).
    """
    from app.cli.common import airflow_bin
    from app.services import AirflowStack

    port = _free_port()
    home = tmp_path / "airflow"
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    monkeypatch.setenv("AIRFLOW__API__PORT", str(port))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "False")
    monkeypatch.delenv("AIRFLOW__API_AUTH__JWT_SECRET", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__UNIT_TEST_MODE", raising=False)
    monkeypatch.setenv("BACKFILL_SPARK_CONNECT", spark_connect)
    (home / "config").mkdir(parents=True)
    (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS.format(modules=PRELOAD))
    t0 = time.monotonic()
    try:
        assert main(["airflow", "start", "--json", "--quiet"]) == 0
        info = json.loads(capsys.readouterr().out)
        info["start_seconds"] = round(time.monotonic() - t0, 1)
        info["home"] = str(home)
        yield info
    finally:
        # Running task processes sit in process groups of their own, which `qb airflow stop` does not reach:
        # after a failed or interrupted backfill they (and their Spark JVMs) would outlive the stack. Noted
        # by pid before the stop, ended after it.
        pids = {pid for c in AIRFLOW_COMPONENTS if (pid := read_pid(home / "pids" / f"{c}.pid"))}
        tasks = descendants(pids)
        stopped = AirflowStack(load_settings(), airflow_bin()).stop()["stopped"]
        leftover = end_processes(tasks)
    assert sorted(stopped) == sorted(AIRFLOW_COMPONENTS), f"only {stopped} were still running at the end"
    assert all(read_pid(home / "pids" / f"{c}.pid") is None for c in AIRFLOW_COMPONENTS)
    assert leftover == [], f"task processes left running after `qb airflow stop`: {leftover}"
