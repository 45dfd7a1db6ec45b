"""Measurements of the governance monitor on the lake and Redis; each returns a plain, JSON-ready dict (no
NaN: None instead), or ``{"skipped": reason}`` when the lake or Redis does not hold what it needs yet.

* :func:`feature_drift`: PSI and KS of every model feature between the champion's training window and the
  last ``recent_days`` lake dates, pooled over the universe and per name;
* :func:`live_ic`: the champion's daily rank IC (Spearman of its predictions vs the next ``horizon_days``
  realised returns) over the last ``live_days`` dates with an outcome, against its out-of-sample IC;
* :func:`var_exceptions`: the traded book (Redis positions) backtested with the live VaR code over the last
  ``days`` lake dates (:func:`risk.backtest.forecast_history`);
* :func:`cost_drift`: execution cost in bps of notional (fees plus slippage,
  :func:`execution.costs.venue_costs`) of the fills of the last ``recent_days`` fill dates against the
  ``baseline_days`` before them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import numpy as np

from governance.thresholds import (
    CostThresholds,
    DriftThresholds,
    IcThresholds,
    VarThresholds,
    load_thresholds,
)
from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema


def _num(value: float) -> float | None:
    """A finite float, or None (JSON and XCom have no NaN)."""
    return float(value) if math.isfinite(value) else None


def _panel(lake: Lake, dates: list[date]) -> Any:
    """Feature panel (strategy.features) whose rows cover ``dates`` (the lookback before them is read too)."""
    from marketdata.reference import esg_scores
    from strategy.features import LOOKBACK, build_features

    every = lake.price_dates()
    first = every.index(dates[0])
    closes = lake.read_close_matrix(every[max(first - LOOKBACK, 0)], dates[-1])
    panel = build_features(closes, esg_scores(lake), npartitions=1)
    return panel[(panel["date"] >= dates[0]) & (panel["date"] <= dates[-1])]


def feature_drift(lake: Lake, as_of: date, th: DriftThresholds | None = None) -> dict[str, Any]:
    """PSI (bins at the training window's quantiles) and KS p-values of the champion's features: pooled over
    the universe per feature (``features``) and per name for ``th.name_features`` (``names``, ticker ->
    feature -> figures, with ``th.name_bins`` bins from that name's own training values).

    Training window: the champion's ``data_window`` in the registry; recent window: the last
    ``th.recent_days`` lake dates up to ``as_of``."""
    th = th or load_thresholds().drift
    from governance.drift import band, drift
    from strategy.registry import champion

    model = champion(lake)
    if model is None:
        return {"skipped": "no champion model in the registry"}
    start, end = (date.fromisoformat(str(d)[:10]) for d in model.meta["data_window"])
    dates = lake.price_dates()
    train_dates = [d for d in dates if start <= d <= end]
    recent_dates = [d for d in dates if d <= as_of][-th.recent_days :]
    if not train_dates or len(recent_dates) < th.recent_days:
        return {
            "skipped": f"the lake lacks the training window {start}..{end} or {th.recent_days} recent dates"
        }
    train, recent = _panel(lake, train_dates), _panel(lake, recent_dates)
    features = list(model.meta.get("features") or [])
    pooled = {}
    for name in features:
        if not np.isfinite(recent[name].to_numpy(dtype=float)).any():
            continue  # e.g. esg without the reference table: nothing to compare
        figures = drift(train[name].to_numpy(float), recent[name].to_numpy(float), th.bins, th.epsilon)
        pooled[name] = {**figures.as_dict(), "band": band(figures.psi, th.psi_moderate, th.psi_significant)}
    names: dict[str, dict[str, Any]] = {}
    by_train = dict(tuple(train.groupby("ticker")))
    for ticker, rows in recent.groupby("ticker"):
        ref = by_train.get(ticker)
        if ref is None:
            continue  # a name the champion never saw is the registry's business, not drift
        per: dict[str, Any] = {}
        for name in (f for f in th.name_features if f in features):
            a, b = ref[name].to_numpy(float), rows[name].to_numpy(float)
            if np.isfinite(a).sum() >= 2 * th.name_bins and np.isfinite(b).any():
                per[name] = drift(a, b, th.name_bins, th.epsilon).as_dict()
        if per:
            names[str(ticker)] = per
    return {
        "model_version": model.version,
        "training_window": [train_dates[0].isoformat(), train_dates[-1].isoformat()],
        "recent_window": [recent_dates[0].isoformat(), recent_dates[-1].isoformat()],
        "features": pooled,
        "names": names,
    }


def rank_ic(predictions: np.ndarray, outcomes: np.ndarray) -> float:
    """Spearman rank correlation of one date's predictions and realised returns (NaN pairs dropped; NaN
    with fewer than 3 names or a constant side)."""
    from scipy import stats

    keep = np.isfinite(predictions) & np.isfinite(outcomes)
    if keep.sum() < 3:
        return float("nan")
    a, b = stats.rankdata(predictions[keep]), stats.rankdata(outcomes[keep])
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def live_ic(lake: Lake, as_of: date, th: IcThresholds | None = None) -> dict[str, Any]:
    """The champion's daily rank IC over the last ``th.live_days`` lake dates up to ``as_of`` that have a
    realised ``th.horizon_days`` return, with its mean, standard error and the out-of-sample IC recorded at
    training (registry ``metrics.ic``)."""
    th = th or load_thresholds().ic
    from strategy.features import FEATURES
    from strategy.registry import champion, load_model

    model = champion(lake)
    if model is None:
        return {"skipped": "no champion model in the registry"}
    dates = [d for d in lake.price_dates() if d <= as_of]
    scored = dates[-(th.live_days + th.horizon_days) : len(dates) - th.horizon_days]
    if len(scored) < th.min_days:
        return {"skipped": f"{len(scored)} dates with a realised return up to {as_of}; {th.min_days} needed"}
    panel = _panel(lake, scored)
    closes = lake.read_close_matrix(scored[0], dates[-1])
    forward = (closes.shift(-th.horizon_days) / closes - 1).loc[scored]
    predicted = panel.assign(pred=load_model(model).predict(panel.loc[:, list(FEATURES)]))
    daily = {}
    for day, rows in predicted.groupby("date"):
        outcome = forward.loc[day].reindex(rows["ticker"]).to_numpy(float)
        ic = rank_ic(rows["pred"].to_numpy(float), outcome)
        if math.isfinite(ic):
            daily[day.isoformat()] = round(ic, 6)
    values = np.array(list(daily.values()))
    oos = float(model.meta.get("metrics", {}).get("ic", float("nan")))
    return {
        "model_version": model.version,
        "days": len(values),
        "live_ic": _num(float(values.mean())) if len(values) else None,
        "live_ic_se": _num(float(values.std(ddof=1) / math.sqrt(len(values)))) if len(values) > 1 else None,
        "oos_ic": _num(oos),
        "horizon_days": th.horizon_days,
        "window": [scored[0].isoformat(), scored[-1].isoformat()],
        "daily": daily,
    }


def var_exceptions(
    lake: Lake,
    client: Any,
    schema: RedisSchema,
    as_of: date,
    th: VarThresholds | None = None,
    *,
    model: str = "filtered_historical_portfolio",
    confidence: float = 0.99,
    window: int = 1000,
) -> dict[str, Any]:
    """Exceptions (next-day loss above the 1-day VaR) of the book held now (Redis ``positions``, constant
    shares) over the last ``th.days`` lake dates up to ``as_of``, each forecast by the live VaR code on the
    ``window`` returns before it (what the sensor computes; the ``risk:history`` stream holds intraday
    refreshes, capped and without outcomes, so the backtest on the lake is the record)."""
    th = th or load_thresholds().var
    from quantbridge.positions import read_positions
    from risk.backtest import forecast_history
    from risk.var import VarSpec

    positions = {t: q for t, q in read_positions(client, schema).items() if q != 0}
    if not positions:
        return {"skipped": "no positions in Redis: no traded book to backtest"}
    dates = [d for d in lake.price_dates() if d <= as_of][-(window + th.days + 2) :]
    if not dates:
        return {"skipped": f"no prices in the lake up to {as_of}"}
    spec = VarSpec(model=model, confidence=confidence, horizon_days=1, window=window)
    try:
        frame = forecast_history(
            lake.read_close_matrix(dates[0], dates[-1]),
            positions,
            spec,
            quarantined=lake.quarantined_dates(),
            last=th.days,
        )
    except InputError as exc:
        if exc.field != "returns":
            raise
        return {"skipped": str(exc)}
    hits = frame.index[frame["exception"]]
    return {
        "observations": len(frame),
        "exceptions": int(frame["exception"].sum()),
        "confidence": confidence,
        "model": model,
        "window": window,
        "dates": [str(frame.index[0]), str(frame.index[-1])],
        "exception_dates": [str(d) for d in hits],
    }


def _fill_day(fields: Mapping[str, Any]) -> date | None:
    try:
        return date.fromisoformat(str(fields.get("ts", ""))[:10])
    except ValueError:
        return None


def _pooled_bps(fills: list[Mapping[str, Any]]) -> tuple[float, float, int]:
    """Notional, cost in bps of it (fees + slippage) and the count of usable fills."""
    from execution.costs import venue_costs

    rows = venue_costs(fills)
    notional = sum(r["notional"] for r in rows)
    cost = sum(r["cost_bps"] * r["notional"] for r in rows)
    return notional, (cost / notional if notional > 0 else float("nan")), sum(r["fills"] for r in rows)


def cost_drift(
    client: Any, schema: RedisSchema, as_of: date, th: CostThresholds | None = None
) -> dict[str, Any]:
    """Execution cost (bps of filled notional: fees plus slippage against the reference price) of the fills
    of the last ``th.recent_days`` fill dates up to ``as_of`` and of the ``th.baseline_days`` fill dates
    before them. A fill's date is its order's ``ts`` date; fills stream entries older than the two windows'
    calendar span (with room for weekends and holidays) are not read."""
    th = th or load_thresholds().costs
    span = math.ceil((th.recent_days + th.baseline_days) * 7 / 5) + 15
    since = int((as_of - timedelta(days=span)).toordinal() - date(1970, 1, 1).toordinal()) * 86_400_000
    by_day: dict[date, list[Mapping[str, Any]]] = {}
    for _, entry in client.xrange(schema.key("fills"), min=f"{since}-0"):
        day = _fill_day(entry)
        if day is not None and day <= as_of:
            by_day.setdefault(day, []).append(entry)
    days = sorted(by_day)
    recent_days = days[-th.recent_days :]
    baseline_days = days[-(th.recent_days + th.baseline_days) : -th.recent_days] if days else []
    if not recent_days:
        return {"skipped": f"no fills up to {as_of}"}
    recent = _pooled_bps([f for d in recent_days for f in by_day[d]])
    base = _pooled_bps([f for d in baseline_days for f in by_day[d]])
    return {
        "recent_bps": _num(recent[1]),
        "recent_fills": recent[2],
        "recent_notional": recent[0],
        "recent_window": [recent_days[0].isoformat(), recent_days[-1].isoformat()],
        "baseline_bps": _num(base[1]),
        "baseline_fills": base[2],
        "baseline_notional": base[0],
        "baseline_window": [baseline_days[0].isoformat(), baseline_days[-1].isoformat()]
        if baseline_days
        else [],
    }
