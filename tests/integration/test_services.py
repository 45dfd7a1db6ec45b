"""The project's own redis-server, started and stopped for real by pid (AOF on, project-local folder,
password required: generated into a 0600 file, passed in a 0600 config file, never on the command line)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from app.cli.main import main
from app.services import RedisService, read_pid, stop_pid
from quantbridge.errors import ServiceError
from quantbridge.redis_client import connect
from quantbridge.settings import load_settings
from tests.conftest import _free_port

#: Spaces, quotes, '#' and a backslash: the config file must carry it literally.
ODD_PASSWORD = 'pw with "quotes" #not-a-comment \\ end'


@pytest.fixture
def own_redis(tmp_path):
    settings = load_settings(
        {
            "redis_url": f"redis://127.0.0.1:{_free_port()}/0",
            "services_dir": tmp_path / "svc",
            "redis_password": ODD_PASSWORD,
        }
    )
    service = RedisService(settings)
    yield service
    service.stop()


@pytest.fixture
def qb_services(tmp_path, monkeypatch, capsys):
    """`qb services start` as `make services` runs it: no QB_REDIS_PASSWORD, a fresh services folder."""
    monkeypatch.delenv("QB_REDIS_PASSWORD")
    monkeypatch.setenv("QB_REDIS_URL", f"redis://127.0.0.1:{_free_port()}/0")
    monkeypatch.setenv("QB_SERVICES_DIR", str(tmp_path / "svc"))
    assert main(["services", "start", "--json", "--quiet"]) == 0
    started = json.loads(capsys.readouterr().out)
    yield started
    assert main(["services", "stop", "--quiet"]) == 0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _unauthenticated_ping(port: int) -> str:
    """The server's raw reply to a PING sent without AUTH (after checking redis-py's client is refused)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        reply = sock.recv(200).decode()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    with pytest.raises(redis.AuthenticationError):  # (no retries: redis-py retries a refusal for about 4 s)
        redis.Redis(port=port, retry=Retry(NoBackoff(), 0)).ping()
    return reply


def test_redis_service_when_started_twice_then_second_is_noop_and_data_persists_in_aof(own_redis):
    first = own_redis.start()
    assert first["started"] is True and own_redis.ping()
    second = own_redis.start()
    assert second["started"] is False and second["pid"] == first["pid"]
    from quantbridge.redis_client import connect

    client = connect(own_redis.settings)
    client.set("qb-test", "kept")
    client.close()
    assert own_redis.stop() == {"service": "redis", "stopped": True}
    assert not own_redis.ping() and read_pid(own_redis.pidfile) is None
    assert (own_redis.folder / "appendonlydir").is_dir()
    own_redis.start()
    client = connect(own_redis.settings)
    assert client.get("qb-test") == "kept"  # AOF replayed after restart
    client.close()
    assert own_redis.status()["up"] is True and ODD_PASSWORD not in str(own_redis.status())


def test_redis_service_when_password_set_then_unauthenticated_client_refused(own_redis):
    own_redis.start()
    assert _unauthenticated_ping(own_redis.settings.redis_port).startswith("-NOAUTH")
    assert not own_redis.settings.redis_password_file.exists()  # QB_REDIS_PASSWORD given: no file written


def test_test_redis_server_when_client_has_no_password_then_refused_with_noauth(redis_server):
    assert _unauthenticated_ping(redis_server).startswith("-NOAUTH")
    assert connect(load_settings(), verify=True).ping()  # QB_REDIS_PASSWORD of the session


def test_qb_services_start_when_no_password_then_generates_a_0600_file_and_server_requires_it(qb_services):
    settings = load_settings()  # no QB_REDIS_PASSWORD: the file `qb services start` wrote
    path = settings.redis_password_file
    password = path.read_text().strip()
    assert len(password) >= 40 and settings.redis_password.get_secret_value() == password
    assert (_mode(path), _mode(path.parent), _mode(path.parent / "redis.conf")) == (0o600, 0o700, 0o600)
    assert qb_services["started"] is True and qb_services["password_from"] == str(path)
    assert password not in json.dumps(qb_services)
    assert _unauthenticated_ping(settings.redis_port).startswith("-NOAUTH")
    assert connect(settings, verify=True).ping()


def test_qb_services_start_when_server_runs_then_password_on_no_command_line_nor_in_qb_settings(
    qb_services, capsys
):
    settings = load_settings()
    password = settings.redis_password.get_secret_value()
    pid = qb_services["pid"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    ps = subprocess.run(
        ["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=True
    )
    assert "redis-server" in ps.stdout and password not in ps.stdout and password not in cmdline
    assert main(["settings", "--json"]) == 0
    shown = capsys.readouterr().out
    assert password not in shown and json.loads(shown)["redis_password"] == "***"
    assert main(["settings", "redis_password"]) == 0 and capsys.readouterr().out.strip() == "***"


def test_qb_services_start_when_run_again_then_same_password_and_noop(qb_services, capsys):
    path = load_settings().redis_password_file
    before = path.read_text()
    assert main(["services", "start", "--json", "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["started"] is False and again["pid"] == qb_services["pid"] and path.read_text() == before


def test_redis_hook_when_settings_from_password_file_then_redis_default_authenticates(
    qb_services, monkeypatch, tmp_path
):
    from airflow.providers.redis.hooks.redis import RedisHook

    from app.airflow_env import airflow_environment

    env = airflow_environment(load_settings(), base={"AIRFLOW_HOME": str(tmp_path / "airflow")})
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", env["AIRFLOW_CONN_REDIS_DEFAULT"])
    assert RedisHook(redis_conn_id="redis_default").get_conn().ping()


def test_redis_service_when_port_held_by_server_with_another_password_then_error_says_how_to_fix(
    own_redis, tmp_path
):
    own_redis.start()
    other = RedisService(own_redis.settings.replace(services_dir=tmp_path / "other", redis_password="not-it"))
    assert other.ping() is False and "refused authentication" in other.status()["error"]
    with pytest.raises(
        ServiceError, match=r"refused authentication.*`qb services stop` then `make services`"
    ):
        other.start()
    assert own_redis.ping()  # the running server is left alone


def test_connect_when_client_has_no_password_then_service_error_names_password_file(own_redis):
    own_redis.start()
    bare = own_redis.settings.replace(redis_password="")
    expected = "refused authentication with no password.*QB_REDIS_PASSWORD"
    with pytest.raises(ServiceError, match=expected) as e:
        connect(bare, verify=True)
    assert str(bare.redis_password_file) in str(e.value) and ODD_PASSWORD not in str(e.value)


def test_redis_service_when_url_not_local_then_refuses_to_manage_it(tmp_path):
    service = RedisService(
        load_settings({"redis_url": "redis://db.internal:6379/0", "services_dir": tmp_path})
    )
    with pytest.raises(ServiceError, match="db.internal"):
        service.start()


def test_redis_service_when_binary_missing_then_error_says_how_to_install(own_redis, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServiceError, match="apt-get install -y redis-server"):
        own_redis.start()


def test_stop_pid_when_process_ignores_sigterm_then_killed_after_grace(tmp_path):
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    proc.stdout.readline()
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(str(proc.pid))
    assert stop_pid(pidfile, grace_s=0.5) is True
    assert proc.wait(5) == -signal.SIGKILL
    assert stop_pid(pidfile) is False and not pidfile.exists()


def test_read_pid_when_file_stale_or_garbage_then_none_and_cleaned(tmp_path):
    pidfile = tmp_path / "x.pid"
    pidfile.write_text("not-a-pid")
    assert read_pid(pidfile) is None
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pidfile.write_text(str(proc.pid))
    assert read_pid(pidfile) is None and not pidfile.exists()
    assert read_pid(tmp_path / "missing.pid") is None
    assert os.getpid() == read_pid(_write(tmp_path / "me.pid", os.getpid()))


def _write(path, pid):
    path.write_text(str(pid))
    return path


def test_redis_service_when_password_file_exists_and_settings_have_none_then_file_is_read_not_replaced(
    tmp_path,
):
    from quantbridge.settings import Settings

    service = RedisService(Settings(services_dir=tmp_path))  # built directly: load_settings did not read it
    service.folder.mkdir(parents=True)
    (service.folder / "password").write_text("kept\n")
    (service.folder / "password").chmod(0o600)
    assert service.password() == ("kept", str(service.folder / "password"))
    assert (service.folder / "password").read_text() == "kept\n"


def test_redis_service_when_settings_cannot_make_a_client_then_not_up_and_status_says_why(tmp_path):
    from quantbridge.settings import Settings

    service = RedisService(
        Settings(
            redis_url="rediss://127.0.0.1:1/0",
            services_dir=tmp_path,
            redis_tls_ca_cert=str(tmp_path / "absent.crt"),
        )
    )
    assert service.ping() is False
    assert "QB_REDIS_TLS_CA_CERT" in service.status()["error"]
