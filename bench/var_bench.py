"""Monte Carlo VaR benchmark: the engine against this machine's floor, measured in the same run.

Floor for a mode = drawing the same number of normals with NumPy's fastest generator (SFC64), in the
same batches, plus the matrix product the mode needs ((w'L) Z for shortcut, L Z then w'(LZ) for full).
The full mode's engine also makes a second pass (the component VaRs), so its floor counts one pass
and its ratio shows what the components cost.

    python -m bench.var_bench [--assets 500] [--paths 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def _book(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n, 5)) * 0.01
    cov = loadings @ loadings.T + np.diag(rng.uniform(1e-5, 4e-4, n))
    return rng.uniform(1e4, 1e5, n), cov


def _floor(w: np.ndarray, chol: np.ndarray, paths: int, dtype: str, mode: str) -> float:
    step = max(1_000, min(200_000, 20_000_000 // len(w)))
    factor = (w @ chol).astype(dtype) if mode == "shortcut" else chol.astype(dtype)
    weights = w.astype(dtype)
    t0 = time.perf_counter()
    for b, start in enumerate(range(0, paths, step)):
        z = np.random.Generator(np.random.SFC64([1, b])).standard_normal(
            (len(w), min(step, paths - start)), dtype=dtype
        )
        if mode == "shortcut":
            factor @ z
        else:
            weights @ (factor @ z)
    return time.perf_counter() - t0


def run(assets: int, paths: int, repeats: int = 1) -> list[dict[str, object]]:
    from risk.backend import array_module
    from risk.monte_carlo import monte_carlo_var

    w, cov = _book(assets)
    chol = np.linalg.cholesky(cov)
    backend = array_module("cpu")
    rows = []
    for mode in ("shortcut", "full"):
        for dtype in ("float32", "float64"):
            floor = min(_floor(w, chol, paths, dtype, mode) for _ in range(repeats))
            engine = min(
                monte_carlo_var(w, cov, paths=paths, dtype=dtype, mode=mode, backend=backend).seconds
                for _ in range(repeats)
            )
            rows.append(
                {
                    "mode": mode,
                    "dtype": dtype,
                    "assets": assets,
                    "paths": paths,
                    "engine_s": round(engine, 3),
                    "floor_s": round(floor, 3),
                    "ratio": round(engine / floor, 2),
                    "paths_per_s": round(paths / engine),
                }
            )
            print(
                f"{mode:>9} {dtype:>8}: engine {engine:7.3f} s  floor {floor:7.3f} s  "
                f"ratio {engine / floor:5.2f}  {paths / engine:,.0f} paths/s",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--paths", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(
        f"Monte Carlo VaR, {args.assets} assets x {args.paths:,} paths, 99%, NumPy on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()})",
        flush=True,
    )
    rows = run(args.assets, args.paths, args.repeats)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
