"""The Redis connection every component outside Airflow uses, and decoding of its replies.

Functions elsewhere take a ready client (``redis.Redis`` with ``decode_responses=True``): the CLI and the
long-running processes build one from settings with :func:`connect`, Airflow tasks get one from the Redis
provider's hook (whose replies are bytes: :func:`text` reads both).
"""

from __future__ import annotations

from typing import Any

from quantbridge.errors import ServiceError
from quantbridge.settings import Settings


def connect(settings: Settings, *, verify: bool = False) -> Any:
    """A Redis client for ``settings.redis_url``: password and TLS files from settings, replies decoded as
    text.

    The client connects lazily. ``verify=True`` sends a PING now and turns a refused password or a failed
    connection/TLS handshake into a :class:`~quantbridge.errors.ServiceError` naming the settings to fix.
    """
    import redis

    client = redis.Redis.from_url(
        settings.redis_url,
        password=settings.redis_password.get_secret_value() or None,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        **settings.redis_tls_options(),
    )
    if verify:
        where = settings.redis_url_redacted()
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            client.close()
            given = "a password" if settings.redis_password else "no password"
            raise ServiceError(
                f"Redis at {where} refused authentication with {given} ({exc}): set "
                "QB_REDIS_PASSWORD to the server's requirepass (from the environment or a "
                "secret store); for the project's own redis-server leave it unset, and its "
                f"password file {settings.redis_password_file} (written by `make services`) "
                "is used"
            ) from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            client.close()
            tls = "rediss:// (TLS)" if settings.redis_url.startswith("rediss://") else "redis:// (no TLS)"
            raise ServiceError(
                f"Redis at {where} did not answer PING over {tls}: {exc}. Check QB_REDIS_URL "
                "(rediss:// when the server listens with --tls-port), QB_REDIS_TLS_CA_CERT (the CA "
                "that signed the server's certificate) and that the server runs"
            ) from exc
    return client


def text(value: Any) -> str:
    """A Redis reply as text: clients from the Airflow hook return bytes, the CLI's return str."""
    return value.decode() if isinstance(value, bytes) else str(value)


class Wire:
    """Commands sent in one round trip on a connection of ``client``'s pool held for the caller's lifetime,
    without redis-py's per-command machinery (connection checkout and release, deprecation and observability
    wrappers, response callbacks): about a third of its client CPU per round trip, which the execution
    worker pays several times per batch. Replies are as the server sends them (decoded when the client
    decodes): a hash read by HGETALL is a flat list under RESP2. Error replies are read with the others, then
    the first is raised (the connection stays in step); a connection or timeout error drops the connection
    (the next call reconnects, as redis-py's own commands do) and is raised as redis-py raises it."""

    def __init__(self, client: Any) -> None:
        self.pool = client.connection_pool
        self._connection: Any = None

    def execute(self, *commands: tuple[Any, ...]) -> list[Any]:
        """The replies of ``commands`` (each a tuple of arguments) sent together."""
        import redis

        conn = self._connection
        if conn is None:
            conn = self._connection = self.pool.get_connection()
        replies: list[Any] = []
        try:
            conn.send_packed_command(_pack(commands, conn), check_health=False)
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return replies

    def evalsha(self, source: str, sha: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA of the script ``source`` (SHA-1 ``sha``), loaded first when the server does not know it."""
        import redis

        try:
            return self.execute(("EVALSHA", sha, len(keys), *keys, *args))[0]
        except redis.exceptions.NoScriptError:
            self.execute(("SCRIPT", "LOAD", source))
            return self.execute(("EVALSHA", sha, len(keys), *keys, *args))[0]


def _pack(commands: tuple[tuple[Any, ...], ...], conn: Any) -> Any:
    """The commands in RESP, by hiredis's packer directly when every argument is text, bytes or an int (the
    hot path's are): redis-py's own packing first encodes argument by argument in Python."""
    try:
        import hiredis
    except ImportError:  # pragma: no cover - hiredis is pinned; redis-py packs without it
        return conn.pack_commands(commands)
    if {type(a) for c in commands for a in c} <= _PLAIN:
        return [b"".join([hiredis.pack_command(c) for c in commands])]  # one sendall
    return conn.pack_commands(commands)


#: Argument types hiredis packs exactly as redis-py does (a float's text may differ: left to redis-py).
_PLAIN = frozenset((str, bytes, int))


def stream_entries(reply: Any) -> list[list[tuple[Any, dict[Any, Any] | None]]]:
    """XREADGROUP's reply as sent (RESP2: [[stream, [[id, [field, value, ...] or nil], ...]], ...]; RESP3: a
    map of stream -> entries; nil when nothing came) as, per stream, [(id, fields or None)]; None is an
    entry still pending but deleted from the stream."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (entries for _name, entries in reply)
    return [
        [(e, dict(zip(f[::2], f[1::2], strict=True)) if f else None) for e, f in entries]
        for entries in streams
    ]
