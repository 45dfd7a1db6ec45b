"""VaR/CVaR of the consolidated book (:mod:`risk.book`) and their Euler allocation per position and class.

* **Equity-only book** (no bond, no FX exposure): :func:`risk.portfolio_var.portfolio_var`, the formula the
  backtest validates (closed form or the window's scenarios, no sampling noise), at the book's prices.
* **Otherwise, Monte Carlo** (seeded, ``paths`` paths, one day scaled by sqrt(horizon)), per path:

  - equities: one day's simple returns of the held tickers from the same window and model as the equity
    VaR; the historical-family models (:data:`risk.var.SCENARIO_MODELS`) pick one of the model's scenario
    rows (:func:`risk.var.scenario_returns`) uniformly per path, ``normal``/``student_t`` draw from the
    window's covariance (:func:`risk.covariance.covariance`; Student-t: a multivariate t of unit variance,
    ``dof`` degrees of freedom), ``ewma`` from the EWMA covariance; loss = -exposure x return;
  - rates and FX: one joint normal draw of the pillar zero-rate changes and the spot log-returns
    (:class:`risk.factors.FactorModel`, stated assumptions), independent of the equity draw;
  - bonds: full revaluation on the shocked curve (:class:`risk.bond_paths.Revaluer`), loss = base value -
    shocked value; checked against QuantLib on ``check_paths`` paths (fails closed above 1e-6 relative);
  - FX: loss = -exposure x (exp(r) - 1).

  VaR, CVaR and component VaR/CVaR come from :func:`risk.contributions.euler_contributions` on the
  (paths x positions) losses: components sum to the totals, per position and per class (equity, rates, fx).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from quantbridge.marks import FROM_MARKS
from risk.bond_paths import CHECK_TOLERANCE, Revaluer, check_against_quantlib
from risk.book import EQUITY, FX, RATES, Book, Reference
from risk.factors import FactorModel
from risk.var import MIN_RETURNS, SCENARIO_MODELS, VarSpec

#: Monte Carlo paths of a consolidated refresh: 99% VaR from 1,000 tail paths, ~0.3 s on 2 cores for the
#: demo book (20 equities, 6 bonds, 5 currencies), far inside the sensor's 30-second interval.
DEFAULT_PATHS = 100_000
#: Paths revalued by QuantLib as well, every run (a few ms each).
CHECK_PATHS = 3
DEFAULT_SEED = 20260101


@dataclass(frozen=True)
class Prepared:
    """What a reference snapshot costs to set up once (QuantLib cash flows, factor matrix square root)."""

    reference: Reference
    revaluer: Revaluer | None
    factors: FactorModel


def prepare(reference: Reference) -> Prepared:
    """Cash flows of the bond book and the factor model of ``reference`` (cache it per snapshot)."""
    revaluer = None
    if len(reference.bonds):
        if reference.nodes is None:
            raise InputError("curve", None, "a zero curve for the bond book (reference table curve)")
        revaluer = Revaluer.build(reference.bonds, reference.nodes)
    times = reference.nodes.times if revaluer is not None and reference.nodes is not None else None
    return Prepared(reference, revaluer, FactorModel.build(times, reference.fx))


@dataclass(frozen=True)
class BookVar:
    """Totals, the base value and Euler components of every position (names: tickers, ``bond:<id>``,
    ``fx:<currency>``) and of every asset class; losses positive, money in USD over the horizon."""

    var: float
    cvar: float
    volatility: float
    confidence: float
    horizon_days: int
    model: str
    method: str
    paths: int
    seconds: float
    values: dict[str, float]
    classes: dict[str, str]
    component_var: dict[str, float]
    component_cvar: dict[str, float]
    seed: int | None = None
    revaluation_error: float | None = None
    observations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def by_class(self, components: dict[str, float]) -> dict[str, float]:
        out = dict.fromkeys((EQUITY, RATES, FX), 0.0)
        for name, value in components.items():
            out[self.classes[name]] += value
        return out

    @property
    def class_var(self) -> dict[str, float]:
        return self.by_class(self.component_var)

    @property
    def class_cvar(self) -> dict[str, float]:
        return self.by_class(self.component_cvar)

    def as_dict(self) -> dict[str, Any]:
        rows = [
            {
                "position": name,
                "class": self.classes[name],
                "value": self.values[name],
                "component_var": self.component_var[name],
                "component_cvar": self.component_cvar[name],
            }
            for name in self.values
        ]
        values = self.by_class(self.values)
        classes = {
            c: {"value": values[c], "component_var": self.class_var[c], "component_cvar": self.class_cvar[c]}
            for c in (EQUITY, RATES, FX)
        }
        return {
            "var": self.var,
            "cvar": self.cvar,
            "volatility": self.volatility,
            "confidence": self.confidence,
            "horizon_days": self.horizon_days,
            "model": self.model,
            "method": self.method,
            "paths": self.paths,
            "seed": self.seed,
            "seconds": self.seconds,
            "observations": self.observations,
            "classes": classes,
            "class_var_sum": sum(self.class_var.values()),
            "class_cvar_sum": sum(self.class_cvar.values()),
            "components": rows,
            "revaluation_check": None
            if self.revaluation_error is None
            else {"max_relative_error": self.revaluation_error, "tolerance": CHECK_TOLERANCE},
            **self.extra,
        }


def book_var(
    book: Book,
    closes: pd.DataFrame,
    spec: VarSpec,
    *,
    quarantined: Iterable[Any] = (),
    paths: int = DEFAULT_PATHS,
    seed: int = DEFAULT_SEED,
    check_paths: int = CHECK_PATHS,
    prepared: Prepared | None = None,
) -> BookVar:
    """VaR/CVaR of ``book`` for the day after the last date of ``closes`` (the lake's closes up to it)."""
    t0 = time.perf_counter()
    quarantined = list(quarantined)
    if book.equity_only:
        return _equity_only(book, closes, spec, quarantined, t0)
    if isinstance(paths, bool) or not isinstance(paths, int) or paths < 1_000:
        raise InputError("paths", paths, "an integer >= 1,000 (Monte Carlo paths)")
    if book.reference is None:  # equity_only is False only with a reference  # pragma: no cover
        raise InputError("book", "no reference", "a consolidated book")
    prepared = prepared if prepared is not None and prepared.reference is book.reference else None
    prepared = prepared or prepare(book.reference)
    rng = np.random.default_rng(seed)
    scale = math.sqrt(spec.horizon_days)
    names: list[str] = []
    classes: dict[str, str] = {}
    values: dict[str, float] = {}
    blocks: list[np.ndarray] = []
    observations = 0
    if book.shares:
        from risk.portfolio_var import equity_window

        returns, money = equity_window(closes, book.shares, spec.window, quarantined, _marks(book))
        r, e = returns.to_numpy(dtype=np.float64), money.to_numpy(dtype=np.float64)
        if len(r) < MIN_RETURNS or not np.isfinite(r).all():
            raise InputError("returns", f"{len(r)} daily returns", f"at least {MIN_RETURNS} finite returns")
        observations = len(r)
        blocks.append(-(equity_returns(r, e, spec, rng, paths) * scale) * e)
        for ticker, v in money.items():
            names.append(str(ticker))
            classes[str(ticker)], values[str(ticker)] = EQUITY, float(v)
    rate_shocks, fx_returns = prepared.factors.draw(rng, paths, scale)
    error = None
    if prepared.revaluer is not None:
        base = prepared.revaluer.base_values()
        blocks.append(base - prepared.revaluer.revalue(rate_shocks))
        for bond, v in zip(prepared.revaluer.ids, base, strict=True):
            names.append(f"bond:{bond}")
            classes[names[-1]], values[names[-1]] = RATES, float(v)
        if check_paths:
            error = check_against_quantlib(book.bonds, prepared.revaluer, rate_shocks, check_paths)
            if not error <= CHECK_TOLERANCE:
                raise RuntimeError(
                    f"bond revaluation differs from QuantLib by {error:.3g} (relative) > {CHECK_TOLERANCE}"
                )
    fx_money = book.fx_exposures()
    if len(fx_money):
        blocks.append(-fx_money.to_numpy() * np.expm1(fx_returns))
        for name, v in fx_money.items():
            names.append(str(name))
            classes[str(name)], values[str(name)] = FX, float(v)
    from risk.contributions import euler_contributions

    losses = np.hstack(blocks)
    c = euler_contributions(losses, spec.confidence)
    named = c.named(names)
    total = losses.sum(axis=1)
    return BookVar(
        var=c.var,
        cvar=c.cvar,
        volatility=float(np.std(total)),
        confidence=spec.confidence,
        horizon_days=int(spec.horizon_days),
        model=spec.model,
        method="monte_carlo",
        paths=paths,
        seconds=time.perf_counter() - t0,
        values=values,
        classes=classes,
        component_var=named["component_var"],
        component_cvar=named["component_cvar"],
        seed=seed,
        revaluation_error=error,
        observations=observations,
        extra={"kernel_sum": c.kernel_sum, "bandwidth": c.bandwidth},
    )


def _marks(book: Book) -> pd.Series | None:
    """The book's prices when any came from ``qb:marks`` (None: the lake close, portfolio_var's default)."""
    if all(s != FROM_MARKS for s in book.price_sources.values()):
        return None
    return pd.Series(book.prices, dtype="float64")


def _equity_only(
    book: Book, closes: pd.DataFrame, spec: VarSpec, quarantined: list[Any], t0: float
) -> BookVar:
    """The equity VaR of today: portfolio_var's formula (the backtested one), components by position."""
    if not book.shares:
        return BookVar(
            0.0, 0.0, 0.0, spec.confidence, int(spec.horizon_days), spec.model, "none", 0, 0.0, {}, {}, {}, {}
        )
    from risk.portfolio_var import portfolio_var

    result = portfolio_var(
        closes, book.shares, quarantined=quarantined, spec=spec, mode="full", prices=_marks(book)
    )
    values = book.equity_exposures().to_dict()
    return BookVar(
        var=result.var,
        cvar=result.cvar,
        volatility=result.volatility,
        confidence=result.confidence,
        horizon_days=result.horizon_days,
        model=result.model,
        method="closed_form" if result.paths == 0 else "scenarios",
        paths=result.paths,
        seconds=time.perf_counter() - t0,
        values={t: float(values[t]) for t in result.component_var},
        classes=dict.fromkeys(result.component_var, EQUITY),
        component_var=result.component_var,
        component_cvar=result.component_cvar,
        observations=result.observations,
    )


def equity_returns(
    r: np.ndarray, e: np.ndarray, spec: VarSpec, rng: np.random.Generator, paths: int
) -> np.ndarray:
    """(paths, n_assets) one-day simple returns drawn from the window ``r`` under ``spec``'s model."""
    if spec.model in SCENARIO_MODELS:
        from risk.var import scenario_returns

        rows = scenario_returns(r, e, spec)
        return rows[rng.integers(0, len(rows), size=paths)]
    from risk.covariance import covariance, ewma_covariance, psd_root

    cov = ewma_covariance(r, spec.decay) if spec.model == "ewma" else covariance(r, spec.cov_method)
    root, _ = psd_root(cov)
    draws = rng.standard_normal((paths, len(cov))) @ root.T
    if spec.model == "student_t":  # multivariate t with unit variance: Z sqrt((dof - 2) / chi2(dof))
        draws *= np.sqrt((spec.dof - 2) / rng.chisquare(spec.dof, size=paths))[:, None]
    return draws
