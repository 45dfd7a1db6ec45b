"""The event-driven stress ledger: a Parquet partition ``stress/date=D/`` and the Redis stream
``stress:ledger``. Writing a date replaces that date in both (never duplicates): the partition file is
swapped atomically, and the stream's entries for the date are deleted before the new ones are appended.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from quantbridge.lake import Lake
from quantbridge.redis_client import text
from quantbridge.redis_schema import RedisSchema

PART_FILE = "part-00000.parquet"


def partition_path(lake: Lake, day: date) -> Path:
    return lake.partition("stress", "date", day.isoformat()) / PART_FILE


def write_partition(lake: Lake, day: date, frame: pd.DataFrame) -> Path:
    """Write the run's rows to ``stress/date=D/`` (replacing a previous run of that date)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = partition_path(lake, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
    tmp.replace(path)
    return path


def read_partition(lake: Lake, day: date) -> pd.DataFrame:
    return pd.read_parquet(partition_path(lake, day))


def publish_stream(client: Any, schema: RedisSchema, day: date, frame: pd.DataFrame) -> dict[str, int]:
    """Replace the date's entries on the ledger stream with ``frame``'s rows; returns removed/added counts."""
    key = schema.key("stress_ledger")
    iso = day.isoformat()
    stale = [
        entry_id
        for entry_id, fields in client.xrange(key)
        if text(fields.get("date", fields.get(b"date", b""))) == iso
    ]
    pipe = client.pipeline(transaction=True)
    if stale:
        pipe.xdel(key, *stale)
    for row in frame.itertuples(index=False):
        pipe.xadd(key, {k: str(v) for k, v in row._asdict().items()})
    pipe.execute()
    return {"removed": len(stale), "added": len(frame)}


def stream_rows(client: Any, schema: RedisSchema, day: date | None = None) -> list[dict[str, str]]:
    """Ledger entries from the stream (optionally one date's), fields as text."""
    rows = [
        {text(k): text(v) for k, v in fields.items()}
        for _, fields in client.xrange(schema.key("stress_ledger"))
    ]
    return [r for r in rows if day is None or r.get("date") == day.isoformat()]
