"""The latest synthetic samples in the lake (``synthetic/run=R/``), read for the synthetic section."""

from __future__ import annotations

import re

import pandas as pd

from quantbridge.lake import Lake

_TICKER = re.compile(r"^[A-Z][A-Z0-9.\-]{0,14}$")


def synthetic_samples(lake: Lake) -> tuple[str, pd.DataFrame] | None:
    """The latest ``synthetic/run=R/`` samples as (run, long frame ``ticker, value``), or None.

    Reads every Parquet file of the run: long format (a ``ticker`` column and one numeric value column,
    ``return`` preferred) or wide (one numeric column per ticker)."""
    root = lake.root / "synthetic"
    runs = (
        sorted(p for p in root.glob("run=*") if p.is_dir() and any(p.rglob("*.parquet")))
        if root.is_dir()
        else []
    )
    if not runs:
        return None
    latest = runs[-1]
    parts = []
    for path in sorted(latest.rglob("*.parquet")):
        data = pd.read_parquet(path)
        if "ticker" in data.columns:
            numeric = [c for c in data.columns if c != "ticker" and pd.api.types.is_float_dtype(data[c])]
            column = "return" if "return" in numeric else (numeric[0] if len(numeric) == 1 else None)
            if column is None:
                continue
            parts.append(pd.DataFrame({"ticker": data["ticker"].astype(str), "value": data[column]}))
        else:
            tickers = [
                c
                for c in data.columns
                if isinstance(c, str) and _TICKER.match(c) and pd.api.types.is_float_dtype(data[c])
            ]
            if tickers:
                parts.append(data.loc[:, tickers].melt(var_name="ticker", value_name="value"))
    if not parts:
        return None
    long = pd.concat(parts, ignore_index=True).dropna()
    return latest.name[len("run=") :], long


__all__ = ["synthetic_samples"]
