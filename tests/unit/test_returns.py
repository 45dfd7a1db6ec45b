"""The one daily-returns function: quarantined spans and gaps dropped (never filled), loud when empty."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from quantbridge.returns import daily_returns

DAYS = [date(2020, 1, 2), date(2020, 1, 3), date(2020, 1, 7), date(2020, 1, 8), date(2020, 1, 9)]


def _closes(**columns: list[float]) -> pd.DataFrame:
    return pd.DataFrame(columns, index=DAYS)


def test_daily_returns_when_clean_then_simple_returns_between_consecutive_lake_dates():
    closes = _closes(A=[100.0, 110.0, 99.0, 99.0, 108.9], B=[10.0, 10.0, 11.0, 12.1, 12.1])

    r = daily_returns(closes)

    assert list(r.index) == DAYS[1:] and list(r.columns) == ["A", "B"]
    assert r["A"].tolist() == pytest.approx([0.1, -0.1, 0.0, 0.1])
    assert r["B"].tolist() == pytest.approx([0.0, 0.1, 0.1, 0.0])


def test_daily_returns_when_a_quarantined_date_lies_between_two_lake_dates_then_that_return_is_dropped():
    closes = _closes(A=[100.0, 110.0, 99.0, 99.0, 108.9])

    r = daily_returns(closes, [date(2020, 1, 6)])  # 2020-01-06 quarantined: the 3 -> 7 move spans it

    assert list(r.index) == [date(2020, 1, 3), date(2020, 1, 8), date(2020, 1, 9)]
    assert r["A"].tolist() == pytest.approx([0.1, 0.0, 0.1])


def test_daily_returns_when_a_quarantined_date_is_a_lake_date_then_both_returns_touching_it_are_dropped():
    closes = _closes(A=[100.0, 110.0, 99.0, 99.0, 108.9])

    r = daily_returns(closes, ["2020-01-07"])  # strings are accepted; a price on that date is untrusted

    assert list(r.index) == [date(2020, 1, 3), date(2020, 1, 9)]


def test_daily_returns_when_a_price_is_missing_then_both_returns_around_it_dropped_not_filled():
    closes = _closes(A=[100.0, 110.0, np.nan, 121.0, 133.1], B=[1.0, 1.1, 1.21, 1.331, 1.4641])

    r = daily_returns(closes.iloc[::-1])  # any order in, ascending out

    assert list(r.index) == [date(2020, 1, 3), date(2020, 1, 9)]
    assert r["A"].tolist() == pytest.approx([0.1, 0.1])  # no 2-day move from 110 to 121 appears
    assert r["B"].tolist() == pytest.approx([0.1, 0.1])


def test_daily_returns_when_a_price_is_zero_then_the_infinite_return_is_dropped():
    closes = _closes(A=[0.0, 1.0, 1.1, 1.21, 1.331])

    assert list(daily_returns(closes).index) == DAYS[2:]


@pytest.mark.parametrize(
    ("closes", "quarantined", "value"),
    [
        (pd.DataFrame({"A": [1.0]}, index=DAYS[:1]), (), "1 dates x 1 tickers"),
        (pd.DataFrame(index=DAYS), (), "5 dates x 0 tickers"),
        (
            pd.DataFrame({"A": [1.0, np.nan, 1.2, np.nan, 1.3]}, index=DAYS),
            (),
            "5 dates x 1 tickers, 0 quarantined",
        ),
        (
            pd.DataFrame({"A": [1.0, 1.1]}, index=DAYS[1:3]),
            [date(2020, 1, 6)],
            "2 dates x 1 tickers, 1 quarantined",
        ),
    ],
)
def test_daily_returns_when_nothing_is_left_then_input_error_names_closes_and_what_it_held(
    closes, quarantined, value
):
    with pytest.raises(InputError, match="closes=") as info:
        daily_returns(closes, quarantined)

    assert info.value.field == "closes" and value in str(info.value.value)
    assert "qb ingest" in str(info.value)
