"""Execution worker benchmark on a real redis-server over loopback.

Orders are pushed by a producer process at a fixed rate (default 400/s and 2,000/s) and flat out, and
consumed by ``--workers`` worker processes (one consumer group, as in production). Latency is measured
from the producer issuing the order's XADD to the routing decision and to the fill being recorded
(workers): separate processes, one clock (``time.perf_counter`` is CLOCK_MONOTONIC, system-wide on Linux).
The floor, measured in the same run at the same rate with the same processes, is a bare consumer:
XADD -> XREADGROUP -> XACK with no work, i.e. Redis's own stream round trip.

The worker fails closed, so each run first publishes what a healthy VaR sensor leaves in Redis: fresh
``risk:current`` figures (``updated_at`` now) and the sensor's heartbeat, with a one-hour TTL, and the worker
judges orders at a mark of 50 per ticker (the orders' own reference price, inside the 10% price band). No
sensor process runs: the benchmark measures the worker's own cost (reads, policies, reservation, audit).

    python -m bench.worker_bench [--orders 4000] [--rates 400 2000] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

SCHEMA_PREFIX = "bench"
TICKERS = ["AAPL", "MSFT", "XOM", "JNJ", "KO"]
#: The worker's marks (the orders carry reference_price 50) and its staleness bound, far beyond a run.
MARK = 50.0
RISK_FRESH_S = 3600


def _orders(n: int) -> list[dict[str, str]]:
    from quantbridge.messages import SubmitOrder

    return [
        SubmitOrder(
            order_id=f"b{i}",
            ts="2026-01-05T14:30:00+00:00",
            strategy="bench",
            ticker=TICKERS[i % len(TICKERS)],
            side="BUY" if i % 2 else "SELL",
            quantity=float(5 + i % 7),
            reference_price=50.0,
        ).to_dict()
        for i in range(n)
    ]


def _produce(url: str, stream: str, n: int, rate: float, go: Any, out: Any) -> None:
    import redis

    client = redis.Redis.from_url(url)
    orders = _orders(n)
    interval = 1.0 / rate if rate else 0.0
    sent: dict[str, float] = {}
    go.wait()
    start = time.perf_counter()
    for i, order in enumerate(orders):
        if interval:
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sent[order["order_id"]] = time.perf_counter()  # before the XADD: the order is submitted
        client.xadd(stream, order)
    out.put(sent)


def _work(url: str, consumer: str, n: int, ready: Any, stop: Any, out: Any) -> None:
    import threading

    import redis

    from execution.worker import ExecutionWorker
    from quantbridge.redis_schema import RedisSchema

    decided: dict[str, float] = {}
    filled: dict[str, float] = {}

    def on_event(kind: str, order_id: str) -> None:
        (decided if kind == "decision" else filled)[order_id] = time.perf_counter()

    worker = ExecutionWorker(
        redis.Redis.from_url(url),
        RedisSchema(SCHEMA_PREFIX),
        consumer,
        TICKERS,
        {},
        on_event=on_event,
        marks={t: MARK for t in TICKERS},
        risk_stale_after_s=RISK_FRESH_S,
    )
    halt = threading.Event()
    loop = threading.Thread(target=worker.run, args=(halt,), kwargs={"block_ms": 5})
    loop.start()
    ready.set()
    stop.wait()
    halt.set()
    loop.join()
    out.put((decided, filled))


def _floor(url: str, stream: str, ready: Any, stop: Any, out: Any) -> None:
    import redis

    reader = redis.Redis.from_url(url, decode_responses=True)
    reader.xgroup_create(stream, "g", id="0", mkstream=True)
    seen: dict[str, float] = {}
    ready.set()
    while not stop.is_set():
        for _s, entries in reader.xreadgroup("g", "c", {stream: ">"}, count=50, block=5) or []:
            now = time.perf_counter()
            for _entry_id, fields in entries:
                seen[fields["order_id"]] = now
            reader.xack(stream, "g", *[e for e, _ in entries])
    out.put(seen)


def _publish_fresh_risk(client: Any, schema: Any) -> None:
    """What a VaR sensor writes after a successful refresh (figures, then its heartbeat), valid for
    RISK_FRESH_S: without it the fail-closed worker rejects every risk-increasing order (RISK_STALE)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat(timespec="seconds")
    client.hset(schema.key("risk_current"), mapping={"updated_at": now, "var": "0", "model": "bench"})
    client.set(schema.heartbeat("var_sensor"), now, ex=RISK_FRESH_S)
    client.close()


def _pct(values: list[float]) -> dict[str, float]:
    a = np.array(values) * 1000
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "p999_ms": round(float(np.percentile(a, 99.9)), 3),
    }


def _run(url: str, n: int, rate: float, workers: int, floor: bool) -> dict[str, Any]:
    import redis

    from quantbridge.redis_schema import RedisSchema

    redis.Redis.from_url(url).flushdb()
    if not floor:
        _publish_fresh_risk(redis.Redis.from_url(url, decode_responses=True), RedisSchema(SCHEMA_PREFIX))
    ctx = mp.get_context("spawn")
    go, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    stream = "floor:orders" if floor else RedisSchema(SCHEMA_PREFIX).key("orders")
    readies, procs = [], []
    for i in range(1 if floor else workers):
        ready = ctx.Event()
        target, args = (
            (_floor, (url, stream, ready, stop, out))
            if floor
            else (_work, (url, f"w{i}", n, ready, stop, out))
        )
        procs.append(ctx.Process(target=target, args=args))
        readies.append(ready)
        procs[-1].start()
    for ready in readies:
        ready.wait(120)
    sender_out = ctx.Queue()
    sender = ctx.Process(target=_produce, args=(url, stream, n, rate, go, sender_out))
    sender.start()
    t0 = time.perf_counter()
    go.set()
    sent = sender_out.get(timeout=600)
    sender.join()
    client = redis.Redis.from_url(url)
    key = None if floor else RedisSchema(SCHEMA_PREFIX).key("order_state")
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        done = n - int(client.xpending(stream, "g" if floor else "workers")["pending"])
        if floor and client.xinfo_groups(stream)[0]["entries-read"] == n and done == n:
            break
        if not floor and client.hlen(key) == n and done == n:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    stop.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    if floor:
        seen = results[0]
        return {"orders": len(seen), **_pct([seen[o] - sent[o] for o in sent if o in seen])}
    decided = {k: v for d, _ in results for k, v in d.items()}
    filled = {k: v for _, f in results for k, v in f.items()}
    common = [o for o in sent if o in decided and o in filled]
    return {
        "orders": len(common),
        "workers": workers,
        "orders_per_s": round(len(common) / elapsed, 1),
        "to_decision": _pct([decided[o] - sent[o] for o in common]),
        "to_fill": _pct([filled[o] - sent[o] for o in common]),
    }


def main() -> None:
    import socket

    from app.services import RedisService
    from quantbridge.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[400, 2000], help="fixed rates; flat out is added"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker processes to compare")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="qb-bench-"))
    overrides = {"redis_url": f"redis://127.0.0.1:{port}/0", "services_dir": folder}
    service = RedisService(load_settings(overrides))
    service.start()  # requires a password: QB_REDIS_PASSWORD, else one generated into the folder
    # The processes get the password inside the URL (handed over by multiprocessing, never printed).
    password = load_settings(overrides).redis_password.get_secret_value()
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    print(
        f"risk figures: fresh {SCHEMA_PREFIX}:risk:current and the VaR sensor's heartbeat published before "
        f"each worker run (valid {RISK_FRESH_S} s; no sensor process); marks {MARK:g} per ticker",
        flush=True,
    )
    try:
        out: dict[str, Any] = {}
        for label, rate in [*((f"fixed {r:g}/s", r) for r in args.rates), ("flat out", 0)]:
            floor = _run(url, args.orders, rate, 1, floor=True)
            for workers in args.workers:
                result = _run(url, args.orders, rate, workers, floor=False)
                ratio = result["to_decision"]["p50_ms"] / floor["p50_ms"] if floor["p50_ms"] else float("nan")
                out[f"{label}, {workers} worker(s)"] = {
                    "worker": result,
                    "redis_floor": floor,
                    "p50_ratio_to_floor": round(ratio, 1),
                }
                print(
                    f"{label:>14} x{workers}: {result['orders_per_s']:8.1f} orders/s | order->decision p50 "
                    f"{result['to_decision']['p50_ms']:.2f} ms p99 {result['to_decision']['p99_ms']:.2f} ms "
                    f"p99.9 {result['to_decision']['p999_ms']:.2f} ms | "
                    f"->fill p99 {result['to_fill']['p99_ms']:.2f} ms | "
                    f"Redis floor p50 {floor['p50_ms']:.3f} ms p99 {floor['p99_ms']:.3f} ms | p50 ratio "
                    f"{ratio:.1f}",
                    flush=True,
                )
        if args.json:
            print(json.dumps(out, indent=2))
    finally:
        service.stop()


if __name__ == "__main__":
    main()
