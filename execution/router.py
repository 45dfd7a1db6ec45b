"""Smart order routing by expected all-in cost: taker fee + half-spread + expected slippage (Kalman).

Large orders are split: children go to venues cheapest first, each up to the venue's displayed depth.
Each child carries a limit price = reference x (1 +/- (half_spread + expected slippage + 3 sd) / 1e4),
so a fill far worse than the filter expects is refused rather than taken.

:func:`route` is the choice itself, a pure function of the venues and the slippage estimates;
:class:`Router` keeps the estimates and learns them from fills.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from execution.kalman import SlippageFilter
from execution.venues import VenueSpec

#: Slippage estimates per (venue, ticker).
Estimates = Mapping[tuple[str, str], SlippageFilter]
#: What a (venue, ticker) without a fill yet is expected to cost: a base slippage of 1 bp.
PRIOR = SlippageFilter(estimate=1.0)


@dataclass(frozen=True)
class Child:
    child_id: str
    venue: str
    quantity: float
    limit_price: float
    expected_cost_bps: float


def cost_bps(venue: VenueSpec, estimate: SlippageFilter, quantity: float) -> float:
    """Expected all-in cost of ``quantity`` shares at ``venue`` (bps): taker fee + half-spread + slippage."""
    size = min(quantity, venue.depth)
    return venue.taker_fee_bps + venue.half_spread_bps + estimate.expected_bps(size, venue.depth)


def route(
    order_id: str,
    ticker: str,
    side: str,
    quantity: float,
    reference_price: float,
    limit_price: float | None,
    venues: Sequence[VenueSpec],
    estimates: Estimates,
) -> list[Child]:
    """Children that cover ``quantity``, cheapest venue first (the last may be larger than its depth).
    ``reference_price`` is the worker's trusted mark; an order's own ``limit_price`` caps every child."""

    def estimate(venue: VenueSpec) -> SlippageFilter:
        return estimates.get((venue.name, ticker), PRIOR)

    ranked = sorted(venues, key=lambda v: cost_bps(v, estimate(v), quantity))
    sign = 1.0 if side == "BUY" else -1.0
    children, left = [], quantity
    for i, venue in enumerate(ranked):
        if left <= 0:
            break
        take = left if i == len(ranked) - 1 else min(left, venue.depth)
        f = estimate(venue)
        band = (
            venue.half_spread_bps
            + f.expected_bps(min(take, venue.depth), venue.depth)
            + 3 * math.sqrt(f.variance + venue.noise_bps**2)
        )
        limit = reference_price * (1 + sign * band / 1e4)
        if limit_price is not None:  # the tighter of the two: never pay more (or sell for less)
            limit = min(limit, limit_price) if sign > 0 else max(limit, limit_price)
        children.append(Child(f"{order_id}#{i}", venue.name, take, limit, cost_bps(venue, f, take)))
        left -= take
    return children


class Router:
    """The venues and the slippage estimates learnt from their fills (one Kalman filter per venue and
    ticker)."""

    def __init__(self, venues: tuple[VenueSpec, ...]) -> None:
        self.venues = {v.name: v for v in venues}
        self.filters: dict[tuple[str, str], SlippageFilter] = {}

    def filter(self, venue: str, ticker: str) -> SlippageFilter:
        return self.filters.setdefault((venue, ticker), SlippageFilter(estimate=1.0))

    def cost_bps(self, venue: VenueSpec, ticker: str, quantity: float) -> float:
        return cost_bps(venue, self.filters.get((venue.name, ticker), PRIOR), quantity)

    def route(
        self,
        order_id: str,
        ticker: str,
        side: str,
        quantity: float,
        reference_price: float,
        limit_price: float | None = None,
    ) -> list[Child]:
        """:func:`route` over this router's venues and estimates."""
        return route(
            order_id,
            ticker,
            side,
            quantity,
            reference_price,
            limit_price,
            tuple(self.venues.values()),
            self.filters,
        )

    def learn(self, venue: str, ticker: str, slippage_bps: float, size: float) -> float:
        spec = self.venues[venue]
        return self.filter(venue, ticker).update(slippage_bps, size, spec.depth)
