"""The consolidated book the VaR measures: equities, the bond book and the FX exposures, as of one date.

* **equities**: ticker -> shares (the Redis positions, or a file), each valued at its trusted mark
  (:mod:`quantbridge.marks`: ``qb:marks`` when the stored price is a positive finite number, else the lake's
  last close up to the valuation date); :attr:`Book.price_sources` records which;
* **rates**: the lake's ``bond_book`` reference table, every bond fully revalued on the USD zero curve
  bootstrapped from the lake's ``curve`` table at the valuation date (as the nightly stress does:
  :func:`risk.stress_night.load_inputs`; the table's own ``as_of`` column is not used);
* **fx**: the lake's ``fx`` reference table, exposure notional x spot_usd (USD), moving with the spot.

The valuation date is the lake's last close date D (the equity VaR's). ``scope`` ``equities`` is the
equity book alone at the lake's close (marks ignored), today's figure of the replay and the backtest;
``consolidated`` adds the bond book and FX exposures and prices equities at the marks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.marks import FROM_CLOSE, FROM_MARKS, marks_with_source
from risk.irrbb import ZeroNodes

SCOPES = ("equities", "consolidated")
EQUITY, RATES, FX = "equity", "rates", "fx"
ASSET_CLASSES = (EQUITY, RATES, FX)
#: Reference tables the consolidated scope reads (marketdata.reference; `qb ingest` loads them).
REFERENCE_TABLES = ("bond_book", "curve", "fx")


@dataclass(frozen=True)
class Reference:
    """The bond book, its curve and the FX exposures as of ``as_of`` (checked)."""

    as_of: date
    bonds: pd.DataFrame
    nodes: ZeroNodes | None
    fx: pd.DataFrame
    curve_table_as_of: str = ""


@dataclass(frozen=True)
class Book:
    """One book at ``as_of``. ``shares``/``prices``/``price_sources`` per held ticker (non-zero shares)."""

    as_of: date
    shares: dict[str, float] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    price_sources: dict[str, str] = field(default_factory=dict)
    reference: Reference | None = None

    @property
    def bonds(self) -> pd.DataFrame:
        return self.reference.bonds if self.reference is not None else pd.DataFrame()

    @property
    def fx(self) -> pd.DataFrame:
        return self.reference.fx if self.reference is not None else pd.DataFrame()

    @property
    def equity_only(self) -> bool:
        """No bond and no FX exposure: the equity VaR's closed form / scenarios apply, no Monte Carlo."""
        return len(self.bonds) == 0 and len(self.fx) == 0

    def equity_exposures(self) -> pd.Series:
        """Money per ticker, shares x price."""
        return pd.Series({t: q * self.prices[t] for t, q in self.shares.items()}, dtype="float64")

    def fx_exposures(self) -> pd.Series:
        """USD per currency (index ``fx:<currency>``), notional x spot_usd."""
        fx = self.fx
        if not len(fx):
            return pd.Series(dtype="float64")
        money = fx["notional"].to_numpy(dtype=np.float64) * fx["spot_usd"].to_numpy(dtype=np.float64)
        return pd.Series(money, index=[f"fx:{c}" for c in fx["currency"]], dtype="float64")

    def mark_counts(self) -> dict[str, int]:
        """How many held tickers were valued at ``qb:marks`` and how many at the lake close."""
        values = list(self.price_sources.values())
        return {FROM_MARKS: values.count(FROM_MARKS), FROM_CLOSE: values.count(FROM_CLOSE)}


def price_equities(
    shares: Mapping[str, float], last_close: pd.Series, live: Mapping[str, Any] | None = None
) -> tuple[dict[str, float], dict[str, str]]:
    """(price, source) per held ticker: the trusted mark in ``live`` (raw ``qb:marks`` values) or the lake's
    last close. A ticker with neither is an InputError naming it."""
    close = {str(t): float(p) for t, p in last_close.items() if math.isfinite(float(p))}
    raw = {t: (live or {}).get(t) for t in shares}
    prices: dict[str, float] = {}
    sources: dict[str, str] = {}
    for ticker, (price, source) in marks_with_source(raw, close).items():
        if price is None or source is None:
            raise InputError(
                "positions", ticker, "tickers with a close in the lake up to the valuation date (or a mark)"
            )
        prices[ticker], sources[ticker] = price, source
    return prices, sources


def build_book(
    as_of: date,
    shares: Mapping[str, float],
    last_close: pd.Series,
    live: Mapping[str, Any] | None = None,
    reference: Reference | None = None,
) -> Book:
    """A book of ``shares`` (zero quantities dropped) priced by :func:`price_equities`, plus ``reference``."""
    held = {str(t): float(q) for t, q in shares.items() if q != 0.0}
    prices, sources = price_equities(held, last_close, live)
    return Book(as_of, held, prices, sources, reference)


def load_reference(lake: Lake, as_of: date) -> Reference:
    """The bond book, the curve bootstrapped at ``as_of`` and the FX table, from the lake, checked.

    A table missing from the lake, a matured bond, an FX row with a non-positive spot or a non-finite
    notional: InputError naming the table or field and the value (the sensor fails closed on it)."""
    from marketdata.reference import read_reference
    from risk.irrbb import bootstrap_par_curve

    tables: dict[str, pd.DataFrame] = {}
    for name in REFERENCE_TABLES:
        try:
            tables[name] = read_reference(lake, name)
        except FileNotFoundError:
            raise InputError(
                f"reference table {name}",
                str(lake.reference(name)),
                "the lake's reference tables (loaded by `qb ingest`)",
                hint="or value the equities alone with QB_VAR_SCOPE=equities",
            ) from None
    bonds, fx, curve = tables["bond_book"], tables["fx"], tables["curve"]
    check_fx(fx)
    nodes = None
    if len(bonds):
        matured = bonds[[d <= as_of for d in bonds["maturity_date"]]]
        if len(matured):
            row = matured.iloc[0]
            raise InputError(
                f"bond {row['id']} maturity_date",
                str(row["maturity_date"]),
                f"a date after the valuation date {as_of.isoformat()} (remove matured bonds from bond_book)",
            )
        nodes = bootstrap_par_curve(as_of, curve)
    curve_as_of = str(curve["as_of"].iloc[0]) if "as_of" in curve and len(curve) else ""
    return Reference(as_of, bonds.reset_index(drop=True), nodes, fx.reset_index(drop=True), curve_as_of)


def check_fx(fx: pd.DataFrame) -> None:
    """Every FX row: a finite notional and a positive finite spot_usd (annual_vol: risk.factors)."""
    for row in fx.itertuples(index=False):
        if not math.isfinite(float(row.notional)):
            raise InputError(f"fx {row.currency} notional", row.notional, "a finite amount")
        spot = float(row.spot_usd)
        if not (math.isfinite(spot) and spot > 0):
            raise InputError(f"fx {row.currency} spot_usd", row.spot_usd, "a positive USD price")
