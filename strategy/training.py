"""Retraining: features over a window of the lake, purged walk-forward evaluation, fit, register.

The last ``holdout_days`` labelled dates of the window are held out: the registered model is fitted on the
dates before them minus the purge (``HORIZON + EXECUTION_LAG``), so the registry can judge it, against the
champion, on dates it never saw (:func:`strategy.registry.promote_if_better`). The model that trades is the
model that was tested; the price is that its training data ends ``holdout_days`` before ``as_of``. A window
too short for the whole holdout and the folds holds out what is left after the folds' minimum (recorded
in ``meta["holdout"]["days"]``; a short holdout rarely carries an IC t of 2).
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from quantbridge.errors import NoDataError
from quantbridge.lake import Lake
from strategy.features import FEATURES, LOOKBACK, TARGET, build_features
from strategy.model import PURGE, daily_ic, fit, walk_forward
from strategy.registry import register


def stress_windows(lake: Lake) -> list[tuple[date, date]]:
    """The historical stress windows the nightly stress found (scenarios ``worst_<n>d_<start>_<end>`` of
    the ledger partitions in the lake), deduplicated."""
    import pandas as pd

    windows = set()
    for path in sorted((lake.root / "stress").glob("date=*/*.parquet")):
        scenarios = pd.read_parquet(path, columns=["family", "scenario"])
        for name in scenarios.loc[scenarios["family"] == "historical", "scenario"].unique():
            parts = name.split("_")
            windows.add((date.fromisoformat(parts[-2]), date.fromisoformat(parts[-1])))
    return sorted(windows)


def retrain(
    lake: Lake,
    as_of: date,
    window_days: int = 750,
    kind: str = "gbm",
    folds: int = 4,
    seed: int = 20260101,
    stress_weight: float = 0.0,
    dask_scheduler: str = "",
    version: str | None = None,
    holdout_days: int = 250,
) -> dict[str, Any]:
    """Train a challenger on the ``window_days`` trading days up to ``as_of`` and register it.

    ``stress_weight`` > 0 gives the training rows inside the stress ledger's historical windows a sample
    weight of 1 + stress_weight (so the model learns more from crisis days); 0 leaves every row at 1.
    ``version`` names the registered version (default: a UTC timestamp); the replay passes one derived from
    ``as_of`` so a re-run registers the same name. ``holdout_days``: labelled dates at the end of the window
    the model is not fitted on (module docstring). Raises NoDataError when the lake holds too little history
    for the lookback and the folds.
    """
    from marketdata.reference import esg_scores
    from quantbridge.errors import InputError
    from strategy.stats import newey_west_t

    if isinstance(holdout_days, bool) or not isinstance(holdout_days, int) or holdout_days < 0:
        raise InputError("holdout_days", holdout_days, "an integer >= 0 (labelled dates held out)")
    t0 = time.perf_counter()
    dates = [d for d in lake.price_dates() if d <= as_of][-(window_days + LOOKBACK) :]
    needed = LOOKBACK + (folds + 1) * 20 + 5
    if len(dates) < needed:
        raise NoDataError(
            f"retraining needs at least {needed} trading days up to {as_of.isoformat()}; "
            f"the lake has {len(dates)}: ingest more history first"
        )
    closes = lake.read_close_matrix(dates[0], dates[-1])
    panel = build_features(closes, esg_scores(lake), dask_scheduler=dask_scheduler)
    windows = stress_windows(lake) if stress_weight > 0 else []
    if windows:
        inside = panel["date"].map(lambda d: any(a <= d <= b for a, b in windows))
        panel = panel.assign(weight=1.0 + stress_weight * inside.astype(float))
    labelled = sorted(panel.dropna(subset=[TARGET])["date"].unique())
    # what the folds need (walk_forward's minimum) stays for training; the holdout gets at most the rest
    holdout_days = max(0, min(holdout_days, len(labelled) - (folds + 1) * 20 - PURGE))
    cutoff = labelled[len(labelled) - holdout_days - PURGE] if holdout_days else None
    train = panel if cutoff is None else panel[panel["date"] < cutoff]
    evaluation, _ = walk_forward(train, kind, folds, seed)
    model = fit(train, kind, seed)
    held = panel.dropna(subset=[TARGET])
    held = (
        held[held["date"].isin(labelled[len(labelled) - holdout_days :])] if holdout_days else held.iloc[0:0]
    )
    ic = newey_west_t(daily_ic(held, model.predict(held.loc[:, FEATURES])), PURGE) if len(held) else None
    meta = {
        "kind": kind,
        "features": list(FEATURES),
        "as_of": as_of.isoformat(),
        "data_window": [str(panel["date"].min()), str(panel["date"].max())],
        "train_end": str(train.dropna(subset=[TARGET])["date"].max()),
        "holdout": {
            "days": holdout_days,
            "start": str(held["date"].min()) if len(held) else None,
            "end": str(held["date"].max()) if len(held) else None,
            "ic": ic["mean"] if ic else None,
            "ic_t": ic["t"] if ic else None,
        },
        "rows": len(panel),
        "tickers": sorted(panel["ticker"].unique()),
        "metrics": evaluation.as_dict(),
        "seed": seed,
        "stress_weight": stress_weight,
        "stress_windows": [[str(a), str(b)] for a, b in windows],
        "stress_rows": int((panel["weight"] > 1).sum()) if "weight" in panel else 0,
    }
    registered = register(lake, model, meta, version)
    return {
        "version": registered.version,
        "metrics": evaluation.as_dict(),
        "holdout": meta["holdout"],
        "rows": len(panel),
        "stress_rows": meta["stress_rows"],
        "seconds": round(time.perf_counter() - t0, 2),
    }
