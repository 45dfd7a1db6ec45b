"""The real Airflow 3 stack started by `qb airflow start`: login required, a DAG triggered over REST runs
on the scheduler (LocalExecutor), and `qb airflow stop` ends every process by pid.

Run twice: on the default SQLite metadata DB, and on PostgreSQL (the production configuration) in a fresh
database of the PostgreSQL server at 127.0.0.1:5432 (``TEST_POSTGRES_DSN``); without a server that case is
skipped, except under CI, where it fails."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid

import pytest

from app.cli.main import main
from app.services import AIRFLOW_COMPONENTS, read_pid
from quantbridge.lake import Lake
from tests.conftest import _free_port

pytestmark = pytest.mark.slow


def _request(url: str, token: str | None = None, body: dict | None = None, method: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, {}


PG_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture
def metadata_db(request, monkeypatch):
    """Nothing for SQLite (the default under AIRFLOW_HOME); a fresh PostgreSQL database otherwise."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    import psycopg2

    name = f"qb_airflow_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg2.connect(PG_DSN + "/postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        # CI's machine has PostgreSQL, so there a missing server is a failure; a newcomer's may not.
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_DSN} is needed for the production-configuration test: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_DSN} (set TEST_POSTGRES_DSN): {exc}")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    monkeypatch.setenv(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        f"{PG_DSN.replace('postgresql://', 'postgresql+psycopg2://')}/{name}",
    )
    yield "postgres"
    cur = admin.cursor()
    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    cur.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


@pytest.fixture
def stack(tmp_path, monkeypatch, settings, redis_client, capsys, metadata_db):
    port = _free_port()
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW__API__PORT", str(port))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("AIRFLOW__API_AUTH__JWT_SECRET", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__UNIT_TEST_MODE", raising=False)
    assert main(["airflow", "start", "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    yield info
    assert main(["airflow", "stop", "--json", "--quiet"]) == 0
    stopped = json.loads(capsys.readouterr().out)["stopped"]
    assert sorted(stopped) == sorted(AIRFLOW_COMPONENTS)
    home = tmp_path / "airflow"
    assert all(read_pid(home / "pids" / f"{c}.pid") is None for c in AIRFLOW_COMPONENTS)


@pytest.mark.parametrize("metadata_db", ["sqlite", "postgres"], indirect=True)
def test_stack_when_started_then_login_required_and_rest_trigger_runs_dag_on_scheduler(
    stack, settings, metadata_db
):
    base = stack["url"]
    assert _request(base + "/api/v2/dags")[0] == 401  # anonymous: refused
    status, token = _request(base + "/auth/token", body={"username": "admin", "password": stack["password"]})
    assert status == 201 and token["access_token"]
    bearer = token["access_token"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # the dag-processor parses the folder
        status, dags = _request(base + "/api/v2/dags", bearer)
        if status == 200 and "market_data_ingest" in [d["dag_id"] for d in dags["dags"]]:
            break
        time.sleep(1)
    else:
        pytest.fail("market_data_ingest never appeared in the API")
    runs = base + "/api/v2/dags/market_data_ingest/dagRuns"
    for bad in ({"date": "2020-13-45", "source": ""}, {"date": None, "source": 12345}):  # the form's checks
        status, body = _request(runs, bearer, {"logical_date": "2020-04-03T22:00:00Z", "conf": bad})
        assert status == 400, (bad, status, body)  # refused before any run exists
    # Counted while paused: once unpaused, the scheduler may add the latest interval's scheduled run.
    assert _request(runs, bearer)[1]["total_entries"] == 0
    assert _request(base + "/api/v2/dags/market_data_ingest", bearer, {"is_paused": False}, "PATCH")[0] == 200
    status, run = _request(
        base + "/api/v2/dags/market_data_ingest/dagRuns",
        bearer,
        {"logical_date": "2020-04-06T22:00:00Z", "conf": {"date": None, "source": ""}},
    )
    assert status == 200, run
    url = f"{base}/api/v2/dags/market_data_ingest/dagRuns/{run['dag_run_id']}"
    deadline = time.monotonic() + 180
    state = None
    while time.monotonic() < deadline and state not in {"success", "failed"}:
        time.sleep(2)
        state = _request(url, bearer)[1].get("state")
    assert state == "success"
    assert Lake(settings.lake_root).price_dates()[-1].isoformat() == "2020-04-06"
    assert os.environ["QB_LAKE_ROOT"] == str(settings.lake_root)
