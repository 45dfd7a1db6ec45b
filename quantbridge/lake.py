"""Layout of the Parquet lake: every table's path is spelled here and nowhere else.

::

    <lake_root>/prices/date=YYYY-MM-DD/part-00000.snappy.parquet  GX-gated daily closes (ticker, close)
    <lake_root>/reference/<table>.parquet                          illustrative reference tables, factor ETFs
    <lake_root>/quarantine/prices/date=YYYY-MM-DD/                 blocked batches: batch.parquet, report.*
    <lake_root>/_staging/prices/START_END/batch.parquet            a fetched batch waiting for its gates
    <lake_root>/features/date=D/  stress/date=D/  synthetic/run=R/  models/version=V/  reports/date=D/
    <lake_root>/governance/date=D/proposal.json                    the governance monitor's proposals
    <lake_root>/policy/bundles/<revision>/                         signed policy bundles (execution.bundle)
    <lake_root>/audit/checkpoints.jsonl                            signed audit checkpoints

Readers here use pyarrow (no JVM needed); writers of ``prices/`` go through Spark
(:mod:`marketdata.spark_writer`). ``quarantine/`` and ``_staging/`` are never read by downstream code.

Each price partition file read is kept in memory, keyed by its path, size and modification time, so the
many readers of one process (sensor, rebalance, stress, reconciliation: each day of a replay) read a file
from disk once; a partition rewritten by a re-run has a new file (or a new time) and is read again.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

#: path -> ((size, mtime_ns, inode), pyarrow table of date, ticker, close): the partition files read so far.
_FILES: dict[str, tuple[tuple[int, int, int], Any]] = {}
_FILES_LOCK = threading.Lock()
#: prices folder -> (its mtime_ns, the dates whose partition held a data file then): a partition appears,
#: disappears or is replaced (Spark's overwrite renames a new folder in) only by changing the folder's time.
_DATES: dict[str, tuple[int, list[date]]] = {}

REFERENCE_TABLES = ("esg", "curve", "bond_book", "fx", "factor_prices")


@dataclass(frozen=True)
class Lake:
    """Paths of the lake under ``root``."""

    root: Path

    @property
    def prices(self) -> Path:
        return self.root / "prices"

    def price_partition(self, day: date) -> Path:
        return self.prices / f"date={day.isoformat()}"

    def staging(self, start: date, end: date) -> Path:
        """Folder of a fetched batch for [start, end] waiting for its gates."""
        return self.root / "_staging" / "prices" / f"{start.isoformat()}_{end.isoformat()}"

    @property
    def quarantine_root(self) -> Path:
        return self.root / "quarantine" / "prices"

    def quarantine(self, day: date) -> Path:
        return self.quarantine_root / f"date={day.isoformat()}"

    def reference(self, table: str) -> Path:
        if table not in REFERENCE_TABLES:
            raise KeyError(f"reference table {table!r} unknown; known: {', '.join(REFERENCE_TABLES)}")
        return self.root / "reference" / f"{table}.parquet"

    def partition(self, table: str, key: str, value: str) -> Path:
        """Partition folder of a downstream table (``features``, ``stress``, ``synthetic``, ``models``,
        ``reports``)."""
        return self.root / table / f"{key}={value}"

    def price_dates(self) -> list[date]:
        """Dates with a published price partition, ascending."""
        try:
            stamp = os.stat(self.prices).st_mtime_ns
        except FileNotFoundError:
            return []
        key = str(self.prices)
        cached = _DATES.get(key)
        if cached is not None and cached[0] == stamp:
            return list(cached[1])
        out, empty = [], False
        with os.scandir(self.prices) as entries:
            for entry in entries:
                if entry.name.startswith("date=") and entry.is_dir():
                    if _parquet_files(entry.path):
                        out.append(date.fromisoformat(entry.name[5:]))
                    else:
                        empty = True
        out.sort()
        # Not kept while a folder still waits for its file, nor within a second of the folder's last change:
        # file times have a clock tick's resolution, so a change in the same tick would keep the same time.
        if not empty and time.time_ns() - stamp > 1_000_000_000:
            _DATES[key] = (stamp, out)
        return list(out)

    def quarantined_dates(self) -> list[date]:
        if not self.quarantine_root.is_dir():
            return []
        return sorted(
            date.fromisoformat(c.name[5:])
            for c in self.quarantine_root.iterdir()
            if c.name.startswith("date=")
        )

    def read_prices(
        self, start: date | None = None, end: date | None = None, last_n_dates: int | None = None
    ) -> pd.DataFrame:
        """Published prices as long format ``date, ticker, close`` sorted by (date, ticker).

        ``start``/``end`` are inclusive; ``last_n_dates`` keeps only the latest n dates of that window.
        """
        import pyarrow as pa

        days = [d for d in self.price_dates() if (start is None or d >= start) and (end is None or d <= end)]
        if last_n_dates is not None:
            days = days[-last_n_dates:] if last_n_dates > 0 else []
        if not days:
            return pd.DataFrame(
                {
                    "date": pd.Series(dtype=object),
                    "ticker": pd.Series(dtype=object),
                    "close": pd.Series(dtype="float64"),
                }
            )
        tables = []
        for day in days:
            tables += [
                _read_partition_file(path, day) for path in _parquet_files(str(self.price_partition(day)))
            ]
        frame = pa.concat_tables(tables).to_pandas(date_as_object=True)
        return frame.sort_values(["date", "ticker"], ignore_index=True)

    def read_close_matrix(self, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Published closes as a (dates x tickers) matrix, the shape risk and strategy code want."""
        long = self.read_prices(start, end)
        return long.pivot(index="date", columns="ticker", values="close")


def _parquet_files(folder: str) -> list[str]:
    """The Parquet data files of a partition folder, sorted (none when it is gone)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.path for e in entries if e.name.endswith(".parquet") and e.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_partition_file(path: str, day: date) -> Any:
    """``date, ticker, close`` of one partition file of ``day``, from memory when the file is unchanged since
    it was read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    st = os.stat(path)
    key = (st.st_size, st.st_mtime_ns, st.st_ino)
    with _FILES_LOCK:
        cached = _FILES.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    table = pq.read_table(path, columns=["ticker", "close"])
    table = table.cast(pa.schema([("ticker", pa.string()), ("close", pa.float64())]))
    table = table.add_column(0, "date", pa.array([day] * table.num_rows, type=pa.date32()))
    with _FILES_LOCK:
        _FILES[path] = (key, table)
    return table
