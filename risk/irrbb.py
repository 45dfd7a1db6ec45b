"""Interest-rate shocks on a fixed-income book, priced with QuantLib.

* The base curve is bootstrapped from a par-rate table (par bonds paying ``coupon_frequency`` coupons a
  year) into continuously compounded zero rates at the pillars; base and shocked curves are then both
  ``ZeroCurve`` objects, linear in the zero rate, so every difference is the shock's.
* Shocks are the six standard scenarios of BCBS d368 (IRRBB, April 2016), annex 2, applied to the zero
  rate at maturity t (years), with x = 4 years:
  parallel ±R_parallel; short ±R_short e^(-t/x); long ±R_long (1 - e^(-t/x));
  steepener -0.65 |ΔR_short(t)| + 0.9 |ΔR_long(t)|; flattener +0.8 |ΔR_short(t)| - 0.6 |ΔR_long(t)|;
  USD sizes R_parallel 200 bp, R_short 300 bp, R_long 150 bp. User-sized parallel shifts come on top.
* Delta EVE of a scenario = shocked value - base value, per position and in total; key-rate durations
  bump one pillar's zero rate by 1 bp.

Bonds: fixed-rate bullets, face, annual coupon rate, maturity, coupons a year; schedules roll backward from
maturity, unadjusted (no holiday calendar), coupons accrue 30/360 (so each full period pays
face x rate / frequency), settlement on the valuation date.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError

SHOCK_DECAY_YEARS = 4.0
#: BCBS d368 shock sizes (basis points) by currency: parallel, short, long.
SHOCK_SIZES_BP: dict[str, tuple[float, float, float]] = {"USD": (200.0, 300.0, 150.0)}
BCBS_SCENARIOS = ("parallel_up", "parallel_down", "steepener", "flattener", "short_up", "short_down")


def bcbs_shock(scenario: str, t: np.ndarray | float, currency: str = "USD") -> np.ndarray:
    """Zero-rate change (decimal) of a BCBS d368 scenario at maturities ``t`` (years)."""
    if currency not in SHOCK_SIZES_BP:
        raise InputError("currency", currency, "one of " + ", ".join(SHOCK_SIZES_BP))
    r_par, r_short, r_long = (bp / 10_000 for bp in SHOCK_SIZES_BP[currency])
    t = np.asarray(t, dtype=np.float64)
    short = r_short * np.exp(-t / SHOCK_DECAY_YEARS)
    long = r_long * (1 - np.exp(-t / SHOCK_DECAY_YEARS))
    shocks = {
        "parallel_up": np.full_like(t, r_par),
        "parallel_down": np.full_like(t, -r_par),
        "short_up": short,
        "short_down": -short,
        "steepener": -0.65 * np.abs(short) + 0.9 * np.abs(long),
        "flattener": 0.8 * np.abs(short) - 0.6 * np.abs(long),
    }
    if scenario not in shocks:
        raise InputError("scenario", scenario, "one of " + ", ".join(BCBS_SCENARIOS))
    return shocks[scenario]


def scenario_shift(name: str, currency: str = "USD") -> Callable[[np.ndarray], np.ndarray]:
    """The shift function of a scenario name: a BCBS scenario or ``parallel_<+/-N>bp`` (user-sized)."""
    if name in BCBS_SCENARIOS:
        return lambda t: bcbs_shock(name, t, currency)
    if name.startswith("parallel_") and name.endswith("bp"):
        try:
            bp = float(name[len("parallel_") : -2])
        except ValueError:
            raise InputError("scenario", name, "parallel_<number>bp, e.g. parallel_+50bp") from None
        return lambda t: np.full_like(np.asarray(t, dtype=np.float64), bp / 10_000)
    raise InputError(
        "scenario", name, "a BCBS scenario (" + ", ".join(BCBS_SCENARIOS) + ") or parallel_<N>bp"
    )


def ql_date(d: date) -> Any:
    import QuantLib as ql

    return ql.Date(d.day, d.month, d.year)


def _frequency(coupons_per_year: int) -> Any:
    import QuantLib as ql

    table = {1: ql.Annual, 2: ql.Semiannual, 4: ql.Quarterly, 12: ql.Monthly}
    if coupons_per_year not in table:
        raise InputError("coupon_frequency", coupons_per_year, "1, 2, 4 or 12 coupons a year")
    return table[coupons_per_year]


@dataclass(frozen=True)
class ZeroNodes:
    """Pillars of a zero curve: dates, times (Act/365F years) and continuously compounded zero rates."""

    as_of: date
    dates: tuple[date, ...]
    times: np.ndarray
    zeros: np.ndarray

    def shifted(self, shift: Callable[[np.ndarray], np.ndarray]) -> ZeroNodes:
        return ZeroNodes(self.as_of, self.dates, self.times, self.zeros + shift(self.times))

    def curve(self) -> Any:
        """A QuantLib ZeroCurve through these nodes (linear in the zero rate, continuous compounding)."""
        import QuantLib as ql

        curve = ql.ZeroCurve(
            [ql_date(d) for d in self.dates], list(map(float, self.zeros)), ql.Actual365Fixed()
        )
        # Past the last pillar QuantLib extrapolates flat-forward (risk.bond_paths copies that rule).
        curve.enableExtrapolation()
        return curve


def bootstrap_par_curve(as_of: date, curve_table: pd.DataFrame, coupons_per_year: int = 2) -> ZeroNodes:
    """Zero nodes from par rates (columns tenor_years, par_rate): each tenor is a par bond priced at 100."""
    import QuantLib as ql

    if curve_table.empty:
        raise InputError("curve", "empty", "a par-rate table with tenor_years, par_rate")
    ql.Settings.instance().evaluationDate = ql_date(as_of)
    today = ql_date(as_of)
    helpers = []
    for tenor, rate in sorted(zip(curve_table["tenor_years"], curve_table["par_rate"], strict=True)):
        months = int(round(float(tenor) * 12))
        if months < 1 or not -0.05 < float(rate) < 0.5:
            raise InputError(
                "curve row", (tenor, rate), "a tenor of at least one month and a plausible par rate"
            )
        maturity = today + ql.Period(months, ql.Months)
        schedule = ql.Schedule(
            today,
            maturity,
            ql.Period(_frequency(coupons_per_year)),
            ql.NullCalendar(),
            ql.Unadjusted,
            ql.Unadjusted,
            ql.DateGeneration.Backward,
            False,
        )
        helpers.append(
            ql.FixedRateBondHelper(
                ql.QuoteHandle(ql.SimpleQuote(100.0)),
                0,
                100.0,
                schedule,
                [float(rate)],
                ql.Thirty360(ql.Thirty360.BondBasis),
            )
        )
    curve = ql.PiecewiseLinearZero(today, helpers, ql.Actual365Fixed())
    nodes = curve.nodes()
    dates = tuple(date(d.year(), d.month(), d.dayOfMonth()) for d, _ in nodes)
    times = np.array([(d - as_of).days / 365.0 for d in dates])
    zeros = np.array([curve.zeroRate(d, ql.Actual365Fixed(), ql.Continuous).rate() for d, _ in nodes])
    return ZeroNodes(as_of, dates, times, zeros)


def ql_bond(row: Any, as_of: date) -> Any:
    import QuantLib as ql

    maturity = row.maturity_date
    if maturity <= as_of:
        raise InputError(
            f"bond {row.id} maturity_date", maturity.isoformat(), f"a date after {as_of.isoformat()}"
        )
    if not row.face > 0:
        raise InputError(f"bond {row.id} face", row.face, "a positive amount")
    if row.currency not in SHOCK_SIZES_BP:
        raise InputError(f"bond {row.id} currency", row.currency, "one of " + ", ".join(SHOCK_SIZES_BP))
    freq = _frequency(int(row.coupon_frequency))
    # A schedule long enough to roll backward from maturity; past coupons are ignored by the engine.
    start = ql_date(as_of) - ql.Period(1, ql.Years)
    schedule = ql.Schedule(
        start,
        ql_date(maturity),
        ql.Period(freq),
        ql.NullCalendar(),
        ql.Unadjusted,
        ql.Unadjusted,
        ql.DateGeneration.Backward,
        False,
    )
    return ql.FixedRateBond(
        0, float(row.face), schedule, [float(row.coupon_rate)], ql.Thirty360(ql.Thirty360.BondBasis)
    )


def price_book(book: pd.DataFrame, nodes: ZeroNodes) -> pd.Series:
    """Present value of each bond (index: id) on the curve through ``nodes``."""
    import QuantLib as ql

    ql.Settings.instance().evaluationDate = ql_date(nodes.as_of)
    handle = ql.YieldTermStructureHandle(nodes.curve())
    engine = ql.DiscountingBondEngine(handle)
    values = {}
    for row in book.itertuples(index=False):
        bond = ql_bond(row, nodes.as_of)
        bond.setPricingEngine(engine)
        values[row.id] = bond.NPV()
    return pd.Series(values, dtype="float64")


@dataclass(frozen=True)
class ScenarioOutcome:
    scenario: str
    base: pd.Series
    shocked: pd.Series

    @property
    def change(self) -> pd.Series:
        return self.shocked - self.base

    def rows(self) -> list[dict[str, Any]]:
        out = [
            {
                "scenario": self.scenario,
                "position": pid,
                "base_value": float(self.base[pid]),
                "shocked_value": float(self.shocked[pid]),
                "change": float(self.change[pid]),
            }
            for pid in self.base.index
        ]
        out.append(
            {
                "scenario": self.scenario,
                "position": "TOTAL",
                "base_value": float(self.base.sum()),
                "shocked_value": float(self.shocked.sum()),
                "change": float(self.change.sum()),
            }
        )
        return out


def _scaled(shift: Callable[[np.ndarray], np.ndarray], scale: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: scale * shift(t)


def rate_scenarios(
    book: pd.DataFrame, nodes: ZeroNodes, scenarios: Iterable[str] = BCBS_SCENARIOS, shock_scale: float = 1.0
) -> list[ScenarioOutcome]:
    """Delta EVE of the book under each scenario (shocks multiplied by ``shock_scale``)."""
    if not math.isfinite(shock_scale) or shock_scale <= 0:
        raise InputError("shock_scale", shock_scale, "a positive number (1 = the standard's sizes)")
    base = price_book(book, nodes)
    outcomes = []
    for name in scenarios:
        shocked = price_book(book, nodes.shifted(_scaled(scenario_shift(name), shock_scale)))
        outcomes.append(ScenarioOutcome(name, base, shocked))
    return outcomes


def key_rate_durations(book: pd.DataFrame, nodes: ZeroNodes, bump_bp: float = 1.0) -> pd.DataFrame:
    """Key-rate durations (years): -(V(bumped pillar) - V) / (V x bump), one column per pillar tenor."""
    base = price_book(book, nodes)
    columns = {}
    for i, t in enumerate(nodes.times):
        if t == 0:
            continue
        bumped = nodes.zeros.copy()
        bumped[i] += bump_bp / 10_000
        value = price_book(book, ZeroNodes(nodes.as_of, nodes.dates, nodes.times, bumped))
        columns[f"{t:.2f}y"] = -(value - base) / (base * bump_bp / 10_000)
    return pd.DataFrame(columns)
