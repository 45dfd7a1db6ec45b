"""Operator order rows: one order from ``qb order submit``'s flags, or a whole CSV/JSONL file, validated
row by row into :class:`OrderRow` (every bad row listed by line, field and value; a file is accepted whole
or refused whole by :class:`OrdersRefused`). Pure parsing: no Redis, no lake."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbridge.errors import InputError

#: Columns of an order file (CSV header or JSONL keys); the first three are required.
ORDER_FIELDS = ("ticker", "side", "quantity", "limit_price", "id")
REQUIRED_FIELDS = ("ticker", "side", "quantity")
#: Orders per file: all of them go in one Lua call (atomic), which blocks Redis while it runs.
MAX_FILE_ORDERS = 10_000
#: Printable ASCII without spaces: an id is typed, logged and shown in tables.
_ID = re.compile(r"^[!-~]{1,128}$")


class OrdersRefused(InputError):
    """An order file (or a command-line order) with one or more bad rows: nothing was submitted."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        super().__init__(source, f"{len(problems)} problem(s)", "every row valid")
        self.args = (
            f"{source} refused, nothing submitted ({len(problems)} problem(s)):\n  " + "\n  ".join(problems),
        )

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class OrderRow:
    """One validated operator order before it is priced: ``line`` is the file line (None on the command
    line), ``order_id`` None until one is generated."""

    line: int | None
    ticker: str
    side: str
    quantity: float
    limit_price: float | None
    order_id: str | None


def _number(name: str, raw: Any, *, optional: bool) -> tuple[float | None, str | None]:
    """(value, None) or (None, problem) for a positive finite number given as a JSON number or text."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, (None if optional else f"{name} is missing: expected a positive finite number")
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        return None, f"{name}={raw!r} is invalid: expected a positive finite number"
    try:
        value = float(raw)
    except ValueError:
        return None, f"{name}={raw!r} is invalid: expected a positive finite number"
    if not math.isfinite(value) or value <= 0:
        return None, f"{name}={raw!r} is invalid: expected a positive finite number"
    return value, None


def _text(name: str, raw: Any, expected: str, *, optional: bool = False) -> tuple[str | None, str | None]:
    """(stripped text, None), (None, None) when optional and absent, or (None, problem)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, (None if optional else f"{name} is missing: expected {expected}")
    if not isinstance(raw, str):
        return None, f"{name}={raw!r} is invalid: expected text"
    return raw.strip(), None


def parse_order(
    fields: dict[str, Any], line: int | None, names: dict[str, str] | None = None
) -> tuple[OrderRow | None, list[str]]:
    """Validate one order's raw fields (text from CSV or the command line, JSON values from JSONL).

    ``names`` maps a field to the name used in messages (``--limit-price`` on the command line). Returns
    the row, or None and every problem found (a row is never half-checked).
    """
    names = names or {}

    def label(name: str) -> str:
        return names.get(name, name)

    problems: list[str] = []
    ticker, problem = _text(label("ticker"), fields.get("ticker"), "a ticker such as AAPL")
    ticker = ticker.upper() if ticker else ticker  # tickers are case-insensitive; the lake's are upper-case
    problems += [problem] if problem else []
    side, problem = _text(label("side"), fields.get("side"), "BUY or SELL")
    if side is not None and side.upper() not in ("BUY", "SELL"):
        problem = f"{label('side')}={side!r} is invalid: expected BUY or SELL"
    problems += [problem] if problem else []
    quantity, problem = _number(label("quantity"), fields.get("quantity"), optional=False)
    problems += [problem] if problem else []
    limit, problem = _number(label("limit_price"), fields.get("limit_price"), optional=True)
    problems += [problem] if problem else []
    order_id, problem = _text(label("id"), fields.get("id"), "", optional=True)
    if order_id is not None and not _ID.match(order_id):
        problem = (
            f"{label('id')}={order_id!r} is invalid: expected 1 to 128 printable ASCII characters "
            "without spaces"
        )
    problems += [problem] if problem else []
    if problems:
        return None, problems
    assert ticker is not None and side is not None and quantity is not None  # every None was a problem
    return OrderRow(line, ticker, side.upper(), quantity, limit, order_id), []


def at_line(line: int | None, problem: str) -> str:
    """``problem`` prefixed with its file line (``line N: ...``), bare for a command-line order."""
    return problem if line is None else f"line {line}: {problem}"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is not part of the header
    except FileNotFoundError:
        raise InputError("--file", str(path), "an existing .csv or .jsonl file") from None
    except UnicodeDecodeError as exc:
        raise InputError("--file", str(path), f"UTF-8 text (byte {exc.start} is not)") from None


def parse_csv(body: str) -> tuple[list[OrderRow], list[str]]:
    """Rows of a CSV with a header naming columns of :data:`ORDER_FIELDS`; problems prefixed by file line."""
    reader = csv.reader(body.splitlines(keepends=True))
    header = next(reader, None)
    if header is None:
        return [], ["the file is empty: expected a header line such as ticker,side,quantity,limit_price,id"]
    columns = [c.strip().lower() for c in header]
    problems = []
    unknown = [c for c in columns if c not in ORDER_FIELDS]
    if unknown:
        problems.append(
            at_line(
                1,
                f"unknown column(s) {', '.join(map(repr, unknown))}: expected columns of "
                f"{', '.join(ORDER_FIELDS)}",
            )
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        problems.append(at_line(1, f"column(s) {', '.join(map(repr, repeated))} given more than once"))
    missing = [c for c in REQUIRED_FIELDS if c not in columns]
    if missing:
        problems.append(at_line(1, f"required column(s) {', '.join(missing)} missing from the header"))
    if problems:
        return [], problems
    rows: list[OrderRow] = []
    for values in reader:
        line = reader.line_num
        if not values:
            continue  # a blank line holds no order
        if len(values) != len(columns):
            problems.append(
                at_line(line, f"{len(values)} values for {len(columns)} columns ({','.join(columns)})")
            )
            continue
        row, found = parse_order(dict(zip(columns, values, strict=True)), line)
        problems += [at_line(line, p) for p in found]
        rows += [row] if row else []
    return rows, problems


def parse_jsonl(body: str) -> tuple[list[OrderRow], list[str]]:
    """Rows of JSON Lines, one object per line with keys of :data:`ORDER_FIELDS`; blank lines skipped."""
    rows: list[OrderRow] = []
    problems: list[str] = []
    for line, raw in enumerate(body.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(at_line(line, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(record, dict):
            problems.append(at_line(line, f"expected a JSON object, got {type(record).__name__}"))
            continue
        unknown = [k for k in record if k not in ORDER_FIELDS]
        if unknown:
            problems.append(
                at_line(
                    line,
                    f"unknown field(s) {', '.join(map(repr, unknown))}: expected {', '.join(ORDER_FIELDS)}",
                )
            )
        row, found = parse_order(record, line)
        problems += [at_line(line, p) for p in found]
        rows += [row] if row and not unknown else []
    return rows, problems


def parse_order_file(path: Path) -> tuple[list[OrderRow], list[str]]:
    """Orders of a ``.csv`` or ``.jsonl`` (``.ndjson``) file and every problem found, by line."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise InputError("--file", str(path), "a .csv or .jsonl (.ndjson) file")
    body = _read_text(path)
    rows, problems = parse_csv(body) if suffix == ".csv" else parse_jsonl(body)
    if not rows and not problems:
        problems.append("no orders in the file")
    if len(rows) > MAX_FILE_ORDERS:
        problems.append(
            f"{len(rows)} orders: at most {MAX_FILE_ORDERS:,} per file (they go in one atomic "
            "call); split the file"
        )
    return rows, problems


# --- checks against the lake and Redis, then one atomic publish ---------------------------------------------
