"""The independent post-trade check (execution/surveillance.py): fills re-checked against the limits in force
at their time, from trusted marks and positions rebuilt from the fills; no Redis."""

from __future__ import annotations

import ast
import json
import math
import random
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from execution.surveillance import Violation, check_fills, summary
from quantbridge.errors import InputError
from tests.conftest import ROOT

LIMITS = json.loads((ROOT / "policies" / "data.json").read_text())["limits"]  # the real limits
T0 = datetime(2020, 3, 2, 15, 0, tzinfo=UTC).timestamp()
DAY = date(2020, 3, 2)
MARKS = {(DAY, "AAPL"): 150.0, (DAY, "MSFT"): 30.0, (DAY, "XOM"): 100.0, (DAY, "RRC"): 10.0}
ESG = {"AAPL": 0.7, "MSFT": 0.6, "XOM": 0.2, "RRC": 0.5}
TIMELINE = [(T0 - 3600, "sha-base", LIMITS)]


def order(oid, ticker="AAPL", side="BUY", quantity=100.0, price=None):
    price = MARKS[(DAY, ticker)] if price is None else price
    return {"order_id": oid, "ticker": ticker, "side": side, "quantity": quantity, "decision_price": price}


def fill(fid, oid, ticker="AAPL", side="BUY", quantity=100.0, ts=T0, day=DAY):
    return {
        "fill_id": fid,
        "order_id": oid,
        "exec_day": day,
        "ticker": ticker,
        "side": side,
        "quantity": quantity,
        "ts": ts,
    }


def run(fills, orders, timeline=TIMELINE, marks=MARKS, esg=ESG, episodes=(), initial=None):
    return check_fills(
        pd.DataFrame(fills), pd.DataFrame(orders), timeline, marks, esg, list(episodes), initial or {}
    )


def rules(violations):
    return [v.rule for v in violations]


def test_check_fills_when_every_fill_is_within_the_limits_then_no_violation():
    orders = [order("o1"), order("o2", "MSFT", "SELL", 5000), order("o3", "XOM", "SELL", 50)]
    fills = [
        fill("f1", "o1", quantity=60),
        fill("f2", "o1", quantity=40, ts=T0 + 1),
        fill("f3", "o2", "MSFT", "SELL", 3000, ts=T0 + 2),
        fill("f4", "o2", "MSFT", "SELL", 1000, ts=T0 + 3),  # partly filled: the rest cancelled
        fill("f5", "o3", "XOM", "SELL", 50, ts=T0 + 4),  # low ESG, but a SELL
    ]
    assert run(fills, orders) == []


def test_check_fills_when_restricted_instrument_filled_then_one_violation_per_order():
    got = run(
        [fill("f1", "r1", "RRC", quantity=50), fill("f2", "r1", "RRC", quantity=50, ts=T0 + 1)],
        [order("r1", "RRC")],
    )
    assert rules(got) == ["RESTRICTED_INSTRUMENT"]
    assert got[0] == Violation(
        "RESTRICTED_INSTRUMENT", "r1", "f1", "RRC", "ticker=RRC, restricted=['RRC']", "sha-base", T0
    )


def test_check_fills_when_order_notional_at_the_trusted_mark_exceeds_max_then_full_quantity_counts():
    # 1,700 x the trusted 150 = 255,000 > 250,000, though the order's own price (136) gives 231,200;
    # only 1,000 filled: the order's notional is that of its full quantity, as the policy defines it
    got = run([fill("f1", "big", quantity=1000)], [order("big", quantity=1700, price=136.0)])
    assert rules(got) == ["NOTIONAL_EXCEEDS_MAX"]
    assert "max=250000, notional=255000" in got[0].detail
    assert "full quantity 1700 x mark 150" in got[0].detail and "filled so far 1000 = 150000" in got[0].detail


def test_check_fills_when_position_rebuilt_from_fills_goes_beyond_max_then_breach_on_that_fill():
    orders = [order(f"o{i}", "MSFT", quantity=8000) for i in range(3)]
    fills = [fill(f"f{i}", f"o{i}", "MSFT", quantity=8000, ts=T0 + i) for i in range(3)]
    got = run(fills, orders)
    assert rules(got) == ["POSITION_EXCEEDS_MAX"] and got[0].fill_id == "f2"
    assert got[0].detail == "max=20000, position_before=16000, position_after=24000, fill=BUY 8000"


def test_check_fills_when_short_position_beyond_max_then_breach_in_absolute_value():
    got = run(
        [fill("f1", "s1", "MSFT", "SELL", 5000)],
        [order("s1", "MSFT", "SELL", 5000)],
        initial={"MSFT": -16000},
    )
    assert rules(got) == ["POSITION_EXCEEDS_MAX"] and "position_after=-21000" in got[0].detail


def test_check_fills_when_low_esg_name_bought_then_esg_breach_and_unscored_name_is_not():
    got = run(
        [fill("f1", "x1", "XOM", quantity=10), fill("f2", "m1", "MSFT", quantity=10)],
        [order("x1", "XOM", quantity=10), order("m1", "MSFT", quantity=10)],
        esg={"XOM": 0.2, "MSFT": float("nan")},  # NaN: no score, not excluded (as the policy's null)
    )
    assert rules(got) == ["ESG_EXCLUDED"] and got[0].detail == "min=0.25, score=0.2, BUY 10"


def test_check_fills_when_decision_price_off_the_trusted_mark_beyond_band_then_price_band():
    got = run(
        [fill("f1", "b1", quantity=10), fill("f2", "ok", quantity=10, ts=T0 + 1)],
        [order("b1", quantity=10, price=170.0), order("ok", quantity=10, price=164.0)],  # 13.3% and 9.3%
    )
    assert rules(got) == ["PRICE_BAND"] and got[0].order_id == "b1"
    assert "band=0.1, mark=150 of 2020-03-02, decision_price=170" in got[0].detail


@pytest.mark.parametrize(
    "initial, side, quantity, breach",
    [
        (0.0, "BUY", 10, True),  # opens a position
        (100.0, "BUY", 10, True),  # grows it
        (100.0, "SELL", 40, False),  # reduces it
        (100.0, "SELL", 100, False),  # closes it
        (100.0, "SELL", 150, True),  # through zero: 50 short opened
        (-100.0, "BUY", 60, False),  # covers part of a short
    ],
)
def test_check_fills_when_kill_switch_episode_then_only_risk_increasing_fills_breach(
    initial, side, quantity, breach
):
    got = run(
        [fill("f1", "k1", side=side, quantity=quantity)],
        [order("k1", side=side, quantity=quantity)],
        episodes=[(T0 - 10, T0 + 10)],
        initial={"AAPL": initial},
    )
    assert rules(got) == (["KILL_SWITCH_ACTIVE"] if breach else [])
    if breach:
        after = initial + (quantity if side == "BUY" else -quantity)
        assert f"position_before={initial:.12g}, position_after={after:.12g}" in got[0].detail


@pytest.mark.parametrize(
    "ts, end, breach",
    [
        (T0 - 0.001, T0 + 10, False),  # just before the switch was set
        (T0, T0 + 10, True),  # the instant it was set: in force
        (T0 + 9.999, T0 + 10, True),
        (T0 + 10, T0 + 10, False),  # the instant it was cleared: no longer in force
        (T0 + 1e6, None, True),  # an episode still open at the end of the run
    ],
)
def test_check_fills_when_fill_at_episode_boundaries_then_start_inclusive_end_exclusive(ts, end, breach):
    got = run([fill("f1", "k1", quantity=10, ts=ts)], [order("k1", quantity=10)], episodes=[(T0, end)])
    assert rules(got) == (["KILL_SWITCH_ACTIVE"] if breach else [])


def test_check_fills_when_switch_set_before_the_record_then_episode_from_minus_infinity_applies():
    got = run([fill("f1", "k1", quantity=10)], [order("k1", quantity=10)], episodes=[(-math.inf, T0 + 1)])
    assert rules(got) == ["KILL_SWITCH_ACTIVE"] and "episode before the record to" in got[0].detail


def test_check_fills_when_tighter_limits_loaded_then_fills_before_are_clean_and_after_breach():
    tight = {**LIMITS, "max_order_notional": 10_000, "restricted": ["RRC", "XOM"]}
    timeline = [(T0 + 100, "sha-tight", tight), (T0 - 3600, "sha-base", LIMITS)]  # given unsorted
    orders = [order("a", quantity=100), order("b", quantity=100), order("x1", "XOM", "SELL", 10)]
    orders.append(order("x2", "XOM", "SELL", 10))
    fills = [
        fill("f1", "a", quantity=100, ts=T0 + 99.9),  # 15,000 under the 250,000 in force then
        fill("f2", "b", quantity=100, ts=T0 + 100),  # 15,000 over the 10,000 loaded at that instant
        fill("f3", "x1", "XOM", "SELL", 10, ts=T0 + 50),
        fill("f4", "x2", "XOM", "SELL", 10, ts=T0 + 150),
    ]
    got = run(fills, orders, timeline=timeline)
    assert [(v.rule, v.fill_id, v.limits_sha256) for v in got] == [
        ("NOTIONAL_EXCEEDS_MAX", "f2", "sha-tight"),
        ("RESTRICTED_INSTRUMENT", "f4", "sha-tight"),
    ]
    assert "max=10000, notional=15000" in got[0].detail


def test_check_fills_when_fill_precedes_every_limits_entry_then_no_limits():
    got = run([fill("f1", "a", quantity=10, ts=T0 - 7200)], [order("a", quantity=10)])
    assert rules(got) == ["NO_LIMITS"] and got[0].limits_sha256 == ""
    assert "precedes the first limits on record (2020-03-02T14:00:00+00:00)" in got[0].detail


def test_check_fills_when_record_is_inconsistent_then_integrity_violations():
    orders = [order("o1", quantity=100), order("o2", "MSFT", "BUY", 10)]
    fills = [
        fill("f1", "o1", quantity=80),
        fill("f2", "o1", quantity=30, ts=T0 + 1),  # 110 of 100
        fill("f3", "ghost", quantity=5, ts=T0 + 2),  # no such order
        fill("f4", "o2", "MSFT", "SELL", 10, ts=T0 + 3),  # the order was a BUY
        fill("f4", "o2", "MSFT", "SELL", 10, ts=T0 + 4),  # the same fill again
    ]
    got = run(fills, orders)
    assert [(v.rule, v.fill_id) for v in got] == [
        ("OVERFILL", "f2"),
        ("UNKNOWN_ORDER", "f3"),
        ("FILL_MISMATCH", "f4"),
        ("DUPLICATE_FILL", "f4"),
        ("FILL_MISMATCH", "f4"),
        ("OVERFILL", "f4"),
    ]
    assert got[0].detail == "filled=110 > quantity=100 (this fill 30)"
    assert got[2].detail == "fill SELL MSFT, its order BUY MSFT"


def test_check_fills_when_no_trusted_mark_then_no_mark_once_and_other_rules_still_apply():
    got = run(
        [fill("f1", "r1", "RRC", quantity=5), fill("f2", "r1", "RRC", quantity=5, ts=T0 + 1)],
        [order("r1", "RRC", quantity=10, price=10.0)],
        marks={(DAY, "AAPL"): 150.0},
    )
    assert rules(got) == ["RESTRICTED_INSTRUMENT", "NO_MARK"]
    assert got[1].detail == "no trusted close of RRC on 2020-03-02: notional and band unchecked"


def test_check_fills_when_fills_out_of_time_order_then_positions_rebuilt_in_time_order():
    orders = [order("s", "MSFT", "SELL", 8000), order("b", "MSFT", "BUY", 8000)]
    # rows in the wrong order: by time the SELL comes first (15,000 -> 7,000 -> 15,000), never beyond
    # 20,000; in row order the BUY would reach 23,000
    fills = [fill("fb", "b", "MSFT", "BUY", 8000, ts=T0 + 5), fill("fs", "s", "MSFT", "SELL", 8000, ts=T0)]
    assert run(fills, orders, initial={"MSFT": 15000}) == []
    in_row_order = [{**fills[0], "ts": T0 - 1}, fills[1]]
    assert rules(run(in_row_order, orders, initial={"MSFT": 15000})) == ["POSITION_EXCEEDS_MAX"]


@pytest.mark.parametrize(
    "ts",
    [
        T0,
        "2020-03-02T15:00:00+00:00",
        "2020-03-02T10:00:00-05:00",
        pd.Timestamp("2020-03-02 15:00", tz="UTC"),
        datetime(2020, 3, 2, 15, 0, tzinfo=UTC),
    ],
)
def test_check_fills_when_ts_given_as_epoch_iso_or_aware_datetime_then_same_instant(ts):
    got = run([fill("f1", "k1", quantity=10, ts=ts)], [order("k1", quantity=10)], episodes=[(T0, T0 + 1)])
    assert rules(got) == ["KILL_SWITCH_ACTIVE"] and got[0].ts == T0


def test_check_fills_when_marks_given_as_wide_long_frame_or_text_days_then_same_result():
    o = [order("big", quantity=1700), order("m", "MSFT", quantity=10)]
    f = [fill("f1", "big", quantity=1700), fill("f2", "m", "MSFT", quantity=10, ts=T0 + 1)]
    wide = pd.DataFrame(
        {"AAPL": [140.0, 150.0], "MSFT": [29.0, float("nan")]}, index=[date(2020, 2, 28), DAY]
    )
    long = pd.DataFrame({"date": [DAY, DAY], "ticker": ["AAPL", "MSFT"], "close": [150.0, None]})
    text_days = {("2020-03-02", "AAPL"): 150.0}
    expected = ["NOTIONAL_EXCEEDS_MAX", "NO_MARK"]  # MSFT has no close that day (a pivot's NaN)
    for marks in (wide, long, text_days):
        assert rules(run(f, o, marks=marks)) == expected
    timestamp_index = wide.set_axis(pd.to_datetime(wide.index))
    assert rules(run(f, o, marks=timestamp_index)) == expected


def test_check_fills_when_limits_given_as_the_whole_data_json_then_unwrapped():
    data = json.loads((ROOT / "policies" / "data.json").read_text())
    got = run(
        [fill("f1", "r1", "RRC", quantity=10)], [order("r1", "RRC", quantity=10)], timeline=[(0.0, "s", data)]
    )
    assert rules(got) == ["RESTRICTED_INSTRUMENT"]


@pytest.mark.parametrize(
    "change, field, value",
    [
        (lambda f, o: (f.drop(columns="ts"), o), "fills.ts", None),
        (lambda f, o: (f, o.drop(columns="decision_price")), "orders.decision_price", None),
        (lambda f, o: (f.assign(quantity=0.0), o), "fills[0].quantity", 0.0),
        (lambda f, o: (f.assign(quantity=float("nan")), o), "fills[0].quantity", "nan"),
        (lambda f, o: (f, o.assign(quantity=-5.0)), "orders[0].quantity", -5.0),
        (lambda f, o: (f.assign(side="HOLD"), o), "fills[0].side", "HOLD"),
        (lambda f, o: (f.assign(ts="2020-03-02T15:00:00"), o), "fills[0].ts", "2020-03-02 15:00:00"),
        (lambda f, o: (f.assign(ts="yesterday"), o), "fills[0].ts", "yesterday"),
        (lambda f, o: (f.assign(exec_day="2020-13-01"), o), "fills[0].exec_day", "2020-13-01"),
        (lambda f, o: (f.assign(ticker=""), o), "fills[0].ticker", ""),
        (lambda f, o: (f, pd.concat([o, o])), "orders[1].order_id", "o1"),
    ],
)
def test_check_fills_when_input_is_malformed_then_input_error_names_field_and_value(change, field, value):
    fills, orders = change(pd.DataFrame([fill("f1", "o1")]), pd.DataFrame([order("o1")]))
    with pytest.raises(InputError) as err:
        check_fills(fills, orders, TIMELINE, MARKS, ESG, [])
    assert err.value.field == field
    if value == "nan":
        assert math.isnan(err.value.value)
    else:
        assert err.value.value == value


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"limits_timeline": []}, "limits_timeline"),
        (
            {"limits_timeline": [(T0, "s", {**LIMITS, "price_band": None})]},
            "limits_timeline[0].limits.price_band",
        ),
        ({"limits_timeline": [(T0, "s", {"max_order_notional": 1})]}, "limits_timeline[0].limits.restricted"),
        ({"limits_timeline": [(T0, "s")]}, "limits_timeline[0]"),
        ({"limits_timeline": [(T0, "s", "strict")]}, "limits_timeline[0].limits"),
        (
            {"limits_timeline": [(T0, "s", {**LIMITS, "restricted": "RRC"})]},
            "limits_timeline[0].limits.restricted",
        ),
        (
            {"limits_timeline": [(T0, "s", {**LIMITS, "price_band": -0.1})]},
            "limits_timeline[0].limits.price_band",
        ),
        ({"kill_switch_episodes": [T0]}, "kill_switch_episodes[0]"),
        ({"marks": [150.0]}, "marks"),
        ({"fills": [fill("f1", "o1")]}, "fills"),
        ({"marks": {(DAY, "AAPL"): -1.0}}, "marks[(datetime.date(2020, 3, 2), 'AAPL')]"),
        ({"marks": {"AAPL": 150.0}}, "marks"),
        ({"kill_switch_episodes": [(T0, T0 - 1)]}, "kill_switch_episodes[0].end"),
        ({"esg": {"AAPL": "high"}}, "esg[AAPL]"),
        ({"initial_positions": {"AAPL": math.inf}}, "initial_positions[AAPL]"),
    ],
)
def test_check_fills_when_limits_marks_or_episodes_malformed_then_input_error(kwargs, field):
    args = {
        "fills": pd.DataFrame([fill("f1", "o1")]),
        "orders": pd.DataFrame([order("o1")]),
        "limits_timeline": TIMELINE,
        "marks": MARKS,
        "esg": ESG,
        "kill_switch_episodes": [],
        **kwargs,
    }
    with pytest.raises(InputError) as err:
        check_fills(**args)
    assert err.value.field == field


def test_summary_when_violations_then_counts_by_rule_first_examples_and_json():
    fills = [fill(f"f{i}", f"r{i}", "RRC", quantity=1, ts=T0 + i) for i in range(5)]
    got = run(fills, [order(f"r{i}", "RRC", quantity=1) for i in range(5)])
    out = summary(got, examples=2)
    assert out["violations"] == 5 and out["by_rule"] == {"RESTRICTED_INSTRUMENT": 5}
    assert [e["fill_id"] for e in out["examples"]["RESTRICTED_INSTRUMENT"]] == ["f0", "f1"]
    assert json.loads(json.dumps(out)) == out
    assert summary([]) == {"violations": 0, "by_rule": {}, "examples": {}}


def test_surveillance_module_when_scanned_then_imports_nothing_of_the_worker():
    """Independence: the rules are written from the limits' definitions, not the worker's engine or state."""
    tree = ast.parse((ROOT / "execution" / "surveillance.py").read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in modules if m and m.split(".")[0] == "execution"}
    assert "opa_eval" not in modules and "regopy" not in modules


# --- agreement with the policy on the cases both can judge ---------------------------------------------
def _policy():
    pytest.importorskip("opa_eval")
    from execution.policy import PolicyEngine

    return PolicyEngine()


def test_check_fills_when_fuzzed_single_orders_then_rules_match_the_policys_denials():
    """A fully filled order from a known position, judged by the worker's policy before the fact and by this
    check after it (same marks, no shares in flight, fresh risk): the same reason codes, order by order.
    Agreement on every case both can judge; the check's code shares nothing with the policy's."""
    from execution.policy import RiskContext
    from quantbridge.messages import SubmitOrder

    engine, rng = _policy(), random.Random(13)
    limits = engine.data["limits"]
    cases, expected = [], []
    for i in range(300):
        ticker = rng.choice(["AAPL", "MSFT", "XOM", "RRC"])
        mark = MARKS[(DAY, ticker)]
        side = rng.choice(["BUY", "SELL"])
        quantity = float(rng.choice([1, 50, 500, 1600, 1700, 5000, 9000, 20001, rng.randint(1, 25000)]))
        position = float(rng.choice([0, 0, 500, -500, 15000, -15000, rng.randint(-20000, 20000)]))
        price = round(mark * rng.uniform(0.85, 1.15), 4)
        kill = rng.random() < 0.3
        sub = SubmitOrder(f"o{i}", "2020-03-01T21:00:00+00:00", "fuzz", ticker, side, quantity, price)
        context = RiskContext(mark=mark, position=position, kill_switch=kill, esg_score=ESG[ticker])
        cases.append((sub, context))
        got = run(
            [fill(f"f{i}", f"o{i}", ticker, side, quantity)],
            [order(f"o{i}", ticker, side, quantity, price)],
            timeline=[(0.0, engine.revision, limits)],
            episodes=[(T0, None)] if kill else [],
            initial={ticker: position},
        )
        expected.append(sorted(rules(got)))
    verdicts = engine.evaluate_many(cases)
    denied = [sorted(r.split(":")[0] for r in v.reasons) for v in verdicts]
    assert denied == expected
    assert sum(1 for d in denied if d) > 100  # the corpus reaches every rule, not only clean orders
    assert {r for d in denied for r in d} == {
        "RESTRICTED_INSTRUMENT",
        "NOTIONAL_EXCEEDS_MAX",
        "PRICE_BAND",
        "POSITION_EXCEEDS_MAX",
        "ESG_EXCLUDED",
        "KILL_SWITCH_ACTIVE",
    }
