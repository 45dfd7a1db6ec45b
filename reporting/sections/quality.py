"""Quality section: quarantined batches by rule (``quarantine/prices/date=*/report.json``), published and
quarantined dates per month, the day's partition and the last ingest (``ingest:last``)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from quantbridge.lake import Lake
from reporting.redis_inputs import RedisSnapshot
from reporting.sections.section import Section, figure, html_table, no_data, save_png


def quarantine_rules(lake: Lake, day: date) -> dict[str, list[str]]:
    """Quarantined dates on or before ``day`` per failed rule (from each batch's ``report.json``)."""
    out: dict[str, list[str]] = {}
    for q in lake.quarantined_dates():
        if q > day:
            continue
        report = lake.quarantine(q) / "report.json"
        rules = (
            {v["rule"] for v in json.loads(report.read_text()).get("violations", [])}
            if report.is_file()
            else {"(report.json missing)"}
        )
        for rule in sorted(rules):
            out.setdefault(rule, []).append(q.isoformat())
    return out


def _chart(
    day: date, dates: list[date], quarantined: list[str], rules: dict[str, list[str]], path: Path
) -> None:
    """Left: published vs quarantined dates per month (last 24 months); right: quarantined dates per rule."""
    months = pd.period_range(end=pd.Period(day, "M"), periods=24, freq="M")
    published = pd.Series(pd.PeriodIndex([pd.Period(d, "M") for d in dates], freq="M")).value_counts()
    blocked = pd.Series(pd.PeriodIndex([pd.Period(d, "M") for d in quarantined], freq="M")).value_counts()
    fig = figure(10, 3.4)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    x = np.arange(len(months))
    ok = [published.get(m, 0) for m in months]
    left.bar(x, ok, color="#27ae60", label="published")
    left.bar(x, [blocked.get(m, 0) for m in months], bottom=ok, color="#c0392b", label="quarantined")
    left.set_xticks(x[::3], [str(m) for m in months[::3]], fontsize=7)
    left.set_ylabel("trading dates")
    left.legend(fontsize=8)
    left.set_title(f"price partitions per month, up to {day.isoformat()}")
    if rules:
        names = sorted(rules, key=lambda r: (len(rules[r]), r))
        right.barh(names, [len(rules[r]) for r in names], color="#c0392b")
        right.set_xlabel("quarantined dates")
    else:
        right.text(0.5, 0.5, "no quarantined batch:\nevery batch passed its gates", ha="center", va="center")
        right.set_axis_off()
    right.set_title(f"quarantined dates by rule, up to {day.isoformat()}")
    save_png(fig, path)


def quality_section(lake: Lake, day: date, snap: RedisSnapshot, folder: Path) -> Section:
    """The section ``quality``, from the lake's partitions and quarantine and ``ingest:last``."""
    s = Section("quality", "Data quality")
    dates = [d for d in lake.price_dates() if d <= day]
    if not dates and not lake.quarantined_dates():
        s.note = no_data(
            f"no price partition and no quarantined batch on or before {day.isoformat()} (qb ingest)"
        )
        return s
    rules = quarantine_rules(lake, day)
    quarantined = sorted({d for ds in rules.values() for d in ds})
    partition = lake.price_partition(day)
    if day in dates:
        today = f"published ({len(lake.read_prices(day, day))} rows)"
    elif day.isoformat() in quarantined:
        today = "quarantined"
    else:
        today = "no partition (holiday, or not ingested yet)"
    _chart(day, dates, quarantined, rules, folder / "quality.png")
    s.png = "quality.png"
    if snap.error:
        ingest = no_data(snap.error)
    elif snap.ingest_last:
        ingest = ", ".join(f"{k}={v}" for k, v in sorted(snap.ingest_last.items()) if k != "tickers")
    else:
        ingest = no_data("ingest:last is empty (no ingest recorded in Redis)")
    s.figures = {
        "published_dates": len(dates),
        "quarantined_dates": len(quarantined),
        "rules": {r: len(ds) for r, ds in rules.items()},
        "day": today,
    }
    latest = f", latest {', '.join(quarantined[-5:])}" if quarantined else ": every batch passed its gates"
    s.body = html_table(
        ["figure", "value"],
        [
            [
                "published partitions up to the date",
                f"{len(dates)}" + (f" ({dates[0]}..{dates[-1]})" if dates else ""),
            ],
            [f"partition {partition.name}", today],
            ["quarantined dates", f"{len(quarantined)}{latest}"],
            *[[f"rule {r}", f"{len(ds)} dates"] for r, ds in sorted(rules.items())],
            ["last ingest (ingest:last)", ingest],
        ],
    )
    return s


__all__ = ["quality_section", "quarantine_rules"]
