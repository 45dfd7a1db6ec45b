"""What the nightly report reads from Redis, read once: positions, VaR history, fills, the last ingest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quantbridge.positions import read_positions
from quantbridge.redis_client import text
from quantbridge.redis_schema import RedisSchema


@dataclass(frozen=True)
class RedisSnapshot:
    """The report's Redis inputs (or built by hand when Redis is not reachable).

    ``error`` says why the Redis-backed parts are empty (shown in their notes)."""

    positions: dict[str, float] = field(default_factory=dict)
    risk_history: list[dict[str, str]] = field(default_factory=list)
    fills: list[dict[str, str]] = field(default_factory=list)
    ingest_last: dict[str, str] = field(default_factory=dict)
    error: str = ""


def read_redis_snapshot(client: Any, schema: RedisSchema, max_entries: int = 100_000) -> RedisSnapshot:
    """Positions, VaR history, fills (the latest ``max_entries`` of each stream) and the last ingest.

    A Redis error gives an empty snapshot whose ``error`` names it: the report still builds."""
    import redis

    def stream(name: str) -> list[dict[str, str]]:
        entries = client.xrevrange(schema.key(name), count=max_entries)
        return [{text(k): text(v) for k, v in fields.items()} for _, fields in reversed(entries)]

    try:
        return RedisSnapshot(
            positions={t: q for t, q in read_positions(client, schema).items() if q != 0.0},
            risk_history=stream("risk_history"),
            fills=stream("fills"),
            ingest_last={text(k): text(v) for k, v in client.hgetall(schema.key("ingest_last")).items()},
        )
    except redis.RedisError as exc:
        return RedisSnapshot(error=f"Redis not reachable ({type(exc).__name__}: {exc})")


__all__ = ["RedisSnapshot", "read_redis_snapshot"]
