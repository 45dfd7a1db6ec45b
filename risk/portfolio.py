"""Positions (ticker -> quantity) and their money exposures at the latest lake prices."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from quantbridge.errors import InputError


def parse_positions(raw: dict[str, object], source: str = "positions") -> dict[str, float]:
    """Validate a ticker -> quantity mapping; every error names the ticker and the value."""
    if not raw:
        raise InputError(source, "{}", "at least one (ticker, quantity) position")
    out: dict[str, float] = {}
    for ticker, quantity in raw.items():
        name = str(ticker).strip().upper()
        try:
            qty = float(quantity)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(f"{source}[{name}]", quantity, "a number of shares") from None
        if not math.isfinite(qty):
            raise InputError(f"{source}[{name}]", quantity, "a finite number of shares")
        if name in out:
            raise InputError(f"{source}[{name}]", quantity, "one line per ticker (it appears twice)")
        out[name] = qty
    return out


def load_positions(path: str | Path) -> dict[str, float]:
    """Positions from a CSV (columns ticker, quantity) or a JSON object / list of {ticker, quantity}."""
    path = Path(path)
    if not path.is_file():
        raise InputError("--positions", str(path), "an existing CSV or JSON file")
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, list):
            try:
                data = {row["ticker"]: row["quantity"] for row in data}
            except (KeyError, TypeError):
                raise InputError(path.name, "list", 'a list of {"ticker": ..., "quantity": ...}') from None
        if not isinstance(data, dict):
            raise InputError(path.name, type(data).__name__, "a JSON object ticker -> quantity")
        return parse_positions(data, path.name)
    frame = pd.read_csv(path, dtype=str)
    frame.columns = [c.strip().lower() for c in frame.columns]
    if list(frame.columns) != ["ticker", "quantity"]:
        raise InputError(f"{path.name} columns", list(frame.columns), "exactly ticker, quantity")
    if frame["ticker"].duplicated().any():
        dup = frame.loc[frame["ticker"].duplicated(), "ticker"].iloc[0]
        raise InputError(f"{path.name}[{dup}]", "twice", "one line per ticker")
    return parse_positions(dict(zip(frame["ticker"], frame["quantity"], strict=True)), path.name)


def exposures(positions: dict[str, float], last_prices: pd.Series) -> pd.Series:
    """Money exposure per ticker (quantity x last price), in the order of ``positions``."""
    unknown = sorted(set(positions) - set(last_prices.index))
    if unknown:
        raise InputError(
            "positions", ",".join(unknown), "tickers present in the lake: " + ", ".join(last_prices.index)
        )
    tickers = list(positions)
    return pd.Series([positions[t] * float(last_prices[t]) for t in tickers], index=tickers, dtype="float64")


#: Money in the demo and reference books when the user gives no positions (``qb var``, the nightly report).
DEMO_NOTIONAL = 1_000_000.0


def equal_weight_book(last_prices: pd.Series, notional: float = DEMO_NOTIONAL) -> dict[str, float]:
    """The reference portfolio: ``notional`` split equally across every ticker, as share quantities."""
    each = notional / len(last_prices)
    return {str(t): each / float(p) for t, p in last_prices.items()}


#: Reference books of the VaR backtest (docs/risk.md), money per ticker rebalanced at every close.
REFERENCE_BOOKS = ("equal_weight", "long_short")


def reference_book(name: str, tickers: list[str], notional: float = DEMO_NOTIONAL) -> dict[str, float]:
    """Money per ticker of a reference book over ``tickers`` (sorted by name), gross ``notional``.

    ``equal_weight``: ``notional / n`` long in every ticker. ``long_short``: long the first half of the
    sorted tickers and short the second half (the extra ticker of an odd count is short), each side
    ``notional / 2`` split equally: net zero, gross ``notional``.
    """
    names = sorted(str(t) for t in tickers)
    if len(names) < 2:
        raise InputError("tickers", names, "at least two tickers for a reference book")
    if name == "equal_weight":
        return {t: notional / len(names) for t in names}
    if name == "long_short":
        half = len(names) // 2
        longs, shorts = names[:half], names[half:]
        return {
            **{t: notional / 2 / len(longs) for t in longs},
            **{t: -notional / 2 / len(shorts) for t in shorts},
        }
    raise InputError("book", name, "one of " + ", ".join(REFERENCE_BOOKS))
