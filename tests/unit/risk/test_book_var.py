"""The consolidated book's VaR: an equity-only book is today's figure exactly, a book with bonds or FX runs
the Monte Carlo, whose Euler components add up per position and per class and match the closed form on a
(nearly) linear book; every unusable input fails with the field and value named."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from marketdata.reference import read_reference_csv
from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.marks import FROM_CLOSE, FROM_MARKS
from risk.book import Book, Reference, build_book, load_reference, price_equities
from risk.book_var import book_var, equity_returns, prepare
from risk.irrbb import price_book
from risk.portfolio_var import portfolio_var
from risk.var import VarSpec, scenario_returns
from tests.risk_book_support import write_closes, write_reference

SHARES = {"AAA": 1000.0, "BBB": -400.0, "CCC": 700.0}
SPEC = VarSpec(window=60)


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = Lake(tmp_path / "lake")
    write_closes(lake)
    write_reference(lake)
    return lake


def _closes(lake: Lake) -> pd.DataFrame:
    return lake.read_close_matrix()


@pytest.mark.parametrize("model", ["filtered_historical_portfolio", "normal", "student_t"])
def test_book_var_when_equity_only_then_exactly_portfolio_var_no_monte_carlo(lake, model):
    closes, spec = _closes(lake), VarSpec(model=model, window=60)
    book = build_book(closes.index[-1], SHARES, closes.iloc[-1])

    result = book_var(book, closes, spec, seed=1)
    again = book_var(book, closes, spec, seed=2)  # the seed plays no part: no sampling

    expected = portfolio_var(closes, SHARES, spec=spec)
    assert (result.var, result.cvar) == (expected.var, expected.cvar) == (again.var, again.cvar)
    assert result.method in {"closed_form", "scenarios"} and result.class_var["equity"] == pytest.approx(
        result.var
    )
    assert sum(result.component_cvar.values()) == pytest.approx(result.cvar)


def test_book_var_when_equity_only_at_marks_then_portfolio_var_at_those_prices(lake):
    closes = _closes(lake)
    live = {"AAA": "123.5", "BBB": "nan", "CCC": None}
    book = build_book(closes.index[-1], SHARES, closes.iloc[-1], live)

    result = book_var(book, closes, SPEC)

    prices = closes.iloc[-1].copy()
    prices["AAA"] = 123.5
    assert result.var == portfolio_var(closes, SHARES, spec=SPEC, prices=prices).var
    assert result.var != portfolio_var(closes, SHARES, spec=SPEC).var
    assert book.price_sources == {"AAA": FROM_MARKS, "BBB": FROM_CLOSE, "CCC": FROM_CLOSE}
    assert book.mark_counts() == {FROM_MARKS: 1, FROM_CLOSE: 2}


def test_book_var_when_bonds_and_fx_then_components_add_up_per_position_and_class(lake):
    closes = _closes(lake)
    reference = load_reference(lake, closes.index[-1])
    shares = {t: 100 * q for t, q in SHARES.items()}  # equities of the size of the other classes
    book = build_book(closes.index[-1], shares, closes.iloc[-1], None, reference)

    result = book_var(book, closes, SPEC, paths=20_000, seed=7)
    again = book_var(book, closes, SPEC, paths=20_000, seed=7, prepared=prepare(reference))

    assert result.method == "monte_carlo" and result.var == again.var and result.cvar == again.cvar
    assert sum(result.component_var.values()) == pytest.approx(result.var, rel=1e-9)
    assert sum(result.component_cvar.values()) == pytest.approx(result.cvar, rel=1e-9)
    assert sum(result.class_var.values()) == pytest.approx(result.var, rel=1e-9)
    assert sum(result.class_cvar.values()) == pytest.approx(result.cvar, rel=1e-9)
    assert all(result.class_var[c] > 0 for c in ("equity", "rates", "fx"))
    assert set(result.classes.values()) == {"equity", "rates", "fx"} and len(result.classes) == 3 + 6 + 5
    assert reference.nodes is not None
    bonds = price_book(reference.bonds, reference.nodes)
    assert result.values["bond:UST-10Y"] == pytest.approx(bonds["UST-10Y"], rel=1e-12)
    assert result.values["fx:EUR"] == pytest.approx(8_000_000 * 1.065)
    assert result.revaluation_error is not None and result.revaluation_error < 1e-6
    out = result.as_dict()
    assert out["class_var_sum"] == pytest.approx(out["var"]) and len(out["components"]) == 14


def test_book_var_when_fx_only_then_close_to_the_normal_closed_form_and_its_euler_allocation(lake):
    closes = _closes(lake)
    fx = read_reference_csv("fx")
    reference = Reference(closes.index[-1], read_reference_csv("bond_book").iloc[:0], None, fx)
    book = Book(closes.index[-1], reference=reference)

    result = book_var(book, closes, SPEC, paths=200_000, seed=3)

    e = (fx["notional"] * fx["spot_usd"]).to_numpy()
    vol = fx["annual_vol"].to_numpy() / np.sqrt(252)
    cov = (0.3 + 0.7 * np.eye(5)) * np.outer(vol, vol)
    sigma, z = float(np.sqrt(e @ cov @ e)), stats.norm.ppf(0.99)
    assert result.var == pytest.approx(z * sigma, rel=0.03)  # exp(r) - 1 ~ r at daily moves
    assert result.cvar == pytest.approx(sigma * stats.norm.pdf(z) / 0.01, rel=0.03)
    closed = e * (cov @ e) / sigma * z
    np.testing.assert_allclose(list(result.component_var.values()), closed, atol=0.03 * result.var)
    assert result.class_var == {"equity": 0.0, "rates": 0.0, "fx": pytest.approx(result.var)}


def test_equity_returns_when_drawn_then_scenario_rows_or_the_models_covariance():
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.01, (80, 3))
    e = np.array([1e5, -5e4, 2e4])
    spec = VarSpec(model="historical", window=60)
    rows = scenario_returns(r, e, spec)

    drawn = equity_returns(r, e, spec, np.random.default_rng(1), 5000)

    assert {tuple(x) for x in drawn} <= {tuple(x) for x in rows} and len({tuple(x) for x in drawn}) > 70
    t = equity_returns(r, e, VarSpec(model="student_t", window=60), np.random.default_rng(1), 200_000)
    np.testing.assert_allclose(t.std(axis=0), r.std(axis=0), rtol=0.1)  # unit-variance t, Ledoit-Wolf
    ewma = equity_returns(r, e, VarSpec(model="ewma", window=60), np.random.default_rng(1), 1000)
    assert ewma.shape == (1000, 3) and np.isfinite(ewma).all()


def test_book_var_when_empty_or_too_few_paths_then_zero_or_input_error(lake):
    closes = _closes(lake)
    assert book_var(Book(closes.index[-1]), closes, SPEC).var == 0.0
    reference = load_reference(lake, closes.index[-1])
    with pytest.raises(InputError, match="paths"):
        book_var(Book(closes.index[-1], reference=reference), closes, SPEC, paths=10)


def test_load_reference_when_a_table_is_missing_then_input_error_names_it(tmp_path):
    lake = Lake(tmp_path / "lake")
    write_reference(lake)
    lake.reference("curve").unlink()
    with pytest.raises(InputError, match="reference table curve") as info:
        load_reference(lake, date(2024, 5, 1))
    assert "QB_VAR_SCOPE=equities" in str(info.value)


def test_load_reference_when_a_bond_has_matured_then_input_error_names_bond_and_date(tmp_path):
    lake = Lake(tmp_path / "lake")
    write_reference(lake)
    with pytest.raises(InputError, match="bond UST-2Y maturity_date") as info:
        load_reference(lake, date(2025, 1, 2))
    assert "2024-12-31" in str(info.value)


@pytest.mark.parametrize(
    ("column", "value"), [("spot_usd", 0.0), ("spot_usd", float("nan")), ("notional", np.inf)]
)
def test_load_reference_when_an_fx_row_is_unusable_then_input_error_names_it(tmp_path, column, value):
    lake = Lake(tmp_path / "lake")
    fx = read_reference_csv("fx")
    fx.loc[1, column] = value
    write_reference(lake, {"fx": fx})
    with pytest.raises(InputError, match=f"fx GBP {column}"):
        load_reference(lake, date(2024, 5, 1))


def test_price_equities_when_a_ticker_has_neither_mark_nor_close_then_input_error():
    with pytest.raises(InputError, match="ZZZ"):
        price_equities({"ZZZ": 1.0}, pd.Series({"AAA": 10.0}), {"ZZZ": None})
    prices, sources = price_equities({"ZZZ": 1.0}, pd.Series({"AAA": 10.0}), {"ZZZ": b"12.5"})
    assert prices == {"ZZZ": 12.5} and sources == {"ZZZ": FROM_MARKS}


def test_book_var_when_revaluation_drifts_from_quantlib_or_window_too_short_then_it_raises(lake):
    import dataclasses

    closes = _closes(lake)
    reference = load_reference(lake, closes.index[-1])
    prepared = prepare(reference)
    assert prepared.revaluer is not None
    off = dataclasses.replace(prepared.revaluer, base_zeros=prepared.revaluer.base_zeros + 1e-4)  # 1 bp off
    book = build_book(closes.index[-1], SHARES, closes.iloc[-1], None, reference)

    with pytest.raises(RuntimeError, match="differs from QuantLib"):
        book_var(book, closes, SPEC, paths=2_000, prepared=dataclasses.replace(prepared, revaluer=off))
    with pytest.raises(InputError, match="at least 20 finite returns"):
        book_var(book, closes.iloc[-15:], SPEC, paths=2_000, prepared=prepared)
