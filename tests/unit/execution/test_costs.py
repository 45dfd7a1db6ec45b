"""Execution cost by venue (execution/costs.py): plain dicts in, plain rows out, figures worked by hand."""

from __future__ import annotations

import pytest

from execution.costs import venue_costs


def fill(venue, quantity, price, fee, slippage_bps, **extra):
    return {
        "venue": venue,
        "quantity": quantity,
        "price": price,
        "fee": fee,
        "slippage_bps": slippage_bps,
        **extra,
    }


def test_venue_costs_when_two_venues_then_money_and_bps_worked_by_hand_cheapest_first():
    rows = venue_costs(
        [
            fill("ALPHA", 100, 10.0, 0.05, 2.0),  # notional 1,000: slippage cost 0.20
            fill("ALPHA", 300, 20.0, 0.60, 4.0),  # notional 6,000: slippage cost 2.40
            fill("BETA", 200, 50.0, 1.50, 0.5),  # notional 10,000: slippage cost 0.50
        ]
    )
    assert [r["venue"] for r in rows] == ["BETA", "ALPHA"]  # 2.0 bp < 4.5 bp
    beta, alpha = rows
    assert alpha == pytest.approx(
        {
            "venue": "ALPHA",
            "fills": 2,
            "quantity": 400.0,
            "notional": 7_000.0,
            "fees": 0.65,
            "slippage_cost": 2.60,
            "fee_bps": 0.65 / 7_000 * 1e4,  # 0.9286
            "slippage_bps": 2.60 / 7_000 * 1e4,  # notional-weighted: (2 x 1,000 + 4 x 6,000) / 7,000 = 3.714
            "cost_bps": (0.65 + 2.60) / 7_000 * 1e4,  # the whole cost over the notional: 4.643
        }
    )
    assert beta == pytest.approx(
        {
            "venue": "BETA",
            "fills": 1,
            "quantity": 200.0,
            "notional": 10_000.0,
            "fees": 1.5,
            "slippage_cost": 0.5,
            "fee_bps": 1.5,
            "slippage_bps": 0.5,
            "cost_bps": 2.0,
        }
    )
    assert isinstance(alpha["fills"], int)


def test_venue_costs_when_stream_text_then_parsed_like_numbers():
    as_text = venue_costs([fill("ALPHA", "100", "10.0", "0.05", "2.0", fill_id="f1", ts="2026-01-05")])
    assert as_text == venue_costs([fill("ALPHA", 100, 10.0, 0.05, 2.0)])
    assert as_text[0]["notional"] == 1_000.0 and as_text[0]["fee_bps"] == pytest.approx(0.5)


def test_venue_costs_when_equal_cost_then_ordered_by_venue_name():
    rows = venue_costs([fill("ZULU", 10, 10.0, 0.01, 1.0), fill("ALPHA", 20, 5.0, 0.01, 1.0)])
    assert [r["venue"] for r in rows] == ["ALPHA", "ZULU"]


@pytest.mark.parametrize(
    "bad",
    [
        {"quantity": 10, "price": 10.0, "fee": 0.1, "slippage_bps": 1.0},  # no venue
        fill("", 10, 10.0, 0.1, 1.0),
        fill("ALPHA", None, 10.0, 0.1, 1.0),
        fill("ALPHA", 10, "", 0.1, 1.0),
        fill("ALPHA", 10, 10.0, "n/a", 1.0),
        fill("ALPHA", 10, 10.0, 0.1, "nan"),
        fill("ALPHA", 10, 10.0, 0.1, float("inf")),
        fill("ALPHA", 0, 10.0, 0.1, 1.0),  # notional 0: no bps to speak of
        fill("ALPHA", 10, -1.0, 0.1, 1.0),
        {"venue": "ALPHA", "quantity": 10, "fee": 0.1, "slippage_bps": 1.0},  # no price
    ],
)
def test_venue_costs_when_a_field_is_missing_or_not_a_number_then_fill_left_out(bad):
    good = fill("ALPHA", 100, 10.0, 0.05, 2.0)
    assert venue_costs([bad]) == []
    assert venue_costs([good, bad]) == venue_costs([good])


def test_venue_costs_when_no_fills_then_empty():
    assert venue_costs([]) == []


def test_venue_costs_when_fill_fields_missing_then_row_skipped_not_guessed():
    rows = venue_costs(
        [
            {"venue": "ALPHA", "quantity": 10.0, "notional": None, "fee": 0.1, "slippage_bps": 1.0},
            {"venue": "", "quantity": 10.0, "notional": 100.0, "fee": 0.1, "slippage_bps": 1.0},
        ]
    )
    assert rows == []
