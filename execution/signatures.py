"""Signed order batches: one hybrid signature (ML-DSA-65 + Ed25519, :mod:`quantbridge.signing`) per published
batch over the Merkle root of its orders, and a Merkle proof in each order.

Each order entry gains ``sig_root`` (root, hex), ``sig_proof`` (sibling hashes, hex, joined by ``,``; empty
for a batch of one) and ``sig_index`` (its position in the batch). The leaf of an order is the SHA-256 of its
fields other than ``sig_*``, sorted by name, as ``name=value\\n`` lines (:func:`order_leaf`); a name holding
``=`` or a newline, or a value holding a newline, is refused so that no two field sets share a leaf. The
root's signature (tag :data:`ORDER_TAG`) is stored in the Redis hash ``order_signatures`` (root hex ->
signature JSON) by the publisher, in the same Lua call as the orders. :func:`order_leaf` and
:func:`sign_orders` live in :mod:`quantbridge.signing` (the strategy, a sibling layer, signs too) and are
re-exported here.

:class:`OrderVerifier` is pure given the key ring and the root-signature mapping (no Redis): the worker reads
the roots its batch needs (:meth:`OrderVerifier.missing_roots`, one HMGET) and calls
:meth:`OrderVerifier.check` per entry before anything else; a reason (``BAD_SIGNATURE: ...``) means the
entry is dead-lettered. Verified roots are cached, so a batch of N orders costs one signature verification;
so are the inner nodes met on folds that reached a verified root, so an order of a batch whose neighbour was
checked before stops folding at their common ancestor (about two hashes instead of log2 N: a leaf that folds
to a node of a signed tree is in that tree).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from quantbridge.errors import InputError
from quantbridge.redis_client import text as _text
from quantbridge.signing import (
    ORDER_TAG,
    SIG_FIELDS,
    KeyRing,
    Signature,
    SignatureError,
    merkle_steps,
    order_leaf,
    sign_orders,
    text_leaf,
)

REASON = "BAD_SIGNATURE"
_HEX = frozenset("0123456789abcdef")
_PROOF = re.compile(r"[0-9a-f]{64}(?:,[0-9a-f]{64})*")
__all__ = ["ORDER_TAG", "REASON", "SIG_FIELDS", "OrderVerifier", "order_leaf", "sign_orders"]


def _is_hash(value: str) -> bool:
    return len(value) == 64 and _HEX.issuperset(value)


class OrderVerifier:
    """Checks order entries against their batch's signed Merkle root (see the module's docstring).

    ``cache_size``: how many verified roots are remembered (oldest dropped first); a remembered root's key is
    still checked on every order, so a key past its grace period is refused even for a cached root.
    """

    def __init__(self, ring: KeyRing, *, cache_size: int = 4096) -> None:
        self.ring = ring
        self.cache_size = cache_size
        self._verified: OrderedDict[str, str] = OrderedDict()  # root hex -> key id
        # (level, inner node) -> root hex, for nodes on folds that reached a verified root (bounded).
        self._nodes: dict[tuple[int, bytes], str] = {}
        self.node_cache_size = 64 * cache_size

    def missing_roots(self, entries: Iterable[Mapping[Any, Any]]) -> list[str]:
        """Distinct well-formed ``sig_root`` values of ``entries`` not verified yet (what to HMGET from
        ``order_signatures``), in first-seen order."""
        wanted: dict[str, None] = {}
        for fields in entries:
            raw = fields.get("sig_root", fields.get(b"sig_root"))
            if raw is None:
                continue
            root = _text(raw)
            if _is_hash(root) and root not in self._verified:
                wanted[root] = None
        return list(wanted)

    def check(self, fields: Mapping[Any, Any], root_signatures: Mapping[str, str | None]) -> str | None:
        """None when the entry is signed: its leaf folds to its ``sig_root`` with its proof and that root's
        signature (from ``root_signatures``, root hex -> JSON or None) verifies with an accepted key; else the
        reason, starting with ``BAD_SIGNATURE:``."""
        # The worker's entries are text already (intake decodes them): no copy then.
        plain = all(type(k) is str and type(v) is str for k, v in fields.items())
        entry = fields if plain else {_text(k): _text(v) for k, v in fields.items()}
        missing = [name for name in SIG_FIELDS if name not in entry]
        if missing:
            return f"{REASON}: unsigned order (no {', '.join(missing)})"
        root, proof_text, index_text = (entry[name] for name in SIG_FIELDS)
        if not _is_hash(root):
            return f"{REASON}: sig_root {root[:80]!r} is not a SHA-256 hex digest"
        if proof_text and not _PROOF.fullmatch(proof_text):
            return f"{REASON}: sig_proof {proof_text[:80]!r} is not comma-separated SHA-256 hex digests"
        proof_hex = proof_text.split(",") if proof_text else []
        if not index_text.isdigit():
            return f"{REASON}: sig_index {index_text[:80]!r} is not a non-negative integer"
        if int(index_text) >= 1 << len(proof_hex):
            return f"{REASON}: sig_index {index_text[:80]} is beyond a proof of {len(proof_hex)} hashes"
        path: list[tuple[int, bytes]] = []
        known = False
        try:
            for step in merkle_steps(text_leaf(entry), int(index_text), proof_hex):
                if self._nodes.get(step) == root:  # a node of this signed tree: the leaf is in it
                    known = True
                    break
                path.append(step)
        except InputError as exc:
            return f"{REASON}: {exc}"
        if not known:
            if path[-1][1].hex() != root:
                return f"{REASON}: leaf not under root {root[:16]}: a field of the order was altered or added"
            path.pop()  # the root itself is remembered with its signature
        reason = self._check_root(root, root_signatures)
        if reason is None:  # the nodes on the way are in the signed tree too
            if len(self._nodes) + len(path) > self.node_cache_size:
                self._nodes.clear()
            for step in path:
                self._nodes[step] = root
        return reason

    def _check_root(self, root: str, root_signatures: Mapping[str, str | None]) -> str | None:
        try:
            key = self._verified.get(root)
            if key is not None:
                self.ring.check_key(key)
                return None
            raw = root_signatures.get(root)
            if raw is None:
                return f"{REASON}: no signature stored for root {root[:16]}"
            signature = Signature.from_json(raw)
            self.ring.verify(ORDER_TAG, bytes.fromhex(root), signature)
        except (SignatureError, InputError) as exc:
            return f"{REASON}: root {root[:16]}: {exc}"
        self._verified[root] = signature.key
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return None
