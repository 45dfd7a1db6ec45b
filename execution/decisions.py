"""The execution worker's decisions over one batch, as plain functions of plain data (no Redis, no venues).

:mod:`execution.worker` reads what a batch needs in one round trip (:class:`BookView`), calls these
functions and commits what they return; keeping them pure makes every rule testable without a server:

* :func:`trusted_marks` (the rule lives in :mod:`quantbridge.marks`, shared with the VaR sensor),
  :func:`risk_context`, :func:`verdicts`: the policy input of each order (the
  worker's own mark, the position plus the shares in flight, the kill switch, the age of the risk
  figures) and the verdicts, as if the batch's orders were checked one after another;
* :func:`decide`: duplicates, open orders to resume, verdicts, routes, the states NEW or REJECTED and
  the reservations: the audit entries and effects of the decision commit;
* :func:`dead_letters`, :func:`cancel_capped`, :func:`record_fills`: those of the fill commit (dead
  letters, open orders past the delivery cap cancelled, fills, positions, final states, releases).

Each commit is a :class:`Plan`: audit entries and the state changes they describe, which land together in
one guarded Lua call (:class:`quantbridge.audit.Effects`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from execution import orders as life
from execution.intake import MAX_PAYLOAD_BYTES, Intake
from execution.policy import PolicyVerdict, RiskContext
from execution.router import Child, Estimates, route
from execution.venues import Fill, VenueSpec
from quantbridge.audit import Effects
from quantbridge.json_text import compact
from quantbridge.marks import trusted_marks as trusted_marks  # the shared rule; the worker calls it here
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import ORDERS_GROUP, RedisSchema

log = logging.getLogger(__name__)

#: Audit entries on their way to a commit: (kind, ref, payload).
Trail = list[tuple[str, str, dict[str, Any]]]
#: A commit guard: (key, hash field or None, expected value or None for "absent").
Guard = tuple[str, str | None, str | None]
#: The policy engine's two calls: a whole batch of (order, context), and one order.
EvaluateMany = Callable[[list[tuple[SubmitOrder, RiskContext]]], list[PolicyVerdict]]
Evaluate = Callable[[SubmitOrder, RiskContext], PolicyVerdict]


@dataclass(frozen=True)
class Keys:
    """The Redis keys of the execution lane that reads and effects name."""

    orders: str
    order_state: str
    positions: str
    inflight: str
    inflight_rev: str
    kill_switch: str
    fills: str
    dead_letter: str
    marks: str
    risk_current: str
    order_signatures: str

    @classmethod
    def of(cls, schema: RedisSchema) -> Keys:
        return cls(*(schema.key(f.name) for f in dataclasses.fields(cls)))


@dataclass(frozen=True)
class Rules:
    """What orders are judged by besides the book: the policy engine's two calls and the revision of its
    bundle (modules and limits), ESG scores per ticker, and the bound on the risk figures' age (seconds)."""

    evaluate_many: EvaluateMany
    evaluate: Evaluate
    policy_revision: str = ""
    esg: Mapping[str, float] = field(default_factory=dict)
    risk_max_age_s: float = 90.0


@dataclass
class Outcome:
    """How one stream entry ended: its order's state (or DEAD_LETTER, DUPLICATE), shares filled, reasons."""

    order_id: str
    state: str
    filled: float = 0.0
    reasons: tuple[str, ...] = ()


@dataclass
class Plan:
    """What one commit writes: audit entries (kind, ref, payload) and, in the same guarded Lua call, the
    state changes they describe (fields as in :class:`~quantbridge.audit.Effects`; ``update``: order id ->
    state record in ``orders:state``)."""

    trail: Trail = field(default_factory=list)
    guards: list[Guard] = field(default_factory=list)
    update: list[tuple[str, str]] = field(default_factory=list)
    hset: list[tuple[str, str, str]] = field(default_factory=list)
    hdel: list[tuple[str, str]] = field(default_factory=list)
    hincr: list[tuple[str, str, float]] = field(default_factory=list)
    xadd: list[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=list)

    def __add__(self, other: Plan) -> Plan:
        """Both in one commit, this plan's entries and changes first."""
        return Plan(
            self.trail + other.trail,
            self.guards + other.guards,
            self.update + other.update,
            self.hset + other.hset,
            self.hdel + other.hdel,
            self.hincr + other.hincr,
            self.xadd + other.xadd,
        )

    def effects(self, keys: Keys, ack: tuple[str, ...] = ()) -> Effects:
        """The effects of this plan, acknowledging the stream entries ``ack`` in the same call."""
        return Effects(
            state_key=keys.order_state,
            update=tuple(self.update),
            guards=tuple(self.guards),
            stream=keys.orders if ack else "",
            group=ORDERS_GROUP if ack else "",
            ack=ack,
            hset=tuple(self.hset),
            hdel=tuple(self.hdel),
            hincr=tuple(self.hincr),
            xadd=tuple(self.xadd),
        )


@dataclass(frozen=True)
class Open:
    """An order on its way to the venues: accepted now, or open since an earlier decision (resumed at the
    mark of now). ``state``/``raw_state``: its state record as decided; the fill commit is guarded on it."""

    item: Intake
    order: SubmitOrder
    children: list[Child]
    mark: float
    state: dict[str, Any]
    raw_state: str


@dataclass(frozen=True)
class Decision:
    """The decisions on a batch's orders. ``commit``: the decision commit, None when it would write no
    order state (then ``carry``, the duplicates' entries, rides with the fill commit); ``send``: the orders
    to send; ``decided``: the orders given a verdict; ``outcomes``: batch index -> DUPLICATE or REJECTED."""

    commit: Plan | None = None
    carry: Trail = field(default_factory=list)
    send: list[Open] = field(default_factory=list)
    decided: list[Intake] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)


# --- the book and the verdicts ------------------------------------------------------------------------
@dataclass(frozen=True)
class BookView:
    """What one read of Redis returned for a batch. ``states``: order id -> the raw JSON in ``orders:state``
    (None when absent); ``inflight``: order id -> {"ticker", "side", "remaining"} of every open order;
    ``revisions``: ticker -> reservation revision (raw, None when absent); ``kill_switch``: its raw value."""

    states: dict[str, str | None] = field(default_factory=dict)
    positions: dict[str, float] = field(default_factory=dict)
    inflight: dict[str, dict[str, Any]] = field(default_factory=dict)
    revisions: dict[str, str | None] = field(default_factory=dict)
    marks: dict[str, float | None] = field(default_factory=dict)
    kill_switch: str | None = None
    risk_updated_at: str | None = None
    heartbeat: bool = False


def risk_age(
    updated_at: str | None, heartbeat: bool, now: float, max_age_s: float
) -> tuple[bool, float | None]:
    """(stale, age in seconds) of the VaR figures: stale when the sensor's heartbeat is gone, the figures
    carry no readable time, or they are older than ``max_age_s``."""
    if not updated_at:
        return True, None
    try:
        at = datetime.fromisoformat(updated_at)
    except ValueError:
        return True, None
    if at.tzinfo is None:  # the sensor writes UTC with its offset: a naive time is not its, so not trusted
        return True, None
    age = round(now - at.timestamp(), 3)
    return (not heartbeat) or age > max_age_s, age


def pending(inflight: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """Shares in flight per (ticker, side) from the reservations of open orders."""
    out: dict[tuple[str, str], float] = {}
    for res in inflight.values():
        key = (str(res.get("ticker")), str(res.get("side")))
        out[key] = out.get(key, 0.0) + float(res.get("remaining", 0.0))
    return out


def verdicts(
    orders: Sequence[SubmitOrder], view: BookView, now: float, rules: Rules
) -> list[PolicyVerdict | None]:
    """The verdict on each order as if the batch's orders were checked one after another: an allowed
    order's shares count as in flight for the orders after it. One policy query for the batch assumes every
    earlier order is allowed; an order whose ticker saw an earlier denial is checked again on its own.
    An order without a trusted mark is rejected (NO_MARK). None: its evaluation failed (retry later)."""
    stale, age = risk_age(view.risk_updated_at, view.heartbeat, now, rules.risk_max_age_s)

    def context(order: SubmitOrder, flight: dict[tuple[str, str], float]) -> RiskContext:
        return risk_context(order, view, flight, rules, stale, age)

    priced = [o for o in orders if _usable_mark(view.marks.get(o.ticker))]
    assumed, flight = [], pending(view.inflight)
    for order in priced:
        assumed.append(context(order, flight))
        flight[(order.ticker, order.side)] = flight.get((order.ticker, order.side), 0.0) + order.quantity
    try:
        batch: list[PolicyVerdict | None] = list(rules.evaluate_many(list(zip(priced, assumed, strict=True))))
    except Exception:  # noqa: BLE001 - one order's failure must not fail its batch: check one by one
        log.exception("batch policy evaluation failed; evaluating the %d orders one by one", len(priced))
        batch = [None] * len(priced)
    by_id: dict[int, PolicyVerdict | None] = {}
    flight = pending(view.inflight)
    # A context differs from the assumed one only through the shares in flight of its ticker, which differ
    # only after an earlier order of that ticker was not allowed: until then it is not built again.
    diverged: set[str] = set()
    for order, ctx, verdict in zip(priced, assumed, batch, strict=False):  # as many as asked
        actual = context(order, flight) if order.ticker in diverged else ctx
        if verdict is None or actual != ctx:
            try:
                verdict = rules.evaluate(order, actual)
            except Exception:  # noqa: BLE001 - this order is left pending for a retry
                log.exception("policy evaluation of order %r failed; left pending", order.order_id)
                verdict = None
        by_id[id(order)] = verdict
        if verdict is not None and verdict.allowed:
            flight[(order.ticker, order.side)] = flight.get((order.ticker, order.side), 0.0) + order.quantity
        else:
            diverged.add(order.ticker)
    return [by_id[id(o)] if id(o) in by_id else _no_mark(o, view) for o in orders]


def risk_context(
    order: SubmitOrder,
    view: BookView,
    flight: Mapping[tuple[str, str], float],
    rules: Rules,
    stale: bool,
    age: float | None,
) -> RiskContext:
    """The policy input of an order with a usable mark: that mark, the position, the shares in flight per
    side (``flight``: (ticker, side) -> shares), the kill switch, the risk figures' freshness, ESG score."""
    t = order.ticker
    return RiskContext(
        mark=cast(float, view.marks[t]),
        position=view.positions.get(t, 0.0),
        pending_buy=flight.get((t, "BUY"), 0.0),
        pending_sell=flight.get((t, "SELL"), 0.0),
        kill_switch=view.kill_switch is not None,
        risk_stale=stale,
        risk_age_s=age,
        risk_max_age_s=rules.risk_max_age_s,
        esg_score=rules.esg.get(t),
    )


def _no_mark(order: SubmitOrder, view: BookView) -> PolicyVerdict:
    return PolicyVerdict(False, (f"NO_MARK: ticker={order.ticker}, mark={view.marks.get(order.ticker)}",))


def _usable_mark(mark: float | None) -> bool:
    return mark is not None and math.isfinite(mark) and mark > 0


# --- the decision commit ------------------------------------------------------------------------------
def decide(
    orders: Sequence[Intake],
    view: BookView,
    now: float,
    rules: Rules,
    venues: Sequence[VenueSpec],
    estimates: Estimates,
    keys: Keys,
) -> Decision:
    """The decisions on a batch's valid orders in ``view``: an order already final (or twice in the batch)
    is a DUPLICATE; an open one is resumed with its stored children at the mark of now (it waits while its
    ticker has none); each fresh one gets a verdict, a route when allowed, and the state NEW (its shares
    reserved) or REJECTED. The commit is guarded on what the verdicts relied on: each order's state still
    absent and, when one is accepted, the reservation revision of its ticker and the kill switch."""
    fresh, send, entries, outcomes = _triage(orders, view)
    plan, decided = Plan(trail=entries), []
    judged = verdicts([order for _, order in fresh], view, now, rules)
    for (item, order), verdict in zip(fresh, judged, strict=True):
        if verdict is None:
            continue  # its evaluation failed: left pending for a retry
        children = _routed(order, verdict, view.marks.get(order.ticker), venues, estimates)
        if children is None:
            continue  # routing failed: left pending for a retry
        opened = _record(plan, item, order, verdict, children, view, rules.policy_revision, keys)
        if opened is None:
            outcomes[item.index] = Outcome(order.order_id, life.REJECTED, reasons=verdict.reasons)
        else:
            send.append(opened)
        decided.append(item)
    if plan.hset:  # what the accepted verdicts relied on must still hold when they land
        reserved = sorted({ticker for _, ticker, _ in plan.hincr})
        plan.guards += [(keys.inflight_rev, t, view.revisions.get(t)) for t in reserved]
        plan.guards.append((keys.kill_switch, None, view.kill_switch))
    if not plan.update:
        return Decision(carry=plan.trail, send=send, decided=decided, outcomes=outcomes)
    return Decision(commit=plan, send=send, decided=decided, outcomes=outcomes)


def _triage(
    orders: Sequence[Intake], view: BookView
) -> tuple[list[tuple[Intake, SubmitOrder]], list[Open], Trail, dict[int, Outcome]]:
    """(fresh orders, open orders to resume, the duplicates' audit entries, their outcomes)."""
    fresh: list[tuple[Intake, SubmitOrder]] = []
    send: list[Open] = []
    entries: Trail = []
    outcomes: dict[int, Outcome] = {}
    seen: set[str] = set()
    for item in orders:
        order = item.order
        if order is None:
            raise ValueError(f"entry {item.entry_id} has no order to decide: {item.dead}")
        oid = order.order_id
        raw = view.states.get(oid)
        state = json.loads(raw) if raw else None
        if oid in seen or (state and state["state"] in life.TERMINAL):
            outcomes[item.index] = Outcome(oid, "DUPLICATE", (state or {}).get("filled", 0.0))
            payload = {"entry_id": item.entry_id, "state": (state or {}).get("state", "IN_BATCH")}
            entries.append(("duplicate", oid, payload))
            continue
        seen.add(oid)
        if state is None:
            fresh.append((item, order))
            continue
        mark = view.marks.get(order.ticker)
        if mark is not None and raw is not None:  # no trusted price to fill at: pending until one exists
            children = [Child(**c) for c in state["children"]]
            send.append(Open(item, order, children, mark, state, raw))
    return fresh, send, entries, outcomes


def _record(
    plan: Plan,
    item: Intake,
    order: SubmitOrder,
    verdict: PolicyVerdict,
    children: list[Child],
    view: BookView,
    policy_revision: str,
    keys: Keys,
) -> Open | None:
    """Add an order's decision to ``plan``: its order, verdict and state entries, the state (guarded on
    being absent) and, when allowed, its reservation. Returns the order to send, None when rejected."""
    oid, mark = order.order_id, view.marks.get(order.ticker)
    context = {
        "mark": mark,
        "position": view.positions.get(order.ticker, 0.0),
        "kill_switch": view.kill_switch is not None,
        "policy_revision": policy_revision,
    }
    plan.guards.append((keys.order_state, oid, None))
    plan.trail += [("order", oid, order.to_dict()), ("verdict", oid, {**verdict.as_dict(), **context})]
    state = _first_state(verdict, children)
    raw, opened = state_record(**state), None
    if verdict.allowed:
        opened = Open(item, order, children, float(cast(float, mark)), state, raw)
        plan.hset.append((keys.inflight, oid, reservation(order)))
        plan.hincr.append((keys.inflight_rev, order.ticker, 1.0))
    plan.trail.append(("state", oid, state))
    plan.update.append((oid, raw))
    return opened


def _routed(
    order: SubmitOrder,
    verdict: PolicyVerdict,
    mark: float | None,
    venues: Sequence[VenueSpec],
    estimates: Estimates,
) -> list[Child] | None:
    """The children of an allowed order at its mark ([] for a denied one); None when routing failed."""
    if not verdict.allowed:
        return []
    try:
        return route(
            order.order_id,
            order.ticker,
            order.side,
            order.quantity,
            float(cast(float, mark)),
            order.limit_price,
            venues,
            estimates,
        )
    except Exception:  # noqa: BLE001 - one bad order must not stop the worker (left pending)
        log.exception("routing order %r failed; left pending for a retry", order.order_id)
        return None


def _first_state(verdict: PolicyVerdict, children: list[Child]) -> dict[str, Any]:
    """The state an order is decided into: REJECTED with its reasons, or NEW with its route."""
    if not verdict.allowed:
        return {
            "state": life.REJECTED,
            "filled": 0.0,
            "reasons": list(verdict.reasons),
            "history": life.advance([], life.REJECTED),
        }
    return {
        "state": life.NEW,
        "filled": 0.0,
        "children": [c.__dict__ for c in children],
        "history": life.advance([], life.NEW),
    }


# --- the fill commit ----------------------------------------------------------------------------------
def dead_letters(
    items: Sequence[Intake], keys: Keys, policy_revision: str = ""
) -> tuple[Plan, dict[int, Outcome]]:
    """Every unusable entry to the dead-letter stream (its fields clipped), with its audit entry; both name
    the policy revision the worker judged by when it refused the entry."""
    plan, outcomes = Plan(), {}
    for item in items:
        if item.dead is None:
            continue
        payload = {"entry_id": item.entry_id, "reason": item.dead, "policy_revision": policy_revision}
        plan.trail.append(("dead_letter", item.ref, payload))
        fields = json.dumps(item.fields)[:MAX_PAYLOAD_BYTES]
        letter = (
            ("entry_id", item.entry_id),
            ("reason", item.dead),
            ("fields", fields),
            ("policy_revision", policy_revision),
        )
        plan.xadd.append((keys.dead_letter, letter))
        outcomes[item.index] = Outcome(item.ref, "DEAD_LETTER", reasons=(item.dead,))
    return plan, outcomes


def cancel_capped(capped: Sequence[tuple[Intake, str | None]], keys: Keys) -> Plan:
    """The open orders among entries past the delivery cap, cancelled with their reservations released:
    dead-lettering the entry alone would leave such an order NEW, its shares reserved. ``capped``: (entry,
    the raw state record of its order or None), entries whose order parsed."""
    plan = Plan()
    for item, raw in capped:
        state = json.loads(raw) if raw is not None else None
        if item.order is None or raw is None or state is None or state["state"] in life.TERMINAL:
            continue
        oid, history = item.order.order_id, life.advance(state["history"], life.CANCELLED)
        plan.guards.append((keys.order_state, oid, raw))
        record = state_record(
            life.CANCELLED, state["filled"], history, children=state.get("children", []), reasons=[item.dead]
        )
        plan.update.append((oid, record))
        plan.hdel.append((keys.inflight, oid))
        plan.trail.append(
            ("state", oid, {"state": life.CANCELLED, "filled": state["filled"], "reason": item.dead})
        )
    return plan


def record_fills(sent: Sequence[tuple[Open, Sequence[Fill]]], keys: Keys) -> tuple[Plan, dict[int, Outcome]]:
    """Each order sent with the fills its children got: the fills (stream and audit), the position changes,
    the final state (FILLED, or CANCELLED for an unfilled rest; guarded on the state as decided) and the
    release of its reservation."""
    plan, outcomes = Plan(), {}
    for opened, got in sent:
        order = opened.order
        steps, history = after_fills(
            opened.state.get("history", [life.NEW]), [f.quantity for f in got], order.quantity
        )
        filled = 0.0
        for fill, step in zip(got, steps, strict=True):
            filled += fill.quantity
            fields = {a: str(b) for a, b in fill.__dict__.items()}
            fields["ts"] = order.ts
            plan.xadd.append((keys.fills, tuple(fields.items())))
            shares = fill.quantity if order.side == "BUY" else -fill.quantity
            plan.hincr.append((keys.positions, order.ticker, shares))
            plan.trail.append(("fill", order.order_id, {**fields, "state": step[-1], "filled": filled}))
        if not got or history[-1] == life.CANCELLED:
            rest = {"state": history[-1], "filled": filled, "cancelled": order.quantity - filled}
            plan.trail.append(("state", order.order_id, rest))
        record = state_record(history[-1], filled, history, children=opened.state["children"])
        plan.guards.append((keys.order_state, order.order_id, opened.raw_state))
        plan.update.append((order.order_id, record))
        plan.hdel.append((keys.inflight, order.order_id))
        outcomes[opened.item.index] = Outcome(order.order_id, history[-1], filled)
    return plan, outcomes


# --- records and transitions --------------------------------------------------------------------------
def reservation(order: SubmitOrder, remaining: float | None = None) -> str:
    """The in-flight record of an accepted order (canonical JSON: sorted keys, compact)."""
    return compact(
        {
            "ticker": order.ticker,
            "side": order.side,
            "remaining": order.quantity if remaining is None else remaining,
        }
    )


def state_record(state: str, filled: float, history: list[str], **extra: Any) -> str:
    """The JSON stored in ``orders:state`` (keys sorted, compact, so equal records are equal strings; the
    commit guards compare a record with what was read, never with a re-encoding of older records)."""
    return compact({"state": state, "filled": filled, "history": history, **extra})


def after_fills(
    history: Sequence[str], fills: Sequence[float], quantity: float
) -> tuple[list[list[str]], list[str]]:
    """The history after each fill of the given sizes, then the final history (the open rest cancelled)."""
    steps, filled, current = [], 0.0, list(history)
    for size in fills:  # a fill on a finished order raises InvalidTransition: it is a bug, never dropped
        filled += size
        current = life.after_fill(current, filled, quantity)
        steps.append(current)
    final = current if current[-1] in life.TERMINAL else life.advance(current, life.CANCELLED)
    return steps, final
