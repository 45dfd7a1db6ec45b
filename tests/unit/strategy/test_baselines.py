"""Baseline books (equal weight, minimum variance): the replay's timing, quarantined days, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from quantbridge.returns import daily_returns
from risk.covariance import covariance
from strategy.baselines import equal_weight_returns, min_variance_returns
from strategy.portfolio import Constraints, optimise


def correlated_closes(days: int, seed: int = 7) -> pd.DataFrame:
    """Five names with daily vols from 0.5% to 3%, pairwise correlation 0.3, on business days."""
    rng = np.random.default_rng(seed)
    vols = np.array([0.005, 0.01, 0.015, 0.02, 0.03])
    corr = np.full((5, 5), 0.3) + 0.7 * np.eye(5)
    cov = corr * np.outer(vols, vols)
    returns = rng.multivariate_normal(np.full(5, 0.0003), cov, size=days)
    closes = 100.0 * np.cumprod(1.0 + returns, axis=0)
    index = pd.bdate_range("2019-01-02", periods=days)
    return pd.DataFrame(closes, index=index, columns=["A", "B", "C", "D", "E"])


CLOSES = pd.DataFrame(
    {"A": [10.0, 11.0, 9.9, 10.89], "B": [20.0, 20.0, 22.0, 22.0], "C": [5.0, 4.0, 4.0, 5.0]},
    index=pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"]),
)


def test_equal_weight_when_three_names_then_mean_of_next_day_returns():
    result = equal_weight_returns(CLOSES)

    # weights of 1/3 decided at the close of D earn D -> next day: the first return is dated 01-03
    assert list(result.index) == list(CLOSES.index[1:])
    assert result.iloc[0] == pytest.approx((0.10 + 0.0 - 0.20) / 3)
    assert result.iloc[1] == pytest.approx((-0.10 + 0.10 + 0.0) / 3)
    assert result.iloc[2] == pytest.approx((0.10 + 0.0 + 0.25) / 3)
    assert result.name == "equal weight"


def test_equal_weight_when_day_quarantined_then_held_through_it_from_the_day_before():
    result = equal_weight_returns(CLOSES, quarantined=["2020-01-06"])

    # no return dated on the quarantined day; the next day earns the move from the day before it
    assert list(result.index) == [CLOSES.index[1], CLOSES.index[3]]
    expected = np.mean(CLOSES.iloc[3].to_numpy() / CLOSES.iloc[1].to_numpy() - 1.0)
    assert result.iloc[1] == pytest.approx(expected)


@pytest.mark.parametrize("book", ["equal", "min_variance"])
def test_baseline_when_prices_after_d_change_then_returns_up_to_d_unchanged(book):
    closes = correlated_closes(140)
    d = closes.index[100]
    later = closes.copy()
    rng = np.random.default_rng(1)
    later.loc[later.index > d] *= rng.uniform(0.5, 1.5, size=later.loc[later.index > d].shape)

    def run(frame: pd.DataFrame) -> pd.Series:
        if book == "equal":
            return equal_weight_returns(frame)
        return min_variance_returns(frame, window=60, rebalance_every=5)

    before, after = run(closes), run(later)

    pd.testing.assert_series_equal(before.loc[:d], after.loc[:d])
    assert not np.allclose(before.loc[before.index > d], after.loc[after.index > d])


def test_min_variance_when_rebalanced_daily_then_weights_of_close_d_earn_the_next_day_only():
    closes = correlated_closes(90)
    window = 40
    result = min_variance_returns(closes, window=window, rebalance_every=1)
    returns = daily_returns(closes)

    # first book: the close with `window` returns behind it (returns[0..window-1], last dated index[window])
    assert result.index[0] == closes.index[window + 1]
    for k in (0, 17, len(result) - 1):
        day = result.index[k]
        decision = closes.index[closes.index.get_loc(day) - 1]
        history = returns.loc[:decision].iloc[-window:]
        weights = optimise(np.zeros(5), covariance(history), None, Constraints(max_weight=1, max_turnover=2))
        assert result.iloc[k] == pytest.approx(float(weights @ returns.loc[day].to_numpy()), abs=1e-12)


def test_min_variance_when_correlated_panel_then_lower_realised_variance_than_equal_weight():
    closes = correlated_closes(500)

    min_var = min_variance_returns(closes, window=120, rebalance_every=5)
    equal = equal_weight_returns(closes).loc[min_var.index]

    assert len(min_var) == 500 - 1 - 120
    assert min_var.var() < 0.6 * equal.var()  # most weight on the 0.5% name; equal weight has ~1.3%


def test_min_variance_when_day_quarantined_then_no_return_on_it_and_covariance_skips_its_spans():
    closes = correlated_closes(120)
    skipped = closes.index[80]

    result = min_variance_returns(closes, window=50, rebalance_every=5, quarantined=[skipped])

    assert skipped not in result.index
    assert closes.index[81] in result.index  # held through from the day before the quarantined one
    # the same book on closes whose quarantined day carries a wild price: nothing changes
    wild = closes.copy()
    wild.loc[skipped] *= 3.0
    pd.testing.assert_series_equal(
        result, min_variance_returns(wild, window=50, rebalance_every=5, quarantined=[skipped])
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": 1}, "window"),
        ({"window": 30.0}, "window"),
        ({"rebalance_every": 0}, "rebalance_every"),
        ({"window": 200}, "closes"),
    ],
)
def test_min_variance_when_input_out_of_range_then_input_error_names_field(kwargs, field):
    with pytest.raises(InputError) as caught:
        min_variance_returns(correlated_closes(100), **kwargs)
    assert caught.value.field == field
