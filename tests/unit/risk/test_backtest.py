"""VaR backtest statistics against hand computations, and the rolling backtest on real prices."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from risk.backtest import (backtest, christoffersen_independence, evaluate, kupiec_pof, lake_returns, rolling_var,
                           traffic_light)


def test_kupiec_when_5_exceptions_in_250_at_99_then_hand_computed_statistic():
    # LR = -2 [245 ln .99 + 5 ln .01 - 245 ln .98 - 5 ln .02]
    by_hand = -2 * (245 * math.log(0.99) + 5 * math.log(0.01) - 245 * math.log(0.98) - 5 * math.log(0.02))
    lr, p = kupiec_pof(5, 250, 0.01)
    assert lr == pytest.approx(by_hand) == pytest.approx(1.956810, abs=1e-6)
    assert p == pytest.approx(0.161855, abs=1e-6)


def test_kupiec_when_no_exception_then_finite_statistic_and_rejects_at_5_percent():
    lr, p = kupiec_pof(0, 250, 0.01)
    assert lr == pytest.approx(-2 * 250 * math.log(0.99)) and p < 0.05
    with pytest.raises(InputError, match="exceptions"):
        kupiec_pof(300, 250, 0.01)


def test_christoffersen_when_clustered_exceptions_then_hand_computed_statistic():
    hits = np.array([0] * 10 + [1, 1, 1] + [0] * 10, dtype=bool)
    # n00=18, n01=1, n10=1, n11=2; pi01=1/19, pi11=2/3, pi=3/22
    restricted = 19 * math.log(19 / 22) + 3 * math.log(3 / 22)
    unrestricted = 18 * math.log(18 / 19) + math.log(1 / 19) + math.log(1 / 3) + 2 * math.log(2 / 3)
    lr, p = christoffersen_independence(hits)
    assert lr == pytest.approx(-2 * (restricted - unrestricted)) == pytest.approx(5.871130, abs=1e-6)
    assert p < 0.05


def test_christoffersen_when_exceptions_independent_then_statistic_zero():
    lr, p = christoffersen_independence(np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool))
    assert lr == 0 and p == pytest.approx(1.0)
    with pytest.raises(InputError, match="hits"):
        christoffersen_independence(np.array([True]))


def test_traffic_light_when_250_days_at_99_then_basel_table():
    assert [traffic_light(x) for x in range(12)] == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 2


def test_evaluate_when_simulated_var_is_exact_then_passes_and_counts_exceptions():
    rng = np.random.default_rng(1)
    idx = pd.RangeIndex(5000)
    losses = pd.Series(rng.normal(0, 0.01, 5000), index=idx)
    row = evaluate(losses, pd.Series(0.01 * 2.326348, index=idx), 0.99, "exact")
    assert row.exceptions == int((losses > 0.01 * 2.326348).sum()) and row.expected_exceptions == pytest.approx(50)
    assert row.passes and row.zone_last_window in {"green", "yellow"}
    low = evaluate(losses, pd.Series(0.01 * 1.5, index=idx), 0.99, "too_low")
    assert not low.passes and low.windows_red > 0.5


@pytest.fixture(scope="module")
def real_returns():
    from marketdata.feed import SkfolioFeed

    closes = SkfolioFeed().fetch(date(2005, 1, 3), date(2012, 12, 31)).pivot(index="date", columns="ticker", values="close")
    return lake_returns(closes, [])


def test_rolling_var_when_forecasting_then_uses_only_past_returns(real_returns):
    w = np.full(20, 1 / 20)
    base = rolling_var(real_returns, w, "normal", window=250).iloc[:300]
    future = real_returns.copy()
    future.iloc[700:] *= 5  # change the future only
    assert rolling_var(future, w, "normal", window=250).iloc[:300].equals(base)
    for model in ("student_t", "ewma", "filtered_historical"):
        assert (rolling_var(real_returns, w, model, window=250) > 0).all()
    with pytest.raises(InputError, match="model"):
        rolling_var(real_returns, w, "garch")
    with pytest.raises(InputError, match="window"):
        rolling_var(real_returns.iloc[:100], w, "normal", window=250)


def test_backtest_when_real_crisis_years_then_table_and_a_default_model(real_returns):
    out = backtest(real_returns, window=250)
    assert [m["model"] for m in out["models"]] == ["normal", "student_t", "ewma", "filtered_historical"]
    rows = {m["model"]: m for m in out["models"]}
    assert all(r["observations"] == len(real_returns) - 250 for r in rows.values())
    # 2008 breaks a slow-moving normal VaR more often than the EWMA one that follows volatility.
    assert rows["normal"]["exceptions"] > rows["ewma"]["exceptions"]
    assert out["default_model"] in rows


def test_lake_returns_when_date_quarantined_then_return_across_the_gap_dropped():
    days = [date(2020, 1, 2), date(2020, 1, 3), date(2020, 1, 7), date(2020, 1, 8)]
    closes = pd.DataFrame({"A": [1.0, 1.1, 1.3, 1.4]}, index=days)
    r = lake_returns(closes, [date(2020, 1, 6)])
    assert list(r.index) == [date(2020, 1, 3), date(2020, 1, 8)]
    assert len(lake_returns(closes, [])) == 3
