"""Execution worker benchmark on a real redis-server over loopback.

Orders are pushed at a fixed rate (default 2,000/s) and flat out; latency is measured from the order's
XADD returning to the routing decision and to the fill being recorded (one process, one monotonic clock).
The floor, measured in the same run at the same rate, is a bare consumer: XADD -> XREADGROUP -> XACK with
no work, i.e. Redis's own stream round trip.

    python -m bench.worker_bench [--orders 4000] [--rates 400 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _producer(client, stream, orders, rate, sent):
    from quantbridge.messages import SubmitOrder

    interval = 1.0 / rate if rate else 0.0
    start = time.perf_counter()
    for i in range(orders):
        if interval:  # sleep (not spin) so the consumer thread gets the GIL
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        order = SubmitOrder(order_id=f"b{i}", ts="2026-01-05T14:30:00+00:00", strategy="bench", ticker="AAPL",
                            side="BUY" if i % 2 else "SELL", quantity=5.0, reference_price=50.0)
        client.xadd(stream, order.to_dict())
        sent[order.order_id] = time.perf_counter()


def _pct(values):
    a = np.array(values) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "p999_ms": round(float(np.percentile(a, 99.9)), 3)}


def run_worker(settings, orders, rate):
    from execution.worker import ExecutionWorker
    from quantbridge.redis_schema import RedisSchema
    from quantbridge.state import connect

    schema = RedisSchema("bench")
    client = connect(settings)
    client.flushdb()
    sent, decided, filled = {}, {}, {}

    def on_event(kind, order_id):
        (decided if kind == "decision" else filled)[order_id] = time.perf_counter()

    worker = ExecutionWorker(connect(settings), schema, "bench", ["AAPL"], {}, on_event=on_event)
    stop = threading.Event()
    loop = threading.Thread(target=worker.run, args=(stop,), kwargs={"block_ms": 5})
    loop.start()
    t0 = time.perf_counter()
    _producer(client, schema.key("orders"), orders, rate, sent)
    while len(filled) < orders and time.perf_counter() - t0 < 600:
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    stop.set()
    loop.join()
    common = [o for o in sent if o in decided and o in filled]
    return {"orders": len(common), "orders_per_s": round(len(common) / elapsed, 1),
            "to_decision": _pct([decided[o] - sent[o] for o in common]),
            "to_fill": _pct([filled[o] - sent[o] for o in common])}


def run_floor(settings, orders, rate):
    from quantbridge.state import connect

    client, reader = connect(settings), connect(settings)
    client.flushdb()
    stream, sent, seen = "floor:orders", {}, {}
    client.xgroup_create(stream, "g", id="0", mkstream=True)
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            for _s, entries in reader.xreadgroup("g", "c", {stream: ">"}, count=50, block=5) or []:
                for entry_id, fields in entries:
                    seen[fields["order_id"]] = time.perf_counter()
                    reader.xack(stream, "g", entry_id)

    loop = threading.Thread(target=consume)
    loop.start()
    _producer(client, stream, orders, rate, sent)
    deadline = time.perf_counter() + 60
    while len(seen) < orders and time.perf_counter() < deadline:
        time.sleep(0.01)
    stop.set()
    loop.join()
    return {"orders": len(seen), **_pct([seen[o] - sent[o] for o in sent if o in seen])}


def main() -> None:
    from quantbridge.services import RedisService
    from quantbridge.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--rates", type=float, nargs="+", default=[400, 2000], help="fixed rates; flat out is added")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="qb-bench-"))
    settings = load_settings({"redis_url": f"redis://127.0.0.1:{port}/0", "services_dir": folder})
    service = RedisService(settings)
    service.start()
    try:
        out = {}
        for label, rate in [*((f"fixed {r:g}/s", r) for r in args.rates), ("flat out", 0)]:
            floor = run_floor(settings, args.orders, rate)
            result = run_worker(settings, args.orders, rate)
            ratio = result["to_decision"]["p50_ms"] / floor["p50_ms"] if floor["p50_ms"] else float("nan")
            out[label] = {"worker": result, "redis_floor": floor, "p50_ratio_to_floor": round(ratio, 1)}
            print(f"{label:>14}: {result['orders_per_s']:8.1f} orders/s | order->decision p50 "
                  f"{result['to_decision']['p50_ms']:.2f} ms p99 {result['to_decision']['p99_ms']:.2f} ms "
                  f"p99.9 {result['to_decision']['p999_ms']:.2f} ms | ->fill p99 {result['to_fill']['p99_ms']:.2f} ms "
                  f"| Redis floor p50 {floor['p50_ms']:.3f} ms p99 {floor['p99_ms']:.3f} ms | p50 ratio {ratio:.1f}",
                  flush=True)
        if args.json:
            print(json.dumps(out, indent=2))
    finally:
        service.stop()


if __name__ == "__main__":
    main()
