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
