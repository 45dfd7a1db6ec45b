from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from risk.covariance import covariance, daily_returns, ewma_covariance, ewma_volatility
from risk.measure import portfolio_var
from risk.portfolio import equal_weight_book, exposures, load_positions, parse_positions


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    from marketdata.feed import SkfolioFeed

    long = SkfolioFeed().fetch(date(2018, 1, 2), date(2019, 12, 31))
    return long.pivot(index="date", columns="ticker", values="close")


def test_daily_returns_when_gap_then_row_dropped_and_all_gaps_rejected():
    closes = pd.DataFrame({"A": [1.0, 1.1, np.nan, 1.21], "B": [2.0, 2.2, 2.42, 2.662]})
    r = daily_returns(closes)
    assert r["B"].tolist() == pytest.approx([0.1])  # rows touching the gap are dropped, not filled
    with pytest.raises(InputError, match="closes"):
        daily_returns(pd.DataFrame())
    with pytest.raises(InputError, match="consecutive"):
        daily_returns(pd.DataFrame({"A": [1.0, np.nan]}))


def test_covariance_when_shrunk_then_between_sample_and_target_and_methods_checked(closes):
    r = daily_returns(closes).to_numpy()
    sample, lw, oas = covariance(r, "sample"), covariance(r, "ledoit_wolf"), covariance(r, "oas")
    assert np.allclose(sample, np.cov(r, rowvar=False, bias=True))
    off = ~np.eye(len(sample), dtype=bool)
    assert np.abs(lw[off]).sum() < np.abs(sample[off]).sum() and np.abs(oas[off]).sum() < np.abs(sample[off]).sum()
    with pytest.raises(InputError, match="method"):
        covariance(r, "graphical")
    with pytest.raises(InputError, match="non-finite"):
        covariance(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(InputError, match="returns"):
        covariance(np.ones(5))


def test_ewma_when_hand_computed_then_matches_and_volatility_uses_only_past():
    r = np.array([[0.01], [-0.02], [0.03]])
    weights = np.array([0.94**2, 0.94, 1.0]) / (0.94**2 + 0.94 + 1.0)
    assert ewma_covariance(r)[0, 0] == pytest.approx((weights * r[:, 0] ** 2).sum())
    vol = ewma_volatility(r)
    assert vol[2, 0] ** 2 == pytest.approx(0.94 * vol[1, 0] ** 2 + 0.06 * 0.02**2)
    with pytest.raises(InputError, match="decay"):
        ewma_covariance(r, 1.5)


def test_positions_when_files_given_then_parsed_and_errors_name_ticker(tmp_path):
    csv = tmp_path / "book.csv"
    csv.write_text("ticker,quantity\naapl,10\nMSFT,-5\n")
    assert load_positions(csv) == {"AAPL": 10.0, "MSFT": -5.0}
    js = tmp_path / "book.json"
    js.write_text(json.dumps([{"ticker": "KO", "quantity": 3}]))
    assert load_positions(js) == {"KO": 3.0}
    js.write_text(json.dumps({"KO": "many"}))
    with pytest.raises(InputError, match=r"book.json\[KO\]='many'"):
        load_positions(js)
    csv.write_text("ticker,quantity\nKO,1\nKO,2\n")
    with pytest.raises(InputError, match="one line per ticker"):
        load_positions(csv)
    with pytest.raises(InputError, match="finite"):
        parse_positions({"KO": float("nan")})
    with pytest.raises(InputError, match="--positions"):
        load_positions(tmp_path / "none.csv")


def test_exposures_when_unknown_ticker_then_error_lists_lake_tickers():
    prices = pd.Series({"AAPL": 100.0, "MSFT": 200.0})
    assert exposures({"MSFT": 2, "AAPL": 1}, prices).to_dict() == {"MSFT": 400.0, "AAPL": 100.0}
    with pytest.raises(InputError, match="ZZZ"):
        exposures({"ZZZ": 1}, prices)
    assert sum(q * prices[t] for t, q in equal_weight_book(prices, 1000).items()) == pytest.approx(1000)


@pytest.mark.parametrize("model", ["normal", "student_t", "ewma", "historical", "filtered_historical"])
def test_portfolio_var_when_real_prices_then_every_model_gives_positive_var_below_book(closes, model):
    book = equal_weight_book(closes.iloc[-1], 1_000_000)
    r = portfolio_var(closes, book, model=model, paths=20_000)
    assert 0 < r.var <= r.cvar < 1_000_000 * 0.2
    assert r.model == model


def test_portfolio_var_when_model_or_window_invalid_then_error(closes):
    with pytest.raises(InputError, match="model"):
        portfolio_var(closes, {"AAPL": 1}, model="garch")
    with pytest.raises(InputError, match="window"):
        portfolio_var(closes, {"AAPL": 1}, window=5)
