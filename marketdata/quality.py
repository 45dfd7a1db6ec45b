"""Data-quality gates on price batches, evaluated with Great Expectations 1.x.

A batch is long-format prices ``(date, ticker, close)`` for one or more dates. Before validation the
batch is enriched with the lake's recent history (so returns and staleness are measured across the
boundary of the batch) and with every expected ``(date, ticker)`` pair, so that a price missing as an
absent row is caught like a price missing as an empty value.

Rules (each a GX expectation; the names are what reports print):

``schema``        ticker matches ``^[A-Z][A-Z0-9.\\-]{0,14}$``; date is a calendar date
``date_skew``     every row is dated with one of the dates the batch was requested for (a row dated
                  otherwise, or not a date at all, taints every date of the batch)
``missing``       no missing price (empty value or absent row), ticker and date present
``duplicate``     (date, ticker) is unique
``non_positive``  close > 0
``stale``         a close repeated for more than ``max_stale_days`` consecutive trading days
``outlier``       daily simple return within [``min_daily_return``, ``max_daily_return``]
``xs_skew``       |cross-sectional skewness of the day's returns| <= ``max_cross_sectional_skew``
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

PRICE_COLUMNS = ("date", "ticker", "close")
TICKER_PATTERN = r"^[A-Z][A-Z0-9.\-]{0,14}$"


@dataclass(frozen=True)
class GateLimits:
    """Thresholds of the gates (taken from :class:`quantbridge.settings.Settings`)."""

    max_stale_days: int = 10
    min_daily_return: float = -0.75
    max_daily_return: float = 1.5
    max_cross_sectional_skew: float = 4.5

    @classmethod
    def from_settings(cls, settings: Any) -> GateLimits:
        return cls(
            max_stale_days=settings.max_stale_days,
            min_daily_return=settings.min_daily_return,
            max_daily_return=settings.max_daily_return,
            max_cross_sectional_skew=settings.max_cross_sectional_skew,
        )


@dataclass(frozen=True)
class Violation:
    """One row that broke one rule."""

    rule: str
    date: str
    ticker: str
    column: str
    value: Any

    def as_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, float) and not np.isfinite(value):
            value = None if np.isnan(value) else str(value)
        return {
            "rule": self.rule,
            "date": self.date,
            "ticker": self.ticker,
            "column": self.column,
            "value": value,
        }


@dataclass(frozen=True)
class QualityReport:
    """Outcome of the gates on one batch."""

    rows: int
    dates: tuple[date, ...]
    violations: tuple[Violation, ...] = field(default_factory=tuple)
    rules_checked: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def failed_dates(self) -> tuple[date, ...]:
        """Dates whose rows broke a rule; a row dated outside the batch's dates taints every date."""
        bad = {v.date for v in self.violations}
        requested = {d.isoformat() for d in self.dates}
        if bad - requested:
            return self.dates
        return tuple(d for d in self.dates if d.isoformat() in bad)

    def for_date(self, day: date) -> QualityReport:
        """The part of the report that concerns one date."""
        iso = day.isoformat()
        requested = {d.isoformat() for d in self.dates}
        return QualityReport(
            rows=self.rows,
            dates=(day,),
            violations=tuple(v for v in self.violations if v.date == iso or v.date not in requested),
            rules_checked=self.rules_checked,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": self.rows,
            "dates": [d.isoformat() for d in self.dates],
            "failed_dates": [d.isoformat() for d in self.failed_dates],
            "rules_checked": list(self.rules_checked),
            "violations": [v.as_dict() for v in self.violations],
        }

    def to_text(self, limit: int = 50) -> str:
        """A readable report naming the rule and the rows that broke it."""
        span = f"{self.dates[0]}..{self.dates[-1]}" if self.dates else "empty batch"
        if self.passed:
            return (
                f"quality gates passed: {self.rows} rows, {len(self.dates)} date(s) {span}, "
                f"rules {', '.join(self.rules_checked)}"
            )
        lines = [
            f"quality gates FAILED for {len(self.failed_dates)} of {len(self.dates)} date(s) ({span}): "
            f"{len(self.violations)} violation(s)"
        ]
        for v in self.violations[:limit]:
            lines.append(f"  [{v.rule}] date={v.date} ticker={v.ticker} {v.column}={v.as_dict()['value']!r}")
        if len(self.violations) > limit:
            lines.append(f"  ... and {len(self.violations) - limit} more (see report.json)")
        return "\n".join(lines)


def _stale_runs(close: pd.Series, ticker: pd.Series) -> pd.Series:
    """Per row, how many consecutive previous trading days carried the same close (0 = changed)."""
    same = (close == close.groupby(ticker).shift()).astype(int)
    breaks = (same == 0).groupby(ticker).cumsum()
    return same.groupby([ticker, breaks]).cumsum()


def enrich(
    batch: pd.DataFrame, history: pd.DataFrame, dates: Sequence[date], expected_tickers: Iterable[str] = ()
) -> pd.DataFrame:
    """The batch with derived columns ``ret``, ``stale_run``, ``xs_skew`` and absent rows made explicit.

    Returned rows keep the batch's own row number in column ``row`` (``-1`` for rows that were absent).
    """
    frame = batch.loc[:, list(PRICE_COLUMNS)].copy()
    frame["row"] = np.arange(len(frame))
    frame["date"] = pd.to_datetime(frame["date"], errors="coerce").dt.date
    tickers = set(frame["ticker"].dropna().astype(str)) | set(expected_tickers)
    wanted = set(dates)
    present = set(zip(frame["date"], frame["ticker"], strict=True))
    absent = [(d, t) for d in sorted(wanted) for t in sorted(tickers) if (d, t) not in present]
    if absent:
        filler = pd.DataFrame(absent, columns=["date", "ticker"])
        filler["close"] = np.nan
        filler["row"] = -1
        frame = pd.concat([frame, filler], ignore_index=True)
    parts = [frame]
    if len(history):
        hist = history.loc[:, list(PRICE_COLUMNS)].copy()
        hist["row"] = -2
        parts.insert(0, hist)
    both = pd.concat(parts, ignore_index=True)
    both["close"] = both["close"].astype("float64")
    both["_order"] = np.arange(len(both))
    both = both.sort_values(["ticker", "date", "_order"], kind="mergesort", na_position="last")
    prev = both.groupby("ticker", dropna=False)["close"].shift()
    both["ret"] = both["close"] / prev - 1.0
    both["stale_run"] = _stale_runs(both["close"], both["ticker"]).astype("int64")
    skew = both[both["row"] != -2].groupby("date")["ret"].skew()
    both["xs_skew"] = both["date"].map(skew).astype("float64")
    out = both[both["row"] != -2].sort_values("_order").drop(columns="_order")
    out["date_iso"] = out["date"].map(lambda d: d.isoformat() if isinstance(d, date) else None)
    return out.reset_index(drop=True)


def _suite_spec(limits: GateLimits, dates: Sequence[date]) -> list[tuple[str, str, Any]]:
    """(rule, column, GX expectation) triples; GX is imported here so importing this module stays cheap."""
    import great_expectations.expectations as gxe

    iso = [d.isoformat() for d in dates]
    k = limits.max_cross_sectional_skew
    return [
        ("schema", "ticker", gxe.ExpectColumnValuesToMatchRegex(column="ticker", regex=TICKER_PATTERN)),
        ("date_skew", "date", gxe.ExpectColumnValuesToBeInSet(column="date_iso", value_set=iso)),
        ("missing", "close", gxe.ExpectColumnValuesToNotBeNull(column="close")),
        ("missing", "ticker", gxe.ExpectColumnValuesToNotBeNull(column="ticker")),
        ("schema", "date", gxe.ExpectColumnValuesToNotBeNull(column="date_iso")),
        ("duplicate", "date,ticker", gxe.ExpectCompoundColumnsToBeUnique(column_list=["date_iso", "ticker"])),
        (
            "non_positive",
            "close",
            gxe.ExpectColumnValuesToBeBetween(column="close", min_value=0, strict_min=True),
        ),
        (
            "stale",
            "stale_run",
            gxe.ExpectColumnValuesToBeBetween(column="stale_run", max_value=limits.max_stale_days),
        ),
        (
            "outlier",
            "ret",
            gxe.ExpectColumnValuesToBeBetween(
                column="ret", min_value=limits.min_daily_return, max_value=limits.max_daily_return
            ),
        ),
        (
            "xs_skew",
            "xs_skew",
            gxe.ExpectColumnValuesToBeBetween(column="xs_skew", min_value=-k, max_value=k),
        ),
    ]


def _run_gx(frame: pd.DataFrame, spec: list[tuple[str, str, Any]]) -> list[Any]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("quantbridge").add_dataframe_asset("prices")
    batch_definition = asset.add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(gx.ExpectationSuite(name="price_gates"))
    for _, _, expectation in spec:
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="price_gates", data=batch_definition, suite=suite)
    )
    result = validation.run(
        batch_parameters={"dataframe": frame}, result_format={"result_format": "COMPLETE"}
    )
    # GX may reorder results; match them back to our rules by expectation id.
    by_id = {r.expectation_config.id: r for r in result.results if r.expectation_config is not None}
    return [by_id[e.id] for _, _, e in spec]


def validate_prices(
    batch: pd.DataFrame,
    history: pd.DataFrame,
    dates: Sequence[date],
    limits: GateLimits = GateLimits(),
    expected_tickers: Iterable[str] = (),
) -> QualityReport:
    """Run every gate on ``batch`` (the rows delivered for ``dates``) with ``history`` as context.

    Parameters
    ----------
    batch: long prices with columns date, ticker, close (one row per date and ticker expected).
    history: the lake's prices for the trading days just before the batch (may be empty).
    dates: the dates the batch was requested for; rows dated otherwise break ``date_skew``.
    expected_tickers: tickers that must have a price on every date (besides the batch's own).
    """
    dates = tuple(sorted(set(dates)))
    frame = enrich(batch, history, dates, expected_tickers)
    spec = _suite_spec(limits, dates)
    results = _run_gx(frame, spec)
    violations: list[Violation] = []
    for (rule, column, _), res in zip(spec, results, strict=True):
        if res.success:
            continue
        value_column = column.split(",")[0]
        for idx in dict.fromkeys(res.result.get("unexpected_index_list") or []):
            row = frame.loc[idx]
            day = row["date_iso"] if isinstance(row["date_iso"], str) else "?"
            violations.append(
                Violation(rule, day, str(row["ticker"]), value_column, _plain(row[value_column]))
            )
    violations.sort(key=lambda v: (v.date, v.ticker, v.rule))
    return QualityReport(
        rows=len(batch),
        dates=dates,
        violations=tuple(violations),
        rules_checked=tuple(dict.fromkeys(r for r, _, _ in spec)),
    )


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (numpy numbers unwrapped, dates as ISO text, NaT as None)."""
    if value is pd.NaT:
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, date):
        return value.isoformat()
    return value
