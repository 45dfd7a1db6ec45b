from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from marketdata.feed import FileFeed, SkfolioFeed, fetch_or_raise, skfolio_factor_prices
from quantbridge.errors import InputError, NoDataError


def test_skfolio_feed_when_quarter_requested_then_one_row_per_trading_day_and_ticker():
    frame = SkfolioFeed().fetch(date(2020, 1, 2), date(2020, 3, 31))
    per_day = frame.groupby("date").size()
    assert len(per_day) == 62 and set(per_day) == {20}
    assert list(frame.columns) == ["date", "ticker", "close"]
    assert frame["close"].dtype == "float64" and (frame["close"] > 0).all()
    assert SkfolioFeed().extent() == (date(1990, 1, 2), date(2022, 12, 28))


def test_skfolio_feed_when_weekend_then_no_rows_and_fetch_or_raise_explains():
    feed = SkfolioFeed()
    assert feed.fetch(date(2020, 1, 4), date(2020, 1, 5)).empty
    with pytest.raises(NoDataError, match="2020-01-04.*holiday"):
        fetch_or_raise(feed, date(2020, 1, 4), date(2020, 1, 5))


def test_skfolio_feed_when_universe_has_unknown_ticker_then_error_names_it():
    with pytest.raises(InputError, match="ZZZZ"):
        SkfolioFeed(("AAPL", "ZZZZ")).fetch(date(2020, 1, 2), date(2020, 1, 3))
    assert set(SkfolioFeed(("AAPL", "MSFT")).fetch(date(2020, 1, 2), date(2020, 1, 3))["ticker"]) == {
        "AAPL",
        "MSFT",
    }


def test_feed_when_start_after_end_then_error_names_start():
    with pytest.raises(InputError, match="start='2020-02-01'"):
        SkfolioFeed().fetch(date(2020, 2, 1), date(2020, 1, 1))


def test_factor_prices_when_loaded_then_real_etf_closes():
    frame = skfolio_factor_prices()
    assert set(frame["ticker"]) == {"MTUM", "QUAL", "SIZE", "USMV", "VLUE"}
    assert frame["date"].min() == date(2014, 1, 2)


def _csv(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_feed_when_csv_then_rows_in_range_typed_and_sorted(tmp_path):
    path = _csv(
        tmp_path,
        "Date,Ticker,Close\n2021-01-05,MSFT,2\n2021-01-04,AAPL,1.5\n2021-01-04,MSFT,\n2021-02-01,X,3\n",
    )
    frame = FileFeed(path).fetch(date(2021, 1, 1), date(2021, 1, 31))
    assert frame.to_dict("records")[:2] == [
        {"date": date(2021, 1, 4), "ticker": "AAPL", "close": 1.5},
        {"date": date(2021, 1, 4), "ticker": "MSFT", "close": pytest.approx(float("nan"), nan_ok=True)},
    ]
    assert len(frame) == 3  # the empty close stays, for the gates to quarantine


def test_file_feed_when_parquet_then_same_as_csv(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"date": ["2021-01-04"], "ticker": ["AAPL"], "close": [1.0]}).to_parquet(path)
    assert FileFeed(path).fetch(date(2021, 1, 4), date(2021, 1, 4))["close"].tolist() == [1.0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("date,ticker\n2021-01-04,A\n", "missing: close"),
        ("date,ticker,close,volume\n2021-01-04,A,1,5\n", "unexpected: volume"),
        ("date,ticker,close\n2021-13-45,A,1\n", "row 2 date='2021-13-45'"),
        ("date,ticker,close\n2021-01-04,A,abc\n", "row 2 close='abc'"),
        ("date,ticker,close\n,A,1\n", "row 2 date=None"),
    ],
)
def test_file_feed_when_file_malformed_then_error_names_row_and_value(tmp_path, text, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        FileFeed(_csv(tmp_path, text)).fetch(date(2021, 1, 1), date(2021, 12, 31))


def test_file_feed_when_path_missing_or_wrong_kind_then_error_names_source(tmp_path):
    with pytest.raises(InputError, match="--source"):
        FileFeed(tmp_path / "nope.csv")
    with pytest.raises(InputError, match=".csv or .parquet"):
        FileFeed(_csv(tmp_path, "x", name="prices.txt"))
