"""The execution worker: orders from the Redis stream through policies, routing and venues to fills.

Delivery is at-least-once (a consumer group; pending entries of dead consumers are reclaimed with
XAUTOCLAIM at start and periodically); processing is idempotent per order id. A batch (what one
XREADGROUP returns) takes three round trips whatever its size; the decisions themselves are the pure
functions of :mod:`execution.batch`:

1. **read** (one pipeline): every order's state, the positions, the reservations of open orders, the
   trusted marks, the kill switch, the VaR figures' time and the sensor's heartbeat;
2. **decide and commit** (one Lua call, :mod:`quantbridge.audit`): the order, verdict and state entries
   go to the audit chain together with each order's state (NEW with its route, or REJECTED) and the
   reservation of its shares (``orders:inflight``), guarded on what was read: the order's state still
   absent, the reservation revision of its ticker and the kill switch unchanged. If another worker moved
   any of them meanwhile nothing is written and the batch is read and decided again, so two workers can
   never together pass orders that breach a limit;
3. **fill and commit** (venues, then one Lua call): each fill, the position change, the fills-stream
   entry, the final state (FILLED, or CANCELLED for an unfilled rest), the release of the reservation, the
   dead letters and duplicates of the batch, their audit entries and the stream acknowledgements, guarded
   on each order's state as decided. A crash before it leaves the orders open (NEW, resumed with their
   stored children, whose venues fill deterministically per child id); after it, everything is recorded.

Fail closed: the policies see the worker's own mark of the ticker (``qb:marks``, else the lake's last
close), never only the order's price; risk-increasing orders are rejected while the kill switch is set or
the risk figures are stale (``RISK_STALE``: ``qb:risk:current`` older than ``risk_stale_after_s`` or the
sensor's heartbeat gone). Malformed entries, and entries delivered more than ``max_deliveries`` times, go
to the dead-letter stream once, with their audit entry. No exception ends the worker's loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from execution import batch as core
from execution import orders as life
from execution.metrics import WorkerMetrics
from execution.policy import PolicyEngine
from execution.router import Child, Router
from execution.venues import DEFAULT_VENUES, Fill, SimulatedVenue, VenueSpec
from quantbridge.audit import AuditWriter, Effects, GuardFailed
from quantbridge.errors import ServiceError
from quantbridge.messages import SubmitOrder
from quantbridge.redis_client import text
from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema

log = logging.getLogger(__name__)

#: Audit entries on their way to a commit: (kind, ref, payload).
Trail = list[tuple[str, str, dict[str, Any]]]
#: A commit guard: (key, hash field or None, expected value or None for "absent").
Guard = tuple[str, str | None, str | None]

TERMINAL = life.TERMINAL
BATCH = 50
#: Decisions re-read and re-made at most this often per batch when other workers keep moving the state.
DECIDE_ATTEMPTS = 8
SENSOR = "var_sensor"
#: The worker's own heartbeat (``qb:heartbeat:execution_worker``): written at most every second, kept
#: for HEARTBEAT_TTL_S, so ``qb status`` and the dashboard see a dead or hung worker within seconds.
COMPONENT = "execution_worker"
HEARTBEAT_TTL_S = 10


@dataclass
class Outcome:
    order_id: str
    state: str
    filled: float = 0.0
    reasons: tuple[str, ...] = ()


@dataclass
class _Work:
    """One order of a batch on its way through the steps."""

    item: core.Intake
    order: SubmitOrder
    state: dict[str, Any] | None = None
    raw_state: str | None = None
    mark: float = 0.0
    children: list[Child] = field(default_factory=list)


class ExecutionWorker:
    """One consumer of the orders stream. ``marks`` (ticker -> price) are the lake's last closes; a fresher
    price in ``qb:marks`` wins. Orders in a ticker without any mark are rejected (NO_MARK)."""

    def __init__(
        self,
        client: Any,
        schema: RedisSchema,
        consumer: str,
        tickers: Iterable[str],
        esg: dict[str, float] | None = None,
        venues: tuple[VenueSpec, ...] = DEFAULT_VENUES,
        policy: PolicyEngine | None = None,
        on_event: Callable[[str, str], None] | None = None,
        metrics: WorkerMetrics | None = None,
        *,
        marks: Mapping[str, float] | None = None,
        risk_stale_after_s: float = 90.0,
        max_deliveries: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.schema, self.consumer = client, schema, consumer
        self.tickers, self.esg = frozenset(tickers), dict(esg or {})
        self.marks = {t: float(p) for t, p in (marks or {}).items()}
        self.risk_stale_after_s, self.max_deliveries, self.clock = risk_stale_after_s, max_deliveries, clock
        self.venues = {v.name: SimulatedVenue(v) for v in venues}
        self.router = Router(venues)
        self.policy = policy or PolicyEngine()
        self.on_event = on_event or (lambda _kind, _order_id: None)  # instrumentation (the benchmark)
        self.metrics = metrics or WorkerMetrics(v.name for v in venues)  # Prometheus, in-process only
        self.audit = AuditWriter(client, schema)
        # Stream entries are read undecoded: one entry that is not UTF-8 must be dead-lettered by intake, not
        # make every read of the stream (or of this consumer's pending entries) raise for ever.
        self._reader = _undecoded(client)
        self.stream = schema.key("orders")
        self._keys = {
            name: schema.key(name)
            for name in (
                "order_state",
                "positions",
                "kill_switch",
                "fills",
                "dead_letter",
                "inflight",
                "inflight_rev",
                "marks",
                "risk_current",
            )
        }
        self._heartbeat = schema.heartbeat(SENSOR)
        try:
            client.xgroup_create(self.stream, ORDERS_GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP: the group exists already
            if "BUSYGROUP" not in str(exc):
                raise
        # The limits this worker judges by are on the record before its first verdict.
        loaded = {"sha256": self.policy.sha256, "limits": self.policy.data, "folder": str(self.policy.folder)}
        self.audit.commit([("limits_loaded", consumer, loaded)])

    # --- one batch ------------------------------------------------------------------------------------
    def process(self, entry_id: str, raw: dict[Any, Any]) -> Outcome | None:
        """Handle one stream entry (not acknowledged: see :meth:`process_batch`)."""
        return self.process_batch([(entry_id, raw)])[0]

    def process_batch(
        self,
        entries: list[tuple[str, dict[Any, Any]]],
        ack: bool = False,
        deliveries: Mapping[str, int] | None = None,
    ) -> list[Outcome | None]:
        """Handle stream entries in order; with ``ack`` their acknowledgement lands with the final commit.
        ``deliveries``: entry id -> times delivered (from XPENDING). An entry whose handling failed gets None
        and stays pending for a retry (until the delivery cap dead-letters it)."""
        picked_up = time.perf_counter()
        counts = deliveries or {}
        items = [
            core.intake(i, e, raw, self.tickers, counts.get(e, 1), self.max_deliveries)
            for i, (e, raw) in enumerate(entries)
        ]
        outcomes: list[Outcome | None] = [None] * len(entries)
        works = [_Work(it, it.order) for it in items if it.order is not None and it.dead is None]
        trail: Trail = []
        dead_letters: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        for it in items:
            if it.dead is not None:
                trail.append(("dead_letter", it.ref, {"entry_id": it.entry_id, "reason": it.dead}))
                dead_letters.append(
                    (
                        self._keys["dead_letter"],
                        (
                            ("entry_id", it.entry_id),
                            ("reason", it.dead),
                            ("fields", json.dumps(it.fields)[: core.MAX_PAYLOAD_BYTES]),
                        ),
                    )
                )
                outcomes[it.index] = Outcome(it.ref, "DEAD_LETTER", reasons=(it.dead,))
        capped = [it for it in items if it.order is not None and it.dead is not None]
        closing = self._close_capped(capped, trail)
        to_send = self._decide(works, outcomes, trail, picked_up) if works else []
        if to_send is None:  # other workers kept moving the state: everything stays pending
            return [None] * len(entries)
        self._fill_and_commit(entries, to_send, outcomes, trail, dead_letters, ack, closing)
        for o in outcomes:
            if o is not None:
                self.metrics.outcome(o.state)
        return outcomes

    def _close_capped(
        self, capped: list[core.Intake], trail: Trail
    ) -> tuple[list[Guard], list[tuple[str, str]], list[tuple[str, str]]]:
        """Guards, state updates and reservation releases that cancel the open orders among entries past the
        delivery cap: dead-lettering the entry alone would leave such an order NEW, its shares reserved."""
        if not capped:
            return [], [], []
        k = self._keys
        raws = self.client.hmget(k["order_state"], [it.order.order_id for it in capped])
        guards, update, hdel = [], [], []
        for it, raw in zip(capped, raws):
            state = json.loads(text(raw)) if raw is not None else None
            if state is None or state["state"] in TERMINAL:
                continue
            oid, history = it.order.order_id, life.advance(state["history"], life.CANCELLED)
            guards.append((k["order_state"], oid, text(raw)))
            update.append(
                (
                    oid,
                    core.state_record(
                        life.CANCELLED,
                        state["filled"],
                        history,
                        children=state.get("children", []),
                        reasons=[it.dead],
                    ),
                )
            )
            hdel.append((k["inflight"], oid))
            payload = {"state": life.CANCELLED, "filled": state["filled"], "reason": it.dead}
            trail.append(("state", oid, payload))
        return guards, update, hdel

    def _read(self, works: list[_Work]) -> core.BookView:
        """Everything the decisions need, in one round trip."""
        k = self._keys
        tickers = sorted({w.order.ticker for w in works})
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(k["order_state"], [w.order.order_id for w in works])
        pipe.hmget(k["positions"], tickers)
        pipe.hgetall(k["inflight"])
        pipe.hmget(k["inflight_rev"], tickers)
        pipe.hmget(k["marks"], tickers)
        pipe.get(k["kill_switch"])
        pipe.hget(k["risk_current"], "updated_at")
        pipe.exists(self._heartbeat)
        states, positions, inflight, revs, marks, kill, updated_at, beat = pipe.execute()
        live = {t: _number(v) for t, v in zip(tickers, marks)}
        return core.BookView(
            states={w.order.order_id: (text(s) if s is not None else None) for w, s in zip(works, states)},
            positions={t: float(v or 0.0) for t, v in zip(tickers, positions)},
            inflight={text(oid): json.loads(text(v)) for oid, v in inflight.items()},
            revisions={t: (text(v) if v is not None else None) for t, v in zip(tickers, revs)},
            marks={t: (live[t] if live[t] is not None else self.marks.get(t)) for t in tickers},
            kill_switch=text(kill) if kill is not None else None,
            risk_updated_at=text(updated_at) if updated_at is not None else None,
            heartbeat=bool(beat),
        )

    def _decide(
        self, works: list[_Work], outcomes: list[Outcome | None], trail: Trail, picked_up: float
    ) -> list[_Work] | None:
        """Verdicts and routes for the fresh orders, committed with their audit entries and reservations;
        returns the orders to send (fresh ones accepted, open ones resumed)."""
        k = self._keys
        for _attempt in range(DECIDE_ATTEMPTS):
            view = self._read(works)
            entries: list[tuple[str, str, dict[str, Any]]] = []
            guards: list[tuple[str, str | None, str | None]] = []
            update, hset, hincr = [], [], []
            to_send, fresh, seen = [], [], set()
            for w in works:
                oid = w.order.order_id
                w.raw_state = view.states.get(oid)
                w.state = json.loads(w.raw_state) if w.raw_state else None
                if oid in seen or (w.state and w.state["state"] in TERMINAL):
                    outcomes[w.item.index] = Outcome(oid, "DUPLICATE", (w.state or {}).get("filled", 0.0))
                    entries.append(
                        (
                            "duplicate",
                            oid,
                            {"entry_id": w.item.entry_id, "state": (w.state or {}).get("state", "IN_BATCH")},
                        )
                    )
                    continue
                seen.add(oid)
                if w.state is not None:  # open: resume with the stored children, at the mark of now
                    mark = view.marks.get(w.order.ticker)
                    if mark is None:  # no trusted price to fill at: stays pending until one exists
                        continue
                    w.children, w.mark = [Child(**c) for c in w.state["children"]], mark
                    to_send.append(w)
                    continue
                fresh.append(w)
            verdicts = core.verdicts(
                [w.order for w in fresh],
                view,
                self.esg,
                self.clock(),
                self.risk_stale_after_s,
                self.policy.evaluate_many,
                self.policy.evaluate,
            )
            accepted = False
            for w, verdict in zip(fresh, verdicts):
                order = w.order
                if verdict is None:
                    continue  # its evaluation failed: left pending for a retry
                mark = view.marks.get(order.ticker)
                try:
                    children = (
                        []
                        if not verdict.allowed
                        else self.router.route(
                            order.order_id,
                            order.ticker,
                            order.side,
                            order.quantity,
                            float(mark),
                            getattr(order, "limit_price", None),
                        )
                    )
                except Exception:  # noqa: BLE001 - one bad order must not stop the worker (left pending)
                    log.exception("routing order %r failed; left pending for a retry", order.order_id)
                    continue
                guards.append((k["order_state"], order.order_id, None))
                context = {
                    "mark": mark,
                    "position": view.positions.get(order.ticker, 0.0),
                    "kill_switch": view.kill_switch is not None,
                    "policy_sha256": self.policy.sha256,
                }
                entries += [
                    ("order", order.order_id, order.to_dict()),
                    ("verdict", order.order_id, {**verdict.as_dict(), **context}),
                ]
                if not verdict.allowed:
                    state = {
                        "state": life.REJECTED,
                        "filled": 0.0,
                        "reasons": list(verdict.reasons),
                        "history": life.advance([], life.REJECTED),
                    }
                    outcomes[w.item.index] = Outcome(order.order_id, life.REJECTED, reasons=verdict.reasons)
                else:
                    state = {
                        "state": life.NEW,
                        "filled": 0.0,
                        "children": [c.__dict__ for c in children],
                        "history": life.advance([], life.NEW),
                    }
                    w.children, w.state, w.mark = children, state, float(mark)
                    hset.append((k["inflight"], order.order_id, core.reservation(order)))
                    hincr.append((k["inflight_rev"], order.ticker, 1.0))
                    to_send.append(w)
                    accepted = True
                w.raw_state = core.state_record(**state)
                entries.append(("state", order.order_id, state))
                update.append((order.order_id, w.raw_state))
                self.on_event("decision", order.order_id)
                self.metrics.decided(w.item.entry_id, picked_up, view.kill_switch is not None)
            if accepted:  # what the accepted verdicts relied on must still hold when they land
                reserved = sorted({t for _, t, _ in hincr})
                guards += [(k["inflight_rev"], t, view.revisions.get(t)) for t in reserved]
                guards.append((k["kill_switch"], None, view.kill_switch))
            if not update:
                trail += entries
                return to_send
            try:
                effects = Effects(
                    state_key=k["order_state"],
                    update=tuple(update),
                    guards=tuple(guards),
                    hset=tuple(hset),
                    hincr=tuple(hincr),
                )
                self.audit.commit(entries, effects)
            except GuardFailed as exc:
                log.info("state moved while deciding (%s); reading again", exc)
                for w in works:
                    outcomes[w.item.index] = None
                continue
            return to_send
        log.warning(
            "batch of %d orders left pending: the state kept moving for %d attempts",
            len(works),
            DECIDE_ATTEMPTS,
        )
        return None

    def _fill_and_commit(
        self,
        entries: list[tuple[str, dict[Any, Any]]],
        to_send: list[_Work],
        outcomes: list[Outcome | None],
        trail: list[tuple[str, str, dict[str, Any]]],
        dead_letters: list[tuple[str, tuple[tuple[str, str], ...]]],
        ack: bool,
        closing: tuple[list[Any], list[Any], list[Any]] = ([], [], []),
    ) -> None:
        """Send the children, then commit fills, positions, final states, reservations released, dead
        letters, duplicates, their audit entries and the acknowledgements in one Lua call. ``closing``:
        (guards, state updates, releases) of open orders cancelled with their dead-lettered entry."""
        k = self._keys
        fills: list[Fill] = []
        guards, update, hdel = list(closing[0]), list(closing[1]), list(closing[2])
        hincr, xadd = [], list(dead_letters)
        for w in to_send:
            order, mark = w.order, w.mark
            got = [
                self.venues[c.venue].execute(
                    c.child_id, order.order_id, order.ticker, order.side, c.quantity, mark, c.limit_price
                )
                for c in w.children
            ]
            got = [f for f in got if f is not None]
            steps, history = core.after_fills(
                w.state.get("history", [life.NEW]), [f.quantity for f in got], order.quantity
            )
            filled = 0.0
            for fill, step in zip(got, steps):
                filled += fill.quantity
                fields = {a: str(b) for a, b in fill.__dict__.items()}
                fields["ts"] = order.ts
                xadd.append((k["fills"], tuple(fields.items())))
                shares = fill.quantity if order.side == "BUY" else -fill.quantity
                hincr.append((k["positions"], order.ticker, shares))
                trail.append(("fill", order.order_id, {**fields, "state": step[-1], "filled": filled}))
                fills.append(fill)
            if not got or history[-1] == life.CANCELLED:
                trail.append(
                    (
                        "state",
                        order.order_id,
                        {"state": history[-1], "filled": filled, "cancelled": order.quantity - filled},
                    )
                )
            guards.append((k["order_state"], order.order_id, w.raw_state))
            update.append(
                (
                    order.order_id,
                    core.state_record(history[-1], filled, history, children=w.state["children"]),
                )
            )
            hdel.append((k["inflight"], order.order_id))
            outcomes[w.item.index] = Outcome(order.order_id, history[-1], filled)
        acks = tuple(entries[i][0] for i, o in enumerate(outcomes) if o is not None) if ack else ()
        if not (trail or update or acks):
            return
        effects = Effects(
            state_key=k["order_state"],
            update=tuple(update),
            guards=tuple(guards),
            stream=self.stream if acks else "",
            group=ORDERS_GROUP if acks else "",
            ack=acks,
            hdel=tuple(hdel),
            hincr=tuple(hincr),
            xadd=tuple(xadd),
        )
        try:
            self.audit.commit(trail, effects)
        except GuardFailed as exc:  # another worker finished one of these orders: all stay pending, re-read
            log.info("an order changed under this batch (%s); the batch stays pending", exc)
            for i in range(len(outcomes)):
                outcomes[i] = None
            return
        for fill in fills:
            self.router.learn(fill.venue, fill.ticker, fill.slippage_bps, fill.quantity)
            self.metrics.fill(fill.venue, fill.quantity, fill.price, fill.fee, fill.slippage_bps)
        for w in to_send:
            self.on_event("filled", w.order.order_id)

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
            start, claimed, *_ = self._reader.xautoclaim(
                self.stream, ORDERS_GROUP, self.consumer, min_idle_ms, start_id=start, count=100
            )
            live = [(text(e), raw) for e, raw in claimed if raw]
            gone = [e for e, raw in claimed if not raw]  # deleted from the stream meanwhile
            if gone:
                self.client.xack(self.stream, ORDERS_GROUP, *gone)
            outcomes = self.process_batch(live, ack=True, deliveries=self._deliveries(live)) if live else []
            done += len(gone) + sum(o is not None for o in outcomes)
            if text(start) == "0-0":
                return done

    def _deliveries(self, entries: list[tuple[str, Any]]) -> dict[str, int]:
        """Times each (already delivered) entry was delivered, from the group's pending list."""
        if not entries:
            return {}
        ids = [e for e, _ in entries]
        rows = self.client.xpending_range(
            self.stream,
            ORDERS_GROUP,
            min=min(ids, key=_id_key),
            max=max(ids, key=_id_key),
            count=len(ids) + 1000,
        )
        wanted = set(ids)
        counts = {text(r["message_id"]): int(r["times_delivered"]) for r in rows}
        return {e: n for e, n in counts.items() if e in wanted}

    def run(
        self,
        stop: threading.Event,
        block_ms: int = 500,
        max_orders: int | None = None,
        reclaim_idle_ms: int = 30_000,
    ) -> int:
        """Consume until ``stop`` is set (or ``max_orders``); returns orders handled.

        Redis going away is survived (back-off 0.2 s doubling to 5 s, then a reclaim); any other error is
        logged and counted, and the loop goes on (the entries stay pending until the delivery cap)."""
        import redis

        handled, backoff, reclaim_due, last_reclaim, last_beat = 0, 0.2, True, 0.0, 0.0
        while not stop.is_set() and (max_orders is None or handled < max_orders):
            try:
                # Reclaim at start, after an outage, and periodically: a consumer that dies after we started
                # leaves entries that only become claimable once they have been idle long enough.
                if reclaim_due or time.monotonic() - last_reclaim >= reclaim_idle_ms / 1000:
                    handled += self.reclaim(reclaim_idle_ms)
                    reclaim_due, last_reclaim = False, time.monotonic()
                handled += self._read_once(block_ms)
                backoff = 0.2
                self.metrics.last_poll.set(time.time())
                if time.monotonic() - last_beat >= 1.0:
                    stamp = datetime.now(UTC).isoformat(timespec="seconds")
                    self.client.set(
                        self.schema.heartbeat(COMPONENT), f"{stamp} {self.consumer}", ex=HEARTBEAT_TTL_S
                    )
                    last_beat = time.monotonic()
            except redis.AuthenticationError as exc:  # a refused password never fixes itself by retrying
                raise ServiceError(
                    f"Redis refused this worker's credentials ({exc}): set QB_REDIS_PASSWORD, "
                    "or make the password file (<services_dir>/redis/password) readable to "
                    "it"
                ) from exc
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, backoff)
                self.metrics.reconnects.inc()
                stop.wait(backoff)
                backoff, reclaim_due = min(backoff * 2, 5.0), True
            except Exception:  # noqa: BLE001 - a long-running process survives any one batch
                log.exception("batch failed; its entries stay pending, retried up to the delivery cap")
                self.metrics.errors.inc()
                stop.wait(backoff)
                backoff, reclaim_due = min(backoff * 2, 5.0), True
        return handled

    def _read_once(self, block_ms: int | None, start: str = ">") -> int:
        """Process one batch: new entries (``>``), or this consumer's own pending ones (``0``)."""
        reply = self._reader.xreadgroup(
            ORDERS_GROUP, self.consumer, {self.stream: start}, count=BATCH, block=block_ms
        )
        handled = 0
        for _stream, got in reply or []:
            batch = [(text(e), raw) for e, raw in got if raw]
            gone = [e for e, raw in got if not raw]  # pending, but deleted from the stream meanwhile
            if gone:
                self.client.xack(self.stream, ORDERS_GROUP, *gone)
            deliveries = self._deliveries(batch) if start != ">" else None
            handled += sum(o is not None for o in self.process_batch(batch, ack=True, deliveries=deliveries))
        return handled


def _undecoded(client: Any) -> Any:
    """A client on the same server and credentials whose replies stay bytes (``client`` itself if so)."""
    import redis

    pool = getattr(client, "connection_pool", None)
    if pool is None or not pool.connection_kwargs.get("decode_responses"):
        return client
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def _number(value: Any) -> float | None:
    """A price from Redis, or None when it is not a positive finite number (an unusable mark is no mark)."""
    try:
        number = float(text(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 and number != float("inf") else None


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def lake_marks(lake: Any, lookback_dates: int = 10) -> dict[str, float]:
    """Each ticker's last close in the lake (over the last ``lookback_dates`` dates): the worker's marks
    when no fresher price is in ``qb:marks``."""
    dates = lake.price_dates()
    if not dates:
        return {}
    closes = lake.read_close_matrix(start=dates[-min(lookback_dates, len(dates))])
    last = closes.ffill().iloc[-1].dropna()
    return {str(t): float(p) for t, p in last.items() if p > 0}
