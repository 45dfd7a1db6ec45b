"""The execution worker: orders from the Redis stream through policies, routing and venues to fills.

Delivery is at-least-once (a consumer group; pending entries of dead consumers are reclaimed with
XAUTOCLAIM on start), processing is idempotent per order id:
* an order whose state is terminal is acknowledged and skipped;
* the route is stored with the order state before any child is sent, so a replay after a crash sends the
  same children; venues fill deterministically per child id, and a Lua script records each fill, its
  position change and its fills-stream entry at once, only if the fill id is new.
So a crash between any two steps neither loses nor double-counts a fill.

Malformed orders (missing/wrong-typed fields, unknown ticker, non-positive quantity, NaN price, oversized
payload) go to the dead-letter stream with the reason; the worker keeps running. Every order, verdict,
route and fill is appended to the audit chain.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from execution.audit import AuditWriter
from execution.metrics import WorkerMetrics
from execution.policy import PolicyEngine
from execution.router import Child, Router
from execution.venues import DEFAULT_VENUES, SimulatedVenue, VenueSpec
from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder
from quantbridge.state import text
from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 8192
TERMINAL = {"FILLED", "CANCELLED", "REJECTED"}

_RECORD_FILL = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBYFLOAT', KEYS[2], ARGV[2], ARGV[3])
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 4))
return 1
"""



@dataclass
class Outcome:
    order_id: str
    state: str
    filled: float = 0.0
    reasons: tuple[str, ...] = ()


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
        try:
            client.xgroup_create(self.stream, ORDERS_GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP: the group exists already
            if "BUSYGROUP" not in str(exc):
                raise

    # --- one order ------------------------------------------------------------------------------------
    def _dead_letter(self, entry_id: str, fields: dict[str, str], reason: str) -> Outcome:
        self.client.xadd(self.schema.key("dead_letter"), {"entry_id": entry_id, "reason": reason,
                                                           "fields": json.dumps(fields)[:MAX_PAYLOAD_BYTES]})
        self.audit.append_many([("dead_letter", fields.get("order_id", entry_id), {"reason": reason})])
        return Outcome(fields.get("order_id", entry_id), "DEAD_LETTER", reasons=(reason,))

    def _state(self, order_id: str) -> dict[str, Any] | None:
        raw = self.client.hget(self.schema.key("order_state"), order_id)
        return json.loads(raw) if raw else None

    def _set_state(self, order_id: str, state: dict[str, Any]) -> None:
        self.client.hset(self.schema.key("order_state"), order_id, json.dumps(state))

    def process(self, entry_id: str, raw: dict[Any, Any]) -> Outcome:
        picked_up = time.perf_counter()
        fields = {text(k): text(v) for k, v in raw.items()}
        if sum(len(k) + len(v) for k, v in fields.items()) > MAX_PAYLOAD_BYTES:
            return self._dead_letter(entry_id, {"order_id": fields.get("order_id", "")},
                                     f"PAYLOAD_TOO_LARGE: max={MAX_PAYLOAD_BYTES} bytes")
        try:
            order = SubmitOrder.from_dict(fields)
        except InputError as exc:
            return self._dead_letter(entry_id, fields, f"MALFORMED: {exc}")
        if order.ticker not in self.tickers:
            return self._dead_letter(entry_id, fields, f"UNKNOWN_TICKER: ticker={order.ticker}")
        state = self._state(order.order_id)
        if state and state["state"] in TERMINAL:
            return Outcome(order.order_id, "DUPLICATE", state.get("filled", 0.0))
        if state is None:
            trail: list[tuple[str, str, dict[str, Any]]] = [("order", order.order_id, order.to_dict())]
            position = float(self.client.hget(self.schema.key("positions"), order.ticker) or 0.0)
            kill = bool(self.client.exists(self.schema.key("kill_switch")))
            verdict = self.policy.evaluate(order, position, kill, self.esg.get(order.ticker))
            trail.append(("verdict", order.order_id, verdict.as_dict()))
            if not verdict.allowed:
                self._set_state(order.order_id, {"state": "REJECTED", "filled": 0.0, "reasons": list(verdict.reasons)})
                self.audit.append_many(trail)
                self.on_event("decision", order.order_id)
                self.metrics.decided(entry_id, picked_up, kill)
                return Outcome(order.order_id, "REJECTED", reasons=verdict.reasons)
            children = self.router.route(order.order_id, order.ticker, order.side, order.quantity, order.reference_price)
            self.on_event("decision", order.order_id)
            self.metrics.decided(entry_id, picked_up, kill)
            state = {"state": "ROUTED", "filled": 0.0, "children": [c.__dict__ for c in children]}
            # Stored before any child is sent, so a replay sends the same children; HSETNX makes a second
            # worker racing on the same order adopt the first one's route instead of its own.
            # Audited before the route is stored: a crash in between replays (and re-audits) the order;
            # nothing the worker decided is ever missing from the trail.
            trail.append(("route", order.order_id, {"children": state["children"]}))
            self.audit.append_many(trail)
            if not self.client.hsetnx(self.schema.key("order_state"), order.order_id, json.dumps(state)):
                state = self._state(order.order_id)
                if state["state"] in TERMINAL:
                    return Outcome(order.order_id, "DUPLICATE", state.get("filled", 0.0))
        filled = self._send(order, [Child(**c) for c in state["children"]])
        final = "FILLED" if filled >= order.quantity - 1e-9 else "CANCELLED"
        self._set_state(order.order_id, {"state": final, "filled": filled, "children": state["children"]})
        self.on_event("filled", order.order_id)
        return Outcome(order.order_id, final, filled)

    def _send(self, order: SubmitOrder, children: list[Child]) -> float:
        filled, trail = 0.0, []
        signed = 1.0 if order.side == "BUY" else -1.0
        for child in children:
            fill = self.venues[child.venue].execute(child.child_id, order.order_id, order.ticker, order.side,
                                                    child.quantity, order.reference_price, child.limit_price)
            if fill is None:
                continue
            fields = {k: str(v) for k, v in fill.__dict__.items()}
            fields["ts"] = order.ts
            args = [fill.fill_id, fill.ticker, str(signed * fill.quantity)]
            for k, v in fields.items():
                args += [k, v]
            new = self._record_fill(keys=[self.schema.key("fills_seen"), self.schema.key("positions"),
                                          self.schema.key("fills")], args=args)
            if new:
                self.router.learn(fill.venue, fill.ticker, fill.slippage_bps, fill.quantity)
                self.metrics.fill(fill.venue, fill.quantity, fill.price, fill.fee, fill.slippage_bps)
            # A replayed fill is audited again, marked, so a crash before the audit write loses nothing.
            trail.append(("fill", order.order_id, {**fields, "replay": str(not new)}))
            filled += fill.quantity
        self.audit.append_many(trail)
        return filled

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
            for entry_id, raw in entries:
                if raw:
                    self.metrics.outcome(self.process(text(entry_id), raw).state)
                self.client.xack(self.stream, ORDERS_GROUP, entry_id)
                done += 1
            if text(start) == "0-0":
                return done

    def run(self, stop: threading.Event, block_ms: int = 500, max_orders: int | None = None,
            reclaim_idle_ms: int = 30_000) -> int:
        """Consume until ``stop`` is set (or ``max_orders``); returns orders handled.

        Redis going away is survived: the loop backs off (0.2 s doubling to 5 s) and reclaims on return.
        """
        import redis

        import time

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

    def _read_once(self, block_ms: int, start: str = ">") -> int:
        """Process one batch: new entries (``>``), or this consumer's own pending ones (``0``)."""
        import redis

        handled = 0
        reply = self.client.xreadgroup(ORDERS_GROUP, self.consumer, {self.stream: start}, count=50, block=block_ms)
        for _stream, entries in reply or []:
            for entry_id, raw in entries:
                try:
                    self.metrics.outcome(self.process(text(entry_id), raw).state)
                except (redis.ConnectionError, redis.TimeoutError):
                    raise
                except Exception:  # noqa: BLE001 - one bad order must not stop the worker
                    log.exception("order %s failed; left pending for a retry", entry_id)
                    continue
                self.client.xack(self.stream, ORDERS_GROUP, entry_id)
                handled += 1
        return handled
