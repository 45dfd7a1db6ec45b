"""One array-module abstraction: CuPy when a GPU is present and ``cupy`` imports, NumPy otherwise.

The engines take ``xp`` from :func:`array_module` and use only functions both modules share, so the
same code path runs on both. ``QB_ARRAY_BACKEND`` forces the choice (``cpu`` or ``gpu``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from quantbridge.errors import ConfigError


@dataclass(frozen=True)
class Backend:
    """An array module and its name (``numpy`` or ``cupy``)."""

    xp: Any
    name: str

    def to_numpy(self, array: Any) -> np.ndarray:
        return array.get() if self.name == "cupy" else np.asarray(array)

    def generator(self, seed: Any) -> Any:
        """A seeded random generator of this backend: NumPy's fastest bit generator (SFC64) on the CPU.

        The GPU's stream differs, so Monte Carlo figures are reproducible per backend, not across them.
        """
        if self.name == "numpy":
            return np.random.Generator(np.random.SFC64(seed))
        return self.xp.random.default_rng(seed)


def _cupy_with_device() -> Any | None:
    try:
        import cupy  # type: ignore[import-not-found]

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # noqa: BLE001 - no cupy, no driver, or no device all mean "no GPU"
        return None
    return None


def array_module(preference: str = "auto") -> Backend:
    """The backend for ``preference``: ``auto`` (GPU if usable), ``gpu`` (required) or ``cpu``."""
    if preference not in {"auto", "gpu", "cpu"}:
        raise ConfigError("array_backend", preference, "one of auto, gpu, cpu")
    if preference == "cpu":
        return Backend(np, "numpy")
    cupy = _cupy_with_device()
    if cupy is not None:
        return Backend(cupy, "cupy")
    if preference == "gpu":
        raise ConfigError(
            "array_backend",
            preference,
            "a machine with an NVIDIA GPU and `pip install -r requirements-gpu.txt` (cupy did not load)",
        )
    return Backend(np, "numpy")
