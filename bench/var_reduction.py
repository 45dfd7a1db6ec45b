"""Variance reduction at equal time: the 99% VaR and CVaR standard errors of each sampler against plain MC.

For each method the run first times it at the plain method's path count, then gives it the paths that
fit the plain method's time (equal time), and runs ``--replications`` independent replications (seeds
1..R). SE = standard deviation of the R estimates; ``x plain`` = plain SE / (method SE x sqrt(method's median
seconds per run / plain's)), i.e. at exactly equal time, and its square is how many times fewer paths
(or less time) the method needs for plain Monte Carlo's error. The book is linear (the bench
book of :mod:`bench.var_bench`), so the closed form gives each estimate's bias too.

    python -m bench.var_reduction [--mode full] [--assets 100] [--paths 100000] [--replications 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import numpy as np

METHODS: dict[str, dict[str, Any]] = {
    "plain": {},
    "antithetic": {"sampler": "antithetic"},
    "importance": {"importance": True},
    "antithetic + importance": {"sampler": "antithetic", "importance": True},
    "sobol": {"sampler": "sobol"},
    "sobol + importance": {"sampler": "sobol", "importance": True},
}


def _seconds(w: np.ndarray, cov: np.ndarray, paths: int, repeats: int, **options: Any) -> float:
    from risk.monte_carlo import monte_carlo_var

    return min(
        monte_carlo_var(w, cov, paths=paths, seed=10_000 + i, **options).seconds for i in range(repeats)
    )


def run(
    mode: str, assets: int, paths: int, replications: int, confidence: float = 0.99
) -> list[dict[str, Any]]:
    from bench.var_bench import book
    from risk.backend import array_module
    from risk.monte_carlo import monte_carlo_var, normal_var

    w, cov = book(assets)
    exact = normal_var(w, cov, confidence)
    common: dict[str, Any] = {"mode": mode, "confidence": confidence, "backend": array_module("cpu")}
    plain_s = float("inf")
    rows: list[dict[str, Any]] = []
    for name, options in METHODS.items():
        own = float("inf")
        for _ in range(5):  # interleaved with plain runs: both timed under the same load
            plain_s = min(plain_s, _seconds(w, cov, paths, 1, **common))
            own = min(own, _seconds(w, cov, paths, 1, **common, **options))
        n = paths if name == "plain" else max(1_000, round(paths * plain_s / own))  # equal time
        runs = [
            monte_carlo_var(w, cov, paths=n, seed=s, **common, **options) for s in range(1, replications + 1)
        ]
        var = np.array([r.var for r in runs])
        cvar = np.array([r.cvar for r in runs])
        rows.append(
            {
                "method": name,
                "paths": n,
                "seconds": round(float(np.median([r.seconds for r in runs])), 4),
                "var_se": float(var.std(ddof=1)),
                "cvar_se": float(cvar.std(ddof=1)),
                "var_bias": float(var.mean() - exact.var),
                "cvar_bias": float(cvar.mean() - exact.cvar),
            }
        )
    plain = rows[0]
    for row in rows:
        # What calibration left of the time difference is corrected with the replications' median times:
        # an SE scales as 1 / sqrt(paths), i.e. 1 / sqrt(time).
        stretch = (row["seconds"] / plain["seconds"]) ** 0.5
        row["var_se_ratio"] = round(plain["var_se"] / (row["var_se"] * stretch), 1)
        row["cvar_se_ratio"] = round(plain["cvar_se"] / (row["cvar_se"] * stretch), 1)
    print(
        f"{mode} mode, {assets} assets, 99% on a linear book (closed form VaR {exact.var:,.0f}, "
        f"CVaR {exact.cvar:,.0f}); {replications} replications per method at equal time "
        f"(plain: {paths:,} paths in {plain_s:.3f} s), load {os.getloadavg()[0]:.2f}"
    )
    print("| method | paths | s per run | VaR SE | x plain | CVaR SE | x plain | VaR bias | CVaR bias |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cells = [
            r["method"],
            f"{r['paths']:,}",
            f"{r['seconds']:.3f}",
            f"{r['var_se']:,.1f}",
            r["var_se_ratio"],
        ]
        cells += [
            f"{r['cvar_se']:,.1f}",
            r["cvar_se_ratio"],
            f"{r['var_bias']:+,.1f}",
            f"{r['cvar_bias']:+,.1f}",
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mode", choices=("shortcut", "full"), default="full")
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--paths", type=int, default=100_000)
    parser.add_argument("--replications", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.mode, args.assets, args.paths, args.replications)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
