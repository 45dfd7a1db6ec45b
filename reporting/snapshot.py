"""What the risk dashboard shows, read from Redis and the lake as plain data (no HTTP, no Airflow).

:func:`risk_snapshot` gathers one JSON-ready picture: the live VaR/CVaR (``risk:current``) and its
history (``risk:history``), the kill switch, positions, heartbeats, recent fills and execution cost by
venue (``fills``), the latest stress table (lake ``stress/date=D/``, else the ``stress:ledger`` stream) and
the latest nightly report (lake ``reports/date=D/report.html``). :func:`report_file` resolves a file under
the lake's ``reports/`` folder and refuses any path that would leave it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from execution.costs import venue_costs
from marketdata.ingest_record import read_ingest
from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.positions import read_positions
from quantbridge.redis_client import connect, text
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import Settings
from reporting.page import REPORT_FILE

#: Long-running components whose heartbeat the dashboard shows.
COMPONENTS = ("var_sensor", "execution_worker")
#: Numeric fields of ``risk:current`` / ``risk:history`` entries (the rest stay text).
RISK_NUMBERS = ("var", "cvar", "volatility", "limit", "confidence", "horizon_days", "seconds", "positions")
FILL_NUMBERS = ("quantity", "price", "fee", "slippage_bps", "latency_ms")
STRESS_COLUMNS = ("family", "scenario", "base_value", "shocked_value", "change")


def risk_snapshot(
    settings: Settings,
    client: Any = None,
    *,
    history: int = 240,
    fills: int = 20,
    cost_window: int = 5_000,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Everything the dashboard shows, as JSON-ready data.

    ``client``: a Redis client (default: :func:`quantbridge.redis_client.connect` on ``settings``,
    closed after); ``history``: last VaR refreshes kept, oldest first; ``fills``: recent fills, newest
    first; ``cost_window``: fills (newest) aggregated by :func:`execution.costs.venue_costs`. Money in
    the book's currency, costs in basis points of traded notional.
    """
    for name, value in (("history", history), ("fills", fills), ("cost_window", cost_window)):
        if not isinstance(value, int) or value < 1:
            raise InputError(name, value, "a positive integer")
    own = client is None
    client = connect(settings) if own else client
    try:
        schema = RedisSchema(settings.redis_prefix)
        lake = Lake(Path(settings.lake_root))
        recent = _fills(client, schema, max(fills, cost_window))
        return {
            "generated_at": clock().isoformat(timespec="seconds"),
            "risk": _risk_current(client, schema),
            "history": _risk_history(client, schema, history),
            "kill_switch": _kill_switch(client, schema),
            "positions": read_positions(client, schema),
            "heartbeats": {c: _optional_text(client.get(schema.heartbeat(c))) for c in COMPONENTS},
            "fills": recent[:fills],
            "venue_costs": venue_costs(recent[:cost_window]),
            "stress": latest_stress(lake, client, schema),
            "report": latest_report(lake),
            "ingest": {text(k): text(v) for k, v in read_ingest(client, schema).items()},
        }
    finally:
        if own:
            client.close()


def _optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def _number(value: Any) -> float | None:
    try:
        number = float(text(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _typed(fields: dict[Any, Any], numbers: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {text(k): text(v) for k, v in fields.items()}
    for name in numbers:
        if name in out:
            out[name] = _number(out[name])
    return out


def _risk_current(client: Any, schema: RedisSchema) -> dict[str, Any] | None:
    """The latest figures, or None before the sensor's first refresh."""
    fields = client.hgetall(schema.key("risk_current"))
    return _typed(fields, RISK_NUMBERS) if fields else None


def _risk_history(client: Any, schema: RedisSchema, count: int) -> list[dict[str, Any]]:
    """The last ``count`` refreshes, oldest first: entry id, time, var, cvar, limit."""
    entries = client.xrevrange(schema.key("risk_history"), count=count)
    out = []
    for entry_id, fields in reversed(entries):
        row = _typed(fields, RISK_NUMBERS)
        out.append(
            {
                "id": text(entry_id),
                "at": row.get("updated_at", ""),
                "var": row.get("var"),
                "cvar": row.get("cvar"),
                "limit": row.get("limit"),
            }
        )
    return out


def _kill_switch(client: Any, schema: RedisSchema) -> dict[str, Any]:
    """``active`` and the stored reason (a JSON object from the sensor, or an operator's text)."""
    raw = client.get(schema.key("kill_switch"))
    if raw is None:
        return {"active": False, "reason": None}
    try:
        reason: Any = json.loads(text(raw))
    except json.JSONDecodeError:
        reason = text(raw)
    return {"active": True, "reason": reason}


def _fills(client: Any, schema: RedisSchema, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` fills, newest first, with numbers typed and ``notional`` added."""
    out = []
    for entry_id, fields in client.xrevrange(schema.key("fills"), count=count):
        row = _typed(fields, FILL_NUMBERS)
        row["id"] = text(entry_id)
        qty, price = row.get("quantity"), row.get("price")
        row["notional"] = qty * price if qty is not None and price is not None else None
        out.append(row)
    return out


def _table_dates(lake: Lake, table: str) -> list[date]:
    """Dates of a date-partitioned downstream table's partitions, ascending."""
    folder = lake.partition(table, "date", "_").parent
    if not folder.is_dir():
        return []
    days = []
    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith("date="):
            try:
                days.append(date.fromisoformat(child.name[5:]))
            except ValueError:
                continue  # a stray folder is not a partition
    return sorted(days)


def latest_stress(lake: Lake, client: Any, schema: RedisSchema) -> dict[str, Any]:
    """The latest stress date's per-scenario totals (worst change first), from the lake's ``stress/``
    partition, else from the ledger stream; ``date`` is None when neither holds a run."""
    import pandas as pd

    for day in reversed(_table_dates(lake, "stress")):
        files = sorted(lake.partition("stress", "date", day.isoformat()).glob("*.parquet"))
        if files:
            frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
            return _stress_table(frame, day.isoformat(), "lake")
    rows = [
        {text(k): text(v) for k, v in fields.items()}
        for _, fields in client.xrange(schema.key("stress_ledger"))
    ]
    days = sorted({r.get("date", "") for r in rows} - {""})
    if not days:
        return {"date": None, "source": None, "rows": 0, "scenarios": []}
    frame = pd.DataFrame([r for r in rows if r.get("date") == days[-1]])
    for column in ("base_value", "shocked_value", "change"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return _stress_table(frame, days[-1], "stream")


def _stress_table(frame: Any, day: str, source: str) -> dict[str, Any]:
    missing = [c for c in (*STRESS_COLUMNS, "position") if c not in frame.columns]
    if missing:
        raise InputError(
            f"stress ledger of {day} ({source}) columns",
            sorted(frame.columns),
            f"the ledger columns, missing {missing}",
        )
    totals = frame[frame["position"] == "TOTAL"].loc[:, list(STRESS_COLUMNS)].sort_values("change")
    scenarios = [
        {k: (float(v) if k in ("base_value", "shocked_value", "change") else str(v)) for k, v in r.items()}
        for r in totals.to_dict("records")
    ]
    return {"date": day, "source": source, "rows": int(len(frame)), "scenarios": scenarios}


def latest_report(lake: Lake) -> dict[str, str] | None:
    """The newest ``reports/date=D/report.html``: its date and path relative to ``reports/``."""
    for day in reversed(_table_dates(lake, "reports")):
        if (lake.partition("reports", "date", day.isoformat()) / REPORT_FILE).is_file():
            return {"date": day.isoformat(), "path": f"date={day.isoformat()}/{REPORT_FILE}"}
    return None


def report_file(settings: Settings, relative: str) -> Path:
    """The file ``relative`` under the lake's ``reports/`` folder.

    Raises InputError for a path that is absolute, contains ``..`` or resolves (through a symlink)
    outside ``reports/``; FileNotFoundError when no such file exists.
    """
    root = Lake(Path(settings.lake_root)).partition("reports", "date", "_").parent.resolve()
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if (
        not parts
        or relative.startswith(("/", "\\"))
        or any(p in ("..", "") for p in parts)
        or "\x00" in relative
    ):
        raise InputError("report path", relative, "a relative path inside the lake's reports/ folder")
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root):
        raise InputError(
            "report path", relative, "a file inside the lake's reports/ folder, not a link out of it"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no report file {relative!r} under {root}")
    return path


__all__ = ["latest_report", "latest_stress", "report_file", "risk_snapshot"]
