"""Ingestion end to end on real data through a real local SparkSession and real GX gates."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from marketdata.feed import FileFeed, SkfolioFeed
from marketdata.ingest import gate, ingest_range, publish, stage
from quantbridge.errors import NoDataError
from quantbridge.lake import Lake


def _tree_bytes(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ingest_range_when_real_month_then_one_partition_per_trading_day_with_20_tickers(settings, spark):
    result = ingest_range(settings, SkfolioFeed(), date(2020, 1, 2), date(2020, 1, 31), spark=spark)
    lake = Lake(settings.lake_root)
    assert len(result.published) == 21 and result.quarantined == ()
    assert set(result.partitions.values()) == {20} and result.rows == 420
    assert lake.price_dates() == list(result.published)
    files = sorted(p.name for p in lake.price_partition(date(2020, 1, 2)).iterdir())
    assert files == ["part-00000.snappy.parquet"]
    stored = lake.read_prices(date(2020, 1, 2), date(2020, 1, 31))
    expected = SkfolioFeed().fetch(date(2020, 1, 2), date(2020, 1, 31))
    pd.testing.assert_frame_equal(stored, expected)
    assert not (settings.lake_root / "_staging" / "prices").exists() or not any(
        (settings.lake_root / "_staging" / "prices").iterdir()
    )


def test_ingest_range_when_same_dates_run_twice_then_partitions_are_byte_identical(settings, spark):
    ingest_range(settings, SkfolioFeed(), date(2020, 2, 3), date(2020, 2, 7), spark=spark)
    prices = Lake(settings.lake_root).prices
    first = _tree_bytes(prices)
    ingest_range(settings, SkfolioFeed(), date(2020, 2, 3), date(2020, 2, 7), spark=spark)
    assert _tree_bytes(prices) == first
    assert len([k for k in first if k.endswith(".parquet")]) == 5


def _corrupted_source(tmp_path, settings, spark) -> tuple:
    """Real prices for 2020-03-02..06 into the lake's history, and a file for 03-09..11 with three defects."""
    ingest_range(settings, SkfolioFeed(), date(2020, 3, 2), date(2020, 3, 6), spark=spark)
    good = SkfolioFeed().fetch(date(2020, 3, 9), date(2020, 3, 11))
    bad = good.copy()
    bad.loc[(bad["date"] == date(2020, 3, 9)) & (bad["ticker"] == "JPM"), "close"] = float(
        "nan"
    )  # missing price
    dup = bad[(bad["date"] == date(2020, 3, 10)) & (bad["ticker"] == "KO")]  # duplicated row
    bad = pd.concat([bad, dup], ignore_index=True)
    prev = good.loc[(good["date"] == date(2020, 3, 10)) & (good["ticker"] == "AMD"), "close"].iloc[0]
    bad.loc[(bad["date"] == date(2020, 3, 11)) & (bad["ticker"] == "AMD"), "close"] = prev * 11  # +1000%
    path = tmp_path / "vendor.csv"
    bad.to_csv(path, index=False)
    return path, good


def test_ingest_when_batch_corrupted_then_each_bad_date_is_quarantined_with_reason_and_never_published(
    tmp_path, settings, spark
):
    path, _ = _corrupted_source(tmp_path, settings, spark)
    result = ingest_range(settings, FileFeed(path), date(2020, 3, 9), date(2020, 3, 11), spark=spark)
    lake = Lake(settings.lake_root)
    assert result.quarantined == (date(2020, 3, 9), date(2020, 3, 10), date(2020, 3, 11))
    assert result.published == ()
    assert lake.price_dates()[-1] == date(2020, 3, 6)
    assert lake.quarantined_dates() == list(result.quarantined)
    reasons = {
        d: json.loads((lake.quarantine(d) / "report.json").read_text())["violations"]
        for d in result.quarantined
    }
    assert [(v["rule"], v["ticker"]) for v in reasons[date(2020, 3, 9)]] == [("missing", "JPM")]
    assert {(v["rule"], v["ticker"]) for v in reasons[date(2020, 3, 10)]} == {("duplicate", "KO")}
    assert ("outlier", "AMD") in {(v["rule"], v["ticker"]) for v in reasons[date(2020, 3, 11)]}
    text = (lake.quarantine(date(2020, 3, 11)) / "report.txt").read_text()
    assert "[outlier] date=2020-03-11 ticker=AMD ret=10.0" in text
    blocked = pd.read_parquet(lake.quarantine(date(2020, 3, 10)) / "batch.parquet")
    assert len(blocked) == 21  # nothing dropped: the duplicate is kept as evidence


def test_ingest_when_quarantined_date_fixed_then_published_and_quarantine_cleared(tmp_path, settings, spark):
    path, good = _corrupted_source(tmp_path, settings, spark)
    ingest_range(settings, FileFeed(path), date(2020, 3, 9), date(2020, 3, 9), spark=spark)
    lake = Lake(settings.lake_root)
    assert lake.quarantined_dates() == [date(2020, 3, 9)]
    good.to_csv(path, index=False)
    result = ingest_range(settings, FileFeed(path), date(2020, 3, 9), date(2020, 3, 11), spark=spark)
    assert result.published == (date(2020, 3, 9), date(2020, 3, 10), date(2020, 3, 11))
    assert lake.quarantined_dates() == []


def test_steps_when_run_separately_then_gate_uses_lake_history_across_the_boundary(settings, spark):
    lake = Lake(settings.lake_root)
    ingest_range(settings, SkfolioFeed(), date(2020, 3, 2), date(2020, 3, 6), spark=spark)
    day = date(2020, 3, 9)
    staged = stage(lake, SkfolioFeed(), day, day)
    assert staged.rows == 20 and staged.dates == (day,)
    report = gate(lake, settings, day, day)
    assert report.passed
    assert publish(lake, spark, day, day) == {"2020-03-09": 20}
    assert publish(lake, spark, day, day) == {}  # nothing staged any more
    with pytest.raises(NoDataError, match="stage step"):
        gate(lake, settings, day, day)
