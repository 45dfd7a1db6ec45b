"""The nightly report's page: ``report.html`` (the sections in order, linked from the top) and
``report.json`` (each section's title, note, picture and figures)."""

from __future__ import annotations

import html
import json
from datetime import date
from pathlib import Path

from reporting.sections.section import Section

REPORT_FILE = "report.html"
SUMMARY_FILE = "report.json"
_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    ".note{background:#fff4e5;border-left:4px solid #e67e22;padding:.5em 1em}"
)


def page_html(day: date, sections: list[Section]) -> str:
    """The nightly report's HTML page (:func:`render_page`)."""
    return render_page(
        f"quantbridge nightly report {day.isoformat()}",
        f"quantbridge nightly report, {day.isoformat()}",
        sections,
    )


def render_page(title: str, heading: str, sections: list[Section], css: str = _CSS) -> str:
    """A report page (the nightly report, the replay's tear sheet): a title, links to the sections, then each
    section's note, picture and body."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{css}</style></head><body>",
        f"<h1>{html.escape(heading)}</h1>",
        "<p>" + " · ".join(f"<a href='#{s.key}'>{html.escape(s.title)}</a>" for s in sections) + "</p>",
    ]
    for s in sections:
        parts.append(f"<h2 id='{s.key}'>{html.escape(s.title)}</h2>")
        if s.note:
            parts.append(f"<p class='note'>{html.escape(s.note)}</p>")
        if s.png:
            parts.append(f"<img src='{html.escape(s.png)}' alt='{html.escape(s.title)}'>")
        parts.append(s.body)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_page(folder: Path, day: date, redis_error: str, sections: list[Section]) -> Path:
    """Write ``report.json`` and ``report.html`` into ``folder``; return the HTML's path."""
    summary = {
        "date": day.isoformat(),
        "redis": redis_error or "ok",
        "sections": {
            s.key: {"title": s.title, "note": s.note, "png": s.png, "figures": s.figures} for s in sections
        },
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    path = folder / REPORT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page_html(day, sections))
    tmp.replace(path)
    return path


__all__ = ["REPORT_FILE", "SUMMARY_FILE", "page_html", "write_page"]
