from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from quantbridge.lake import Lake


def _partition(lake: Lake, day: date, prices: dict[str, float]) -> None:
    folder = lake.price_partition(day)
    folder.mkdir(parents=True)
    pd.DataFrame({"ticker": list(prices), "close": list(prices.values())}).to_parquet(
        folder / "part-00000.parquet"
    )


def test_read_prices_when_window_and_last_n_then_filtered_long_frame(tmp_path):
    lake = Lake(tmp_path)
    for i, day in enumerate([date(2020, 1, 2), date(2020, 1, 3), date(2020, 1, 6)]):
        _partition(lake, day, {"B": 10.0 + i, "A": 1.0 + i})
    (lake.prices / "_SUCCESS").write_text("")
    (lake.prices / "date=2020-01-07").mkdir()  # empty folder: not a published partition
    assert lake.price_dates() == [date(2020, 1, 2), date(2020, 1, 3), date(2020, 1, 6)]
    frame = lake.read_prices(start=date(2020, 1, 3))
    assert frame.to_dict("records")[0] == {"date": date(2020, 1, 3), "ticker": "A", "close": 2.0}
    assert len(frame) == 4
    assert lake.read_prices(last_n_dates=1)["date"].unique().tolist() == [date(2020, 1, 6)]
    assert lake.read_prices(last_n_dates=0).empty
    matrix = lake.read_close_matrix()
    assert matrix.shape == (3, 2) and matrix.loc[date(2020, 1, 6), "B"] == 12.0


def test_read_prices_when_lake_empty_then_typed_empty_frame(tmp_path):
    frame = Lake(tmp_path).read_prices()
    assert frame.empty and list(frame.columns) == ["date", "ticker", "close"]
    assert Lake(tmp_path).quarantined_dates() == []


def test_paths_when_asked_then_layout_of_the_design(tmp_path):
    lake = Lake(tmp_path)
    assert lake.price_partition(date(2020, 1, 2)) == tmp_path / "prices" / "date=2020-01-02"
    assert lake.quarantine(date(2020, 1, 2)) == tmp_path / "quarantine" / "prices" / "date=2020-01-02"
    assert lake.partition("stress", "date", "2020-01-02") == tmp_path / "stress" / "date=2020-01-02"
    with pytest.raises(KeyError, match="esg"):
        lake.reference("yields")


def test_lake_reads_when_a_partition_is_added_or_rewritten_then_readers_see_the_new_data(tmp_path):
    """The in-memory copies of partition files never hide a change on disk."""
    import os
    import time
    from datetime import date

    import pandas as pd

    from quantbridge.lake import Lake

    lake = Lake(tmp_path)

    def write(day, close):
        folder = lake.price_partition(day)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "part.tmp"
        pd.DataFrame({"ticker": ["AAA"], "close": [close]}).to_parquet(tmp, index=False)
        tmp.replace(folder / "part-00000.snappy.parquet")

    write(date(2020, 1, 2), 10.0)
    old = time.time_ns() - 5_000_000_000
    os.utime(lake.prices, ns=(old, old))  # an old folder: its listing may be kept
    assert lake.price_dates() == [date(2020, 1, 2)]
    assert lake.read_close_matrix().loc[date(2020, 1, 2), "AAA"] == 10.0
    write(date(2020, 1, 3), 11.0)  # a new partition changes the folder's time
    assert lake.price_dates() == [date(2020, 1, 2), date(2020, 1, 3)]
    write(date(2020, 1, 2), 12.5)  # a re-run replaces a partition's file
    assert lake.read_close_matrix().loc[date(2020, 1, 2), "AAA"] == 12.5
