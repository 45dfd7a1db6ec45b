"""Checkpoints of the generators: one ``torch.save`` file holding weights, optimiser states, the training
random generator's state and the epoch reached, so an interrupted fit resumes where it stopped and ends
with the same weights as an uninterrupted one (CPU, same thread count)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (temporary file then rename), creating the folder."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is no checkpoint at ``path``."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def weights_digest(module: Any) -> str:
    """sha256 (first 16 hex digits) of a module's weights: the model version of a trained generator."""
    buffer = io.BytesIO()
    for name, tensor in sorted(module.state_dict().items()):
        buffer.write(name.encode())
        buffer.write(tensor.detach().cpu().contiguous().numpy().tobytes())
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:16]
