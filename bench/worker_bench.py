"""Execution worker benchmark on a real redis-server over loopback.

Orders are pushed by a producer process at a fixed rate (default 400/s and 2,000/s) and flat out, and
consumed by ``--workers`` worker processes (one consumer group, as in production). Latency is measured
from the producer issuing the order's XADD to the routing decision and to the fill being recorded
(workers): separate processes, one clock (``time.perf_counter`` is CLOCK_MONOTONIC, system-wide on Linux).
The floor, measured in the same run at the same rate with the same processes, is a bare consumer:
XADD -> XREADGROUP -> XACK with no work, i.e. Redis's own stream round trip, sent through the worker's own
client (:class:`quantbridge.redis_client.Wire`), so the floor is never dearer than the worker's round trips.

The worker fails closed, so each run first publishes what a healthy VaR sensor leaves in Redis: fresh
``risk:current`` figures (``updated_at`` now) and the sensor's heartbeat, with a one-hour TTL, and the worker
judges orders at a mark of 50 per ticker (the orders' own reference price, inside the 10% price band). No
sensor process runs: the benchmark measures the worker's own cost (reads, policies, reservation, audit).

Modes (``--modes unpinned pinned``, or ``--pin`` for both, reported in one run): *unpinned* lets the
scheduler place every process on any core; *pinned* gives the worker processes one core of their own (the
last core this process may use) and puts the producer, the bench's redis-server (all its threads) and the
bench itself on the others, as a production host gives the worker its own core. The floor consumer is
pinned like a worker. With two workers pinned, both share the worker core: the layout stays "workers on
their own core, Redis and the producer elsewhere" (one worker per core would make a worker share a core
with redis-server and the producer again), so a second worker can only overlap its Redis waits with the
first one's work, not add a core.

Each row also gives the worker's CPU time per order: the worker processes' user+sys CPU (all threads, from
the scheduler's per-thread run time in ``/proc``) from the producer's start to the last order done, idle
polling included, divided by the orders they decided; the floor consumer's and redis-server's likewise.

``--signatures off on`` compares, in one run, unsigned orders (the worker without a verifier) and orders
signed as the strategy publishes them (ML-DSA-65 + Ed25519 over a Merkle root per batch of
``SIGNED_BATCH`` orders, signed before the clock starts: signing is the publisher's cost, measured by
``python -m bench.signing_bench``) checked by the worker's :class:`execution.signatures.OrderVerifier`
before anything else (the production setting, ``QB_ORDER_SIGNATURES=required``).

``--profile PREFIX`` records the first worker run with py-spy (by the worker's pid, busy and waiting alike):
``PREFIX.svg`` (flame graph), ``PREFIX.txt`` (collapsed stacks) and ``PREFIX.md`` (the shares of
``process_batch``'s wall time by part, :func:`shares_table`, with the worker's user and kernel CPU).
``make profile-worker``.

    python -m bench.worker_bench [--orders 4000] [--rates 400 2000] [--workers 1 2] [--modes unpinned pinned]
        [--pin] [--no-flat-out] [--signatures on|off ...] [--profile PREFIX] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

SCHEMA_PREFIX = "bench"
TICKERS = ["AAPL", "MSFT", "XOM", "JNJ", "KO"]
#: The worker's marks (the orders carry reference_price 50) and its staleness bound, far beyond a run.
MARK = 50.0
#: Orders per signed batch when ``--signatures on`` (a rebalance publishes its orders as one batch).
SIGNED_BATCH = 500
RISK_FRESH_S = 3600
MODES = ("unpinned", "pinned")
#: py-spy's sampling rate (Hz) for --profile.
PROFILE_RATE = 500


def layout(cpus: Iterable[int], mode: str) -> tuple[set[int], set[int]]:
    """(worker cores, cores of everything else) for a mode: pinned gives the workers the highest core and
    the rest the others; unpinned gives everyone every core."""
    all_cpus = sorted(cpus)
    if mode == "unpinned":
        return set(all_cpus), set(all_cpus)
    if len(all_cpus) < 2:
        raise SystemExit(f"--pin needs at least two cores; this process may use {all_cpus}")
    return {all_cpus[-1]}, set(all_cpus[:-1])


def _pin_all_threads(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` (sched_setaffinity applies to one thread; redis-server has several)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def cpu_s(pids: Iterable[int]) -> float:
    """CPU seconds (user+sys) the processes have used so far, all threads: the scheduler's nanosecond
    run time per thread (/proc/<pid>/task/<tid>/schedstat), else the clock ticks of /proc/<pid>/stat."""
    total = 0.0
    for pid in pids:
        try:
            total += sum(
                int((task / "schedstat").read_text().split()[0]) / 1e9
                for task in Path(f"/proc/{pid}/task").iterdir()
            )
        except (
            FileNotFoundError,
            ProcessLookupError,
        ):  # no schedstat (or a thread gone): ticks of the process
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


#: (part, (file, functions)) in order: a sample goes to the part of its innermost frame that a rule matches. A
#: frame is "function (file:line)" as py-spy writes it; a rule matches a frame whose file contains ``file``
#: and whose function's last name is one of ``functions`` ("name*": a prefix), or any function for None.
#: Redis and JSON come first, so that the wire and the encoding are counted wherever they happen (a
#: commit's Lua call is a Redis round trip, its entries' encoding JSON, the rest of it the audit commit);
#: regopy's conversion of Python values into Rego values is the policy input, its query Rego evaluation.
PARTS: list[tuple[str, tuple[str, tuple[str, ...] | None]]] = [
    ("JSON encoding", ("json/", None)),
    ("JSON encoding", ("orjson", None)),
    ("JSON encoding", ("msgpack", None)),
    ("JSON encoding", ("quantbridge/json_text.py", None)),
    ("Redis round trips", ("redis/", None)),
    ("Redis round trips", ("quantbridge/redis_client.py", None)),
    ("Redis round trips", ("hiredis", None)),
    ("Redis round trips", ("socket.py", None)),
    ("Redis round trips", ("execution/worker.py", ("_read", "_read_capped"))),
    ("building the policy input", ("regopy", ("rego_input*",))),
    ("building the policy input", ("execution/policy.py", ("_item", "_items", "_input*"))),
    (
        "building the policy input",
        ("execution/decisions.py", ("context", "risk_context", "pending", "risk_age")),
    ),
    ("Rego evaluation", ("regopy", None)),
    ("Rego evaluation", ("regorus", None)),
    ("Rego evaluation", ("opa_", None)),
    ("Rego evaluation", ("execution/policy.py", None)),
    ("order signatures", ("execution/signatures.py", None)),
    ("order signatures", ("quantbridge/signing.py", None)),
    ("audit commit", ("quantbridge/audit.py", None)),
    ("venues", ("execution/venues.py", None)),
    ("venues", ("execution/worker.py", ("_execute",))),
    ("routing", ("execution/router.py", None)),
    ("routing", ("execution/kalman.py", None)),
    ("decision core (validation, states, plans)", ("execution/decisions.py", None)),
    ("decision core (validation, states, plans)", ("execution/intake.py", None)),
    ("decision core (validation, states, plans)", ("quantbridge/messages.py", None)),
]
OTHER = "other (metrics, the worker's own glue)"


def _frame(frame: str) -> tuple[str, str]:
    """("function", "file") of a py-spy frame "function (file:line)"."""
    function, _, where = frame.rpartition(" (")
    return (function or frame), where.rsplit(":", 1)[0]


def _named(function: str, names: tuple[str, ...] | None) -> bool:
    """``function`` ("Class.method", "outer.<locals>.inner") is one of ``names``: its last name equals one, or
    it (or its last name) starts with a "prefix*" one (so an inner function counts with its outer one)."""
    last = function.rsplit(".", 1)[-1]
    return names is None or any(
        (function.startswith(n[:-1]) or last.startswith(n[:-1])) if n.endswith("*") else last == n
        for n in names
    )


def part_of(stack: list[str]) -> str:
    """The part of the worker a sample's stack (outermost frame first) is counted in."""
    for frame in reversed(stack):
        function, file = _frame(frame)
        for part, (in_file, names) in PARTS:
            if in_file in file and _named(function, names):
                return part
    return OTHER


def profile_counts(raw: Iterable[str], root: str = "process_batch") -> tuple[Counter[str], int]:
    """Samples under ``root`` (a function's last name: the worker's process_batch) by part (:data:`PARTS`),
    and all samples; from py-spy's raw (collapsed) output, "frame;frame;... count" per line."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw:
        stack_text, _, count_text = line.strip().rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        stack = stack_text.split(";")
        at = next((i for i, f in enumerate(stack) if _frame(f)[0].rsplit(".", 1)[-1] == root), None)
        if at is not None:
            counts[part_of(stack[at:])] += count
    return counts, total


def user_sys_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all threads, in clock ticks (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def shares_table(
    counts: Counter[str], rate: float, wall_s: float, user_s: float, sys_s: float, orders: int, title: str
) -> str:
    """A Markdown table of :func:`profile_counts`: each part's share of process_batch's wall time (samples
    taken busy or waiting, ``rate`` per second, over ``wall_s`` seconds), with the worker's measured CPU
    (``user_s``, ``sys_s``) for the ``orders`` it handled."""
    under = sum(counts.values())
    rows = "\n".join(f"| {part} | {100 * n / under:.1f}% |" for part, n in counts.most_common())
    cpu = f"{(user_s + sys_s) / orders * 1e6:.0f} us" if orders else "n/a"
    foot = (
        f"{under} samples at {rate:g} Hz: process_batch ran {100 * under / rate / wall_s:.0f}% of the "
        f"{wall_s:.2f} s sampled (the rest: waiting for orders). Worker CPU {user_s:.2f} s user + "
        f"{sys_s:.2f} s kernel, {cpu} per order."
    )
    return f"{title}\n\n| part of process_batch | share of its wall time |\n|---|---|\n{rows}\n\n{foot}\n"


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


def _signed(orders: list[dict[str, str]], key_dir: Path, client: Any) -> list[dict[str, str]]:
    """``orders`` signed per SIGNED_BATCH as the publishers sign them, the roots' signatures stored."""
    from quantbridge.redis_schema import RedisSchema
    from quantbridge.signing import KeyRing, sign_orders

    ring, out = KeyRing(key_dir, "orders", create=False), []
    key = RedisSchema(SCHEMA_PREFIX).key("order_signatures")
    for start in range(0, len(orders), SIGNED_BATCH):
        root, signature, signed = sign_orders(ring, orders[start : start + SIGNED_BATCH])
        client.hset(key, root, signature)
        out += signed
    return out


def _produce(
    url: str,
    stream: str,
    n: int,
    rate: float,
    ready: Any,
    go: Any,
    out: Any,
    cpus: set[int],
    key_dir: Path | None = None,
) -> None:
    import redis

    os.sched_setaffinity(0, cpus)
    client = redis.Redis.from_url(url)
    orders = _orders(n) if key_dir is None else _signed(_orders(n), key_dir, client)
    interval = 1.0 / rate if rate else 0.0
    sent: dict[str, float] = {}
    client.ping()  # connected before the clock starts
    ready.set()
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


def _allow_tracing_by(pid: int) -> None:
    """Let ``pid`` and its children (py-spy, started by the bench) read this process without root where
    Yama's ptrace_scope is 1 (only ancestors may, by default): prctl(PR_SET_PTRACER)."""
    import ctypes

    pr_set_ptracer = 0x59616D61
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_ptracer, pid, 0, 0, 0)  # fails harmlessly without Yama


def _work(
    url: str,
    consumer: str,
    n: int,
    ready: Any,
    stop: Any,
    out: Any,
    cpus: set[int],
    traced: bool = False,
    key_dir: Path | None = None,
) -> None:
    import threading

    os.sched_setaffinity(0, cpus)  # before any thread starts: the worker's threads inherit it
    if traced:
        _allow_tracing_by(os.getppid())

    import redis

    from execution.signatures import OrderVerifier
    from execution.worker import ExecutionWorker
    from quantbridge.redis_schema import RedisSchema
    from quantbridge.signing import KeyRing

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
        verifier=OrderVerifier(KeyRing(key_dir, "orders", create=False)) if key_dir is not None else None,
    )
    halt = threading.Event()
    loop = threading.Thread(target=worker.run, args=(halt,), kwargs={"block_ms": 5})
    loop.start()
    ready.set()
    stop.wait()
    halt.set()
    loop.join()
    out.put((decided, filled))


def _floor(url: str, stream: str, ready: Any, stop: Any, out: Any, cpus: set[int]) -> None:
    import redis

    os.sched_setaffinity(0, cpus)
    from quantbridge.redis_client import Wire, stream_entries

    reader = redis.Redis.from_url(url, decode_responses=True)
    reader.xgroup_create(stream, "g", id="0", mkstream=True)
    wire = Wire(reader)  # the worker's own round trips: the floor's are no dearer than its
    seen: dict[str, float] = {}
    ready.set()
    read = ("XREADGROUP", "GROUP", "g", "c", "COUNT", 50, "BLOCK", 5, "STREAMS", stream, ">")
    while not stop.is_set():
        for entries in stream_entries(wire.execute(read)[0]):
            now = time.perf_counter()
            for _entry_id, fields in entries:
                seen[fields["order_id"]] = now
            wire.execute(("XACK", stream, "g", *[e for e, _ in entries]))
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


def _us(seconds: float, orders: int) -> float:
    return round(seconds / orders * 1e6, 1) if orders else float("nan")


def _py_spy(pid: int, prefix: Path) -> list[subprocess.Popen[bytes]]:
    """Two py-spy recorders on ``pid``, every sample whether the worker is busy or waiting (``--idle``: on
    this machine py-spy's busy/idle detection counted about half the waits for Redis as busy, and its GIL
    detection all of them): the collapsed stacks, sampled with the worker paused (ptrace) for a consistent
    stack each time (unpaused, py-spy fails to read about 40% of them), and the flame graph, unpaused (a
    process has one tracer; its failed reads are left out)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [exe, "record", *flags, "--idle", "--pid", str(pid), "--rate", str(PROFILE_RATE)]
            + ["--format", fmt, "--output", str(prefix.with_suffix(suffix))],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for flags, fmt, suffix in (([], "raw", ".txt"), (["--nonblocking"], "flamegraph", ".svg"))
    ]


def _stop_py_spy(recorders: list[subprocess.Popen[bytes]]) -> None:
    for rec in recorders:
        rec.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    for rec in recorders:
        said, _ = rec.communicate(timeout=120)
        text = said.decode(errors="replace")
        if rec.returncode:
            raise SystemExit(f"py-spy failed ({rec.returncode}): {text[-2000:]}")
        # its own count of samples and of stacks it could not read ("Samples: N Errors: M")
        print(
            f"py-spy: {next((ln for ln in text.splitlines() if 'Samples:' in ln), text[-200:])}", flush=True
        )


def _run(
    url: str,
    n: int,
    rate: float,
    workers: int,
    floor: bool,
    cores: tuple[set[int], set[int]],
    redis_pid: int,
    profile: Path | None = None,
    key_dir: Path | None = None,
) -> dict[str, Any]:
    import redis

    from quantbridge.redis_schema import RedisSchema

    worker_cores, other_cores = cores
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
            (_floor, (url, stream, ready, stop, out, worker_cores))
            if floor
            else (
                _work,
                (url, f"w{i}", n, ready, stop, out, worker_cores, profile is not None and i == 0, key_dir),
            )
        )
        # daemons: a bench that fails leaves no worker behind polling a stopped redis-server
        procs.append(ctx.Process(target=target, args=args, daemon=True))
        readies.append(ready)
        procs[-1].start()
    for ready in readies:
        ready.wait(120)
    profiled, profiled_t0 = user_sys_s(procs[0].pid or 0), time.perf_counter()
    recorders = _py_spy(procs[0].pid or 0, profile) if profile is not None else []
    sender_out = ctx.Queue()
    sender_ready = ctx.Event()
    sender = ctx.Process(
        target=_produce,
        args=(url, stream, n, rate, sender_ready, go, sender_out, other_cores, None if floor else key_dir),
        daemon=True,
    )
    sender.start()
    sender_ready.wait(120)  # the served rate counts from the first order, not from the producer's start-up
    # CPU from the go to the last order done: what serving the load cost, not the start-up or the idle tail
    pids = [p.pid or 0 for p in procs]
    cpu0, redis_cpu = cpu_s(pids), cpu_s([redis_pid])
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
    cpu, redis_cpu = cpu_s(pids) - cpu0, cpu_s([redis_pid]) - redis_cpu
    if recorders:
        _stop_py_spy(recorders)
    # the first worker's user and kernel CPU while py-spy sampled it
    profiled = (
        *(b - a for a, b in zip(profiled, user_sys_s(procs[0].pid or 0), strict=True)),
        time.perf_counter() - profiled_t0,
    )
    stop.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    if floor:
        seen = results[0]
        return {
            "orders": len(seen),
            **_pct([seen[o] - sent[o] for o in sent if o in seen]),
            "cpu_us_per_order": _us(cpu, len(seen)),
        }
    decided = {k: v for d, _ in results for k, v in d.items()}
    filled = {k: v for _, f in results for k, v in f.items()}
    common = [o for o in sent if o in decided and o in filled]
    return {
        "orders": len(common),
        "workers": workers,
        "orders_per_s": round(len(common) / elapsed, 1),
        "to_decision": _pct([decided[o] - sent[o] for o in common]),
        "to_fill": _pct([filled[o] - sent[o] for o in common]),
        # the workers' CPU over the orders they decided (each order is decided by one worker)
        "cpu_us_per_order": _us(cpu, len(decided)),
        "redis_cpu_us_per_order": _us(redis_cpu, n),
        # the first worker's user and kernel CPU, and the wall time, while py-spy sampled it
        **({"profiled_user_sys_wall_s": [round(t, 3) for t in profiled]} if recorders else {}),
    }


def _summarise_profile(prefix: Path, label: str, user_sys_wall: list[float], orders: int) -> None:
    counts, _total = profile_counts(prefix.with_suffix(".txt").read_text().splitlines())
    user, kernel, wall = user_sys_wall
    title = f"Worker profile ({label}; py-spy {PROFILE_RATE} Hz)"
    table = shares_table(counts, PROFILE_RATE, wall, user, kernel, orders, title)
    prefix.with_suffix(".md").write_text(table)
    print(f"\n{table}\nflame graph: {prefix.with_suffix('.svg').resolve()}", flush=True)


def _line(
    mode: str, label: str, workers: int, result: dict[str, Any], floor: dict[str, Any], ratio: float
) -> str:
    """One row of the table: rate served, CPU per order, latency percentiles, the floor."""
    dec, fill, cpu = result["to_decision"], result["to_fill"], result["cpu_us_per_order"]
    return (
        f"{mode:>8} {label:>14} x{workers}: {result['orders_per_s']:8.1f} orders/s | CPU/order {cpu:6.1f} us "
        f"(redis {result['redis_cpu_us_per_order']:.1f}) | ->decision p50 {dec['p50_ms']:.2f} "
        f"p99 {dec['p99_ms']:.2f} p99.9 {dec['p999_ms']:.2f} ms | ->last fill p50 {fill['p50_ms']:.2f} "
        f"p99 {fill['p99_ms']:.2f} p99.9 {fill['p999_ms']:.2f} ms | floor p50 {floor['p50_ms']:.3f} "
        f"p99 {floor['p99_ms']:.3f} ms, CPU/order {floor['cpu_us_per_order']:.1f} us | p50 ratio {ratio:.1f}"
    )


def main() -> None:
    import socket

    from app.services import RedisService, read_pid
    from quantbridge.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[400, 2000], help="fixed rates; flat out is added"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker processes to compare")
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=["unpinned"], help="core layouts to compare (module doc)"
    )
    parser.add_argument("--pin", action="store_true", help="both modes: --modes unpinned pinned")
    parser.add_argument(
        "--flat-out", action=argparse.BooleanOptionalAction, default=True, help="add a flat-out run"
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the first worker run: PREFIX.svg, PREFIX.txt, PREFIX.md"
    )
    parser.add_argument(
        "--signatures",
        nargs="+",
        choices=["on", "off"],
        default=["on"],
        help="signed orders checked by the worker (on: production), unsigned (off); both: before/after",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    modes = list(MODES) if args.pin else args.modes
    all_cpus = os.sched_getaffinity(0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="qb-bench-"))
    overrides = {"redis_url": f"redis://127.0.0.1:{port}/0", "services_dir": folder}
    service = RedisService(load_settings(overrides))
    service.start()  # requires a password: QB_REDIS_PASSWORD, else one generated into the folder
    redis_pid = read_pid(service.pidfile)
    if redis_pid is None:
        raise SystemExit(f"redis-server started but left no live pid in {service.pidfile}")
    # The processes get the password inside the URL (handed over by multiprocessing, never printed).
    password = load_settings(overrides).redis_password.get_secret_value()
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    key_dir = folder / "keys"
    if "on" in args.signatures:
        from quantbridge.signing import KeyRing

        KeyRing(key_dir, "orders")  # made once; publisher and workers read it
    print(
        f"risk figures: fresh {SCHEMA_PREFIX}:risk:current and the VaR sensor's heartbeat published before "
        f"each worker run (valid {RISK_FRESH_S} s; no sensor process); marks {MARK:g} per ticker",
        flush=True,
    )
    loads = [(f"fixed {r:g}/s", r) for r in args.rates] + ([("flat out", 0.0)] if args.flat_out else [])
    profile: Path | None = args.profile
    try:
        out: dict[str, Any] = {}
        for mode in modes:
            cores = layout(all_cpus, mode)
            # the bench itself and redis-server on the other cores; the children pin themselves
            _pin_all_threads(os.getpid(), cores[1])
            _pin_all_threads(redis_pid, cores[1])
            print(
                f"{mode}: workers (and the floor consumer) on cores {sorted(cores[0])}; producer, "
                f"redis-server and the bench on cores {sorted(cores[1])}",
                flush=True,
            )
            for label, rate in loads:
                floor = _run(url, args.orders, rate, 1, True, cores, redis_pid)
                for workers, signed in [(w, g) for g in args.signatures for w in args.workers]:
                    ring = key_dir if signed == "on" else None
                    result = _run(url, args.orders, rate, workers, False, cores, redis_pid, profile, ring)
                    if profile is not None:
                        _summarise_profile(
                            profile,
                            f"{mode}, {label}, {workers} worker(s)",
                            result["profiled_user_sys_wall_s"],
                            result["orders"],
                        )
                        profile = None
                    ratio = (
                        result["to_decision"]["p50_ms"] / floor["p50_ms"] if floor["p50_ms"] else float("nan")
                    )
                    key = f"{label}, {workers} worker(s)" + ("" if mode == "unpinned" else f", {mode}")
                    key += f", signatures {signed}"
                    out[key] = {
                        "mode": mode,
                        "signatures": signed,
                        "worker_cores": sorted(cores[0]),
                        "worker": result,
                        "redis_floor": floor,
                        "p50_ratio_to_floor": round(ratio, 1),
                    }
                    print(_line(mode, f"{label} sig {signed}", workers, result, floor, ratio), flush=True)
        if args.json:
            print(json.dumps(out, indent=2))
    finally:
        _pin_all_threads(os.getpid(), all_cpus)
        service.stop()


if __name__ == "__main__":
    main()
