"""Tamper-evident audit trail: a hash chain on the Redis stream ``audit``.

Each entry carries ``kind`` (order, verdict, route, fill, explanation...), ``ref`` (e.g. the order id),
``payload`` (canonical JSON), ``ts``, ``prev`` (hash of the previous entry) and ``hash`` =
SHA-256(prev | kind | ref | ts | payload). Appends read the head and write the entry plus the new head in
one Lua call that first checks the head, so concurrent writers cannot fork the chain; the state changes
an entry describes (order states, stream acknowledgements) can ride in the same call (:class:`Effects`). Checkpoints of the
head (entry id, hash, count) are exported to the lake (``audit/checkpoints.jsonl``); :func:`verify` walks
the chain, checks the head and every checkpoint, and names the first bad entry.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbridge.lake import Lake
from quantbridge.state import text
from quantbridge.redis_schema import RedisSchema

GENESIS = "0" * 64



def entry_hash(prev: str, kind: str, ref: str, ts: str, payload: str) -> str:
    return hashlib.sha256("|".join((prev, kind, ref, ts, payload)).encode()).hexdigest()


def append(client: Any, schema: RedisSchema, kind: str, ref: str, payload: dict[str, Any]) -> tuple[str, str]:
    """Append one entry; returns (stream id, hash)."""
    return AuditWriter(client, schema).append_many([(kind, ref, payload)])[-1]


_COMMIT = """
local n = tonumber(ARGV[3])
if n > 0 then
  local head = redis.call('GET', KEYS[1]) or ARGV[1]
  if head ~= ARGV[2] then return {0, head} end
end
local ids = {}
local b = 4
for i = 1, n do
  ids[i] = redis.call('XADD', KEYS[2], '*', 'kind', ARGV[b], 'ref', ARGV[b + 1], 'ts', ARGV[b + 2],
                      'payload', ARGV[b + 3], 'prev', ARGV[b + 4], 'hash', ARGV[b + 5])
  b = b + 6
end
if n > 0 then redis.call('SET', KEYS[1], ARGV[b - 1]) end
local created = {}
local m = tonumber(ARGV[b]); b = b + 1
for i = 1, m do
  created[i] = redis.call('HSETNX', KEYS[3], ARGV[b], ARGV[b + 1]); b = b + 2
end
m = tonumber(ARGV[b]); b = b + 1
for i = 1, m do
  redis.call('HSET', KEYS[3], ARGV[b], ARGV[b + 1]); b = b + 2
end
m = tonumber(ARGV[b]); b = b + 1
if m > 0 then redis.call('XACK', KEYS[4], ARGV[b], unpack(ARGV, b + 1, b + m)) end
return {1, ids, created}
"""


@dataclass(frozen=True)
class Effects:
    """State changes that must land together with the audit entries describing them (one Lua call):
    ``create`` fields are set only if absent (HSETNX), ``update`` fields always (HSET), both in the hash
    ``state_key``; ``ack`` entry ids are acknowledged on ``stream`` for consumer group ``group``."""

    state_key: str = ""
    create: tuple[tuple[str, str], ...] = ()
    update: tuple[tuple[str, str], ...] = ()
    stream: str = ""
    group: str = ""
    ack: tuple[str, ...] = ()


class AuditWriter:
    """Appends entries in batches with one Lua call each: the script checks that the head is the one the
    hashes were chained on and writes every entry, the new head and the accompanying :class:`Effects`
    atomically; if another writer moved the head meanwhile, nothing is written and the batch is re-chained
    on the new head and sent again (never forked, and no effect lands without its audit entries)."""

    def __init__(self, client: Any, schema: RedisSchema) -> None:
        self.client, self.schema = client, schema
        self.stream, self.head_key = schema.key("audit"), schema.key("audit_head")
        self._script = client.register_script(_COMMIT)
        self._head: str | None = None

    def append_many(self, entries: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str]]:
        """Append (kind, ref, payload) entries in order, atomically; returns [(stream id, hash)]."""
        return self.commit(entries)[0]

    def commit(self, entries: list[tuple[str, str, dict[str, Any]]],
               effects: Effects = Effects()) -> tuple[list[tuple[str, str]], list[bool]]:
        """Append ``entries`` and apply ``effects`` atomically; returns ([(stream id, hash)], [created per
        ``effects.create`` field])."""
        pending = self._prepare(entries, effects)
        if pending is None:
            return [], []
        return self.settle(pending, self._script(keys=pending[0], args=pending[1]))

    def queue(self, pipe: Any, entries: list[tuple[str, str, dict[str, Any]]],
              effects: Effects = Effects()) -> Any:
        """Queue :meth:`commit`'s first attempt on a redis pipeline (one round trip with its other commands);
        pass the pipeline's reply for it to :meth:`settle`. Returns None when there is nothing to do."""
        pending = self._prepare(entries, effects)
        if pending is not None:
            self._script(keys=pending[0], args=pending[1], client=pipe)
        return pending

    def settle(self, pending: Any, reply: Any) -> tuple[list[tuple[str, str]], list[bool]]:
        """Result of a queued or direct attempt; re-chains and retries while another writer moved the head."""
        while int(reply[0]) != 1:
            self._head = text(reply[1])  # moved by another writer: chain on the real head
            pending = self._prepare(pending[3], pending[4])
            reply = self._script(keys=pending[0], args=pending[1])
        if pending[2]:
            self._head = pending[2][-1]
        return [(text(i), h) for i, h in zip(reply[1], pending[2])], [bool(int(c)) for c in reply[2]]

    def _prepare(self, entries: list[tuple[str, str, dict[str, Any]]], effects: Effects) -> Any:
        """(keys, args, hashes, entries, effects) of one attempt chained on the head this writer knows."""
        if not entries and not (effects.create or effects.update or effects.ack):
            return None
        tail: list[Any] = [len(effects.create)]
        for field_value in effects.create:
            tail += field_value
        tail.append(len(effects.update))
        for field_value in effects.update:
            tail += field_value
        tail.append(len(effects.ack))
        if effects.ack:
            tail += [effects.group, *effects.ack]
        keys = [self.head_key, self.stream, effects.state_key or self.head_key, effects.stream or self.stream]
        expected = GENESIS
        if entries:
            expected = self._head if self._head is not None else text(self.client.get(self.head_key) or GENESIS)
        prev, args, hashes = expected, [], []
        for kind, ref, payload in entries:
            body = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
            ts = datetime.now(timezone.utc).isoformat(timespec="microseconds")
            digest = entry_hash(prev, kind, ref, ts, body)
            args += [kind, ref, ts, body, prev, digest]
            hashes.append(digest)
            prev = digest
        return keys, [GENESIS, expected, len(entries), *args, *tail], hashes, entries, effects


def _checkpoints_path(lake: Lake) -> Path:
    return lake.root / "audit" / "checkpoints.jsonl"


def checkpoint(client: Any, schema: RedisSchema, lake: Lake) -> dict[str, Any]:
    """Export the current head (last entry id, its hash, entry count) to the lake."""
    last = client.xrevrange(schema.key("audit"), count=1)
    if not last:
        return {"entries": 0}
    entry_id, raw = last[0]
    fields = {text(k): text(v) for k, v in raw.items()}
    record = {"entry_id": text(entry_id), "hash": fields["hash"],
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
            f = {text(k): text(v) for k, v in raw.items()}
            eid = text(entry_id)
            if f.get("prev") != prev:
                return {"ok": False, "entries_checked": count, "first_bad": eid,
                        "reason": "prev-hash mismatch: an entry before it was deleted, inserted or reordered"}
            if entry_hash(f["prev"], f["kind"], f["ref"], f["ts"], f["payload"]) != f.get("hash"):
                return {"ok": False, "entries_checked": count, "first_bad": eid,
                        "reason": "content does not match its hash: the entry was edited"}
            prev, count, last_id = f["hash"], count + 1, eid
            hashes[eid] = prev
        start = last_id
    head = text(client.get(schema.key("audit_head")) or GENESIS)
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
