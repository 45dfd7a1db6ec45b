"""The nightly governance monitor: measure drift, live skill, VaR exceptions and execution cost on the lake
and Redis, then decide (a pure function of the findings and the thresholds of ``thresholds.json``) whether to
propose tighter limits or a model demotion. A breach produces a *proposal* for the four-eyes release, never a
change: nothing here writes a limit, the registry or ``policy_active``.

Measurements (each returns a plain, JSON-ready dict, or ``{"skipped": reason}`` when the lake or Redis does
not hold what it needs yet):

* :func:`feature_drift`: PSI and KS of every model feature between the champion's training window and the
  last ``recent_days`` lake dates, pooled over the universe and per name;
* :func:`live_ic`: the champion's daily rank IC (Spearman of its predictions vs the next ``horizon_days``
  realised returns) over the last ``live_days`` dates with an outcome, against its out-of-sample IC;
* :func:`var_exceptions`: the traded book (Redis positions) backtested with the live VaR code over the last
  ``days`` lake dates (:func:`risk.backtest.forecast_history`); the Basel zone follows from the count;
* :func:`cost_drift`: execution cost in bps of notional (fees plus slippage,
  :func:`execution.costs.venue_costs`) of the fills of the last ``recent_days`` fill dates
  against the ``baseline_days`` before them.

:func:`decide` turns the findings into a :class:`Proposal` (or None); :func:`write_proposal` records it in
the lake (``governance/date=D/proposal.json``), the model demotion included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from quantbridge.errors import ConfigError, InputError
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema

THRESHOLDS_PATH = Path(__file__).resolve().with_name("thresholds.json")
#: The numeric limits a zone or a cost drift may lower (keys of ``policies/data.json``'s ``limits``).
LIMIT_KEYS = ("max_order_notional", "max_position_shares")


# --- thresholds --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftThresholds:
    recent_days: int = 20
    bins: int = 10
    name_bins: int = 5
    epsilon: float = 1e-4
    psi_moderate: float = 0.10
    psi_significant: float = 0.25
    ks_alpha: float = 0.001
    min_recent_obs: int = 15
    name_features: tuple[str, ...] = ("ret_1d", "ret_5d", "vol_21d")


@dataclass(frozen=True)
class IcThresholds:
    live_days: int = 60
    horizon_days: int = 1
    oos_horizon_days: int = 5
    min_days: int = 40
    demote_ratio: float = 0.25
    min_gap_se: float = 2.0


@dataclass(frozen=True)
class VarThresholds:
    days: int = 250
    zone_factors: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: {
            "yellow": {"max_order_notional": 0.75, "max_position_shares": 0.75},
            "red": {"max_order_notional": 0.5, "max_position_shares": 0.5},
        }
    )


@dataclass(frozen=True)
class CostThresholds:
    recent_days: int = 5
    baseline_days: int = 60
    min_fills: int = 10
    max_ratio: float = 1.5
    min_excess_bps: float = 2.0
    factors: Mapping[str, float] = field(default_factory=lambda: {"max_order_notional": 0.8})


@dataclass(frozen=True)
class Thresholds:
    """Everything :func:`decide` and the measurements read from ``thresholds.json``."""

    drift: DriftThresholds = DriftThresholds()
    ic: IcThresholds = IcThresholds()
    var: VarThresholds = VarThresholds()
    costs: CostThresholds = CostThresholds()

    def __post_init__(self) -> None:
        d, ic, v, c = self.drift, self.ic, self.var, self.costs
        checks: list[tuple[str, Any, bool, str]] = [
            ("drift.recent_days", d.recent_days, d.recent_days >= 2, "an integer >= 2"),
            ("drift.bins", d.bins, d.bins >= 2, "an integer >= 2"),
            ("drift.name_bins", d.name_bins, d.name_bins >= 2, "an integer >= 2"),
            ("drift.epsilon", d.epsilon, 0 < d.epsilon < 0.01, "a share in (0, 0.01)"),
            (
                "drift.psi_significant",
                d.psi_significant,
                0 < d.psi_moderate < d.psi_significant,
                "above drift.psi_moderate, both > 0",
            ),
            ("drift.ks_alpha", d.ks_alpha, 0 < d.ks_alpha < 1, "a probability in (0, 1)"),
            (
                "ic.live_days",
                ic.live_days,
                ic.live_days >= ic.min_days >= 2,
                "an integer >= ic.min_days >= 2",
            ),
            ("ic.horizon_days", ic.horizon_days, ic.horizon_days >= 1, "an integer >= 1"),
            ("ic.oos_horizon_days", ic.oos_horizon_days, ic.oos_horizon_days >= 1, "an integer >= 1"),
            ("ic.demote_ratio", ic.demote_ratio, 0 <= ic.demote_ratio < 1, "a ratio in [0, 1)"),
            ("ic.min_gap_se", ic.min_gap_se, ic.min_gap_se >= 0, "a number of standard errors >= 0"),
            ("var.days", v.days, v.days >= 20, "an integer >= 20"),
            ("costs.recent_days", c.recent_days, c.recent_days >= 1, "an integer >= 1"),
            ("costs.baseline_days", c.baseline_days, c.baseline_days >= 1, "an integer >= 1"),
            ("costs.max_ratio", c.max_ratio, c.max_ratio > 1, "a ratio > 1"),
        ]
        factors = [(f"var.zone_factors.{z}", f) for z, f in v.zone_factors.items()]
        factors.append(("costs.factors", c.factors))
        for name, table in factors:
            for key, factor in table.items():
                ok = key in LIMIT_KEYS and isinstance(factor, int | float) and 0 < factor <= 1
                checks.append((f"{name}.{key}", factor, ok, f"a factor in (0, 1] of one of {LIMIT_KEYS}"))
        bad_zones = sorted(set(v.zone_factors) - {"yellow", "red"})
        checks.append(("var.zone_factors", bad_zones, not bad_zones, "zones among yellow, red"))
        for name, value, ok, expected in checks:
            if not ok:
                raise ConfigError(f"thresholds {name}", value, expected)


def _section(cls: type, raw: Any, name: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"thresholds {name}", raw, "a JSON object")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"thresholds {name}", unknown, "keys among " + ", ".join(sorted(known)))
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        return cls(**values)
    except (
        TypeError
    ) as exc:  # a dataclass refuses a value only through its own checks; shape errors land here
        raise ConfigError(f"thresholds {name}", raw, str(exc)) from None


def thresholds_from_dict(raw: Mapping[str, Any]) -> Thresholds:
    """Thresholds from the parsed JSON (``about`` is documentation); ConfigError names a bad key or value."""
    sections = {"drift": DriftThresholds, "ic": IcThresholds, "var": VarThresholds, "costs": CostThresholds}
    unknown = sorted(set(raw) - set(sections) - {"about"})
    if unknown:
        raise ConfigError("thresholds", unknown, "sections among " + ", ".join(sections))
    return Thresholds(**{k: _section(cls, raw.get(k, {}), k) for k, cls in sections.items()})


def load_thresholds(path: Path | None = None) -> Thresholds:
    """The thresholds of ``path`` (default: ``governance/thresholds.json`` beside this module)."""
    path = path or THRESHOLDS_PATH
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError("thresholds file", str(path), f"a readable JSON file ({exc})") from None
    return thresholds_from_dict(raw)


# --- measurements ------------------------------------------------------------------------------------------
def _panel(lake: Lake, dates: list[date]) -> Any:
    """Feature panel (strategy.features) whose rows cover ``dates`` (the lookback before them is read too)."""
    from marketdata.reference import esg_scores
    from strategy.features import LOOKBACK, build_features

    every = lake.price_dates()
    first = every.index(dates[0])
    closes = lake.read_close_matrix(every[max(first - LOOKBACK, 0)], dates[-1])
    panel = build_features(closes, esg_scores(lake), npartitions=1)
    return panel[(panel["date"] >= dates[0]) & (panel["date"] <= dates[-1])]


def feature_drift(lake: Lake, as_of: date, th: DriftThresholds) -> dict[str, Any]:
    """PSI (bins at the training window's quantiles) and KS p-values of the champion's features: pooled over
    the universe per feature (``features``) and per name for ``th.name_features`` (``names``, ticker ->
    feature -> figures, with ``th.name_bins`` bins from that name's own training values).

    Training window: the champion's ``data_window`` in the registry; recent window: the last
    ``th.recent_days`` lake dates up to ``as_of``."""
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


def live_ic(lake: Lake, as_of: date, th: IcThresholds) -> dict[str, Any]:
    """The champion's daily rank IC over the last ``th.live_days`` lake dates up to ``as_of`` that have a
    realised ``th.horizon_days`` return, with its mean, standard error and the out-of-sample IC recorded at
    training (registry ``metrics.ic``)."""
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
    th: VarThresholds,
    *,
    model: str = "filtered_historical_portfolio",
    confidence: float = 0.99,
    window: int = 1000,
) -> dict[str, Any]:
    """Exceptions (next-day loss above the 1-day VaR) of the book held now (Redis ``positions``, constant
    shares) over the last ``th.days`` lake dates up to ``as_of``, each forecast by the live VaR code on the
    ``window`` returns before it (what the sensor computes; the ``risk:history`` stream holds intraday
    refreshes, capped and without outcomes, so the backtest on the lake is the record)."""
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


def cost_drift(client: Any, schema: RedisSchema, as_of: date, th: CostThresholds) -> dict[str, Any]:
    """Execution cost (bps of filled notional: fees plus slippage against the reference price) of the fills
    of the last ``th.recent_days`` fill dates up to ``as_of`` and of the ``th.baseline_days`` fill dates
    before them. A fill's date is its order's ``ts`` date; fills stream entries older than the two windows'
    calendar span (with room for weekends and holidays) are not read."""
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


# --- decision ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proposal:
    """What the monitor proposes: ``limits`` holds only the changed keys with their new values (the rest of
    the active limits stay); ``demote`` the champion to demote (version, figures) or None; ``reasons`` one
    line per breach."""

    limits: dict[str, Any]
    demote: dict[str, Any] | None
    reasons: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"limits": dict(self.limits), "demote": self.demote, "reasons": list(self.reasons)}

    @property
    def reason(self) -> str:
        return "governance monitor: " + "; ".join(self.reasons)


def _live(section: Any) -> Mapping[str, Any] | None:
    """A measurement that ran (not skipped, not absent)."""
    return section if isinstance(section, Mapping) and "skipped" not in section else None


def _zone(var: Mapping[str, Any]) -> str:
    from risk.backtest import traffic_light

    return traffic_light(int(var["exceptions"]), int(var["observations"]), 1 - float(var["confidence"]))


def drifted_names(drift: Mapping[str, Any], th: DriftThresholds) -> dict[str, dict[str, float]]:
    """Names whose drift is significant on some feature: PSI above ``psi_significant`` AND KS p-value below
    ``ks_alpha`` on at least ``min_recent_obs`` recent observations. ticker -> feature -> PSI."""
    out: dict[str, dict[str, float]] = {}
    for ticker, per in (drift.get("names") or {}).items():
        hit = {
            f: float(d["psi"])
            for f, d in per.items()
            if d["psi"] > th.psi_significant
            and d["ks_p"] < th.ks_alpha
            and d["n_recent"] >= th.min_recent_obs
        }
        if hit:
            out[ticker] = hit
    return out


def _cost_breach(costs: Mapping[str, Any], th: CostThresholds) -> bool:
    if costs["recent_fills"] < th.min_fills or costs["baseline_fills"] < th.min_fills:
        return False
    if costs["recent_bps"] is None or costs["baseline_bps"] is None:
        return False
    recent, base = float(costs["recent_bps"]), float(costs["baseline_bps"])
    above_ratio = base <= 0 or recent > th.max_ratio * base  # a non-positive baseline has no ratio to exceed
    return recent - base > th.min_excess_bps and above_ratio


def _num(value: float) -> float | None:
    """A finite float, or None (JSON and XCom have no NaN)."""
    return float(value) if math.isfinite(value) else None


def decide(findings: Mapping[str, Any], thresholds: Thresholds) -> Proposal | None:
    """The proposal the findings call for under ``thresholds``, or None when nothing is breached.

    ``findings``: ``drift``, ``ic``, ``var``, ``costs`` (the measurements' dicts; a missing or skipped one
    decides nothing) and ``limits``: ``{"reference": ..., "active": ...}`` (the repository's approved limits
    and the active bundle's). A zone or cost factor applies to the *reference* limit and a change is proposed
    only when it lowers the *active* one, so a yellow zone that lasts a month proposes once, not a ratchet.
    Yellow/red zone: ``var.zone_factors``; cost drift: ``costs.factors`` (the smaller factor wins); a drifted
    name (:func:`drifted_names`) joins ``restricted``; a live IC below ``demote_ratio`` x the out-of-sample
    IC (scaled to the live horizon by the square root of time) and at least ``min_gap_se`` standard errors
    under it proposes the champion's demotion."""
    limits = findings.get("limits") or {}
    reference, active = dict(limits.get("reference") or {}), dict(limits.get("active") or {})
    if not active:
        active = dict(reference)
    reasons: list[str] = []
    factors: dict[str, tuple[float, str]] = {}

    def lower(table: Mapping[str, float], why: str) -> None:
        for key, factor in table.items():
            if key not in factors or factor < factors[key][0]:
                factors[key] = (float(factor), why)

    var = _live(findings.get("var"))
    if var is not None:
        zone = _zone(var)
        if zone in thresholds.var.zone_factors:
            lower(
                thresholds.var.zone_factors[zone],
                f"VaR zone {zone}: {var['exceptions']} exceptions in {var['observations']} days "
                f"at {float(var['confidence']):.0%}",
            )
    costs = _live(findings.get("costs"))
    if costs is not None and _cost_breach(costs, thresholds.costs):
        lower(
            thresholds.costs.factors,
            f"execution cost drift: {costs['recent_bps']:.2f} bps over the last "
            f"{thresholds.costs.recent_days} fill dates vs {costs['baseline_bps']:.2f} bps baseline",
        )
    changes: dict[str, Any] = {}
    for key, (factor, why) in sorted(factors.items()):
        if key not in reference or key not in active:
            continue  # the limit is not in this policy's data: nothing to lower
        # whole shares and whole money: a limit is read by people before OPA reads it
        target = math.floor(float(reference[key]) * factor)
        if target < float(active[key]):
            changes[key] = target
            reasons.append(
                f"{why} -> {key} {active[key]} -> {target} (x{factor:g} of the approved {reference[key]})"
            )
    drift = _live(findings.get("drift"))
    if drift is not None:
        names = drifted_names(drift, thresholds.drift)
        held = set(active.get("restricted") or [])
        added = sorted(set(names) - held)
        if added:
            changes["restricted"] = sorted(held | set(added))
            detail = ", ".join(
                f"{t} ({', '.join(f'{f} PSI {p:.2f}' for f, p in sorted(names[t].items()))})" for t in added
            )
            reasons.append(f"feature drift past PSI {thresholds.drift.psi_significant:g}: restrict {detail}")
    demote = None
    ic = _live(findings.get("ic"))
    if ic is not None:
        demote = _demotion(ic, thresholds.ic)
        if demote is not None:
            reasons.append(demote["reason"])
    if not changes and demote is None:
        return None
    return Proposal(limits=changes, demote=demote, reasons=reasons)


def _demotion(ic: Mapping[str, Any], th: IcThresholds) -> dict[str, Any] | None:
    if any(ic.get(k) is None for k in ("live_ic", "live_ic_se", "oos_ic")):
        return None
    live, se, oos, days = float(ic["live_ic"]), float(ic["live_ic_se"]), float(ic["oos_ic"]), int(ic["days"])
    if days < th.min_days or oos <= 0:
        return None  # too few days, or no positive out-of-sample edge to fall short of
    expected = oos * math.sqrt(th.horizon_days / th.oos_horizon_days)
    if live >= th.demote_ratio * expected or expected - live < th.min_gap_se * se:
        return None
    return {
        "model_version": ic["model_version"],
        "live_ic": round(live, 6),
        "live_ic_se": round(se, 6),
        "oos_ic": round(oos, 6),
        "expected_live_ic": round(expected, 6),
        "days": days,
        "reason": (
            f"model {ic['model_version']}: live rank IC {live:.4f} (se {se:.4f}, {days} days, "
            f"{th.horizon_days}-day returns) below {th.demote_ratio:g} x {expected:.4f} (out-of-sample IC "
            f"{oos:.4f} at {th.oos_horizon_days} days): propose demotion"
        ),
    }


# --- records -----------------------------------------------------------------------------------------------
def proposal_path(lake: Lake, day: date) -> Path:
    """``<lake>/governance/date=D/proposal.json``: the night's proposal document."""
    return lake.partition("governance", "date", day.isoformat()) / "proposal.json"


def write_proposal(
    lake: Lake, day: date, proposal: Proposal, findings: Mapping[str, Any], revision: str | None = None
) -> Path:
    """Record the proposal (and the findings behind it) in the lake; a model demotion is proposed here, for a
    person to act on through the registry: nothing in the registry changes. Re-running a date replaces it."""
    path = proposal_path(lake, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "date": day.isoformat(),
        "status": "proposed",
        **proposal.as_dict(),
        "revision": revision,
        "findings": {k: v for k, v in findings.items() if k != "limits"},
        "limits_before": (findings.get("limits") or {}).get("active"),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path
