"""The execution worker: orders from the Redis stream through policies, routing and venues to fills.

Delivery is at-least-once (a consumer group; pending entries of dead consumers are reclaimed with
XAUTOCLAIM at start and periodically); processing is idempotent per order id. A batch (what one
XREADGROUP returns) takes three round trips whatever its size (one more read when entries are past the
delivery cap). The decisions are pure functions of plain data (:mod:`execution.intake` validates,
:mod:`execution.decisions` judges, routes and plans each commit, :mod:`execution.router` ranks venues);
this module is their adapters: the Redis reads and commits, the venues, the metrics.

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

import dataclasses
import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from execution import decisions as core
from execution.bundle import BundleError, read_active, worker_record
from execution.decisions import Outcome
from execution.intake import Intake, intake
from execution.metrics import WorkerMetrics
from execution.policy import PolicyEngine
from execution.router import Router
from execution.venues import DEFAULT_VENUES, Fill, SimulatedVenue, VenueSpec
from quantbridge.audit import AuditWriter, GuardFailed
from quantbridge.errors import InputError, ServiceError
from quantbridge.redis_client import Wire, stream_entries, text
from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema
from quantbridge.settings import Settings

__all__ = ["ExecutionWorker", "Outcome", "lake_marks"]

log = logging.getLogger(__name__)

BATCH = 50
#: Decisions re-read and re-made at most this often per batch when other workers keep moving the state.
DECIDE_ATTEMPTS = 8
#: A worker that loses a decision commit takes the turn (``qb:orders:decide_turn``) for at most TURN_TTL_MS;
#: the others wait for it in steps of TURN_WAIT_S, for at most TURN_MAX_WAIT_S per batch. Without it, at
#: 2,000 orders/s with two workers on five tickers, one worker's commits kept losing to the other's and its
#: batch waited for the 30 s reclaim.
TURN_TTL_MS = 50
TURN_WAIT_S = 0.001
TURN_MAX_WAIT_S = 0.5
#: Deletes the turn only if this worker still holds it (it may have expired and been taken by another).
_RELEASE_TURN = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
SENSOR = "var_sensor"
#: The worker's own heartbeat (``qb:heartbeat:execution_worker``): written at most every second, kept
#: for HEARTBEAT_TTL_S, so ``qb status`` and the dashboard see a dead or hung worker within seconds.
COMPONENT = "execution_worker"
HEARTBEAT_TTL_S = 10


class ExecutionWorker:
    """One consumer of the orders stream. ``marks`` (ticker -> price) are the lake's last closes; a fresher
    price in ``qb:marks`` wins. Orders in a ticker without any mark are rejected (NO_MARK). ``executors``
    (venue name -> object with ``execute`` like :class:`SimulatedVenue`) replace the simulated venues."""

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
        executors: Mapping[str, Any] | None = None,
        verifier: Any | None = None,
        policy_loader: Callable[[str], PolicyEngine] | None = None,
        policy_check_s: float = 1.0,
        signed_active: Callable[[], str | None] | None = None,
    ) -> None:
        self.client, self.schema, self.consumer = client, schema, consumer
        self.tickers = frozenset(tickers)
        self.marks = {t: float(p) for t, p in (marks or {}).items()}
        self.max_deliveries, self.clock = max_deliveries, clock
        # What fills each venue's children: the simulated venues, or another market with the same
        # ``execute`` (the replay's :class:`execution.market.Market`, anchored on the day's real close).
        self.venues = (
            dict(executors) if executors is not None else {v.name: SimulatedVenue(v) for v in venues}
        )
        missing = sorted({v.name for v in venues} - set(self.venues))
        if missing:
            raise InputError("executors", ",".join(missing), "an executor for every routed venue")
        self.router = Router(venues)
        self.esg, self.risk_stale_after_s = dict(esg or {}), risk_stale_after_s
        # Orders are checked against the signed batch they were published in before anything else
        # (:class:`execution.signatures.OrderVerifier`); None only where no publisher signs (unit tests).
        self.verifier = verifier
        # An activated policy revision is loaded through ``policy_loader`` (it verifies the bundle's files,
        # signature and approvals, raising otherwise), between batches, at most every ``policy_check_s``.
        self.policy_loader, self.policy_check_s = policy_loader, policy_check_s
        self._policy_checked, self._refused = time.monotonic(), ""  # checked at start (below)
        self.on_event = on_event or (lambda _kind, _order_id: None)  # instrumentation (the benchmark)
        self.metrics = metrics or WorkerMetrics(v.name for v in venues)  # Prometheus, in-process only
        # The hot path's round trips (the book read, the two commits) skip redis-py's per-command machinery.
        self.wire = Wire(client)
        self.audit = AuditWriter(client, schema, wire=self.wire)
        # Stream entries are read undecoded: one entry that is not UTF-8 must be dead-lettered by intake, not
        # make every read of the stream (or of this consumer's pending entries) raise for ever.
        self._reader = _undecoded(client)
        self._reader_wire = Wire(self._reader)
        self.keys = core.Keys.of(schema)
        self.stream = self.keys.orders
        self._active = schema.key("policy_active")
        self._workers = schema.key("policy_workers")
        self._heartbeat = schema.heartbeat(SENSOR)
        self._turn = schema.key("decide_turn")
        self._turn_holder: str | None = None
        try:
            client.xgroup_create(self.stream, ORDERS_GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP: the group exists already
            if "BUSYGROUP" not in str(exc):
                raise
        # The limits this worker judges by are on the record before its first verdict: the activated
        # revision when there is one (fail closed: one that does not verify stops the start), else the
        # given engine (the repository's policies/ by default).
        active = None
        try:
            active = self._active_revision() if policy_loader is not None else None
            if active is None and signed_active is not None:
                self._check_not_deleted(signed_active)
            if (
                active is not None
                and policy_loader is not None
                and (policy is None or policy.revision != active)
            ):
                policy = policy_loader(active)
        except Exception as exc:  # noqa: BLE001 - named in the error: nothing is judged by it
            raise ServiceError(
                f"the active policy ({self._active}: {active or 'no record'}) does not verify: {exc}; "
                "re-activate an approved revision with `qb policy rollback REVISION`"
            ) from exc
        self._use_policy(policy or PolicyEngine(), "bundle" if active else "given", previous=None)

    # --- the policy revision --------------------------------------------------------------------------
    def _use_policy(self, policy: PolicyEngine, source: str, previous: str | None) -> None:
        """Judge by ``policy`` from now on, on the record (audit chain and ``policy:workers``) first."""
        loaded = {
            "sha256": policy.revision,  # the surveillance's limits timeline reads this name
            "revision": policy.revision,
            "previous": previous,
            "source": source,
            "limits": policy.data,
            "folder": str(policy.folder),
        }
        self.audit.commit([("limits_loaded", self.consumer, loaded)])
        self.policy = policy
        self.rules = core.Rules(
            policy.evaluate_many, policy.evaluate, policy.revision, self.esg, self.risk_stale_after_s
        )
        self._report_policy()

    def _report_policy(self, reason: str | None = None) -> None:
        """What ``qb policy status`` shows of this worker: its revision, since when, the last one refused."""
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        record = worker_record(self.policy.revision, stamp, self._refused or None, reason)
        self.client.hset(self._workers, self.consumer, record)

    def _active_revision(self) -> str | None:
        """The activated revision (None: none ever was); BundleError when the record is not one."""
        record = read_active(self.client, self.schema)
        return str(record["revision"]) if record is not None else None

    def _refuse(self, revision: str, exc: Exception) -> str:
        """Keep judging by the revision in force; ``revision``'s refusal on the record once (not again until
        the active record changes). Returns the revision in force."""
        if revision != self._refused:
            log.error(
                "policy revision %s refused: %s; still judging by %s", revision, exc, self.policy.revision
            )
            self._refused = revision
            payload = {"revision": revision, "reason": str(exc)[:500], "kept": self.policy.revision}
            self.audit.commit([("policy_refused", self.consumer, payload)])
            self._report_policy(str(exc)[:500])
        return self.policy.revision

    def _check_not_deleted(self, signed_active: Callable[[], str | None]) -> None:
        """No active record in Redis: fine only if none was ever signed into the lake. A deleted record must
        not make a new worker fall back to the repository's policies (any Redis writer could do that)."""
        signed = signed_active()
        if signed is not None:
            raise ValueError(
                f"{self._active} is missing but the lake's signed record names revision {signed} active"
            )

    def refresh_policy(self, force: bool = False) -> str:
        """Switch to the activated policy revision if it changed (between batches: no order is judged by a
        half-loaded bundle). A revision that does not verify is refused, on the record, and the worker keeps
        judging by the one it has. Returns the revision in force."""
        now = time.monotonic()
        if self.policy_loader is None or (not force and now - self._policy_checked < self.policy_check_s):
            return self.policy.revision
        self._policy_checked = now
        try:
            active = self._active_revision()
        except BundleError as exc:  # an unreadable record activates nothing
            return self._refuse("unreadable", exc)
        if active is None or active == self.policy.revision or active == self._refused:
            return self.policy.revision
        try:
            engine = self.policy_loader(active)
            if engine.revision != active:
                raise ValueError(f"the loaded bundle's revision is {engine.revision}, not {active}")
        except Exception as exc:  # noqa: BLE001 - a bad bundle must not stop the worker: it is refused
            return self._refuse(active, exc)
        self._refused = ""
        self._use_policy(engine, "bundle", previous=self.policy.revision)
        log.info("policy revision %s in force", active)
        return active

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
        picked_up, counts = time.perf_counter(), deliveries or {}
        items = [
            intake(i, e, raw, self.tickers, counts.get(e, 1), self.max_deliveries)
            for i, (e, raw) in enumerate(entries)
        ]
        items = self._verified(items)
        letters, dead = core.dead_letters(items, self.keys, self.policy.revision)
        closing = core.cancel_capped(self._read_capped(items), self.keys)
        live = [it for it in items if it.order is not None and it.dead is None]
        # read -> decide -> commit, read and decided again while other workers move what it relied on
        decision = self._decide(live, picked_up) if live else core.Decision()
        if decision is None:  # the state kept moving: everything stays pending
            return [None] * len(entries)
        # fill -> commit, together with the dead letters and the capped orders cancelled
        outcomes = self._fill_and_commit(entries, decision, letters + closing, dead, ack)
        for o in outcomes:
            if o is not None:
                self.metrics.outcome(o.state)
        return outcomes

    def _verified(self, items: list[Intake]) -> list[Intake]:
        """``items`` with every order whose batch signature fails turned into a dead letter (BAD_SIGNATURE),
        its order dropped: a forged entry must not even cancel the open order whose id it reuses."""
        verifier = self.verifier
        candidates = [it for it in items if it.order is not None and it.dead is None]
        if verifier is None or not candidates:
            return items
        wanted = verifier.missing_roots(it.fields for it in candidates)
        roots: dict[str, str | None] = {}
        if wanted:  # one read per batch, only for roots not verified yet
            got = self.client.hmget(self.keys.order_signatures, wanted)
            roots = {
                root: (text(raw) if raw is not None else None) for root, raw in zip(wanted, got, strict=True)
            }
        out = []
        for it in items:
            reason = verifier.check(it.fields, roots) if it.order is not None and it.dead is None else None
            out.append(dataclasses.replace(it, order=None, dead=reason) if reason else it)
        return out

    def _read_capped(self, items: list[Intake]) -> list[tuple[Intake, str | None]]:
        """The state records of the orders among entries past the delivery cap (one read, only if any)."""
        capped = [(it, it.order.order_id) for it in items if it.dead is not None and it.order is not None]
        if not capped:
            return []
        raws = self.client.hmget(self.keys.order_state, [oid for _, oid in capped])
        return [
            (it, text(raw) if raw is not None else None) for (it, _), raw in zip(capped, raws, strict=True)
        ]

    def _read(self, live: list[Intake]) -> core.BookView:
        """Everything the decisions need, in one round trip (through :class:`Wire`: replies as sent)."""
        k = self.keys
        orders = [it.order for it in live if it.order is not None]
        tickers = sorted({o.ticker for o in orders})
        states, positions, flat, revs, marks, kill, updated_at, beat, turn = self.wire.execute(
            ("HMGET", k.order_state, *[o.order_id for o in orders]),
            ("HMGET", k.positions, *tickers),
            ("HGETALL", k.inflight),
            ("HMGET", k.inflight_rev, *tickers),
            ("HMGET", k.marks, *tickers),
            ("GET", k.kill_switch),
            ("HGET", k.risk_current, "updated_at"),
            ("EXISTS", self._heartbeat),
            ("GET", self._turn),
        )
        # HGETALL's reply: a flat list of field, value under RESP2, a map under RESP3.
        inflight = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))
        self._turn_holder = text(turn) if turn is not None else None
        return core.BookView(
            states={
                o.order_id: (text(s) if s is not None else None) for o, s in zip(orders, states, strict=True)
            },
            positions={t: float(v or 0.0) for t, v in zip(tickers, positions, strict=True)},
            inflight={text(oid): json.loads(text(v)) for oid, v in inflight.items()},
            revisions={t: (text(v) if v is not None else None) for t, v in zip(tickers, revs, strict=True)},
            marks=core.trusted_marks(dict(zip(tickers, marks, strict=True)), self.marks),
            kill_switch=text(kill) if kill is not None else None,
            risk_updated_at=text(updated_at) if updated_at is not None else None,
            heartbeat=bool(beat),
        )

    # Why three round trips per batch (plus the XREADGROUP that brings it), and none fewer:
    # * the read cannot ride in a Lua call with the decision commit: the verdicts are made here, in Python
    #   (the Rego engine), between the two, and the commit is guarded on what was read instead of locking;
    # * the decision commit must land before any child reaches a venue (an order is never sent without its
    #   order, verdict and state entries and its reservation on the record, so a crash can only leave it
    #   NEW, to be resumed), and the venues answer only after it;
    # * the fill commit must come after the venues' answers (a fill is recorded only once it happened).
    # What could still be merged safely: a batch that sends nothing (all rejected or duplicates) needs no
    # separate decision commit (its entries could ride with the dead letters and acks: one call, not two),
    # and the fill commit of one batch could share a pipeline with the next batch's non-blocking
    # XREADGROUP. Neither is done yet: the first only helps batches that are all rejected, the second
    # changes how the loop blocks for new entries.
    def _decide(self, live: list[Intake], picked_up: float) -> core.Decision | None:
        """Read the book, decide the batch's valid orders and commit the decisions with their audit entries
        and reservations; read and decided again while other workers move what the verdicts relied on.
        None: it kept moving for DECIDE_ATTEMPTS reads (the batch stays pending)."""
        venues = tuple(self.router.venues.values())
        attempts, waited, took_turn = 0, 0.0, False
        while attempts < DECIDE_ATTEMPTS:
            view = self._read(live)
            if self._turn_holder not in (None, self.consumer) and waited < TURN_MAX_WAIT_S:
                time.sleep(TURN_WAIT_S)  # another worker lost a race and commits first
                waited += TURN_WAIT_S
                continue
            attempts += 1
            decision = core.decide(
                live, view, self.clock(), self.rules, venues, self.router.filters, self.keys
            )
            for item in decision.decided:
                self.on_event("decision", item.ref)  # the order id
            if decision.decided:
                self.metrics.decided_many(
                    [item.entry_id for item in decision.decided], picked_up, view.kill_switch is not None
                )
            if decision.commit is None:  # no order state to write: the entries ride with the fill commit
                return self._released(decision, took_turn)
            try:
                self.audit.commit(decision.commit.trail, decision.commit.effects(self.keys))
            except GuardFailed as exc:
                log.info("state moved while deciding (%s); reading again", exc)
                took_turn = (
                    bool(self.client.set(self._turn, self.consumer, nx=True, px=TURN_TTL_MS)) or took_turn
                )
                continue
            return self._released(decision, took_turn)
        self._released(None, took_turn)
        log.warning(
            "batch of %d orders left pending: the state kept moving for %d attempts",
            len(live),
            DECIDE_ATTEMPTS,
        )
        return None

    def _released(self, decision: core.Decision | None, took_turn: bool) -> core.Decision | None:
        """``decision``, after giving back the turn this worker took (one more round trip, only then)."""
        if took_turn:
            self.client.eval(_RELEASE_TURN, 1, self._turn, self.consumer)
        return decision

    def _fill_and_commit(
        self,
        entries: list[tuple[str, dict[Any, Any]]],
        decision: core.Decision,
        settled: core.Plan,
        dead: dict[int, Outcome],
        ack: bool,
    ) -> list[Outcome | None]:
        """Send the decided orders' children to the venues, then commit the fills, positions, final states
        and releases with ``settled`` (dead letters, capped orders cancelled), the entries the decision
        carried (duplicates) and the acknowledgements, in one Lua call. ``dead``: the dead-lettered entries'
        outcomes. All None when an order changed under the batch (another worker finished it): everything
        stays pending, to be read again."""
        sent = [(opened, self._execute(opened)) for opened in decision.send]
        fills, filled = core.record_fills(sent, self.keys)
        plan = settled + core.Plan(trail=decision.carry) + fills
        outcomes: list[Outcome | None] = [None] * len(entries)
        for index, outcome in {**dead, **decision.outcomes, **filled}.items():
            outcomes[index] = outcome
        acks = tuple(entries[i][0] for i, o in enumerate(outcomes) if o is not None) if ack else ()
        if not (plan.trail or plan.update or acks):
            return outcomes
        try:
            self.audit.commit(plan.trail, plan.effects(self.keys, acks))
        except GuardFailed as exc:
            log.info("an order changed under this batch (%s); the batch stays pending", exc)
            return [None] * len(entries)
        for _opened, got in sent:
            for fill in got:
                self.router.learn(fill.venue, fill.ticker, fill.slippage_bps, fill.quantity)
                self.metrics.fill(fill.venue, fill.quantity, fill.price, fill.fee, fill.slippage_bps)
        for opened, _got in sent:
            self.on_event("filled", opened.order.order_id)
        return outcomes

    def _execute(self, opened: core.Open) -> list[Fill]:
        """The fills an order's children get at their venues (at the order's mark)."""
        order = opened.order
        got = [
            self.venues[c.venue].execute(
                c.child_id, order.order_id, order.ticker, order.side, c.quantity, opened.mark, c.limit_price
            )
            for c in opened.children
        ]
        return [f for f in got if f is not None]

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

        # What is alive now (modules, the engine, the marks) lives as long as the process: frozen out of the
        # collector's reach, a full collection no longer walks it (about 26 ms for the ~95,000 objects after
        # the imports: a pause every order waiting behind it would pay).
        gc.collect()
        gc.freeze()
        handled, backoff, reclaim_due, last_reclaim, last_beat = 0, 0.2, True, 0.0, 0.0
        while not stop.is_set() and (max_orders is None or handled < max_orders):
            try:
                # Reclaim at start, after an outage, and periodically: a consumer that dies after we started
                # leaves entries that only become claimable once they have been idle long enough.
                if reclaim_due or time.monotonic() - last_reclaim >= reclaim_idle_ms / 1000:
                    handled += self.reclaim(reclaim_idle_ms)
                    reclaim_due, last_reclaim = False, time.monotonic()
                self.refresh_policy()  # between batches, at most every policy_check_s
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
        block = ("BLOCK", block_ms) if block_ms is not None else ()
        (reply,) = self._reader_wire.execute(
            ("XREADGROUP", "GROUP", ORDERS_GROUP, self.consumer, "COUNT", BATCH, *block)
            + ("STREAMS", self.stream, start)
        )
        handled = 0
        for got in stream_entries(reply):
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


def tradable_tickers(lake: Any) -> set[str]:
    """The tickers with a close on the lake's latest date: the universe the worker accepts orders for."""
    dates = lake.price_dates()
    return set(lake.read_close_matrix(start=dates[-1]).columns) if dates else set()


def worker_from_lake(client: Any, settings: Settings, lake: Any, consumer: str) -> ExecutionWorker:
    """The worker both ``qb worker`` and the Airflow operator run: the universe, ESG scores and marks from
    ``lake``, the freshness bound and delivery cap from ``settings``, keys under its Redis prefix."""
    from marketdata.reference import esg_scores

    scores = esg_scores(lake)
    return ExecutionWorker(
        client,
        RedisSchema(settings.redis_prefix),
        consumer,
        tradable_tickers(lake),
        scores.to_dict() if scores is not None else {},
        marks=lake_marks(lake),
        risk_stale_after_s=settings.risk_stale_after_s,
        max_deliveries=settings.max_deliveries,
        **governed(settings, lake),
    )


def governed(settings: Settings, lake: Any) -> dict[str, Any]:
    """The worker's governance arguments in production (``qb worker``, the Airflow operator, the demo, the
    replay): the order verifier on the ``orders`` key ring (unless ``QB_ORDER_SIGNATURES=off``) and the
    loader of activated policy revisions, which verifies each bundle in ``lake`` (files, signature,
    approvals) against the ``policy`` key ring before an engine is built on its bytes."""
    from execution import bundle
    from execution.signatures import OrderVerifier
    from quantbridge.signing import keyring

    policy_ring = keyring(settings, "policy")

    def load(revision: str) -> PolicyEngine:
        return PolicyEngine.from_verified(bundle.verify(lake, revision, policy_ring))

    verifier = OrderVerifier(keyring(settings, "orders")) if settings.order_signatures == "required" else None

    def signed_active() -> str | None:
        record = bundle.read_active_record(lake, policy_ring)
        return None if record is None else str(record["revision"])

    return {
        "verifier": verifier,
        "policy_loader": load,
        "policy_check_s": settings.policy_check_s,
        "signed_active": signed_active,
    }
