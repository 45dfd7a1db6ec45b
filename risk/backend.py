"""One array-module abstraction: CuPy when a GPU is present and ``cupy`` imports, NumPy otherwise.

The engines take ``xp`` from :func:`array_module` and use only functions both modules share, so the
same code path runs on both. ``QB_ARRAY_BACKEND`` (``auto``, ``cpu`` or ``gpu``, read by
:func:`default_backend`) forces the choice.
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
        """A seeded random generator of this backend: NumPy's fastest bit generator here (SFC64) on the CPU,
        cuRAND (``cupy.random.RandomState``: ``standard_normal`` and ``chisquare`` with a dtype) on the GPU.

        ``seed`` is an int or a sequence of ints (one stream per sequence); the GPU's streams differ, so
        Monte Carlo figures are reproducible per backend, not across them.
        """
        if self.name == "numpy":
            return np.random.Generator(np.random.SFC64(seed))
        if not isinstance(seed, int):  # cuRAND takes one integer: fold the sequence into it
            seed = int(np.random.SeedSequence(list(seed)).generate_state(1, np.uint64)[0] >> 1)
        return self.xp.random.RandomState(seed)

    def standard_normal(
        self, rng: Any, shape: tuple[int, ...], dtype: str, out: np.ndarray | None = None
    ) -> Any:
        """Standard normals of ``shape``; NumPy fills ``out`` when given (no allocation per chunk)."""
        if self.name == "numpy":
            return rng.standard_normal(shape, dtype=dtype, out=out)
        return rng.standard_normal(shape, dtype=dtype)


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


def default_backend() -> Backend:
    """The backend the settings ask for (``QB_ARRAY_BACKEND``, default ``auto``)."""
    from quantbridge.settings import load_settings

    return array_module(load_settings().array_backend)
