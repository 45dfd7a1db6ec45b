"""The positions hash (ticker -> shares), written by the execution worker, read by risk, strategy and
reports."""

from __future__ import annotations

from typing import Any

from quantbridge.redis_client import text
from quantbridge.redis_schema import RedisSchema


def read_positions(client: Any, schema: RedisSchema) -> dict[str, float]:
    """The positions hash as ticker -> shares."""
    return {text(k): float(v) for k, v in client.hgetall(schema.key("positions")).items()}
