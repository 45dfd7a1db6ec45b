from __future__ import annotations

import numpy as np
import pytest

from execution.kalman import SlippageFilter
from execution.router import Router, route
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


def test_venue_slippage_when_drawn_per_child_then_normal_with_the_spec_mean_and_noise():
    spec = VenueSpec(
        "X", 1.0, 0.0, 1.0, true_slippage_bps=2.0, noise_bps=0.5, depth=10**9, latency_ms=0.1, seed=5
    )
    draws = np.array(
        [
            SimulatedVenue(spec).execute(f"c{i}", "o", "AAPL", "BUY", 1, 100.0).slippage_bps
            for i in range(4000)
        ]
    )
    assert draws.mean() == pytest.approx(2.0, abs=0.03)  # 4 standard errors
    assert draws.std() == pytest.approx(0.5, rel=0.05)
    z = (draws - 2.0) / 0.5
    assert np.mean(np.abs(z) > 1.96) == pytest.approx(0.05, abs=0.015)  # normal tails, not uniform ones
    other = VenueSpec(**{**spec.__dict__, "seed": 6})
    assert SimulatedVenue(other).execute("c1", "o", "AAPL", "BUY", 1, 100.0).slippage_bps != draws[1]


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


def test_route_when_no_fills_yet_then_cheapest_by_fee_plus_half_spread_plus_prior_slippage():
    # 100 shares at the prior base slippage of 1 bp x (1 + 100 / depth): ALPHA 0.5 + 2.0 + 1.25 = 3.75,
    # BETA 1.5 + 1.0 + 1.0333 = 3.5333, GAMMA 0.8 + 0.5 + 1.0667 = 2.3667 bps.
    [child] = route("o", "AAPL", "BUY", 100.0, 50.0, None, DEFAULT_VENUES, {})
    assert (child.child_id, child.venue, child.quantity) == ("o#0", "GAMMA", 100.0)
    assert child.expected_cost_bps == pytest.approx(2.3667, abs=1e-4)


def test_route_when_kalman_learnt_a_venue_slips_more_then_the_next_cheapest_wins():
    # GAMMA learnt at a base of 3 bp on AAPL: 0.8 + 0.5 + 3 x 1.0667 = 4.5 bps, now dearer than BETA.
    estimates = {("GAMMA", "AAPL"): SlippageFilter(estimate=3.0)}
    [child] = route("o", "AAPL", "BUY", 100.0, 50.0, None, DEFAULT_VENUES, estimates)
    assert child.venue == "BETA" and child.expected_cost_bps == pytest.approx(3.5333, abs=1e-4)
    # limit: 50 x (1 + (1.0 half-spread + 1.0333 slippage + 3 x sqrt(4 prior variance + 0.3^2)) / 1e4)
    assert child.limit_price == pytest.approx(50.04050, abs=1e-5)
    assert route("o", "MSFT", "BUY", 100.0, 50.0, None, DEFAULT_VENUES, estimates)[0].venue == "GAMMA"


def test_route_when_order_exceeds_the_cheapest_depth_then_split_and_the_senders_limit_caps_children():
    # 2,000 shares (at most the depth counts): GAMMA 0.8 + 0.5 + 2.0 = 3.3, BETA 1.5 + 1.0 + 1.6667 = 4.1667,
    # ALPHA 0.5 + 2.0 + 2.0 = 4.5 bps.
    children = route("o", "AAPL", "SELL", 2000.0, 50.0, 49.99, DEFAULT_VENUES, {})
    assert [(c.child_id, c.venue, c.quantity) for c in children] == [
        ("o#0", "GAMMA", 1500.0),
        ("o#1", "BETA", 500.0),
    ]
    # the band alone would sell down to about 49.95: the sender's 49.99 is tighter and wins
    assert [c.limit_price for c in children] == [49.99, 49.99]
