"""Order slicing under the pre-trade notional limit (strategy.rebalance.clips)."""

from __future__ import annotations

import pytest

from quantbridge.errors import InputError
from strategy.rebalance import clips


def test_clips_when_under_the_cap_or_uncapped_then_one_order():
    assert clips(100.0, 50.0, None) == [100.0]
    assert clips(100.0, 50.0, 5000.0) == [100.0]


def test_clips_when_over_the_cap_then_whole_shares_each_within_it_summing_to_the_trade():
    got = clips(1001.0, 100.0, 25_000.0)  # 250 shares per clip at most: 5 clips of 200 or 201
    assert sum(got) == 1001.0
    assert all(q == int(q) and q * 100.0 <= 25_000.0 for q in got)
    assert len(got) == 5 and max(got) - min(got) <= 1


def test_clips_when_one_share_exceeds_the_cap_then_error_names_the_limit():
    with pytest.raises(InputError, match="max_order_notional"):
        clips(10.0, 500.0, 100.0)


def test_optimise_when_the_book_is_partly_cash_then_investing_it_is_not_turnover():
    import numpy as np

    from strategy.portfolio import Constraints, optimise

    current = np.array([0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # 80% cash after partial fills
    weights = optimise(np.linspace(0.01, 0.02, 8), np.eye(8) * 0.01, current, Constraints(max_weight=0.2))
    assert abs(weights.sum() - 1) < 1e-9
    # 0.8 of cash deployed plus at most max_turnover (0.5) of rebalancing
    assert np.abs(weights - current).sum() <= 0.8 + 0.5 + 1e-6


def test_rebalance_when_the_date_has_no_published_prices_then_no_data_and_nothing_published(tmp_path):
    from datetime import date

    import pandas as pd

    from quantbridge.errors import NoDataError
    from quantbridge.lake import Lake
    from quantbridge.redis_schema import RedisSchema
    from strategy.rebalance import rebalance

    lake = Lake(tmp_path)
    folder = lake.price_partition(date(2020, 4, 9))
    folder.mkdir(parents=True)
    pd.DataFrame({"ticker": ["AAPL"], "close": [60.0]}).to_parquet(folder / "part-00000.snappy.parquet")
    with pytest.raises(NoDataError, match="2020-04-10"):  # Good Friday: the last close is the 9th's
        rebalance(lake, None, RedisSchema("qb"), date(2020, 4, 10))
