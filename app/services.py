"""The project's own local services: a redis-server with AOF persistence, and the Airflow stack.

Processes are started in their own session with their pid recorded under a project-local folder, and
stopped by that pid (SIGTERM, then SIGKILL after a grace period), so nothing else on the machine is
touched. Starting what already runs is a no-op (idempotent ``make services`` / ``make airflow``).

The redis-server always requires a password: ``QB_REDIS_PASSWORD`` when set, else one generated once into
``<services_dir>/redis/password`` (0600, folder 0700), which :func:`quantbridge.settings.load_settings`
then gives every component. It reaches redis-server through a 0600 config file, never its command line
(which ``ps`` shows to every user).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quantbridge.errors import QuantbridgeError, ServiceError
from quantbridge.settings import LOCAL_HOSTS, Settings, read_password_file


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == 0
    except ChildProcessError:
        return True


def read_pid(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is alive, else None (a stale file is removed)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if _alive(pid):
        return pid
    pidfile.unlink(missing_ok=True)
    return None


def stop_pid(pidfile: Path, grace_s: float = 15.0) -> bool:
    """Stop the process group recorded in ``pidfile``; True if something was running."""
    pid = read_pid(pidfile)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    pidfile.unlink(missing_ok=True)
    return True


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        tail = (
            "\n--- last lines of "
            + str(log)
            + " ---\n"
            + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        )
    raise ServiceError(f"{what} did not become ready within {timeout_s:.0f} s{tail}")


def write_private(path: Path, content: str) -> None:
    """Write ``content`` to ``path``, readable by its owner only (0600, whatever the umask or older mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # before the secret is written: the file may exist with a wider mode
        os.write(fd, content.encode())
    finally:
        os.close(fd)


def redis_conf_quote(value: str) -> str:
    """``value`` as one double-quoted argument of a redis.conf line (spaces, quotes, ``#`` kept literally)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _answer(settings: Settings) -> tuple[bool, str]:
    """Whether the server answers PING with these credentials; if not, why ("" when nothing answers)."""
    import redis

    from quantbridge.redis_client import connect

    client = connect(settings)
    try:
        return bool(client.ping()), ""
    except redis.AuthenticationError as exc:  # NOAUTH, WRONGPASS, or a password sent to a server without one
        return False, f"refused authentication: {exc}"
    except Exception:  # noqa: BLE001 - any other failure to answer means "not up"
        return False, ""
    finally:
        client.close()


@dataclass(frozen=True)
class RedisService:
    """A redis-server bound to the settings' host and port, AOF on, password required, data under
    ``services_dir/redis`` (folder 0700)."""

    settings: Settings

    @property
    def folder(self) -> Path:
        return self.settings.services_dir / "redis"

    @property
    def pidfile(self) -> Path:
        return self.folder / "redis.pid"

    @property
    def logfile(self) -> Path:
        return self.folder / "redis.log"

    @property
    def conffile(self) -> Path:
        return self.folder / "redis.conf"

    def _client_settings(self, password: str | None = None) -> Settings:
        """The settings with the server's password filled in (from the password file when they have none)."""
        s = self.settings
        password = (
            password or s.redis_password.get_secret_value() or read_password_file(s.redis_password_file)
        )
        return (
            self.settings
            if password == self.settings.redis_password.get_secret_value()
            else self.settings.replace(redis_password=password)
        )

    def password(self) -> tuple[str, str]:
        """The password the server requires and where it comes from: ``QB_REDIS_PASSWORD`` (the settings),
        else the password file, generated on first use (``secrets.token_urlsafe(32)``, 0600, folder 0700)."""
        path = self.settings.redis_password_file
        given = self.settings.redis_password.get_secret_value()
        if given:  # load_settings may have read it from the file
            from_file = path.exists() and read_password_file(path) == given
            return given, (str(path) if from_file else "QB_REDIS_PASSWORD")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        try:  # O_EXCL: two concurrent starts agree on one password (the loser reads the winner's)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return read_password_file(path), str(path)
        try:
            os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
        finally:
            os.close(fd)
        return read_password_file(path), str(path)

    def ping(self) -> bool:
        """True when the server answers PING with the settings' password (or the password file's)."""
        try:
            return _answer(self._client_settings())[0]
        except QuantbridgeError:  # settings that cannot make a client (a missing TLS file): not up
            return False

    def start(self, timeout_s: float = 15.0) -> dict[str, object]:
        """Start redis-server unless it already answers; returns what was done (never the password)."""
        s = self.settings
        if s.redis_host not in LOCAL_HOSTS:
            raise ServiceError(
                f"QB_REDIS_URL points at {s.redis_host}: `qb services` only runs a local "
                "redis-server; a remote Redis is managed where it runs"
            )
        password, source = self.password()
        live = self._client_settings(password)
        up, why = _answer(live)
        if up:
            return {
                "service": "redis",
                "state": "running",
                "pid": read_pid(self.pidfile),
                "port": s.redis_port,
                "started": False,
                "password_from": source,
            }
        if why:  # something listens on the port but does not take this password
            raise ServiceError(
                f"a Redis server on port {s.redis_port} {why}. If it is this project's own, started "
                "before it required a password, restart it: `qb services stop` then `make services` (data "
                "is kept in the AOF); otherwise set QB_REDIS_PASSWORD to its password, or pick a free port "
                "in QB_REDIS_URL"
            )
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError(
                "redis-server is not installed: run `make services` (it installs it with "
                "apt-get) or `apt-get install -y redis-server`"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)  # AOF data, the config file and the password file
        write_private(
            self.conffile,
            "# Written by `qb services start` on every start (mode 0600): the "
            "password stays off redis-server's command line.\n"
            f"requirepass {redis_conf_quote(password)}\n",
        )
        args = [
            binary,
            str(self.conffile),
            "--bind",
            "127.0.0.1",
            "--port",
            str(s.redis_port),
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.logfile),
            "--protected-mode",
            "yes",
        ]
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pidfile.write_text(str(proc.pid))
        wait_until(lambda: _answer(live)[0], timeout_s, f"redis-server on port {s.redis_port}", self.logfile)
        return {
            "service": "redis",
            "state": "running",
            "pid": proc.pid,
            "port": s.redis_port,
            "started": True,
            "aof_dir": str(self.folder),
            "password_from": source,
        }

    def stop(self) -> dict[str, object]:
        return {"service": "redis", "stopped": stop_pid(self.pidfile)}

    def status(self) -> dict[str, object]:
        try:
            up, why = _answer(self._client_settings())
        except QuantbridgeError as exc:
            up, why = False, str(exc)
        out: dict[str, object] = {
            "service": "redis",
            "url": self.settings.redis_url_redacted(),
            "up": up,
            "pid": read_pid(self.pidfile),
        }
        if why:
            out["error"] = why
        return out


AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Started too when ``AIRFLOW__CORE__EXECUTOR`` is the CeleryExecutor: ``airflow celery worker`` (broker,
#: result backend and concurrency from ``AIRFLOW__CELERY__*``). Other hosts run more workers the same way.
CELERY_WORKER = "celery-worker"


@dataclass(frozen=True)
class AirflowStack:
    """The real Airflow 3 components, each in its own session, pids under ``$AIRFLOW_HOME/pids``."""

    settings: Settings
    airflow_bin: Path

    @property
    def home(self) -> Path:
        from app.airflow_env import airflow_home

        return airflow_home()

    def pidfile(self, component: str) -> Path:
        return self.home / "pids" / f"{component}.pid"

    def logfile(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.out"

    def _env(self) -> dict[str, str]:
        from app.airflow_env import airflow_environment

        return airflow_environment(self.settings)

    def components(self) -> tuple[str, ...]:
        """The processes this configuration needs: the four components, plus a Celery worker under Celery."""
        executor = self._env().get("AIRFLOW__CORE__EXECUTOR", "")
        return AIRFLOW_COMPONENTS + ((CELERY_WORKER,) if "CeleryExecutor" in executor else ())

    def _command(self, component: str) -> list[str]:
        return [
            str(self.airflow_bin),
            *(("celery", "worker") if component == CELERY_WORKER else (component,)),
        ]

    def base_url(self) -> str:
        return "http://127.0.0.1:" + self._env().get("AIRFLOW__API__PORT", "8080")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url() + "/api/v2/monitor/health", timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def migrate(self) -> dict[str, object]:
        """Create or upgrade the metadata database (idempotent)."""
        env = self._env()
        done = subprocess.run(
            [str(self.airflow_bin), "db", "migrate"], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise ServiceError("airflow db migrate failed:\n" + done.stderr[-3000:])
        return {"service": "airflow", "migrated": True, "home": env["AIRFLOW_HOME"]}

    def start(self, timeout_s: float = 120.0) -> dict[str, object]:
        self.migrate()
        env = self._env()
        (self.home / "pids").mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        started = []
        for component in self.components():
            if read_pid(self.pidfile(component)) is not None:
                continue
            with self.logfile(component).open("ab") as log:
                proc = subprocess.Popen(
                    self._command(component),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pidfile(component).write_text(str(proc.pid))
            started.append(component)
        wait_until(self.healthy, timeout_s, "Airflow api-server", self.logfile("api-server"))
        return {
            "service": "airflow",
            "url": self.base_url(),
            "started": started,
            "username": "admin",
            "password_file": str(self.home / "simple_auth_manager_passwords.json.generated"),
            "password": self.admin_password(),
        }

    def admin_password(self) -> str | None:
        import json

        path = self.home / "simple_auth_manager_passwords.json.generated"
        try:
            return json.loads(path.read_text()).get("admin")
        except (FileNotFoundError, ValueError):
            return None

    def stop(self) -> dict[str, object]:
        # Whatever runs is stopped, even a Celery worker started under a configuration no longer in force.
        stopped = [
            c for c in (CELERY_WORKER, *reversed(AIRFLOW_COMPONENTS)) if stop_pid(self.pidfile(c), grace_s=30)
        ]
        return {"service": "airflow", "stopped": stopped}

    def status(self) -> dict[str, object]:
        return {
            "service": "airflow",
            "url": self.base_url(),
            "healthy": self.healthy(),
            "components": {c: read_pid(self.pidfile(c)) for c in self.components()},
        }
