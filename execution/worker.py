"""The execution worker: orders from the Redis stream through policies, routing and venues to fills.

Delivery is at-least-once (a consumer group; pending entries of dead consumers are reclaimed with
XAUTOCLAIM at start and periodically), processing is idempotent per order id. Orders are handled in
batches (what one XREADGROUP returns), in four round trips per batch whatever its size:

1. read: XREADGROUP, then one pipeline with every order's state, the positions and the kill switch;
2. decide (in-process: Rego policies, routing) and commit: one Lua call appends the order, verdict and
   route entries to the audit chain and creates each order's state (NEW, or REJECTED) only if absent,
   so a second worker racing on the same order adopts the first one's route;
3. send the children to the venues and, in one pipeline, record each fill (a Lua script adds the fill
   id, the position change, the fills-stream entry and the order's PARTIALLY_FILLED/FILLED state at once,
   only if the fill id is new);
4. in the same pipeline, one Lua call appends the fill entries to the audit chain, writes the final
   states (FILLED, or CANCELLED for an unfilled rest) and acknowledges the batch's stream entries.

An order whose state is terminal is acknowledged and skipped; one whose state is open (NEW,
PARTIALLY_FILLED) is resumed with its stored children, whose venues fill deterministically per child id.
So a crash between any two steps neither loses nor double-counts a fill, and no state or acknowledgement
lands without the audit entries describing it. Within a batch, each order's policy check sees the
earlier orders of the batch as fully filled (conservative for the position limit and the kill switch).

Malformed orders (missing/wrong-typed fields, unknown ticker, non-positive quantity, NaN price, oversized
payload) go to the dead-letter stream with the reason; the worker keeps running.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from execution import orders as life
from execution.audit import AuditWriter, Effects
from execution.metrics import WorkerMetrics
from execution.policy import PolicyEngine
from execution.router import Child, Router
from execution.venues import DEFAULT_VENUES, Fill, SimulatedVenue, VenueSpec
from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema
from quantbridge.state import text

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 8192
TERMINAL = life.TERMINAL
BATCH = 50

_RECORD_FILL = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBYFLOAT', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 6))
return 1
"""


@dataclass
class Outcome:
    order_id: str
    state: str
    filled: float = 0.0
    reasons: tuple[str, ...] = ()


@dataclass
class _Work:
    """One order of a batch on its way through the steps."""

    index: int
    entry_id: str
    order: SubmitOrder
    state: dict[str, Any] | None
    trail: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)


class ExecutionWorker:
    def __init__(self, client: Any, schema: RedisSchema, consumer: str, tickers: Iterable[str],
                 esg: dict[str, float] | None = None, venues: tuple[VenueSpec, ...] = DEFAULT_VENUES,
                 policy: PolicyEngine | None = None,
                 on_event: Callable[[str, str], None] | None = None,
                 metrics: WorkerMetrics | None = None) -> None:
        self.client, self.schema, self.consumer = client, schema, consumer
        self.tickers, self.esg = set(tickers), dict(esg or {})
        self.venues = {v.name: SimulatedVenue(v) for v in venues}
        self.router = Router(venues)
        self.policy = policy or PolicyEngine()
        self.on_event = on_event or (lambda _kind, _order_id: None)  # instrumentation (the benchmark)
        self.metrics = metrics or WorkerMetrics(v.name for v in venues)  # Prometheus, in-process only
        self._record_fill = client.register_script(_RECORD_FILL)
        self.audit = AuditWriter(client, schema)
        self.stream = schema.key("orders")
        self._keys = {name: schema.key(name) for name in
                      ("order_state", "positions", "kill_switch", "fills", "fills_seen", "dead_letter")}
        try:
            client.xgroup_create(self.stream, ORDERS_GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP: the group exists already
            if "BUSYGROUP" not in str(exc):
                raise

    # --- one batch ------------------------------------------------------------------------------------
    def process(self, entry_id: str, raw: dict[Any, Any]) -> Outcome:
        """Handle one stream entry (not acknowledged: see :meth:`process_batch`)."""
        return self.process_batch([(entry_id, raw)])[0]

    def process_batch(self, entries: list[tuple[str, dict[Any, Any]]], ack: bool = False) -> list[Outcome | None]:
        """Handle stream entries in order; with ``ack`` their acknowledgement lands with the final commit.
        An entry whose handling raised (not a Redis error) gets None and stays pending for a retry."""
        picked_up = time.perf_counter()
        k = self._keys
        outcomes: list[Outcome | None] = [None] * len(entries)
        works: list[_Work] = []
        dead: list[tuple[int, str, dict[str, str], str]] = []
        for i, (entry_id, raw) in enumerate(entries):
            fields = {text(a): text(b) for a, b in raw.items()}
            if sum(len(a) + len(b) for a, b in fields.items()) > MAX_PAYLOAD_BYTES:
                dead.append((i, entry_id, {"order_id": fields.get("order_id", "")},
                             f"PAYLOAD_TOO_LARGE: max={MAX_PAYLOAD_BYTES} bytes"))
                continue
            try:
                order = SubmitOrder.from_dict(fields)
            except InputError as exc:
                dead.append((i, entry_id, fields, f"MALFORMED: {exc}"))
                continue
            if order.ticker not in self.tickers:
                dead.append((i, entry_id, fields, f"UNKNOWN_TICKER: ticker={order.ticker}"))
                continue
            works.append(_Work(i, entry_id, order, None))

        # 1. read: states, positions, kill switch in one round trip (dead letters ride along).
        trail: list[tuple[str, str, dict[str, Any]]] = []
        pipe = self.client.pipeline(transaction=False)
        for i, entry_id, fields, reason in dead:
            pipe.xadd(k["dead_letter"], {"entry_id": entry_id, "reason": reason,
                                         "fields": json.dumps(fields)[:MAX_PAYLOAD_BYTES]})
            order_id = fields.get("order_id", entry_id)
            trail.append(("dead_letter", order_id, {"reason": reason}))
            outcomes[i] = Outcome(order_id, "DEAD_LETTER", reasons=(reason,))
        tickers = sorted({w.order.ticker for w in works})
        if works:
            pipe.hmget(k["order_state"], [w.order.order_id for w in works])
            pipe.hmget(k["positions"], tickers)
            pipe.exists(k["kill_switch"])
            # Child (and fill) ids are "<order id>#<i>", i < number of venues: which were filled already?
            child_ids = [f"{w.order.order_id}#{i}" for w in works for i in range(len(self.venues))]
            pipe.smismember(k["fills_seen"], child_ids)
        reply = pipe.execute() if len(pipe) else []
        kill = False
        projected: dict[str, float] = {}
        filled_before: set[str] = set()
        if works:
            raw_states, raw_positions, kill = reply[-4], reply[-3], bool(reply[-2])
            filled_before = {c for c, seen in zip(child_ids, reply[-1]) if seen}
            projected = {t: float(v or 0.0) for t, v in zip(tickers, raw_positions)}
            for w, raw_state in zip(works, raw_states):
                w.state = json.loads(raw_state) if raw_state else None

        # 2. decide, then commit the decisions with their audit entries (HSETNX: first writer wins).
        create: list[tuple[str, str]] = []
        seen: set[str] = set()
        to_send: list[_Work] = []
        fresh: list[_Work] = []
        for w in works:
            order = w.order
            if order.order_id in seen or (w.state and w.state["state"] in TERMINAL):
                outcomes[w.index] = Outcome(order.order_id, "DUPLICATE", (w.state or {}).get("filled", 0.0))
                continue
            seen.add(order.order_id)
            if w.state is not None:  # open: resume with the stored children
                w.children = [Child(**c) for c in w.state["children"]]
                to_send.append(w)
                continue
            fresh.append(w)
        verdicts = self._verdicts(fresh, projected, kill)
        for w in fresh:
            order, verdict = w.order, verdicts.get(w.order.order_id)
            if verdict is None:
                continue  # its evaluation failed: left pending for a retry
            try:
                children = [] if not verdict.allowed else self.router.route(
                    order.order_id, order.ticker, order.side, order.quantity, order.reference_price)
            except Exception:  # noqa: BLE001 - one bad order must not stop the worker (left pending)
                log.exception("order %s failed; left pending for a retry", w.entry_id)
                continue
            self.on_event("decision", order.order_id)
            self.metrics.decided(w.entry_id, picked_up, kill)
            trail += [("order", order.order_id, order.to_dict()), ("verdict", order.order_id, verdict.as_dict())]
            if not verdict.allowed:
                state = {"state": life.REJECTED, "filled": 0.0, "reasons": list(verdict.reasons),
                         "history": life.advance([], life.REJECTED)}
                outcomes[w.index] = Outcome(order.order_id, life.REJECTED, reasons=verdict.reasons)
            else:
                state = {"state": life.NEW, "filled": 0.0, "children": [c.__dict__ for c in children],
                         "history": life.advance([], life.NEW)}
                trail.append(("route", order.order_id, {"children": state["children"]}))
                w.children, w.state = children, state
                to_send.append(w)
            create.append((order.order_id, json.dumps(state)))
        if trail or create:
            _, created = self.audit.commit(trail, Effects(state_key=k["order_state"], create=tuple(create)))
            lost = {oid for (oid, _), ok in zip(create, created) if not ok}
            if lost:  # another worker decided first: adopt its decision (and see what it filled meanwhile)
                ids = [f"{oid}#{i}" for oid in sorted(lost) for i in range(len(self.venues))]
                filled_before |= {c for c, seen in zip(ids, self.client.smismember(k["fills_seen"], ids)) if seen}
                for w in [w for w in works if w.order.order_id in lost]:
                    raw_state = self.client.hget(k["order_state"], w.order.order_id)
                    w.state = json.loads(raw_state)
                    outcomes[w.index] = None
                    if w.state["state"] in TERMINAL:
                        to_send = [x for x in to_send if x is not w]
                        outcomes[w.index] = Outcome(w.order.order_id, "DUPLICATE", w.state.get("filled", 0.0))
                    else:
                        w.children = [Child(**c) for c in w.state["children"]]
                        if w not in to_send:
                            to_send.append(w)

        # 3 + 4. send, record fills (one Lua each), then audit + final states + acks, one round trip.
        pipe = self.client.pipeline(transaction=False)
        fills: list[Fill] = []
        trail, update = [], []
        for w in to_send:
            order, history = w.order, list(w.state.get("history", [life.NEW]))
            signed, filled = (1.0 if order.side == "BUY" else -1.0), 0.0
            for child in w.children:
                fill = self.venues[child.venue].execute(child.child_id, order.order_id, order.ticker, order.side,
                                                        child.quantity, order.reference_price, child.limit_price)
                if fill is None:
                    continue
                filled += fill.quantity
                if history[-1] not in TERMINAL:
                    history = life.after_fill(history, filled, order.quantity)
                running = {"state": history[-1], "filled": filled, "children": w.state["children"], "history": history}
                fields = {a: str(b) for a, b in fill.__dict__.items()}
                fields["ts"] = order.ts
                args = [fill.fill_id, fill.ticker, str(signed * fill.quantity), order.order_id, json.dumps(running)]
                for a, b in fields.items():
                    args += [a, b]
                self._record_fill(keys=[k["fills_seen"], k["positions"], k["fills"], k["order_state"]], args=args,
                                  client=pipe)
                fills.append(fill)
                # "replay": recorded before a crash (or by a racing worker); the Lua script counts it once.
                trail.append(("fill", order.order_id, {**fields, "replay": str(fill.fill_id in filled_before)}))
            if history[-1] not in TERMINAL:
                history = life.advance(history, life.CANCELLED)
            final = {"state": history[-1], "filled": filled, "children": w.state["children"], "history": history}
            update.append((order.order_id, json.dumps(final)))
            outcomes[w.index] = Outcome(order.order_id, final["state"], filled)
        acks = tuple(entries[i][0] for i, o in enumerate(outcomes) if o is not None) if ack else ()
        pending = self.audit.queue(pipe, trail, Effects(state_key=k["order_state"], update=tuple(update),
                                                        stream=self.stream, group=ORDERS_GROUP, ack=acks))
        if len(pipe):
            reply = pipe.execute()
            for fill, new in zip(fills, reply):
                if new:
                    self.router.learn(fill.venue, fill.ticker, fill.slippage_bps, fill.quantity)
                    self.metrics.fill(fill.venue, fill.quantity, fill.price, fill.fee, fill.slippage_bps)
            if pending is not None:
                self.audit.settle(pending, reply[-1])
        for w in to_send:
            self.on_event("filled", w.order.order_id)
        for i, (entry_id, _raw) in enumerate(entries):
            if outcomes[i] is not None:
                self.metrics.outcome(outcomes[i].state)
        return outcomes

    def _verdicts(self, fresh: list[_Work], projected: dict[str, float], kill: bool) -> dict[str, Any]:
        """Policy verdict per order id, as if the batch's orders were checked one after another.

        One Rego query for the batch assumes every earlier order of the batch is allowed (and fully filled);
        an order whose ticker saw an earlier denial in the batch is checked again on its own with the right
        projected position. ``projected`` (ticker -> position) ends including every allowed order."""
        def signed(order: SubmitOrder) -> float:
            return order.quantity if order.side == "BUY" else -order.quantity

        assumed, position = [], dict(projected)
        for w in fresh:
            assumed.append(position[w.order.ticker])
            position[w.order.ticker] += signed(w.order)
        try:
            batch = self.policy.evaluate_many(
                [(w.order, p, kill, self.esg.get(w.order.ticker)) for w, p in zip(fresh, assumed)])
        except Exception:  # noqa: BLE001 - one order's failure must not fail its batch: check one by one
            log.exception("batch policy evaluation failed; evaluating the %d orders one by one", len(fresh))
            batch = [None] * len(fresh)
        out: dict[str, Any] = {}
        for w, p, verdict in zip(fresh, assumed, batch):
            t = w.order.ticker
            if verdict is None or projected[t] != p:
                try:
                    verdict = self.policy.evaluate(w.order, projected[t], kill, self.esg.get(t))
                except Exception:  # noqa: BLE001 - left pending for a retry
                    log.exception("order %s failed; left pending for a retry", w.entry_id)
                    continue
            out[w.order.order_id] = verdict
            if verdict.allowed:
                projected[t] += signed(w.order)
        return out

    # --- the loop -------------------------------------------------------------------------------------
    def reclaim(self, min_idle_ms: int = 30_000) -> int:
        """Finish this consumer's own pending entries, then take over those of consumers idle for
        ``min_idle_ms`` (XAUTOCLAIM) and process them."""
        done, start = 0, "0-0"
        while True:
            mine = self._read_once(block_ms=None, start="0")
            done += mine
            if not mine:
                break
        while True:
            start, entries, *_ = self.client.xautoclaim(self.stream, ORDERS_GROUP, self.consumer, min_idle_ms,
                                                        start_id=start, count=100)
            live = [(text(e), raw) for e, raw in entries if raw]
            gone = [e for e, raw in entries if not raw]  # deleted from the stream meanwhile
            if gone:
                self.client.xack(self.stream, ORDERS_GROUP, *gone)
            done += len(gone) + sum(o is not None for o in self.process_batch(live, ack=True))
            if text(start) == "0-0":
                return done

    def run(self, stop: threading.Event, block_ms: int = 500, max_orders: int | None = None,
            reclaim_idle_ms: int = 30_000) -> int:
        """Consume until ``stop`` is set (or ``max_orders``); returns orders handled.

        Redis going away is survived: the loop backs off (0.2 s doubling to 5 s) and reclaims on return.
        """
        import redis

        handled, backoff, reclaim_due, last_reclaim = 0, 0.2, True, 0.0
        while not stop.is_set() and (max_orders is None or handled < max_orders):
            try:
                # Reclaim at start, after an outage, and periodically: a consumer that dies after we started
                # leaves entries that only become claimable once they have been idle long enough.
                if reclaim_due or time.monotonic() - last_reclaim >= reclaim_idle_ms / 1000:
                    handled += self.reclaim(reclaim_idle_ms)
                    reclaim_due, last_reclaim = False, time.monotonic()
                handled += self._read_once(block_ms)
                backoff = 0.2
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, backoff)
                self.metrics.reconnects.inc()
                stop.wait(backoff)
                backoff, reclaim_due = min(backoff * 2, 5.0), True
        return handled

    def _read_once(self, block_ms: int | None, start: str = ">") -> int:
        """Process one batch: new entries (``>``), or this consumer's own pending ones (``0``)."""
        reply = self.client.xreadgroup(ORDERS_GROUP, self.consumer, {self.stream: start}, count=BATCH, block=block_ms)
        handled = 0
        for _stream, entries in reply or []:
            handled += sum(o is not None for o in self.process_batch([(text(e), raw) for e, raw in entries], ack=True))
        return handled
