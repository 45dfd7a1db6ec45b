"""Thresholds of the governance monitor, read from ``governance/thresholds.json`` (thresholds are data: each
number is explained in docs/governance.md, section "Governance monitor"). One frozen section per check;
a missing key takes the default written here, an unknown key or a value out of range is a ConfigError naming
it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from quantbridge.errors import ConfigError

THRESHOLDS_PATH = Path(__file__).resolve().with_name("thresholds.json")
#: The numeric limits a zone or a cost drift may lower (keys of ``policies/data.json``'s ``limits``).
LIMIT_KEYS = ("max_order_notional", "max_position_shares")


@dataclass(frozen=True)
class DriftThresholds:
    recent_days: int = 20
    bins: int = 10
    name_bins: int = 5
    epsilon: float = 1e-4
    psi_moderate: float = 0.10
    psi_significant: float = 0.25
    ks_alpha: float = 0.05
    min_recent_obs: int = 15
    name_features: tuple[str, ...] = ("ret_1d",)


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
    defaults = {f.name: getattr(cls(), f.name) for f in fields(cls)}
    values = {}
    for key, value in raw.items():
        default = defaults[key]
        if isinstance(default, int | float) and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise ConfigError(f"thresholds {name}.{key}", value, "a number")
        if isinstance(default, int) and not isinstance(default, bool) and not isinstance(value, int):
            raise ConfigError(f"thresholds {name}.{key}", value, "a whole number")
        if isinstance(default, tuple) and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise ConfigError(f"thresholds {name}.{key}", value, "a list of feature names")
        if isinstance(default, Mapping) and not isinstance(value, dict):
            raise ConfigError(f"thresholds {name}.{key}", value, "a JSON object")
        values[key] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


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
