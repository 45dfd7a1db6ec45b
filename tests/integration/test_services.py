"""The project's own redis-server, started and stopped for real by pid (AOF on, project-local folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from quantbridge.errors import ServiceError
from quantbridge.services import RedisService, read_pid, stop_pid
from quantbridge.settings import load_settings
from tests.conftest import _free_port


@pytest.fixture
def own_redis(tmp_path):
    settings = load_settings({"redis_url": f"redis://127.0.0.1:{_free_port()}/0", "services_dir": tmp_path / "svc",
                              "redis_password": "pw-for-test"})
    service = RedisService(settings)
    yield service
    service.stop()


def test_redis_service_when_started_twice_then_second_is_noop_and_data_persists_in_aof(own_redis):
    first = own_redis.start()
    assert first["started"] is True and own_redis.ping()
    second = own_redis.start()
    assert second["started"] is False and second["pid"] == first["pid"]
    from quantbridge.state import connect

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
    assert own_redis.status()["up"] is True and "pw-for-test" not in str(own_redis.status())


def test_redis_service_when_password_set_then_unauthenticated_client_refused(own_redis):
    import redis

    own_redis.start()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=own_redis.settings.redis_port).ping()


def test_redis_service_when_url_not_local_then_refuses_to_manage_it(tmp_path):
    service = RedisService(load_settings({"redis_url": "redis://db.internal:6379/0", "services_dir": tmp_path}))
    with pytest.raises(ServiceError, match="db.internal"):
        service.start()


def test_redis_service_when_binary_missing_then_error_says_how_to_install(own_redis, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServiceError, match="apt-get install -y redis-server"):
        own_redis.start()


def test_stop_pid_when_process_ignores_sigterm_then_killed_after_grace(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
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
