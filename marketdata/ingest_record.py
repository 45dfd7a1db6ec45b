"""The latest ingestion's summary in Redis (``ingest:last``): written after a publish, read by ``qb status``
and the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quantbridge.redis_schema import RedisSchema


def record_ingest(client: Any, schema: RedisSchema, summary: dict[str, Any]) -> dict[str, str]:
    """Store the latest ingestion summary (last date, rows, tickers, source, run id) in ``ingest:last``."""
    fields = {
        "last_date": str(summary.get("last_date") or ""),
        "rows": str(summary.get("rows", 0)),
        "partitions": str(summary.get("partitions", 0)),
        "tickers": ",".join(summary.get("tickers", [])),
        "source": str(summary.get("source", "")),
        "run_id": str(summary.get("run_id", "")),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    client.hset(schema.ingest_last, mapping=fields)
    return fields


def read_ingest(client: Any, schema: RedisSchema) -> dict[str, str]:
    """The latest ingestion summary (empty when nothing was ingested yet)."""
    return client.hgetall(schema.ingest_last)
