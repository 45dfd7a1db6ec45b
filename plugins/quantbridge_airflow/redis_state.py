"""Redis inside Airflow: the Redis provider's hook on the ``redis_default`` connection."""

from __future__ import annotations

from typing import Any

REDIS_CONN_ID = "redis_default"


def redis_client(conn_id: str = REDIS_CONN_ID) -> Any:
    """The provider hook's cached client (``get_conn()``); ``qb`` exports the connection from settings."""
    from airflow.providers.redis.hooks.redis import RedisHook

    return RedisHook(redis_conn_id=conn_id).get_conn()
