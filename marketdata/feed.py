"""Vendor feeds of daily closes, delivered as long batches ``date, ticker, close``.

* :class:`SkfolioFeed`: the real daily prices that ship inside skfolio's wheel (20 S&P 500 stocks,
  1990-01-02..2022-12-28), read offline and served as if a vendor delivered them one day at a time.
* :class:`FileFeed`: a user's own CSV or Parquet file with columns ``date, ticker, close``, so research
  is not limited to the bundled data. It goes through the same quality gates.

Feeds parse and type the data; they never repair it. A value that is present but unreadable (a date
that is not a date, a close that is not a number) is an :class:`~quantbridge.errors.InputError` naming
the row; a value that is absent stays missing, for the gates to report and quarantine.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import pandas as pd

from marketdata.quality import PRICE_COLUMNS
from quantbridge.errors import InputError, NoDataError


class PriceFeed(Protocol):
    """Anything that delivers long daily closes for a date range (inclusive)."""

    name: str

    def fetch(self, start: date, end: date) -> pd.DataFrame: ...


def check_range(start: date, end: date) -> None:
    if start > end:
        raise InputError("start", start.isoformat(), f"a date on or before end={end.isoformat()}")


@lru_cache(maxsize=1)
def _skfolio_wide() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset()


@lru_cache(maxsize=1)
def skfolio_factor_prices() -> pd.DataFrame:
    """Real daily closes of five factor ETFs (MTUM, QUAL, SIZE, USMV, VLUE), 2014..2022, long format."""
    from skfolio.datasets import load_factors_dataset

    return _to_long(load_factors_dataset())


def _to_long(wide: pd.DataFrame) -> pd.DataFrame:
    long = (
        wide.rename_axis(index="date", columns="ticker")
        .stack(future_stack=True)
        .rename("close")
        .reset_index()
    )
    long["date"] = long["date"].dt.date
    long["close"] = long["close"].astype("float64")
    return long.loc[:, list(PRICE_COLUMNS)].sort_values(["date", "ticker"], ignore_index=True)


class SkfolioFeed:
    """The bundled real S&P 500 prices, served by date range."""

    name = "skfolio-sp500"

    def __init__(self, tickers: tuple[str, ...] = ()) -> None:
        self.tickers = tuple(tickers)

    def extent(self) -> tuple[date, date]:
        index = _skfolio_wide().index
        return index.min().date(), index.max().date()

    def fetch(self, start: date, end: date) -> pd.DataFrame:
        """Closes for trading days in [start, end]; an empty frame when the market was closed throughout."""
        check_range(start, end)
        wide = _skfolio_wide()
        if self.tickers:
            unknown = sorted(set(self.tickers) - set(wide.columns))
            if unknown:
                raise InputError(
                    "universe", ",".join(unknown), f"tickers of the feed: {', '.join(wide.columns)}"
                )
            wide = wide.loc[:, list(self.tickers)]
        window = wide.loc[pd.Timestamp(start) : pd.Timestamp(end)]
        return _to_long(window)


class FileFeed:
    """A user's daily price file (CSV or Parquet) with columns date, ticker, close."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path.name}"
        if not self.path.is_file():
            raise InputError("--source", str(self.path), "an existing CSV or Parquet file")
        if self.path.suffix.lower() not in {".csv", ".parquet", ".pq"}:
            raise InputError("--source", str(self.path), "a file ending in .csv or .parquet")

    def _read(self) -> pd.DataFrame:
        if self.path.suffix.lower() == ".csv":
            raw = pd.read_csv(self.path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            raw = pd.read_parquet(self.path)
        raw.columns = [str(c).strip().lower() for c in raw.columns]
        missing = [c for c in PRICE_COLUMNS if c not in raw.columns]
        if missing:
            raise InputError(
                f"{self.path.name} columns",
                list(raw.columns),
                f"columns {', '.join(PRICE_COLUMNS)}",
                hint=f"missing: {', '.join(missing)}",
            )
        extra = [c for c in raw.columns if c not in PRICE_COLUMNS]
        if extra:
            raise InputError(
                f"{self.path.name} columns",
                list(raw.columns),
                f"exactly {', '.join(PRICE_COLUMNS)}",
                hint=f"unexpected: {', '.join(extra)}; nothing is dropped silently",
            )
        return raw

    def fetch(self, start: date, end: date) -> pd.DataFrame:
        check_range(start, end)
        raw = self._read()
        parsed_dates = pd.to_datetime(raw["date"], errors="coerce")
        bad = raw["date"].notna() & parsed_dates.isna()
        if bad.any():
            i = int(bad.idxmax())
            raise InputError(
                f"{self.path.name} row {i + 2} date", raw.at[i, "date"], "a date like 2020-01-02"
            )
        close = pd.to_numeric(raw["close"], errors="coerce")
        bad = raw["close"].notna() & close.isna()
        if bad.any():
            i = int(bad.idxmax())
            raise InputError(f"{self.path.name} row {i + 2} close", raw.at[i, "close"], "a number")
        frame = pd.DataFrame(
            {
                "date": parsed_dates.dt.date,
                "ticker": raw["ticker"].where(raw["ticker"].isna(), raw["ticker"].astype(str).str.strip()),
                "close": close.astype("float64"),
            }
        )
        # Rows with no date cannot be placed in a partition: they are a schema error of the whole file.
        if frame["date"].isna().any():
            i = int(frame["date"].isna().idxmax())
            raise InputError(f"{self.path.name} row {i + 2} date", None, "a date like 2020-01-02")
        inside = (frame["date"] >= start) & (frame["date"] <= end)
        return frame.loc[inside].sort_values(["date", "ticker"], kind="mergesort", ignore_index=True)


def fetch_or_raise(feed: PriceFeed, start: date, end: date) -> pd.DataFrame:
    """Fetch, raising :class:`NoDataError` when the feed has no rows in the range."""
    batch = feed.fetch(start, end)
    if batch.empty:
        raise NoDataError(
            f"feed {feed.name} has no prices between {start.isoformat()} and {end.isoformat()} "
            "(weekend, market holiday, or outside the feed's history)"
        )
    return batch
