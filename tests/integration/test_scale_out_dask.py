"""Dask on a distributed scheduler, for real: ``dask scheduler`` and ``dask worker`` run as separate
processes on loopback, and the domain code, given only ``QB_DASK_SCHEDULER=tcp://127.0.0.1:PORT``, sends
its work there. The nightly stress grid and the feature build give exactly the in-process results, and
the scheduler's own transition log shows it ran their tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from marketdata.feed import SkfolioFeed
from marketdata.reference import load_reference_tables, read_reference
from quantbridge.lake import Lake
from quantbridge.settings import load_settings
from risk.portfolio import equal_weight_book, exposures
from risk.stress_night import FAMILIES, StressInputs, run_stress
from strategy.features import build_features
from tests.conftest import ROOT, _free_port

pytestmark = pytest.mark.slow

DAY = date(2020, 12, 31)


def _stop(proc: subprocess.Popen) -> None:
    """End a process group we started, by its pid (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler and one worker process (2 threads); yields the scheduler address."""
    from dask.distributed import Client

    dask = str(Path(sys.executable).with_name("dask"))
    logs = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    for name, args in (
        (
            "scheduler",
            ["scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
        ),
        (
            "worker",
            [
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nworkers",
                "1",
                "--nthreads",
                "2",
                "--memory-limit",
                "2GiB",
                "--no-dashboard",
            ],
        ),
    ):
        with (logs / f"{name}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [dask, *args],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=30)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _tasks_run(address: str, prefix: str) -> set[str]:
    """Keys starting with ``prefix`` that reached memory on that scheduler (from its transition log)."""
    from dask.distributed import Client

    with Client(address, timeout=10) as client:
        log = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.transition_log))
    return {str(entry[0]) for entry in log if str(entry[0]).startswith(prefix) and entry[2] == "memory"}


@pytest.fixture(scope="module")
def stress_inputs(tmp_path_factory: pytest.TempPathFactory) -> StressInputs:
    """The bundled feed's closes for 2019-06..2020-12 and the reference tables (no Spark needed)."""
    lake = Lake(tmp_path_factory.mktemp("dask-lake"))
    load_reference_tables(lake)
    closes = SkfolioFeed().fetch(date(2019, 6, 3), DAY).pivot(index="date", columns="ticker", values="close")
    last = closes.ffill().iloc[-1]
    return StressInputs(
        day=DAY,
        bond_book=read_reference(lake, "bond_book"),
        curve=read_reference(lake, "curve"),
        fx=read_reference(lake, "fx"),
        esg=read_reference(lake, "esg"),
        holdings=exposures(equal_weight_book(last), last),
        closes=closes,
    )


def test_run_stress_when_qb_dask_scheduler_set_then_cluster_runs_grid_with_in_process_result(
    dask_cluster, stress_inputs
):
    settings = load_settings(environ={"QB_DASK_SCHEDULER": dask_cluster})
    remote = run_stress(stress_inputs, paths=2_000, dask_scheduler=settings.dask_scheduler)
    local = run_stress(stress_inputs, paths=2_000)  # the default: in-process threads
    pd.testing.assert_frame_equal(remote, local)
    assert set(remote["family"]) == set(FAMILIES)
    assert _tasks_run(dask_cluster, "stress-") == {f"stress-{f}-{DAY}" for f in FAMILIES}


def test_build_features_when_qb_dask_scheduler_set_then_cluster_runs_partitions_with_in_process_result(
    dask_cluster,
):
    settings = load_settings(environ={"QB_DASK_SCHEDULER": dask_cluster})
    closes = (
        SkfolioFeed(("AAPL", "MSFT", "XOM", "JPM"))
        .fetch(date(2019, 1, 2), date(2019, 12, 31))
        .pivot(index="date", columns="ticker", values="close")
    )
    before = _tasks_run(dask_cluster, "")
    remote = build_features(closes, dask_scheduler=settings.dask_scheduler)
    local = build_features(closes)  # local threads
    pd.testing.assert_frame_equal(remote, local)
    assert len(remote) > 0
    assert len(_tasks_run(dask_cluster, "") - before) >= 4  # one task per ticker partition at least
