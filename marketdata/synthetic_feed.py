"""Prices that never happened: a stored synthetic run's windows of one volatility regime, stitched into
daily closes that continue from the last real close of each ticker, and served as a
:class:`~marketdata.feed.PriceFeed` (same stage, gates and lake as real prices).

Source: ``synthetic/run=R/samples.parquet`` as ``synthetic.pipeline.generate_run`` writes it, one row per
(window, day): ``sample, day, regime`` and one column of simple daily returns per ticker; a window carries
one regime on every day (0 = calmest; with the models' default 4 regimes, 3 = turbulent: the top quartile of
the training windows' mean absolute return). ``metadata.json``, when the run was evaluated, gives how many
regimes the model has. The files are read with pandas: marketdata sits below ``synthetic`` and never imports
it.

Path: the regime's windows in a seeded order (a permutation; a year needing more windows than the run holds
takes a fresh permutation after each pass, counted in ``passes``), concatenated day by day and cut at
``days``; the close of ticker i on day t is ``anchor[i] * prod_{s <= t} (1 + r[s, i])``. Windows are
independent draws, so nothing carries over from one week to the next (no drawdown persistence).

Calendar: Monday to Friday from ``start`` (a weekend start rolls to Monday), no holidays: the year never
happened, and the environment has no exchange calendar (pandas' federal-holiday calendar is not the NYSE's).
So a year is 261 synthetic sessions, not about 252.

Gates: returns are not clipped unless ``cap=(lo, hi)`` is given; then they are clipped to [lo, hi] and every
clipped value is counted in ``capped``. :meth:`SyntheticFeed.outliers` lists the raw returns outside given
bounds (e.g. the outlier gate's). A return <= -100% cannot be followed by a price: without a cap it is an
:class:`~quantbridge.errors.InputError`. Measured on a 450-epoch cGAN run (whole bundled history, 1,000
windows): none of its 24,400 regime-3 returns leaves the default outlier gate [-75%, +150%] (extremes -48.6%,
+60.8%), so no cap is needed there; the cross-sectional skew of 20 names is at most sqrt(20) < 4.5.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketdata.feed import check_range
from marketdata.quality import PRICE_COLUMNS
from quantbridge.errors import InputError, NoDataError
from quantbridge.lake import Lake

SAMPLES_FILE = "samples.parquet"  # written by synthetic.pipeline.generate_run
METADATA_FILE = "metadata.json"  # written by synthetic.pipeline.evaluate_run
KEYS = ("sample", "day", "regime")
CALENDAR = "Monday-Friday, no holidays"


def last_closes(lake: Lake, before: date) -> dict[str, float]:
    """The published close of each ticker on the lake's last price date before ``before``: the anchor."""
    last = lake.read_prices(end=before - timedelta(days=1), last_n_dates=1)
    if last.empty:
        raise NoDataError(
            f"the lake at {lake.root} has no published prices before {before.isoformat()}: "
            "ingest real history first, the synthetic path continues from its last close"
        )
    return {str(t): float(c) for t, c in zip(last["ticker"], last["close"], strict=True)}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class SyntheticFeed:
    """Closes built from run ``run``'s windows of regime ``regime``, continuing from ``anchor``.

    Parameters
    ----------
    lake: the lake holding ``synthetic/run=<run>/samples.parquet``.
    run: run name (the folder ``run=<run>``).
    regime: volatility regime of the windows used (0 calmest; 3 turbulent with the default 4 regimes).
    anchor: last real close per ticker (see :func:`last_closes`); these tickers are delivered.
    start: first synthetic session (rolled to Monday when it falls on a weekend).
    days: number of synthetic sessions (>= 1).
    seed: order of the windows; the same arguments give the same prices.
    cap: optional (lo, hi) bounds on daily simple returns, -1 < lo < 0 < hi; clipped values are counted.
    """

    def __init__(
        self,
        lake: Lake,
        run: str,
        regime: int,
        anchor: Mapping[str, float],
        start: date,
        days: int,
        seed: int,
        cap: tuple[float, float] | None = None,
    ) -> None:
        _check_arguments(run, regime, anchor, days, seed, cap)
        self.run, self.regime, self.seed, self.cap = run, int(regime), int(seed), cap
        self.name = f"synthetic:{run}:regime{self.regime}"
        self.tickers = tuple(sorted(anchor))
        cube, ids = _regime_windows(lake, run, self.regime, self.tickers)
        self.windows_available, self.window_days = cube.shape[0], cube.shape[1]
        rng = np.random.default_rng(self.seed)
        need = -(-days // self.window_days)
        order: list[int] = []
        self.passes = 0
        while len(order) < need:  # each pass uses every window once before any repeats
            order.extend(rng.permutation(len(ids))[: need - len(order)].tolist())
            self.passes += 1
        self._dates = [d.date() for d in pd.bdate_range(start, periods=days)]
        raw = cube[order].reshape(-1, len(self.tickers))[:days]
        self._raw = pd.DataFrame(raw, index=pd.Index(self._dates, name="date"), columns=list(self.tickers))
        self._provenance = pd.DataFrame(
            {
                "date": self._dates,
                "sample": np.repeat(ids[order], self.window_days)[:days],
                "day": np.tile(np.arange(self.window_days), need)[:days],
            }
        )
        if cap is None:
            fatal = int((raw <= -1.0).sum())
            if fatal:  # a close would be <= 0 and every later one meaningless
                raise InputError(
                    "cap",
                    None,
                    "bounds (lo, hi) with -1 < lo < 0 < hi",
                    hint=f"{fatal} return(s) of {self.name} are <= -100%: no price follows them",
                )
            applied = raw
        else:
            applied = np.clip(raw, cap[0], cap[1])
        self.capped = int((applied != raw).sum())
        self._returns = pd.DataFrame(applied, index=self._raw.index, columns=self._raw.columns)
        start_closes = np.array([float(anchor[t]) for t in self.tickers])
        self._closes = self._returns.add(1.0).cumprod().mul(start_closes, axis=1)

    def dates(self) -> list[date]:
        """The synthetic sessions, ascending."""
        return list(self._dates)

    def fetch(self, start: date, end: date) -> pd.DataFrame:
        """Long closes ``date, ticker, close`` for the sessions in [start, end] (empty when none)."""
        check_range(start, end)
        wide = self._closes.loc[[d for d in self._dates if start <= d <= end]]
        long = wide.rename_axis(columns="ticker").stack(future_stack=True).rename("close").reset_index()
        long["close"] = long["close"].astype("float64")
        return long.loc[:, list(PRICE_COLUMNS)].sort_values(["date", "ticker"], ignore_index=True)

    def returns(self) -> pd.DataFrame:
        """(days, tickers) simple daily returns applied (after any cap), indexed by date."""
        return self._returns.copy()

    def provenance(self) -> pd.DataFrame:
        """Per session: the stored window (``sample``) and its ``day`` it was taken from."""
        return self._provenance.copy()

    def outliers(self, low: float, high: float) -> pd.DataFrame:
        """Raw (uncapped) returns outside [low, high] as rows ``date, ticker, ret``."""
        long = self._raw.rename_axis(columns="ticker").stack(future_stack=True).rename("ret").reset_index()
        return long[(long["ret"] < low) | (long["ret"] > high)].reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """What the path is made of, for records and reports (plain JSON types)."""
        return {
            "source": self.name,
            "run": self.run,
            "regime": self.regime,
            "seed": self.seed,
            "sessions": len(self._dates),
            "first_date": self._dates[0].isoformat(),
            "last_date": self._dates[-1].isoformat(),
            "calendar": CALENDAR,
            "tickers": list(self.tickers),
            "window_days": self.window_days,
            "windows_available": self.windows_available,
            "windows_used": int(self._provenance["sample"].nunique()),
            "passes": self.passes,
            "cap": list(self.cap) if self.cap else None,
            "capped": self.capped,
            "min_return": float(self._raw.to_numpy().min()),
            "max_return": float(self._raw.to_numpy().max()),
        }


def _check_arguments(
    run: str,
    regime: int,
    anchor: Mapping[str, float],
    days: int,
    seed: int,
    cap: tuple[float, float] | None,
) -> None:
    if not isinstance(run, str) or not run or run in {".", ".."} or "/" in run or "\\" in run:
        raise InputError("run", run, "a synthetic run name (the folder synthetic/run=NAME/)")
    if not _is_int(regime) or regime < 0:
        raise InputError("regime", regime, "an integer >= 0 (0 calmest; 3 turbulent with 4 regimes)")
    if not _is_int(days) or days < 1:
        raise InputError("days", days, "a positive number of sessions")
    if not _is_int(seed):
        raise InputError("seed", seed, "an integer")
    if not anchor:
        raise InputError("anchor", {}, "the last real close of at least one ticker")
    for ticker, close in anchor.items():
        if not isinstance(close, numbers.Real) or isinstance(close, bool) or not 0 < float(close) < np.inf:
            raise InputError(f"anchor[{ticker}]", close, "a positive finite close")
    if cap is not None and not (len(cap) == 2 and -1.0 < cap[0] < 0.0 < cap[1] < np.inf):
        raise InputError("cap", cap, "bounds (lo, hi) on daily returns with -1 < lo < 0 < hi")


def _declared_regimes(folder: Path) -> int | None:
    """How many regimes the run's model has, from ``metadata.json`` (None before the run is evaluated)."""
    path = folder / METADATA_FILE
    if not path.is_file():
        return None
    regimes = json.loads(path.read_text()).get("config", {}).get("regimes")
    return int(regimes) if _is_int(regimes) else None


def _regime_windows(
    lake: Lake, run: str, regime: int, tickers: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The run's windows of ``regime`` as (n_windows, window_days, n_tickers) returns and their sample ids."""
    import pyarrow.parquet as pq

    folder = lake.partition("synthetic", "run", run)
    if not folder.is_dir():
        root = folder.parent
        known = sorted(p.name[4:] for p in root.glob("run=*")) if root.is_dir() else []
        raise InputError(
            "run",
            run,
            f"a synthetic run in {root}",
            hint=f"known runs: {', '.join(known) or 'none'}; make one with `qb synth train` then `sample`",
        )
    path = folder / SAMPLES_FILE
    if not path.is_file():
        raise NoDataError(
            f"synthetic run {run} has no {SAMPLES_FILE} at {path}: draw windows with "
            f"`qb synth sample --run {run} --n 1000` (without --out, which moves them out of the lake)"
        )
    columns = pq.read_schema(path).names
    stored = [c for c in columns if c not in KEYS]
    if any(k not in columns for k in KEYS):
        raise InputError(f"{path}", columns, f"columns {', '.join(KEYS)} and one per ticker")
    missing = sorted(set(tickers) - set(stored))
    if missing:
        raise InputError("anchor", ",".join(missing), f"tickers of synthetic run {run}: {', '.join(stored)}")
    declared = _declared_regimes(folder)
    if declared is not None and regime >= declared:
        raise InputError(
            "regime", regime, f"an integer in 0..{declared - 1} (0 calmest): run {run}'s model has {declared}"
        )
    frame = pd.read_parquet(path, columns=[*KEYS, *tickers])
    drawn = sorted(int(r) for r in frame["regime"].unique())
    part = frame[frame["regime"] == regime].sort_values(["sample", "day"], kind="mergesort")
    if part.empty:
        raise NoDataError(
            f"synthetic run {run} holds no window of regime {regime} (regimes drawn: "
            f"{', '.join(map(str, drawn)) or 'none'}): draw more with `qb synth sample --run {run} --n N`"
        )
    ids = part["sample"].unique()
    length = len(part) // len(ids)
    if len(part) != length * len(ids) or not (part.groupby("sample")["day"].nunique() == length).all():
        raise InputError(f"{path}", "windows of unequal length", "every sample with the same days 0..L-1")
    cube = part.loc[:, list(tickers)].to_numpy(dtype=np.float64).reshape(len(ids), length, len(tickers))
    if not np.isfinite(cube).all():
        raise InputError(f"{path}", "non-finite returns", f"finite returns in regime {regime}'s windows")
    return cube, np.asarray(ids, dtype=np.int64)
