#!/usr/bin/env bash
# GPU in one command (make bench-gpu): install requirements-gpu.txt into the venv, require a visible CUDA
# device, run the CuPy path's tests (QB_ARRAY_BACKEND=gpu) and the 1,000 assets x 1e7 paths benchmark
# (engine against the GPU floor: cuRAND normals plus the mode's product), and print the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ASSETS=${ASSETS:-1000}
PATHS=${PATHS:-10000000}

"$PY" -m pip install --quiet -r requirements-gpu.txt
"$PY" - <<'PYEOF'
import sys

try:
    import cupy

    count = cupy.cuda.runtime.getDeviceCount()
except Exception as exc:  # no driver, no device, or a CUDA mismatch: say which
    sys.exit(f"bench-gpu: no CUDA device visible to CuPy ({type(exc).__name__}: {exc}). "
             "It needs an NVIDIA GPU, its driver and CUDA 12 (requirements-gpu.txt pins cupy-cuda12x).")
if count < 1:
    sys.exit("bench-gpu: CuPy sees no CUDA device (count 0)")
props = cupy.cuda.runtime.getDeviceProperties(0)
print(f"GPU: {props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.0f} GiB, CuPy {cupy.__version__}, "
      f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}")
PYEOF

echo "== CuPy path tests (QB_ARRAY_BACKEND=gpu)"
QB_ARRAY_BACKEND=gpu "$PY" -m pytest -q -p no:cacheprovider \
    tests/unit/risk/test_monte_carlo.py tests/unit/risk/test_variance_reduction.py \
    tests/unit/risk/test_var.py -k "mc_var or monte or variance or tail_quantile or backend"

echo "== benchmark: ${ASSETS} assets x ${PATHS} paths, engine against the GPU floor"
QB_ARRAY_BACKEND=gpu "$PY" -m bench.var_bench --device gpu --assets "$ASSETS" --paths "$PATHS" --repeats 2
