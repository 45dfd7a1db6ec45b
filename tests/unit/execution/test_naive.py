from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from execution.market import FILL_COLUMNS, Market, fills_frame, sqrt_impact_bps
from execution.naive import deepest_venue, naive_execute
from execution.router import Router
from execution.tca import compare, order_tca
from execution.venues import DEFAULT_VENUES
from quantbridge.errors import InputError

D1, D2, D3 = date(2020, 3, 2), date(2020, 3, 3), date(2020, 3, 4)


def order(
    order_id: str, day: date, quantity: float, side: str = "BUY", ticker: str = "AAPL", **extra
) -> dict:
    return {
        "order_id": order_id,
        "signal_day": day,
        "exec_day": day,
        "ticker": ticker,
        "side": side,
        "quantity": quantity,
        "decision_price": 70.0,
        "arrival_price": 70.0,
        "state": "FILLED",
        **extra,
    }


def market_with_sessions(*days: date, noise_window_s: float = 1.0, aapl_adv: float = 1.5e8) -> Market:
    market = Market(adv={"AAPL": aapl_adv, "MSFT": 3.5e7}, noise_window_s=noise_window_s)
    for day in days:
        market.open_session(day, {"AAPL": 70.0, "MSFT": 150.0}, {"AAPL": 0.02, "MSFT": 0.02})
        market.close_session()
    return market


def routed(market: Market, orders: pd.DataFrame) -> pd.DataFrame:
    """What the replay's worker does with each order: route across the venues (Kalman limits), fill, learn."""
    router = Router(DEFAULT_VENUES)
    for day, todays in orders.groupby("exec_day"):
        market.open_session(day, {"AAPL": 70.0, "MSFT": 150.0}, {"AAPL": 0.02, "MSFT": 0.02})
        for o in todays.itertuples():
            mark = market.anchors[o.ticker]
            for c in router.route(o.order_id, o.ticker, o.side, o.quantity, mark):
                fill = market.venue(c.venue).execute(
                    c.child_id, o.order_id, o.ticker, o.side, c.quantity, mark, c.limit_price
                )
                if fill is not None:
                    router.learn(fill.venue, fill.ticker, fill.slippage_bps, fill.quantity)
        market.close_session()
    return fills_frame(market.take_records())


def test_deepest_venue_when_default_venues_then_beta():
    assert deepest_venue(DEFAULT_VENUES).name == "BETA"
    with pytest.raises(InputError, match="venues"):
        deepest_venue([])


def test_naive_when_large_order_then_pays_more_than_the_split_across_venues():
    # 4,900 shares: exactly the three touches together, so the split fills it all at the touch while the
    # naive order takes BETA's 3,000 and walks 1,900 shares one level (one spread, 2 bps) further.
    orders = pd.DataFrame([order("big", D1, 4900)])
    replay = market_with_sessions(noise_window_s=0.0)
    router = order_tca(orders, routed(replay, orders))
    naive_fills = naive_execute(orders, replay)
    naive = order_tca(orders, naive_fills)
    assert router["filled"].iloc[0] == naive["filled"].iloc[0] == 4900  # like for like
    [fill] = naive_fills.to_dict("records")
    assert (fill["venue"], fill["fill_id"], fill["quantity"]) == ("BETA", "big#naive", 4900)
    assert fill["walk_bps"] == pytest.approx(2.0 * 1900 / 4900)
    assert fill["impact_bps"] == pytest.approx(sqrt_impact_bps(1.0, 0.02, 1.5e8, 0, 4900))
    assert naive["impact_cost"].iloc[0] == pytest.approx(
        router["impact_cost"].iloc[0]
    )  # same volume, same law
    result = compare(router, naive)
    assert result["naive_cost_bps"] > result["router_cost_bps"] + 1.0
    assert result["saving_pct"] > 20 and result["saving_money_pct"] > 20


def test_router_when_impact_exceeds_its_limit_band_then_the_child_is_refused_and_recorded():
    # At 1.5 M shares ADV the last child (BETA, shares 1,900..4,900 of the session) pays about 8 bps of
    # impact, more than the band the router's prior allows: nothing fills there and the refusal is kept.
    market = market_with_sessions(noise_window_s=0.0, aapl_adv=1.5e6)
    fills = routed(market, pd.DataFrame([order("big", D1, 4900)]))
    assert fills["quantity"].sum() == 1900
    [refusal] = market.take_refusals()
    assert (refusal["venue"], refusal["quantity"], refusal["child_id"]) == ("BETA", 3000, "big#2")
    assert refusal["price"] > refusal["limit_price"] and market.refusals == []


def test_naive_when_run_then_the_replays_market_is_untouched():
    market = market_with_sessions(D1, D2)
    market.open_session(D3, {"AAPL": 70.0}, {"AAPL": 0.02})
    market.venue("ALPHA").execute("x", "x", "AAPL", "BUY", 100, 70.0)
    before = json.dumps(market.state(), sort_keys=True)
    orders = pd.DataFrame([order("a", D1, 5000), order("b", D2, 300, side="SELL", ticker="MSFT")])
    fills = naive_execute(orders, market)
    assert json.dumps(market.state(), sort_keys=True) == before
    assert list(fills.columns) == list(FILL_COLUMNS) and list(fills["order_id"]) == ["a", "b"]
    assert fills["price"].iloc[1] < 150.0  # a sell below the anchor
    again = naive_execute(orders, json.loads(before))  # from the saved state: the same fills
    pd.testing.assert_frame_equal(fills, again)


def test_naive_when_same_name_traded_on_consecutive_days_then_the_thinner_book_costs_more():
    orders = pd.DataFrame([order("a", D1, 4000), order("b", D2, 4000)])
    fills = naive_execute(orders, market_with_sessions(D1, D2)).set_index("order_id")
    # day 1 shows BETA's 3,000; resilience 0.5 gives back half of the 3,000 taken, so day 2 shows 1,500
    assert list(fills["depth_before"]) == [3000, 1500]
    assert fills.loc["b", "walk_bps"] > fills.loc["a", "walk_bps"]


def test_naive_when_orders_were_rejected_or_a_venue_is_named_then_respected():
    orders = pd.DataFrame([order("a", D1, 100), order("r", D1, 100, state="REJECTED")])
    fills = naive_execute(orders, market_with_sessions(D1), venue="ALPHA")
    assert list(fills["order_id"]) == ["a"] and list(fills["venue"]) == ["ALPHA"]
    everything = naive_execute(orders.drop(columns="state"), market_with_sessions(D1), level_step_bps=0.0)
    assert list(everything["order_id"]) == ["a", "r"]


def test_naive_when_adv_scaled_then_impact_scales_as_one_over_sqrt():
    orders = pd.DataFrame([order("a", D1, 2000)])
    base = naive_execute(orders, market_with_sessions(D1))["impact_bps"].iloc[0]
    thin = naive_execute(orders, market_with_sessions(D1), adv_scale=0.25)["impact_bps"].iloc[0]
    assert thin == pytest.approx(2 * base)


def test_naive_when_inputs_are_incomplete_then_input_error():
    market = market_with_sessions(D1)
    with pytest.raises(InputError, match="orders columns"):
        naive_execute(pd.DataFrame([{"order_id": "a"}]), market)
    with pytest.raises(InputError, match="exec_day"):
        naive_execute(pd.DataFrame([order("a", D2, 100)]), market)
    with pytest.raises(InputError, match="ticker"):
        naive_execute(pd.DataFrame([order("a", D1, 100, ticker="KO")]), market)
