"""The worker's CPU per order with and without order signatures, the stream full (no producer running).

4,000 orders are queued first (signed per batch of 500 as a rebalance publishes them, or unsigned), then one
in-process worker consumes them in full batches of 50; the figure is this process's CPU time (user + sys)
over the orders, so only the worker's own work counts (redis-server runs in its own process). Alternating
runs, ``--repeats`` of each, on the bench's own redis-server.

``--gc-pauses`` then times the full garbage collections of one signed run without and with the freeze
:meth:`execution.worker.ExecutionWorker.run` does at start.

    python -m bench.worker_signatures [--orders 4000] [--repeats 3] [--gc-pauses]
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

TICKERS = ["AAPL", "MSFT", "XOM", "JNJ", "KO"]


#: Full (generation 2) garbage collections during the last :func:`cpu_per_order` consumption, in ms.
FULL_COLLECTIONS: list[float] = []


_STARTED = [0.0]  # when the running full collection started


def _full_collections(phase: str, info: dict[str, int]) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _STARTED[0] = time.perf_counter()
    else:
        FULL_COLLECTIONS.append((time.perf_counter() - _STARTED[0]) * 1e3)


def cpu_per_order(url: str, n: int, signed: bool, key_dir: Path, freeze: bool = False) -> float:
    """Microseconds of this process's CPU per order consumed by one worker (signed orders or not). ``freeze``:
    what lives before the loop is frozen out of full collections first, as ExecutionWorker.run does."""
    import gc

    import redis

    from execution.signatures import OrderVerifier
    from execution.worker import ExecutionWorker
    from quantbridge.messages import SubmitOrder
    from quantbridge.redis_schema import RedisSchema
    from quantbridge.signing import KeyRing, sign_orders

    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    schema = RedisSchema("bench")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    client.hset(schema.key("risk_current"), mapping={"updated_at": now, "var": "0"})
    client.set(schema.heartbeat("var_sensor"), now, ex=3600)
    orders = [
        SubmitOrder(
            f"b{i}", now, "bench", TICKERS[i % 5], "BUY" if i % 2 else "SELL", 5.0 + i % 7, 50.0
        ).to_dict()
        for i in range(n)
    ]
    ring = KeyRing(key_dir, "orders")
    if signed:
        out = []
        for start in range(0, n, 500):
            root, signature, batch = sign_orders(ring, orders[start : start + 500])
            client.hset(schema.key("order_signatures"), root, signature)
            out += batch
        orders = out
    worker = ExecutionWorker(
        client,
        schema,
        "w1",
        TICKERS,
        {},
        marks={t: 50.0 for t in TICKERS},
        risk_stale_after_s=3600,
        verifier=OrderVerifier(ring) if signed else None,
    )
    pipe = client.pipeline(transaction=False)
    for order in orders:
        pipe.xadd(schema.key("orders"), order)
    pipe.execute()
    if freeze:
        gc.collect()
        gc.freeze()
    FULL_COLLECTIONS.clear()
    gc.callbacks.append(_full_collections)
    try:
        start, done = time.process_time(), 0
        while done < n:
            done += worker._read_once(None)
        return (time.process_time() - start) / n * 1e6
    finally:
        gc.callbacks.remove(_full_collections)
        gc.unfreeze()


def main() -> None:
    from urllib.parse import quote

    from app.services import RedisService
    from quantbridge.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--gc-pauses",
        action="store_true",
        help="then the full collections of a signed run, with and without freeze",
    )
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="qb-bench-"))
    overrides = {"redis_url": f"redis://127.0.0.1:{port}/0", "services_dir": folder}
    service = RedisService(load_settings(overrides))
    service.start()
    password = load_settings(overrides).redis_password.get_secret_value()
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    runs: dict[bool, list[float]] = {False: [], True: []}
    try:
        for _ in range(args.repeats):
            for signed in (False, True):
                runs[signed].append(cpu_per_order(url, args.orders, signed, folder / "keys"))
                print(
                    f"{'signed' if signed else 'unsigned':>8}: {runs[signed][-1]:6.1f} us CPU per order",
                    flush=True,
                )
    finally:
        service.stop()
    off, on = median(runs[False]), median(runs[True])
    print(f"median: unsigned {off:.1f} us, signed {on:.1f} us, cost {on - off:+.1f} us per order")
    if args.gc_pauses:
        service.start()
        try:
            for freeze in (False, True):
                cpu_per_order(url, args.orders, True, folder / "keys", freeze=freeze)
                pauses = ", ".join(f"{ms:.1f}" for ms in FULL_COLLECTIONS) or "none"
                print(f"full collections, {'frozen' if freeze else 'not frozen'} at start: {pauses} (ms)")
        finally:
            service.stop()


if __name__ == "__main__":
    main()
