"""Smart order routing by expected all-in cost: taker fee + half-spread + expected slippage (Kalman).

Large orders are split: children go to venues cheapest first, each up to the venue's displayed depth.
Each child carries a limit price = reference x (1 +/- (half_spread + expected slippage + 3 sd) / 1e4),
so a fill far worse than the filter expects is refused rather than taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from execution.kalman import SlippageFilter
from execution.venues import VenueSpec


@dataclass(frozen=True)
class Child:
    child_id: str
    venue: str
    quantity: float
    limit_price: float
    expected_cost_bps: float


class Router:
    def __init__(self, venues: tuple[VenueSpec, ...]) -> None:
        self.venues = {v.name: v for v in venues}
        self.filters: dict[tuple[str, str], SlippageFilter] = {}

    def filter(self, venue: str, ticker: str) -> SlippageFilter:
        return self.filters.setdefault((venue, ticker), SlippageFilter(estimate=1.0))

    def cost_bps(self, venue: VenueSpec, ticker: str, quantity: float) -> float:
        size = min(quantity, venue.depth)
        return (
            venue.taker_fee_bps
            + venue.half_spread_bps
            + self.filter(venue.name, ticker).expected_bps(size, venue.depth)
        )

    def route(
        self,
        order_id: str,
        ticker: str,
        side: str,
        quantity: float,
        reference_price: float,
        limit_price: float | None = None,
    ) -> list[Child]:
        """Children that cover ``quantity``, cheapest venue first (the last may be larger than its depth).
        ``reference_price`` is the worker's trusted mark; an order's own ``limit_price`` caps every child."""
        ranked = sorted(self.venues.values(), key=lambda v: self.cost_bps(v, ticker, quantity))
        sign = 1.0 if side == "BUY" else -1.0
        children, left = [], quantity
        for i, venue in enumerate(ranked):
            if left <= 0:
                break
            take = left if i == len(ranked) - 1 else min(left, venue.depth)
            f = self.filter(venue.name, ticker)
            band = (
                venue.half_spread_bps
                + f.expected_bps(min(take, venue.depth), venue.depth)
                + 3 * math.sqrt(f.variance + venue.noise_bps**2)
            )
            limit = reference_price * (1 + sign * band / 1e4)
            if limit_price is not None:  # the tighter of the two: never pay more (or sell for less)
                limit = min(limit, limit_price) if sign > 0 else max(limit, limit_price)
            children.append(
                Child(f"{order_id}#{i}", venue.name, take, limit, self.cost_bps(venue, ticker, take))
            )
            left -= take
        return children

    def learn(self, venue: str, ticker: str, slippage_bps: float, size: float) -> float:
        spec = self.venues[venue]
        return self.filter(venue, ticker).update(slippage_bps, size, spec.depth)
