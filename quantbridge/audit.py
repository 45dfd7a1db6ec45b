"""Tamper-evident audit trail: a hash chain on the Redis stream ``audit``, written by every component that
changes state (the execution worker, the VaR sensor, operators).

Each entry carries ``kind`` (order, verdict, route, fill, kill_switch_set...), ``ref`` (e.g. the order id),
``payload`` (canonical JSON), ``ts``, ``prev`` (hash of the previous entry) and ``hash`` = SHA-256 of the
length-prefixed encoding of (prev, kind, ref, ts, payload) (:func:`canonical`), so no choice of ids can make
two different entries hash alike. Appends write the entries and move the head in one Lua call that first
checks the head, so concurrent writers cannot fork the chain; the state changes the entries describe ride
in the same call (:class:`Effects`: guards checked first, then hash fields, keys, acks and stream
additions), so no change lands without its record. :func:`checkpoint` signs (entry count, head hash, head
entry id, time) with the ``audit`` key ring (hybrid ML-DSA-65 + Ed25519, :mod:`quantbridge.signing`, keys in
0600 files outside Redis) and appends it to the lake (``audit/checkpoints.jsonl``); lines signed earlier with
the Ed25519-only key (``audit_key_path``) still verify with it; :func:`verify` walks the chain, checks the
head and the chain against every checkpoint whose signature verifies, and names the first break, so
deleting or rewriting the tail together with the head is caught.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from quantbridge.errors import ConfigError, QuantbridgeError
from quantbridge.json_text import compact
from quantbridge.lake import Lake
from quantbridge.redis_client import Wire, text
from quantbridge.redis_schema import RedisSchema
from quantbridge.signing import SCHEME, KeyRing, Signature, SignatureError, keyring, private_key_problem

if TYPE_CHECKING:  # cryptography is imported where keys are used: appends on the hot path do not need it
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from quantbridge.settings import Settings

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


class GuardFailed(QuantbridgeError):
    """A guard of :class:`Effects` did not hold when the Lua call ran: nothing was written.

    ``field`` is None for a plain string key; ``expected``/``actual`` None mean "absent".
    """

    def __init__(self, key: str, field: str | None, expected: str | None, actual: str | None) -> None:
        self.key, self.field, self.expected, self.actual = key, field, expected, actual
        where = key if field is None else f"{key} field {field}"
        want = "absent" if expected is None else repr(expected)
        found = "absent" if actual is None else repr(actual)
        super().__init__(f"guard on {where} failed: expected {want}, found {found}; nothing was written")


class ChainBroken(QuantbridgeError):
    """The chain is already broken where a step needs it whole (a checkpoint is never signed over a break)."""


# KEYS: 1 head, 2 audit stream, 3 effects.state_key, 4 effects.stream, then every other key the effects name,
# once each. ARGV[1]: one MessagePack array (packing it costs the worker a fifth of redis-py's per-argument
# encoding, which showed in its profile): genesis, expected head, entry count, 6 fields per entry, then per
# section its item count followed by the items, each keyed item naming its key by its index in KEYS.
# Order: guards (a failure returns {2, index, actual} before any write), entries + head (a moved head
# returns {0, head}), then the effects; success returns {1, stream ids, HSETNX results}.
_COMMIT = """
local ZERO = @ZERO@
local A = cmsgpack.unpack(ARGV[1])
local n = A[3]
local a = 4 + 6 * n
local m = A[a]; a = a + 1
for i = 1, m do
  local actual
  if A[a + 1] == 'h' then actual = redis.call('HGET', KEYS[A[a]], A[a + 2])
  else actual = redis.call('GET', KEYS[A[a]]) end
  local want = false
  if A[a + 3] == '1' then want = A[a + 4] end
  if actual ~= want then return {2, i, actual} end
  a = a + 5
end
local ids = {}
if n > 0 then
  local head = redis.call('GET', KEYS[1]) or A[1]
  if head ~= A[2] then return {0, head} end
  local b = 4
  for i = 1, n do
    ids[i] = redis.call('XADD', KEYS[2], '*', 'kind', A[b], 'ref', A[b + 1], 'ts', A[b + 2],
                        'payload', A[b + 3], 'prev', A[b + 4], 'hash', A[b + 5])
    b = b + 6
  end
  redis.call('SET', KEYS[1], A[b - 1])
end
local created = {}
m = A[a]; a = a + 1
for i = 1, m do
  created[i] = redis.call('HSETNX', KEYS[3], A[a], A[a + 1]); a = a + 2
end
m = A[a]; a = a + 1
for i = 1, m do
  redis.call('HSET', KEYS[3], A[a], A[a + 1]); a = a + 2
end
m = A[a]; a = a + 1
if m > 0 then
  local group = A[a]; a = a + 1
  for i = 1, m do redis.call('XACK', KEYS[4], group, A[a]); a = a + 1 end
end
m = A[a]; a = a + 1
for i = 1, m do redis.call('SET', KEYS[A[a]], A[a + 1]); a = a + 2 end
m = A[a]; a = a + 1
for i = 1, m do redis.call('DEL', KEYS[A[a]]); a = a + 1 end
m = A[a]; a = a + 1
for i = 1, m do redis.call('HSET', KEYS[A[a]], A[a + 1], A[a + 2]); a = a + 3 end
m = A[a]; a = a + 1
for i = 1, m do redis.call('HDEL', KEYS[A[a]], A[a + 1]); a = a + 2 end
m = A[a]; a = a + 1
for i = 1, m do
  local v = tonumber(redis.call('HINCRBYFLOAT', KEYS[A[a]], A[a + 1], A[a + 2]))
  if math.abs(v) < ZERO then redis.call('HDEL', KEYS[A[a]], A[a + 1]) end
  a = a + 3
end
m = A[a]; a = a + 1
for i = 1, m do
  local p = A[a + 1]
  redis.call('XADD', KEYS[A[a]], '*', unpack(A, a + 2, a + 1 + 2 * p)); a = a + 2 + 2 * p
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
        return any(
            (
                self.create,
                self.update,
                self.ack,
                self.guards,
                self.set_keys,
                self.delete_keys,
                self.hset,
                self.hdel,
                self.hincr,
                self.xadd,
            )
        )

    def encode(self) -> tuple[list[str], list[Any], list[Any]]:
        """(keys after the 4 fixed ones, each once; the guards' items; the effects' items) in the script's
        order, keyed items naming their key by its index in KEYS (the 4 fixed ones first). Values that are
        not text are sent as redis-py would send them (``repr`` of a float, ``str`` of an int)."""
        if (self.create or self.update) and not self.state_key:
            raise ValueError("Effects.state_key is empty but create/update fields were given: name the hash")
        if self.ack and not (self.stream and self.group):
            raise ValueError(
                f"Effects.ack has {len(self.ack)} ids but stream={self.stream!r}, "
                f"group={self.group!r}: both are required to acknowledge"
            )
        keys: list[str] = []
        index: dict[str, int] = {}

        def at(key: str) -> int:
            i = index.get(key)
            if i is None:
                keys.append(key)
                i = index[key] = len(keys) + 4
            return i

        guards: list[Any] = [len(self.guards)]
        for key, field, expected in self.guards:
            guards += [
                at(key),
                "s" if field is None else "h",
                _arg(field or ""),
                "0" if expected is None else "1",
                _arg(expected or ""),
            ]
        tail: list[Any] = [len(self.create)]
        for pair in self.create:
            tail += _args(pair)
        tail.append(len(self.update))
        for pair in self.update:
            tail += _args(pair)
        tail.append(len(self.ack))
        if self.ack:
            tail += [self.group, *_args(self.ack)]
        tail.append(len(self.set_keys))
        for key, value in self.set_keys:
            tail += [at(key), _arg(value)]
        tail.append(len(self.delete_keys))
        tail += [at(key) for key in self.delete_keys]
        tail.append(len(self.hset))
        for key, field, value in self.hset:
            tail += [at(key), _arg(field), _arg(value)]
        tail.append(len(self.hdel))
        for key, field in self.hdel:
            tail += [at(key), _arg(field)]
        tail.append(len(self.hincr))
        for key, field, amount in self.hincr:
            if not math.isfinite(float(amount)):
                raise ValueError(
                    f"Effects.hincr amount for {key} field {field} is {amount!r}: must be finite"
                )
            tail += [at(key), _arg(field), repr(float(amount))]
        tail.append(len(self.xadd))
        for key, pairs in self.xadd:
            if not pairs:
                raise ValueError(f"Effects.xadd to {key} has no field/value pairs: a stream entry needs one")
            tail += [at(key), len(pairs)]
            for pair in pairs:
                tail += _args(pair)
        return keys, guards, tail


def _arg(value: Any) -> Any:
    """``value`` as redis-py sends an argument: text and bytes as they are, a number by ``repr`` (MessagePack
    would send numbers as numbers, which Lua would print differently); a bool or anything else is refused."""
    if type(value) is str or type(value) is bytes:
        return value
    if isinstance(value, bool):
        raise TypeError(f"audit effects take text, bytes or numbers, not a bool: {value!r}")
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    if isinstance(value, (int, float)):
        return repr(value)
    raise TypeError(f"audit effects take text, bytes or numbers, not {type(value).__name__}: {value!r}")


def _args(values: Any) -> list[Any]:
    return [v if type(v) is str else _arg(v) for v in values]


class AuditWriter:
    """Appends entries in batches with one Lua call each: the script checks the :class:`Effects` guards, then
    that the head is the one the hashes were chained on, and writes every entry, the new head and the
    effects atomically; if another writer moved the head meanwhile, nothing is written and the batch is
    re-chained on the new head and sent again (never forked, guards checked again, and no effect lands
    without its audit entries). ``wire``: send the calls through :class:`~quantbridge.redis_client.Wire`
    (the execution worker's hot path) instead of redis-py's script object; the same call, the same reply."""

    def __init__(self, client: Any, schema: RedisSchema, wire: Wire | None = None) -> None:
        self.client, self.schema, self.wire = client, schema, wire
        self.stream, self.head_key = schema.key("audit"), schema.key("audit_head")
        self._script = client.register_script(_COMMIT)
        self._head: str | None = None

    def _call(self, keys: list[str], args: list[Any]) -> Any:
        if self.wire is not None:
            return self.wire.evalsha(_COMMIT, self._script.sha, keys, args)
        return self._script(keys=keys, args=args)

    def append_many(self, entries: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str]]:
        """Append (kind, ref, payload) entries in order, atomically; returns [(stream id, hash)]."""
        return self.commit(entries)[0]

    def commit(
        self, entries: list[tuple[str, str, dict[str, Any]]], effects: Effects = Effects()
    ) -> tuple[list[tuple[str, str]], list[bool]]:
        """Append ``entries`` and apply ``effects`` atomically; returns ([(stream id, hash)], [created per
        ``effects.create`` field]). Raises :class:`GuardFailed` (nothing written) when a guard fails."""
        pending = self._prepare(entries, effects)
        if pending is None:
            return [], []
        return self.settle(pending, self._call(pending[0], pending[1]))

    def queue(
        self, pipe: Any, entries: list[tuple[str, str, dict[str, Any]]], effects: Effects = Effects()
    ) -> Any:
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
            reply = self._call(pending[0], pending[1])
        if pending[2]:
            self._head = pending[2][-1]
        written = [(text(i), h) for i, h in zip(reply[1], pending[2], strict=True)]
        return written, [bool(int(c)) for c in reply[2]]

    def _prepare(self, entries: list[tuple[str, str, dict[str, Any]]], effects: Effects) -> Any:
        """(keys, args, hashes, entries, effects) of one attempt chained on the head this writer knows."""
        if not entries and not effects:
            return None
        extra_keys, guards, tail = effects.encode()
        keys = [
            self.head_key,
            self.stream,
            effects.state_key or self.head_key,
            effects.stream or self.stream,
            *extra_keys,
        ]
        expected = GENESIS
        if entries:
            head = self._head
            expected = head if head is not None else text(self.client.get(self.head_key) or GENESIS)
        prev, args, hashes = expected, [], []
        # One time for the entries of one call: they land together, atomically (a clock read and its
        # formatting per entry showed in the worker's profile).
        ts = datetime.now(UTC).isoformat(timespec="microseconds")
        for kind, ref, payload in entries:
            body = compact(payload)  # json.dumps(sort_keys, compact separators, default=str) text
            digest = entry_hash(prev, kind, ref, ts, body)
            args += [kind, ref, ts, body, prev, digest]
            hashes.append(digest)
            prev = digest
        packed = msgpack.packb([GENESIS, expected, len(entries), *args, *guards, *tail])
        return keys, [packed], hashes, entries, effects


# ---------------------------------------------------------------------------------------------------------
# Signed checkpoints and verification

#: Domain tag signed in front of every checkpoint (a signature over anything else cannot pass as one):
#: v1 for the Ed25519-only lines, v2 for the hybrid ones (signed through the ``audit`` key ring).
CHECKPOINT_TAG = "quantbridge-audit-checkpoint-v1"
CHECKPOINT_TAG_V2 = "quantbridge-audit-checkpoint-v2"
_FIELDS = ("kind", "ref", "ts", "payload", "prev", "hash")
_HASHED = ("prev", "kind", "ref", "ts", "payload")  # entry_hash's argument order


def checkpoints_path(lake: Lake) -> Path:
    """``<lake>/audit/checkpoints.jsonl``: one signed checkpoint per line, oldest first."""
    return lake.root / "audit" / "checkpoints.jsonl"


def public_key_path(key_path: Path) -> Path:
    """Where the public half of ``key_path`` is written for verifiers (``.pub`` beside the private key)."""
    return key_path.with_suffix(".pub")


def load_signing_key(key_path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 checkpoint key from ``key_path`` (PEM, PKCS8), created on first use when ``create``: the
    folder with mode 0700, the key with 0600 and its public half (:func:`public_key_path`) beside it. A key
    file that group or others can read is refused: a leaked key lets anyone sign a forged checkpoint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not key_path.exists():
        if not create:
            raise ConfigError("audit_key_path", str(key_path), "an existing Ed25519 key file (PEM)")
        if not key_path.parent.exists():
            key_path.parent.mkdir(parents=True)
            os.chmod(key_path.parent, 0o700)  # whatever the umask; a folder that existed is left as it is
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # Created 0600 (never readable by others, not even briefly); O_EXCL: never overwrite a key.
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        public_key_path(key_path).write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return key
    problem = private_key_problem(key_path)
    if problem:
        raise ConfigError("audit_key_path", str(key_path), problem)
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(
            "audit_key_path", str(key_path), f"an Ed25519 private key, found {type(loaded).__name__}"
        )
    return loaded


def load_public_key(key_path: Path) -> Ed25519PublicKey | None:
    """The checkpoints' public key: the ``.pub`` beside ``key_path``, else derived from the private key;
    None when neither exists (then no checkpoint can be trusted)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pub = public_key_path(key_path)
    if pub.exists():
        key = serialization.load_pem_public_key(pub.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(
                "audit_key_path", str(pub), f"an Ed25519 public key, found {type(key).__name__}"
            )
        return key
    if key_path.exists():
        return load_signing_key(key_path, create=False).public_key()
    return None


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def audit_keyring(settings: Settings, *, create: bool = True) -> KeyRing | None:
    """The ``audit`` key ring of ``settings.key_dir`` that signs checkpoints; None when ``create`` is False
    and there is none yet (then only Ed25519-only lines can be checked, with ``audit_key_path``)."""
    if not create and not (Path(settings.key_dir) / "audit" / "keyring.json").exists():
        return None
    return keyring(settings, "audit", create=create)


def _signed_bytes(record: dict[str, Any]) -> bytes:
    return canonical(CHECKPOINT_TAG, str(record["entries"]), record["hash"], record["entry_id"], record["at"])


def _signed_message_v2(record: dict[str, Any]) -> bytes:
    """The message of a hybrid checkpoint (the ring frames it with :data:`CHECKPOINT_TAG_V2`)."""
    return canonical(str(record["entries"]), record["hash"], record["entry_id"], record["at"])


def checkpoint(
    client: Any,
    schema: RedisSchema,
    lake: Lake,
    signing_key: KeyRing | Ed25519PrivateKey,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Sign (entry count, head hash, head entry id, time) and append it to :func:`checkpoints_path`.

    ``signing_key``: the ``audit`` :class:`~quantbridge.signing.KeyRing` (hybrid: the line carries
    ``scheme``, ``key`` = the key id and ``signature`` = {key, ml_dsa, ed25519}), or an Ed25519 private key
    (the older single-signature line: ``key`` = its fingerprint, ``signature`` = base64).
    The count, the last entry and the head are read in one MULTI, so they describe one state of the chain;
    a head that is not the last entry's hash is refused (the chain is already broken: run verify). Returns
    the record written (``{"entries": 0}`` and nothing written for an empty chain).
    """
    stream = schema.key("audit")
    pipe = client.pipeline(transaction=True)
    pipe.xlen(stream)
    pipe.xrevrange(stream, count=1)
    pipe.get(schema.key("audit_head"))
    count, last, head = pipe.execute()
    if not last:
        return {"entries": 0}
    entry_id, raw = last[0]
    last_hash = {text(k): text(v) for k, v in raw.items()}.get("hash")
    head = text(head) if head is not None else None
    if head != last_hash:
        raise ChainBroken(
            f"audit head {head!r} is not the last entry's hash {last_hash!r} (entry "
            f"{text(entry_id)}): the chain is broken, run `qb audit verify` instead of "
            "signing it"
        )
    at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    record: dict[str, Any] = {"entries": int(count), "hash": head, "entry_id": text(entry_id), "at": at}
    if isinstance(signing_key, KeyRing):
        sig = signing_key.sign(CHECKPOINT_TAG_V2, _signed_message_v2(record))
        record.update(scheme=SCHEME, key=sig.key, signature=sig.to_dict())
    else:
        record["key"] = fingerprint(signing_key.public_key())
        record["signature"] = base64.b64encode(signing_key.sign(_signed_bytes(record))).decode()
    path = checkpoints_path(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return record


def _hybrid_problem(cp: dict[str, Any], ring: KeyRing | None) -> str:
    """Why a hybrid checkpoint line is not trusted ('' when both halves verify with an accepted key)."""
    if cp["scheme"] != SCHEME:
        return f"unknown signature scheme {cp['scheme']!r} (expected {SCHEME!r})"
    if ring is None:
        return "no audit key ring to check its signature"
    try:
        sig = Signature.from_dict(cp["signature"])
        at = datetime.fromisoformat(cp["at"]).timestamp()
    except (QuantbridgeError, ValueError) as exc:
        return f"malformed signature or time ({exc})"
    if sig.key != cp["key"]:
        return f"field key {cp['key']!r} is not the signature's key {sig.key!r}"
    try:
        # A checkpoint stays verifiable after a rotation: its key is accepted for lines signed before the
        # key was retired (or within the grace period after).
        ring.verify(CHECKPOINT_TAG_V2, _signed_message_v2(cp), sig, at=at)
    except SignatureError as exc:
        return f"bad signature: {exc}"
    return ""


def _read_checkpoints(
    lake: Lake, public_key: Ed25519PublicKey | None, ring: KeyRing | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(trusted checkpoints, rejected ones with line and reason), each in file order: hybrid lines checked
    with ``ring``, Ed25519-only lines with ``public_key``."""
    from cryptography.exceptions import InvalidSignature

    path = checkpoints_path(lake)
    trusted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    if not path.is_file():
        return trusted, rejected
    expected_key = None if public_key is None else fingerprint(public_key)
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cp = json.loads(line)
        except json.JSONDecodeError as exc:
            rejected.append({"line": number, "reason": f"not JSON ({exc.msg})"})
            continue
        bad = _checkpoint_shape(cp)
        if bad:
            rejected.append({"line": number, "reason": bad})
            continue
        cp["line"] = number
        if "scheme" in cp:
            problem = _hybrid_problem(cp, ring)
            if problem:
                rejected.append({"line": number, "reason": problem})
            else:
                trusted.append(cp)
            continue
        if public_key is None or expected_key is None:
            rejected.append({"line": number, "reason": "no public key to check its signature"})
            continue
        if cp["key"] != expected_key:
            rejected.append(
                {"line": number, "reason": f"signed by key {cp['key']}, not the trusted {expected_key}"}
            )
            continue
        try:
            public_key.verify(base64.b64decode(cp["signature"], validate=True), _signed_bytes(cp))
        except (InvalidSignature, binascii.Error, ValueError):
            rejected.append({"line": number, "reason": "bad signature"})
            continue
        trusted.append(cp)
    return trusted, rejected


def _checkpoint_shape(cp: Any) -> str:
    """Why a parsed checkpoint line is malformed ('' when it is well formed)."""
    if not isinstance(cp, dict):
        return "not a JSON object"
    hybrid = "scheme" in cp
    for name, kind in (
        ("entries", int),
        ("hash", str),
        ("entry_id", str),
        ("at", str),
        ("key", str),
        ("signature", dict if hybrid else str),
        *((("scheme", str),) if hybrid else ()),
    ):
        if not isinstance(cp.get(name), kind) or isinstance(cp.get(name), bool):
            return f"field {name} missing or not {kind.__name__}: {cp.get(name)!r}"
    return ""


def _decode(raw: Any) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def _entry_problem(fields: dict[str, Any]) -> tuple[str, str] | None:
    """(field, why) of the first malformed field of an entry, or None."""
    for name in _FIELDS:
        if name not in fields:
            return name, f"field {name} is missing"
        try:
            fields[name] = _decode(fields[name])
        except UnicodeDecodeError:
            return name, f"field {name} is not UTF-8 text"
    for name in ("prev", "hash"):
        value = fields[name]
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            return name, f"field {name} is not a SHA-256 hex digest: {value[:80]!r}"
    try:
        json.loads(fields["payload"])
    except json.JSONDecodeError as exc:
        return "payload", f"field payload is not JSON ({exc.msg})"
    return None


def _break(count: int, entry_id: str | None, reason: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "entries_checked": count, "first_bad": entry_id, "reason": reason, **extra}


def verify(
    client: Any,
    schema: RedisSchema,
    lake: Lake | None = None,
    public_key: Ed25519PublicKey | None = None,
    batch: int = 1000,
    *,
    ring: KeyRing | None = None,
) -> dict[str, Any]:
    """Walk the chain and check it against the signed checkpoints in ``lake``.

    ``ok`` False names the first break: ``first_bad`` (entry id) and ``reason`` (edited, deleted, reordered,
    a missing or malformed field, with ``field``), a head that is not the last entry's hash, or a trusted
    checkpoint the chain no longer holds (``checkpoint``: fewer entries than it counted, or its entry number
    ``entries`` has another id or hash, as after deleting or rewriting the tail together with the head).
    Checkpoints are trusted only when their signature verifies: hybrid lines with the ``audit`` key ring
    ``ring`` (both halves, a key accepted at the line's time), Ed25519-only lines with ``public_key`` (the
    older ``audit_key_path`` key); every valid one is
    checked, the newest first. Lines that are not trusted (bad signature, another key, malformed, no key
    given) are listed in ``checkpoints_rejected`` and also make ``ok`` False: tampering with the lake is
    evidence too. Entries are read undecoded, so a non-UTF-8 field is a reported break, never a crash.
    """
    from redis.client import NEVER_DECODE

    trusted, rejected = _read_checkpoints(lake, public_key, ring) if lake is not None else ([], [])
    wanted = {cp["entries"]: cp for cp in trusted}  # entry number -> newest trusted checkpoint there
    seen: dict[int, tuple[str, str]] = {}
    stream = schema.key("audit")
    prev, count, last_id, start = GENESIS, 0, None, "-"
    while True:
        chunk = client.execute_command("XRANGE", stream, start, "+", "COUNT", batch, **{NEVER_DECODE: True})
        if not chunk:
            break
        for raw_id, raw in chunk:
            eid = _decode(raw_id)
            fields = {_decode(k): v for k, v in (raw or {}).items()}
            problem = _entry_problem(fields)
            if problem is not None:
                return _break(count, eid, f"malformed entry: {problem[1]}", field=problem[0])
            if fields["prev"] != prev:
                return _break(
                    count, eid, "prev-hash mismatch: an entry before it was deleted, inserted or reordered"
                )
            if entry_hash(*(fields[name] for name in _HASHED)) != fields["hash"]:
                return _break(count, eid, "content does not match its hash: the entry was edited")
            prev, count, last_id = fields["hash"], count + 1, eid
            if count in wanted:
                seen[count] = (eid, prev)
        start = "(" + str(last_id)
    head = text(client.get(schema.key("audit_head")) or GENESIS)
    if head != prev:
        return _break(count, last_id, "the head hash is not the last entry's: entries after it were removed")
    for cp in sorted(trusted, key=lambda c: c["line"], reverse=True):
        where = (
            f"signed checkpoint at line {cp['line']} ({cp['at']}: {cp['entries']} entries, "
            f"last {cp['entry_id']})"
        )
        if cp["entries"] > count:
            return _break(
                count,
                cp["entry_id"],
                f"the chain holds {count} entries, fewer than the {where}: "
                "entries were deleted together with the head",
                checkpoint=cp,
                checkpoints_rejected=rejected,
            )
        if seen.get(cp["entries"]) != (cp["entry_id"], cp["hash"]):
            got = seen.get(cp["entries"], ("?", "?"))
            return _break(
                count,
                got[0],
                f"entry number {cp['entries']} is {got[0]} with hash {got[1]}, not "
                f"the {where} with hash {cp['hash']}: history up to it was rewritten",
                checkpoint=cp,
                checkpoints_rejected=rejected,
            )
    newest = trusted[-1] if trusted else None
    if rejected and lake is not None:
        return _break(
            count,
            None,
            f"{len(rejected)} checkpoint line(s) of {checkpoints_path(lake)} are not "
            f"trusted (first: line {rejected[0]['line']}, {rejected[0]['reason']})",
            checkpoint=newest,
            checkpoints_rejected=rejected,
            head=head,
        )
    return {
        "ok": True,
        "entries_checked": count,
        "head": head,
        "first_bad": None,
        "reason": None,
        "checkpoint": newest,
        "checkpoints_rejected": [],
    }
