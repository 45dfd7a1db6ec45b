"""The nightly report built from a small real lake (Spark + GX ingest, a Dask stress run, the execution
worker's fills on the test redis-server, the VaR sensor's history), and with its inputs missing."""

from __future__ import annotations

import json
import threading
from datetime import date

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from app.cli.main import main
from execution.worker import ExecutionWorker, lake_marks
from marketdata.feed import FileFeed, SkfolioFeed
from marketdata.ingest import ingest_range
from marketdata.reference import load_reference_tables
from quantbridge.lake import Lake
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import load_settings
from reporting import RedisSnapshot, build_nightly_report
from reporting.nightly import SECTIONS
from risk.ledger import write_partition
from risk.sensor import SensorConfig, VarSensor
from risk.stress_night import load_inputs, run_stress
from tests.risk_support import publish_fresh_risk

DAY = date(2020, 6, 30)
SCHEMA = RedisSchema("qb")
BOOK = {"AAPL": 300.0, "MSFT": 200.0, "XOM": 500.0, "JPM": 250.0}


@pytest.fixture(scope="module")
def report_lake(tmp_path_factory, spark):
    """About 185 real trading days, the reference tables, one quarantined batch and a stress partition."""
    root = tmp_path_factory.mktemp("report-lake")
    settings = load_settings({"lake_root": root})
    ingest_range(settings, SkfolioFeed(), date(2019, 10, 1), DAY, spark=spark)
    lake = Lake(root)
    load_reference_tables(lake)
    bad = tmp_path_factory.mktemp("bad") / "bad.csv"
    closes = lake.read_close_matrix(DAY, DAY).iloc[0]
    rows = [("2020-07-01", t, -1.0 if t == "AAPL" else float(c)) for t, c in closes.items()]
    pd.DataFrame(rows, columns=["date", "ticker", "close"]).to_csv(bad, index=False)
    result = ingest_range(settings, FileFeed(bad), date(2020, 7, 1), date(2020, 7, 1), spark=spark)
    assert [str(d) for d in result.quarantined] == ["2020-07-01"]
    write_partition(lake, DAY, run_stress(load_inputs(lake, DAY, BOOK), ["esg", "historical"], paths=1_000))
    return root


@pytest.fixture
def live_redis(redis_client, report_lake):
    """Positions and fills from the real worker, two refreshes of the real VaR sensor, an ingest summary."""
    marks = lake_marks(Lake(report_lake))
    publish_fresh_risk(redis_client, SCHEMA)
    worker = ExecutionWorker(redis_client, SCHEMA, "r1", list(BOOK), esg={}, marks=marks)
    for i, (ticker, qty) in enumerate(BOOK.items()):
        redis_client.xadd(
            SCHEMA.key("orders"),
            SubmitOrder(
                order_id=f"o{i}",
                ts=f"{DAY.isoformat()}T15:00:00+00:00",
                strategy="t",
                ticker=ticker,
                side="BUY",
                quantity=qty,
                reference_price=marks[ticker],
            ).to_dict(),
        )
    worker.run(threading.Event(), block_ms=50, max_orders=len(BOOK))
    sensor = VarSensor(SensorConfig(limit=1e12, window=100), Lake(report_lake), SCHEMA, lambda: redis_client)
    sensor.refresh(redis_client)
    sensor.refresh(redis_client)
    redis_client.hset(SCHEMA.key("ingest_last"), mapping={"last_date": DAY.isoformat(), "rows": "20"})
    return redis_client


def _synthetic_run(lake: Lake) -> None:
    """Stand-in samples in the wide layout (one column per ticker), until the synthetic DAG writes real
    ones."""
    folder = lake.partition("synthetic", "run", "2020-06-30T00-00")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    pd.DataFrame(rng.standard_t(4, size=(400, 3)) * 0.015, columns=["AAPL", "MSFT", "XOM"]).to_parquet(
        folder / "samples.parquet"
    )


def _independent_exceptions(lake: Lake, positions: dict[str, float], window: int, days: int) -> int:
    """Book-level filtered historical simulation written out again: the book (shares) valued at each date's
    close, its P&L on the past ``window`` returns rescaled by EWMA(0.94) volatility started at the window's
    mean square, the 99% quantile of that loss against the next day's loss."""
    assert not [
        d for d in lake.quarantined_dates() if d <= DAY
    ]  # so plain consecutive returns are the lake's
    closes = lake.read_close_matrix(end=DAY).loc[:, list(positions)]
    shares = pd.Series(positions)
    returns = closes.pct_change(fill_method=None).iloc[1:].to_numpy()
    hits = []
    for j in range(window, len(returns)):  # return j runs from closes.index[j] to the next date
        money = (shares * closes.iloc[j]).to_numpy()
        pnl = returns[j - window : j] @ money
        level = [np.mean(pnl**2)]
        for x in pnl:
            level.append(0.94 * level[-1] + 0.06 * x * x)
        sigma = np.sqrt(level)
        var = np.quantile(-(pnl / sigma[:-1] * sigma[-1]), 0.99, method="weibull")  # the unbiased default
        hits.append(int(-(returns[j] @ money) > var))
    return sum(hits[-days:])


def test_report_when_lake_and_redis_hold_everything_then_every_section_has_a_valid_picture(
    report_lake, live_redis
):
    lake = Lake(report_lake)
    _synthetic_run(lake)
    path = build_nightly_report(lake, DAY, live_redis)
    assert path == lake.partition("reports", "date", DAY.isoformat()) / "report.html"
    summary = json.loads((path.parent / "report.json").read_text())
    page = path.read_text()
    for key in SECTIONS:
        section = summary["sections"][key]
        assert section["note"] == "", (key, section["note"])
        png = path.parent / section["png"]
        with Image.open(png) as image:
            image.verify()
            assert image.format == "PNG"
        assert f"src='{section['png']}'" in page
    assert "no data yet" not in page

    var = summary["sections"]["var"]["figures"]
    positions = {k: float(v) for k, v in live_redis.hgetall(SCHEMA.key("positions")).items()}
    assert var["book"] == "Redis positions" and var["window"] == 60
    assert var["exceptions"] == _independent_exceptions(lake, positions, var["window"], 250)
    assert (
        var["exceptions"] == len(var["exception_dates"]) and var["exceptions"] > 0
    )  # March 2020 is in range
    assert var["live_points"] == 2
    venues = summary["sections"]["execution"]["figures"]["venues"]
    fills = [f for _, f in live_redis.xrange(SCHEMA.key("fills"))]
    assert sum(v["fees"] for v in venues.values()) == pytest.approx(sum(float(f["fee"]) for f in fills))
    assert summary["sections"]["quality"]["figures"]["rules"] == {}  # 2020-07-01 is after the report date
    stress = summary["sections"]["stress"]["figures"]
    assert stress["positions"] == len(BOOK) and stress["worst"][0]["change"] < 0


def test_report_when_rerun_for_the_same_date_then_files_are_byte_identical(report_lake, live_redis):
    lake = Lake(report_lake)
    day = date(2020, 7, 1)  # the quarantined date: its quality section lists the rule
    first = build_nightly_report(lake, day, live_redis)
    before = {p.name: p.read_bytes() for p in first.parent.iterdir()}
    again = build_nightly_report(lake, day, live_redis)
    assert again == first
    assert {p.name: p.read_bytes() for p in again.parent.iterdir()} == before
    quality = json.loads((first.parent / "report.json").read_text())["sections"]["quality"]["figures"]
    assert (
        quality["rules"] == {"non_positive": 1, "outlier": 1} and quality["day"] == "quarantined"
    )  # -1 is both


def test_report_when_inputs_missing_then_each_section_says_why_and_draws_nothing(tmp_path):
    path = build_nightly_report(Lake(tmp_path / "empty"), DAY, None)
    summary = json.loads((path.parent / "report.json").read_text())
    for key in SECTIONS:
        assert summary["sections"][key]["note"].startswith("no data yet: "), key
        assert summary["sections"][key]["png"] == ""
    assert list(path.parent.glob("*.png")) == []
    assert "no stress ledger partition" in summary["sections"]["stress"]["note"]
    assert "no Redis client given" in summary["sections"]["execution"]["note"]


def test_report_when_redis_down_then_lake_sections_built_and_redis_sections_noted(report_lake):
    import redis

    from tests.conftest import _free_port

    down = redis.Redis(port=_free_port(), socket_connect_timeout=0.5, decode_responses=True)
    path = build_nightly_report(Lake(report_lake), DAY, down)
    summary = json.loads((path.parent / "report.json").read_text())
    assert summary["redis"].startswith("Redis not reachable")
    assert summary["sections"]["var"]["figures"]["book"].startswith("demo equal-weight book")
    assert summary["sections"]["stress"]["png"] == "stress.png"
    assert summary["sections"]["execution"]["note"].startswith("no data yet: Redis not reachable")


def test_report_when_lake_too_short_for_a_forecast_then_var_note_names_the_shortfall(report_lake, tmp_path):
    snapshot = RedisSnapshot(positions={"AAPL": 10.0})
    path = build_nightly_report(Lake(report_lake), date(2019, 11, 29), snapshot)
    note = json.loads((path.parent / "report.json").read_text())["sections"]["var"]["note"]
    assert note.startswith("no data yet: lake history=") and "at least 80" in note


def test_qb_report_when_date_given_then_prints_path_and_bad_date_exits_2(
    report_lake, redis_client, monkeypatch, capsys
):
    monkeypatch.setenv("QB_LAKE_ROOT", str(report_lake))
    assert main(["report", "--date", DAY.isoformat(), "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"] == str(
        Lake(report_lake).partition("reports", "date", DAY.isoformat()) / "report.html"
    )
    assert main(["report", "--date", DAY.isoformat(), "-q"]) == 0
    assert out["report"] in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["report", "--date", "2020-13-01"])
    assert info.value.code == 2
    assert "--date='2020-13-01' is invalid" in capsys.readouterr().err
