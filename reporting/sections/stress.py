"""Stress section: heat map scenario x position of the ``stress/date=D/`` ledger partition (change in % of
the position's base value) and the worst scenario totals."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from quantbridge.lake import Lake
from reporting.sections.section import Section, figure, html_table, no_data, save_png


def stress_section(lake: Lake, day: date, folder: Path) -> Section:
    """The section ``stress``, from the day's ledger partition."""
    from risk.ledger import partition_path

    s = Section("stress", "Stress heat map")
    path = partition_path(lake, day)
    if not path.is_file():
        s.note = no_data(
            f"no stress ledger partition for {day.isoformat()} ({path.relative_to(lake.root)}): "
            "run nightly_stress or `qb stress`"
        )
        return s
    frame = pd.read_parquet(path)
    cells = frame[frame["position"] != "TOTAL"].copy()
    cells["label"] = cells["family"] + ": " + cells["scenario"]
    base = cells["base_value"].abs().replace(0.0, np.nan)
    cells["pct"] = 100.0 * cells["change"] / base
    grid = cells.pivot_table(index="label", columns="position", values="pct", aggfunc="sum", sort=True)
    totals = frame[frame["position"] == "TOTAL"].sort_values(["change", "family", "scenario"])

    fig = figure(max(8.0, 0.32 * grid.shape[1] + 4), max(4.0, 0.22 * grid.shape[0] + 1.5))
    ax = fig.add_subplot()
    bound = float(np.nanmax(np.abs(grid.to_numpy()))) if grid.notna().any().any() else 1.0
    image = ax.imshow(
        np.ma.masked_invalid(grid.to_numpy()), cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto"
    )
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
    ax.set_facecolor("#eeeeee")  # grey: the position is not in that scenario's family
    fig.colorbar(image, ax=ax, label="change, % of the position's base value")
    ax.set_title(f"stress {day.isoformat()}: {grid.shape[0]} scenarios x {grid.shape[1]} positions")
    save_png(fig, folder / "stress.png")
    s.png = "stress.png"
    worst = totals.head(10)
    s.figures = {
        "rows": len(frame),
        "scenarios": int(totals.shape[0]),
        "positions": int(grid.shape[1]),
        "worst": [
            {"family": r.family, "scenario": r.scenario, "change": round(float(r.change), 2)}
            for r in worst.itertuples()
        ],
    }
    s.body = "<p>Worst scenario totals (money):</p>" + html_table(
        ["family", "scenario", "base", "shocked", "change"],
        [
            [r.family, r.scenario, float(r.base_value), float(r.shocked_value), float(r.change)]
            for r in worst.itertuples()
        ],
    )
    return s


__all__ = ["stress_section"]
