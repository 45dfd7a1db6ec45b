"""Signing key rings: hybrid post-quantum signatures (FIPS 204 ML-DSA-65 + Ed25519), rotation with a grace
period, and the Merkle tree that lets one signature cover a whole batch of orders.

A :class:`KeyRing` holds the keys of one purpose (``orders``, ``policy``, ``audit``) in
``<key_dir>/<purpose>/``: per key ``<id>.mldsa65.pem`` and ``<id>.ed25519.pem`` (private, mode 0600), their
``.pub`` halves beside them, and ``keyring.json`` (the active key id; per key its creation and retirement
time and fingerprint). The folder is made with mode 0700; a private key file that group or others can read
is refused with a :class:`~quantbridge.errors.ConfigError` naming the file and the ``chmod`` that fixes it.

A signature covers ``len(tag):tag`` followed by the message (:func:`framed`), so a signature made for one
purpose (tag) can never pass as one for another, whatever the messages. Both halves must verify
(:meth:`KeyRing.verify`): forging one needs breaking both ML-DSA-65 and Ed25519. Verifiers that only know
Ed25519 can still check the classical half (:meth:`KeyRing.verify_ed25519_only`).

:meth:`KeyRing.rotate` makes a new active key and retires the previous one; a retired key still verifies for
``grace_s`` seconds after its retirement (orders and records in flight), then it is refused. The clock is
injected (tests move it instead of sleeping).

Merkle tree (:func:`merkle_root`): leaves are SHA-256 digests; a leaf node is ``SHA-256(0x00 || leaf)``, an
inner node ``SHA-256(0x01 || left || right)`` (the prefixes keep a leaf from passing as an inner node), and
a level with an odd count is padded with ``SHA-256(0x02)``, which no leaf or inner node can equal short of a
preimage. A proof is the sibling of each level, bottom up; the index's bits say on which side.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbridge.errors import ConfigError, InputError, QuantbridgeError
from quantbridge.redis_client import text

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

    from quantbridge.settings import Settings

PURPOSES = ("orders", "policy", "audit")
#: Signature scheme written into records that carry a hybrid signature.
SCHEME = "ml-dsa-65+ed25519"
ML_DSA_65_SIGNATURE_BYTES = 3309
ED25519_SIGNATURE_BYTES = 64
RING_FILE = "keyring.json"


class SignatureError(QuantbridgeError, ValueError):
    """A signature does not verify; the message names the purpose, the key id and what failed."""


def framed(tag: str, message: bytes) -> bytes:
    """The bytes a signature covers: the tag's UTF-8 length in decimal, ``:``, the tag, then the message.

    The length prefix makes the encoding injective over (tag, message) pairs: ``("a", b"b:c")`` and
    ``("a:b", b"c")`` frame differently, so no signature made under one tag can be replayed under another.
    """
    if not tag:
        raise InputError("tag", tag, "a non-empty domain tag such as 'quantbridge-orders-batch-v1'")
    raw = tag.encode()
    return b"%d:" % len(raw) + raw + message


@dataclass(frozen=True)
class Signature:
    """A hybrid signature: the signing key's id and both halves, base64 (standard alphabet)."""

    key: str
    ml_dsa: str
    ed25519: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "ml_dsa": self.ml_dsa, "ed25519": self.ed25519}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): what the order-signature hash stores per root."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Any) -> Signature:
        """Parse ``{"key", "ml_dsa", "ed25519"}`` (all non-empty strings); InputError naming the field."""
        if not isinstance(d, dict):
            raise InputError("signature", str(d)[:80], 'an object {"key", "ml_dsa", "ed25519"}')
        for name in ("key", "ml_dsa", "ed25519"):
            value = d.get(name)
            if not isinstance(value, str) or not value:
                raise InputError(f"signature.{name}", str(value)[:80], "a non-empty string")
        return cls(key=d["key"], ml_dsa=d["ml_dsa"], ed25519=d["ed25519"])

    @classmethod
    def from_json(cls, raw: str | bytes) -> Signature:
        """Parse :meth:`to_json`'s text; InputError when it is not JSON or not the right shape."""
        try:
            parsed = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError("signature", str(raw)[:80], "JSON text of a signature object") from None
        return cls.from_dict(parsed)


def private_key_problem(path: Path) -> str:
    """Why the private key file ``path`` must not be used ('' when its mode is fine): a key that group or
    others can read is as good as leaked (anyone could sign forged orders or records)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return (
            f"a key file only its owner can read (mode 0600), found mode {mode:04o}: run `chmod 600 {path}`"
        )
    return ""


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never readable by others, not even briefly); O_EXCL:
    an existing key is never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def make_private_dir(path: Path) -> None:
    """Make ``path`` (and missing parents) with mode 0700 whatever the umask; an existing folder is kept."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"signature field {field} is not base64") from None


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass
class _Key:
    """One hybrid key of a ring: its public halves always, its private halves once loaded for signing."""

    id: str
    created: float
    retired_at: float | None
    fingerprint: str
    ml_dsa_pub: MLDSA65PublicKey
    ed25519_pub: Ed25519PublicKey


def _fingerprint(ml_dsa_raw: bytes, ed25519_raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(ml_dsa_raw + ed25519_raw).hexdigest()


#: Seconds between two looks at ``keyring.json`` when only checking keys (:meth:`KeyRing.check_key`).
RELOAD_S = 1.0


class KeyRing:
    """The keys of one purpose in ``<key_dir>/<purpose>/`` (see the module's docstring).

    ``create``: make the folder and a first key when there is none (else ConfigError). ``grace_s``: how long
    a retired key still verifies. ``clock``: seconds since the epoch (injected in tests). Rotations made by
    another process are picked up: the ring re-reads ``keyring.json`` whenever the file changed.
    """

    def __init__(
        self,
        key_dir: Path,
        purpose: str,
        *,
        grace_s: float = 7 * 86400,
        create: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if purpose not in PURPOSES:
            raise InputError("purpose", purpose, "one of " + ", ".join(PURPOSES))
        if not grace_s >= 0:
            raise ConfigError("key_grace_s", grace_s, "seconds >= 0")
        self.purpose, self.grace_s, self.clock = purpose, float(grace_s), clock
        self.dir = Path(key_dir) / purpose
        self._keys: dict[str, _Key] = {}
        self._active = ""
        self._stamp: tuple[int, int] | None = None
        self._stamped = 0.0  # time.monotonic() of the last look at keyring.json
        self._signers: dict[str, tuple[MLDSA65PrivateKey, Ed25519PrivateKey]] = {}
        if not (self.dir / RING_FILE).exists():
            if not create:
                raise ConfigError(
                    "key_dir",
                    str(key_dir),
                    f"a key ring for {purpose!r} in {self.dir} (none yet: run `qb keys rotate {purpose} "
                    "--reason TEXT` to make its first key)",
                )
            with self._locked():
                if not (self.dir / RING_FILE).exists():  # another process may have made it meanwhile
                    self._write_ring([self._new_key()])
        self._reload()

    # -- files ------------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on ``<dir>/.lock``: creation and rotation by concurrent processes serialise."""
        make_private_dir(self.dir)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _paths(self, key_id: str) -> dict[str, Path]:
        return {
            name: self.dir / f"{key_id}.{name}"
            for name in ("mldsa65.pem", "ed25519.pem", "mldsa65.pub", "ed25519.pub")
        }

    def _new_key(self) -> dict[str, Any]:
        """Generate a hybrid key, write its four files; returns its keyring.json record (not yet listed)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

        pq, ec = MLDSA65PrivateKey.generate(), Ed25519PrivateKey.generate()
        fp = _fingerprint(pq.public_key().public_bytes_raw(), ec.public_key().public_bytes_raw())
        now = self.clock()
        key_id = f"{self.purpose}-{datetime.fromtimestamp(now, UTC):%Y%m%dT%H%M%SZ}-{fp[7:19]}"
        paths = self._paths(key_id)
        pem, spki = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        for name, private in (("mldsa65", pq), ("ed25519", ec)):
            write_private(
                paths[f"{name}.pem"],
                private.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            )
            paths[f"{name}.pub"].write_bytes(private.public_key().public_bytes(pem, spki))
        return {"id": key_id, "created": now, "retired_at": None, "fingerprint": fp}

    def _write_ring(self, keys: list[dict[str, Any]]) -> None:
        """Write keyring.json atomically (temp file + rename): readers see the old or the new ring. The
        active key is the last one listed."""
        body = {"purpose": self.purpose, "active": keys[-1]["id"], "keys": keys}
        tmp = self.dir / f".{RING_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.dir / RING_FILE)

    def _read_ring(self) -> dict[str, Any]:
        path = self.dir / RING_FILE
        try:
            body = json.loads(path.read_text())
            keys = body["keys"]
            if body.get("purpose") != self.purpose or not keys or body.get("active") != keys[-1]["id"]:
                raise ValueError("purpose or active key does not match the listed keys")
            for k in keys:
                if not isinstance(k["id"], str) or not isinstance(k["created"], int | float):
                    raise ValueError(f"malformed key record {k!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                "key_dir", str(path), f"a key ring file written by quantbridge.signing ({exc})"
            ) from None
        return body

    def _reload_if_due(self) -> None:
        """:meth:`_reload`, at most every RELOAD_S: the per-order key check of the worker's cached roots must
        not stat a file per order (a rotation elsewhere is seen within RELOAD_S)."""
        if time.monotonic() - self._stamped >= RELOAD_S:
            self._reload()

    def _reload(self) -> None:
        """Re-read keyring.json and the public keys when the file changed since the last read."""
        self._stamped = time.monotonic()
        st = (self.dir / RING_FILE).stat()
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp == self._stamp:
            return
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PublicKey

        body = self._read_ring()
        keys: dict[str, _Key] = {}
        for record in body["keys"]:
            paths = self._paths(record["id"])
            for name in ("mldsa65.pem", "ed25519.pem"):  # refuse a readable private key even when verifying
                if paths[name].exists():
                    problem = private_key_problem(paths[name])
                    if problem:
                        raise ConfigError("key_dir", str(paths[name]), problem)
            old = self._keys.get(record["id"])
            if old is not None:
                pq_pub, ec_pub = old.ml_dsa_pub, old.ed25519_pub
            else:
                pq_any = serialization.load_pem_public_key(paths["mldsa65.pub"].read_bytes())
                ec_any = serialization.load_pem_public_key(paths["ed25519.pub"].read_bytes())
                if not isinstance(pq_any, MLDSA65PublicKey) or not isinstance(ec_any, Ed25519PublicKey):
                    raise ConfigError(
                        "key_dir",
                        str(paths["mldsa65.pub"]),
                        f"an ML-DSA-65 and an Ed25519 public key, found {type(pq_any).__name__} and "
                        f"{type(ec_any).__name__}",
                    )
                pq_pub, ec_pub = pq_any, ec_any
                fp = _fingerprint(pq_pub.public_bytes_raw(), ec_pub.public_bytes_raw())
                if fp != record["fingerprint"]:
                    raise ConfigError(
                        "key_dir",
                        str(paths["mldsa65.pub"]),
                        f"public keys with the fingerprint {record['fingerprint']} listed in {RING_FILE}, "
                        f"found {fp}",
                    )
            keys[record["id"]] = _Key(
                record["id"],
                record["created"],
                record.get("retired_at"),
                record["fingerprint"],
                pq_pub,
                ec_pub,
            )
        self._keys, self._active, self._stamp = keys, body["active"], stamp

    def _signer(self, key_id: str) -> tuple[MLDSA65PrivateKey, Ed25519PrivateKey]:
        """The private halves of ``key_id`` (loaded once; mode checked first)."""
        if key_id not in self._signers:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

            loaded = []
            for name, kind in (("mldsa65.pem", MLDSA65PrivateKey), ("ed25519.pem", Ed25519PrivateKey)):
                path = self._paths(key_id)[name]
                if not path.exists():
                    raise ConfigError(
                        "key_dir", str(path), f"the private key of {key_id} (this ring can only verify)"
                    )
                problem = private_key_problem(path)
                if problem:
                    raise ConfigError("key_dir", str(path), problem)
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
                if not isinstance(key, kind):
                    raise ConfigError("key_dir", str(path), f"a {kind.__name__}, found {type(key).__name__}")
                loaded.append(key)
            self._signers[key_id] = (loaded[0], loaded[1])  # type: ignore[assignment]
        return self._signers[key_id]

    # -- API --------------------------------------------------------------------------------------------

    @property
    def active(self) -> str:
        """The id of the key that signs now."""
        self._reload()
        return self._active

    def sign(self, tag: str, message: bytes) -> Signature:
        """Sign :func:`framed` (tag, message) with the active key: ML-DSA-65 and Ed25519, same bytes."""
        self._reload()
        pq, ec = self._signer(self._active)
        data = framed(tag, message)
        return Signature(self._active, _b64(pq.sign(data)), _b64(ec.sign(data)))

    def check_key(self, key_id: str, *, at: float | None = None) -> None:
        """Raise SignatureError unless ``key_id`` may verify now: the active key, or a retired one within
        ``grace_s`` of its retirement. ``at``: the time a long-lived record says it was signed (audit
        checkpoints): a key retired after it is accepted for that record, so rotation does not void history.
        Rotations by another process are seen within RELOAD_S.
        """
        self._reload_if_due()
        key = self._keys.get(key_id)
        if key is None:
            raise SignatureError(
                f"signature by key {key_id!r}, which is not in the {self.purpose} key ring {self.dir}"
            )
        if key.retired_at is None:
            return
        if at is not None and at <= key.retired_at:
            return
        age = self.clock() - key.retired_at
        if age > self.grace_s:
            raise SignatureError(
                f"signature by key {key_id!r} of the {self.purpose} ring, retired at {_iso(key.retired_at)}: "
                f"{age:.0f} s ago, beyond the grace period of {self.grace_s:.0f} s"
            )

    def verify(self, tag: str, message: bytes, sig: Signature, *, at: float | None = None) -> None:
        """Raise SignatureError unless both halves of ``sig`` verify over (tag, message) with an accepted
        key (:meth:`check_key`; ``at`` as there)."""
        from cryptography.exceptions import InvalidSignature

        self.check_key(sig.key, at=at)
        key = self._keys[sig.key]
        data = framed(tag, message)
        for half, verify, raw in (
            ("ML-DSA-65", key.ml_dsa_pub.verify, _unb64(sig.ml_dsa, "ml_dsa")),
            ("Ed25519", key.ed25519_pub.verify, _unb64(sig.ed25519, "ed25519")),
        ):
            try:
                verify(raw, data)
            except InvalidSignature:
                raise SignatureError(
                    f"the {half} half of the signature by key {sig.key!r} ({self.purpose}) does not verify "
                    f"over tag {tag!r}"
                ) from None

    def verify_ed25519_only(
        self, tag: str, message: bytes, sig: Signature, *, at: float | None = None
    ) -> None:
        """What a verifier without ML-DSA checks: the Ed25519 half alone (key rules of :meth:`verify`)."""
        from cryptography.exceptions import InvalidSignature

        self.check_key(sig.key, at=at)
        try:
            self._keys[sig.key].ed25519_pub.verify(_unb64(sig.ed25519, "ed25519"), framed(tag, message))
        except InvalidSignature:
            raise SignatureError(
                f"the Ed25519 half of the signature by key {sig.key!r} ({self.purpose}) does not verify "
                f"over tag {tag!r}"
            ) from None

    def rotate(self) -> str:
        """Make a new active key and retire the previous one now; returns the new key's id."""
        with self._locked():
            body = self._read_ring()
            now = self.clock()
            keys = body["keys"]
            for record in keys:
                if record.get("retired_at") is None:
                    record["retired_at"] = now
            keys.append(self._new_key())
            self._write_ring(keys)
        self._reload()
        return self._active

    def status(self) -> dict[str, Any]:
        """The active key id, the grace period and every key (id, created, retired_at, fingerprint, and
        whether it still verifies now)."""
        self._reload()
        now = self.clock()
        keys = []
        for key in self._keys.values():
            verifies = key.retired_at is None or now - key.retired_at <= self.grace_s
            keys.append(
                {
                    "id": key.id,
                    "created": _iso(key.created),
                    "retired_at": _iso(key.retired_at),
                    "fingerprint": key.fingerprint,
                    "verifies": verifies,
                }
            )
        return {
            "purpose": self.purpose,
            "dir": str(self.dir),
            "active": self._active,
            "grace_s": self.grace_s,
            "keys": keys,
        }


def keyring(settings: Settings, purpose: str, *, create: bool = True) -> KeyRing:
    """The key ring of ``purpose`` in ``settings.key_dir`` with ``settings.key_grace_s``."""
    return KeyRing(settings.key_dir, purpose, grace_s=settings.key_grace_s, create=create)


# -- Merkle tree ------------------------------------------------------------------------------------------

_EMPTY = hashlib.sha256(b"\x02").digest()


def _leaf_node(leaf: bytes) -> bytes:
    if len(leaf) != 32:
        raise InputError("leaf", leaf.hex()[:80], "a 32-byte SHA-256 digest")
    return hashlib.sha256(b"\x00" + leaf).digest()


def _inner(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves' nodes first, the root's level last (each level even-padded)."""
    if not leaves:
        raise InputError("leaves", 0, "at least one leaf")
    level = [_leaf_node(leaf) for leaf in leaves]
    levels = []
    while len(level) > 1:
        if len(level) % 2:
            level.append(_EMPTY)
        levels.append(level)
        level = [_inner(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    levels.append(level)
    return levels


def merkle_root(leaves: list[bytes]) -> bytes:
    """Root (32 bytes) of the tree over ``leaves`` (SHA-256 digests, at least one)."""
    return _levels(leaves)[-1][0]


def merkle_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """Sibling hashes of leaf ``index`` from the bottom level up (empty for a single leaf)."""
    if not 0 <= index < len(leaves):
        raise InputError("index", index, f"0 <= index < {len(leaves)} (the number of leaves)")
    return _proof(_levels(leaves), index)


def _proof(levels: list[list[bytes]], index: int) -> list[bytes]:
    proof = []
    for level in levels[:-1]:
        proof.append(level[index ^ 1])
        index //= 2
    return proof


def merkle_fold(leaf: bytes, index: int, proof: list[bytes]) -> bytes:
    """The root that ``leaf`` at ``index`` with ``proof`` leads to (compare it with a signed root). An index
    beyond what the proof's depth can address, or a proof hash that is not 32 bytes, raises InputError."""
    *_, (_level, root) = merkle_steps(leaf, index, [sibling.hex() for sibling in proof])
    return root


def merkle_steps(leaf: bytes, index: int, proof_hex: list[str]) -> Iterator[tuple[int, bytes]]:
    """(level, node) from the leaf's node (level 0) up to the root that ``leaf`` at ``index`` with the proof
    (hex sibling hashes) leads to, lazily: a verifier may stop at a node it already knows to be in a signed
    tree (the worker's verifier). An index beyond what the proof's depth can address, or a proof hash that is
    not 32 bytes, raises InputError."""
    if not 0 <= index < (1 << len(proof_hex)):
        raise InputError(
            "index", index, f"0 <= index < {1 << len(proof_hex)} for a proof of {len(proof_hex)} hashes"
        )
    node, sha = _leaf_node(leaf), hashlib.sha256
    yield 0, node
    for level, sibling_hex in enumerate(proof_hex, 1):
        sibling = bytes.fromhex(sibling_hex)
        if len(sibling) != 32:
            raise InputError("proof", sibling_hex[:80], "32-byte SHA-256 hashes")
        node = sha(b"\x01" + sibling + node).digest() if index & 1 else sha(b"\x01" + node + sibling).digest()
        index >>= 1
        yield level, node


# -- Order batches (the strategy and `qb order` sign; execution.signatures verifies) ------------------

#: Domain tag of order-batch signatures (a signature made for a policy bundle or a checkpoint never passes).
ORDER_TAG = "quantbridge-orders-batch-v1"
SIG_FIELDS = ("sig_root", "sig_proof", "sig_index")


def order_leaf(fields: Mapping[str, str]) -> bytes:
    """SHA-256 (32 bytes) of the order's fields except ``sig_*``, sorted by name, as ``name=value\\n`` lines.

    Raises InputError for a name holding ``=`` or a newline or a value holding a newline (the encoding would
    stop being one-to-one). Bytes names and values (an undecoded stream entry) are read as UTF-8.
    """
    plain = all(type(k) is str and type(v) is str for k, v in fields.items())
    return text_leaf(fields if plain else {text(k): text(v) for k, v in fields.items()})


def text_leaf(fields: Mapping[str, str]) -> bytes:
    """:func:`order_leaf` of fields already text (the worker's entries, decoded by its intake)."""
    pairs = sorted((name, value) for name, value in fields.items() if not name.startswith("sig_"))
    lines = "".join([f"{name}={value}\n" for name, value in pairs])
    # One scan each instead of per field (the worker checks every order): a newline anywhere but at the
    # end of a line, or '=' in a name, would make two field sets share a leaf.
    if lines.count("\n") != len(pairs) or "=" in "".join([name for name, _ in pairs]):
        for name, value in pairs:
            if "=" in name or "\n" in name:
                raise InputError("order field name", name[:80], "a name without '=' or a newline")
            if "\n" in value:
                raise InputError(f"order field {name}", value[:80], "a value without a newline")
    return hashlib.sha256(lines.encode()).digest()


def sign_orders(ring: KeyRing, orders: list[dict[str, str]]) -> tuple[str, str, list[dict[str, str]]]:
    """Sign a batch: (root hex, signature JSON for ``order_signatures``, the orders with their sig fields).

    ``orders``: each order's stream fields (``SubmitOrder.to_dict()``), at least one; not modified.
    """
    if not orders:
        raise InputError("orders", 0, "at least one order to sign")
    levels = _levels([order_leaf(order) for order in orders])
    root = levels[-1][0]
    signature = ring.sign(ORDER_TAG, root)
    signed = []
    for index, order in enumerate(orders):
        proof = ",".join(h.hex() for h in _proof(levels, index))
        signed.append({**order, "sig_root": root.hex(), "sig_proof": proof, "sig_index": str(index)})
    return root.hex(), signature.to_json(), signed
