"""The strategy evaluation: orders of the close of D trade at D+1 with the execution lane's costs, no
feature or decision of D depends on anything after D, the model trades only when it beats the baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from execution.market import load_adv, sqrt_impact_bps
from execution.venues import DEFAULT_VENUES
from quantbridge.errors import InputError
from strategy.baselines import BASELINES
from strategy.costs import CostModel
from strategy.evaluation import choose, decisions, evaluate, simulate
from strategy.features import ESG_SNAPSHOT_DATE, FEATURES, TARGET, build_features
from strategy.model import fit


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Gradient boosting's OpenMP threads crawl on a busy 2-core machine (the suite runs beside other work):
    one thread keeps these tests fast and their results the same."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


TICKERS = sorted(load_adv())[:8]


def costs(book_value: float = 1_000_000.0) -> CostModel:
    return CostModel.from_venues(DEFAULT_VENUES, load_adv(), sqrt_impact_bps, book_value=book_value)


def random_closes(days: int = 420, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0003, 0.015, size=(days, len(TICKERS)))
    index = [d.date() for d in pd.bdate_range("2020-01-02", periods=days)]
    return pd.DataFrame(100.0 * np.cumprod(1 + returns, axis=0), index=index, columns=TICKERS)


def test_simulate_when_decided_at_close_d_then_return_of_d_and_d1_not_earned_and_cost_from_execution_model():
    closes = pd.DataFrame(
        100.0, index=[d.date() for d in pd.bdate_range("2021-03-01", periods=6)], columns=TICKERS
    )
    d = closes.index[2]
    closes.loc[d:, TICKERS[0]] = 110.0  # +10% on D
    closes.loc[closes.index[3] :, TICKERS[1]] = 120.0  # +20% on D+1 (the execution day)
    closes.loc[closes.index[4] :, TICKERS[2]] = 90.0  # -10% on D+2
    target = pd.Series(1 / 3, index=TICKERS[:3])
    book = simulate(closes, {d: target}, costs())
    assert book.index[0] == closes.index[3]  # the book starts trading at D+1's close
    assert book.loc[closes.index[3], "gross"] == 0.0  # neither D's nor D+1's jump is earned
    assert book.loc[closes.index[4], "gross"] == pytest.approx(-0.10 / 3)  # D+2: the first return earned
    # the cost at D+1 is the execution lane's: cheapest spread + fee plus square-root impact of each trade
    cheapest = min(v.half_spread_bps + v.taker_fee_bps for v in DEFAULT_VENUES)
    prices = closes.loc[closes.index[3], TICKERS[:3]]
    shares = (1 / 3) * 1_000_000.0 / prices
    expected = sum(
        (1 / 3) * (cheapest + sqrt_impact_bps(1.0, 0.0, load_adv()[t], 0.0, shares[t])) / 1e4
        for t in TICKERS[:3]
    )
    assert book.loc[closes.index[3], "cost"] == pytest.approx(expected)
    assert book.loc[closes.index[3], "turnover"] == pytest.approx(1.0)
    assert costs(1e9).cost(TICKERS[0], 0.5, 100.0, 0.02) > costs().cost(TICKERS[0], 0.5, 100.0, 0.02)


def test_costs_when_ticker_has_no_adv_or_bad_price_then_error_names_it():
    with pytest.raises(InputError, match="adv"):
        costs().cost("NOPE", 0.1, 10.0, 0.01)
    with pytest.raises(InputError, match="price"):
        costs().cost(TICKERS[0], 0.1, 0.0, 0.01)
    with pytest.raises(InputError, match="book_value"):
        costs(0.0)


def test_features_and_decisions_when_every_input_after_d_perturbed_then_nothing_of_d_changes():
    closes = random_closes()
    esg = pd.Series(np.linspace(0.2, 0.9, len(TICKERS)), index=TICKERS)
    cut = closes.index[330]
    rng = np.random.default_rng(9)
    future = closes.copy()
    after = future.index > cut
    future.loc[after] *= rng.uniform(0.5, 1.5, size=(after.sum(), len(TICKERS)))
    base, perturbed = build_features(closes, esg), build_features(future, esg)
    upto = lambda f: f[f["date"] <= cut].loc[:, ["date", "ticker", *FEATURES]].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(upto(base), upto(perturbed))
    # the decisions of D: the model (trained before D, as the walk-forward's folds are) and every baseline
    train = base[base["date"] < closes.index[300]].dropna(subset=[TARGET])
    model = fit(train)
    outs = []
    for panel, prices in ((base, closes), (perturbed, future)):
        rows = panel[panel["date"] >= closes.index[300]]
        oos = rows.loc[:, ["date", "ticker", TARGET]].assign(pred=model.predict(rows.loc[:, FEATURES]))
        outs.append(decisions(oos, prices, top_k=3))
    for book in ("model", *BASELINES):
        days = [day for day in outs[0][book] if day <= cut]
        assert days, book
        for day in days:
            pd.testing.assert_series_equal(outs[0][book][day], outs[1][book][day])
    # ESG is a single snapshot: before its date it is no feature at all, from it on it is
    assert base["esg"].isna().all() and cut < ESG_SNAPSHOT_DATE
    late = build_features(closes, esg, esg_as_of=closes.index[200])
    assert late.loc[late["date"] < closes.index[200], "esg"].isna().all()
    assert late.loc[late["date"] >= closes.index[200], "esg"].notna().all()


def test_features_when_label_then_it_starts_at_the_next_close():
    closes = random_closes(100)
    panel = build_features(closes)
    day = closes.index[70]
    row = panel[panel["date"] == day].set_index("ticker")
    fwd = closes.iloc[76] / closes.iloc[71] - 1
    assert row[TARGET].to_numpy() == pytest.approx((fwd - fwd.mean()).to_numpy())


def oos_with(closes: pd.DataFrame, signal: float, seed: int = 1) -> pd.DataFrame:
    """Out-of-sample predictions: ``signal`` x the realised label plus noise, after a year of history."""
    panel = build_features(closes).dropna(subset=[TARGET])
    panel = panel[panel["date"] > closes.index[260]]
    noise = np.random.default_rng(seed).normal(0, 0.02, len(panel))
    return panel.loc[:, ["date", "ticker", TARGET]].assign(pred=signal * panel[TARGET].to_numpy() + noise)


def test_evaluate_when_model_has_no_skill_then_best_baseline_trades_with_the_reason():
    closes = random_closes()
    out = evaluate(oos_with(closes, 0.0), closes, costs(), top_k=3)
    rows = {r["book"]: r for r in out["rows"]}
    assert set(rows) == {"model", *BASELINES}
    assert all(
        r["annual_cost"] > 0 and r["annual_turnover"] > 0 and r["sharpe_se"] > 0 for r in rows.values()
    )
    assert abs(rows["model"]["ic_t"]) < 2.0
    decision = out["decision"]
    assert decision["trade"] == decision["best_baseline"] in BASELINES and "IC t" in decision["reason"]


def test_evaluate_when_model_foresees_the_label_then_it_trades():
    closes = random_closes()
    out = evaluate(oos_with(closes, 1.0), closes, costs(), top_k=3)
    model = next(r for r in out["rows"] if r["book"] == "model")
    assert model["ic_t"] > 2.0 and out["decision"]["trade"] == "model", out["decision"]


def test_choose_when_ic_significant_but_no_edge_over_best_baseline_then_baseline():
    days = pd.RangeIndex(300)
    rng = np.random.default_rng(2)
    same = rng.normal(0.0005, 0.01, 300)
    books = {
        name: pd.DataFrame({"ret": same + rng.normal(0, 1e-4, 300)}, index=days)
        for name in ("model", *BASELINES)
    }
    rows = [{"book": name, "sharpe": 1.0 if name == "hrp" else 0.5, "ic_t": 3.0} for name in books]
    decision = choose(books, rows)
    assert decision["best_baseline"] == "hrp" and decision["trade"] == "hrp" and "edge" in decision["reason"]
