"""Differential check of the policy engines: a seeded fuzzed corpus of orders through regorus (the engine
the worker runs) and regopy, on the project's own Rego files; no verdict may differ.

A verdict is the allow flag and the sorted reason strings. The numbers inside the reasons are compared to 15
significant digits (what a double guarantees): regopy prints some floats with 16 (``8.539999999999999``,
``5124700.069999999``) where regorus prints ``8.54``, ``5124700.07``; everything else is compared as text.

regopy's ``min`` compares numbers as text (``min([3044, 843])`` is 3044, ``min([200, 100])`` 100), so the
``reducible=`` figure of KILL_SWITCH_ACTIVE is masked in the comparison with regopy, and checked against
regorus's own figure in a test of its own. Quantities stay at 0.5 shares or more: at 0.001 shares regorus
gives in_flight 0.001 where regopy's double arithmetic gives 0.00100000000020373.
The corpus's numbers have at most 6 decimals: regopy (1.5.2) rounds each float of its input to 6 decimal
places (as C's ``%f``: 0.2499999 reaches the policy as 0.25), regorus keeps the double (see the last test).
"""

from __future__ import annotations

import importlib.util
import random
import re

import pytest

from execution.policy import PolicyEngine, PolicyVerdict, RiskContext
from quantbridge.messages import SubmitOrder

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("regopy") is None or importlib.util.find_spec("opa_eval") is None,
    reason="the differential test needs both regopy and opa-eval (pinned in requirements.txt)",
)

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
REDUCIBLE = re.compile(r"reducible=\S+")
LIMITS = PolicyEngine(engine="regopy").data["limits"] if importlib.util.find_spec("regopy") else {}


def same_number_text(verdict: PolicyVerdict) -> tuple[bool, tuple[str, ...]]:
    """The verdict with the numbers of its reasons to 15 significant digits."""
    return verdict.allowed, tuple(
        NUMBER.sub(lambda m: f"{float(m.group()):.15g}", r) for r in verdict.reasons
    )


def as_regopy_sees(verdict: PolicyVerdict) -> tuple[bool, tuple[str, ...]]:
    """:func:`same_number_text` less the figure of regopy's broken ``min`` (KILL_SWITCH's reducible)."""
    allowed, reasons = same_number_text(verdict)
    return allowed, tuple(REDUCIBLE.sub("reducible=?", r) for r in reasons)


def dec6(x: float) -> float:
    return round(x, 6)


def fuzzed(n: int, seed: int) -> list[tuple[SubmitOrder, RiskContext]]:
    """Orders around every limit: restricted and unknown tickers, quantities from 0.5 up, notional and
    positions around their maxima, orders in flight, kill switch, stale risk, ESG around the floor, prices
    around the band."""
    rng = random.Random(seed)
    max_notional, max_position = LIMITS["max_order_notional"], LIMITS["max_position_shares"]
    floor, band = LIMITS["min_esg_score"], LIMITS["price_band"]
    tickers = ["AAPL", "MSFT", "XOM", "ZZZQ", *LIMITS["restricted"]]
    items = []
    for i in range(n):
        mark = rng.choice([0.01, 1.0, 9.99, 38.15, 100.0, 187.32, 1234.57, dec6(rng.uniform(0.5, 5000))])
        quantity = rng.choice(
            [
                0.5,
                1.0,
                float(rng.randint(1, 5000)),
                round(max_notional / mark, rng.choice([0, 2])),  # notional at the max, just under or over
                round(max_notional / mark) + rng.choice([-1.0, 1.0]),
                float(max_position),
                1e6,
                1e9,
            ]
        )
        quantity = dec6(max(quantity, 0.5))
        price = mark * rng.choice(
            [1.0, 1 + band, 1 - band, 1 + band + 1e-4, 1 - band - 1e-4, rng.uniform(0.5, 1.5)]
        )
        price = dec6(max(round(price, rng.choice([2, 4])), 1e-6))
        position = rng.choice(
            [0.0, float(rng.randint(-25_000, 25_000)), float(max_position), -float(max_position), quantity]
        )
        stale = rng.random() < 0.15
        items.append(
            (
                SubmitOrder(
                    order_id=f"f{i}",
                    ts="t",
                    strategy="fuzz",
                    ticker=rng.choice(tickers),
                    side=rng.choice(("BUY", "SELL")),
                    quantity=quantity,
                    reference_price=price,
                ),
                RiskContext(
                    mark=mark,
                    position=position,
                    pending_buy=rng.choice([0.0, 0.0, float(rng.randint(1, 3000)), quantity]),
                    pending_sell=rng.choice([0.0, 0.0, float(rng.randint(1, 3000)), abs(position)]),
                    kill_switch=rng.random() < 0.15,
                    risk_stale=stale,
                    risk_age_s=rng.choice([None, dec6(rng.uniform(0, 900)), 90.0]) if stale else 1.5,
                    risk_max_age_s=rng.choice([90.0, 30.0, 300.0]),
                    esg_score=rng.choice(
                        [None, floor, floor - 1e-4, floor + 0.01, 0.0, 1.0, dec6(rng.random())]
                    ),
                ),
            )
        )
    return items


@pytest.fixture(scope="module")
def engines() -> tuple[PolicyEngine, PolicyEngine]:
    return PolicyEngine(engine="regorus"), PolicyEngine(engine="regopy")


@pytest.mark.parametrize("seed", [16, 1601])
def test_differential_when_fuzzed_batch_then_regorus_and_regopy_agree_on_every_verdict(engines, seed):
    regorus, regopy = engines
    items = fuzzed(300, seed)
    chosen, second = regorus.evaluate_many(items), regopy.evaluate_many(items)
    differ = [
        (order.order_id, a, b)
        for (order, _), a, b in zip(items, chosen, second, strict=True)
        if as_regopy_sees(a) != as_regopy_sees(b)
    ]
    assert differ == []
    # The corpus reaches every rule and both outcomes, so the agreement is not on trivial verdicts.
    codes = {reason.split(":")[0] for verdict in chosen for reason in verdict.reasons}
    assert codes == {
        "RESTRICTED_INSTRUMENT",
        "NOTIONAL_EXCEEDS_MAX",
        "PRICE_BAND",
        "POSITION_EXCEEDS_MAX",
        "ESG_EXCLUDED",
        "KILL_SWITCH_ACTIVE",
        "RISK_STALE",
    }
    assert 0.1 < sum(v.allowed for v in chosen) / len(chosen) < 0.9, sum(v.allowed for v in chosen)


def test_differential_when_one_order_at_a_time_then_the_same_verdicts_as_the_batch(engines):
    regorus, regopy = engines
    items = fuzzed(60, 7)
    singles = [regorus.evaluate(*item) for item in items]
    assert singles == regorus.evaluate_many(items)
    assert [as_regopy_sees(v) for v in singles] == [as_regopy_sees(regopy.evaluate(*i)) for i in items]


def test_differential_when_numbers_printed_differently_then_only_their_text_differs():
    # The one difference found: regopy's 16 significant digits against the shortest form, same double.
    a = PolicyVerdict(False, ("PRICE_BAND: band=0.1, mark=10, reference_price=8.539999999999999",))
    b = PolicyVerdict(False, ("PRICE_BAND: band=0.1, mark=10, reference_price=8.54",))
    c = PolicyVerdict(False, ("PRICE_BAND: band=0.1, mark=10, reference_price=8.55",))
    assert (
        a != b and same_number_text(a) == same_number_text(b) and same_number_text(b) != same_number_text(c)
    )


def test_differential_when_a_number_has_more_than_6_decimals_then_regorus_keeps_it_and_regopy_rounds_it(
    engines,
):
    # Why the corpus stays within 6 decimals: regopy 1.5.2 reads 0.2499999 as 0.25 and lets the
    # order pass the 0.25 ESG floor; regorus (like OPA) sees 0.2499999. If regopy is fixed this test fails:
    # then widen the corpus.
    regorus, regopy = engines
    item = (
        SubmitOrder(
            order_id="p", ts="t", strategy="s", ticker="AAPL", side="BUY", quantity=1.0, reference_price=10.0
        ),
        RiskContext(mark=10.0, esg_score=0.2499999),
    )
    assert regorus.evaluate(*item).reasons == ("ESG_EXCLUDED: min=0.25, score=0.2499999",)
    assert regopy.evaluate(*item).allowed


@pytest.mark.parametrize(
    "side, quantity, position, reducible",
    [("SELL", 3044.0, 843.0, 843), ("SELL", 200.0, 100.0, 100), ("BUY", 1e9, -3444.0, 3444)],
)
def test_differential_when_kill_switch_reducible_then_regorus_takes_the_numeric_min(
    engines, side, quantity, position, reducible
):
    # regopy's min compares as text: min([3044, 843]) is 3044 there, which is why the comparison masks it.
    regorus, regopy = engines
    item = (
        SubmitOrder(
            order_id="k",
            ts="t",
            strategy="s",
            ticker="AAPL",
            side=side,
            quantity=quantity,
            reference_price=1.0,
        ),
        RiskContext(mark=1.0, position=position, kill_switch=True, esg_score=0.5),
    )
    (kill,) = [r for r in regorus.evaluate(*item).reasons if r.startswith("KILL_SWITCH_ACTIVE")]
    assert kill.endswith(f"reducible={reducible}")
    assert as_regopy_sees(regorus.evaluate(*item)) == as_regopy_sees(regopy.evaluate(*item))
