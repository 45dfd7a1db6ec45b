"""Tamper-evident audit trail: a hash chain on the Redis stream ``audit``, written by every component that
changes state (the execution worker, the VaR sensor, operators).

Each entry carries ``kind`` (order, verdict, route, fill, kill_switch_set...), ``ref`` (e.g. the order id),
``payload`` (canonical JSON), ``ts``, ``prev`` (hash of the previous entry) and ``hash`` = SHA-256 of the
length-prefixed encoding of (prev, kind, ref, ts, payload) (:func:`canonical`: an id containing any
character, ``|`` included, cannot make two different entries hash alike). Appends read the head and write the entries plus the new head in
one Lua call that first checks the head, so concurrent writers cannot fork the chain; the state changes the
entries describe ride in the same call (:class:`Effects`: guards, hash fields, keys, stream acks and
additions), so no change lands without its record. Checkpoints of the head (entry id, hash, count) are
exported to the lake (``audit/checkpoints.jsonl``); :func:`verify` walks the chain, checks the head and
every checkpoint, and names the first bad entry.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.state import text

GENESIS = "0" * 64
#: |value| below which an HINCRBYFLOAT result counts as zero and its field is deleted (float residue).
ZERO = 1e-9


def canonical(*fields: str) -> bytes:
    """Length-prefixed encoding: per field its UTF-8 byte length in decimal, ``:``, then the bytes. Unlike a
    separator join it is injective: ``("a|b", "c")`` and ``("a", "b|c")`` encode differently."""
    out = bytearray()
    for field in fields:
        raw = field.encode()
        out += b"%d:" % len(raw)
        out += raw
    return bytes(out)


def entry_hash(prev: str, kind: str, ref: str, ts: str, payload: str) -> str:
    """SHA-256 (hex) of :func:`canonical` (prev, kind, ref, ts, payload)."""
    return hashlib.sha256(canonical(prev, kind, ref, ts, payload)).hexdigest()


def append(client: Any, schema: RedisSchema, kind: str, ref: str, payload: dict[str, Any]) -> tuple[str, str]:
    """Append one entry; returns (stream id, hash)."""
    return AuditWriter(client, schema).append_many([(kind, ref, payload)])[-1]


class GuardFailed(Exception):
    """A guard of :class:`Effects` did not hold when the Lua call ran: nothing was written.

    ``field`` is None for a plain string key; ``expected``/``actual`` None mean "absent".
    """

    def __init__(self, key: str, field: str | None, expected: str | None, actual: str | None) -> None:
        self.key, self.field, self.expected, self.actual = key, field, expected, actual
        where = key if field is None else f"{key} field {field}"
        super().__init__(f"guard on {where} failed: expected {'absent' if expected is None else repr(expected)}, "
                         f"found {'absent' if actual is None else repr(actual)}; nothing was written")


# KEYS: 1 head, 2 audit stream, 3 effects.state_key, 4 effects.stream, then one per guard, set_keys,
# delete_keys, hset, hdel, hincr, xadd item, in that order. ARGV: genesis, expected head, entry count,
# 6 fields per entry, then per section its item count followed by the items' non-key arguments.
# Order: guards (a failure returns {2, index, actual} before any write), entries + head (a moved head
# returns {0, head}), then the effects; success returns {1, stream ids, HSETNX results}.
_COMMIT = """
local ZERO = @ZERO@
local n = tonumber(ARGV[3])
local a = 4 + 6 * n
local k = 5
local m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do
  local actual
  if ARGV[a] == 'h' then actual = redis.call('HGET', KEYS[k], ARGV[a + 1])
  else actual = redis.call('GET', KEYS[k]) end
  local want = false
  if ARGV[a + 2] == '1' then want = ARGV[a + 3] end
  if actual ~= want then return {2, i, actual} end
  a = a + 4; k = k + 1
end
local ids = {}
if n > 0 then
  local head = redis.call('GET', KEYS[1]) or ARGV[1]
  if head ~= ARGV[2] then return {0, head} end
  local b = 4
  for i = 1, n do
    ids[i] = redis.call('XADD', KEYS[2], '*', 'kind', ARGV[b], 'ref', ARGV[b + 1], 'ts', ARGV[b + 2],
                        'payload', ARGV[b + 3], 'prev', ARGV[b + 4], 'hash', ARGV[b + 5])
    b = b + 6
  end
  redis.call('SET', KEYS[1], ARGV[b - 1])
end
local created = {}
m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do
  created[i] = redis.call('HSETNX', KEYS[3], ARGV[a], ARGV[a + 1]); a = a + 2
end
m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do
  redis.call('HSET', KEYS[3], ARGV[a], ARGV[a + 1]); a = a + 2
end
m = tonumber(ARGV[a]); a = a + 1
if m > 0 then
  local group = ARGV[a]; a = a + 1
  for i = 1, m do redis.call('XACK', KEYS[4], group, ARGV[a]); a = a + 1 end
end
m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do redis.call('SET', KEYS[k], ARGV[a]); a = a + 1; k = k + 1 end
m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do redis.call('DEL', KEYS[k]); k = k + 1 end
m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do redis.call('HSET', KEYS[k], ARGV[a], ARGV[a + 1]); a = a + 2; k = k + 1 end
m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do redis.call('HDEL', KEYS[k], ARGV[a]); a = a + 1; k = k + 1 end
m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do
  local v = tonumber(redis.call('HINCRBYFLOAT', KEYS[k], ARGV[a], ARGV[a + 1]))
  if math.abs(v) < ZERO then redis.call('HDEL', KEYS[k], ARGV[a]) end
  a = a + 2; k = k + 1
end
m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do
  local p = tonumber(ARGV[a])
  redis.call('XADD', KEYS[k], '*', unpack(ARGV, a + 1, a + 2 * p)); a = a + 1 + 2 * p; k = k + 1
end
return {1, ids, created}
""".replace("@ZERO@", repr(ZERO))


@dataclass(frozen=True)
class Effects:
    """State changes that land in the same Lua call as the audit entries describing them, all or nothing.

    Checked first: ``guards`` (key, hash field or None for a plain string key, expected value or None for
    "absent"); if one fails nothing is written and :class:`GuardFailed` is raised. Then the entries and the
    head; then, in this order: ``create`` fields set only if absent (HSETNX) and ``update`` fields always
    (HSET), both in the hash ``state_key``; ``ack`` entry ids acknowledged on ``stream`` for consumer group
    ``group``; ``set_keys`` (SET key value); ``delete_keys`` (DEL); ``hset`` (key, field, value) on any hash;
    ``hdel`` (key, field); ``hincr`` (key, field, amount) by HINCRBYFLOAT, the field deleted when the result
    is within 1e-9 of zero (in-flight reservations must not leave residue); ``xadd`` (stream, field/value
    pairs) with an auto id. Every key travels in KEYS.
    """

    state_key: str = ""
    create: tuple[tuple[str, str], ...] = ()
    update: tuple[tuple[str, str], ...] = ()
    stream: str = ""
    group: str = ""
    ack: tuple[str, ...] = ()
    guards: tuple[tuple[str, str | None, str | None], ...] = ()
    set_keys: tuple[tuple[str, str], ...] = ()
    delete_keys: tuple[str, ...] = ()
    hset: tuple[tuple[str, str, str], ...] = ()
    hdel: tuple[tuple[str, str], ...] = ()
    hincr: tuple[tuple[str, str, float], ...] = ()
    xadd: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def __bool__(self) -> bool:
        return any((self.create, self.update, self.ack, self.guards, self.set_keys, self.delete_keys, self.hset,
                    self.hdel, self.hincr, self.xadd))

    def encode(self) -> tuple[list[str], list[Any], list[Any]]:
        """(keys after the 4 fixed ones, ARGV for the guards, ARGV for the effects) in the script's order."""
        if (self.create or self.update) and not self.state_key:
            raise ValueError("Effects.state_key is empty but create/update fields were given: name the hash")
        if self.ack and not (self.stream and self.group):
            raise ValueError(f"Effects.ack has {len(self.ack)} ids but stream={self.stream!r}, "
                             f"group={self.group!r}: both are required to acknowledge")
        keys: list[str] = []
        guards: list[Any] = [len(self.guards)]
        for key, field, expected in self.guards:
            keys.append(key)
            guards += ["s" if field is None else "h", field or "", "0" if expected is None else "1",
                       expected or ""]
        tail: list[Any] = [len(self.create)]
        for pair in self.create:
            tail += pair
        tail.append(len(self.update))
        for pair in self.update:
            tail += pair
        tail.append(len(self.ack))
        if self.ack:
            tail += [self.group, *self.ack]
        tail.append(len(self.set_keys))
        for key, value in self.set_keys:
            keys.append(key)
            tail.append(value)
        tail.append(len(self.delete_keys))
        keys += self.delete_keys
        tail.append(len(self.hset))
        for key, field, value in self.hset:
            keys.append(key)
            tail += [field, value]
        tail.append(len(self.hdel))
        for key, field in self.hdel:
            keys.append(key)
            tail.append(field)
        tail.append(len(self.hincr))
        for key, field, amount in self.hincr:
            if not math.isfinite(float(amount)):
                raise ValueError(f"Effects.hincr amount for {key} field {field} is {amount!r}: must be finite")
            keys.append(key)
            tail += [field, repr(float(amount))]
        tail.append(len(self.xadd))
        for key, pairs in self.xadd:
            if not pairs:
                raise ValueError(f"Effects.xadd to {key} has no field/value pairs: a stream entry needs one")
            keys.append(key)
            tail.append(len(pairs))
            for pair in pairs:
                tail += pair
        return keys, guards, tail


class AuditWriter:
    """Appends entries in batches with one Lua call each: the script checks the :class:`Effects` guards, then
    that the head is the one the hashes were chained on, and writes every entry, the new head and the
    effects atomically; if another writer moved the head meanwhile, nothing is written and the batch is
    re-chained on the new head and sent again (never forked, guards checked again, and no effect lands
    without its audit entries)."""

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
        ``effects.create`` field]). Raises :class:`GuardFailed` (nothing written) when a guard fails."""
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
        """Result of a queued or direct attempt; re-chains and retries while another writer moved the head.
        Raises :class:`GuardFailed` when a guard failed (on the first attempt or a retry)."""
        while True:
            code = int(reply[0])
            if code == 2:
                key, field, expected = pending[4].guards[int(reply[1]) - 1]
                actual = reply[2] if len(reply) > 2 else None
                raise GuardFailed(key, field, expected, None if actual is None else text(actual))
            if code == 1:
                break
            self._head = text(reply[1])  # moved by another writer: chain on the real head
            pending = self._prepare(pending[3], pending[4])
            reply = self._script(keys=pending[0], args=pending[1])
        if pending[2]:
            self._head = pending[2][-1]
        return [(text(i), h) for i, h in zip(reply[1], pending[2])], [bool(int(c)) for c in reply[2]]

    def _prepare(self, entries: list[tuple[str, str, dict[str, Any]]], effects: Effects) -> Any:
        """(keys, args, hashes, entries, effects) of one attempt chained on the head this writer knows."""
        if not entries and not effects:
            return None
        extra_keys, guards, tail = effects.encode()
        keys = [self.head_key, self.stream, effects.state_key or self.head_key, effects.stream or self.stream,
                *extra_keys]
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
        return keys, [GENESIS, expected, len(entries), *args, *guards, *tail], hashes, entries, effects


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
