from __future__ import annotations

import numpy as np
import pytest

from execution.kalman import SlippageFilter
from execution.router import Router
from execution.venues import DEFAULT_VENUES, SimulatedVenue, VenueSpec


def test_kalman_when_fed_simulated_fills_then_converges_to_the_venue_true_slippage():
    spec = VenueSpec(
        "X", 1.0, 0.0, 1.0, true_slippage_bps=2.5, noise_bps=0.5, depth=1000, latency_ms=0.1, seed=5
    )
    venue, f = SimulatedVenue(spec), SlippageFilter(estimate=0.0)
    rng = np.random.default_rng(1)
    for i in range(300):
        size = float(rng.integers(50, 900))
        fill = venue.execute(f"c{i}", "o", "AAPL", "BUY", size, 100.0)
        f.update(fill.slippage_bps, fill.quantity, spec.depth)
    assert f.estimate == pytest.approx(2.5, abs=0.1)
    assert f.variance < 0.05  # the steady state of q = 0.01, r = 0.25


def test_venue_when_order_exceeds_depth_then_partial_fill_priced_with_spread_and_fee():
    spec = DEFAULT_VENUES[0]  # ALPHA, depth 400
    fill = SimulatedVenue(spec).execute("c1", "o1", "AAPL", "BUY", 1000, 100.0)
    assert fill.quantity == 400 and fill.price > 100.0 * (1 + spec.half_spread_bps / 1e4)
    assert fill.fee == pytest.approx(fill.quantity * fill.price * spec.taker_fee_bps / 1e4)
    again = SimulatedVenue(spec).execute("c1", "o1", "AAPL", "BUY", 1000, 100.0)
    assert again == fill  # deterministic per child id
    sell = SimulatedVenue(spec).execute("c2", "o1", "AAPL", "SELL", 10, 100.0)
    assert sell.price < 100.0
    assert SimulatedVenue(spec).execute("c3", "o1", "AAPL", "BUY", 10, 100.0, limit_price=100.0) is None


def test_router_when_order_large_then_split_cheapest_first_with_limit_prices():
    router = Router(DEFAULT_VENUES)
    small = router.route("o1", "AAPL", "BUY", 100, 50.0)
    assert len(small) == 1
    costs = {v.name: router.cost_bps(v, "AAPL", 100) for v in DEFAULT_VENUES}
    assert small[0].venue == min(costs, key=costs.get)
    big = router.route("o2", "AAPL", "SELL", 5000, 50.0)
    assert sum(c.quantity for c in big) == 5000 and len(big) == 3
    assert all(c.limit_price < 50.0 for c in big)  # a sell is never limited above the reference
    router.learn(big[0].venue, "AAPL", 50.0, 100)  # the venue turned out expensive
    assert router.filter(big[0].venue, "AAPL").estimate > 1.0
