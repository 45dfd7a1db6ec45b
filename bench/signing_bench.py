"""Cost of order signatures: ML-DSA-65, Ed25519 and the hybrid of both (:mod:`quantbridge.signing`), and per
order, signing each order against one signed Merkle root per batch (:mod:`execution.signatures`).

Part 1 times one signature and one verification of each scheme over a 32-byte message (a Merkle root), the
fastest of ``--repeat`` runs of ``--n`` operations each. Part 2, at batch sizes 50, 500 and 2,000 orders of
realistic stream fields (``SubmitOrder.to_dict()``), gives per order:

* *per-order signing*: the publisher computes each order's leaf and signs it (hybrid); the worker verifies
  one hybrid signature per order;
* *Merkle batch*: the publisher computes every leaf, the tree, each order's proof and one hybrid signature
  (:func:`~quantbridge.signing.sign_orders`); the worker runs :meth:`OrderVerifier.check` on every entry
  (leaf, proof fold, one signature verification per batch, cached root after it), cold cache per batch.

Keys live in a temporary directory (never the project's key ring). Single process, single thread.

    python -m bench.signing_bench [--n 200] [--repeat 7] [--sizes 50 500 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from execution.signatures import OrderVerifier
from quantbridge.messages import SubmitOrder
from quantbridge.signing import KeyRing, order_leaf, sign_orders

TAG = "quantbridge-bench-v1"


def _best_us(fn: Callable[[], Any], n: int, repeat: int) -> float:
    """Fastest of ``repeat`` runs, as the mean microseconds of one ``fn()`` call (``n`` calls per run): on a
    shared machine other processes only ever add time, so the fastest run is the least disturbed."""
    fn()  # warm up (imports, key loading)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return min(runs)


def orders(n: int) -> list[dict[str, str]]:
    """``n`` stream entries shaped like the strategy's (ids, SHAP explanation of five features)."""
    return [
        SubmitOrder(
            order_id=f"2026-01-02:gbm_mv:T{i:04d}:20260101T000000",
            ts="2026-01-02T21:00:00+00:00",
            strategy="gbm_mv",
            ticker=f"T{i:04d}",
            side="BUY" if i % 2 else "SELL",
            quantity=float(10 + i % 90),
            reference_price=100.0 + i % 50,
            model_version="20260101T000000",
            explanation={f"f{k}": 0.01 * (k + 1) for k in range(5)},
        ).to_dict()
        for i in range(n)
    ]


def primitives(ring: KeyRing, n: int, repeat: int) -> list[dict[str, Any]]:
    """Sign and verify times (µs) of ML-DSA-65, Ed25519 and the hybrid over a 32-byte message."""
    pq, ec = ring._signer(ring.active)
    pq_pub, ec_pub = pq.public_key(), ec.public_key()
    message = b"\x5a" * 32
    pq_sig, ec_sig = pq.sign(message), ec.sign(message)
    hybrid = ring.sign(TAG, message)
    rows = [
        {
            "scheme": "ML-DSA-65",
            "sign_us": _best_us(lambda: pq.sign(message), n, repeat),
            "verify_us": _best_us(lambda: pq_pub.verify(pq_sig, message), n, repeat),
            "signature_bytes": len(pq_sig),
        },
        {
            "scheme": "Ed25519",
            "sign_us": _best_us(lambda: ec.sign(message), n, repeat),
            "verify_us": _best_us(lambda: ec_pub.verify(ec_sig, message), n, repeat),
            "signature_bytes": len(ec_sig),
        },
        {
            "scheme": "hybrid (KeyRing)",
            "sign_us": _best_us(lambda: ring.sign(TAG, message), n, repeat),
            "verify_us": _best_us(lambda: ring.verify(TAG, message, hybrid), n, repeat),
            "signature_bytes": len(pq_sig) + len(ec_sig),
        },
    ]
    return rows


def per_order(ring: KeyRing, size: int, repeat: int) -> dict[str, Any]:
    """Per-order publisher and worker cost (µs) of both schemes for one batch of ``size`` orders."""
    batch = orders(size)
    each_sig = [ring.sign(TAG, order_leaf(o)) for o in batch]

    def sign_each() -> None:
        for o in batch:
            ring.sign(TAG, order_leaf(o))

    def verify_each() -> None:
        for o, sig in zip(batch, each_sig, strict=True):
            ring.verify(TAG, order_leaf(o), sig)

    root, signature, signed = sign_orders(ring, batch)
    roots = {root: signature}

    def verify_batch() -> None:
        verifier = OrderVerifier(ring)  # cold: the batch's one signature verification is counted
        for entry in signed:
            if verifier.check(entry, roots) is not None:
                raise AssertionError("a genuine order did not verify")

    runs = max(3, min(repeat, 2000 // size))  # per-order signing of 2,000 orders takes seconds a run
    out = {
        "batch": size,
        "each_sign_us": _best_us(sign_each, 1, runs) / size,
        "each_verify_us": _best_us(verify_each, 1, runs) / size,
        "merkle_sign_us": _best_us(lambda: sign_orders(ring, batch), 1, repeat) / size,
        "merkle_verify_us": _best_us(verify_batch, 1, repeat) / size,
        "proof_bytes": len(signed[-1]["sig_proof"]),
    }
    out["sign_speedup"] = out["each_sign_us"] / out["merkle_sign_us"]
    out["verify_speedup"] = out["each_verify_us"] / out["merkle_verify_us"]
    return out


def table(prims: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scheme | sign (µs) | verify (µs) | signature (bytes) |",
        "|---|---:|---:|---:|",
    ]
    for p in prims:
        lines.append(
            f"| {p['scheme']} | {p['sign_us']:,.1f} | {p['verify_us']:,.1f} | {p['signature_bytes']:,} |"
        )
    lines += [
        "",
        "| batch | per-order sign (µs/order) | Merkle sign (µs/order) | per-order verify (µs/order) | "
        "Merkle verify (µs/order) | worker orders/s/core, per-order / Merkle | proof (chars) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']:,} | {r['each_sign_us']:,.1f} | {r['merkle_sign_us']:,.1f} "
            f"({r['sign_speedup']:,.0f}x) | {r['each_verify_us']:,.1f} | {r['merkle_verify_us']:,.1f} "
            f"({r['verify_speedup']:,.0f}x) | {1e6 / r['each_verify_us']:,.0f} / "
            f"{1e6 / r['merkle_verify_us']:,.0f} | {r['proof_bytes']:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="operations per timed run (part 1)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs; the fastest is reported")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 2000], help="batch sizes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qb-signing-bench-") as tmp:
        ring = KeyRing(Path(tmp), "orders")
        prims = primitives(ring, args.n, args.repeat)
        rows = [per_order(ring, size, args.repeat) for size in args.sizes]
    if args.json:
        print(json.dumps({"primitives": prims, "per_order": rows}, indent=2))
    else:
        print(table(prims, rows))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
