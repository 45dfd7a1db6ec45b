"""Airflow with PostgreSQL and the Celery executor, for real: `qb airflow start` under
``AIRFLOW__CORE__EXECUTOR=CeleryExecutor`` runs the four components plus an ``airflow celery worker``;
the broker is the test's redis-server (database 1), the result backend and the metadata DB a fresh
PostgreSQL database. ``market_data_ingest`` triggered over REST runs on the Celery worker (its log and
the ``celery_taskmeta`` table show it), and `qb airflow stop` ends every process by pid.

Needs the PostgreSQL server at 127.0.0.1:5432 (``TEST_POSTGRES_DSN``): skipped without one, except under
CI, where that fails. No secret is involved beyond the generated admin password (read from
``AIRFLOW_HOME``) and the connection strings, which come from the environment only."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from app.cli.main import main
from app.services import AIRFLOW_COMPONENTS, CELERY_WORKER, read_pid
from quantbridge.lake import Lake
from tests.conftest import REDIS_PASSWORD, _free_port
from tests.integration.test_airflow_stack import PG_DSN, _request

pytestmark = pytest.mark.slow

BROKER_DB = 1


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh PostgreSQL database; yields its SQLAlchemy URL (driver psycopg2)."""
    import psycopg2

    name = f"qb_celery_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg2.connect(PG_DSN + "/postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_DSN} is needed for the Celery-executor test: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_DSN} (set TEST_POSTGRES_DSN): {exc}")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield f"{PG_DSN.replace('postgresql://', 'postgresql+psycopg2://')}/{name}"
    cur = admin.cursor()
    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    cur.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


@pytest.fixture
def celery_stack(tmp_path, monkeypatch, settings, redis_client, redis_server, capsys, postgres_db):
    import redis

    broker = redis.Redis(port=redis_server, db=BROKER_DB, password=REDIS_PASSWORD)
    broker.flushdb()
    port = _free_port()
    env = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_db,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL":  # the test's redis-server requires its password, as the project's does
        f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{redis_server}/{BROKER_DB}",
        # The driver named: SQLAlchemy's default PostgreSQL driver is psycopg 3, which is not installed.
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres_db,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",  # the default forks 16 processes
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),  # not the fixed 8793
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AIRFLOW__API_AUTH__JWT_SECRET", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__UNIT_TEST_MODE", raising=False)
    t0 = time.monotonic()
    assert main(["airflow", "start", "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    info["start_s"] = time.monotonic() - t0
    info["broker"] = broker
    yield info
    assert main(["airflow", "stop", "--json", "--quiet"]) == 0
    stopped = json.loads(capsys.readouterr().out)["stopped"]
    assert sorted(stopped) == sorted([*AIRFLOW_COMPONENTS, CELERY_WORKER])
    home = tmp_path / "airflow"
    assert all(read_pid(home / "pids" / f"{c}.pid") is None for c in (*AIRFLOW_COMPONENTS, CELERY_WORKER))
    broker.close()


def test_celery_stack_when_dag_triggered_over_rest_then_celery_worker_runs_it_on_postgres(
    celery_stack, settings, postgres_db, tmp_path, capsys
):
    assert celery_stack["started"] == [*AIRFLOW_COMPONENTS, CELERY_WORKER]
    base = celery_stack["url"]
    status, token = _request(
        base + "/auth/token", body={"username": "admin", "password": celery_stack["password"]}
    )
    assert status == 201
    bearer = token["access_token"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the dag-processor parses the folder
        status, dags = _request(base + "/api/v2/dags", bearer)
        if status == 200 and "market_data_ingest" in [d["dag_id"] for d in dags["dags"]]:
            break
        time.sleep(1)
    else:
        pytest.fail("market_data_ingest never appeared in the API")
    worker_log = tmp_path / "airflow" / "logs" / f"{CELERY_WORKER}.out"
    assert read_pid(tmp_path / "airflow" / "pids" / f"{CELERY_WORKER}.pid"), worker_log.read_text()[-3000:]
    assert _request(base + "/api/v2/dags/market_data_ingest", bearer, {"is_paused": False}, "PATCH")[0] == 200
    t0 = time.monotonic()
    status, run = _request(
        base + "/api/v2/dags/market_data_ingest/dagRuns",
        bearer,
        {"logical_date": "2020-04-06T22:00:00Z", "conf": {"date": None, "source": ""}},
    )
    assert status == 200, run
    url = f"{base}/api/v2/dags/market_data_ingest/dagRuns/{run['dag_run_id']}"
    deadline = time.monotonic() + 300
    state = None
    while time.monotonic() < deadline and state not in {"success", "failed"}:
        time.sleep(2)
        state = _request(url, bearer)[1].get("state")
    run_s = time.monotonic() - t0
    log_text = worker_log.read_text(errors="replace")
    assert state == "success", log_text[-3000:]
    with capsys.disabled():  # measured figures for the README, outside the stack's captured JSON
        print(f"\ncelery stack: start {celery_stack['start_s']:.1f} s, market_data_ingest run {run_s:.1f} s")
    assert Lake(settings.lake_root).price_dates()[-1].isoformat() == "2020-04-06"

    status, tis = _request(url + "/taskInstances", bearer)
    ran = [ti for ti in tis["task_instances"] if ti["state"] == "success"]
    assert ran and all(ti["queue"] == "default" for ti in ran)
    assert "execute_workload" in log_text and "succeeded" in log_text  # the worker executed them
    assert celery_stack["broker"].keys("_kombu.binding.*")  # the broker is the test's redis-server, db 1
    import psycopg2

    with psycopg2.connect(postgres_db.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
        assert cur.fetchone()[0] >= len(ran)  # one result per task in the result backend
