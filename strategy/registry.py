"""Versioned model registry in the lake, with champion/challenger promotion.

``models/version=V/``: ``model.joblib`` (the fitted pipeline) and ``meta.json`` (kind, features, data
window, ``train_end``: the last date whose label the model was fitted on, metrics, code version,
created_at). ``models/champion.json`` names the champion; ``models/promotion.json`` records the last
promotion decision with its figures and reason.

The promotion rule (:func:`promote_if_better`): champion and challenger are scored on a **common, later
holdout**, the labelled dates after both models' ``train_end`` plus the purge (``HORIZON +
EXECUTION_LAG`` trading days, so no holdout label overlaps a training label) up to the challenger's
``as_of``. The challenger is promoted only if (1) its daily IC on that holdout has a Newey-West
t-statistic of at least ``min_ic_t`` (a model below it should not trade at all), (2) the holdout has at
least ``min_days`` dates when there is a champion, and (3) its daily IC minus the champion's, date by date,
has a Newey-West t-statistic of at least ``min_t`` (a paired test: better but not significantly better is
not promoted). With no champion, (1) alone decides.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from quantbridge.lake import Lake

CHAMPION_FILE = "champion.json"
PROMOTION_FILE = "promotion.json"
#: Dates the common holdout needs before a challenger can displace a champion.
MIN_HOLDOUT_DAYS = 60


def code_version() -> str:
    """The git commit of the code that trained the model (or the package version outside a checkout)."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if done.returncode == 0:
            return done.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    from quantbridge import __version__

    return __version__


@dataclass(frozen=True)
class Registered:
    version: str
    path: Path
    meta: dict[str, Any]


def _root(lake: Lake) -> Path:
    return lake.root / "models"


def register(lake: Lake, model: Any, meta: dict[str, Any], version: str | None = None) -> Registered:
    """Store a fitted model and its metadata as a new version (``version`` defaults to a UTC timestamp)."""
    import joblib

    version = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = lake.partition("models", "version", version)
    folder.mkdir(parents=True, exist_ok=False)
    joblib.dump(model, folder / "model.joblib")
    full = {
        **meta,
        "version": version,
        "code_version": code_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (folder / "meta.json").write_text(json.dumps(full, indent=2, sort_keys=True, default=str) + "\n")
    return Registered(version, folder, full)


def get(lake: Lake, version: str) -> Registered:
    """A registered version; KeyError naming the version when it is not in the lake."""
    folder = lake.partition("models", "version", version)
    if not (folder / "meta.json").is_file():
        raise KeyError(f"model version {version!r} is not registered under {_root(lake)}")
    return Registered(version, folder, json.loads((folder / "meta.json").read_text()))


def champion(lake: Lake) -> Registered | None:
    path = _root(lake) / CHAMPION_FILE
    if not path.is_file():
        return None
    return get(lake, json.loads(path.read_text())["version"])


def load_model(registered: Registered) -> Any:
    import joblib

    return joblib.load(registered.path / "model.joblib")


def train_end(registered: Registered) -> date:
    """The last date whose label the model was fitted on (older versions: the end of their data window)."""
    meta = registered.meta
    return date.fromisoformat(str(meta.get("train_end") or meta["data_window"][1])[:10])


def holdout_ic(lake: Lake, models: dict[str, Any], start: date, end: date) -> pd.DataFrame:
    """Daily Spearman IC of each model (name -> fitted pipeline) on the labelled dates ``start``..``end``
    of the lake (features from closes up to each date, the executable 5-day label); one column a model."""
    from marketdata.reference import esg_scores
    from strategy.features import FEATURES, LOOKBACK, TARGET, build_features
    from strategy.model import daily_ic

    dates = [d for d in lake.price_dates() if d <= end]
    first = next((i for i, d in enumerate(dates) if d >= start), len(dates))
    if first >= len(dates):
        return pd.DataFrame(columns=list(models), dtype="float64")
    closes = lake.read_close_matrix(dates[max(0, first - LOOKBACK - 1)], end)
    panel = build_features(closes, esg_scores(lake), npartitions=1).dropna(subset=[TARGET])
    rows = panel[(panel["date"] >= start) & (panel["date"] <= end)]
    if rows.empty:
        return pd.DataFrame(columns=list(models), dtype="float64")
    return pd.DataFrame(
        {name: daily_ic(rows, m.predict(rows.loc[:, list(FEATURES)])) for name, m in models.items()}
    )


def promotion_rule(
    challenger_ic: pd.Series,
    champion_ic: pd.Series | None,
    min_ic_t: float | None = None,
    min_t: float | None = None,
    min_days: int = MIN_HOLDOUT_DAYS,
) -> dict[str, Any]:
    """The decision on daily IC series of the same holdout dates (see the module docstring)."""
    from strategy.evaluation import MIN_EDGE_T, MIN_IC_T, NW_LAGS
    from strategy.stats import newey_west_t

    min_ic_t = MIN_IC_T if min_ic_t is None else min_ic_t
    min_t = MIN_EDGE_T if min_t is None else min_t
    own = newey_west_t(challenger_ic, NW_LAGS)
    out: dict[str, Any] = {
        "holdout_days": int(challenger_ic.notna().sum()),
        "challenger_ic": own["mean"],
        "challenger_ic_t": own["t"],
        "min_ic_t": min_ic_t,
        "min_t": min_t,
    }
    if champion_ic is not None:  # the paired figures are recorded whatever decides
        paired = pd.concat([challenger_ic, champion_ic], axis=1).dropna()
        diff = newey_west_t(paired.iloc[:, 0] - paired.iloc[:, 1], NW_LAGS)
        out.update(
            holdout_days=len(paired),
            champion_ic=float(paired.iloc[:, 1].mean()) if len(paired) else float("nan"),
            ic_difference=diff["mean"],
            difference_t=diff["t"],
        )
    if not own["t"] >= min_ic_t:
        return {
            **out,
            "promoted": False,
            "reason": f"challenger IC t {own['t']:.2f} < {min_ic_t}: not fit to trade",
        }
    if champion_ic is None:
        return {
            **out,
            "promoted": True,
            "reason": f"no champion; challenger IC t {own['t']:.2f} >= {min_ic_t}",
        }
    if len(paired) < min_days:
        return {
            **out,
            "promoted": False,
            "reason": f"common later holdout of {len(paired)} dates < {min_days}",
        }
    if not diff["t"] >= min_t:
        return {
            **out,
            "promoted": False,
            "reason": f"IC difference {diff['mean']:+.4f} with t {diff['t']:.2f} < {min_t}: "
            "not significantly better",
        }
    return {
        **out,
        "promoted": True,
        "reason": f"IC difference {diff['mean']:+.4f} with t {diff['t']:.2f} >= {min_t}",
    }


def _write(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")
    tmp.replace(path)


def set_champion(lake: Lake, registered: Registered, reason: str) -> dict[str, Any]:
    """Make ``registered`` the champion without the promotion rule (an operator's decision, a test's
    fixture); ``models/promotion.json`` records it as such with ``reason``."""
    if not reason.strip():
        raise ValueError("reason: a champion set by hand needs a reason for the record")
    current = champion(lake)
    _write(_root(lake) / CHAMPION_FILE, {"version": registered.version})
    record = {
        "challenger": registered.version,
        "champion_before": current.version if current else None,
        "promoted": True,
        "reason": f"set by hand, without the promotion rule: {reason.strip()}",
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write(_root(lake) / PROMOTION_FILE, record)
    return record


def promote_if_better(
    lake: Lake,
    challenger: Registered,
    metric: str = "ic",
    *,
    min_ic_t: float | None = None,
    min_t: float | None = None,
    min_days: int = MIN_HOLDOUT_DAYS,
) -> dict[str, Any]:
    """Make ``challenger`` the champion if the promotion rule says so (module docstring); the decision, its
    figures and its reason are written to ``models/promotion.json`` and returned."""
    from strategy.features import EXECUTION_LAG, HORIZON

    if metric != "ic":
        raise ValueError(f"metric {metric!r}: the promotion rule compares daily IC only")
    current = champion(lake)
    as_of = date.fromisoformat(str(challenger.meta.get("as_of") or challenger.meta["data_window"][1])[:10])
    ends = [train_end(challenger)] + ([train_end(current)] if current else [])
    dates = lake.price_dates()
    after = [d for d in dates if d > max(ends)]
    start = after[HORIZON + EXECUTION_LAG] if len(after) > HORIZON + EXECUTION_LAG else as_of
    models = {"challenger": load_model(challenger)}
    if current is not None:
        models["champion"] = load_model(current)
    ics = holdout_ic(lake, models, start, as_of)
    decision = promotion_rule(
        ics["challenger"], ics["champion"] if current is not None else None, min_ic_t, min_t, min_days
    )
    if decision["promoted"]:
        _write(
            _root(lake) / CHAMPION_FILE, {"version": challenger.version, metric: decision["challenger_ic"]}
        )
    from strategy.stats import json_safe

    record = {
        "challenger": challenger.version,
        "champion_before": current.version if current else None,
        "metric": metric,
        "holdout": [str(ics.index.min()) if len(ics) else None, str(ics.index.max()) if len(ics) else None],
        # kept for callers of the former rule: the scores are the holdout's mean daily IC
        "challenger_score": decision["challenger_ic"],
        "champion_score": decision.get("champion_ic"),
        **decision,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    record = json_safe(record)  # strict JSON: a NaN figure (too few dates) is null
    _write(_root(lake) / PROMOTION_FILE, record)
    return record
