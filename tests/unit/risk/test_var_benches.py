"""The VaR benchmarks at toy sizes: the floor, the equal-time variance table, the GPU script's refusal."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bench import var_bench, var_reduction

ROOT = Path(__file__).resolve().parents[3]


def test_var_bench_when_run_small_then_engine_and_floor_rows_per_mode_and_dtype(capsys):
    out = var_bench.run(assets=20, paths=4_000, repeats=1, threads=2, generator_numbers=1 << 19)

    rows = out["rows"]
    assert [(r["mode"], r["dtype"]) for r in rows] == [
        ("shortcut", "float64"),
        ("shortcut", "float32"),
        ("full", "float64"),
        ("full", "float32"),
    ]
    assert all(r["floor_generator"] in var_bench.GENERATORS and r["ratio"] > 0 for r in rows)
    assert set(out["generators"]) == set(var_bench.GENERATORS)
    assert "normals/s engine" in capsys.readouterr().out


def test_var_reduction_when_run_small_then_one_row_per_method_with_equal_time_paths(capsys):
    rows = var_reduction.run("shortcut", assets=5, paths=4_000, replications=4)

    assert [r["method"] for r in rows] == list(var_reduction.METHODS)
    assert rows[0]["var_se_ratio"] == 1.0 and all(r["var_se"] > 0 and r["paths"] >= 1_000 for r in rows)
    assert "| sobol + importance |" in capsys.readouterr().out


def test_gpu_script_when_no_cuda_device_then_clear_error_and_non_zero_exit(tmp_path):
    pytest.importorskip("numpy")
    try:
        import cupy  # type: ignore[import-not-found]  # noqa: F401

        pytest.skip("cupy is installed here: the refusal path is for machines without a GPU")
    except ImportError:
        pass
    python = tmp_path / "python"  # the venv's python, with `-m pip` a no-op (nothing is installed)
    skip_pip = 'if [ "$1" = -m ] && [ "$2" = pip ]; then exit 0; fi'
    python.write_text(f'#!/usr/bin/env bash\n{skip_pip}\nexec {sys.executable} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)

    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh")],
        env={**os.environ, "PY": str(python)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0 and "no CUDA device visible" in done.stderr
