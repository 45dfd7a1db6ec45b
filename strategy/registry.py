"""Versioned model registry in the lake, with champion/challenger promotion.

``models/version=V/``: ``model.joblib`` (the fitted pipeline) and ``meta.json`` (kind, features, data
window, metrics, code version, created_at). ``models/champion.json`` names the champion. A challenger is
promoted only when its out-of-sample IC beats the champion's (or there is no champion).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantbridge.lake import Lake

CHAMPION_FILE = "champion.json"


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


def promote_if_better(lake: Lake, challenger: Registered, metric: str = "ic") -> dict[str, Any]:
    """Make ``challenger`` the champion if its out-of-sample ``metric`` beats the champion's."""
    current = champion(lake)
    new_score = float(challenger.meta["metrics"][metric])
    old_score = float(current.meta["metrics"][metric]) if current else None
    promoted = old_score is None or new_score > old_score
    if promoted:
        path = _root(lake) / CHAMPION_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": challenger.version, metric: new_score}) + "\n")
        tmp.replace(path)
    return {
        "challenger": challenger.version,
        "champion_before": current.version if current else None,
        "metric": metric,
        "challenger_score": new_score,
        "champion_score": old_score,
        "promoted": promoted,
    }
