"""Training and held-out windows: shapes, volatility units, and no held-out day inside any training window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from quantbridge.returns import daily_returns
from synthetic.data import split_windows


@pytest.fixture(scope="module")
def closes():
    rng = np.random.default_rng(0)
    returns = rng.standard_t(4, (801, 3)) * np.array([0.01, 0.02, 0.03])
    return pd.DataFrame(
        100 * np.cumprod(1 + returns, axis=0),
        columns=["AAA", "BBB", "CCC"],
        index=pd.bdate_range("2020-01-01", periods=801).date,
    )


def test_split_when_cut_then_held_out_windows_never_overlap_training_windows(closes):
    split = split_windows(closes, length=5, test_fraction=0.3, block=4, seed=1)
    assert split.test.shape == (48, 5, 3)  # 800 returns = 40 blocks of 4 windows, 12 blocks held out
    assert split.train.shape[1:] == (5, 3) and len(split.train) > 3 * len(split.test)
    held_days = {tuple(row) for row in split.test.reshape(-1, 3).round(12)}
    train_days = {tuple(row) for row in split.train.reshape(-1, 3).round(12)}
    assert held_days.isdisjoint(train_days)
    # overlapping training windows: consecutive ones share all but one day
    assert np.allclose(split.train[0, 1:], split.train[1, :-1])
    # units of each asset's training volatility, so simple returns come back with scale
    returns = daily_returns(closes).to_numpy()
    assert np.allclose(split.scale, [0.01 * np.sqrt(2), 0.02 * np.sqrt(2), 0.03 * np.sqrt(2)], rtol=0.15)
    assert any(np.allclose(split.test[0, 0] * split.scale, r) for r in returns)
    assert split.tickers == ("AAA", "BBB", "CCC")


def test_split_when_same_seed_then_same_windows_and_other_seed_other_held_out_blocks(closes):
    a, b, c = (split_windows(closes, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.test, b.test) and np.array_equal(a.train, b.train)
    assert not np.array_equal(a.test, c.test)


def test_split_when_history_too_short_or_fraction_invalid_then_input_error_names_field(closes):
    with pytest.raises(InputError, match="prices=.*usable daily returns"):
        split_windows(closes.iloc[:50])
    with pytest.raises(InputError, match="test_fraction"):
        split_windows(closes, test_fraction=1.0)


def test_split_when_a_date_is_quarantined_then_no_window_holds_the_return_across_it(closes):
    hole = closes.index[400]
    crossing = closes.iloc[401] / closes.iloc[399] - 1  # the two-day move a filled gap would invent

    split = split_windows(closes.drop(index=hole), seed=1, quarantined=[hole])

    days = np.concatenate([split.train.reshape(-1, 3), split.test.reshape(-1, 3)]) * split.scale
    assert not any(np.allclose(day, crossing.to_numpy()) for day in days)
    assert split_windows(closes.drop(index=hole), seed=1).train.shape[0] > split.train.shape[0]
