"""Shared fixtures: a real redis-server, a real local SparkSession, a real Airflow metadata DB (SQLite).

The environment is fixed here, before anything imports Airflow: ``AIRFLOW_HOME`` is a fresh temporary
folder, ``redis_default`` and ``QB_REDIS_URL`` point at the test redis-server's port. That server requires
a password, generated per session and exported as ``QB_REDIS_PASSWORD`` (so ``load_settings()``, the
``redis_default`` connection and every ``qb`` subprocess authenticate), as ``make services``' server does.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SESSION_DIR = Path(tempfile.mkdtemp(prefix="qb-tests-"))
REDIS_PORT = _free_port()
REDIS_PASSWORD = secrets.token_urlsafe(32)
os.environ["QB_REDIS_PASSWORD"] = REDIS_PASSWORD
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["QB_REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
os.environ["QB_LAKE_ROOT"] = str(_SESSION_DIR / "lake")
os.environ["QB_SERVICES_DIR"] = str(_SESSION_DIR / "services")
os.environ["QB_AUDIT_KEY_PATH"] = str(
    _SESSION_DIR / "audit" / "checkpoint_ed25519.pem"
)  # never the project's key
os.environ["QB_KEY_DIR"] = str(_SESSION_DIR / "keys")  # nor its key rings
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ["QB_SPARK_MASTER"] = "local[2]"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["GX_ANALYTICS_ENABLED"] = "False"

from app.airflow_env import apply_airflow_environment  # noqa: E402
from app.services import redis_conf_quote, write_private  # noqa: E402
from quantbridge.settings import Settings, load_settings  # noqa: E402

apply_airflow_environment(load_settings())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[int]:
    """A real redis-server (AOF on, requirepass REDIS_PASSWORD) on a free loopback port for the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: `make test` installs it (apt-get install redis-server)")
    folder = _SESSION_DIR / "redis"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    conf = folder / "redis.conf"  # the password stays off the command line, as in `qb services start`
    write_private(conf, f"requirepass {redis_conf_quote(REDIS_PASSWORD)}\n")
    proc = subprocess.Popen(
        [
            binary,
            str(conf),
            "--bind",
            "127.0.0.1",
            "--port",
            str(REDIS_PORT),
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(folder / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=REDIS_PORT, password=REDIS_PASSWORD)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("test redis-server did not start")
            time.sleep(0.05)
    client.close()
    yield REDIS_PORT
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_client(redis_server: int) -> Iterator[object]:
    """An authenticated client of the session's redis-server (database 0, emptied), replies as text."""
    import redis

    client = redis.Redis(port=redis_server, password=REDIS_PASSWORD, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def lake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty lake for one test (also exported, so Airflow tasks see it)."""
    root = tmp_path / "lake"
    monkeypatch.setenv("QB_LAKE_ROOT", str(root))
    return root


@pytest.fixture
def settings(lake_root: Path) -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One real local SparkSession for the session (6-7 s to start)."""
    from marketdata.spark_writer import get_spark, stop_spark

    session = get_spark(load_settings().spark_master)
    yield session
    stop_spark()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The Airflow metadata DB (SQLite in the session's AIRFLOW_HOME), migrated once."""
    from app.cli.backfill import migrate_metadata_db

    migrate_metadata_db()
    return Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
