from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from execution.market import Market, fills_frame
from execution.tca import adv_sensitivity, compare, matched_orders, monthly_tca, order_tca, reprice_fills
from quantbridge.errors import InputError


def order(order_id, side, quantity, decision, arrival, day=date(2020, 1, 3), **extra):
    return {
        "order_id": order_id,
        "signal_day": day,
        "exec_day": day,
        "ticker": "AAPL",
        "side": side,
        "quantity": quantity,
        "decision_price": decision,
        "arrival_price": arrival,
        "state": "FILLED",
        **extra,
    }


def fill(order_id, quantity, anchor, side, fee, hs, noise, impact, price=None, walk=0.0):
    s = 1 if side == "BUY" else -1
    price = anchor * (1 + s * (hs + noise + impact + walk) / 1e4) if price is None else price
    return {
        "fill_id": f"{order_id}#{quantity}",
        "order_id": order_id,
        "side": side,
        "quantity": quantity,
        "price": price,
        "fee": fee,
        "anchor": anchor,
        "half_spread_bps": hs,
        "noise_bps": noise,
        "impact_bps": impact,
        "walk_bps": walk,
    }


ORDERS = pd.DataFrame(
    [
        order("b1", "BUY", 100, decision=100.0, arrival=101.0),
        order("s1", "SELL", 200, decision=50.0, arrival=49.0, state="CANCELLED"),
        order("n1", "BUY", 10, decision=20.0, arrival=19.0, state="CANCELLED"),
    ]
)
FILLS = pd.DataFrame(
    [
        fill("b1", 60, 101.0, "BUY", fee=1.0, hs=2.0, noise=1.0, impact=2.0),  # at 101.0505
        fill("b1", 40, 101.0, "BUY", fee=0.5, hs=1.0, noise=-1.0, impact=3.0),  # at 101.0303
        fill("s1", 150, 49.0, "SELL", fee=0.3, hs=1.0, noise=0.0, impact=19.0, price=48.9),
    ]
)


def test_order_tca_when_buy_filled_then_costs_split_as_computed_by_hand():
    row = order_tca(ORDERS, FILLS).set_index("order_id").loc["b1"]
    assert row["filled"] == 100 and row["fill_rate"] == 1.0
    assert row["vwap"] == pytest.approx(101.04242)
    assert row["trading_cost"] == pytest.approx(60 * 0.0505 + 40 * 0.0303)  # 4.242 vs arrival
    assert row["spread_cost"] == pytest.approx(1.212 + 0.404)
    assert row["noise_cost"] == pytest.approx(0.606 - 0.404)
    assert row["impact_cost"] == pytest.approx(1.212 + 1.212)
    assert row["spread_cost"] + row["noise_cost"] + row["impact_cost"] == pytest.approx(row["trading_cost"])
    assert row["fees"] == pytest.approx(1.5)
    assert row["delay_cost"] == pytest.approx(100.0)  # the overnight move 100 -> 101 on 100 shares
    assert row["opportunity_cost"] == 0.0
    assert row["execution_cost"] == pytest.approx(5.742)
    assert row["execution_cost_bps"] == pytest.approx(5.742 / (100 * 101) * 1e4)
    assert row["is_cost"] == pytest.approx(105.742) and row["is_bps"] == pytest.approx(105.742)
    assert row["arrival_slippage_bps"] == pytest.approx(4.2)


def test_order_tca_when_fills_have_no_walk_column_then_no_walk_cost():
    plain = order_tca(ORDERS, FILLS.drop(columns="walk_bps"))
    assert (plain["walk_cost"] == 0).all()
    pd.testing.assert_series_equal(plain["is_cost"], order_tca(ORDERS, FILLS)["is_cost"])


def test_order_tca_when_sell_partly_filled_then_opportunity_cost_on_the_rest():
    row = order_tca(ORDERS, FILLS).set_index("order_id").loc["s1"]
    assert row["filled"] == 150 and row["fill_rate"] == 0.75
    assert row["trading_cost"] == pytest.approx(15.0)  # sold 150 at 48.9 against 49
    assert row["delay_cost"] == pytest.approx(150.0)  # the price fell 50 -> 49 before the sale
    assert row["opportunity_cost"] == pytest.approx(50.0)  # 50 unsold shares lost 1 each
    assert row["execution_cost"] == pytest.approx(15.3)
    assert row["is_cost"] == pytest.approx(215.3) and row["is_bps"] == pytest.approx(215.3)
    assert row["arrival_slippage_bps"] == pytest.approx((1 - 48.9 / 49) * 1e4)


def test_order_tca_when_nothing_filled_then_only_opportunity_cost_and_no_prices():
    row = order_tca(ORDERS, FILLS).set_index("order_id").loc["n1"]
    assert (
        row["filled"] == 0 and row["execution_cost"] == 0 and row["opportunity_cost"] == pytest.approx(-10.0)
    )
    assert row["is_cost"] == pytest.approx(-10.0)  # the price fell: not buying was a gain
    assert math.isnan(row["vwap"]) and math.isnan(row["execution_cost_bps"])
    assert math.isnan(row["arrival_slippage_bps"])


def test_order_tca_when_exec_close_given_then_the_rest_is_valued_at_it():
    orders = pd.DataFrame([order("c1", "BUY", 100, decision=20.0, arrival=21.0, exec_close=22.0)])
    fills = pd.DataFrame([fill("c1", 40, 21.0, "BUY", fee=0.0, hs=0.0, noise=0.0, impact=0.0)])
    row = order_tca(orders, fills).iloc[0]
    assert row["opportunity_cost"] == pytest.approx(60 * 2.0) and row["delay_cost"] == pytest.approx(40.0)


def test_monthly_tca_when_nav_given_then_cost_as_percent_of_the_months_mean_nav():
    orders = pd.concat(
        [ORDERS, pd.DataFrame([order("f1", "BUY", 100, 100.0, 101.0, day=date(2020, 2, 4))])],
        ignore_index=True,
    )
    fills = pd.concat(
        [FILLS, pd.DataFrame([fill("f1", 100, 101.0, "BUY", fee=2.0, hs=1.0, noise=0.0, impact=1.0)])],
        ignore_index=True,
    )
    nav = pd.Series(
        [1.0e6, 1.2e6, 2.0e6, 2.0e6],
        index=pd.to_datetime(["2020-01-02", "2020-01-31", "2020-02-28", "2020-03-02"]),
    )
    monthly = monthly_tca(order_tca(orders, fills), nav).set_index("month")
    assert list(monthly.index) == ["2020-01", "2020-02", "2020-03"]
    jan, feb, mar = (monthly.loc[m] for m in monthly.index)
    assert jan["orders"] == 3 and jan["aum"] == pytest.approx(1.1e6)
    assert jan["execution_cost"] == pytest.approx(5.742 + 15.3)
    assert jan["execution_cost_pct_aum"] == pytest.approx((5.742 + 15.3) / 1.1e6 * 100)
    assert jan["is_pct_aum"] == pytest.approx((105.742 + 215.3 - 10.0) / 1.1e6 * 100)
    f1_cost = 100 * 101.0 * 2e-4 + 2.0
    assert feb["execution_cost_pct_aum"] == pytest.approx(f1_cost / 2e6 * 100)
    assert feb["execution_cost_bps"] == pytest.approx(f1_cost / (100 * 101.0 * 1.0002) * 1e4)
    assert mar["orders"] == 0 and mar["execution_cost"] == 0 and math.isnan(mar["execution_cost_bps"])


def test_compare_when_router_cheaper_then_saving_in_percent_of_the_naive_cost():
    router = order_tca(ORDERS.iloc[:1], FILLS.iloc[:2])  # b1: 5.742 on 10,100 of arrival notional
    naive_fill = fill("b1", 100, 101.0, "BUY", fee=2.0, hs=1.0, noise=0.0, impact=4.0, walk=3.0)
    naive = order_tca(ORDERS.iloc[:1], pd.DataFrame([naive_fill]))
    naive_cost = 100 * 101.0 * 8e-4 + 2.0  # 10.08
    result = compare(router, naive)
    assert result["naive_cost"] == pytest.approx(naive_cost) and result["router_cost"] == pytest.approx(5.742)
    assert result["saving_pct"] == pytest.approx((naive_cost - 5.742) / naive_cost * 100)  # 43.0%
    assert result["saving_money_pct"] == pytest.approx(result["saving_pct"])  # same shares filled
    assert result["saving_is_pct"] == pytest.approx((100 + naive_cost - 105.742) / (100 + naive_cost) * 100)
    assert result["naive_fill_rate"] == result["router_fill_rate"] == 1.0
    nothing = compare(router, order_tca(ORDERS.iloc[:1], FILLS.iloc[:0]))
    assert nothing["saving_pct"] is None and nothing["naive_cost_bps"] is None  # nothing to compare with


def test_matched_orders_when_router_left_a_rest_then_orders_cut_to_the_filled_quantity():
    matched = matched_orders(order_tca(ORDERS, FILLS))
    assert list(matched["order_id"]) == ["b1", "s1"] and list(matched["quantity"]) == [100, 150]
    assert "filled" not in matched.columns


def session_market() -> Market:
    market = Market(adv={"AAPL": 1e6})
    market.open_session(date(2020, 1, 3), {"AAPL": 101.0}, {"AAPL": 0.02})
    return market


def test_adv_sensitivity_when_adv_scaled_then_impact_moves_as_one_over_sqrt():
    orders = pd.DataFrame([order("a1", "BUY", 3000, 100.0, 101.0), order("a2", "SELL", 1000, 100.0, 101.0)])
    market = session_market()
    market.venue("BETA").execute("a1#0", "a1", "AAPL", "BUY", 3000, 101.0)
    market.venue("GAMMA").execute("a2#0", "a2", "AAPL", "SELL", 1000, 101.0)
    market.close_session()
    fills = fills_frame(market.take_records())
    table = adv_sensitivity(orders, fills, market).set_index("adv_scale")
    assert list(table.index) == [0.25, 1.0, 4.0]
    for who in ("router", "naive"):
        impact = table[f"{who}_impact"]
        assert impact[0.25] == pytest.approx(2 * impact[1.0]) and impact[4.0] == pytest.approx(
            impact[1.0] / 2
        )
        assert table[f"{who}_cost"].is_monotonic_decreasing  # a deeper market is cheaper
    assert table.loc[1.0, "router_cost"] == pytest.approx(order_tca(orders, fills)["execution_cost"].sum())


def test_reprice_fills_when_scale_is_one_then_the_fills_are_unchanged():
    fills = pd.DataFrame(FILLS.iloc[:2])
    again = reprice_fills(fills, 1.0)
    pd.testing.assert_series_equal(again["price"], fills["price"])
    assert reprice_fills(fills, 4.0)["price"].lt(fills["price"]).all()  # a buy costs less in a deeper market
    with pytest.raises(InputError, match="adv_scale"):
        reprice_fills(fills, 0.0)


def test_tca_when_inputs_are_wrong_then_input_errors_name_them():
    with pytest.raises(InputError, match="orders columns"):
        order_tca(ORDERS.drop(columns="arrival_price"), FILLS)
    with pytest.raises(InputError, match="fills columns"):
        order_tca(ORDERS, FILLS.drop(columns="anchor"))
    with pytest.raises(InputError, match="unique"):
        order_tca(pd.concat([ORDERS, ORDERS.iloc[:1]]), FILLS)
    with pytest.raises(InputError, match="side"):
        order_tca(ORDERS.assign(side="HOLD"), FILLS)
    with pytest.raises(InputError, match="decision_price"):
        order_tca(ORDERS.assign(decision_price=0.0), FILLS)
    with pytest.raises(InputError, match="fills order_id"):
        order_tca(ORDERS.iloc[1:], FILLS)
    with pytest.raises(InputError, match="fills quantity"):
        order_tca(ORDERS.assign(quantity=[50, 200, 10]), FILLS)
    per_order = order_tca(ORDERS, FILLS)
    with pytest.raises(InputError, match="a NAV in every month"):
        monthly_tca(per_order, pd.Series([1e6], index=pd.to_datetime(["2020-02-03"])))
    with pytest.raises(InputError, match="nav"):
        monthly_tca(per_order, pd.Series([], dtype=float))
