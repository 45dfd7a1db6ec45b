"""One VaR code path: the live VaR on date D (the sensor's call, a real VarSensor.refresh on the test
redis-server, ``qb var --date``) equals the backtest's forecast for D's book from the same history, on a
real lake (Spark + GX ingest) holding a quarantined date inside the forecast window."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date

import pandas as pd
import pytest

from app.cli.main import main
from marketdata.feed import FileFeed, SkfolioFeed
from marketdata.ingest import ingest_range
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import load_settings
from risk.backtest import forecast_history
from risk.portfolio_var import portfolio_var, recent_closes
from risk.sensor import SensorConfig, VarSensor
from risk.var import VarSpec

SCHEMA = RedisSchema("qb")
HOLE = date(2019, 6, 3)  # its batch is quarantined: no return may span it
D = date(2019, 7, 31)  # the valuation date: the window of 100 returns before it holds the hole
WINDOW = 100
BOOK = {"AAPL": 500.0, "MSFT": -800.0, "XOM": 1000.0, "JPM": 300.0}


@pytest.fixture(scope="module")
def lakes(tmp_path_factory, spark):
    """A real lake to 2019-08-30 with 2019-06-03 quarantined (the backtest's), and a copy of it as it stood
    on D, its later partitions removed (the sensor's)."""
    later = tmp_path_factory.mktemp("lake-later")
    settings = load_settings({"lake_root": later})
    ingest_range(settings, SkfolioFeed(), date(2019, 1, 2), date(2019, 5, 31), spark=spark)
    bad = tmp_path_factory.mktemp("bad") / "bad.csv"
    day = SkfolioFeed().fetch(HOLE, HOLE)
    day["close"] = day["close"].where(day["ticker"] != "AAPL", -1.0)  # a non-positive close: quarantined
    day.to_csv(bad, index=False)
    assert [str(d) for d in ingest_range(settings, FileFeed(bad), HOLE, HOLE, spark=spark).quarantined] == [
        HOLE.isoformat()
    ]
    ingest_range(settings, SkfolioFeed(), date(2019, 6, 4), date(2019, 8, 30), spark=spark)
    on_d = tmp_path_factory.mktemp("lake-on-d") / "lake"
    shutil.copytree(later, on_d)
    for day in Lake(on_d).price_dates():
        if day > D:
            shutil.rmtree(Lake(on_d).price_partition(day))
    return Lake(on_d), Lake(later)


@pytest.fixture(scope="module")
def backtest_row(lakes):
    """The backtest's forecast for D's book (shares held constant) from the later lake's whole history."""
    _, later = lakes
    spec = VarSpec(model=load_settings().var_model, window=WINDOW)  # the sensor's default model
    history = forecast_history(later.read_close_matrix(), BOOK, spec, quarantined=later.quarantined_dates())
    return history.loc[D]


def test_live_var_when_sensor_refreshes_on_d_then_it_equals_the_backtest_forecast_for_d(
    lakes, backtest_row, redis_client
):
    on_d, _ = lakes
    redis_client.hset(SCHEMA.key("positions"), mapping=BOOK)
    config = SensorConfig.from_settings(  # the default model, on the equity book the backtest holds
        load_settings(), limit=1e12, window=WINDOW, scope="equities"
    )
    sensor = VarSensor(config, on_d, SCHEMA, lambda: redis_client)

    figures = sensor.refresh(redis_client)

    assert figures["as_of"] == D.isoformat() and figures["model"] == load_settings().var_model
    assert abs(figures["var"] / backtest_row["var"] - 1) < 1e-9
    assert abs(figures["cvar"] / backtest_row["cvar"] - 1) < 1e-9
    assert float(redis_client.hget(SCHEMA.key("risk_current"), "var")) == pytest.approx(
        figures["var"], rel=1e-9
    )


def test_live_var_when_the_sensors_function_runs_on_d_then_it_equals_the_backtest_and_needs_the_quarantine(
    lakes, backtest_row
):
    on_d, _ = lakes
    closes = recent_closes(on_d, WINDOW)

    model = load_settings().var_model
    live = portfolio_var(closes, BOOK, quarantined=on_d.quarantined_dates(), model=model, window=WINDOW)
    blind = portfolio_var(closes, BOOK, model=model, window=WINDOW)  # the same call, the quarantine ignored

    assert closes.index[-1] == D and on_d.quarantined_dates() == [HOLE]
    assert abs(live.var / backtest_row["var"] - 1) < 1e-9 and abs(live.cvar / backtest_row["cvar"] - 1) < 1e-9
    assert live.observations == WINDOW
    assert abs(blind.var / backtest_row["var"] - 1) > 1e-6  # the test can tell a window that spans the hole


def _run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json", "--quiet"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}


def test_qb_var_backtest_when_positions_and_forecasts_given_then_csv_rows_equal_qb_var_on_that_date(
    lakes, monkeypatch, capsys, tmp_path
):
    _, later = lakes
    monkeypatch.setenv("QB_LAKE_ROOT", str(later.root))
    book = tmp_path / "book.csv"
    pd.Series(BOOK, name="quantity").rename_axis("ticker").to_csv(book)
    csv_path = tmp_path / "out" / "forecasts.csv"

    code, out = _run_json(
        capsys,
        "var",
        "backtest",
        "--positions",
        str(book),
        "--model",
        "filtered_historical_portfolio",
        "--window",
        str(WINDOW),
        "--forecasts",
        str(csv_path),
    )

    assert code == 0 and out["forecasts"] == str(csv_path) and out["book"].endswith("(shares held constant)")
    assert [m["model"] for m in out["models"]] == ["filtered_historical_portfolio"] and out[
        "hold"
    ] == "shares"
    with csv_path.open() as f:
        rows = {r["date"]: r for r in csv.DictReader(f)}
    assert list(next(iter(rows.values()))) == [
        "model",
        "date",
        "loss_date",
        "var",
        "cvar",
        "volatility",
        "loss",
        "exception",
    ]
    assert len(rows) == out["models"][0]["observations"]
    assert sum(r["exception"] == "True" for r in rows.values()) == out["models"][0]["exceptions"]
    code, live = _run_json(
        capsys,
        "var",
        "--scope",
        "equities",
        "--positions",
        str(book),
        "--model",
        "filtered_historical_portfolio",
        "--window",
        str(WINDOW),
        "--date",
        D.isoformat(),
    )
    assert code == 0 and live["as_of"] == D.isoformat()
    assert abs(live["var"] / float(rows[D.isoformat()]["var"]) - 1) < 1e-9
    assert abs(live["cvar"] / float(rows[D.isoformat()]["cvar"]) - 1) < 1e-9
