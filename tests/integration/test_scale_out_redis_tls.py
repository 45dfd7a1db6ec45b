"""Redis with a password and TLS, for real: a throw-away CA signs a server and a client certificate
(``openssl``), a redis-server listens only on ``--tls-port`` with ``--requirepass`` and Redis's default
``tls-auth-clients yes``, and the project's client (``quantbridge.redis_client.connect``) and the Airflow
Redis provider's hook (``redis_default`` as exported by ``airflow_environment``) both reach it from settings
alone. A wrong password, plain TCP and an unknown CA each fail with an error naming what to fix."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.airflow_env import airflow_environment
from quantbridge.errors import ServiceError
from quantbridge.redis_client import connect
from quantbridge.settings import Settings, load_settings
from tests.conftest import _free_port

pytestmark = pytest.mark.slow

PASSWORD = "tls-test-" + uuid.uuid4().hex  # generated per run: no secret is committed


@dataclass(frozen=True)
class TlsRedis:
    port: int
    ca: Path
    cert: Path
    key: Path

    def env(self, **changes: str) -> dict[str, str]:
        """The ``QB_*`` variables a deployment sets for this server (``changes`` replace some)."""
        env = {
            "QB_REDIS_URL": f"rediss://127.0.0.1:{self.port}/2",
            "QB_REDIS_PASSWORD": PASSWORD,
            "QB_REDIS_TLS_CA_CERT": str(self.ca),
            "QB_REDIS_TLS_CERT": str(self.cert),
            "QB_REDIS_TLS_KEY": str(self.key),
        }
        env.update(changes)
        return {k: v for k, v in env.items() if v}


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _certificates(folder: Path) -> None:
    """ca.crt signs server.crt (SAN 127.0.0.1, localhost) and client.crt; EC P-256 keys (fast)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=qb-test-ca",
        cwd=folder,
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            *ec,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN=qb-test-{name}",
            cwd=folder,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            cwd=folder,
        )


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    binary, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if binary is None or openssl is None:
        pytest.fail("redis-server and openssl are needed (apt-get install redis-server openssl)")
    folder = tmp_path_factory.mktemp("redis-tls")
    _certificates(folder)
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            PASSWORD,
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.crt",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            "redis.log",
        ],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = TlsRedis(port, folder / "ca.crt", folder / "client.crt", folder / "client.key")
    deadline = time.monotonic() + 10
    while True:
        try:
            connect(load_settings(environ=server.env()), verify=True).close()
            break
        except ServiceError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log = (folder / "redis.log").read_text() if (folder / "redis.log").exists() else ""
                pytest.fail(f"TLS redis-server did not start (exit {proc.poll()}):\n{log[-2000:]}")
            time.sleep(0.05)
    yield server
    proc.terminate()
    proc.wait(10)


def test_connect_when_rediss_password_and_tls_files_set_then_commands_run_over_tls(tls_redis):
    settings = load_settings(environ=tls_redis.env())
    client = connect(settings, verify=True)
    try:
        client.set("qb:test:tls", "ok")
        assert client.get("qb:test:tls") == "ok"
        info = client.connection_pool.connection_kwargs
        assert info["ssl_ca_certs"] == str(tls_redis.ca) and info["db"] == 2
        assert client.connection_pool.connection_class.__name__ == "SSLConnection"
        ports = client.config_get("*port")
        assert ports["port"] == "0" and ports["tls-port"] == str(tls_redis.port)  # no plain-text port at all
    finally:
        client.close()
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.as_public_dict())


def test_connect_when_password_wrong_then_service_error_names_qb_redis_password(tls_redis):
    settings = load_settings(environ=tls_redis.env(QB_REDIS_PASSWORD="wrong"))
    with pytest.raises(ServiceError, match="refused authentication.*QB_REDIS_PASSWORD"):
        connect(settings, verify=True)


def test_connect_when_password_missing_then_service_error_names_qb_redis_password(tls_redis):
    settings = load_settings(environ=tls_redis.env(QB_REDIS_PASSWORD=""))
    with pytest.raises(ServiceError, match="QB_REDIS_PASSWORD"):
        connect(settings, verify=True)


def test_connect_when_plain_redis_url_on_tls_port_then_service_error_says_use_rediss(tls_redis):
    settings = load_settings(
        environ={"QB_REDIS_URL": f"redis://127.0.0.1:{tls_redis.port}/2", "QB_REDIS_PASSWORD": PASSWORD}
    )
    with pytest.raises(ServiceError, match=r"over redis:// \(no TLS\).*rediss://"):
        connect(settings, verify=True)


def test_connect_when_ca_not_given_then_certificate_verify_fails_and_error_names_ca_setting(tls_redis):
    settings = load_settings(environ=tls_redis.env(QB_REDIS_TLS_CA_CERT=""))  # the system trust store
    with pytest.raises(ServiceError, match="(?s)certificate verify failed.*QB_REDIS_TLS_CA_CERT"):
        connect(settings, verify=True)


def test_connect_when_client_certificate_missing_then_tls_auth_clients_refuses(tls_redis):
    settings = load_settings(environ=tls_redis.env(QB_REDIS_TLS_CERT="", QB_REDIS_TLS_KEY=""))
    with pytest.raises(ServiceError, match="did not answer PING over rediss://"):
        connect(settings, verify=True)


def test_redis_hook_when_redis_default_exported_from_tls_settings_then_reaches_server(
    tls_redis, tmp_path, monkeypatch
):
    from airflow.providers.redis.hooks.redis import RedisHook

    settings: Settings = load_settings(environ=tls_redis.env())
    uri = airflow_environment(settings, base={"AIRFLOW_HOME": str(tmp_path)})["AIRFLOW_CONN_REDIS_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", uri)
    client = RedisHook(redis_conn_id="redis_default").get_conn()
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert client.connection_pool.connection_class.__name__ == "SSLConnection"
        assert kwargs["ssl_ca_certs"] == str(tls_redis.ca) and kwargs["ssl_certfile"] == str(tls_redis.cert)
        assert client.ping() is True
        client.set("qb:test:hook", "via-airflow")
        assert connect(settings).get("qb:test:hook") == "via-airflow"
    finally:
        client.close()
