from __future__ import annotations

import inspect
import json
import math
from datetime import date

import pytest

from execution.market import ADV_PATH, FILL_COLUMNS, Market, fills_frame, load_adv, sqrt_impact_bps, walk_bps
from execution.router import Router
from execution.venues import DEFAULT_VENUES, SimulatedVenue, VenueSpec
from marketdata.reference import read_reference_csv
from quantbridge.errors import InputError

DAY, NEXT, THIRD = date(2020, 3, 2), date(2020, 3, 3), date(2020, 3, 4)
#: A venue without fees' randomness: no noise, deep book, so a price is the half spread plus impact only.
QUIET = VenueSpec("QUIET", 1.0, 0.0, 1.0, 0.0, noise_bps=0.0, depth=1e9, latency_ms=0.1, seed=7)


def quiet_market(adv: float = 1e6, vol: float = 0.02, impact_y: float = 1.0) -> Market:
    market = Market(venues=(QUIET,), adv={"XYZ": adv}, impact_y=impact_y, noise_window_s=0.0)
    market.open_session(DAY, {"XYZ": 100.0}, {"XYZ": vol})
    return market


def impact_of(quantity: float, **kw: float) -> float:
    market = quiet_market(**kw)
    fill = market.venue("QUIET").execute("c", "o", "XYZ", "BUY", quantity, 100.0)
    assert fill is not None
    [record] = market.records
    assert fill.price == pytest.approx(100.0 * (1 + (1.0 + record["impact_bps"]) / 1e4), rel=1e-12)
    assert fill.slippage_bps == pytest.approx(record["impact_bps"])  # noise 0: the slippage is the impact
    return record["impact_bps"]


def test_sqrt_law_when_one_percent_of_adv_at_two_percent_vol_then_peak_20bps_average_13_3bps():
    assert sqrt_impact_bps(1.0, 0.02, 1e6, 0.0, 1e4) == pytest.approx(40 / 3)
    assert sqrt_impact_bps(1.0, 0.02, 1e6, 1e4, 1e4) == pytest.approx(20.0)  # the peak after 1% of ADV
    assert impact_of(1e4) == pytest.approx(40 / 3)


def test_sqrt_law_when_size_vol_y_or_adv_change_then_impact_scales_as_the_law_says():
    base = impact_of(1e4)
    assert impact_of(4e4) == pytest.approx(2 * base)  # sqrt of size
    assert impact_of(1e4, vol=0.04) == pytest.approx(2 * base)  # linear in vol
    assert impact_of(1e4, impact_y=0.5) == pytest.approx(0.5 * base)  # linear in Y
    assert impact_of(1e4, adv=2e6) == pytest.approx(base / math.sqrt(2))  # doubling ADV: / sqrt 2


def test_impact_when_children_split_across_venues_then_they_share_the_instruments_volume():
    other = VenueSpec("OTHER", 1.0, 0.0, 1.0, 0.0, 0.0, depth=1e9, latency_ms=0.1, seed=8)
    market = Market(venues=(QUIET, other), adv={"XYZ": 1e6}, noise_window_s=0.0)
    market.open_session(DAY, {"XYZ": 100.0}, {"XYZ": 0.02})
    assert market.impact_bps("XYZ", 4e3) == pytest.approx(sqrt_impact_bps(1.0, 0.02, 1e6, 0, 4e3))
    market.venue("QUIET").execute("a", "o", "XYZ", "BUY", 4e3, 100.0)
    market.venue("OTHER").execute("b", "o", "XYZ", "SELL", 6e3, 100.0)
    first, second = (r["impact_bps"] for r in market.records)
    assert second == pytest.approx(sqrt_impact_bps(1.0, 0.02, 1e6, 4e3, 1e4))  # starts where the first ended
    assert second > first
    # the two children together pay what one child of the total pays
    assert 4e3 * first + 6e3 * second == pytest.approx(1e4 * sqrt_impact_bps(1.0, 0.02, 1e6, 0, 1e4))
    assert market.records[1]["price"] < 100.0  # a sell fills below the anchor
    market.close_session()
    market.open_session(NEXT, {"XYZ": 100.0}, {"XYZ": 0.02})
    assert market.impact_bps("XYZ", 4e3) == pytest.approx(first)  # temporary: the volume restarts at 0


def test_venue_when_child_exceeds_the_touch_then_partial_fill_at_the_depth_shown():
    market = Market()
    market.open_session(DAY, {"AAPL": 70.0}, {"AAPL": 0.02})
    alpha = market.venue("ALPHA")
    fill = alpha.execute("c1", "o1", "AAPL", "BUY", 1000, 70.0)
    assert fill is not None and fill.quantity == 400 and fill.venue == "ALPHA" and fill.ticker == "AAPL"
    assert fill.fee == pytest.approx(400 * fill.price * alpha.spec.taker_fee_bps / 1e4)
    assert market.depth("ALPHA", "AAPL") == 0 and market.depth("BETA", "AAPL") == 3000
    assert alpha.execute("c2", "o1", "AAPL", "BUY", 10, 70.0) is None  # nothing left at the touch today


def test_depth_when_traded_then_depleted_and_recovers_by_resilience_between_sessions():
    market = Market(resilience=0.5)
    market.open_session(DAY, {"AAPL": 70.0, "MSFT": 150.0}, {"AAPL": 0.02, "MSFT": 0.02})
    market.venue("ALPHA").execute("c1", "o1", "AAPL", "BUY", 300, 70.0)
    assert market.depth("ALPHA", "AAPL") == 100 and market.depth("ALPHA", "MSFT") == 400  # per ticker
    second = market.venue("ALPHA").execute("c2", "o2", "AAPL", "SELL", 300, 70.0)
    assert second is not None and second.quantity == 100 and market.records[1]["depth_before"] == 100
    market.close_session()  # 400 missing -> 200
    market.open_session(NEXT, {"AAPL": 71.0}, {"AAPL": 0.02})
    assert market.depth("ALPHA", "AAPL") == 200
    market.close_session()  # -> 100 missing
    assert market.depth("ALPHA", "AAPL") == 300
    for _ in range(60):
        market.close_session()
    assert market.depth("ALPHA", "AAPL") == 400 and market.depleted == {}


def test_venue_when_price_lands_beyond_the_limit_then_nothing_fills_and_nothing_moves():
    market = Market()
    market.open_session(DAY, {"AAPL": 70.0}, {"AAPL": 0.02})
    beta = market.venue("BETA")
    assert beta.execute("c1", "o1", "AAPL", "BUY", 100, 70.0, limit_price=70.0) is None
    assert beta.execute("c2", "o1", "AAPL", "SELL", 100, 70.0, limit_price=70.5) is None
    assert market.traded == {} and market.depth("BETA", "AAPL") == 3000 and market.records == []
    assert beta.execute("c3", "o1", "AAPL", "BUY", 100, 70.0, limit_price=71.0) is not None


def test_fills_when_same_child_id_then_same_noise_and_a_different_id_draws_anew():
    def one(child: str, seed: int = 20260101):
        market = Market(seed=seed)
        market.open_session(DAY, {"AAPL": 70.0}, {"AAPL": 0.02})
        return market.venue("GAMMA").execute(child, "o1", "AAPL", "BUY", 100, 70.0)

    assert one("o1#0") == one("o1#0")
    assert one("o1#0") != one("o1#1")
    assert one("o1#0") != one("o1#0", seed=1)


def test_noise_when_many_children_then_zero_mean_with_the_documented_scale():
    market = Market(adv={"AAPL": 1e12}, noise_window_s=23.4)  # diffusion 0.03 x sqrt(1e-3) = 9.49 bps
    market.open_session(DAY, {"AAPL": 70.0}, {"AAPL": 0.03})
    gamma = market.venue("GAMMA")
    noise = []
    for i in range(400):
        gamma.execute(f"c{i}", "o", "AAPL", "BUY", 1, 70.0)
        noise.append(market.records[-1]["noise_bps"])
        market.depleted.clear()
    mean = sum(noise) / len(noise)
    sd = math.sqrt(sum((x - mean) ** 2 for x in noise) / (len(noise) - 1))
    expected = math.hypot(1.0, 0.03 * math.sqrt(1e-3) * 1e4)  # GAMMA's 1 bp and the diffusion
    assert abs(mean) < 3 * expected / math.sqrt(len(noise))
    assert sd == pytest.approx(expected, rel=0.12)


def test_state_when_round_tripped_through_json_then_the_resumed_market_fills_identically():
    def trade(market: Market, day: date, tag: str) -> list:
        if market.day is None:
            market.open_session(day, {"AAPL": 70.0, "RRC": 4.0}, {"AAPL": 0.02, "RRC": 0.05})
        router = Router(DEFAULT_VENUES)
        fills = []
        for oid, ticker, qty in ((f"{tag}a", "AAPL", 2500), (f"{tag}b", "RRC", 9000)):
            for c in router.route(oid, ticker, "BUY", qty, market.anchors[ticker]):
                fills.append(market.venue(c.venue).execute(c.child_id, oid, ticker, "BUY", c.quantity, 1.0))
        market.close_session()
        return fills

    original = Market()
    trade(original, DAY, "d1")
    original.open_session(NEXT, {"AAPL": 70.5, "RRC": 4.1}, {"AAPL": 0.02, "RRC": 0.05})  # mid-session
    original.venue("ALPHA").execute("x", "x", "AAPL", "SELL", 50, 70.5)
    saved = json.dumps(original.state(), sort_keys=True)
    resumed = Market.from_state(json.loads(saved))
    assert json.dumps(resumed.state(), sort_keys=True) == saved
    assert trade(resumed, NEXT, "d2") == trade(original, NEXT, "d2")
    assert trade(resumed, THIRD, "d3") == trade(original, THIRD, "d3")
    assert json.dumps(resumed.state(), sort_keys=True) == json.dumps(original.state(), sort_keys=True)
    taken = original.take_records()
    assert (
        len(taken) > 0 and original.records == [] and list(fills_frame(taken).columns) == list(FILL_COLUMNS)
    )


def test_venue_when_compared_with_simulated_venue_then_a_drop_in():
    market = Market()
    for name, spec in zip(market.venues(), DEFAULT_VENUES, strict=True):
        venue = market.venue(name)
        assert venue.spec == spec
        assert inspect.signature(venue.execute) == inspect.signature(SimulatedVenue(spec).execute)


def test_slippage_when_reference_differs_from_anchor_then_measured_against_the_reference():
    market = Market()
    market.open_session(DAY, {"AAPL": 70.0}, {"AAPL": 0.02})
    fill = market.venue("BETA").execute("c", "o", "AAPL", "BUY", 100, 69.0)
    assert fill is not None and fill.price > 70.0  # anchored on the session, not on the reference
    assert fill.slippage_bps == pytest.approx((fill.price / 69.0 - 1) * 1e4 - 1.0)


def test_walk_when_beyond_the_touch_then_each_level_costs_one_more_step():
    assert walk_bps(300, 400, 400, 4.0) == 0.0
    assert walk_bps(4900, 3000, 3000, 2.0) == pytest.approx(2.0 * 1900 / 4900)
    # 10 shares at an empty touch, levels of 4: 4 at level 1, 4 at 2, 2 at 3
    assert walk_bps(10, 0, 4, 1.0) == pytest.approx((4 + 8 + 6) / 10)


def test_market_order_when_walking_then_fills_all_and_empties_the_touch():
    market = Market()
    market.open_session(DAY, {"AAPL": 70.0}, {"AAPL": 0.02})
    beta = market.venue("BETA").spec
    fill = market.fill(beta, "n", "o", "AAPL", "BUY", 4900, 70.0, walk=True)
    assert fill is not None and fill.quantity == 4900
    assert market.records[0]["walk_bps"] == pytest.approx(2.0 * 1900 / 4900)
    assert market.depth("BETA", "AAPL") == 0


def test_adv_table_when_loaded_then_one_positive_figure_per_bundled_ticker():
    adv = load_adv()
    assert set(adv) == set(read_reference_csv("esg")["ticker"])  # the 20 names of the bundled universe
    assert all(a > 1e6 for a in adv.values()) and "ILLUSTRATIVE" in ADV_PATH.read_text()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("ticker,volume\nAAPL,1\n", "columns"),
        ("ticker,adv_shares\nAAPL,-5\n", "adv_shares"),
        ("ticker,adv_shares\nAAPL,lots\n", "adv_shares"),
        ("ticker,adv_shares\nAAPL,1\naapl,2\n", "ticker"),
        ("ticker,adv_shares\n,1\n", "ticker"),
        ("ticker,adv_shares\n", "no rows"),
    ],
)
def test_load_adv_when_file_is_malformed_then_input_error_names_it(tmp_path, text, field):
    path = tmp_path / "adv.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=field):
        load_adv(path)


def test_load_adv_when_file_is_missing_then_input_error(tmp_path):
    with pytest.raises(InputError, match="adv path"):
        load_adv(tmp_path / "none.csv")


def test_market_when_misused_then_input_errors_name_the_field():
    with pytest.raises(InputError, match="venues"):
        Market(venues=(QUIET, QUIET))
    with pytest.raises(InputError, match="resilience"):
        Market(resilience=1.5)
    with pytest.raises(InputError, match="seed"):
        Market(seed=-1)
    with pytest.raises(InputError, match="impact_y"):
        Market(impact_y="big")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="adv"):
        Market(adv={"AAPL": 0})
    market = Market(adv={"AAPL": 1e6})
    with pytest.raises(InputError, match="open_session first"):
        market.venue("BETA").execute("c", "o", "AAPL", "BUY", 1, 70.0)
    with pytest.raises(InputError, match="daily_vol"):
        market.open_session(DAY, {"AAPL": 70.0}, {})
    with pytest.raises(InputError, match="anchors"):
        market.open_session(DAY, {"AAPL": -1.0}, {"AAPL": 0.02})
    market.open_session(DAY, {"AAPL": 70.0, "MSFT": 150.0}, {"AAPL": 0.02, "MSFT": 0.02})
    with pytest.raises(InputError, match="no session open"):
        market.open_session(NEXT, {"AAPL": 70.0}, {"AAPL": 0.02})
    with pytest.raises(InputError, match="ticker"):
        market.venue("BETA").execute("c", "o", "KO", "BUY", 1, 70.0)
    with pytest.raises(InputError, match="adv"):
        market.venue("BETA").execute("c", "o", "MSFT", "BUY", 1, 150.0)
    with pytest.raises(InputError, match="side"):
        market.venue("BETA").execute("c", "o", "AAPL", "HOLD", 1, 70.0)
    with pytest.raises(InputError, match="quantity"):
        market.venue("BETA").execute("c", "o", "AAPL", "BUY", 0, 70.0)
    with pytest.raises(InputError, match="venue"):
        market.venue("NYSE")
    market.close_session()
    with pytest.raises(InputError, match="after the last session"):
        market.open_session(DAY, {"AAPL": 70.0}, {"AAPL": 0.02})
    with pytest.raises(InputError, match="version"):
        Market.from_state({"version": 99})
    broken = market.state()
    del broken["traded"]
    with pytest.raises(InputError, match="market state"):
        Market.from_state(broken)
    tampered = market.state()
    tampered["params"]["resilience"] = 2.0
    with pytest.raises(InputError, match="resilience"):
        Market.from_state(tampered)
    with pytest.raises(InputError, match="adv_scale"):
        market.replica(0)
