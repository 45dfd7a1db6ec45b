"""The trust rule of qb:marks, shared by the execution worker and the VaR sensor."""

from __future__ import annotations

import math

from quantbridge.marks import FROM_CLOSE, FROM_MARKS, mark_price, marks_with_source, trusted_marks


def test_mark_price_when_value_is_not_a_positive_finite_number_then_none():
    assert mark_price("51.5") == 51.5 and mark_price(b"3") == 3.0
    for bad in ("nan", "inf", "-inf", "0", "-3", None, b"\xff", "abc", math.nan):
        assert mark_price(bad) is None, bad


def test_marks_with_source_when_mark_unusable_then_the_lake_close_and_says_so():
    live = {"A": "51.5", "B": "nan", "C": None}
    out = marks_with_source(live, {"A": 50.0, "B": 40.0})
    assert out == {"A": (51.5, FROM_MARKS), "B": (40.0, FROM_CLOSE), "C": (None, None)}
    assert trusted_marks(live, {"A": 50.0, "B": 40.0}) == {"A": 51.5, "B": 40.0, "C": None}
