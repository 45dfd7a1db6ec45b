"""VaR section: today's book backtested with the live VaR code over the last ``days`` valuation dates
(each forecast from returns up to its date, against the book's P&L to the next lake date), exceptions
marked, the next-day VaR as of the date (the sensor's call) and the sensor's ``risk:history`` points."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from reporting.redis_inputs import RedisSnapshot
from reporting.sections.section import Section, figure, html_table, no_data, save_png
from reporting.sections.var_history import live_points, var_history


def _chart(out: dict[str, Any], live: tuple[list[date], list[float]], confidence: float, path: Path) -> None:
    frame, bt, today = out["frame"], out["backtest"], out["today"]
    as_of = date.fromisoformat(out["as_of"])
    exc_days = frame.index[frame["exception"]]
    fig = figure(10, 4.2)
    ax = fig.add_subplot()
    x = pd.to_datetime(pd.Index(frame.index))
    colors = np.where(frame["exception"], "#c0392b", "#7f8c8d")
    ax.bar(x, frame["pnl"], width=1.0, color=colors, label="next-day P&L of today's book (hypothetical)")
    ax.plot(x, -frame["var"], color="#2c3e50", lw=1.4, label=f"-VaR {confidence:.0%} 1-day ({bt['model']})")
    ax.scatter(
        pd.to_datetime([as_of]),
        [-today.var],
        marker="D",
        color="#2c3e50",
        zorder=4,
        label=f"-VaR for the next day as of {as_of}",
    )
    if len(exc_days):
        ax.scatter(
            pd.to_datetime(pd.Index(exc_days)),
            frame.loc[exc_days, "pnl"],
            marker="v",
            color="#c0392b",
            zorder=3,
            label=f"exceptions ({len(exc_days)})",
        )
    if live[0]:
        ax.scatter(
            pd.to_datetime(pd.Index(live[0])),
            -np.asarray(live[1]),
            marker="o",
            facecolors="none",
            edgecolors="#2980b9",
            s=60,
            zorder=5,
            label="live sensor -VaR (risk:history)",
        )
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("valuation date (VaR for, and P&L to, the next lake date)")
    ax.set_ylabel("money")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(
        f"{len(frame)} forecasts, {frame.index[0]}..{frame.index[-1]}, window {out['window']} returns"
    )
    save_png(fig, path)


def var_section(lake: Lake, day: date, snap: RedisSnapshot, folder: Path, options: dict[str, Any]) -> Section:
    """The section ``var``; ``options`` are :func:`var_history`'s keywords."""
    s = Section("var", "VaR history against realised P&L")
    try:
        out = var_history(lake, day, snap.positions, **options)
    except InputError as exc:
        s.note = no_data(str(exc))
        return s
    frame, bt, today = out["frame"], out["backtest"], out["today"]
    exc_days = frame.index[frame["exception"]]
    live_x, live_y, outside = live_points(snap.risk_history, frame.index[0], date.fromisoformat(out["as_of"]))
    _chart(out, (live_x, live_y), options["confidence"], folder / "var.png")
    s.png = "var.png"

    zone = bt["zone_last_window"] if bt["observations"] >= 250 else "n/a (fewer than 250 forecasts)"
    s.figures = {
        "forecasts": bt["observations"],
        "exceptions": bt["exceptions"],
        "expected_exceptions": round(bt["expected_exceptions"], 2),
        "kupiec_p": bt["kupiec_p"],
        "christoffersen_p": bt["christoffersen_p"],
        "zone_last_250": zone,
        "model": bt["model"],
        "window": out["window"],
        "book": out["source"],
        "gross_exposure": round(out["gross"], 2),
        "first": str(frame.index[0]),
        "last": str(frame.index[-1]),
        "as_of": out["as_of"],
        "var_next_day": today.var,
        "cvar_next_day": today.cvar,
        "exception_dates": [str(d) for d in exc_days],
        "live_points": len(live_x),
    }
    if snap.risk_history:
        live = f"{len(live_x)} live sensor points in range" + (f", {outside} outside it" if outside else "")
    elif snap.error:
        live = no_data(snap.error)
    else:
        live = "no live sensor points: risk:history is empty (run `qb var-sensor`)"
    s.body += html_table(
        ["figure", "value"],
        [
            [
                "book",
                f"{out['source']}, {out['positions']} positions, gross {out['gross']:,.0f}, "
                f"as of {out['as_of']}, held constant in shares",
            ],
            ["model", f"{bt['model']}, one day, {options['confidence']:.0%}, window {out['window']} returns"],
            [f"next-day VaR / CVaR as of {out['as_of']}", f"{today.var:,.0f} / {today.cvar:,.0f}"],
            ["forecasts", bt["observations"]],
            ["exceptions", f"{bt['exceptions']} (expected {bt['expected_exceptions']:.1f})"],
            ["Kupiec p", bt["kupiec_p"]],
            ["Christoffersen p", bt["christoffersen_p"]],
            ["Basel zone (last 250)", zone],
            ["latest exceptions", ", ".join(str(d) for d in exc_days[-8:]) or "none"],
            ["live sensor", live],
        ],
    )
    return s


__all__ = ["var_section"]
