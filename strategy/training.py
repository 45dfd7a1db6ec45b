"""Retraining: features over a window of the lake, purged walk-forward evaluation, fit, register."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from quantbridge.errors import NoDataError
from quantbridge.lake import Lake
from strategy.features import FEATURES, LOOKBACK, build_features
from strategy.model import fit, walk_forward
from strategy.registry import register


def retrain(lake: Lake, as_of: date, window_days: int = 750, kind: str = "gbm", folds: int = 4,
            seed: int = 20260101) -> dict[str, Any]:
    """Train a challenger on the ``window_days`` trading days up to ``as_of`` and register it.

    Raises NoDataError when the lake holds too little history for the lookback and the folds.
    """
    from marketdata.reference import esg_scores

    t0 = time.perf_counter()
    dates = [d for d in lake.price_dates() if d <= as_of][-(window_days + LOOKBACK):]
    needed = LOOKBACK + (folds + 1) * 20 + 5
    if len(dates) < needed:
        raise NoDataError(f"retraining needs at least {needed} trading days up to {as_of.isoformat()}; "
                          f"the lake has {len(dates)}: ingest more history first")
    closes = lake.read_close_matrix(dates[0], dates[-1])
    panel = build_features(closes, esg_scores(lake))
    evaluation, _ = walk_forward(panel, kind, folds, seed)
    model = fit(panel, kind, seed)
    meta = {"kind": kind, "features": list(FEATURES), "as_of": as_of.isoformat(),
            "data_window": [str(panel["date"].min()), str(panel["date"].max())], "rows": len(panel),
            "tickers": sorted(panel["ticker"].unique()), "metrics": evaluation.as_dict(), "seed": seed}
    registered = register(lake, model, meta)
    return {"version": registered.version, "metrics": evaluation.as_dict(), "rows": len(panel),
            "seconds": round(time.perf_counter() - t0, 2)}
