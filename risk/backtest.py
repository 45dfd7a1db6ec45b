"""VaR backtesting with the live code: rolling one-day VaR forecasts of a book on real history, exceptions,
Kupiec's proportion-of-failures test, Christoffersen's independence test and the Basel traffic-light zone
of every 250-day window.

Every forecast is :func:`risk.var.forecast`, the formula the VaR sensor and ``qb var`` run through
:func:`risk.portfolio_var.portfolio_var`, on the same quarantine-aware daily returns
(:func:`quantbridge.returns.daily_returns`): the forecast for date D uses the returns up to D only and is
compared with the book's loss from D's close to the next lake date's. Losses and VaR are in money.
(``arch`` 8.0.0, the newest release reachable here, does not ship these tests yet; they are written here
and checked against hand computations in the tests.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from quantbridge.errors import InputError
from quantbridge.returns import daily_returns
from risk.es_backtest import TailAtoms, closed_form_atoms, largest_losses, tail_count
from risk.var import SCENARIO_MODELS, VAR_MODELS, VarSpec, scenario_returns, window_figures

BACKTEST_MODELS = VAR_MODELS
BASEL_WINDOW = 250
#: How a book is held through history: constant shares (a live book) or constant money (rebalanced).
HOLDS = ("shares", "money")


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(y)


def kupiec_pof(exceptions: int, observations: int, p: float) -> tuple[float, float]:
    """Kupiec's likelihood-ratio statistic for the exception rate, and its chi-square(1) p-value."""
    if observations <= 0 or not 0 <= exceptions <= observations:
        raise InputError("exceptions", exceptions, f"an integer in [0, observations={observations}]")
    x, n = exceptions, observations
    rate = x / n
    lr = -2.0 * (_xlogy(n - x, 1 - p) + _xlogy(x, p) - _xlogy(n - x, 1 - rate) - _xlogy(x, rate))
    lr = max(lr, 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def christoffersen_independence(hits: np.ndarray) -> tuple[float, float]:
    """Christoffersen's LR test that an exception today does not make one tomorrow likelier (chi2(1))."""
    h = np.asarray(hits, dtype=bool)
    if h.size < 2:
        raise InputError("hits", h.size, "at least two observations")
    prev, cur = h[:-1], h[1:]
    n00 = int(np.sum(~prev & ~cur))
    n01 = int(np.sum(~prev & cur))
    n10 = int(np.sum(prev & ~cur))
    n11 = int(np.sum(prev & cur))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    restricted = _xlogy(n00 + n10, 1 - pi) + _xlogy(n01 + n11, pi)
    unrestricted = _xlogy(n00, 1 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1 - pi11) + _xlogy(n11, pi11)
    lr = max(-2.0 * (restricted - unrestricted), 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def traffic_light(exceptions: int, observations: int = BASEL_WINDOW, p: float = 0.01) -> str:
    """Basel zone from the binomial CDF of the exception count: green < 95%, yellow < 99.99%, red beyond."""
    cdf = float(stats.binom.cdf(exceptions, observations, p))
    return "green" if cdf < 0.95 else "yellow" if cdf < 0.9999 else "red"


def rolling_figures(
    data: np.ndarray, ends: np.ndarray, money: np.ndarray, spec: VarSpec, *, tails: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, TailAtoms | None]:
    """VaR, CVaR and volatility (n_ends,) of :func:`risk.var.window_figures` on the windows
    ``data[j - spec.window : j]`` for j in ``ends`` with exposures ``money`` (n_ends, n_assets); with
    ``tails``, each day's largest forecast losses for the ES tests.

    ``filtered_historical_garch`` without fixed parameters: the GJR-GARCH parameters are refitted on the
    window ending at the latest multiple of ``spec.refit_days`` (in rows of ``data``, at least the first
    full window) at or before j, with day j's exposures, and the filter runs on each day's window with
    them: every figure uses data up to its own day only, and with constant exposures the same row gets
    the same parameters whatever the first row.
    """
    w = spec.window
    n = len(ends)
    var, cvar, vol = np.empty(n), np.empty(n), np.empty(n)
    scenario = spec.model in SCENARIO_MODELS
    k = tail_count(w, spec.confidence)
    largest = np.empty((n, k)) if tails and scenario else None
    root_h = math.sqrt(spec.horizon_days)
    refit = spec.model == "filtered_historical_garch" and spec.garch is None
    day_spec, anchor = spec, -1
    for i, j in enumerate(ends):
        if refit and max(j - j % spec.refit_days, w) != anchor:
            from risk.garch import fit_gjr

            anchor = max(j - j % spec.refit_days, w)
            day_spec = replace(spec, garch=fit_gjr(data[anchor - w : anchor] @ money[i]))
        window = data[j - w : j]
        var[i], cvar[i], vol[i], *_ = window_figures(window, money[i], day_spec)
        if largest is not None:
            loss = -(scenario_returns(window, money[i], day_spec) @ money[i]) * root_h
            largest[i] = largest_losses(loss, k)
    atoms: TailAtoms | None = None
    if largest is not None:
        atoms = TailAtoms(largest, np.full(n, w))
    elif tails:
        family = "student_t" if spec.model == "student_t" else "normal"
        atoms = closed_form_atoms(family, spec.confidence, spec.dof, vol)
    return var, cvar, vol, atoms


def forecast_history(
    closes: pd.DataFrame,
    positions: dict[str, float],
    spec: VarSpec,
    *,
    quarantined: Iterable[Any] = (),
    hold: str = "shares",
    last: int | None = None,
    tails: list[TailAtoms] | None = None,
) -> pd.DataFrame:
    """Roll the live forecast over history: one row per lake date D with a next-day outcome.

    ``positions``: ticker -> shares (``hold="shares"``: exposures are shares x D's close, the live book held
    constant in shares) or ticker -> money (``hold="money"``: the book rebalanced to the same money at every
    close, e.g. the reference books). For each date D the forecast is :func:`risk.var.forecast` on the last
    ``spec.window`` daily returns ending on or before D (exactly what :func:`risk.portfolio_var.portfolio_var`
    computes live on D's closes) and is compared with the book's loss over the next kept return, from D to the
    next lake date. Dates whose next return was dropped (a quarantined date or a missing price in between)
    have no outcome and no row. ``last``: only the latest ``last`` rows.

    Returns a frame indexed by ``date`` (D) with columns ``loss_date``, ``var``, ``cvar``, ``volatility``
    (the forecast's P&L standard deviation), ``loss`` (money; positive is a loss) and ``exception``
    (loss > VaR). ``tails``, when given, receives each row's forecast tail (one
    :class:`risk.es_backtest.TailAtoms`) for the ES tests. A GARCH model without fixed parameters is
    refitted every ``spec.refit_days`` days (:func:`rolling_figures`).
    """
    if hold not in HOLDS:
        raise InputError("hold", hold, "one of " + ", ".join(HOLDS))
    if spec.horizon_days != 1:
        raise InputError("horizon_days", spec.horizon_days, "1 (the backtest compares with next-day losses)")
    closes = closes.sort_index()
    tickers = list(positions)
    unknown = sorted(set(tickers) - set(map(str, closes.columns)))
    if unknown:
        raise InputError(
            "positions", ",".join(unknown), "tickers present in the lake: " + ", ".join(closes.columns)
        )
    quantity = np.array([positions[t] for t in tickers], dtype=np.float64)
    prices = closes.loc[:, tickers]
    returns = daily_returns(prices, quarantined)
    data = returns.to_numpy(dtype=np.float64)
    # a kept return j runs from the lake date before its end date; its start D is a forecast date with
    # exactly the returns 0..j-1 ending on or before D behind it
    lake_dates = prices.index
    starts = lake_dates[lake_dates.get_indexer(returns.index) - 1]
    rows = np.arange(spec.window, len(returns))
    if last is not None:
        rows = rows[-last:] if last > 0 else rows[:0]
    if len(rows) == 0:
        raise InputError(
            "returns",
            f"{len(returns)} daily returns",
            f"more than window={spec.window} daily returns (and dates with a next-day outcome)",
            hint="ingest more history with `qb ingest` or use a shorter --window",
        )
    if hold == "shares":
        marks = prices.ffill().loc[starts[rows]].to_numpy(dtype=np.float64)
        money = marks * quantity
    else:
        money = np.broadcast_to(quantity, (len(rows), len(tickers)))
    # daily_returns keeps finite returns only and a kept return starts from a priced date, so the checks of
    # risk.var.forecast hold for every window: the loop runs its formula directly
    var, cvar, vol, atoms = rolling_figures(data, rows, money, spec, tails=tails is not None)
    loss = -np.einsum("ij,ij->i", data[rows], money)
    frame = pd.DataFrame(
        {
            "loss_date": returns.index[rows],
            "var": var,
            "cvar": cvar,
            "volatility": vol,
            "loss": loss,
            "exception": loss > var,
        },
        index=pd.Index(starts[rows], name="date"),
    )
    if tails is not None and atoms is not None:
        tails.append(atoms)
    return frame


@dataclass(frozen=True)
class BacktestRow:
    model: str
    observations: int
    exceptions: int
    expected_exceptions: float
    exception_rate: float
    kupiec_lr: float
    kupiec_p: float
    christoffersen_lr: float
    christoffersen_p: float
    zone_last_window: str
    windows_green: float
    windows_yellow: float
    windows_red: float
    passes: bool

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def evaluate(losses: pd.Series, var: pd.Series, confidence: float = 0.99, model: str = "") -> BacktestRow:
    """Exceptions (loss > VaR), the two LR tests and the traffic-light zones of every 250-day window.

    ``passes``: both tests' p-values above 5% and no red window."""
    aligned = pd.concat([losses.rename("loss"), var.rename("var")], axis=1, join="inner").dropna()
    hits = (aligned["loss"] > aligned["var"]).to_numpy()
    p = 1 - confidence
    n, x = len(hits), int(hits.sum())
    k_lr, k_p = kupiec_pof(x, n, p)
    c_lr, c_p = christoffersen_independence(hits)
    counts = (
        np.convolve(hits.astype(int), np.ones(BASEL_WINDOW, dtype=int), mode="valid")
        if n >= BASEL_WINDOW
        else np.array([x])
    )
    zones = [traffic_light(int(c), BASEL_WINDOW, p) for c in counts]
    share = {z: zones.count(z) / len(zones) for z in ("green", "yellow", "red")}
    return BacktestRow(
        model=model,
        observations=n,
        exceptions=x,
        expected_exceptions=n * p,
        exception_rate=x / n,
        kupiec_lr=k_lr,
        kupiec_p=k_p,
        christoffersen_lr=c_lr,
        christoffersen_p=c_p,
        zone_last_window=zones[-1],
        windows_green=share["green"],
        windows_yellow=share["yellow"],
        windows_red=share["red"],
        passes=bool(k_p > 0.05 and c_p > 0.05 and "red" not in zones),
    )


#: The fields of :func:`risk.stressed_var.stressed_var` a backtest row carries (as ``stressed_<key>``).
_STRESSED_KEYS = ("var", "cvar", "start", "end", "model")


def _rounded(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def es_tests(frame: pd.DataFrame, tails: TailAtoms, confidence: float) -> dict[str, Any]:
    """Acerbi-Szekely Z2 (p simulated from each day's forecast) and McNeil-Frey (bootstrap p) on a
    :func:`forecast_history` frame; ``es_passes``: both p-values above 5%."""
    from risk.es_backtest import mcneil_frey_test, z2_test

    z2, z2_p = z2_test(frame["loss"], frame["var"], frame["cvar"], tails, 1 - confidence)
    mf = mcneil_frey_test(frame["loss"], frame["var"], frame["cvar"], frame["volatility"])
    return {
        "z2": round(z2, 6),
        "z2_p": round(z2_p, 6),
        "mcneil_frey_mean_residual": round(mf["mean_residual"], 6),
        "mcneil_frey_p": round(mf["p"], 6),
        "es_passes": bool(z2_p > 0.05 and mf["p"] > 0.05),
    }


def backtest(
    closes: pd.DataFrame,
    positions: dict[str, float],
    *,
    quarantined: Iterable[Any] = (),
    hold: str = "shares",
    models: Iterable[str] = BACKTEST_MODELS,
    spec: VarSpec | None = None,
    forecasts: dict[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Backtest every model of ``models`` (``spec`` with its model replaced) on one book.

    A model passes when Kupiec's and Christoffersen's p-values exceed 5% and no 250-day window is red.
    Each row also holds the ES tests (:func:`es_tests`: ``z2``, ``z2_p``, ``mcneil_frey_p``, ``es_passes``),
    the last forecast (``var_last``, ``cvar_last``) and the model's stressed VaR of the book as held at the
    end (:func:`risk.stressed_var.stressed_var`: ``stressed_var``, ``stressed_cvar``, ``stressed_start``,
    ``stressed_end``, ``stressed_model``; None with fewer than 250 daily returns). ``seconds``: the
    backtest and ES tests; ``stressed_seconds``: the stressed VaR.
    ``forecasts``, when given, receives each model's rows from :func:`forecast_history`.
    """
    from risk.stressed_var import stressed_var

    spec = spec or VarSpec()
    quarantined = list(quarantined)
    rows, frames = [], {}
    for model in models:
        t0 = time.perf_counter()
        model_spec = replace(spec, model=model)
        tails: list[TailAtoms] = []
        frame = forecast_history(
            closes, positions, model_spec, quarantined=quarantined, hold=hold, tails=tails
        )
        row = evaluate(frame["loss"], frame["var"], spec.confidence, model)
        es = es_tests(frame, tails[0], spec.confidence)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            stressed = stressed_var(closes, positions, model_spec, quarantined, hold=hold)
        except InputError:  # fewer daily returns than one stress window: nothing to report
            stressed = dict.fromkeys(_STRESSED_KEYS)
        rows.append(
            {
                **row.as_dict(),
                **es,
                "var_last": round(float(frame["var"].iloc[-1]), 2),
                "cvar_last": round(float(frame["cvar"].iloc[-1]), 2),
                **{f"stressed_{k}": _rounded(v) for k, v in stressed.items() if k in _STRESSED_KEYS},
                "seconds": round(seconds, 3),
                "stressed_seconds": round(time.perf_counter() - t0, 3),
            }
        )
        frames[model] = frame
    if forecasts is not None:
        forecasts.update(frames)
    first = next(iter(frames.values()))
    passing = [r for r in rows if r["passes"]]
    # Among the passing models (else all), the one whose exception rate is closest to 1 - c.
    best = min(
        passing or rows,
        key=lambda r: (abs(r["exception_rate"] - (1 - spec.confidence)), -r["christoffersen_p"]),
    )
    return {
        "confidence": spec.confidence,
        "window": spec.window,
        "quantile": spec.quantile,
        "decay": spec.decay,
        "hold": hold,
        "start": str(first.index[0]),
        "end": str(first["loss_date"].iloc[-1]),
        "tickers": list(positions),
        "models": rows,
        "best_model": best["model"],
        "best_passes": best["passes"],
    }
