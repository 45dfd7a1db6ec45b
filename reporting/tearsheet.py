"""The replay's tear sheet: ``index.html``, its PNGs and ``tearsheet.json`` in one folder.

Performance statistics and the standard plots come from pyfolio-reloaded and empyrical-reloaded (never
re-implemented here): ``timeseries.perf_stats`` for the strategy and each benchmark, ``empyrical.alpha_beta``
against each benchmark, ``timeseries.gen_drawdown_table``, and the plots of :mod:`reporting.tearsheet_plots`.
The page adds the replay's own figures: KPIs, VaR forecast against realised P&L, execution cost per month, the
data's caveats and which days were synthetic. Text is escaped; pictures are ``img`` tags to the PNGs beside
the page, so the folder is self-contained.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from reporting import tearsheet_plots as plots
from reporting.page import render_page
from reporting.sections.section import Section, html_table

PAGE_FILE = "index.html"
SUMMARY_FILE = "tearsheet.json"
_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    ".note{background:#fff4e5;border-left:4px solid #e67e22;padding:.5em 1em}"
)


def build_tearsheet(
    out_dir: Path,
    returns: pd.Series,
    benchmarks: Mapping[str, pd.Series],
    positions: pd.DataFrame,
    transactions: pd.DataFrame,
    var: pd.DataFrame,
    monthly_cost: pd.DataFrame,
    kpis: Mapping[str, Any],
    synthetic_days: Iterable[date | str | pd.Timestamp] = (),
    notes: Iterable[str] = (),
) -> Path:
    """Write the tear sheet into ``out_dir`` (created if absent); return the path of ``index.html``.

    Parameters
    ----------
    returns: the strategy's simple daily returns, DatetimeIndex (one row per trading day).
    benchmarks: name -> simple daily returns of a baseline book (e.g. :mod:`strategy.baselines`); each is
        compared on the strategy's days it has (the page says how many).
    positions: pyfolio's format: money per ticker plus a ``cash`` column, one row per day.
    transactions: pyfolio's format: index the fill time, ``amount`` (signed shares), ``price``, ``symbol``.
    var: index the valuation day; ``var`` (the next-day VaR forecast, money, >= 0) and ``pnl`` (the book's
        realised next-day P&L, money). An exception is a loss beyond the forecast, ``pnl < -var``.
    monthly_cost: index the month; ``cost`` (money), ``pct_aum`` and ``naive_pct_aum`` (percent of AUM: 0.04
        is 0.04%) for the router and the naive executor.
    kpis: name -> value (nested mappings are flattened as ``outer.inner``), shown as a table.
    synthetic_days: days whose prices were synthetic (shaded and listed); none means every day was real.
    notes: the data's caveats (survivorship, closes only, illustrative ADV), shown as given.

    Raises
    ------
    InputError naming the argument whose shape or values are unusable.
    """
    strategy = _returns(returns, "returns").rename("strategy")
    if len(strategy) < 2:
        raise InputError("returns", f"{len(strategy)} days", "at least two daily returns")
    compared = {name: _compared(strategy, series, name) for name, series in benchmarks.items()}
    book = _frame(positions, "positions", ["cash"])
    trades = _transactions(transactions)
    risk = _frame(var, "var", ["var", "pnl"])
    if (risk["var"] < 0).any():
        raise InputError("var", "a negative forecast", "VaR as a positive amount of money (a loss)")
    cost = _frame(monthly_cost, "monthly_cost", ["cost", "pct_aum", "naive_pct_aum"], dated=False)
    synthetic = sorted(set(_days(list(synthetic_days), "synthetic_days")))
    kpi_rows = _flatten(kpis)
    note_lines = [str(n) for n in notes]
    stats = performance_table(strategy, compared, book, trades)

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    window = plots.rolling_window(len(strategy))
    sections = [
        Section(
            "kpis", "Key figures", body=html_table(["KPI", "value"], [[k, _fmt(v)] for k, v in kpi_rows])
        ),
        Section("data", "Data and caveats", body=_data_body(note_lines, synthetic)),
        Section("stats", "Performance statistics", body=_stats_body(stats, strategy, compared)),
        Section(
            "returns", "Cumulative returns", png=plots.returns_png(folder, strategy, compared, synthetic)
        ),
        _drawdown_section(folder, strategy),
        Section(
            "rolling", "Rolling Sharpe ratio and volatility", png=plots.rolling_png(folder, strategy, window)
        ),
        _beta_section(folder, strategy, compared, window),
        Section("exposure", "Exposure and gross leverage", png=plots.exposure_png(folder, strategy, book)),
        _turnover_section(folder, strategy, trades, book),
        Section("monthly", "Monthly returns", png=plots.monthly_png(folder, strategy)),
        _var_section(folder, risk, synthetic),
        _cost_section(folder, cost),
    ]
    summary = {
        "start": strategy.index[0].date().isoformat(),
        "end": strategy.index[-1].date().isoformat(),
        "days": len(strategy),
        "stats": {col: {row: _plain(v) for row, v in stats[col].items()} for col in stats.columns},
        "kpis": {k: _plain(v) for k, v in kpi_rows},
        "synthetic_days": [d.date().isoformat() for d in synthetic],
        "notes": note_lines,
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    path = folder / PAGE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_page(summary["start"], summary["end"], sections))
    tmp.replace(path)
    return path


def performance_table(
    returns: pd.Series,
    benchmarks: Mapping[str, pd.Series],
    positions: pd.DataFrame,
    transactions: pd.DataFrame,
) -> pd.DataFrame:
    """pyfolio's ``perf_stats`` (rows) of the strategy and each benchmark (columns), the strategy's alpha and
    beta against each benchmark (empyrical, on the days both have)."""
    _, timeseries, ep = plots.pyfolio_modules()
    columns = {
        "strategy": timeseries.perf_stats(
            returns, positions=positions, transactions=None if transactions.empty else transactions
        )
    }
    for name, series in benchmarks.items():
        alpha, beta = ep.alpha_beta(returns.loc[series.index], series)
        columns["strategy"][f"Alpha vs {name}"] = alpha
        columns["strategy"][f"Beta vs {name}"] = beta
        columns[name] = timeseries.perf_stats(series)
    return pd.DataFrame(columns).reindex(columns["strategy"].index)  # pyfolio's order, then alpha/beta


def _stats_body(stats: pd.DataFrame, strategy: pd.Series, compared: Mapping[str, pd.Series]) -> str:
    days = "; ".join(f"{name}: {len(s)}" for name, s in {"strategy": strategy, **compared}.items())
    caption = (
        "pyfolio's perf_stats for each column; alpha and beta of the strategy from empyrical. A benchmark is "
        f"compared on the strategy's days it has. Days per column: {days}."
    )
    rows = [[row, *(_fmt(v, 4) for v in stats.loc[row])] for row in stats.index]
    return f"<p>{html.escape(caption)}</p>" + html_table(["statistic", *stats.columns], rows)


def _data_body(notes: list[str], synthetic: list[pd.Timestamp]) -> str:
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    parts = [f"<ul class='notes'>{items}</ul>" if notes else "<p>No caveats were given.</p>"]
    if synthetic:
        listed = ", ".join(d.date().isoformat() for d in synthetic)
        parts.append(
            f"<p class='note' id='synthetic-days'>Synthetic prices on {len(synthetic)} of the days (shaded "
            f"on the returns and VaR pictures): {html.escape(listed)}</p>"
        )
    else:
        parts.append("<p id='synthetic-days'>All days real: no synthetic prices in this run.</p>")
    return "".join(parts)


def _drawdown_section(folder: Path, strategy: pd.Series) -> Section:
    _, timeseries, _ = plots.pyfolio_modules()
    table = timeseries.gen_drawdown_table(strategy, top=5).dropna(subset=["Peak date"])
    rows = [
        [
            f"{r['Net drawdown in %']:.2f}",
            *(_day(r[c]) for c in ("Peak date", "Valley date", "Recovery date")),
            _fmt(r["Duration"], 0),
        ]
        for _, r in table.iterrows()
    ]
    header = ["net drawdown %", "peak", "valley", "recovery", "duration (business days)"]
    return Section(
        "drawdown",
        "Drawdowns",
        png=plots.drawdown_png(folder, strategy),
        body="<p>Worst drawdowns (pyfolio).</p>" + html_table(header, rows),
    )


def _beta_section(
    folder: Path, strategy: pd.Series, compared: Mapping[str, pd.Series], window: int
) -> Section:
    if not compared:
        return Section("beta", "Rolling beta", note="no benchmark given")
    return Section("beta", "Rolling beta", png=plots.beta_png(folder, strategy, dict(compared), window))


def _turnover_section(folder: Path, strategy: pd.Series, trades: pd.DataFrame, book: pd.DataFrame) -> Section:
    if trades.empty:
        return Section("turnover", "Turnover", note="no transactions in this run")
    return Section("turnover", "Turnover", png=plots.turnover_png(folder, strategy, trades, book))


def _var_section(folder: Path, risk: pd.DataFrame, synthetic: list[pd.Timestamp]) -> Section:
    title = "VaR forecast against realised P&L"
    if risk.empty:
        return Section("var", title, note="no VaR forecast in this run")
    exceptions = risk["pnl"] < -risk["var"]
    listed = ", ".join(d.date().isoformat() for d in risk.index[exceptions]) or "none"
    rows = [
        ["forecasts", len(risk)],
        ["exceptions (loss beyond VaR)", int(exceptions.sum())],
        ["exception rate", float(exceptions.mean())],
    ]
    body = html_table(["figure", "value"], rows) + f"<p>Exception days: {html.escape(listed)}</p>"
    return Section("var", title, png=plots.var_png(folder, risk, exceptions, synthetic), body=body)


def _cost_section(folder: Path, cost: pd.DataFrame) -> Section:
    title = "Execution cost per month"
    if cost.empty:
        return Section("cost", title, note="no execution cost in this run")
    rows = [
        [str(plots._month(m)), float(r["cost"]), float(r["pct_aum"]), float(r["naive_pct_aum"])]
        for m, r in cost.iterrows()
    ]
    header = ["month", "cost (money)", "router, % of AUM", "naive executor, % of AUM"]
    return Section("cost", title, png=plots.cost_png(folder, cost), body=html_table(header, rows))


def _page(start: str, end: str, sections: list[Section]) -> str:
    title = f"quantbridge replay tear sheet, {start} to {end}"
    return render_page(title, title, sections, _CSS)


# ---- validation: every input becomes a tz-naive, midnight-normalised, ascending, unique DatetimeIndex ----


def _days(values: Any, field: str) -> pd.DatetimeIndex:
    try:
        index = pd.DatetimeIndex(pd.to_datetime(values))
    except (TypeError, ValueError) as error:
        raise InputError(
            field, str(error)[:80], "dates (DatetimeIndex, datetime.date or ISO strings)"
        ) from None
    return (index.tz_localize(None) if index.tz is not None else index).normalize()


def _returns(series: pd.Series, field: str) -> pd.Series:
    if not isinstance(series, pd.Series):
        raise InputError(field, type(series).__name__, "a pandas Series of daily returns")
    out = pd.Series(
        pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64),
        index=_days(series.index, f"{field}.index"),
    ).sort_index()
    if out.index.has_duplicates or not np.isfinite(out.to_numpy()).all():
        raise InputError(field, "duplicate days or non-finite values", "one finite return per trading day")
    return out


def _compared(strategy: pd.Series, series: pd.Series, name: str) -> pd.Series:
    field = f"benchmarks[{name!r}]"
    mine = _returns(series, field)
    mine = mine.loc[mine.index.isin(strategy.index)].rename(name)
    if len(mine) < 2:
        raise InputError(field, f"{len(mine)} of the strategy's days", "returns on the strategy's days")
    return mine


def _frame(frame: pd.DataFrame, field: str, columns: list[str], *, dated: bool = True) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame) or not set(columns) <= set(frame.columns):
        got = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
        raise InputError(field, got, "a DataFrame with columns " + ", ".join(columns))
    out = frame.astype(np.float64) if field == "positions" else frame[columns].astype(np.float64)
    if not np.isfinite(out.to_numpy()).all():
        raise InputError(field, "non-finite values", "finite numbers")
    if dated:
        out.index = _days(frame.index, f"{field}.index")
    return out.sort_index()


def _transactions(frame: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame) or not {"amount", "price", "symbol"} <= set(frame.columns):
        got = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
        raise InputError("transactions", got, "pyfolio's format: columns amount, price, symbol")
    out = frame[["amount", "price", "symbol"]].copy()
    index = pd.DatetimeIndex(pd.to_datetime(frame.index))
    out.index = index.tz_localize(None) if index.tz is not None else index  # pyfolio groups by the day
    return out.sort_index()


# ---- formatting ----


def _flatten(kpis: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in kpis.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def _fmt(value: Any, decimals: int | None = None) -> str:
    """A cell: floats with ``decimals`` decimals when given, else 4 significant digits (thousands
    separated from 1,000 up); NaN as n/a; anything else as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            return "n/a"
        if decimals is not None:
            return f"{number:,.{decimals}f}"
        return f"{number:,.0f}" if abs(number) >= 1000 else f"{number:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python numbers, NaN as null, anything else unknown as text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _day(value: Any) -> str:
    return "not yet" if pd.isna(value) else pd.Timestamp(value).date().isoformat()


__all__ = ["PAGE_FILE", "SUMMARY_FILE", "build_tearsheet", "performance_table"]
