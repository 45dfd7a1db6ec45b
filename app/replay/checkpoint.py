"""Checkpoints of a replay: after each completed day, everything a resumed run needs to continue as if it had
never stopped.

``OUT/checkpoints/<n>/`` holds ``state.json`` (the loop's state: last day done, stream positions, the
market's depth and the router's filters, the model registry's versions and champion) and ``redis.rdb`` (the
replay's Redis); ``OUT/checkpoints/LATEST`` names the newest, replaced atomically once the folder is
complete, so a kill at any moment leaves either the old or the new checkpoint, never half of one.
``OUT/run.json`` holds the arguments: a run resumed with other arguments is refused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbridge.errors import InputError

LATEST = "LATEST"


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    state: dict[str, Any]

    @property
    def rdb(self) -> Path:
        return self.folder / "redis.rdb"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def claim(out: Path, arguments: dict[str, Any]) -> bool:
    """Record the run's arguments in ``out/run.json``; True when ``out`` already held this same run (a
    resume). An ``out`` that holds a run with other arguments is an error naming the first difference."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "run.json"
    if path.is_file():
        before = json.loads(path.read_text())
        for key in sorted(set(before) | set(arguments)):
            if before.get(key) != arguments.get(key):
                raise InputError(
                    "--out",
                    str(out),
                    f"a fresh folder or the same arguments as the replay it holds ({key}: "
                    f"{before.get(key)!r} there, {arguments.get(key)!r} now)",
                )
        return True
    _write_json(path, arguments)
    return False


def latest(out: Path) -> Checkpoint | None:
    """The newest complete checkpoint under ``out``, or None."""
    pointer = out / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    folder = out / "checkpoints" / pointer.read_text().strip()
    return Checkpoint(folder, json.loads((folder / "state.json").read_text()))


def write(out: Path, number: int, state: dict[str, Any], save_rdb: Any) -> Checkpoint:
    """Write checkpoint ``number``: ``save_rdb(path)`` writes the Redis snapshot, then the state, then the
    pointer; older checkpoints are removed afterwards."""
    root = out / "checkpoints"
    folder = root / f"{number:05d}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    save_rdb(folder / "redis.rdb")
    _write_json(folder / "state.json", state)
    tmp = root / (LATEST + ".tmp")
    tmp.write_text(folder.name + "\n")
    tmp.replace(root / LATEST)
    for old in root.iterdir():
        if old.is_dir() and old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)
    return Checkpoint(folder, state)
