"""Fault tests of the execution worker against a real redis-server (AOF on): the worker is killed with
SIGKILL again and again while 10,000 orders stream, and Redis restarts mid-run. Afterwards every order is
accounted for exactly once and positions equal the sum of fills. A fuzzed corpus of malformed orders is
dead-lettered without stopping the worker."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import date

import pytest

from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema
from quantbridge.services import RedisService
from quantbridge.settings import load_settings
from quantbridge.state import connect
from tests.conftest import ROOT, _free_port

pytestmark = pytest.mark.slow
SCHEMA = RedisSchema("qb")
TICKERS = ["AAPL", "MSFT", "KO", "PG", "JNJ"]
N_ORDERS = 10_000


@pytest.fixture
def fault_env(tmp_path, spark):
    from marketdata.feed import SkfolioFeed
    from marketdata.ingest import ingest_range
    from marketdata.reference import load_reference_tables
    from quantbridge.lake import Lake

    settings = load_settings({"redis_url": f"redis://127.0.0.1:{_free_port()}/0", "services_dir": tmp_path / "svc",
                              "lake_root": tmp_path / "lake", "universe": ",".join(TICKERS)})
    ingest_range(settings, SkfolioFeed(tuple(TICKERS)), date(2020, 1, 2), date(2020, 1, 3), spark=spark)
    load_reference_tables(Lake(settings.lake_root))
    service = RedisService(settings)
    service.start()
    env = {**os.environ, "QB_REDIS_URL": settings.redis_url, "QB_LAKE_ROOT": str(settings.lake_root)}
    yield settings, service, env
    service.stop()


def _start_worker(env, n):
    return subprocess.Popen([sys.executable, "-m", "quantbridge.cli.main", "worker", "--consumer", f"w{n}",
                             "--reclaim-idle-ms", "500", "-q"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _order(i: int) -> dict[str, str]:
    rng = random.Random(i)
    return SubmitOrder(order_id=f"f{i}", ts="2026-01-05T14:30:00+00:00", strategy="fault", ticker=rng.choice(TICKERS),
                       side=rng.choice(["BUY", "SELL"]), quantity=float(rng.randint(1, 20)),
                       reference_price=50.0).to_dict()


def test_worker_when_killed_repeatedly_and_redis_restarts_then_every_order_accounted_once(fault_env):
    settings, service, env = fault_env
    client = connect(settings)
    workers, kills, restarted = [_start_worker(env, 0)], 0, False
    sent, t0 = 0, time.monotonic()
    while sent < N_ORDERS:
        pipe = client.pipeline()
        for i in range(sent, min(sent + 250, N_ORDERS)):
            pipe.xadd(SCHEMA.key("orders"), _order(i))
        pipe.execute()
        sent = min(sent + 250, N_ORDERS)
        time.sleep(0.1)
        if time.monotonic() - t0 > 2.0 * (kills + 1):  # SIGKILL the worker every ~2 s, start a new one
            workers[-1].send_signal(signal.SIGKILL)
            workers[-1].wait()
            kills += 1
            workers.append(_start_worker(env, kills))
        if not restarted and sent >= N_ORDERS // 2:
            client.close()
            service.stop()  # redis-server exits (AOF flushed), the worker backs off
            time.sleep(0.5)
            service.start()
            client, restarted = connect(settings), True
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if kills < 6 and time.monotonic() - t0 > 2.0 * (kills + 1):  # keep killing while it drains
            workers[-1].send_signal(signal.SIGKILL)
            workers[-1].wait()
            kills += 1
            workers.append(_start_worker(env, kills))
        done = client.hlen(SCHEMA.key("order_state")) + client.xlen(SCHEMA.key("dead_letter"))
        terminal = sum(1 for v in client.hvals(SCHEMA.key("order_state")) if json.loads(v)["state"] not in ("NEW", "PARTIALLY_FILLED"))
        if kills >= 6 and done >= N_ORDERS and terminal == client.hlen(SCHEMA.key("order_state")) \
                and client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0:
            break
        time.sleep(0.5)
    # A clean stop on SIGTERM, once the last worker is past start-up (it has joined the consumer group):
    # a process still importing has no handler yet and dies of the signal, as any program would.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and f"w{kills}" not in {
            c["name"] for c in client.xinfo_consumers(SCHEMA.key("orders"), ORDERS_GROUP)}:
        time.sleep(0.1)
    workers[-1].send_signal(signal.SIGTERM)
    assert workers[-1].wait(20) == 0
    assert kills == 6 and restarted

    states = {k: json.loads(v) for k, v in client.hgetall(SCHEMA.key("order_state")).items()}
    assert set(states) == {f"f{i}" for i in range(N_ORDERS)}  # every order accounted for...
    assert {s["state"] for s in states.values()} <= {"FILLED", "CANCELLED", "REJECTED"}
    assert client.xlen(SCHEMA.key("dead_letter")) == 0
    fills = client.xrange(SCHEMA.key("fills"))
    fill_ids = [f["fill_id"] for _, f in fills]
    assert len(fill_ids) == len(set(fill_ids)) == client.scard(SCHEMA.key("fills_seen"))  # ...and filled once
    total: dict[str, float] = {}
    for _, f in fills:
        total[f["ticker"]] = total.get(f["ticker"], 0.0) + (1 if f["side"] == "BUY" else -1) * float(f["quantity"])
    positions = {k: float(v) for k, v in client.hgetall(SCHEMA.key("positions")).items()}
    assert positions == pytest.approx(total)
    for oid, state in states.items():
        if state["state"] == "FILLED":
            assert state["filled"] == float(_order(int(oid[1:]))["quantity"])
    client.close()


def test_worker_when_fuzzed_malformed_orders_then_all_dead_lettered_and_worker_alive(fault_env):
    settings, _service, env = fault_env
    client = connect(settings)
    rng = random.Random(7)
    good = _order(0)
    corpus = []
    for i in range(300):
        fields = dict(good, order_id=f"bad{i}")
        choice = rng.randrange(6)
        if choice == 0:
            fields.pop(rng.choice(["ts", "strategy", "ticker", "side", "quantity", "reference_price"]))
        elif choice == 1:
            fields["quantity"] = rng.choice(["-1", "0", "nan", "inf", "x", ""])
        elif choice == 2:
            fields["reference_price"] = rng.choice(["-5", "NaN", "1e400", "abc"])
        elif choice == 3:
            fields["ticker"] = rng.choice(["", "aapl", "TOO-LONG-TICKER-NAME", "ZZZ", "A B"])
        elif choice == 4:
            fields["side"] = rng.choice(["HOLD", "buy", ""])
        else:
            fields["explanation"] = rng.choice(["[", "{\"a\": \"b\"}", "x" * 9000])
        corpus.append(fields)
    pipe = client.pipeline()
    for fields in corpus:
        pipe.xadd(SCHEMA.key("orders"), fields)
    pipe.xadd(SCHEMA.key("orders"), dict(good, order_id="still-alive"))
    pipe.execute()
    worker = _start_worker(env, 99)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not client.hexists(SCHEMA.key("order_state"), "still-alive"):
        time.sleep(0.2)
    assert worker.poll() is None  # alive
    worker.send_signal(signal.SIGTERM)
    worker.wait(20)
    assert client.xlen(SCHEMA.key("dead_letter")) == len(corpus)
    assert client.hexists(SCHEMA.key("order_state"), "still-alive")
    client.close()
