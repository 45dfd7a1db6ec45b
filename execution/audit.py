"""Tamper-evident audit trail: a hash chain on the Redis stream ``audit``.

Each entry carries ``kind`` (order, verdict, route, fill, explanation...), ``ref`` (e.g. the order id),
``payload`` (canonical JSON), ``ts``, ``prev`` (hash of the previous entry) and ``hash`` =
SHA-256(prev | kind | ref | ts | payload). Appends read the head and write the entry plus the new head in
one optimistic transaction (WATCH/MULTI), so concurrent writers cannot fork the chain. Checkpoints of the
head (entry id, hash, count) are exported to the lake (``audit/checkpoints.jsonl``); :func:`verify` walks
the chain, checks the head and every checkpoint, and names the first bad entry.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema

GENESIS = "0" * 64


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def entry_hash(prev: str, kind: str, ref: str, ts: str, payload: str) -> str:
    return hashlib.sha256("|".join((prev, kind, ref, ts, payload)).encode()).hexdigest()


def append(client: Any, schema: RedisSchema, kind: str, ref: str, payload: dict[str, Any]) -> tuple[str, str]:
    """Append one entry; returns (stream id, hash)."""
    import redis

    stream, head_key = schema.key("audit"), schema.key("audit_head")
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    while True:
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(head_key)
                prev = _text(pipe.get(head_key) or GENESIS)
                ts = datetime.now(timezone.utc).isoformat(timespec="microseconds")
                digest = entry_hash(prev, kind, ref, ts, body)
                pipe.multi()
                pipe.xadd(stream, {"kind": kind, "ref": ref, "ts": ts, "payload": body, "prev": prev, "hash": digest})
                pipe.set(head_key, digest)
                entry_id, _ = pipe.execute()
                return _text(entry_id), digest
            except redis.WatchError:
                continue  # another writer moved the head: read it again


def _checkpoints_path(lake: Lake) -> Path:
    return lake.root / "audit" / "checkpoints.jsonl"


def checkpoint(client: Any, schema: RedisSchema, lake: Lake) -> dict[str, Any]:
    """Export the current head (last entry id, its hash, entry count) to the lake."""
    last = client.xrevrange(schema.key("audit"), count=1)
    if not last:
        return {"entries": 0}
    entry_id, raw = last[0]
    fields = {_text(k): _text(v) for k, v in raw.items()}
    record = {"entry_id": _text(entry_id), "hash": fields["hash"],
              "entries": client.xlen(schema.key("audit")),
              "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path = _checkpoints_path(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")
    return record


def verify(client: Any, schema: RedisSchema, lake: Lake | None = None, batch: int = 1000) -> dict[str, Any]:
    """Walk the chain; ``ok`` False names the first bad entry and why (edited, deleted, reordered, truncated)."""
    stream = schema.key("audit")
    prev, count, last_id = GENESIS, 0, "-"
    hashes: dict[str, str] = {}
    start = "-"
    while True:
        chunk = client.xrange(stream, min=start, max="+", count=batch)
        if start != "-":
            chunk = chunk[1:]  # the range is inclusive of the last id already seen
        if not chunk:
            break
        for entry_id, raw in chunk:
            f = {_text(k): _text(v) for k, v in raw.items()}
            eid = _text(entry_id)
            if f.get("prev") != prev:
                return {"ok": False, "entries_checked": count, "first_bad": eid,
                        "reason": "prev-hash mismatch: an entry before it was deleted, inserted or reordered"}
            if entry_hash(f["prev"], f["kind"], f["ref"], f["ts"], f["payload"]) != f.get("hash"):
                return {"ok": False, "entries_checked": count, "first_bad": eid,
                        "reason": "content does not match its hash: the entry was edited"}
            prev, count, last_id = f["hash"], count + 1, eid
            hashes[eid] = prev
        start = last_id
    head = _text(client.get(schema.key("audit_head")) or GENESIS)
    if head != prev:
        return {"ok": False, "entries_checked": count, "first_bad": last_id,
                "reason": "the head hash is not the last entry's: entries after it were removed"}
    if lake is not None and _checkpoints_path(lake).is_file():
        for line in _checkpoints_path(lake).read_text().splitlines():
            cp = json.loads(line)
            if hashes.get(cp["entry_id"]) != cp["hash"]:
                return {"ok": False, "entries_checked": count, "first_bad": cp["entry_id"],
                        "reason": "a lake checkpoint does not match the chain: history before it was rewritten"}
    return {"ok": True, "entries_checked": count, "head": head, "first_bad": None, "reason": None}
