"""The tear sheet's pictures: pyfolio's plots (returns, drawdown, rolling Sharpe and volatility, exposure,
turnover, monthly heatmap), rolling betas from pyfolio's ``timeseries.rolling_beta``, and two of our own
that pyfolio has no plot for: the VaR forecast against realised P&L, and execution cost per month.

Each function draws on a matplotlib Agg figure (no pyplot state) and writes one PNG into ``folder``.
Inputs are the tear sheet's validated frames (tz-naive, midnight-normalised, ascending DatetimeIndex).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from reporting.sections.section import figure, save_png

WIDTH, HEIGHT = 10.0, 3.6
SYNTHETIC_COLOUR = "#f5c542"


def pyfolio_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """``pyfolio.plotting``, ``pyfolio.timeseries`` and ``empyrical``, imported on first use (seconds)."""
    with warnings.catch_warnings():
        # pyfolio.pos warns at import that zipline (a backtester we do not use) is absent: position
        # multipliers are a futures concept, and the replay's book holds equities only.
        warnings.filterwarnings("ignore", message='Module "zipline.assets" not found', category=UserWarning)
        # no py.typed in either package (pyproject's mypy overrides do not list them)
        import empyrical
        from pyfolio import plotting, timeseries
    return plotting, timeseries, empyrical


@contextmanager
def _pandas_dates() -> Iterator[None]:
    """pandas' plots (pyfolio draws with them) on matplotlib's date axis: otherwise pandas switches to a
    period axis when the days infer a frequency (a run with no holiday), on which our lines, shading and
    matplotlib-drawn pyfolio plots (exposures) land decades away."""
    with pd.plotting.plot_params.use("x_compat", True):
        yield


def rolling_window(days: int) -> int:
    """Days in the rolling statistics: a quarter of the run (63 for a year), at least 10, at most 126
    (pyfolio's six months), so a one-month replay still draws a curve."""
    return int(min(126, max(10, days // 4)))


def shade(ax: Any, days: Sequence[pd.Timestamp]) -> None:
    """Shade each synthetic day (one trading day wide) on a time axis."""
    for i, day in enumerate(days):
        label = "synthetic day" if i == 0 else None
        ax.axvspan(
            day - pd.Timedelta(hours=12),
            day + pd.Timedelta(hours=12),
            color=SYNTHETIC_COLOUR,
            alpha=0.35,
            lw=0,
            label=label,
        )


@_pandas_dates()
def returns_png(
    folder: Path, returns: pd.Series, benchmarks: dict[str, pd.Series], synthetic: Sequence[pd.Timestamp]
) -> str:
    """Cumulative returns: the strategy (pyfolio), each benchmark (empyrical), synthetic days shaded."""
    plotting, _, ep = pyfolio_modules()
    fig = figure(WIDTH, HEIGHT + 0.6)
    ax = fig.subplots()
    plotting.plot_rolling_returns(returns, ax=ax, legend_loc=None)
    for line in ax.get_lines():
        if line.get_label() == "Backtest":
            line.set_label("strategy")
    for name, series in benchmarks.items():
        # pandas' plot, as pyfolio's own lines: the axis keeps pandas' date converter
        ep.cum_returns(series, starting_value=1.0).plot(ax=ax, lw=1.5, alpha=0.8, label=name)
    shade(ax, synthetic)
    ax.set_title("Cumulative returns (growth of 1)")
    ax.legend(loc="best", frameon=True, framealpha=0.5)
    return _save(fig, folder, "returns.png")


@_pandas_dates()
def drawdown_png(folder: Path, returns: pd.Series) -> str:
    plotting, _, _ = pyfolio_modules()
    fig = figure(WIDTH, HEIGHT)
    plotting.plot_drawdown_underwater(returns, ax=fig.subplots())
    return _save(fig, folder, "drawdown.png")


@_pandas_dates()
def rolling_png(folder: Path, returns: pd.Series, window: int) -> str:
    """pyfolio's rolling Sharpe ratio and rolling volatility over ``window`` days."""
    plotting, _, _ = pyfolio_modules()
    fig = figure(WIDTH, 2 * HEIGHT)
    top, bottom = fig.subplots(2, 1, sharex=True)
    plotting.plot_rolling_sharpe(returns, rolling_window=window, ax=top)
    plotting.plot_rolling_volatility(returns, rolling_window=window, ax=bottom)
    top.set_title(f"Rolling Sharpe ratio ({window} days)")
    bottom.set_title(f"Rolling volatility ({window} days, annualised)")
    return _save(fig, folder, "rolling.png")


@_pandas_dates()
def beta_png(folder: Path, returns: pd.Series, benchmarks: dict[str, pd.Series], window: int) -> str:
    """The strategy's rolling beta to each benchmark (pyfolio's ``timeseries.rolling_beta``)."""
    _, timeseries, _ = pyfolio_modules()
    fig = figure(WIDTH, HEIGHT)
    ax = fig.subplots()
    for name, series in benchmarks.items():
        beta = timeseries.rolling_beta(returns.loc[series.index], series, rolling_window=window)
        ax.plot(beta.index, beta.to_numpy(), lw=1.5, label=name)
    ax.axhline(1.0, color="black", linestyle="--", lw=1)
    ax.set_title(f"Rolling beta of the strategy ({window} days)")
    ax.set_ylabel("Beta")
    ax.legend(loc="best", frameon=True, framealpha=0.5)
    return _save(fig, folder, "beta.png")


@_pandas_dates()
def exposure_png(folder: Path, returns: pd.Series, positions: pd.DataFrame) -> str:
    """pyfolio's long/short/net exposure and gross leverage of the book."""
    plotting, _, _ = pyfolio_modules()
    fig = figure(WIDTH, 2 * HEIGHT)
    top, bottom = fig.subplots(2, 1, sharex=True)
    plotting.plot_exposures(returns, positions, ax=top)
    plotting.plot_gross_leverage(returns, positions, ax=bottom)
    return _save(fig, folder, "exposure.png")


@_pandas_dates()
def turnover_png(
    folder: Path, returns: pd.Series, transactions: pd.DataFrame, positions: pd.DataFrame
) -> str:
    plotting, _, _ = pyfolio_modules()
    fig = figure(WIDTH, HEIGHT)
    plotting.plot_turnover(returns, transactions, positions, ax=fig.subplots())
    return _save(fig, folder, "turnover.png")


def monthly_png(folder: Path, returns: pd.Series) -> str:
    plotting, _, _ = pyfolio_modules()
    years = len(returns.index.year.unique())
    fig = figure(WIDTH, 1.2 + 0.5 * years)
    plotting.plot_monthly_returns_heatmap(returns, ax=fig.subplots())
    return _save(fig, folder, "monthly.png")


def var_png(folder: Path, var: pd.DataFrame, exceptions: pd.Series, synthetic: Sequence[pd.Timestamp]) -> str:
    """Realised next-day P&L against the negative VaR forecast; an exception (loss beyond VaR) in red."""
    fig = figure(WIDTH, HEIGHT + 0.4)
    ax = fig.subplots()
    ax.bar(var.index, var["pnl"].to_numpy(), width=1.0, color="steelblue", alpha=0.7, label="realised P&L")
    ax.step(var.index, -var["var"].to_numpy(), where="mid", color="black", lw=1.2, label="-VaR forecast")
    hit = var.loc[exceptions]
    ax.scatter(
        hit.index,
        hit["pnl"].to_numpy(),
        color="red",
        zorder=3,
        s=25,
        label=f"exception ({int(exceptions.sum())})",
    )
    shade(ax, synthetic)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_title("Next-day P&L of the traded book against its VaR forecast")
    ax.set_ylabel("money")
    ax.legend(loc="best", frameon=True, framealpha=0.5)
    return _save(fig, folder, "var.png")


def cost_png(folder: Path, monthly_cost: pd.DataFrame) -> str:
    """Execution cost as % of AUM per month: the router against the naive executor, side by side."""
    fig = figure(WIDTH, HEIGHT)
    ax = fig.subplots()
    x = np.arange(len(monthly_cost))
    ax.bar(x - 0.2, monthly_cost["pct_aum"].to_numpy(), width=0.4, color="seagreen", label="router")
    ax.bar(x + 0.2, monthly_cost["naive_pct_aum"].to_numpy(), width=0.4, color="grey", label="naive executor")
    ax.set_xticks(x, [_month(m) for m in monthly_cost.index], rotation=45, ha="right")
    ax.set_title("Execution cost per month")
    ax.set_ylabel("% of AUM")
    ax.legend(loc="best", frameon=True, framealpha=0.5)
    return _save(fig, folder, "cost.png")


def _month(label: Any) -> str:
    if isinstance(label, pd.Period | pd.Timestamp):
        return label.strftime("%Y-%m")
    return str(label)


def _save(fig: Any, folder: Path, name: str) -> str:
    save_png(fig, folder / name)
    return name


__all__ = [
    "beta_png",
    "cost_png",
    "drawdown_png",
    "exposure_png",
    "monthly_png",
    "pyfolio_modules",
    "returns_png",
    "rolling_png",
    "rolling_window",
    "turnover_png",
    "var_png",
]
