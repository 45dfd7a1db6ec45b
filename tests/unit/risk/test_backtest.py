"""VaR backtest statistics against hand computations, and the live forecast rolled over real prices."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from risk.backtest import (
    backtest,
    christoffersen_independence,
    evaluate,
    forecast_history,
    kupiec_pof,
    traffic_light,
)
from risk.garch import fit_gjr
from risk.portfolio import reference_book
from risk.portfolio_var import portfolio_var
from risk.var import VAR_MODELS, VarSpec, window_figures


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
    assert row.exceptions == int(
        (losses > 0.01 * 2.326348).sum()
    ) and row.expected_exceptions == pytest.approx(50)
    assert row.passes and row.zone_last_window in {"green", "yellow"}
    low = evaluate(losses, pd.Series(0.01 * 1.5, index=idx), 0.99, "too_low")
    assert not low.passes and low.windows_red > 0.5


def test_evaluate_when_a_250_day_window_is_red_then_it_does_not_pass_even_if_both_tests_do():
    idx = pd.RangeIndex(2000)
    losses = pd.Series(0.0, index=idx)
    losses.iloc[list(range(100, 350, 25))] = 2.0  # 10 spread exceptions in one 250-day span: red
    losses.iloc[list(range(500, 2000, 150))] = 2.0  # 10 more far apart: 20 in all, as expected

    row = evaluate(losses, pd.Series(1.0, index=idx), 0.99, "clustered_year")

    assert row.kupiec_p > 0.05 and row.christoffersen_p > 0.05
    assert row.windows_red > 0 and not row.passes


@pytest.fixture(scope="module")
def real_closes() -> pd.DataFrame:
    from marketdata.feed import SkfolioFeed

    long = SkfolioFeed().fetch(date(2007, 1, 3), date(2010, 12, 31))
    return long.pivot(index="date", columns="ticker", values="close")


BOOK = {"AAPL": 500.0, "MSFT": -800.0, "XOM": 1000.0, "JPM": 300.0}


def test_forecast_history_when_rolled_then_each_row_is_the_live_forecast_of_that_dates_book(real_closes):
    spec = VarSpec(model="filtered_historical_portfolio", window=250)

    history = forecast_history(real_closes, BOOK, spec)

    for day in (history.index[0], history.index[len(history) // 2], history.index[-1]):
        live = portfolio_var(real_closes.loc[:day], BOOK, spec=spec)
        assert live.var == pytest.approx(history.loc[day, "var"], rel=1e-12)
        assert live.cvar == pytest.approx(history.loc[day, "cvar"], rel=1e-12)
    day, nxt = history.index[10], history["loss_date"].iloc[10]
    move = real_closes.loc[nxt, list(BOOK)] - real_closes.loc[day, list(BOOK)]
    assert history["loss"].iloc[10] == pytest.approx(-sum(q * move[t] for t, q in BOOK.items()))
    assert (history["exception"] == (history["loss"] > history["var"])).all()
    assert len(history) == len(real_closes) - 1 - 250 and history.index[0] == real_closes.index[250]


def test_forecast_history_when_the_future_changes_then_past_forecasts_do_not(real_closes):
    spec = VarSpec(model="normal", window=250)
    base = forecast_history(real_closes, BOOK, spec)
    future = real_closes.copy()
    future.iloc[700:] *= np.linspace(1, 3, len(future) - 700)[:, None]  # another future only

    changed = forecast_history(future, BOOK, spec)

    cut = real_closes.index[699]
    assert changed.loc[:cut, ["var", "cvar"]].iloc[:-1].equals(base.loc[:cut, ["var", "cvar"]].iloc[:-1])
    assert not changed["var"].iloc[-1] == base["var"].iloc[-1]


def test_forecast_history_when_a_date_is_quarantined_then_no_return_spans_it_and_no_outcome_crosses_it(
    real_closes,
):
    hole = real_closes.index[400]
    closes = real_closes.drop(index=hole)
    spec = VarSpec(model="historical", window=250)

    history = forecast_history(closes, BOOK, spec, quarantined=[hole])

    before = real_closes.index[399]
    assert before not in history.index  # its next return would span the quarantined date
    assert (history["loss_date"] > history.index).all() and len(history) == len(closes) - 2 - 250
    live = portfolio_var(closes.loc[: real_closes.index[460]], BOOK, spec=spec, quarantined=[hole])
    assert live.var == pytest.approx(history.loc[real_closes.index[460], "var"], rel=1e-12)


def test_forecast_history_when_money_held_then_exposures_constant_and_last_keeps_the_latest_rows(real_closes):
    money = {"AAPL": 1e5, "XOM": -1e5}
    spec = VarSpec(model="ewma", window=100)

    full = forecast_history(real_closes, money, spec, hold="money")
    tail = forecast_history(real_closes, money, spec, hold="money", last=20)

    day = full.index[30]
    shares = {t: m / real_closes.loc[day, t] for t, m in money.items()}  # the book bought at D's close
    assert portfolio_var(real_closes.loc[:day], shares, spec=spec).var == pytest.approx(full.loc[day, "var"])
    assert tail.equals(full.iloc[-20:])


def test_forecast_history_when_arguments_invalid_then_error_names_them(real_closes):
    with pytest.raises(InputError, match="hold"):
        forecast_history(real_closes, BOOK, VarSpec(), hold="weights")
    with pytest.raises(InputError, match="horizon_days"):
        forecast_history(real_closes, BOOK, VarSpec(horizon_days=10))
    with pytest.raises(InputError, match="ZZZ"):
        forecast_history(real_closes, {"ZZZ": 1.0}, VarSpec())
    with pytest.raises(InputError, match="window=2000"):
        forecast_history(real_closes, BOOK, VarSpec(window=2000))
    with pytest.raises(InputError, match="window=250"):
        forecast_history(real_closes, BOOK, VarSpec(window=250), last=0)


def test_backtest_when_crisis_years_then_a_row_per_model_and_slow_normal_breaks_more_than_ewma(real_closes):
    money = reference_book("equal_weight", list(real_closes.columns))
    frames: dict[str, pd.DataFrame] = {}

    out = backtest(real_closes, money, hold="money", spec=VarSpec(window=250), forecasts=frames)

    rows = {m["model"]: m for m in out["models"]}
    assert list(rows) == list(VAR_MODELS) and set(frames) == set(VAR_MODELS)
    assert all(r["observations"] == len(real_closes) - 1 - 250 for r in rows.values())
    # 2008 breaks a slow-moving normal VaR more often than one that follows volatility
    assert rows["normal"]["exceptions"] > rows["ewma"]["exceptions"]
    assert rows["normal"]["exceptions"] > rows["filtered_historical_portfolio"]["exceptions"]
    assert out["best_model"] in rows and out["hold"] == "money"
    assert out["start"] == str(real_closes.index[250])
    assert frames["ewma"]["var"].sum() == pytest.approx(
        forecast_history(real_closes, money, VarSpec(model="ewma", window=250), hold="money")["var"].sum()
    )


def test_backtest_rows_when_run_then_es_tests_and_stressed_var_per_model(real_closes):
    money = reference_book("equal_weight", list(real_closes.columns))

    out = backtest(
        real_closes,
        money,
        hold="money",
        spec=VarSpec(window=250, quantile="linear"),
        models=["normal", "filtered_historical_portfolio"],
    )

    rows = {m["model"]: m for m in out["models"]}
    # 2007-2010: a normal VaR on a slow covariance understates the crisis tail; the filtered model does not
    assert rows["normal"]["z2"] < rows["filtered_historical_portfolio"]["z2"]
    assert rows["normal"]["z2_p"] < 0.05 and not rows["normal"]["es_passes"]
    for row in rows.values():
        assert 0 < row["z2_p"] <= 1 and 0 < row["mcneil_frey_p"] <= 1
        assert row["stressed_start"] < row["stressed_end"] and row["stressed_var"] > row["var_last"] > 0
        assert row["stressed_cvar"] >= row["stressed_var"]
    assert rows["filtered_historical_portfolio"]["stressed_model"] == "historical"
    assert out["quantile"] == "linear"


def test_forecast_history_when_tails_asked_then_each_days_largest_losses_bound_var_and_average_to_cvar(
    real_closes,
):
    money = {"AAPL": 1e5, "XOM": -5e4, "JPM": 5e4}
    spec = VarSpec(model="filtered_historical_portfolio", window=250)
    tails: list = []

    history = forecast_history(real_closes, money, spec, hold="money", tails=tails, last=50)
    normal: list = []
    closed = forecast_history(
        real_closes, money, VarSpec(model="normal", window=250), hold="money", tails=normal
    )

    atoms = tails[0]
    assert atoms.largest.shape == (50, 4) and (atoms.total == 250).all()  # floor(250 x 1%) + 2 kept
    above = atoms.largest > history["var"].to_numpy()[:, None]
    tail_mean = np.where(above, atoms.largest, 0).sum(axis=1) / above.sum(axis=1)
    assert tail_mean == pytest.approx(history["cvar"].to_numpy(), rel=1e-12)
    assert (history["volatility"] > 0).all()
    top = normal[0].largest[:, :100].mean(axis=1)  # the closed form's atoms above its VaR average to its CVaR
    assert top == pytest.approx(closed["cvar"].to_numpy(), rel=1e-9)


def test_forecast_history_when_garch_refits_then_every_row_gets_its_anchors_fit_whatever_the_first_row(
    real_closes,
):
    money = {"AAPL": 1e5, "XOM": 1e5}
    spec = VarSpec(model="filtered_historical_garch", window=250, refit_days=63)

    full = forecast_history(real_closes, money, spec, hold="money")
    tail = forecast_history(real_closes, money, spec, hold="money", last=100)

    assert tail.equals(full.iloc[-100:])
    # a row on a refit day: its forecast is the live formula (a fit on its own window)
    returns = real_closes.loc[:, list(money)].pct_change().iloc[1:]
    j = 252  # the first multiple of 63 past the window
    row = full.iloc[j - 250]
    live = portfolio_var(
        real_closes.loc[: row.name],
        {t: m / real_closes.loc[row.name, t] for t, m in money.items()},
        spec=spec,
    )
    assert returns.index[j - 1] == row.name
    assert live.var == pytest.approx(row["var"], rel=1e-5)  # the same fit up to the optimiser's tolerance
    # 62 rows later the filter runs on that fit's parameters, on its own window
    data = returns.to_numpy()
    e = np.array(list(money.values()))
    fixed = replace(spec, garch=fit_gjr(data[j - 250 : j] @ e))
    later = window_figures(data[j + 62 - 250 : j + 62], e, fixed)
    assert later[0] == pytest.approx(full["var"].iloc[j + 62 - 250], rel=1e-12)


def test_backtest_when_history_shorter_than_a_stress_window_then_no_stressed_var(real_closes):
    short = real_closes.iloc[:200]
    money = {"AAPL": 1e5, "XOM": -1e5}

    out = backtest(short, money, hold="money", spec=VarSpec(window=60), models=["historical"])

    row = out["models"][0]
    assert row["stressed_var"] is None and row["stressed_start"] is None
    assert row["observations"] == 200 - 1 - 60 and "z2" in row
