"""PySpark side of ingestion: one session per process, partitioned Parquet writes into the lake.

The session runs ``local[*]`` by default; ``QB_SPARK_MASTER`` points it at a cluster with no code change.
Writes overwrite exactly the partitions present in the data (dynamic partition overwrite), so re-running
a date replaces that date and touches no other. Each partition is written as one file with a fixed
name, sorted by ticker, so a re-run leaves byte-identical content.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantbridge.lake import Lake

_LOCK = threading.Lock()
_SESSIONS: dict[str, Any] = {}

PART_NAME = "part-00000.snappy.parquet"

# parquet-mr lists each column's encodings from a HashSet of enums, whose order follows identity hash
# codes: a random footer byte order per JVM. A constant identity hash makes the order the insertion
# order, so the same data gives the same bytes (the cost is slower identity-hashed maps, negligible at
# one file per date).
_DETERMINISTIC_JVM = "-XX:+UnlockExperimentalVMOptions -XX:hashCode=2"


def get_spark(master: str = "local[*]", app_name: str = "quantbridge") -> Any:
    """A shared SparkSession for ``master`` (created once per process; 6-7 s on a cold JVM)."""
    with _LOCK:
        session = _SESSIONS.get(master)
        if session is not None and session.sparkContext._jsc is not None:
            return session
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # py4j logs from __del__ at interpreter exit, after stderr may be closed: keep it quiet.
        logging.getLogger("py4j").setLevel(logging.WARNING)
        os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
        from pyspark.sql import SparkSession

        builder = (
            SparkSession.builder.master(master)
            .appName(app_name)
            .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.parquet.compression.codec", "snappy")
            # The raw local filesystem writes no .crc side files, so partitions hold only data.
            .config("spark.hadoop.fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
            .config("spark.hadoop.fs.file.impl.disable.cache", "true")
            .config("spark.driver.memory", "2g")
            .config("spark.driver.extraJavaOptions", _DETERMINISTIC_JVM)
            .config("spark.executor.extraJavaOptions", _DETERMINISTIC_JVM)
        )
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        _SESSIONS[master] = session
        return session


def stop_spark() -> None:
    """Stop every session this process started."""
    with _LOCK:
        for session in _SESSIONS.values():
            session.stop()
        _SESSIONS.clear()


def write_prices(spark: Any, sources: Sequence[Path], lake: Lake) -> int:
    """Read staged batch files and write them to ``prices/date=D/`` in one Spark job.

    Parameters
    ----------
    sources: Parquet files with columns date (date), ticker (string), close (double).

    Returns
    -------
    Number of rows written.
    """
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    # Rows and dates from the staged files themselves (small, local): two Spark jobs fewer per write.
    staged = [pq.read_table(str(p), columns=["date"]).column("date").to_pylist() for p in sources]
    dates = sorted({d for column in staged for d in column if d is not None})
    rows = sum(len(column) for column in staged)
    frame = spark.read.parquet(*[str(p) for p in sources]).select(
        F.col("date").cast("date").alias("date"),
        F.col("ticker").cast("string"),
        F.col("close").cast("double"),
    )
    # One date (the nightly run) needs no shuffle to land in one file; several are shuffled by date.
    frame = frame.coalesce(1) if len(dates) <= 1 else frame.repartition("date")
    (
        frame.sortWithinPartitions("date", "ticker")
        .write.mode("overwrite")
        .partitionBy("date")
        .parquet(str(lake.prices))
    )
    _normalise_names(lake, dates)
    return rows


def _normalise_names(lake: Lake, dates: Sequence[Any]) -> None:
    """Give each written partition's single data file a fixed name (Spark's carry a random job id)."""
    for day in dates:
        folder = lake.price_partition(day)
        files = sorted(folder.glob("part-*.parquet"))
        if len(files) == 1 and files[0].name != PART_NAME:
            files[0].replace(folder / PART_NAME)
        elif len(files) > 1:
            raise RuntimeError(f"partition {folder} holds {len(files)} data files; expected exactly one")
