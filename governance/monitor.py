"""The nightly governance monitor's decision and its record: :func:`decide` turns the findings (the
measurements of :mod:`governance.measures`) into a :class:`Proposal` or None, a pure function of the findings
and the thresholds of ``thresholds.json`` (:mod:`governance.thresholds`). A breach produces a *proposal* for
the four-eyes release, never a change: :func:`submit` stores a proposed policy bundle
(:func:`governance.release.propose`, which the ``policy_release`` DAG may then activate after two approvals)
and records the proposal, a model demotion included, in the lake (``governance/date=D/proposal.json``);
nothing here writes a limit, the registry or ``policy_active``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from governance.thresholds import CostThresholds, DriftThresholds, IcThresholds, Thresholds
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema


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
    """Names whose drift is significant on some feature: PSI above ``psi_significant`` AND the KS p-value
    below ``ks_alpha`` divided by the number of (name, feature) pairs checked (Bonferroni: ``ks_alpha`` is the
    chance that a night with no drift restricts any name), on at least ``min_recent_obs`` recent observations.
    ticker -> feature -> PSI. (On 20 days a name's PSI alone reads about 0.33 with no drift; the KS gate is
    what keeps noise from restricting names.)"""
    names = drift.get("names") or {}
    alpha = th.ks_alpha / max(sum(len(per) for per in names.values()), 1)
    out: dict[str, dict[str, float]] = {}
    for ticker, per in names.items():
        hit = {
            f: float(d["psi"])
            for f, d in per.items()
            if d["psi"] > th.psi_significant and d["ks_p"] < alpha and d["n_recent"] >= th.min_recent_obs
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


def current_limits(
    lake: Lake, ring: Any, client: Any, schema: RedisSchema, folder: Path | None = None
) -> dict[str, Any]:
    """``{"reference", "active", "active_revision"}``: the approved limits of the repository's policy folder
    (``folder``, default ``policies/``) and those of the active bundle (verified: signature and approvals;
    the reference ones when no bundle was ever activated)."""
    from execution.bundle import DATA_FILE, bundle_files, read_active, verify
    from execution.policy import POLICY_DIR

    reference = json.loads(bundle_files(folder or POLICY_DIR)[DATA_FILE])["limits"]
    record = read_active(client, schema)
    if record is None:
        return {"reference": reference, "active": reference, "active_revision": None}
    revision = str(record["revision"])
    return {
        "reference": reference,
        "active": verify(lake, revision, ring).data["limits"],
        "active_revision": revision,
    }


def _bundle_reason(day: date, proposal: Proposal, limit: int = 1000) -> str:
    """The bundle's one-line reason (the manifest takes at most 1,000 characters): the breaches, shortened
    with a pointer to the night's proposal document when they are longer."""
    text = f"{proposal.reason} ({day.isoformat()})"
    if len(text) <= limit:
        return text
    tail = f"... (all in governance/date={day.isoformat()}/proposal.json)"
    return text[: limit - len(tail)] + tail


def submit(
    lake: Lake,
    day: date,
    proposal: Proposal | Mapping[str, Any] | None,
    findings: Mapping[str, Any],
    ring: Any,
    client: Any,
    schema: RedisSchema,
    author: str = "governance_monitor",
) -> dict[str, Any] | None:
    """Propose the limit changes as a signed bundle (:func:`governance.release.propose`, from the active
    revision; it enters the four-eyes ``policy_release`` DAG by its revision) and record the proposal with
    its findings in the lake. Returns ``{revision, reason, limits, demote, document, diff}`` (``revision``
    None when only a demotion is proposed), or None when there is nothing to propose."""
    if proposal is None:
        return None
    if not isinstance(proposal, Proposal):
        proposal = Proposal(
            limits=dict(proposal["limits"]), demote=proposal.get("demote"), reasons=list(proposal["reasons"])
        )
    revision, shown = None, ""
    if proposal.limits:
        from governance.release import propose

        stored = propose(
            lake,
            ring,
            author=author,
            reason=_bundle_reason(day, proposal),
            changes=proposal.limits,
            client=client,
            schema=schema,
        )
        revision, shown = stored["revision"], stored["diff"]
    path = write_proposal(lake, day, proposal, findings, revision)
    return {
        "revision": revision,
        "reason": proposal.reason,
        "limits": proposal.limits,
        "demote": proposal.demote,
        "document": str(path),
        "diff": shown,
    }


def decide_dict(findings: Mapping[str, Any], thresholds: Thresholds | None = None) -> dict[str, Any] | None:
    """:func:`decide` with the thresholds of ``thresholds.json`` (by default), as a plain dict for XCom."""
    from governance.thresholds import load_thresholds

    proposal = decide(findings, thresholds or load_thresholds())
    return proposal.as_dict() if proposal is not None else None
