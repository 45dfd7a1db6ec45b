"""The date a run works on: its `date` Param when given, else the run's logical date (or run_after)."""

from __future__ import annotations

from datetime import date
from typing import Any


def run_date(context: Any) -> date:
    chosen = context["params"].get("date")
    if chosen:
        return date.fromisoformat(chosen)
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.date()
