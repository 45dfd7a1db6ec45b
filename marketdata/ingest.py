"""Ingestion of daily closes into the lake, in three idempotent steps: stage, gate, publish.

``stage``   fetch [start, end] from a feed and write it to ``_staging/`` (nothing downstream reads it);
``gate``    run the quality gates with the lake's recent history; dates that fail are moved to
            ``quarantine/prices/date=D/`` (their rows plus ``report.json`` and ``report.txt``) and removed
            from the staged batch;
``publish`` write the staged dates that passed to ``prices/date=D/`` in one Spark job.

The daily DAG runs the steps as three tasks for one date; :func:`ingest_range` runs them in one
process for a whole range (the bulk path of ``qb ingest``). Re-running a date replaces its partition.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from marketdata.feed import PriceFeed, fetch_or_raise
from marketdata.quality import GateLimits, QualityReport, validate_prices
from quantbridge.errors import NoDataError
from quantbridge.lake import Lake
from quantbridge.settings import Settings

BATCH_FILE = "batch.parquet"


@dataclass(frozen=True)
class StagedBatch:
    start: date
    end: date
    rows: int
    dates: tuple[date, ...]
    tickers: tuple[str, ...]
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "dates": [d.isoformat() for d in self.dates],
            "tickers": list(self.tickers),
            "source": self.source,
        }


@dataclass(frozen=True)
class IngestResult:
    """What an ingestion did: partitions published, dates quarantined, and the gate report."""

    start: date
    end: date
    source: str
    published: tuple[date, ...]
    quarantined: tuple[date, ...]
    rows: int
    tickers: tuple[str, ...]
    report: QualityReport
    seconds: float
    partitions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "source": self.source,
            "published": len(self.published),
            "quarantined": [d.isoformat() for d in self.quarantined],
            "rows": self.rows,
            "tickers": list(self.tickers),
            "partitions": self.partitions,
            "first_date": self.published[0].isoformat() if self.published else None,
            "last_date": self.published[-1].isoformat() if self.published else None,
            "quality": self.report.as_dict(),
            "seconds": round(self.seconds, 3),
        }


def _staged_file(lake: Lake, start: date, end: date) -> Path:
    return lake.staging(start, end) / BATCH_FILE


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("date", pa.date32()), ("ticker", pa.string()), ("close", pa.float64())])
    table = pa.Table.from_pandas(
        frame.loc[:, ["date", "ticker", "close"]], schema=schema, preserve_index=False
    )
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # atomic: a reader never sees half a batch


def stage(lake: Lake, feed: PriceFeed, start: date, end: date) -> StagedBatch:
    """Fetch [start, end] from ``feed`` into the staging area. Raises NoDataError on an empty range."""
    batch = fetch_or_raise(feed, start, end)
    _write_parquet(batch, _staged_file(lake, start, end))
    dates = tuple(sorted({d for d in batch["date"] if isinstance(d, date)}))
    tickers = tuple(sorted({str(t) for t in batch["ticker"].dropna()}))
    return StagedBatch(start, end, len(batch), dates, tickers, feed.name)


def read_staged(lake: Lake, start: date, end: date) -> pd.DataFrame:
    path = _staged_file(lake, start, end)
    if not path.is_file():
        raise NoDataError(
            f"no staged batch for {start.isoformat()}..{end.isoformat()} at {path}: run the stage step first"
        )
    return pd.read_parquet(path)


def gate(lake: Lake, settings: Settings, start: date, end: date) -> QualityReport:
    """Run the quality gates on the staged batch; quarantine the dates that fail.

    The staged batch afterwards holds only the dates that passed (it is removed if none did).
    """
    batch = read_staged(lake, start, end)
    # The dates the batch was asked for: a single-date run always expects its date, even if absent.
    in_range = {d for d in batch["date"] if isinstance(d, date) and start <= d <= end}
    dates = tuple(sorted(in_range | ({start} if start == end else set())))
    history = lake.read_prices(end=start - timedelta(days=1), last_n_dates=settings.history_days)
    expected = set(settings.universe)
    if len(history):
        expected |= set(history.loc[history["date"] == history["date"].max(), "ticker"])
    report = validate_prices(batch, history, dates, GateLimits.from_settings(settings), expected)
    failed = set(report.failed_dates)
    stray = ~batch["date"].isin(dates)  # rows dated outside the request go with every failed date
    for day in sorted(failed):
        _quarantine(lake, day, batch[(batch["date"] == day) | stray], report.for_date(day))
    staged = _staged_file(lake, start, end)
    keep = batch[~batch["date"].isin(failed) & ~stray]
    if keep.empty:
        shutil.rmtree(staged.parent, ignore_errors=True)
    elif failed:
        _write_parquet(keep, staged)
    return report


def _quarantine(lake: Lake, day: date, rows: pd.DataFrame, report: QualityReport) -> Path:
    """Write a blocked batch and its report under ``quarantine/prices/date=D/`` (replacing an older one)."""
    folder = lake.quarantine(day)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rows.to_parquet(folder / BATCH_FILE, index=False)
    (folder / "report.json").write_text(json.dumps(report.as_dict(), indent=2, sort_keys=True) + "\n")
    (folder / "report.txt").write_text(report.to_text(limit=1000) + "\n")
    return folder


def publish(lake: Lake, spark: Any, start: date, end: date) -> dict[str, int]:
    """Write the staged (gated) batch to ``prices/`` with Spark; returns rows per published date."""
    from marketdata.spark_writer import write_prices

    staged = _staged_file(lake, start, end)
    if not staged.is_file():
        return {}
    batch = pd.read_parquet(staged)
    write_prices(spark, [staged], lake)
    counts = batch.groupby("date").size()
    for day in counts.index:
        shutil.rmtree(lake.quarantine(day), ignore_errors=True)  # the date now has a good partition
    shutil.rmtree(staged.parent, ignore_errors=True)
    return {d.isoformat(): int(n) for d, n in counts.items()}


def ingest_range(
    settings: Settings,
    feed: PriceFeed,
    start: date,
    end: date,
    spark: Any | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> IngestResult:
    """Bulk path: stage, gate and publish [start, end] in one process and one Spark job."""
    t0 = time.perf_counter()
    lake = Lake(settings.lake_root)
    staged = stage(lake, feed, start, end)
    progress(
        f"staged {staged.rows} rows, {len(staged.dates)} date(s), {len(staged.tickers)} ticker(s) "
        f"from {feed.name}"
    )
    report = gate(lake, settings, start, end)
    progress(report.to_text(limit=10))
    if spark is None and set(report.failed_dates) != set(report.dates):
        from marketdata.spark_writer import get_spark

        spark = get_spark(settings.spark_master)
    partitions = publish(lake, spark, start, end) if spark is not None else {}
    progress(f"published {len(partitions)} partition(s) under {lake.prices}")
    published = tuple(sorted(date.fromisoformat(d) for d in partitions))
    return IngestResult(
        start=start,
        end=end,
        source=feed.name,
        published=published,
        quarantined=report.failed_dates,
        rows=sum(partitions.values()),
        tickers=staged.tickers,
        report=report,
        seconds=time.perf_counter() - t0,
        partitions=partitions,
    )
