"""Execution section: fees and slippage by venue from the ``fills`` stream, in money and in bps of
notional."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reporting.redis_inputs import RedisSnapshot
from reporting.sections.section import Section, figure, html_table, no_data, save_png


def venue_cost_frame(fills: list[dict[str, str]]) -> pd.DataFrame:
    """Per venue: fills, shares, notional, fees, slippage cost (notional x bps / 1e4) and both in bps."""
    frame = pd.DataFrame(fills)
    for column in ("quantity", "price", "fee", "slippage_bps"):
        frame[column] = pd.to_numeric(frame[column], errors="raise")
    frame["notional"] = frame["quantity"] * frame["price"]
    frame["slippage_cost"] = frame["notional"] * frame["slippage_bps"] / 1e4
    out = frame.groupby("venue", sort=True).agg(
        fills=("fill_id", "count"),
        shares=("quantity", "sum"),
        notional=("notional", "sum"),
        fees=("fee", "sum"),
        slippage_cost=("slippage_cost", "sum"),
    )
    out["fees_bps"] = 1e4 * out["fees"] / out["notional"]
    out["slippage_bps"] = 1e4 * out["slippage_cost"] / out["notional"]
    return out


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
    try:
        table = venue_cost_frame(snap.fills)
    except (KeyError, ValueError) as exc:
        s.note = no_data(f"fills without the fields venue, quantity, price, fee, slippage_bps ({exc})")
        return s
    _chart(table, folder / "execution.png")
    s.png = "execution.png"
    dates = sorted({f.get("ts", "")[:10] for f in snap.fills if f.get("ts")})
    s.figures = {
        "fills": len(snap.fills),
        "venues": {v: {k: round(float(x), 6) for k, x in row.items()} for v, row in table.iterrows()},
    }
    s.body = (
        f"<p>{len(snap.fills)} fills in the fills stream"
        + (f", orders dated {dates[0]}..{dates[-1]}" if dates else "")
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


__all__ = ["execution_section", "venue_cost_frame"]
