"""Quality gates on real prices (a week of the bundled S&P 500 feed) and on corrupted copies of it."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from marketdata.feed import SkfolioFeed
from marketdata.quality import GateLimits, enrich, validate_prices

DAY = date(2020, 3, 2)


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history of the 15 trading days before DAY, batch of DAY) from the real feed."""
    frame = SkfolioFeed().fetch(date(2020, 2, 1), DAY)
    return frame[frame["date"] < DAY].reset_index(drop=True), frame[frame["date"] == DAY].reset_index(
        drop=True
    )


def rules(report) -> set[str]:
    return {v.rule for v in report.violations}


def test_validate_when_real_batch_then_every_rule_passes(real):
    history, batch = real
    report = validate_prices(batch, history, [DAY])
    assert report.passed, report.to_text()
    assert set(report.rules_checked) == {
        "schema",
        "date_skew",
        "missing",
        "duplicate",
        "non_positive",
        "stale",
        "outlier",
        "xs_skew",
    }
    assert "passed" in report.to_text()


def test_validate_when_price_is_nan_then_missing_rule_names_the_row(real):
    history, batch = real
    batch = batch.copy()
    batch.loc[batch["ticker"] == "JPM", "close"] = np.nan
    report = validate_prices(batch, history, [DAY])
    assert not report.passed and report.failed_dates == (DAY,)
    missing = [v for v in report.violations if v.rule == "missing"]
    assert [(v.ticker, v.date) for v in missing] == [("JPM", "2020-03-02")]
    assert "[missing] date=2020-03-02 ticker=JPM close=None" in report.to_text()


def test_validate_when_ticker_row_absent_then_missing_rule_reports_it(real):
    history, batch = real
    report = validate_prices(batch[batch["ticker"] != "XOM"], history, [DAY], expected_tickers=["XOM"])
    assert [(v.rule, v.ticker) for v in report.violations] == [("missing", "XOM")]


def test_validate_when_row_duplicated_then_duplicate_rule_names_both_rows(real):
    history, batch = real
    doubled = pd.concat([batch, batch[batch["ticker"] == "KO"]], ignore_index=True)
    report = validate_prices(doubled, history, [DAY])
    dupes = [v for v in report.violations if v.rule == "duplicate"]
    assert len(dupes) == 2 and {v.ticker for v in dupes} == {"KO"}


def test_validate_when_return_is_1000_percent_then_outlier_rule_reports_value(real):
    history, batch = real
    batch = batch.copy()
    prev = history[history["ticker"] == "MSFT"]["close"].iloc[-1]
    batch.loc[batch["ticker"] == "MSFT", "close"] = prev * 11.0
    report = validate_prices(batch, history, [DAY])
    outliers = [v for v in report.violations if v.rule == "outlier"]
    assert [(v.ticker, round(v.value, 6)) for v in outliers] == [("MSFT", 10.0)]


def test_validate_when_price_repeats_beyond_limit_then_stale_rule_fires(real):
    history, batch = real
    history, batch = history.copy(), batch.copy()
    frozen = history["ticker"] == "PG"
    last_days = sorted(history["date"].unique())[-3:]
    history.loc[frozen & history["date"].isin(last_days), "close"] = 100.0
    batch.loc[batch["ticker"] == "PG", "close"] = 100.0
    assert validate_prices(batch, history, [DAY], GateLimits(max_stale_days=3)).passed
    report = validate_prices(batch, history, [DAY], GateLimits(max_stale_days=2))
    assert [(v.rule, v.ticker, v.value) for v in report.violations] == [("stale", "PG", 3)]


def test_validate_when_close_not_positive_then_rule_fires(real):
    history, batch = real
    batch = batch.copy()
    batch.loc[batch["ticker"] == "GE", "close"] = 0.0
    report = validate_prices(batch, history, [DAY])
    assert "non_positive" in rules(report)


def test_validate_when_row_dated_outside_request_then_date_skew_taints_batch(real):
    history, batch = real
    batch = batch.copy()
    batch.loc[batch["ticker"] == "AAPL", "date"] = date(2020, 2, 28)
    report = validate_prices(batch, history, [DAY])
    assert "date_skew" in rules(report) and report.failed_dates == (DAY,)


def test_validate_when_ticker_malformed_then_schema_rule_fires(real):
    history, batch = real
    batch = batch.copy()
    batch.loc[0, "ticker"] = "bad ticker!"
    report = validate_prices(batch, history, [DAY])
    assert ("schema", "bad ticker!") in {(v.rule, v.ticker) for v in report.violations}


def test_validate_when_cross_section_is_skewed_then_xs_skew_rule_fires():
    # 100 names: 98 flat, 2 up 40%: within outlier bounds, but a cross-section no real day looks like.
    tickers = [f"T{i:03d}" for i in range(100)]
    history = pd.DataFrame({"date": date(2021, 1, 4), "ticker": tickers, "close": 100.0 + np.arange(100)})
    rng = np.random.default_rng(7)
    moves = rng.normal(0, 0.002, 100)
    moves[:2] = 0.40
    batch = pd.DataFrame(
        {"date": date(2021, 1, 5), "ticker": tickers, "close": history["close"] * (1 + moves)}
    )
    report = validate_prices(batch, history, [date(2021, 1, 5)])
    assert rules(report) == {"xs_skew"}
    assert abs(report.violations[0].value) > 4.5
    calm = batch.assign(close=history["close"] * (1 + rng.normal(0, 0.01, 100)))
    assert validate_prices(calm, history, [date(2021, 1, 5)]).passed


def test_report_when_serialised_then_json_has_rule_rows_and_failed_dates(real):
    history, batch = real
    batch = batch.copy()
    batch.loc[batch["ticker"] == "JPM", "close"] = np.nan
    data = json.loads(json.dumps(validate_prices(batch, history, [DAY]).as_dict()))
    assert data["passed"] is False and data["failed_dates"] == ["2020-03-02"]
    assert data["violations"][0] == {
        "rule": "missing",
        "date": "2020-03-02",
        "ticker": "JPM",
        "column": "close",
        "value": None,
    }


def test_enrich_when_history_given_then_first_batch_return_uses_last_history_close(real):
    history, batch = real
    frame = enrich(batch, history, [DAY])
    aapl_prev = history[history["ticker"] == "AAPL"]["close"].iloc[-1]
    aapl_now = batch[batch["ticker"] == "AAPL"]["close"].iloc[0]
    assert frame.loc[frame["ticker"] == "AAPL", "ret"].iloc[0] == pytest.approx(aapl_now / aapl_prev - 1)
    assert len(frame) == len(batch)
