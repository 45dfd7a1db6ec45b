"""The nightly report for one date: ``reports/date=D/report.html`` with PNG pictures and ``report.json``.

Sections, each computed from the lake and Redis as they are, one module each under
:mod:`reporting.sections`: ``var`` (today's book backtested with the live VaR code), ``stress`` (heat map
of the day's ledger partition), ``synthetic`` (the latest samples against real returns), ``execution``
(cost by venue from the ``fills`` stream), ``quality`` (quarantined batches by rule, the last ingest).
:mod:`reporting.page` writes the page; this module reads Redis once and runs the sections in order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from reporting.page import write_page
from reporting.redis_inputs import RedisSnapshot, read_redis_snapshot
from reporting.sections.execution import execution_section
from reporting.sections.quality import quality_section
from reporting.sections.section import Section
from reporting.sections.stress import stress_section
from reporting.sections.synthetic import synthetic_section
from reporting.sections.var import var_section

SECTIONS = ("var", "stress", "synthetic", "execution", "quality")


def build_nightly_report(
    lake: Lake,
    day: date,
    redis: Any = None,
    *,
    prefix: str = "qb",
    model: str = "filtered_historical_portfolio",
    confidence: float = 0.99,
    window: int = 500,
    days: int = 250,
    progress: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Write ``reports/date=D/report.html`` (+ PNGs and ``report.json``) and return the HTML's path.

    ``redis`` is a client (read once with :func:`read_redis_snapshot`), a :class:`RedisSnapshot`, or None
    (Redis-backed parts then carry a note). A re-run for the same date and inputs rewrites identical files.
    """
    if not isinstance(day, date):
        raise InputError("day", day, "a datetime.date")
    if redis is None:
        snap = RedisSnapshot(error="no Redis client given")
    elif isinstance(redis, RedisSnapshot):
        snap = redis
    else:
        snap = read_redis_snapshot(redis, RedisSchema(prefix))
    folder = lake.partition("reports", "date", day.isoformat())
    folder.mkdir(parents=True, exist_ok=True)
    for key in SECTIONS:  # a section that now has no picture must not leave an old one behind
        (folder / f"{key}.png").unlink(missing_ok=True)
    options = {"model": model, "confidence": confidence, "window": window, "days": days}
    builders: list[tuple[str, Callable[[], Section]]] = [
        ("var", lambda: var_section(lake, day, snap, folder, options)),
        ("stress", lambda: stress_section(lake, day, folder)),
        ("synthetic", lambda: synthetic_section(lake, day, folder, window)),
        ("execution", lambda: execution_section(snap, folder)),
        ("quality", lambda: quality_section(lake, day, snap, folder)),
    ]
    sections = []
    for key, build in builders:
        sections.append(build())
        progress(f"{key}: " + (sections[-1].note or "done"))
    return write_page(folder, day, snap.error, sections)


__all__ = ["SECTIONS", "RedisSnapshot", "build_nightly_report", "read_redis_snapshot"]
