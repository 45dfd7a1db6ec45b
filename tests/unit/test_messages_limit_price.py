"""``SubmitOrder.limit_price``: optional, positive and finite when given, round-trips, absent when None."""

from __future__ import annotations

import math

import pytest

from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder


def _order(**overrides):
    fields = dict(
        order_id="op:1",
        ts="2026-01-05T14:30:00+00:00",
        strategy="operator",
        ticker="AAPL",
        side="BUY",
        quantity=10.0,
        reference_price=150.0,
    )
    return SubmitOrder(**{**fields, **overrides})


def test_submit_order_when_limit_price_given_then_round_trips_through_the_stream_fields():
    order = _order(limit_price=151.25)

    fields = order.to_dict()

    assert fields["limit_price"] == "151.25"
    assert SubmitOrder.from_dict(fields) == order


def test_submit_order_when_no_limit_price_then_field_absent_and_round_trips_as_none():
    order = _order()

    fields = order.to_dict()

    assert "limit_price" not in fields
    assert SubmitOrder.from_dict(fields).limit_price is None and SubmitOrder.from_dict(fields) == order


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, True, "150"])
def test_submit_order_when_limit_price_not_positive_finite_number_then_input_error_naming_it(bad):
    with pytest.raises(InputError, match="limit_price=") as info:
        _order(limit_price=bad)
    assert info.value.field == "limit_price"


@pytest.mark.parametrize("raw", ["abc", "", "nan", "-5"])
def test_submit_order_from_dict_when_limit_price_text_invalid_then_input_error_naming_it(raw):
    fields = {**_order().to_dict(), "limit_price": raw}

    with pytest.raises(InputError) as info:
        SubmitOrder.from_dict(fields)

    assert info.value.field == "limit_price"
