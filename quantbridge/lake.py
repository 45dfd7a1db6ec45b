"""Layout of the Parquet lake: every table's path is spelled here and nowhere else.

::

    <lake_root>/prices/date=YYYY-MM-DD/part-00000.snappy.parquet  GX-gated daily closes (ticker, close)
    <lake_root>/reference/<table>.parquet                          illustrative reference tables, factor ETFs
    <lake_root>/quarantine/prices/date=YYYY-MM-DD/                 blocked batches: batch.parquet, report.*
    <lake_root>/_staging/prices/START_END/batch.parquet            a fetched batch waiting for its gates
    <lake_root>/features/date=D/  stress/date=D/  synthetic/run=R/  models/version=V/  reports/date=D/

Readers here use pyarrow (no JVM needed); writers of ``prices/`` go through Spark
(:mod:`marketdata.spark_writer`). ``quarantine/`` and ``_staging/`` are never read by downstream code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

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
        if not self.prices.is_dir():
            return []
        out = []
        for child in self.prices.iterdir():
            if child.is_dir() and child.name.startswith("date=") and any(child.glob("*.parquet")):
                out.append(date.fromisoformat(child.name[5:]))
        return sorted(out)

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
        import pyarrow.dataset as ds

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
        dataset = ds.dataset(
            self.prices,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive"),
        )
        table = dataset.to_table(
            columns=["date", "ticker", "close"],
            filter=(ds.field("date") >= days[0]) & (ds.field("date") <= days[-1]),
        )
        frame = table.to_pandas(date_as_object=True)
        return frame.sort_values(["date", "ticker"], ignore_index=True)

    def read_close_matrix(self, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Published closes as a (dates x tickers) matrix, the shape risk and strategy code want."""
        long = self.read_prices(start, end)
        return long.pivot(index="date", columns="ticker", values="close")
