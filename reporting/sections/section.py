"""What a report section is made of: its :class:`Section` record, its PNG and its HTML table.

Pictures use matplotlib's Agg canvas without pyplot (no global state) and PNGs without a version stamp,
so a re-run on the same inputs writes byte-identical files.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DPI = 100


@dataclass
class Section:
    """One section of the page: a note when its inputs are missing, else a PNG, an HTML body and the
    figures behind them (``report.json``)."""

    key: str
    title: str
    note: str = ""
    png: str = ""
    body: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


def figure(width: float, height: float) -> Any:
    """A matplotlib figure on the Agg canvas, in inches."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_png(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` through a temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    # No "Software" stamp: the file depends on the inputs only, not on the matplotlib version.
    fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    tmp.replace(path)


def html_table(header: list[str], rows: list[list[Any]]) -> str:
    """An HTML table; floats under 10 with four decimals, larger ones as whole numbers."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.0f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def no_data(why: str) -> str:
    """The note of a section whose inputs are missing."""
    return f"no data yet: {why}"


__all__ = ["DPI", "Section", "figure", "html_table", "no_data", "save_png"]
