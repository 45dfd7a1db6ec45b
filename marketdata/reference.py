"""Reference tables of the lake: illustrative ESG scores, par curve, bond book and FX exposures, plus
the real factor-ETF prices that ship with skfolio.

No real ESG, yield-curve or FX feed can be reached offline, so the first four are small hand-made
tables in ``marketdata/reference_data/`` and are labelled ILLUSTRATIVE in each file and in the docs.
Loading is idempotent: each table is rewritten in full, deterministically.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd

from quantbridge.errors import InputError
from quantbridge.lake import Lake

DATA_DIR = Path(__file__).with_name("reference_data")

#: Columns and dtypes of each illustrative table (the CSV must have exactly these columns).
SCHEMAS: dict[str, dict[str, str]] = {
    "esg": {"ticker": "string", "sector": "string", "esg_score": "float64"},
    "curve": {"as_of": "date", "tenor_years": "float64", "par_rate": "float64"},
    "bond_book": {
        "id": "string",
        "face": "float64",
        "coupon_rate": "float64",
        "maturity_date": "date",
        "coupon_frequency": "int64",
        "currency": "string",
    },
    "fx": {"currency": "string", "notional": "float64", "spot_usd": "float64", "annual_vol": "float64"},
}


def read_reference_csv(table: str, path: str | Path | None = None) -> pd.DataFrame:
    """Read and type one illustrative table; a missing column or unreadable value is an InputError."""
    schema = SCHEMAS[table]
    path = Path(path) if path else DATA_DIR / f"{table}.csv"
    if not path.is_file():
        raise InputError(f"{table} file", str(path), "an existing CSV file")
    raw = pd.read_csv(path, comment="#", dtype=str, skipinitialspace=True)
    if list(raw.columns) != list(schema):
        raise InputError(f"{path.name} columns", list(raw.columns), f"exactly {', '.join(schema)}")
    out = pd.DataFrame(index=raw.index)
    for column, kind in schema.items():
        values = raw[column]
        if values.isna().any():
            row = int(values.isna().idxmax()) + 1
            raise InputError(f"{path.name} row {row} {column}", None, f"a {kind} value")
        if kind == "date":
            parsed = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
            typed = parsed.dt.date
        elif kind == "string":
            parsed, typed = values, values.str.strip()
        else:
            parsed = pd.to_numeric(values, errors="coerce")
            typed = parsed
        if kind == "int64" and not parsed.isna().any():
            parsed = parsed.where(parsed % 1 == 0)  # 2.5 payments a year is an error, not a 2
        if parsed.isna().any():
            row = int(parsed.isna().idxmax())
            raise InputError(f"{path.name} row {row + 1} {column}", values[row], f"a {kind} value")
        out[column] = typed.astype(kind) if kind not in {"date", "string"} else typed
    if table == "esg" and not out["esg_score"].between(0, 1).all():
        row = int((~out["esg_score"].between(0, 1)).idxmax())
        raise InputError(
            f"{path.name} row {row + 1} esg_score", float(out.at[row, "esg_score"]), "a score in [0, 1]"
        )
    return out


def load_reference_tables(lake: Lake) -> dict[str, int]:
    """Write every reference table to ``reference/<table>.parquet``; returns rows per table."""
    from marketdata.feed import skfolio_factor_prices

    tables = {name: read_reference_csv(name) for name in SCHEMAS}
    tables["factor_prices"] = skfolio_factor_prices()
    counts = {}
    for name, frame in tables.items():
        path = lake.reference(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per writer: concurrent ingest runs (a backfill) share the reference folder.
        tmp = path.with_suffix(f".{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
        counts[name] = len(frame)
    return counts


def read_reference(lake: Lake, table: str) -> pd.DataFrame:
    """A reference table from the lake (run :func:`load_reference_tables` first)."""
    path = lake.reference(table)
    if not path.is_file():
        raise FileNotFoundError(
            f"reference table {table!r} is not in the lake at {path}: run `qb ingest` or the "
            "market_data_ingest DAG first (it loads the reference tables)"
        )
    return pd.read_parquet(path)


def esg_scores(lake: Lake) -> pd.Series | None:
    """ESG score per ticker from the lake's reference table, or None when it is not loaded yet."""
    path = lake.reference("esg")
    if not path.is_file():
        return None
    return pd.read_parquet(path).set_index("ticker")["esg_score"]
