"""One trading session of the replay: the orders published at the previous close, executed now through the
real execution worker and Redis against the replay's market, anchored on this day's real close.

Signal-to-fill latency of an order is measured on the run's wall clock from the moment the session releases
it to the worker (the order was published the night before, when no venue was open: that wait is not
execution latency) to its last fill recorded (the worker's fill commit).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from quantbridge.errors import ServiceError
from quantbridge.redis_client import text
from quantbridge.redis_schema import RedisSchema


@dataclass
class Session:
    """What one session did, as plain rows (written to ``OUT/days/D.json``)."""

    day: date
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    #: Children refused at their limit price (the router's band; execution.market.REFUSAL_COLUMNS).
    refusals: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    orders_last_id: str = "0-0"
    fills_last_id: str = "0-0"


def _signal_day(order_id: str) -> str:
    """The decision date an order id starts with (``D:strategy:ticker:version[:k]``); "" for other ids."""
    head = order_id.split(":", 1)[0]
    try:
        return date.fromisoformat(head).isoformat()
    except ValueError:
        return ""


def run_session(
    client: Any,
    schema: RedisSchema,
    worker: Any,
    market: Any,
    day: date,
    anchors: dict[str, float],
    daily_vol: dict[str, float],
    orders_after: str,
    fills_after: str,
    timeout_s: float = 300.0,
) -> Session:
    """Open the market on ``day``, set the marks, let ``worker`` handle every order on the stream after
    ``orders_after`` and collect the orders' outcomes and the fills (after ``fills_after``) with the market's
    breakdown of each fill. Raises ServiceError when the worker does not finish within ``timeout_s``."""
    t0 = time.perf_counter()
    session = Session(day, orders_last_id=orders_after, fills_last_id=fills_after)
    market.open_session(day, anchors, daily_vol)
    client.hset(schema.key("marks"), mapping={t: repr(p) for t, p in anchors.items()})
    entries = client.xrange(schema.key("orders"), min=f"({orders_after}" if orders_after != "0-0" else "-")
    if entries:
        session.orders_last_id = text(entries[-1][0])
        filled_at: dict[str, float] = {}
        worker.on_event = lambda kind, ref: (
            filled_at.__setitem__(ref, time.time()) if kind == "filled" else None
        )
        stop = threading.Event()
        timer = threading.Timer(timeout_s, stop.set)
        released = time.time()
        timer.start()
        try:
            handled = worker.run(stop, block_ms=5, max_orders=len(entries))
        finally:
            timer.cancel()
            worker.on_event = lambda _kind, _ref: None
        if handled < len(entries):
            raise ServiceError(
                f"session {day.isoformat()}: the worker handled {handled} of {len(entries)} orders in "
                f"{timeout_s:.0f} s; the run stops here and resumes from the last completed day"
            )
        session.orders = _order_rows(client, schema, entries, day, anchors, released, filled_at)
    session.fills, session.fills_last_id = _fill_rows(client, schema, market, fills_after)
    session.refusals = market.take_refusals()
    market.close_session()
    session.seconds = round(time.perf_counter() - t0, 4)
    return session


def _order_rows(
    client: Any,
    schema: RedisSchema,
    entries: list[Any],
    day: date,
    anchors: dict[str, float],
    released: float,
    filled_at: dict[str, float],
) -> list[dict[str, Any]]:
    fields = [{text(k): text(v) for k, v in raw.items()} for _, raw in entries]
    ids = [f.get("order_id", "") for f in fields]
    states = client.hmget(schema.key("order_state"), ids) if ids else []
    rows = []
    for f, raw_state in zip(fields, states, strict=True):
        state: dict[str, Any] = (
            json.loads(text(raw_state)) if raw_state is not None else {"state": "DEAD_LETTER"}
        )
        oid = f.get("order_id", "")
        last_fill = filled_at.get(oid) if state.get("filled", 0.0) > 0 else None
        rows.append(
            {
                "order_id": oid,
                "signal_day": _signal_day(oid),
                "exec_day": day.isoformat(),
                "ticker": f.get("ticker", ""),
                "side": f.get("side", ""),
                "quantity": float(f.get("quantity", "nan")),
                "decision_price": float(f.get("reference_price", "nan")),
                "arrival_price": anchors.get(f.get("ticker", ""), float("nan")),
                "state": state.get("state"),
                "filled": float(state.get("filled", 0.0)),
                "reasons": "; ".join(state.get("reasons", [])),
                "released_at": released,
                "last_fill_at": last_fill,
                "latency_ms": None if last_fill is None else round((last_fill - released) * 1000, 4),
            }
        )
    return rows


def _fill_rows(client: Any, schema: RedisSchema, market: Any, after: str) -> tuple[list[dict[str, Any]], str]:
    got = client.xrange(schema.key("fills"), min=f"({after}" if after != "0-0" else "-")
    breakdown = {r["fill_id"]: r for r in market.take_records()}
    rows = []
    for entry_id, raw in got:
        f = {text(k): text(v) for k, v in raw.items()}
        extra = breakdown.get(f["fill_id"], {})
        rows.append(
            {
                "fill_id": f["fill_id"],
                "order_id": f["order_id"],
                "entry_id": text(entry_id),
                "ticker": f["ticker"],
                "side": f["side"],
                "venue": f["venue"],
                "quantity": float(f["quantity"]),
                "price": float(f["price"]),
                "fee": float(f["fee"]),
                "slippage_bps": float(f["slippage_bps"]),
                **{
                    k: extra.get(k)
                    for k in (
                        "anchor",
                        "half_spread_bps",
                        "noise_bps",
                        "impact_bps",
                        "walk_bps",
                        "depth_before",
                    )
                },
            }
        )
    return rows, (text(got[-1][0]) if got else after)
