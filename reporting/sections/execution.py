"""Execution section: fees and slippage by venue from the ``fills`` stream, in money and in bps of
notional (:func:`execution.costs.venue_costs`, the dashboard's summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from execution.costs import FILL_FIELDS, venue_costs
from reporting.redis_inputs import RedisSnapshot
from reporting.sections.section import Section, figure, html_table, no_data, save_png

#: The report's names for the summary's columns, in the report's order (``report.json`` keys).
COLUMNS = {
    "fills": "fills",
    "quantity": "shares",
    "notional": "notional",
    "fees": "fees",
    "slippage_cost": "slippage_cost",
    "fee_bps": "fees_bps",
    "slippage_bps": "slippage_bps",
}


def venue_cost_frame(fills: list[dict[str, Any]]) -> pd.DataFrame:
    """:func:`execution.costs.venue_costs` as a frame indexed by venue (sorted by name), report's names."""
    rows = venue_costs(fills)
    frame = pd.DataFrame(rows, columns=["venue", *COLUMNS]).set_index("venue").sort_index()
    return frame.rename(columns=COLUMNS)


def _chart(table: pd.DataFrame, path: Path) -> None:
    fig = figure(10, 3.6)
    left, right = fig.subplots(1, 2)
    x = np.arange(len(table))
    left.bar(x - 0.2, table["fees"], 0.4, label="fees", color="#8e44ad")
    left.bar(x + 0.2, table["slippage_cost"], 0.4, label="slippage", color="#e67e22")
    left.set_xticks(x, table.index)
    left.set_ylabel("money")
    left.legend(fontsize=8)
    left.set_title("cost by venue")
    right.bar(x - 0.2, table["fees_bps"], 0.4, color="#8e44ad")
    right.bar(x + 0.2, table["slippage_bps"], 0.4, color="#e67e22")
    right.set_xticks(x, table.index)
    right.set_ylabel("bps of notional")
    right.set_title("cost per unit traded")
    save_png(fig, path)


def execution_section(snap: RedisSnapshot, folder: Path) -> Section:
    """The section ``execution``, from the snapshot's fills."""
    s = Section("execution", "Execution cost by venue")
    if snap.error:
        s.note = no_data(snap.error)
        return s
    if not snap.fills:
        s.note = no_data("the fills stream is empty (the execution worker has not filled any order)")
        return s
    table = venue_cost_frame(snap.fills)
    if table.empty:
        fields = ", ".join(FILL_FIELDS)
        s.note = no_data(f"fills without the fields {fields} ({len(snap.fills)} in the stream, none usable)")
        return s
    _chart(table, folder / "execution.png")
    s.png = "execution.png"
    dates = sorted({f.get("ts", "")[:10] for f in snap.fills if f.get("ts")})
    left_out = len(snap.fills) - int(table["fills"].sum())
    s.figures = {
        "fills": len(snap.fills),
        "venues": {v: {k: round(float(x), 6) for k, x in row.items()} for v, row in table.iterrows()},
    }
    s.body = (
        f"<p>{len(snap.fills)} fills in the fills stream"
        + (f", orders dated {dates[0]}..{dates[-1]}" if dates else "")
        + (f", {left_out} without a usable {', '.join(FILL_FIELDS)} left out" if left_out else "")
        + ".</p>"
        + html_table(
            ["venue", "fills", "shares", "notional", "fees", "slippage", "fees bps", "slippage bps"],
            [
                [
                    v,
                    int(r.fills),
                    float(r.shares),
                    float(r.notional),
                    float(r.fees),
                    float(r.slippage_cost),
                    float(r.fees_bps),
                    float(r.slippage_bps),
                ]
                for v, r in table.iterrows()
            ],
        )
    )
    return s


__all__ = ["COLUMNS", "execution_section", "venue_cost_frame"]
