"""The settings object alone switches every scale-out target (from environment variables, no code change):
Spark master, Dask scheduler, Redis URL/password/TLS, Airflow executor and metadata DB; and no secret is
committed in the repository's configuration files. Fast: no JVM, no server, no cluster process (the Dask
case uses an in-process scheduler). The real clusters are exercised in
``tests/integration/test_scale_out_*``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from app.airflow_env import airflow_environment, redis_conn_uri
from app.services import AIRFLOW_COMPONENTS, CELERY_WORKER, AirflowStack
from quantbridge.errors import ConfigError
from quantbridge.redis_client import connect
from quantbridge.settings import Settings, load_settings
from tests.conftest import ROOT


class _BuilderReached(Exception):
    """Raised in place of starting a JVM, carrying the SparkSession builder's options."""

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__("getOrCreate")
        self.options = options


def test_get_spark_when_qb_spark_master_is_a_cluster_url_then_builder_gets_that_master(monkeypatch):
    from pyspark.sql import SparkSession

    from marketdata.spark_writer import get_spark

    def stop_before_jvm(builder: Any) -> None:
        raise _BuilderReached(dict(builder._options))

    monkeypatch.setattr(SparkSession.Builder, "getOrCreate", stop_before_jvm)
    # (not local[2]: the test session's own live session for it would be returned from the cache)
    for master in ("spark://spark-master.internal:7077", "k8s://https://kubernetes.default:443", "local[3]"):
        settings = load_settings(environ={"QB_SPARK_MASTER": master})
        with pytest.raises(_BuilderReached) as reached:
            get_spark(settings.spark_master)
        assert reached.value.options["spark.master"] == master
        assert reached.value.options["spark.sql.sources.partitionOverwriteMode"] == "dynamic"


def _keys_on(scheduler: Any) -> set[str]:
    return {str(entry[0]) for entry in scheduler.transition_log}


def test_build_features_when_qb_dask_scheduler_set_then_tasks_go_to_that_scheduler_else_local_threads():
    from dask.distributed import LocalCluster

    from strategy.features import build_features

    index = pd.date_range("2020-01-01", periods=90, freq="B").date
    closes = pd.DataFrame(
        {
            t: 100 + pd.Series(range(90)).mul(0.1 * (i + 1)).to_numpy()
            for i, t in enumerate(("AAA", "BBB", "CCC"))
        },
        index=index,
    )
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        scheduler = cluster.scheduler
        local = build_features(closes, dask_scheduler=load_settings(environ={}).dask_scheduler)
        assert _keys_on(scheduler) == set()  # empty QB_DASK_SCHEDULER: nothing reached the scheduler
        settings = load_settings(environ={"QB_DASK_SCHEDULER": cluster.scheduler_address})
        remote = build_features(closes, dask_scheduler=settings.dask_scheduler)
        assert _keys_on(scheduler)  # its address: the graph ran there
    pd.testing.assert_frame_equal(remote, local)


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    """Paths only: no connection is made, so the contents do not matter here."""
    files = {}
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_text("placeholder\n")
        files[name] = str(tmp_path / name)
    return files


def test_connect_when_rediss_url_password_and_tls_files_in_environment_then_client_uses_them(tls_files):
    env = {
        "QB_REDIS_URL": "rediss://redis.internal:6380/4",
        "QB_REDIS_PASSWORD": "from-the-env",
        "QB_REDIS_TLS_CA_CERT": tls_files["ca.crt"],
        "QB_REDIS_TLS_CERT": tls_files["client.crt"],
        "QB_REDIS_TLS_KEY": tls_files["client.key"],
    }
    client = connect(load_settings(environ=env))  # lazy: nothing is dialled
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    assert pool.connection_class.__name__ == "SSLConnection"
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
        "redis.internal",
        6380,
        4,
        "from-the-env",
    )
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == (
        tls_files["ca.crt"],
        tls_files["client.crt"],
        tls_files["client.key"],
    )


def test_connect_when_plain_redis_url_then_no_tls_and_no_password(tmp_path):
    # (a services folder without the password file of `make services`, which would be used otherwise)
    client = connect(
        load_settings(environ={"QB_REDIS_URL": "redis://127.0.0.1:6390/0", "QB_SERVICES_DIR": str(tmp_path)})
    )
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class.__name__ == "Connection"
    assert kwargs["password"] is None and not any(k.startswith("ssl") for k in kwargs)


def test_redis_hook_when_redis_default_exported_from_tls_settings_then_hook_client_uses_them(
    tls_files, tmp_path, monkeypatch
):
    from airflow.providers.redis.hooks.redis import RedisHook

    settings = load_settings(
        environ={
            "QB_REDIS_URL": "rediss://redis.internal:6380/4",
            "QB_REDIS_PASSWORD": "p@ss/word",
            "QB_REDIS_TLS_CA_CERT": tls_files["ca.crt"],
        }
    )
    env = airflow_environment(settings, base={"AIRFLOW_HOME": str(tmp_path)})
    assert env["AIRFLOW_CONN_REDIS_DEFAULT"] == redis_conn_uri(settings)
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", env["AIRFLOW_CONN_REDIS_DEFAULT"])
    client = RedisHook(redis_conn_id="redis_default").get_conn()  # lazy: nothing is dialled
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    assert (kwargs["host"], kwargs["port"], str(kwargs["db"]), kwargs["password"]) == (
        "redis.internal",
        6380,
        "4",
        "p@ss/word",
    )
    assert kwargs["ssl_ca_certs"] == tls_files["ca.crt"]


def test_redis_default_when_password_from_make_services_file_then_hook_client_gets_it_url_encoded(
    tmp_path, monkeypatch
):
    from airflow.providers.redis.hooks.redis import RedisHook

    password = "p@ss/w rd:%"  # every character that must be percent-encoded in a URI's user part
    path = tmp_path / "svc" / "redis" / "password"
    path.parent.mkdir(parents=True)
    path.write_text(password + "\n")
    path.chmod(0o600)
    settings = load_settings(
        environ={"QB_REDIS_URL": "redis://127.0.0.1:6390/3", "QB_SERVICES_DIR": str(tmp_path / "svc")}
    )
    uri = airflow_environment(settings, base={"AIRFLOW_HOME": str(tmp_path)})["AIRFLOW_CONN_REDIS_DEFAULT"]
    assert uri == "redis://:p%40ss%2Fw%20rd%3A%25@127.0.0.1:6390?db=3"
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", uri)
    kwargs = RedisHook(redis_conn_id="redis_default").get_conn().connection_pool.connection_kwargs  # lazy
    assert (kwargs["host"], kwargs["port"], str(kwargs["db"])) == ("127.0.0.1", 6390, "3")
    assert kwargs["password"] == password


def test_redis_conn_uri_when_url_carries_user_and_encoded_password_then_passed_once_encoded():
    settings = load_settings(
        environ={
            "QB_REDIS_URL": "redis://app:p%40ss@redis.internal:6379/1",
            "QB_REDIS_PASSWORD": "ignored-as-redis-py-does",
        }
    )
    assert redis_conn_uri(settings) == "redis://app:p%40ss@redis.internal:6379?db=1"
    assert redis_conn_uri(load_settings(environ={"QB_REDIS_URL": "redis://app@redis.internal:6379/0"})) == (
        "redis://app@redis.internal:6379?db=0"
    )


def test_airflow_environment_when_celery_and_postgres_set_in_environment_then_passed_through_and_worker_added(
    tmp_path, monkeypatch
):
    from airflow.configuration import conf

    base = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow@db.internal:5432/airflow",
        "AIRFLOW__CELERY__BROKER_URL": "redis://broker.internal:6379/1",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql+psycopg2://airflow@db.internal:5432/airflow",
    }
    env = airflow_environment(Settings(), base=base)
    assert {k: env[k] for k in base} == base  # the deployment's values win over the project's defaults
    for key, value in base.items():
        monkeypatch.setenv(key, value)
    assert conf.get("core", "executor") == "CeleryExecutor"  # what Airflow itself reads
    assert conf.get("database", "sql_alchemy_conn").startswith("postgresql+psycopg2://")
    assert conf.get("celery", "broker_url") == base["AIRFLOW__CELERY__BROKER_URL"]
    stack = AirflowStack(Settings(), Path("airflow"))
    assert stack.components() == (*AIRFLOW_COMPONENTS, CELERY_WORKER)
    assert stack._command(CELERY_WORKER) == ["airflow", "celery", "worker"]
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert stack.components() == AIRFLOW_COMPONENTS


@pytest.mark.parametrize(
    "env, field",
    [
        ({"QB_REDIS_URL": "redis://h:1/0", "QB_REDIS_TLS_CA_CERT": "/ca.crt"}, "redis_url"),
        ({"QB_REDIS_URL": "rediss://h:1/0", "QB_REDIS_TLS_CERT": "/c.crt"}, "redis_tls_cert/redis_tls_key"),
    ],
)
def test_load_settings_when_tls_files_inconsistent_then_config_error_names_field(env, field):
    with pytest.raises(ConfigError, match=re.escape(field)):
        load_settings(environ=env)


def test_connect_when_tls_ca_file_missing_then_config_error_names_variable(tmp_path):
    settings = load_settings(
        environ={"QB_REDIS_URL": "rediss://h:1/0", "QB_REDIS_TLS_CA_CERT": str(tmp_path / "absent.crt")}
    )
    with pytest.raises(ConfigError, match="QB_REDIS_TLS_CA_CERT.*absent.crt"):
        connect(settings)


# Committed configuration must not carry secrets: passwords, keys and tokens come from the environment
# (QB_REDIS_PASSWORD, AIRFLOW__*__...) or Airflow Connections.
_SECRET_PATTERNS = {
    "assignment of a secret": re.compile(
        r"(?im)^\s*(?:export\s+)?[\w.-]*(?:password|passwd|secret|token|fernet_key|api_key|requirepass)[\w.-]*"
        r"\s*[=:]\s*(?!\s*$)(?![\"']?\$)(?![\"']?<)(?!.*\.generated\s*$)\S+"
    ),
    "credentials in a URL": re.compile(r"[a-z][a-z0-9+]*://[^/\s:@\"']+:[^/\s@\"'$<]+@"),
    "private key block": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "redis-server --requirepass with a literal": re.compile(r"--requirepass[ =][\"']?[^\s$\"'<]"),
}


def _committed_config_files() -> list[Path]:
    listed = subprocess.run(
        [
            "git",
            "ls-files",
            "airflow.cfg",
            "Makefile",
            "ops",
            ".ci",
            "docker-compose*",
            "*.env",
            "*.ini",
            "*.toml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [ROOT / name for name in listed.stdout.split()]


def test_committed_config_files_when_scanned_then_no_password_key_or_token():
    files = _committed_config_files()
    assert {"airflow.cfg", "Makefile"} <= {p.name for p in files}
    assert any(p.is_relative_to(ROOT / "ops") for p in files) and any(
        p.is_relative_to(ROOT / ".ci") for p in files
    )
    found = [
        f"{path.relative_to(ROOT)}: {what}: {match.group(0)!r}"
        for path in files
        if path.is_file()
        for what, pattern in _SECRET_PATTERNS.items()
        for match in pattern.finditer(path.read_text(errors="replace"))
    ]
    assert found == []


def test_secret_scan_when_a_secret_is_present_then_it_is_found():
    samples = [
        "requirepass = hunter2",
        "AIRFLOW__CELERY__BROKER_URL=redis://user:hunter2@h:6379/0",
        "-----BEGIN EC PRIVATE KEY-----",
        "redis-server --requirepass hunter2",
        "fernet_key = abcdefghijklmnop",
    ]
    for sample in samples:
        assert any(p.search(sample) for p in _SECRET_PATTERNS.values()), sample
    harmless = [
        "simple_auth_manager_passwords_file = ${AIRFLOW_HOME}/simple_auth_manager_passwords.json.generated",
        "QB_REDIS_PASSWORD=$QB_REDIS_PASSWORD",
        "password = <from your secret store>",
        "--requirepass $PW",
        "redis://127.0.0.1:6390/0",
    ]
    for sample in harmless:
        assert not any(p.search(sample) for p in _SECRET_PATTERNS.values()), sample
