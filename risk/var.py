"""Value at Risk and Conditional VaR (expected shortfall) of a linear portfolio.

Conventions: ``exposures`` (n_assets,) money held in each asset (quantity x price, portfolio currency);
``cov`` (n_assets, n_assets) covariance of daily simple returns; losses are positive numbers; the
horizon scales one-day figures by sqrt(``horizon_days``) (i.i.d. returns).

Forecasts (:class:`VarSpec`, :func:`forecast`, :func:`window_figures`): the next-day VaR/CVaR of every
model from a window of daily returns, in closed form (normal, Student-t) or on the window's scenarios
(historical, filtered historical). This is the one formula of the VaR sensor, ``qb var``, the nightly
report and the backtest (:mod:`risk.portfolio_var`, :mod:`risk.backtest`).

Monte Carlo on a covariance (plain or with variance reduction) lives in :mod:`risk.monte_carlo`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from quantbridge.errors import InputError
from risk.covariance import covariance, ewma_covariance, ewma_variance

#: Floor of an EWMA variance (a constant price has none), so a standardised return stays finite.
_TINY = 1e-300


@dataclass(frozen=True)
class VarResult:
    """VaR/CVaR in the portfolio currency; ``volatility`` is the P&L standard deviation over the horizon."""

    var: float
    cvar: float
    volatility: float
    confidence: float
    horizon_days: int
    paths: int
    model: str
    backend: str
    seconds: float
    mode: str = "closed_form"
    dtype: str = "float64"
    #: Daily returns behind the forecast (0 for Monte Carlo on a given covariance).
    observations: int = 0
    component_var: dict[str, float] = field(default_factory=dict)
    component_cvar: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "var",
                "cvar",
                "volatility",
                "confidence",
                "horizon_days",
                "paths",
                "model",
                "backend",
                "seconds",
                "mode",
                "dtype",
                "observations",
            )
        }
        if self.component_var:
            out["component_var"] = self.component_var
            out["component_cvar"] = self.component_cvar
        return out


VAR_MODELS = (
    "normal",
    "student_t",
    "ewma",
    "historical",
    "filtered_historical",
    "filtered_historical_portfolio",
    "filtered_historical_garch",
)
FORECAST_MODES = ("totals", "full")
#: Quantile estimators of the scenario models' VaR (see :func:`_quantile`).
QUANTILES = ("linear", "unbiased")
#: Fewest daily returns behind one forecast.
MIN_RETURNS = 20


@dataclass(frozen=True)
class VarSpec:
    """A VaR model and its parameters: what turns a window of daily returns into the next day's VaR.

    ``model``: ``normal`` / ``student_t`` (Ledoit-Wolf covariance of the window, closed forms),
    ``ewma`` (normal on the EWMA variance of the book's P&L), ``historical`` (the book's P&L on the
    window's returns), ``filtered_historical`` (each asset's returns divided by its EWMA volatility at the
    time, times its volatility for tomorrow), ``filtered_historical_portfolio`` (the same filter on the
    book's P&L), ``filtered_historical_garch`` (the book's P&L filtered by a GJR-GARCH(1,1) volatility,
    :mod:`risk.garch`). ``window``: daily returns behind one forecast; ``decay``: EWMA decay; ``dof``:
    Student-t degrees of freedom (unit variance). ``garch``: fixed (omega, alpha, gamma, beta) of the GARCH
    filter, ``omega`` relative to the window's mean square; None fits them on the window (the live
    forecast). ``refit_days``: the backtest refits the GARCH parameters every ``refit_days`` days and
    filters daily on them (:func:`risk.backtest.forecast_history`). ``quantile``: the scenario models' VaR
    estimator, ``linear`` (NumPy's default) or ``unbiased`` (exceeded with probability 1 - c on average by
    a new draw from the same i.i.d. distribution; see :func:`_quantile`).
    """

    model: str = "filtered_historical_portfolio"
    confidence: float = 0.99
    horizon_days: int = 1
    window: int = 1000
    decay: float = 0.94
    dof: float = 5.0
    cov_method: str = "ledoit_wolf"
    garch: tuple[float, float, float, float] | None = None
    refit_days: int = 21
    quantile: str = "unbiased"

    def __post_init__(self) -> None:
        if self.model not in VAR_MODELS:
            raise InputError("model", self.model, "one of " + ", ".join(VAR_MODELS))
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.5 <= c < 1:
            raise InputError("confidence", c, "a number in [0.5, 1), e.g. 0.99")
        h = self.horizon_days
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
            raise InputError("horizon_days", h, "an integer >= 1")
        if (
            isinstance(self.window, bool)
            or not isinstance(self.window, (int, np.integer))
            or self.window < MIN_RETURNS
        ):
            raise InputError(
                "window", self.window, f"an integer >= {MIN_RETURNS} (daily returns per forecast)"
            )
        if not 0 < self.decay < 1:
            raise InputError("decay", self.decay, "a number in (0, 1), e.g. 0.94")
        if not self.dof > 2:
            raise InputError("dof", self.dof, "a number > 2 (the variance must exist)")
        if self.quantile not in QUANTILES:
            raise InputError("quantile", self.quantile, "one of " + ", ".join(QUANTILES))
        r = self.refit_days
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise InputError("refit_days", r, "an integer >= 1 (days between GARCH fits in a backtest)")
        if self.garch is not None:
            from risk.garch import check_params

            object.__setattr__(self, "garch", tuple(check_params(self.garch)))


@lru_cache(maxsize=64)
def _tail_factors(model: str, confidence: float, dof: float) -> tuple[float, float]:
    """(VaR, CVaR) of a unit-variance normal or Student-t loss at ``confidence``."""
    from scipy import stats

    if model == "student_t":
        q = float(stats.t.ppf(confidence, dof))
        unit = math.sqrt((dof - 2) / dof)
        es = float(stats.t.pdf(q, dof)) / (1 - confidence) * (dof + q * q) / (dof - 1)
        return q * unit, es * unit
    z = float(stats.norm.ppf(confidence))
    return z, float(stats.norm.pdf(z)) / (1 - confidence)


def forecast(
    returns: Any,
    exposures: Any,
    spec: VarSpec,
    *,
    tickers: Sequence[str] | None = None,
    components: bool = False,
) -> VarResult:
    """Next-day VaR/CVaR of ``exposures`` from a window of daily returns, checked; see :func:`window_figures`.

    ``returns``: (n_obs, n_assets) simple daily returns, oldest first, the last one ending on the valuation
    date (the caller takes the last ``spec.window``); ``exposures``: (n_assets,) money held at that date's
    close. ``components``: also the Euler allocation per position (component VaR/CVaR sum to VaR/CVaR).
    """
    t0 = time.perf_counter()
    r = np.asarray(returns, dtype=np.float64)
    e = np.asarray(exposures, dtype=np.float64)
    if r.ndim != 2 or len(r) < MIN_RETURNS or e.ndim != 1 or r.shape[1] != e.size:
        raise InputError(
            "returns",
            f"shape {r.shape} for {e.size} exposures",
            f"a (n_obs >= {MIN_RETURNS}, n_assets) window with one column per exposure",
        )
    if not (np.isfinite(r).all() and np.isfinite(e).all()):
        raise InputError(
            "returns/exposures", "non-finite values", "finite numbers (daily_returns drops gaps)"
        )
    var, cvar, vol, scenarios, share = window_figures(r, e, spec, components)
    result: dict[str, Any] = {}
    if share is not None:
        names = list(tickers) if tickers is not None else [str(i) for i in range(e.size)]
        result = {
            "component_var": dict(zip(names, (share * var).tolist(), strict=True)),
            "component_cvar": dict(zip(names, (share * cvar).tolist(), strict=True)),
        }
    return VarResult(
        var=var,
        cvar=cvar,
        volatility=vol,
        confidence=spec.confidence,
        horizon_days=int(spec.horizon_days),
        paths=scenarios,
        model=spec.model,
        backend="numpy",
        seconds=time.perf_counter() - t0,
        mode="full" if components else "totals",
        observations=len(r),
        **result,
    )


def window_figures(
    r: np.ndarray, e: np.ndarray, spec: VarSpec, components: bool = False
) -> tuple[float, float, float, int, np.ndarray | None]:
    """The formula of every model: (VaR, CVaR, volatility, scenarios, Euler shares or None).

    ``r``: (n_obs, n_assets) finite float64 daily returns ending on the valuation date; ``e``: (n_assets,)
    finite money exposures. Losses are positive, in money, over ``spec.horizon_days`` (sqrt-time scaling).
    The live path (:func:`forecast` from :func:`risk.portfolio_var.portfolio_var`: the sensor, ``qb var``) and
    the backtest (:func:`risk.backtest.forecast_history`: ``qb var backtest``, the nightly report) both
    run this function on the same window; only the checks of :func:`forecast` are done once per history
    by the backtest. Shares (when ``components``) sum to 1: position i's share of VaR and of CVaR.
    """
    root_h = math.sqrt(spec.horizon_days)
    share = None
    if spec.model in {"normal", "student_t", "ewma"}:
        if spec.model == "ewma":
            pnl = r @ e
            variance = float(ewma_variance(pnl * pnl, spec.decay)[-1])
        else:
            cov = covariance(r, spec.cov_method)
            variance = float(e @ cov @ e)
        vol = math.sqrt(max(variance, 0.0)) * root_h
        k_var, k_es = _tail_factors(
            "student_t" if spec.model == "student_t" else "normal", spec.confidence, spec.dof
        )
        if components and variance > 0:
            if spec.model == "ewma":
                cov = ewma_covariance(r, spec.decay)
            share = e * (cov @ e) / variance  # Euler: e_i (cov e)_i / e'cov e
        return k_var * vol, k_es * vol, vol, 0, share
    scenarios = scenario_returns(r, e, spec)
    pnl = scenarios @ e
    loss = -pnl * root_h
    var = _quantile(loss, spec.confidence, spec.quantile)
    tail = loss >= var
    cvar = float(loss[tail].mean())
    centred = loss - loss.mean()
    vol = math.sqrt(float(centred @ centred) / len(loss))
    if components and cvar != 0:
        share = -(scenarios[tail] * e).mean(axis=0) * root_h / cvar  # mean tail loss per position
    return var, cvar, vol, len(loss), share


#: Models whose forecast is the empirical distribution of one-day return scenarios (no covariance).
SCENARIO_MODELS = (
    "historical",
    "filtered_historical",
    "filtered_historical_portfolio",
    "filtered_historical_garch",
)


def scenario_returns(r: np.ndarray, e: np.ndarray, spec: VarSpec) -> np.ndarray:
    """The one-day return scenarios (n_obs, n_assets) of a :data:`SCENARIO_MODELS` model for tomorrow.

    ``historical``: the window as it was; ``filtered_historical``: each asset's return over its EWMA
    volatility at the time, times its volatility for tomorrow; ``filtered_historical_portfolio``: every
    asset of a day scaled by the book's (``e``) EWMA P&L volatility ratio, tomorrow's over that day's;
    ``filtered_historical_garch``: the same with the book's GJR-GARCH(1,1) volatility (``spec.garch``, else
    fitted on the window).
    The book's P&L scenarios are ``scenarios @ e``: :func:`window_figures` and the consolidated book's
    Monte Carlo (:mod:`risk.book_var`) draw from the same rows.
    """
    if spec.model == "filtered_historical":
        level = np.sqrt(np.maximum(ewma_variance(r * r, spec.decay), _TINY))
        return r / level[:-1] * level[-1]
    if spec.model == "filtered_historical_portfolio":
        pnl = r @ e
        level = np.sqrt(np.maximum(ewma_variance(pnl * pnl, spec.decay), _TINY))
        return r * (level[-1] / level[:-1])[:, None]
    if spec.model == "filtered_historical_garch":
        from risk.garch import GarchParams, fit_gjr, gjr_variance

        pnl = r @ e
        params = fit_gjr(pnl) if spec.garch is None else GarchParams(*spec.garch)
        level = np.sqrt(gjr_variance(pnl, params))
        return r * (level[-1] / level[:-1])[:, None]
    if spec.model == "historical":
        return r
    raise InputError("model", spec.model, "one of " + ", ".join(SCENARIO_MODELS) + " (scenario models)")


def _quantile(x: np.ndarray, q: float, method: str = "linear") -> float:
    """np.quantile's ``linear`` (default) or ``weibull`` (``unbiased``) method by partial sort: faster.

    The k-th smallest of n i.i.d. draws is exceeded by a new draw with probability 1 - k / (n + 1) on
    average, so rank q(n + 1) (``unbiased``, Hyndman-Fan type 6) is exceeded with probability 1 - q;
    NumPy's default rank q(n - 1) + 1 with 1 - q + (2q - 1) / (n + 1): 1.098% for q = 0.99, n = 1,000.
    """
    h = (len(x) - 1) * q if method == "linear" else min(max((len(x) + 1) * q - 1, 0.0), len(x) - 1.0)
    lo = math.floor(h)
    hi = min(lo + 1, len(x) - 1)
    part = np.partition(x, [lo, hi])
    return float(part[lo] + (h - lo) * (part[hi] - part[lo]))
