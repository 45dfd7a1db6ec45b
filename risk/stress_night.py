"""One night's stress run: every scenario family on the whole book, as a grid of Dask tasks, into the
ledger shape (one row per scenario and position, plus TOTAL rows).

Families: ``rates`` (QuantLib, BCBS d368 + user parallel shifts), ``fx`` (vol spikes, correlation one),
``esg`` (scandals, sector black-outs), ``historical`` (worst 1-day and 10-day windows of the lake).
Dask runs in-process (its threaded scheduler, two threads) unless ``dask_scheduler`` names a cluster. Each
family is one task: QuantLib keeps a process-wide evaluation date, so rate scenarios never run concurrently.
(In-process it used to start a LocalCluster per run: about 0.3-0.5 s of start and close a night, most of a
replayed day's stress.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from quantbridge.errors import InputError, NoDataError

#: Calendar days a stress night may lie after the lake's last prices (a long weekend plus holidays).
MAX_PRICE_AGE_DAYS = 7
FAMILIES = ("rates", "fx", "esg", "historical")
LEDGER_COLUMNS = ("id", "date", "family", "scenario", "position", "base_value", "shocked_value", "change")


@dataclass(frozen=True)
class StressInputs:
    """Everything one run values: the bond book, par curve, FX exposures, ESG table, equity holdings
    (money per ticker) and the lake's closes (dates x tickers) for historical windows."""

    day: date
    bond_book: pd.DataFrame
    curve: pd.DataFrame
    fx: pd.DataFrame
    esg: pd.DataFrame
    holdings: pd.Series
    closes: pd.DataFrame


def load_inputs(
    lake: Any, day: date, positions: dict[str, float], book_path: str | None = None
) -> StressInputs:
    """Inputs from the lake as of ``day``: reference tables, closes up to ``day`` and holdings valued at
    the last close on or before it (the $1M equal-weight demo book when ``positions`` is empty)."""
    from marketdata.reference import read_reference, read_reference_csv
    from risk.portfolio import equal_weight_book, exposures

    closes = lake.read_close_matrix(end=day)
    if closes.empty:
        raise InputError(
            "lake prices", f"none on or before {day.isoformat()}", "published prices: run `qb ingest`"
        )
    last_day = pd.Timestamp(closes.index[-1]).date()
    if (day - last_day).days > MAX_PRICE_AGE_DAYS:
        # A night whose prices never arrived (a scheduled run on a lake not ingested up to it): nothing to
        # stress honestly, so say so instead of revaluing a stale book on today's calendar.
        raise NoDataError(
            f"the lake's last prices are of {last_day.isoformat()}, {(day - last_day).days} days "
            f"before {day.isoformat()} (at most {MAX_PRICE_AGE_DAYS}): ingest up to the date first"
        )
    last = closes.ffill().iloc[-1]
    holdings = exposures(positions or equal_weight_book(last), last)
    book = read_reference_csv("bond_book", book_path) if book_path else read_reference(lake, "bond_book")
    return StressInputs(
        day=day,
        bond_book=book,
        curve=read_reference(lake, "curve"),
        fx=read_reference(lake, "fx"),
        esg=read_reference(lake, "esg"),
        holdings=holdings,
        closes=closes,
    )


def _rates(
    inputs: StressInputs, shock_scale: float, extra_shifts_bp: Sequence[float]
) -> list[dict[str, Any]]:
    from risk.irrbb import BCBS_SCENARIOS, bootstrap_par_curve, rate_scenarios

    nodes = bootstrap_par_curve(inputs.day, inputs.curve)
    names = [*BCBS_SCENARIOS, *(f"parallel_{bp:+g}bp" for bp in extra_shifts_bp)]
    rows = []
    for outcome in rate_scenarios(inputs.bond_book, nodes, names, shock_scale):
        rows += [{"family": "rates", **row} for row in outcome.rows()]
    return rows


def _family_task(family: str, inputs: StressInputs, options: dict[str, Any]) -> list[dict[str, Any]]:
    from risk import scenarios

    if family == "rates":
        return _rates(inputs, options["shock_scale"], options["parallel_shifts_bp"])
    if family == "fx":
        multipliers = [m * options["shock_scale"] for m in options["fx_multipliers"]]
        return scenarios.fx_vol_spikes(
            inputs.fx, multipliers, options["confidence"], options["paths"], options["seed"]
        )
    if family == "esg":
        return scenarios.esg_blackouts(inputs.holdings, inputs.esg)
    return scenarios.historical_worst(inputs.holdings, inputs.closes)


def run_stress(
    inputs: StressInputs,
    families: Sequence[str] = FAMILIES,
    *,
    shock_scale: float = 1.0,
    confidence: float = 0.99,
    paths: int = 50_000,
    seed: int = 20260101,
    parallel_shifts_bp: Sequence[float] = (100.0, -100.0),
    fx_multipliers: Sequence[float] = (1.0, 2.0, 3.0),
    dask_scheduler: str = "",
    progress: Callable[[str], None] = lambda _m: None,
) -> pd.DataFrame:
    """The ledger rows of one run, sorted, with a unique ``id`` per (date, family, scenario, position)."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise InputError("families", list(families), "a non-empty subset of " + ", ".join(FAMILIES))
    options = {
        "shock_scale": shock_scale,
        "confidence": confidence,
        "paths": paths,
        "seed": seed,
        "parallel_shifts_bp": list(parallel_shifts_bp),
        "fx_multipliers": list(fx_multipliers),
    }
    t0 = time.perf_counter()
    rows = []
    if dask_scheduler:
        from dask.distributed import Client

        client = Client(dask_scheduler)
        try:
            futures = {
                f: client.submit(_family_task, f, inputs, options, key=f"stress-{f}-{inputs.day}", pure=False)
                for f in families
            }
            for family, future in futures.items():
                rows += future.result()
                progress(f"{family}: done ({time.perf_counter() - t0:.1f} s)")
        finally:
            client.close()
    else:
        import dask

        tasks = [dask.delayed(_family_task, pure=False)(f, inputs, options) for f in families]
        for family, got in zip(
            families, dask.compute(*tasks, scheduler="threads", num_workers=2), strict=True
        ):
            rows += got
            progress(f"{family}: done ({time.perf_counter() - t0:.1f} s)")
    frame = pd.DataFrame(rows)
    frame.insert(0, "date", inputs.day.isoformat())
    frame.insert(
        0, "id", frame["date"] + ":" + frame["family"] + ":" + frame["scenario"] + ":" + frame["position"]
    )
    if frame["id"].duplicated().any():
        raise RuntimeError(f"duplicate ledger ids: {frame.loc[frame['id'].duplicated(), 'id'].tolist()[:5]}")
    return frame.loc[:, list(LEDGER_COLUMNS)].sort_values("id", ignore_index=True)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """TOTAL rows only: one line per scenario (base, shocked, change), worst change first."""
    totals = frame[frame["position"] == "TOTAL"].loc[
        :, ["family", "scenario", "base_value", "shocked_value", "change"]
    ]
    return totals.sort_values("change", ignore_index=True)
