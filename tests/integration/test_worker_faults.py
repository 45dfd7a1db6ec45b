"""Fault tests of the execution worker against real processes: a real redis-server (AOF on), real ``qb
worker`` subprocesses and a real ``qb var-sensor`` subprocess, all killed with SIGKILL while 10,000 orders
stream; then hostile entries: a fuzzed corpus, bytes that are not UTF-8, an open order past the delivery cap.

The fault test kills the worker six times (three of them aimed between its decision commit and its fill
commit, so the next worker must finish orders it did not decide), the VaR sensor once and redis-server once
(restarted from its AOF). The test's redis-server runs with ``appendfsync always``: an acknowledged write
is then on disk before its reply, so "every order the producer published is accounted for" is a
guarantee. Under the production setting (``everysec``) a redis-server SIGKILL loses only the writes Redis
had postponed behind a slow background fsync (up to 2 s of them), a machine crash up to about 1 s: orders
lost that way must be published again by their producer, and fills lost that way are made again on
restart (the simulated venues fill deterministically per child id; a real venue's fill would need the
reconciliation). What is left after a restart is always a prefix of the writes, so the state stays
consistent either way: the Lua calls are atomic in the AOF too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from app.services import RedisService, read_pid
from quantbridge.audit import verify
from quantbridge.messages import SubmitOrder
from quantbridge.redis_client import connect
from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema
from quantbridge.settings import load_settings
from tests.conftest import ROOT, _free_port
from tests.risk_support import publish_fresh_risk

pytestmark = pytest.mark.slow
SCHEMA = RedisSchema("qb")
TICKERS = ["AAPL", "MSFT", "KO", "PG", "JNJ"]
N_ORDERS = 10_000
#: The worker's staleness bound (QB_RISK_STALE_S) and the sensor's refresh interval in the fault test.
STALE_S = 2.0
SENSOR_INTERVAL_S = 0.5
#: How long the sensor stays down past the staleness bound (the window checked for risk-increasing fills).
OUTAGE_PAST_BOUND_S = 3.0
#: Audit timestamps are taken just after the decision's clock reading: this much slack at the window start.
DECISION_SLACK_S = 0.5
#: Worker SIGKILLs at these fractions of the orders decided (none while the sensor is down).
WORKER_KILLS_AT = (0.03, 0.12, 0.2, 0.45, 0.75, 0.9)
SENSOR_KILL_AT, REDIS_KILL_AT = 0.3, 0.6
BACKLOG, CHUNK = 1000, 200
#: While the sensor is down, one CHUNK per this many seconds: orders keep being decided through its outage.
OUTAGE_PACE_S = 0.25
FINAL = {"FILLED", "CANCELLED", "REJECTED"}
CLI = [sys.executable, "-m", "app.cli.main"]


@pytest.fixture(scope="module")
def priced_lake(tmp_path_factory) -> Path:
    """Two months of real closes (skfolio's S&P 500 data) for the five tickers, written straight into the
    lake's date partitions (the ingest has its own tests; Spark would add minutes here), and the reference
    tables (ESG scores). The sensor needs at least 20 daily returns."""
    from marketdata.feed import SkfolioFeed
    from marketdata.reference import load_reference_tables
    from quantbridge.lake import Lake

    lake = Lake(tmp_path_factory.mktemp("fault-lake"))
    closes = SkfolioFeed(tuple(TICKERS)).fetch(date(2019, 11, 1), date(2020, 1, 3))
    for day, rows in closes.groupby("date"):
        part = lake.price_partition(day)
        part.mkdir(parents=True)
        rows[["ticker", "close"]].to_parquet(part / "part-00000.parquet", index=False)
    load_reference_tables(lake)
    return lake.root


@dataclass
class Env:
    settings: Any
    service: RedisService
    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [*CLI, *args], env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
            )
        self.procs.append(proc)
        return proc

    def worker(self, n: int) -> subprocess.Popen:
        return self.spawn(
            f"w{n}", "worker", "--consumer", f"w{n}", "--reclaim-idle-ms", "500", "--metrics-port", "0", "-q"
        )

    def sensor(self) -> subprocess.Popen:
        return self.spawn(
            "sensor",
            "var-sensor",
            "--interval",
            str(SENSOR_INTERVAL_S),
            "--limit",
            "1e12",
            "--metrics-port",
            "0",
            "-q",
        )

    def client(self) -> Any:
        client = connect(self.settings)
        client.config_set("appendfsync", "always")  # see the module docstring
        return client

    def log_tails(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
            for p in sorted(self.logs.glob("*.log"))
        )


@pytest.fixture
def fault_env(tmp_path, priced_lake):
    settings = load_settings(
        {
            "redis_url": f"redis://127.0.0.1:{_free_port()}/0",
            "services_dir": tmp_path / "svc",
            "lake_root": priced_lake,
            "universe": ",".join(TICKERS),
        }
    )
    service = RedisService(settings)
    service.start()
    (tmp_path / "logs").mkdir()
    env = {
        **os.environ,
        "QB_REDIS_URL": settings.redis_url,
        "QB_LAKE_ROOT": str(priced_lake),
        "QB_RISK_STALE_S": str(STALE_S),
        "QB_AUDIT_KEY_PATH": str(tmp_path / "audit" / "key.pem"),
    }
    state = Env(settings, service, env, tmp_path / "logs")
    yield state
    for proc in state.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    service.stop()


def _lake_marks(root: Path) -> dict[str, float]:
    from execution.worker import lake_marks
    from quantbridge.lake import Lake

    return lake_marks(Lake(root))


def _order(i: int, marks: dict[str, float]) -> dict[str, str]:
    """Order i: a random ticker, side and size; its reference price within 5% of the lake's last close."""
    rng = random.Random(i)
    ticker = rng.choice(TICKERS)
    return SubmitOrder(
        order_id=f"f{i}",
        ts="2026-01-05T14:30:00+00:00",
        strategy="fault",
        ticker=ticker,
        side=rng.choice(["BUY", "SELL"]),
        quantity=float(rng.randint(1, 20)),
        reference_price=round(marks[ticker] * rng.uniform(0.95, 1.05), 2),
    ).to_dict()


def _signed_batches(client: Any, orders: list[dict[str, str]]) -> list[dict[str, str]]:
    """``orders`` signed per CHUNK as a publisher signs them (the workers check signatures first), each
    batch's root signature stored before any order is streamed."""
    from quantbridge.signing import keyring, sign_orders

    ring, out = keyring(load_settings(), "orders"), []
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(orders), CHUNK):
        root, signature, signed = sign_orders(ring, orders[start : start + CHUNK])
        pipe.hset(SCHEMA.key("order_signatures"), root, signature)
        out += signed
    pipe.execute()
    return out


def _consumers(client: Any) -> set[str]:
    import redis

    try:
        return {c["name"] for c in client.xinfo_consumers(SCHEMA.key("orders"), ORDERS_GROUP)}
    except redis.ResponseError:  # no group before the first worker has started
        return set()


def _signed(side: str, quantity: float) -> float:
    return quantity if side == "BUY" else -quantity


def _risk_increasing(position: float, signed: float) -> bool:
    after = position + signed
    return abs(after) > abs(position) or after * position < 0


@dataclass
class Faults:
    """What the fault test did and when (``time.time()``)."""

    worker_kills: list[float] = field(default_factory=list)
    sensor_killed: float | None = None
    stale_from: float | None = None
    sensor_restarted: float | None = None
    redis_killed: float | None = None
    redis_back: float | None = None

    @property
    def window(self) -> tuple[float, float]:
        """When every decision was made without fresh risk figures: from the bound past the last refresh
        (plus the slack) to the sensor's restart."""
        return self.stale_from + DECISION_SLACK_S, self.sensor_restarted

    def phase(self, ts: float) -> str:
        """Where a decision at ``ts`` falls (to explain RISK_STALE rejections outside the window)."""
        if ts < self.sensor_killed:
            return "before the sensor's kill"
        if ts < self.window[0]:
            return "sensor down, within the bound"
        if ts < self.sensor_restarted + 10:
            return "within 10 s of the sensor's restart"
        if self.redis_killed <= ts < self.redis_back + 10:
            return "within 10 s of redis-server's restart"
        return "elsewhere"


class Run:
    """The fault test's loop: keeps about BACKLOG orders in the stream and injects one fault at a time."""

    def __init__(self, env: Env, orders: list[dict[str, str]]) -> None:
        self.env, self.orders, self.faults, self.rng = env, orders, Faults(), random.Random(12)
        self.client = env.client()
        self.sensor = env.sensor()
        deadline = time.monotonic() + 90
        while not self.client.exists(SCHEMA.heartbeat("var_sensor")):
            assert time.monotonic() < deadline and self.sensor.poll() is None, env.log_tails()
            time.sleep(0.2)
        self.n_worker, self.worker = 0, env.worker(0)
        self.joined_at: float | None = None
        self.kill_after = self.rng.uniform(0.3, 1.5)  # a random point in the worker's work
        self.sent = self.decided = 0
        self.sent_at = 0.0

    def stream(self, limit_s: float) -> float:
        """Run until every order is final and every fault done; returns the seconds it took."""
        t0 = time.monotonic()
        while not self._done():
            assert time.monotonic() - t0 < limit_s, f"sent={self.sent}, {self.faults}\n{self.env.log_tails()}"
            self._produce()
            self._inject()
            time.sleep(0.05)
        return time.monotonic() - t0

    def _produce(self) -> None:
        c = self.client
        self.decided = c.hlen(SCHEMA.key("order_state")) + c.xlen(SCHEMA.key("dead_letter"))
        if self.sent < min(N_ORDERS, self._hold_at()) and self.sent - self.decided < BACKLOG:
            self._send_chunk()

    def _send_chunk(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for fields in self.orders[self.sent : self.sent + CHUNK]:
            pipe.xadd(SCHEMA.key("orders"), fields)
        pipe.execute()
        self.sent, self.sent_at = min(self.sent + CHUNK, N_ORDERS), time.monotonic()

    def _hold_at(self) -> float:
        """How many orders may be sent now. A worker faster than the faults' schedule would otherwise
        decide the whole stream before the later faults (the sensor's outage then sees no order): the
        stream is held at the next fault's point until it is injected, and paced while the sensor is down."""
        f = self.faults
        if f.sensor_killed is not None and f.sensor_restarted is None:
            return self.sent + CHUNK if time.monotonic() >= self.sent_at + OUTAGE_PACE_S else self.sent
        due = list(WORKER_KILLS_AT[len(f.worker_kills) : len(f.worker_kills) + 1])
        due += [SENSOR_KILL_AT] if f.sensor_killed is None else []
        due += [REDIS_KILL_AT] if f.redis_killed is None else []
        return min(due, default=1.0) * N_ORDERS + CHUNK

    def _stop_between_commits(self, limit_s: float = 5.0) -> None:
        """SIGSTOP the worker while it holds reservations, i.e. between its decision and fill commits. A fill
        commit already sent when it stops still lands, so the reservations are read again after a pause;
        if they are gone the worker goes on (SIGCONT) and the next batch is tried, for up to ``limit_s``."""
        c, inflight, deadline = self.client, SCHEMA.key("inflight"), time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if not c.hlen(inflight):
                # The stream is held at the fault's point, so a fast worker may have nothing left: an idle
                # worker has no commits to stop between, so it is given the next chunk of orders.
                decided = c.hlen(SCHEMA.key("order_state")) + c.xlen(SCHEMA.key("dead_letter"))
                if self.sent < N_ORDERS and self.sent - decided < CHUNK // 2:
                    self._send_chunk()
                continue
            self.worker.send_signal(signal.SIGSTOP)
            time.sleep(0.05)
            if self.client.hlen(inflight):
                return
            self.worker.send_signal(signal.SIGCONT)

    def _inject(self) -> None:
        f, now = self.faults, time.monotonic()
        if self.joined_at is None and f"w{self.n_worker}" in _consumers(self.client):
            self.joined_at = now
        working = self.joined_at is not None and now - self.joined_at > self.kill_after
        sensor_down = f.sensor_killed is not None and f.sensor_restarted is None
        kills, progress = len(f.worker_kills), self.decided / N_ORDERS
        worker_due = kills < len(WORKER_KILLS_AT) and progress >= WORKER_KILLS_AT[kills]
        if working and not sensor_down and worker_due:
            if kills % 2:  # every other kill aims between the worker's two commits (shares reserved)
                self._stop_between_commits()
            self.worker.send_signal(signal.SIGKILL)
            self.worker.wait()
            f.worker_kills.append(time.time())
            self.n_worker += 1
            self.worker, self.joined_at = self.env.worker(self.n_worker), None
            self.kill_after = self.rng.uniform(0.3, 1.5)
        elif working and f.sensor_killed is None and progress >= SENSOR_KILL_AT:
            self.sensor.send_signal(signal.SIGKILL)
            self.sensor.wait()
            f.sensor_killed = time.time()
            updated_at = datetime.fromisoformat(self.client.hget(SCHEMA.key("risk_current"), "updated_at"))
            f.stale_from = updated_at.timestamp() + STALE_S  # stale from here on, whatever the heartbeat
        elif sensor_down and time.time() >= f.stale_from + OUTAGE_PAST_BOUND_S:
            f.sensor_restarted = time.time()
            self.sensor = self.env.sensor()
        elif (
            working
            and f.redis_killed is None
            and f.sensor_restarted is not None
            and progress >= REDIS_KILL_AT
            and self.client.exists(SCHEMA.heartbeat("var_sensor"))
        ):
            os.kill(read_pid(self.env.service.pidfile), signal.SIGKILL)
            f.redis_killed = time.time()
            while read_pid(self.env.service.pidfile) is not None:
                time.sleep(0.05)
            self.client.close()
            self.env.service.start()  # from its AOF
            f.redis_back = time.time()
            self.client = self.env.client()

    def _done(self) -> bool:
        c, f = self.client, self.faults
        if not (
            self.sent == N_ORDERS
            and self.decided >= N_ORDERS
            and f.redis_back is not None
            and len(f.worker_kills) == len(WORKER_KILLS_AT)
        ):
            return False
        return c.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0 and all(
            json.loads(v)["state"] in FINAL for v in c.hvals(SCHEMA.key("order_state"))
        )

    def stop(self) -> None:
        """SIGTERM the last worker once it has joined (a process still importing has no handler yet and
        would die of the signal) and the sensor once it has refreshed after the Redis restart (it survived
        it); both must exit 0."""
        deadline = time.monotonic() + 60
        while f"w{self.n_worker}" not in _consumers(self.client) or not self._beat_since(
            self.faults.redis_back
        ):
            assert time.monotonic() < deadline and self.sensor.poll() is None, self.env.log_tails()
            time.sleep(0.2)
        self.worker.send_signal(signal.SIGTERM)
        self.sensor.send_signal(signal.SIGTERM)
        assert self.worker.wait(30) == 0 and self.sensor.wait(30) == 0, self.env.log_tails()

    def _beat_since(self, at: float) -> bool:
        beat = self.client.get(SCHEMA.heartbeat("var_sensor"))
        # The heartbeat is written to the second.
        return beat is not None and datetime.fromisoformat(beat).timestamp() >= at - 1


def _final_once(client: Any, orders: list[dict[str, str]]) -> dict[str, Any]:
    """Assert every order is in exactly one final state, each fill counted once, positions equal the fills
    and each order's fills its filled quantity; returns the counts."""
    states = {k: json.loads(v) for k, v in client.hgetall(SCHEMA.key("order_state")).items()}
    dead = {json.loads(f["fields"]).get("order_id"): f for _, f in client.xrange(SCHEMA.key("dead_letter"))}
    assert set(states) | set(dead) == {o["order_id"] for o in orders}
    assert not set(states) & set(dead) and len(dead) == client.xlen(SCHEMA.key("dead_letter"))
    assert all(f["reason"] for f in dead.values())
    by_state = Counter(s["state"] for s in states.values())
    assert set(by_state) <= FINAL
    assert client.hlen(SCHEMA.key("inflight")) == 0  # every reservation released
    reasons = Counter(r.split(":")[0] for s in states.values() for r in s.get("reasons", []))
    assert not reasons.keys() & {"PRICE_BAND", "NO_MARK"}  # judged at the lake's close, as priced
    fills = [f for _, f in client.xrange(SCHEMA.key("fills"))]
    assert len({f["fill_id"] for f in fills}) == len(fills)
    per_order: dict[str, float] = {}
    total: dict[str, float] = {}
    for f in fills:
        per_order[f["order_id"]] = per_order.get(f["order_id"], 0.0) + float(f["quantity"])
        total[f["ticker"]] = total.get(f["ticker"], 0.0) + _signed(f["side"], float(f["quantity"]))
    positions = {k: float(v) for k, v in client.hgetall(SCHEMA.key("positions")).items()}
    assert positions == pytest.approx({t: q for t, q in total.items() if abs(q) > 1e-9})
    for oid, s in states.items():
        quantity = float(orders[int(oid[1:])]["quantity"])
        assert per_order.get(oid, 0.0) == pytest.approx(s["filled"]), (oid, s)
        if s["state"] == "FILLED":
            assert s["filled"] == quantity, (oid, s)
        elif s["state"] == "REJECTED":
            assert s["filled"] == 0 and s["reasons"], (oid, s)
        else:
            assert s["filled"] < quantity, (oid, s)
    return {
        "states": dict(by_state),
        "dead_letters": len(dead),
        "reasons": dict(reasons),
        "fill_ids": sorted(f["fill_id"] for f in fills),
    }


def _decisions(client: Any, orders: list[dict[str, str]], faults: Faults) -> dict[str, Any]:
    """Replay the audit chain: the fills give the true position each verdict saw (one live worker at a
    time, so nothing lands between its read and its commit), which must be the one the verdict records;
    count the verdicts in the window by allowed/rejected and risk-increasing/reducing on that true book, and
    the orders decided by a worker that was SIGKILLed before their fills (finished by the next one)."""
    book: dict[str, float] = {}
    opened: dict[str, float] = {}
    resumed: set[str] = set()
    in_window: Counter = Counter()
    stale_outside: Counter = Counter()
    blind, fill_ids, entries = [], [], 0
    start = "-"
    while True:
        chunk = client.xrange(SCHEMA.key("audit"), start, "+", count=5000)
        for entry_id, e in chunk:
            payload = json.loads(e["payload"])
            at = datetime.fromisoformat(e["ts"]).timestamp()
            if e["kind"] == "state" and payload["state"] == "NEW":
                opened[e["ref"]] = at
            elif e["kind"] in {"fill", "state"} and e["ref"] in opened:
                if any(opened[e["ref"]] < kill < at for kill in faults.worker_kills):
                    resumed.add(e["ref"])
                del opened[e["ref"]]
            if e["kind"] == "fill":
                book[payload["ticker"]] = book.get(payload["ticker"], 0.0) + _signed(
                    payload["side"], float(payload["quantity"])
                )
                fill_ids.append(payload["fill_id"])
            if e["kind"] != "verdict":
                continue
            order = orders[int(e["ref"][1:])]
            held = book.get(order["ticker"], 0.0)
            assert payload["position"] == pytest.approx(held), (entry_id, e)
            stale = any(r.startswith("RISK_STALE") for r in payload["reasons"])
            if not faults.window[0] <= at <= faults.window[1]:
                stale_outside[faults.phase(at)] += stale
                continue
            increasing = _risk_increasing(held, _signed(order["side"], float(order["quantity"])))
            in_window[
                "allowed" if payload["allowed"] else "rejected",
                "risk-increasing" if increasing else "reducing",
            ] += 1
            in_window["RISK_STALE"] += stale
            if payload["allowed"] and increasing:
                blind.append((entry_id, e["ref"], held, order))
        entries += len(chunk)
        if len(chunk) < 5000:
            break
        ms, seq = chunk[-1][0].split("-")
        start = f"{ms}-{int(seq) + 1}"
    return {
        "in_window": in_window,
        "stale_outside": dict(stale_outside),
        "blind_increases": blind,
        "fill_ids": sorted(fill_ids),
        "entries": entries,
        "resumed": len(resumed),
    }


def test_worker_when_worker_sensor_and_redis_sigkilled_then_every_order_final_once_and_no_risk_added_blind(
    fault_env,
):
    # Arrange: 10,000 orders priced off the lake; the sensor refreshing, the first worker started.
    marks = _lake_marks(fault_env.settings.lake_root)
    orders = _signed_batches(fault_env.client(), [_order(i, marks) for i in range(N_ORDERS)])
    run = Run(fault_env, orders)

    # Act: stream them while SIGKILLing the worker six times, the sensor once and redis-server once.
    seconds = run.stream(limit_s=420)
    run.stop()

    # Assert: every order final once, fills once, positions equal fills, the chain verifies, and no
    # risk-increasing order was let through while the sensor was down past the bound.
    client, faults = run.client, run.faults
    outcome = _final_once(client, orders)
    check = subprocess.run(
        [*CLI, "audit", "verify", "--json"],
        env=fault_env.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0 and json.loads(check.stdout)["ok"], check.stdout + check.stderr
    seen = _decisions(client, orders, faults)
    assert seen["fill_ids"] == outcome["fill_ids"]  # each fill audited once
    assert seen["blind_increases"] == []
    assert seen["in_window"]["RISK_STALE"] > 0
    assert seen["in_window"]["allowed", "reducing"] > 0  # reducing orders still go
    assert seen["resumed"] > 0  # the kills between the two commits landed: open orders were finished
    assert len(faults.worker_kills) == len(WORKER_KILLS_AT) and faults.sensor_restarted and faults.redis_back
    (w0, w1), f = faults.window, faults
    print(
        f"\nfault test: {N_ORDERS} orders in {seconds:.0f} s: {outcome['states']}, dead letters "
        f"{outcome['dead_letters']}, fills {len(outcome['fill_ids'])}, reasons {outcome['reasons']}; "
        f"worker SIGKILLs {len(f.worker_kills)}; sensor down {f.sensor_restarted - f.sensor_killed:.1f} s, "
        f"window {w1 - w0:.1f} s: {dict(seen['in_window'])}; RISK_STALE outside it "
        f"{seen['stale_outside']}; "
        f"redis-server down {f.redis_back - f.redis_killed:.1f} s; audit entries {seen['entries']}; orders "
        f"decided by a worker killed before their fills {seen['resumed']}"
    )
    client.close()


# --- hostile corpus ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One hostile entry and what must become of it: ``dead`` (dead-lettered, reason starting with
    ``reason``), ``rejected`` (REJECTED, a reason starting with ``reason``), ``order`` (a legal order, odd as
    it looks: one final state under its exact id), or ``duplicate`` (an id already used: audited DUPLICATE,
    the first content wins)."""

    fields: dict[Any, Any]
    expect: str
    reason: str | tuple[str, ...] = ""


def _hostile_corpus(marks: dict[str, float]) -> list[Case]:
    rng = random.Random(7)
    mark = marks["AAPL"]
    n = iter(range(10**6))

    def good(**changes: Any) -> dict[str, Any]:
        fields = SubmitOrder(
            order_id=f"h{next(n)}",
            ts="2026-01-05T14:30:00+00:00",
            strategy="fuzz",
            ticker="AAPL",
            side="SELL",
            quantity=5.0,
            reference_price=mark,
        ).to_dict()
        fields.update(changes)
        return {k: v for k, v in fields.items() if v is not None}

    def dead(reason: str | tuple[str, ...], **changes: Any) -> Case:
        return Case(good(**changes), "dead", reason)

    cases: list[Case] = []
    for name in ("order_id", "ts", "strategy", "ticker", "side", "quantity", "reference_price"):
        cases.append(dead("MALFORMED", **{name: None}))  # a required field missing
    cases.append(Case({"QUANTITY": "5", "ORDER_ID": "upper"}, "dead", "MALFORMED"))  # wrong names
    cases.append(Case({"\x00": "\x00"}, "dead", "MALFORMED"))
    # Wrong types, NaN/inf, negative, zero and huge numbers.
    for value in (
        "ten",
        "[5]",
        "{}",
        "True",
        "0x10",
        "",
        "5 shares",
        "1,5",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "1e400",
        "-1",
        "0",
        "-0",
        "-1e300",
        "1e300",
        "1e10",
        "9e15",
    ):
        cases.append(dead("MALFORMED", quantity=value))
    for value in ("abc", "nan", "inf", "-inf", "1e400", "-5", "0", "[]"):
        cases.append(dead("MALFORMED", reference_price=value))
    for value in ("nan", "inf", "-1", "0", "cheap"):
        cases.append(dead("MALFORMED", limit_price=value))
    # Unicode and control characters where an upper-case ticker or a side is expected.
    for value in (
        "",
        "aapl",
        "ÄAPL",
        "AAPL\n",
        "AA PL",
        "AAPL|MSFT",
        "AA\x00PL",
        "🚀",
        "ＡＡＰＬ",
        "A" * 40,
        "\u202eLPAA",
    ):
        cases.append(dead("MALFORMED", ticker=value))
    cases.append(dead("UNKNOWN_TICKER", ticker="ZZZ"))
    for value in ("buy", "BUY ", "HOLD", "", "ＢＵＹ", "SELL\x00", "SELL|BUY"):
        cases.append(dead("MALFORMED", side=value))
    for value in ("[", "null", "[1, 2]", '{"a": "x"}', '{"a": {}}', "x" * 5000):
        cases.append(dead("MALFORMED", explanation=value))
    # Bytes that are not UTF-8, in a value or in a field's name.
    for name, value in (
        ("strategy", b"\xff\xfe\x80"),
        ("order_id", b"\xc3("),
        ("ticker", b"AAPL\xff"),
        ("quantity", b"\x80"),
        (b"\xfe\xff", b"x"),
    ):
        cases.append(Case({**good(), name: value}, "dead", "MALFORMED"))
    # An id no order may have: empty or too long.
    cases += [dead("MALFORMED", order_id=""), dead("MALFORMED", order_id="i" * 129)]
    # 1 MB fields, a 1 MB field name, and an entry of a thousand small fields.
    megabyte = "".join(rng.choice("abc|é\x01\u202e🚀") for _ in range(1 << 20))
    for name in ("order_id", "strategy", "ts", "explanation", "model_version", "extra"):
        cases.append(dead("PAYLOAD_TOO_LARGE", **{name: megabyte}))
    cases.append(dead("PAYLOAD_TOO_LARGE", **{megabyte: "1"}))
    cases.append(dead("PAYLOAD_TOO_LARGE", **{f"x{i}": "y" * 8 for i in range(1000)}))
    # Legal orders that the policies reject, with a reason.
    cases.append(Case(good(reference_price=str(mark * 2)), "rejected", "PRICE_BAND"))
    cases.append(Case(good(reference_price=str(mark * 0.5)), "rejected", "PRICE_BAND"))
    cases.append(Case(good(side="BUY", quantity="5e8"), "rejected", "NOTIONAL_EXCEEDS_MAX"))
    cases.append(Case(good(ticker="MSFT", reference_price=str(marks["MSFT"] * 3)), "rejected", "PRICE_BAND"))
    # Legal orders with odd ids, strategies and times: exactly one final state under the exact id.
    odd_ids = [
        "a|b",
        "a",
        "|",
        "||",
        "a|b|",
        "ордер-1",
        "注文|1",
        "🚀|🌕",
        "'; DROP TABLE orders; --",
        "${jndi:x}",
        "%s%s%n",
        "../../etc/passwd",
        " ",
        "i" * 128,
    ]
    cases += [Case(good(order_id=oid), "order") for oid in odd_ids]
    cases += [Case(good(strategy=value), "order") for value in ("", "策略", "a|b", "s" * 3000)]
    cases += [Case(good(ts=value), "order") for value in ("not a time", "", "9999-99-99T99:99:99")]
    cases.append(Case(good(extra_field="ignored", model_version="v|1"), "order"))
    # Control and format characters (NUL, newlines, ANSI escapes, bidi overrides, zero-width) would forge
    # lines or colours in logs: refused in every free-text field.
    for value in (
        "id\x00nul",
        "id\nnewline",
        "id\r\n",
        "\x1b[31mred\x1b[0m",
        "\u202edi-lro",
        "zero\u200bwidth",
        "\t",
    ):
        cases.append(dead("MALFORMED", order_id=value))
    cases += [
        dead("MALFORMED", strategy="策略\x00\x07"),
        dead("MALFORMED", ts="\x00"),
        dead("MALFORMED", model_version="v\x00|1"),
    ]
    # Numbers Python's float() reads although no sender should write them (Arabic-Indic digits, "1_0",
    # padding) are refused; fractions down to 1e-300 shares stay legal (no minimum lot), filled as such.
    cases += [dead("MALFORMED", quantity=value) for value in ("١٠", "1_0", " 7 ")]
    cases += [Case(good(quantity=value), "order") for value in ("1e-300", "0.001")]
    # Duplicate ids with different contents: in the same batch, far apart, three times; also after a copy
    # that was dead-lettered (the later legal one is the order) and before a malformed one (dead-lettered).
    first = good(order_id="dup-near")
    cases += [
        Case(first, "order"),
        Case(
            good(
                order_id="dup-near",
                ticker="MSFT",
                side="BUY",
                quantity="7",
                reference_price=str(marks["MSFT"]),
            ),
            "duplicate",
        ),
    ]
    far = good(order_id="dup|far", quantity="3")
    cases.append(Case(far, "order"))
    third = good(order_id="dup-three", quantity="2")
    cases.append(Case(third, "order"))
    cases.append(Case(good(order_id="dup-three", quantity="4", side="BUY"), "duplicate"))
    cases.append(dead("MALFORMED", order_id="dup-after-dead", quantity="-3"))
    cases.append(Case(good(order_id="dup-after-dead", quantity="6"), "order"))
    cases.append(Case(good(order_id="dup-then-bad", quantity="1"), "order"))
    cases.append(dead("MALFORMED", order_id="dup-then-bad", quantity="nan"))
    rng.shuffle(cases)  # spread over many batches; the far/third copies go last, after their originals
    cases.append(
        Case(
            good(order_id="dup|far", quantity="8", ticker="KO", reference_price=str(marks["KO"])), "duplicate"
        )
    )
    cases.append(
        Case(
            good(order_id="dup-three", quantity="9", ticker="PG", reference_price=str(marks["PG"])),
            "duplicate",
        )
    )
    # The shuffle may put the second of a same-id pair first: the first content in stream order wins.
    seen: set[str] = set()
    ordered = []
    for case in cases:
        oid = case.fields.get("order_id")
        if case.expect in {"order", "duplicate"}:
            case = Case(case.fields, "duplicate" if oid in seen else "order")
            seen.add(oid)
        ordered.append(case)
    return ordered


def test_worker_when_hostile_entries_then_each_dead_lettered_or_rejected_with_reason_and_worker_stays_up(
    fault_env,
):
    # Arrange: fresh risk figures (no sensor here) and the corpus in the stream, then one legal order.
    env = fault_env
    env.env["QB_RISK_STALE_S"] = "600"
    # What is judged here is validation, which comes after the signature check: unsigned hostile entries
    # would all stop there (BAD_SIGNATURE, tested in test_worker_governance and test_order_signing).
    env.env["QB_ORDER_SIGNATURES"] = "off"
    client = env.client()
    publish_fresh_risk(client, SCHEMA)
    marks = _lake_marks(env.settings.lake_root)
    cases = _hostile_corpus(marks)
    pipe = client.pipeline(transaction=False)
    for case in cases:
        pipe.xadd(SCHEMA.key("orders"), case.fields)
    entry_ids = pipe.execute()
    client.xadd(SCHEMA.key("orders"), _order(0, marks) | {"order_id": "still-alive"})

    # Act: a worker subprocess takes them all.
    worker = env.worker(99)
    deadline = time.monotonic() + 120
    while (
        not client.hexists(SCHEMA.key("order_state"), "still-alive")
        or client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"]
    ):
        assert time.monotonic() < deadline and worker.poll() is None, env.log_tails()
        time.sleep(0.2)
    alive = worker.poll() is None
    worker.send_signal(signal.SIGTERM)

    # Assert: the worker stayed up and stops cleanly; every entry has its one outcome, with a reason.
    assert alive and worker.wait(30) == 0, env.log_tails()
    dead = {f["entry_id"]: f["reason"] for _, f in client.xrange(SCHEMA.key("dead_letter"))}
    states = {k: json.loads(v) for k, v in client.hgetall(SCHEMA.key("order_state")).items()}
    duplicates = Counter(
        json.loads(e["payload"])["entry_id"]
        for _, e in client.xrange(SCHEMA.key("audit"))
        if e["kind"] == "duplicate"
    )
    counts: Counter = Counter()
    for case, entry_id in zip(cases, entry_ids, strict=True):
        counts[case.expect] += 1
        oid = case.fields.get("order_id")
        if case.expect == "dead":
            assert dead.get(entry_id, "").startswith(case.reason), (case.reason, dead.get(entry_id), entry_id)
            continue
        assert entry_id not in dead, (oid, dead[entry_id])
        state = states[oid]
        assert state["state"] in FINAL, (oid, state)
        if case.expect == "rejected":
            assert state["state"] == "REJECTED" and any(r.startswith(case.reason) for r in state["reasons"])
        if case.expect == "duplicate":
            assert duplicates[entry_id] == 1, (oid, entry_id)
        else:
            assert duplicates[entry_id] == 0, (oid, entry_id)
            assert state["filled"] <= float(case.fields["quantity"]), (oid, state)
    assert len(dead) == counts["dead"] == client.xlen(SCHEMA.key("dead_letter"))  # each dead letter once
    assert sum(duplicates.values()) == counts["duplicate"]
    # The first content wins: a duplicate's fills are in its first copy's ticker and within its quantity.
    fills = [f for _, f in client.xrange(SCHEMA.key("fills"))]
    firsts = {c.fields["order_id"]: c.fields for c in cases if c.expect in {"order", "rejected"}}
    for oid in ("dup-near", "dup|far", "dup-three"):
        mine = [f for f in fills if f["order_id"] == oid]
        assert {f["ticker"] for f in mine} <= {firsts[oid]["ticker"]}
        filled = sum(float(f["quantity"]) for f in mine)
        assert filled == states[oid]["filled"] <= float(firsts[oid]["quantity"])
    assert set(states) == set(firsts) | {"still-alive"}
    assert client.hlen(SCHEMA.key("inflight")) == 0
    assert verify(client, SCHEMA)["ok"]
    assert counts == {"dead": 98, "order": 29, "rejected": 4, "duplicate": 4}
    print(
        f"\nhostile corpus: {len(cases)} entries: {dict(counts)}; dead letters by reason "
        f"{dict(Counter(r.split(':')[0] for r in dead.values()))}; final states "
        f"{dict(Counter(s['state'] for s in states.values()))}"
    )
    client.close()


def test_worker_when_entry_not_utf8_then_dead_lettered_and_later_orders_still_go(fault_env):
    # Arrange: an entry whose strategy is not UTF-8, then a legal order.
    env = fault_env
    env.env["QB_RISK_STALE_S"] = "600"
    env.env["QB_ORDER_SIGNATURES"] = (
        "off"  # an entry that is not UTF-8 cannot be signed: validation is tested
    )
    client = env.client()
    publish_fresh_risk(client, SCHEMA)
    marks = _lake_marks(env.settings.lake_root)
    client.xadd(
        SCHEMA.key("orders"), _order(1, marks) | {"order_id": "not-utf8", "strategy": b"\xff\xfe\x80"}
    )
    client.xadd(SCHEMA.key("orders"), _order(2, marks) | {"order_id": "after"})

    # Act
    worker = env.worker(0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not client.hexists(SCHEMA.key("order_state"), "after"):
        time.sleep(0.2)
    alive = worker.poll() is None
    worker.send_signal(signal.SIGTERM)

    # Assert: the entry dead-lettered naming the field, the next order decided, the worker up throughout.
    assert alive and worker.wait(30) == 0, env.log_tails()
    [(_, letter)] = client.xrange(SCHEMA.key("dead_letter"))
    assert letter["reason"] == "MALFORMED: field 'strategy' is not UTF-8 text"
    assert json.loads(client.hget(SCHEMA.key("order_state"), "after"))["state"] in FINAL
    assert verify(client, SCHEMA)["ok"]


def test_worker_when_open_order_delivered_past_the_cap_then_it_ends_final_and_its_reservation_released(
    redis_client,
):
    # Arrange: a worker commits its decision (state NEW, shares reserved) and dies before the fills, five
    # times over: every restart re-reads its pending entries, one delivery more each. ``_decide`` is the
    # worker's first commit on its own: the one way to stop a worker between its two commits on purpose.
    from execution.intake import intake
    from execution.worker import ExecutionWorker

    publish_fresh_risk(redis_client, SCHEMA)
    order = SubmitOrder(
        order_id="open",
        ts="2026-01-05T14:30:00+00:00",
        strategy="fault",
        ticker="AAPL",
        side="BUY",
        quantity=10.0,
        reference_price=150.0,
    )
    redis_client.xadd(SCHEMA.key("orders"), order.to_dict())
    first = ExecutionWorker(redis_client, SCHEMA, "w1", ["AAPL"], marks={"AAPL": 150.0})
    [(_stream, [(entry_id, raw)])] = redis_client.xreadgroup(ORDERS_GROUP, "w1", {SCHEMA.key("orders"): ">"})
    first._decide([intake(0, entry_id, raw, first.tickers)], time.perf_counter())
    for _restart in range(5):
        redis_client.xreadgroup(ORDERS_GROUP, "w1", {SCHEMA.key("orders"): "0"})

    # Act: the next start of the worker reclaims it.
    ExecutionWorker(redis_client, SCHEMA, "w1", ["AAPL"], marks={"AAPL": 150.0}).reclaim(500)

    # Assert: dead-lettered once, cancelled with nothing filled, the reservation released, all audited.
    state = json.loads(redis_client.hget(SCHEMA.key("order_state"), "open"))
    assert state["state"] == "CANCELLED" and state["filled"] == 0
    assert redis_client.hlen(SCHEMA.key("inflight")) == 0
    [(_, letter)] = redis_client.xrange(SCHEMA.key("dead_letter"))
    assert letter["entry_id"] == entry_id and letter["reason"].startswith("MAX_DELIVERIES: delivered=")
    kinds = [e["kind"] for _, e in redis_client.xrange(SCHEMA.key("audit")) if e["ref"] == "open"]
    assert kinds.count("dead_letter") == 1 and kinds[:3] == ["order", "verdict", "state"]
    assert redis_client.xpending(SCHEMA.key("orders"), ORDERS_GROUP)["pending"] == 0
    assert verify(redis_client, SCHEMA)["ok"]
