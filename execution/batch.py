"""The execution worker's decisions over one batch, as plain functions of plain data (no Redis, no venues).

:mod:`execution.worker` reads the state a batch needs in one round trip (:class:`BookView`), calls these
functions, and commits what they return with the audit entries describing it. Keeping them pure makes
every rule testable without a server: intake (validation, delivery cap), the risk context each order is
judged in (trusted mark, position plus orders in flight, kill switch, freshness of the risk figures),
verdicts as if the batch's orders were checked one after another, and the fills' state transitions.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from execution import orders as life
from execution.policy import PolicyVerdict, RiskContext
from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder

log = logging.getLogger(__name__)

#: An order entry larger than this (all fields, bytes) is dead-lettered unread.
MAX_PAYLOAD_BYTES = 8192
#: Quantities beyond this are not an order but an accident (or an attack): dead-lettered.
MAX_QUANTITY = 1e9


@dataclass(frozen=True)
class Intake:
    """One stream entry after validation: an ``order``, or the ``dead`` reason it goes to the dead letters."""

    index: int
    entry_id: str
    fields: dict[str, str]
    order: SubmitOrder | None = None
    dead: str | None = None

    @property
    def ref(self) -> str:
        """The id the audit trail files this entry under (the order id when it has a usable one)."""
        oid = self.order.order_id if self.order is not None else self.fields.get("order_id", "")
        return oid if isinstance(oid, str) and 0 < len(oid) <= 128 else self.entry_id


def _decode(raw: Mapping[Any, Any]) -> tuple[dict[str, str], str | None]:
    """Fields as text, and the first field whose name or value is not UTF-8 (decoded with U+FFFD there)."""
    fields: dict[str, str] = {}
    bad = None
    for a, b in raw.items():
        pair = []
        for part in (a, b):
            if isinstance(part, bytes):
                try:
                    part = part.decode("utf-8")
                except UnicodeDecodeError:
                    part = part.decode("utf-8", errors="replace")
                    bad = bad or (pair[0] if pair else part)
            pair.append(str(part))
        fields[pair[0]] = pair[1]
    return fields, bad


def intake(
    index: int,
    entry_id: str,
    raw: Mapping[Any, Any],
    tickers: frozenset[str] | set[str],
    deliveries: int = 1,
    max_deliveries: int = 5,
) -> Intake:
    """Validate one stream entry (bytes or text). Never raises: anything unusable becomes a dead-letter
    reason. An entry past the delivery cap keeps its parsed order, so an open one can be finished."""
    fields, bad = _decode(raw)
    size = sum(len(a) + len(b) for a, b in fields.items())
    if size > MAX_PAYLOAD_BYTES:
        reason = f"PAYLOAD_TOO_LARGE: max={MAX_PAYLOAD_BYTES} bytes, size={size}"
        return Intake(index, entry_id, _clip(fields), dead=reason)
    if bad is not None:
        return Intake(index, entry_id, fields, dead=f"MALFORMED: field {bad[:64]!r} is not UTF-8 text")
    try:
        order = SubmitOrder.from_dict(fields)
    except InputError as exc:
        order, dead = None, f"MALFORMED: {exc}"
    else:
        dead = None
        if order.quantity > MAX_QUANTITY:
            order, dead = None, f"MALFORMED: quantity={order.quantity} is above {MAX_QUANTITY:.0e} shares"
        elif order.ticker not in tickers:
            order, dead = None, f"UNKNOWN_TICKER: ticker={order.ticker}"
    if deliveries > max_deliveries:
        dead = f"MAX_DELIVERIES: delivered={deliveries}, max={max_deliveries}"
    return Intake(index, entry_id, fields, order=order, dead=dead)


def _clip(fields: dict[str, str], limit: int = 256) -> dict[str, str]:
    """A huge entry is kept in the dead letters by its first characters per field, never in full."""
    return {k[:limit]: v[:limit] for k, v in list(fields.items())[:32]}


@dataclass(frozen=True)
class BookView:
    """What one read of Redis returned for a batch. ``states``: order id -> the raw JSON in ``orders:state``
    (None when absent); ``inflight``: order id -> {"ticker", "side", "remaining"} of every open order;
    ``revisions``: ticker -> reservation revision (raw, None when absent); ``kill_switch``: its raw value."""

    states: dict[str, str | None] = field(default_factory=dict)
    positions: dict[str, float] = field(default_factory=dict)
    inflight: dict[str, dict[str, Any]] = field(default_factory=dict)
    revisions: dict[str, str | None] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
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


#: The policy engine's two calls: a whole batch of (order, context), and one order.
EvaluateMany = Callable[[list[tuple[SubmitOrder, RiskContext]]], list[PolicyVerdict]]
Evaluate = Callable[[SubmitOrder, RiskContext], PolicyVerdict]


def verdicts(
    orders: Sequence[SubmitOrder],
    view: BookView,
    esg: Mapping[str, float],
    now: float,
    max_age_s: float,
    evaluate_many: EvaluateMany,
    evaluate: Evaluate,
) -> list[PolicyVerdict | None]:
    """The verdict on each order as if the batch's orders were checked one after another: an allowed
    order's shares count as in flight for the orders after it. One policy query for the batch assumes every
    earlier order is allowed; an order whose ticker saw an earlier denial is checked again on its own.
    An order without a trusted mark is rejected (NO_MARK). None: its evaluation failed (retry later)."""
    stale, age = risk_age(view.risk_updated_at, view.heartbeat, now, max_age_s)
    kill = view.kill_switch is not None

    def context(order: SubmitOrder, flight: dict[tuple[str, str], float]) -> RiskContext:
        t = order.ticker
        return RiskContext(
            mark=view.marks[t],
            position=view.positions.get(t, 0.0),
            pending_buy=flight.get((t, "BUY"), 0.0),
            pending_sell=flight.get((t, "SELL"), 0.0),
            kill_switch=kill,
            risk_stale=stale,
            risk_age_s=age,
            risk_max_age_s=max_age_s,
            esg_score=esg.get(t),
        )

    priced = [o for o in orders if _usable_mark(view.marks.get(o.ticker))]
    assumed, flight = [], pending(view.inflight)
    for order in priced:
        assumed.append(context(order, flight))
        flight[(order.ticker, order.side)] = flight.get((order.ticker, order.side), 0.0) + order.quantity
    try:
        batch: list[PolicyVerdict | None] = list(evaluate_many(list(zip(priced, assumed))))
    except Exception:  # noqa: BLE001 - one order's failure must not fail its batch: check one by one
        log.exception("batch policy evaluation failed; evaluating the %d orders one by one", len(priced))
        batch = [None] * len(priced)
    by_id: dict[int, PolicyVerdict | None] = {}
    flight = pending(view.inflight)
    for order, ctx, verdict in zip(priced, assumed, batch):
        actual = context(order, flight)
        if verdict is None or actual != ctx:
            try:
                verdict = evaluate(order, actual)
            except Exception:  # noqa: BLE001 - this order is left pending for a retry
                log.exception("policy evaluation of order %r failed; left pending", order.order_id)
                verdict = None
        by_id[id(order)] = verdict
        if verdict is not None and verdict.allowed:
            flight[(order.ticker, order.side)] = flight.get((order.ticker, order.side), 0.0) + order.quantity
    out: list[PolicyVerdict | None] = []
    for order in orders:
        if id(order) in by_id:
            out.append(by_id[id(order)])
        else:
            out.append(
                PolicyVerdict(
                    False, (f"NO_MARK: ticker={order.ticker}, mark={view.marks.get(order.ticker)}",)
                )
            )
    return out


def _usable_mark(mark: float | None) -> bool:
    return mark is not None and math.isfinite(mark) and mark > 0


def reservation(order: SubmitOrder, remaining: float | None = None) -> str:
    """The in-flight record of an accepted order (canonical JSON)."""
    return json.dumps(
        {
            "ticker": order.ticker,
            "side": order.side,
            "remaining": order.quantity if remaining is None else remaining,
        },
        sort_keys=True,
    )


def state_record(state: str, filled: float, history: list[str], **extra: Any) -> str:
    """The JSON stored in ``orders:state`` (keys sorted, so equal records are equal strings)."""
    return json.dumps({"state": state, "filled": filled, "history": history, **extra}, sort_keys=True)


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
