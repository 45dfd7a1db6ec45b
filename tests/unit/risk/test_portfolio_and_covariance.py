from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.returns import daily_returns
from risk.covariance import covariance, ewma_variance
from risk.portfolio import equal_weight_book, exposures, load_positions, parse_positions, reference_book
from risk.portfolio_var import portfolio_var, recent_closes
from risk.var import VAR_MODELS


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    from marketdata.feed import SkfolioFeed

    long = SkfolioFeed().fetch(date(2018, 1, 2), date(2019, 12, 31))
    return long.pivot(index="date", columns="ticker", values="close")


def test_covariance_when_shrunk_then_between_sample_and_target_and_methods_checked(closes):
    from sklearn.covariance import LedoitWolf

    r = daily_returns(closes).to_numpy()
    sample, lw, oas = covariance(r, "sample"), covariance(r, "ledoit_wolf"), covariance(r, "oas")
    assert np.allclose(lw, LedoitWolf().fit(r).covariance_, rtol=1e-12, atol=0)  # sklearn's formula, faster
    assert np.allclose(covariance(r[:, :1]), np.var(r[:, 0]), rtol=1e-12, atol=0)  # one asset: no shrinkage
    assert np.allclose(sample, np.cov(r, rowvar=False, bias=True))
    off = ~np.eye(len(sample), dtype=bool)
    assert (
        np.abs(lw[off]).sum() < np.abs(sample[off]).sum()
        and np.abs(oas[off]).sum() < np.abs(sample[off]).sum()
    )
    with pytest.raises(InputError, match="method"):
        covariance(r, "graphical")
    with pytest.raises(InputError, match="non-finite"):
        covariance(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(InputError, match="returns"):
        covariance(np.ones(5))


def test_ewma_variance_when_hand_computed_then_recursion_from_the_mean_square_and_one_step_ahead():
    r = np.array([[0.01, 0.0], [-0.02, 0.01], [0.03, -0.01]])
    start = (r**2).mean(axis=0)

    s2 = ewma_variance(r**2)

    assert s2.shape == (4, 2) and np.allclose(s2[0], start)
    assert np.allclose(s2[1], 0.94 * start + 0.06 * r[0] ** 2)
    assert np.allclose(s2[3], 0.94 * s2[2] + 0.06 * r[2] ** 2)  # the forecast for the day after the last
    cov = ewma_variance(r[:, :, None] * r[:, None, :])[-1]
    assert np.allclose(np.diag(cov), s2[-1]) and cov[0, 1] == pytest.approx(cov[1, 0])
    with pytest.raises(InputError, match="decay"):
        ewma_variance(r**2, 1.5)
    with pytest.raises(InputError, match="squares"):
        ewma_variance(np.array([]))


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


@pytest.mark.parametrize("model", VAR_MODELS)
def test_portfolio_var_when_real_prices_then_every_model_gives_positive_var_below_book(closes, model):
    book = equal_weight_book(closes.iloc[-1], 1_000_000)

    r = portfolio_var(closes, book, model=model, window=250)

    assert 0 < r.var <= r.cvar < 1_000_000 * 0.2
    assert r.model == model and r.observations == 250


def test_portfolio_var_when_history_shorter_than_window_then_all_of_it_and_quarantine_spans_dropped(closes):
    book = {"AAPL": 100.0, "MSFT": -50.0}
    short = closes.iloc[:101]

    full = portfolio_var(short, book, window=500)
    gap = portfolio_var(short.drop(index=short.index[50]), book, window=500, quarantined=[short.index[50]])

    assert full.observations == 100 and gap.observations == 98


def test_portfolio_var_when_model_window_mode_or_book_invalid_then_error_names_it(closes):
    with pytest.raises(InputError, match="model"):
        portfolio_var(closes, {"AAPL": 1}, model="garch")
    with pytest.raises(InputError, match="window"):
        portfolio_var(closes, {"AAPL": 1}, window=5)
    with pytest.raises(InputError, match="mode"):
        portfolio_var(closes, {"AAPL": 1}, mode="shortcut")
    with pytest.raises(InputError, match="ZZZ"):
        portfolio_var(closes, {"ZZZ": 1})
    with pytest.raises(InputError, match="closes"):
        portfolio_var(closes.iloc[:0], {"AAPL": 1})
    unpriced = closes.assign(AAPL=np.nan)
    with pytest.raises(InputError, match="positions=.AAPL"):
        portfolio_var(unpriced, {"AAPL": 1})


def test_reference_books_when_built_then_equal_weight_long_and_long_short_net_zero_with_equal_sides():
    tickers = ["MSFT", "AAPL", "XOM", "KO", "JPM"]

    equal = reference_book("equal_weight", tickers)
    long_short = reference_book("long_short", tickers)

    assert equal == {t: 200_000.0 for t in sorted(tickers)}
    assert {t for t, m in long_short.items() if m > 0} == {"AAPL", "JPM"}  # first half of the sorted names
    assert sum(long_short.values()) == pytest.approx(0, abs=1e-6)
    assert sum(map(abs, long_short.values())) == pytest.approx(1_000_000)
    assert long_short["AAPL"] == 250_000 and long_short["XOM"] == pytest.approx(-500_000 / 3)
    with pytest.raises(InputError, match="book"):
        reference_book("momentum", tickers)
    with pytest.raises(InputError, match="tickers"):
        reference_book("equal_weight", ["AAPL"])


def _write_lake(root, closes: pd.DataFrame, quarantined=()) -> Lake:
    """The lake layout (prices/date=D/*.parquet, quarantine/prices/date=D/) written directly."""
    lake = Lake(root)
    for day, row in closes.iterrows():
        folder = lake.price_partition(day)
        folder.mkdir(parents=True)
        pd.DataFrame({"ticker": row.index, "close": row.to_numpy()}).to_parquet(folder / "part-0.parquet")
    for day in quarantined:
        lake.quarantine(day).mkdir(parents=True)
    return lake


def test_recent_closes_when_quarantine_inside_the_window_then_reads_enough_dates_for_window_returns(
    closes, tmp_path
):
    kept = closes.iloc[:120]
    hole = kept.index[100]
    lake = _write_lake(tmp_path / "lake", kept.drop(index=hole), quarantined=[hole])

    recent = recent_closes(lake, 30)
    early = recent_closes(lake, 30, end=kept.index[60])

    assert len(daily_returns(recent, [hole])) >= 30 and recent.index[-1] == kept.index[-1]
    assert len(recent) == 32  # 31 dates hold 29 returns here: the one across the hole is dropped
    assert early.index[-1] == kept.index[60] and len(early) == 31
    assert recent_closes(lake, 500).shape == (119, kept.shape[1])  # a short lake: all of it
    assert recent_closes(Lake(tmp_path / "none"), 30).empty
    stale = kept.iloc[:80].copy()
    stale.iloc[-40:, 0] = np.nan  # one ticker without prices lately: no return at all in the latest dates
    longer = recent_closes(_write_lake(tmp_path / "stale", stale), 30)
    assert len(longer) == 71 and len(daily_returns(longer)) == 30  # read back until 30 returns are held


def test_ewma_covariance_and_psd_root_when_singular_then_root_reproduces_the_covariance():
    from risk.covariance import ewma_covariance, ewma_variance, psd_root

    rng = np.random.default_rng(4)
    r = rng.normal(0, 0.01, size=(50, 2))
    r = np.column_stack([r, r[:, 0]])  # a duplicated asset: singular, Cholesky would fail
    cov = ewma_covariance(r, 0.94)
    assert np.allclose(np.diag(cov), ewma_variance(r * r, 0.94)[-1])
    root, values = psd_root(cov)
    assert values.min() > -1e-15 and np.allclose(root @ root.T, cov, atol=1e-18)
    assert psd_root(np.zeros((0, 0)))[0].shape == (0, 0)
