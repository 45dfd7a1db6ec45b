"""Prometheus metrics of the execution worker (served on 127.0.0.1:``QB_WORKER_METRICS_PORT``, 9109).

Every figure is observed in-process on prometheus-client's objects: no Redis round trip is added to the
order path. Label children are created once (outcomes and venues are known up front), so the hot path
is a dictionary lookup and a locked add (about a microsecond, against milliseconds per order).

=====================================  =========  ===========================================================
``qb_worker_orders_total{outcome}``    counter    orders handled: filled, cancelled (unfilled rest), rejected,
                                                  dead_letter, duplicate (already terminal, skipped)
``qb_worker_fills_total{venue}``       counter    fills recorded (a replayed fill is not counted again)
``qb_worker_fill_quantity_total``      counter    shares filled, per venue
``qb_worker_fill_notional_total``      counter    notional filled (quantity x price), per venue
``qb_worker_fees_total{venue}``        counter    fees paid, per venue (portfolio currency)
``qb_worker_slippage_bps{venue}``      summary    slippage of each fill against the reference price, bps
                                                  (a summary: a favourable fill is negative, which a
                                                  histogram's ``_sum`` may not be)
``qb_worker_decision_seconds``         histogram  worker pick-up of an order to its decision (route or reject)
``qb_worker_order_to_decision_seconds``  histogram  XADD of the order (stream entry id, ms) to its decision:
                                                  includes queueing in the stream
``qb_worker_kill_switch``              gauge      1 while the kill switch was set at the last decision
``qb_worker_redis_reconnects_total``   counter    Redis connection losses survived
``qb_worker_batch_errors_total``       counter    batches that failed otherwise (left pending, retried)
``qb_worker_last_poll_timestamp``      gauge      Unix time the loop last read the stream (even empty): a hung
                                                  worker still answers /metrics, but this goes stale
=====================================  =========  ===========================================================
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

OUTCOMES = ("filled", "cancelled", "rejected", "dead_letter", "duplicate")
#: Seconds; dense below a millisecond, where the worker's decision target lies.
DECISION_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0)
#: Seconds; the entry id has millisecond resolution and includes the time an order waits in the stream.
AGE_BUCKETS = (1e-3, 2e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    """The worker's Prometheus objects, in their own registry (several workers can share a test process)."""

    def __init__(self, venues: Iterable[str] = ()) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

        self.registry = r = CollectorRegistry()
        self.orders = Counter("qb_worker_orders_total", "Orders handled, by outcome", ["outcome"], registry=r)
        self.fills = Counter("qb_worker_fills_total", "Fills recorded, by venue", ["venue"], registry=r)
        self.quantity = Counter(
            "qb_worker_fill_quantity_total", "Shares filled, by venue", ["venue"], registry=r
        )
        self.notional = Counter(
            "qb_worker_fill_notional_total", "Notional filled, by venue", ["venue"], registry=r
        )
        self.fees = Counter(
            "qb_worker_fees_total", "Fees paid, by venue (portfolio currency)", ["venue"], registry=r
        )
        self.slippage = Summary(
            "qb_worker_slippage_bps",
            "Slippage of each fill vs the reference price, bps",
            ["venue"],
            registry=r,
        )
        self.decision = Histogram(
            "qb_worker_decision_seconds",
            "Order pick-up to decision (route or reject)",
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.order_age = Histogram(
            "qb_worker_order_to_decision_seconds",
            "Order XADD (stream entry id) to decision, queueing included",
            buckets=AGE_BUCKETS,
            registry=r,
        )
        self.kill_switch = Gauge(
            "qb_worker_kill_switch", "1 while the kill switch was set at the last decision", registry=r
        )
        self.errors = Counter(
            "qb_worker_batch_errors_total", "Batches that failed (entries left pending)", registry=r
        )
        self.reconnects = Counter(
            "qb_worker_redis_reconnects_total", "Redis connection losses survived", registry=r
        )
        self.last_poll = Gauge(
            "qb_worker_last_poll_timestamp", "Unix time the worker's loop last read the stream", registry=r
        )
        self.last_poll.set(time.time())  # from start: a loop that never polls goes stale one bound later
        self._outcome = {o: self.orders.labels(o) for o in OUTCOMES}
        self._venue: dict[str, tuple[Any, ...]] = {}
        for venue in venues:
            self._venue_children(venue)

    def _venue_children(self, venue: str) -> tuple[Any, ...]:
        children = self._venue.get(venue)
        if children is None:
            children = self._venue[venue] = tuple(
                c.labels(venue) for c in (self.fills, self.quantity, self.notional, self.fees, self.slippage)
            )
        return children

    def outcome(self, state: str) -> None:
        """Count one handled order by its outcome state (``FILLED``, ``DEAD_LETTER``, ...)."""
        child = self._outcome.get(state.lower())
        if child is not None:
            child.inc()

    def decided(self, entry_id: str, picked_up: float, kill_switch: bool) -> None:
        """One decision: ``picked_up`` is the worker's ``time.perf_counter()`` when it took the order."""
        self.decided_many((entry_id,), picked_up, kill_switch)

    def decided_many(self, entry_ids: Iterable[str], picked_up: float, kill_switch: bool) -> None:
        """The decisions of one batch, made at the same moment: the clocks are read once for all of them."""
        took, now = time.perf_counter() - picked_up, time.time()
        self.kill_switch.set(1.0 if kill_switch else 0.0)
        for entry_id in entry_ids:
            self.decision.observe(took)
            ms, _, _seq = entry_id.partition("-")
            if ms.isdigit():
                self.order_age.observe(max(now - int(ms) / 1000.0, 0.0))

    def fill(self, venue: str, quantity: float, price: float, fee: float, slippage_bps: float) -> None:
        """One newly recorded fill."""
        fills, qty, notional, fees, slippage = self._venue_children(venue)
        fills.inc()
        qty.inc(quantity)
        notional.inc(quantity * price)
        fees.inc(fee)
        slippage.observe(slippage_bps)

    def serve(self, port: int) -> Any:
        """Expose /metrics on 127.0.0.1:port; returns the server (``shutdown()`` stops it)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        return server
