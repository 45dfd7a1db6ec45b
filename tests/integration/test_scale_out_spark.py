"""Spark on a cluster master, for real: a standalone Master and one Worker (1 core, 1 GiB) from the pyspark
install run as their own JVMs on loopback; ``qb ingest`` in a subprocess, given only
``QB_SPARK_MASTER=spark://127.0.0.1:PORT``, publishes through them (the master registers the application,
the worker launches its executor) and the partitions are byte-identical to a ``local[2]`` ingest. The
subprocess keeps the test session's own SparkSession (``local[2]``) untouched; the JVMs are stopped by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from marketdata.feed import SkfolioFeed
from marketdata.ingest import ingest_range
from quantbridge.settings import load_settings
from tests.conftest import ROOT, _free_port

pytestmark = pytest.mark.slow

START, END = date(2020, 4, 1), date(2020, 4, 3)


@dataclass(frozen=True)
class SparkCluster:
    url: str
    master_log: Path
    work_dir: Path


def _stop(proc: subprocess.Popen) -> None:
    """End a JVM we started, by its pid (spark-class execs java): SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _wait_for(log: Path, text: str, procs: list[subprocess.Popen], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    pytest.fail(f"Spark standalone: {text!r} not in {log.name} within {timeout_s:.0f} s:\n{tail}")


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    import pyspark

    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    folder = tmp_path_factory.mktemp("spark-cluster")
    url = f"spark://127.0.0.1:{_free_port()}"
    port = url.rsplit(":", 1)[1]
    # No fixed ports besides the master's: web UIs on ephemeral ports, the master's REST server off.
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    }
    commands = {
        "master": [
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--webui-port",
            "0",
        ],
        "worker": [
            "org.apache.spark.deploy.worker.Worker",
            url,
            "--host",
            "127.0.0.1",
            "--cores",
            "1",
            "--memory",
            "1g",
            "--webui-port",
            "0",
            "--work-dir",
            str(folder / "work"),
        ],
    }
    procs: list[subprocess.Popen] = []
    try:
        for (
            name,
            args,
        ) in commands.items():  # both JVMs start together; the worker retries until the master is up
            with (folder / f"{name}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [str(spark_class), *args],
                        cwd=folder,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        # Only the master must be up: the application waits for the worker's executor by itself, so the
        # driver's start overlaps the worker's registration (about 10 s less on 2 cores).
        _wait_for(folder / "master.log", "I have been elected leader", procs, 120)
        yield SparkCluster(url, folder / "master.log", folder / "work")
    finally:
        for proc in reversed(procs):
            _stop(proc)
    assert all(p.poll() is not None for p in procs)


def _files(root: Path) -> dict[str, bytes]:
    prices = root / "prices"
    return {str(p.relative_to(prices)): p.read_bytes() for p in sorted(prices.rglob("*")) if p.is_file()}


def test_ingest_when_qb_spark_master_is_a_standalone_cluster_then_partitions_byte_identical_to_local(
    spark_cluster, spark, redis_server, tmp_path
):
    cluster_lake, local_lake = tmp_path / "cluster-lake", tmp_path / "local-lake"
    env = {
        **os.environ,
        "QB_SPARK_MASTER": spark_cluster.url,
        "QB_LAKE_ROOT": str(cluster_lake),
        "PYSPARK_PYTHON": sys.executable,
    }
    cluster_run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "ingest",
            "--start",
            START.isoformat(),
            "--end",
            END.isoformat(),
            "--json",
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:  # the local[2] reference run, in-process on the test session's SparkSession, meanwhile
        result = ingest_range(
            load_settings({"lake_root": local_lake}), SkfolioFeed(), START, END, spark=spark
        )
        out, err = cluster_run.communicate(timeout=300)
    finally:
        if cluster_run.poll() is None:
            cluster_run.kill()
            cluster_run.wait()
    assert cluster_run.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["published"] == 3 and summary["quarantined"] == []
    assert spark.sparkContext.master == "local[2]"  # the session's own session was not disturbed
    assert len(result.published) == 3

    cluster_files, local_files = _files(cluster_lake), _files(local_lake)
    assert sorted(cluster_files) == [f"date=2020-04-0{d}/part-00000.snappy.parquet" for d in (1, 2, 3)]
    assert cluster_files == local_files  # byte for byte
    assert "Registered app quantbridge" in spark_cluster.master_log.read_text()
    executors = [p for p in spark_cluster.work_dir.glob("app-*/*") if p.is_dir()]
    assert executors, "the worker launched no executor for the application"
