"""SubmitOrder refuses what would pass float() or a loose regex but is not an order (hostile input)."""

from __future__ import annotations

import pytest

from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder

GOOD = {
    "order_id": "o|1",
    "ts": "2026-01-05T14:30:00+00:00",
    "strategy": "gbm_mv ✓",
    "ticker": "BRK.B",
    "side": "BUY",
    "quantity": "10",
    "reference_price": "1.5e2",
}


def test_from_dict_when_fields_plain_then_parsed_with_pipes_and_unicode_kept():
    order = SubmitOrder.from_dict(GOOD)
    assert order.order_id == "o|1" and order.strategy == "gbm_mv ✓" and order.reference_price == 150.0


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("ticker", "AAPL\n", "ticker"),
        ("quantity", "1_0", "quantity"),
        ("quantity", "١٠", "quantity"),
        ("quantity", " 7 ", "quantity"),
        ("reference_price", "nan", "reference_price"),
        ("order_id", "a\x00b", "order_id"),
        ("order_id", "ok\nFAKE LOG LINE", "order_id"),
        ("strategy", "\x1b[31mred", "strategy"),
        ("strategy", "abc\u202edcba", "strategy"),
        ("ts", "2026\r", "ts"),
    ],
)
def test_from_dict_when_field_hostile_then_error_names_it(field, value, named):
    with pytest.raises(InputError, match=named):
        SubmitOrder.from_dict({**GOOD, field: value})
