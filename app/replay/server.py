"""The replay's own redis-server: its data is part of the run's state, saved with each day's checkpoint.

No AOF and no automatic snapshots: the replay saves (``SAVE``) after each completed day and keeps that file
with the checkpoint; a resumed run restarts the server from the checkpoint's copy, so what an interrupted
day wrote to Redis is rolled back with it. The server outlives a killed replay (its own session); the next
run stops it first.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from app.services import read_pid, redis_conf_quote, stop_pid, wait_until, write_private
from quantbridge.errors import ServiceError

DUMP = "dump.rdb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReplayRedis:
    """A redis-server under ``folder`` (``dump.rdb``, ``redis.pid``, ``redis.log``) on a free local port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port: int | None = None
        self.pidfile, self.logfile = folder / "redis.pid", folder / "redis.log"
        self.password = ""

    def _password(self) -> str:
        """The server's password (made on first start, kept in ``folder/password``, mode 0600): the replay's
        Redis is as closed as the project's own; the config file keeps it off the command line."""
        path = self.folder / "password"
        if not path.is_file():
            write_private(path, secrets.token_urlsafe(24))
        return path.read_text().strip()

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServiceError("the replay's redis-server is not started")
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, restore_from: Path | None = None, timeout_s: float = 15.0) -> str:
        """Stop a server left by an earlier run, put ``restore_from`` (an RDB file) in place, or start
        empty, and start; returns the URL."""
        self.stop()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self.password = self._password()
        conf = self.folder / "redis.conf"
        write_private(conf, f"requirepass {redis_conf_quote(self.password)}\n")
        dump = self.folder / DUMP
        dump.unlink(missing_ok=True)
        if restore_from is not None:
            shutil.copyfile(restore_from, dump)
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed: run `make system`")
        self.port = _free_port()
        args = [binary, str(conf), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder)]
        args += ["--dbfilename", DUMP, "--appendonly", "no", "--save", "", "--logfile", str(self.logfile)]
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a kill of the replay's process group leaves it to the next run to stop
        )
        self.pidfile.write_text(str(proc.pid))
        wait_until(self._ping, timeout_s, f"the replay's redis-server on port {self.port}", self.logfile)
        return self.url

    def _ping(self) -> bool:
        import redis

        if self.port is None:
            return False
        try:
            return bool(redis.Redis(port=self.port, password=self.password, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def save(self, client: Any, to: Path) -> Path:
        """``SAVE`` and copy the snapshot to ``to`` (written whole, then renamed)."""
        client.save()
        tmp = to.with_suffix(".tmp")
        shutil.copyfile(self.folder / DUMP, tmp)
        tmp.replace(to)
        return to

    def stop(self) -> bool:
        if read_pid(self.pidfile) is None:
            return False
        stopped = stop_pid(self.pidfile, grace_s=5.0)
        time.sleep(0.05)
        return stopped
