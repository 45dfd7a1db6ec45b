"""Test support: a small lake written directly (no Spark) with seeded closes and the bundled reference
tables, for the consolidated book's unit and integration tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from marketdata.reference import read_reference_csv
from quantbridge.lake import Lake

TICKERS = ("AAA", "BBB", "CCC")


def write_closes(lake: Lake, days: int = 90, seed: int = 5, start: str = "2024-01-02") -> pd.DataFrame:
    """``days`` business days of seeded random-walk closes for :data:`TICKERS`; returns them."""
    dates = pd.bdate_range(start, periods=days).date
    rng = np.random.default_rng(seed)
    walks = 100 * np.exp(np.cumsum(rng.normal(0, 0.012, (days, len(TICKERS))), axis=0))
    for i, day in enumerate(dates):
        part = lake.price_partition(day)
        part.mkdir(parents=True)
        pd.DataFrame({"ticker": list(TICKERS), "close": walks[i]}).to_parquet(part / "part-00000.parquet")
    return pd.DataFrame(walks, index=dates, columns=list(TICKERS))


def write_reference(lake: Lake, tables: dict[str, pd.DataFrame] | None = None) -> None:
    """The bundled bond_book, curve and fx tables (or the ``tables`` given instead) into the lake."""
    for name in ("bond_book", "curve", "fx"):
        frame = (tables or {}).get(name)
        frame = read_reference_csv(name) if frame is None else frame
        path = Path(lake.reference(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
