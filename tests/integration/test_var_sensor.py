"""The VaR sensor against a real redis-server and a real lake: kill-switch round trip with hysteresis (each
change audited), an operator's switch left alone, fail-closed refreshes (no heartbeat, error counted and
alerted, the loop keeps trying and recovers), a Redis restart in the middle of the loop, metrics, SIGTERM,
and the Airflow operator (those two from the settings: the consolidated scope). The consolidated book:
per-class components that add up, a VaR that moves with qb:marks, fail-closed reference data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
import redis

from app.services import RedisService
from marketdata.feed import SkfolioFeed
from marketdata.ingest import ingest_range
from quantbridge import kill_switch
from quantbridge.lake import Lake
from quantbridge.redis_client import connect
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import load_settings
from risk.sensor import SensorConfig, SensorMetrics, VarSensor
from tests.conftest import ROOT, _free_port
from tests.risk_book_support import write_reference

SCHEMA = RedisSchema("qb")


@pytest.fixture(scope="module")
def priced_lake(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("sensor-lake")
    settings = load_settings({"lake_root": root})
    ingest_range(settings, SkfolioFeed(), date(2019, 1, 2), date(2019, 12, 31), spark=spark)
    write_reference(Lake(root))  # the bond book, curve and FX table: the settings' consolidated scope
    return root


@pytest.fixture
def small_lake(tmp_path):
    """80 days of seeded random-walk closes for AAPL and MSFT and a constant FLAT, written as the lake's
    partitions directly (no Spark): enough for a 60-return window."""
    lake = Lake(tmp_path / "small-lake")
    days = pd.bdate_range("2024-01-02", periods=80).date
    rng = np.random.default_rng(7)
    walks = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (len(days), 2)), axis=0))
    for i, day in enumerate(days):
        part = lake.price_partition(day)
        part.mkdir(parents=True)
        closes = [walks[i, 0], walks[i, 1], 50.0]
        frame = pd.DataFrame({"ticker": ["AAPL", "MSFT", "FLAT"], "close": closes})
        frame.to_parquet(part / "part-00000.parquet")
    return lake


def _sensor(priced_lake, client, limit, **kw):
    kw.setdefault("stale_after_s", 60.0)
    kw.setdefault("interval_s", 0.01)
    kw.setdefault("window", 120)
    config = SensorConfig(limit=limit, **kw)
    alerts = []
    lake = priced_lake if isinstance(priced_lake, Lake) else Lake(priced_lake)
    sensor = VarSensor(config, lake, SCHEMA, lambda: client, on_alert=alerts.append, metrics=SensorMetrics())
    return sensor, alerts


def _book(client, scale=1.0):
    client.hset(
        SCHEMA.key("positions"), mapping={"AAPL": 500 * scale, "MSFT": 800 * scale, "XOM": 1000 * scale}
    )


def test_sensor_when_var_breaches_then_kill_switch_set_and_cleared_only_below_hysteresis(
    priced_lake, redis_client
):
    _book(redis_client)
    probe, _ = _sensor(priced_lake, redis_client, limit=1e12)
    var = probe.refresh(redis_client)["var"]
    assert var > 0
    pubsub = redis_client.pubsub()
    pubsub.subscribe(SCHEMA.key("alerts"))
    pubsub.get_message(timeout=1)

    sensor, alerts = _sensor(priced_lake, redis_client, limit=var * 0.5, clear_ratio=0.8)
    figures = sensor.refresh(redis_client)
    assert figures["kill_switch"] is True
    reason = json.loads(redis_client.get(SCHEMA.key("kill_switch")))
    assert reason["reason"] == "VAR_LIMIT_BREACHED" and reason["var"] == pytest.approx(var)
    assert json.loads(pubsub.get_message(timeout=2)["data"])["event"] == "kill_switch_set"
    assert [a["event"] for a in alerts] == ["kill_switch_set"]

    _book(redis_client, scale=0.45)  # VaR now 0.45 x var: under the limit (0.5) but above 0.8 x limit (0.4)
    assert sensor.refresh(redis_client)["kill_switch"] is True
    _book(redis_client, scale=0.3)  # under the clear level
    assert sensor.refresh(redis_client)["kill_switch"] is False
    assert not redis_client.exists(SCHEMA.key("kill_switch"))
    assert json.loads(pubsub.get_message(timeout=2)["data"])["event"] == "kill_switch_cleared"
    current = redis_client.hgetall(SCHEMA.key("risk_current"))
    assert float(current["var"]) == pytest.approx(0.3 * var, rel=1e-6) and current["as_of"] == "2019-12-31"
    assert redis_client.xlen(SCHEMA.key("risk_history")) == 4
    assert 0 < redis_client.pttl(SCHEMA.heartbeat("var_sensor")) <= 60_000  # the staleness bound
    assert _audit_kinds(redis_client) == ["kill_switch_set", "kill_switch_cleared"]
    pubsub.close()


def _audit_kinds(client) -> list[str]:
    return [fields["kind"] for _id, fields in client.xrange(SCHEMA.key("audit"))]


def test_sensor_when_operator_set_the_switch_then_it_is_not_cleared_by_the_sensor(small_lake, redis_client):
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 5, "MSFT": 5})
    assert kill_switch.engage(redis_client, SCHEMA, by="operator:alice", reason="MANUAL: desk review")
    sensor, alerts = _sensor(small_lake, redis_client, limit=1e9, window=60)  # VaR far below the clear level

    figures = sensor.refresh(redis_client)

    assert figures["kill_switch"] is True and alerts == []
    assert kill_switch.read(redis_client, SCHEMA)["by"] == "operator:alice"
    assert _audit_kinds(redis_client) == ["kill_switch_set"]  # the operator's; nothing cleared


def test_sensor_when_operator_takes_over_the_sensors_switch_then_the_sensor_no_longer_clears_it(
    small_lake, redis_client
):
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 500, "MSFT": 500})
    probe, _ = _sensor(small_lake, redis_client, limit=1e12, window=60)
    var = probe.refresh(redis_client)["var"]
    sensor, alerts = _sensor(small_lake, redis_client, limit=var * 0.5, window=60)
    assert sensor.refresh(redis_client)["kill_switch"] is True
    assert kill_switch.read(redis_client, SCHEMA)["by"] == "var_sensor"
    assert kill_switch.engage(redis_client, SCHEMA, by="operator:bob", reason="MANUAL: keep halted")
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 1, "MSFT": 1})  # far under the clear level

    figures = sensor.refresh(redis_client)

    assert figures["kill_switch"] is True
    assert kill_switch.read(redis_client, SCHEMA)["by"] == "operator:bob"
    assert [a["event"] for a in alerts] == ["kill_switch_set"]
    assert _audit_kinds(redis_client) == ["kill_switch_set", "kill_switch_set"]


def test_sensor_when_no_positions_then_zero_var_published(priced_lake, redis_client):
    sensor, _ = _sensor(priced_lake, redis_client, limit=1.0)
    figures = sensor.refresh(redis_client)
    assert figures["var"] == 0.0 and figures["positions"] == 0 and figures["kill_switch"] is False


def _wait_for(condition, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_sensor_when_refresh_succeeds_then_heartbeat_written_last_with_the_staleness_bound_as_ttl(
    small_lake, redis_client
):
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 100, "MSFT": 50})
    sensor, _ = _sensor(small_lake, redis_client, limit=1e9, window=60, stale_after_s=45.0)
    started = time.time()

    figures = sensor.refresh(redis_client)

    beat = redis_client.get(SCHEMA.heartbeat("var_sensor"))
    assert beat == figures["updated_at"] == redis_client.hget(SCHEMA.key("risk_current"), "updated_at")
    assert datetime.fromisoformat(beat).tzinfo is not None  # ISO-8601 UTC, as the worker parses it
    assert 44_000 < redis_client.pttl(SCHEMA.heartbeat("var_sensor")) <= 45_000
    assert sensor.metrics.stale_after._value.get() == 45.0
    assert sensor.metrics.last._value.get() >= started and sensor.metrics.errors._value.get() == 0


def test_sensor_when_kill_switch_decision_fails_then_figures_landed_but_no_heartbeat(
    small_lake, redis_client
):
    # Arrange: a kill-switch key of the wrong type, so reading the switch fails after the figures are written.
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 100})
    redis_client.hset(SCHEMA.key("kill_switch"), "not", "a string")
    sensor, _ = _sensor(small_lake, redis_client, limit=1e9, window=60)

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        sensor.refresh(redis_client)

    assert redis_client.exists(SCHEMA.key("risk_current"))
    assert not redis_client.exists(SCHEMA.heartbeat("var_sensor"))


@pytest.mark.parametrize(
    "book",
    [{"AAPL": 100, "ZZZZ": 10}, {"FLAT": 1000}, {"AAPL": "nan"}],
    ids=["ticker-not-in-lake", "zero-var", "nan-quantity"],
)
def test_sensor_when_book_cannot_be_valued_then_refresh_fails_closed_without_figures_or_heartbeat(
    small_lake, redis_client, book
):
    redis_client.hset(SCHEMA.key("positions"), mapping=book)
    sensor, alerts = _sensor(small_lake, redis_client, limit=1e9, window=60, max_backoff_s=0.01)

    done = sensor.run(threading.Event(), max_refreshes=1)

    assert done == 0 and sensor.metrics.errors._value.get() == 1
    assert not redis_client.exists(SCHEMA.heartbeat("var_sensor"))
    assert not redis_client.exists(SCHEMA.key("risk_current"))  # never var=0 for a non-empty book
    assert redis_client.xlen(SCHEMA.key("risk_history")) == 0
    assert [a["event"] for a in alerts] == ["var_sensor_error"]


def test_sensor_when_lake_has_no_prices_then_every_refresh_is_counted_alerted_and_no_heartbeat(
    redis_client, tmp_path
):
    _book(redis_client)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(SCHEMA.key("alerts"))
    pubsub.get_message(timeout=1)
    sensor, alerts = _sensor(Lake(tmp_path / "empty"), redis_client, limit=1e9, max_backoff_s=0.01)

    done = sensor.run(threading.Event(), max_refreshes=2)

    assert done == 0 and sensor.metrics.errors._value.get() == 2
    assert not redis_client.exists(SCHEMA.heartbeat("var_sensor"))
    assert [(a["event"], a["consecutive"]) for a in alerts] == [
        ("var_sensor_error", 1),
        ("var_sensor_error", 2),
    ]
    assert alerts[0]["error"].startswith("RuntimeError: no prices in the lake")
    published = json.loads(pubsub.get_message(timeout=2)["data"])
    assert published["event"] == "var_sensor_error" and published["error"] == alerts[0]["error"]
    assert datetime.fromisoformat(published["at"]).tzinfo is not None
    pubsub.close()


def test_sensor_when_refresh_keeps_failing_then_loop_keeps_trying_and_recovers_once_fixed(
    small_lake, redis_client
):
    # Arrange: a held ticker the lake does not have; the loop runs until stopped.
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 100, "ZZZZ": 10})
    sensor, alerts = _sensor(
        small_lake, redis_client, limit=1e9, window=60, interval_s=0.05, max_backoff_s=0.05
    )
    stop = threading.Event()
    loop = threading.Thread(target=sensor.run, args=(stop,))
    loop.start()
    try:
        # Act 1: it fails again and again, and stays alive.
        assert _wait_for(lambda: sensor.metrics.errors._value.get() >= 3)
        assert loop.is_alive()
        assert not redis_client.exists(SCHEMA.heartbeat("var_sensor"))
        # Act 2: the cause goes away.
        redis_client.hdel(SCHEMA.key("positions"), "ZZZZ")
        assert _wait_for(lambda: redis_client.exists(SCHEMA.heartbeat("var_sensor")))
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()
    current = redis_client.hgetall(SCHEMA.key("risk_current"))
    assert float(current["var"]) > 0 and current["positions"] == "1"
    assert len(alerts) >= 3 and {a["event"] for a in alerts} == {"var_sensor_error"}
    assert "ZZZZ" in alerts[0]["error"]


def test_sensor_when_stopped_during_error_backoff_then_loop_ends_at_once(redis_client, tmp_path):
    _book(redis_client)
    stop = threading.Event()
    config = SensorConfig(limit=1e9, interval_s=0.01, max_backoff_s=60.0)
    sensor = VarSensor(
        config, Lake(tmp_path / "empty"), SCHEMA, lambda: redis_client, on_alert=lambda _alert: stop.set()
    )  # SIGTERM arriving during the first failure
    started = time.monotonic()

    done = sensor.run(stop)

    assert done == 0 and time.monotonic() - started < 0.5  # did not sit out the 0.5 s back-off


def test_sensor_when_alert_hook_raises_or_redis_unreachable_then_the_loop_survives(tmp_path):
    def broken_hook(alert):
        raise RuntimeError("pager down")

    def no_redis():
        raise ValueError("redis_url is malformed")

    config = SensorConfig(limit=1e9, interval_s=0.01, max_backoff_s=0.01)
    metrics = SensorMetrics()
    sensor = VarSensor(config, Lake(tmp_path), SCHEMA, no_redis, on_alert=broken_hook, metrics=metrics)

    done = sensor.run(threading.Event(), max_refreshes=2)

    assert done == 0 and metrics.errors._value.get() == 2


def test_sensor_when_redis_restarts_mid_loop_then_it_reconnects_and_keeps_refreshing(priced_lake, tmp_path):
    settings = load_settings({"redis_url": f"redis://127.0.0.1:{_free_port()}/0", "services_dir": tmp_path})
    service = RedisService(settings)
    service.start()
    try:
        client = connect(settings)
        _book(client)
        client.close()
        config = SensorConfig(limit=1e12, interval_s=0.05, window=120, max_backoff_s=0.2)
        metrics = SensorMetrics()
        sensor = VarSensor(config, Lake(priced_lake), SCHEMA, lambda: connect(settings), metrics=metrics)
        stop = threading.Event()
        loop = threading.Thread(target=sensor.run, args=(stop,))
        loop.start()
        time.sleep(0.5)
        service.stop()
        time.sleep(0.6)  # the loop is now backing off
        service.start()  # AOF brings the positions back
        client = connect(settings)
        deadline = time.monotonic() + 10
        before = client.xlen(SCHEMA.key("risk_history"))
        while client.xlen(SCHEMA.key("risk_history")) <= before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        loop.join(5)
        assert not loop.is_alive()
        assert client.xlen(SCHEMA.key("risk_history")) > before + 2
        assert metrics.reconnects._value.get() >= 1
        client.close()
    finally:
        service.stop()


def test_qb_var_sensor_when_sigterm_then_stops_cleanly_and_served_metrics(priced_lake, redis_client):
    _book(redis_client)
    port = _free_port()
    env = {**os.environ, "QB_LAKE_ROOT": str(priced_lake), "QB_VAR_WINDOW": "120", "QB_VAR_LIMIT": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "var-sensor",
            "--interval",
            "0.2",
            "--metrics-port",
            str(port),
            "--json",
            "--quiet",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not redis_client.exists(SCHEMA.key("kill_switch")) and time.monotonic() < deadline:
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        assert "qb_var " in text and "qb_kill_switch 1.0" in text and "qb_var_limit 1.0" in text
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["refreshes"] >= 1


def test_realtime_risk_dag_when_run_briefly_then_sensor_task_alerts_and_sets_kill_switch(
    airflow_db, priced_lake, redis_client, monkeypatch
):
    from app.cli.backfill import _task_states, load_dag

    monkeypatch.setenv("QB_LAKE_ROOT", str(priced_lake))
    monkeypatch.setenv("QB_VAR_WINDOW", "120")
    port = _free_port()
    monkeypatch.setenv("QB_VAR_METRICS_PORT", str(port))
    _book(redis_client)
    scraped = []

    def scrape() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not scraped:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as reply:
                    text = reply.read().decode()
                    if "qb_kill_switch 1.0" in text:
                        scraped.append(text)
            except OSError:
                time.sleep(0.05)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    from quantbridge.messages import SubmitOrder
    from strategy.rebalance import publish_orders

    sell = SubmitOrder(
        order_id="rt-1",
        ts="2026-01-05T14:30:00+00:00",
        strategy="t",
        ticker="AAPL",
        side="SELL",
        quantity=10.0,
        reference_price=70.0,
    )  # risk-reducing: allowed even under the kill switch
    publish_orders(redis_client, SCHEMA, [sell], ["{}"])  # signed, as the worker requires
    dag = load_dag("realtime_risk")
    run = dag.test(
        logical_date=datetime(2026, 1, 5, tzinfo=UTC),
        run_conf={
            "duration_s": 3,
            "interval_s": 0.2,
            "limit": 1,
        },  # the first consolidated refresh: ~1 s cold
    )
    assert str(run.state) == "success", _task_states("realtime_risk", run.run_id)
    assert redis_client.exists(SCHEMA.key("kill_switch"))
    assert redis_client.xlen(SCHEMA.key("risk_history")) >= 2
    assert _task_states("realtime_risk", run.run_id)["execution_worker"] == "success"
    assert json.loads(redis_client.hget(SCHEMA.key("order_state"), "rt-1"))["state"] == "FILLED"
    assert float(redis_client.hget(SCHEMA.key("positions"), "AAPL")) == 490
    scraper.join(65)
    assert scraped and "qb_var_limit 1.0" in scraped[0]  # the task served /metrics while it ran


def test_sensor_when_redis_refuses_its_password_then_run_stops_with_a_clear_error(small_lake, redis_server):
    from quantbridge.errors import ServiceError

    def wrong_password():
        return redis.Redis(port=redis_server, password="wrong", decode_responses=True, retry=None)

    sensor = VarSensor(SensorConfig(limit=1e9), Lake(small_lake), SCHEMA, wrong_password)
    with pytest.raises(ServiceError, match="QB_REDIS_PASSWORD"):
        sensor.run(threading.Event(), max_refreshes=3)


def _consolidated(lake, client, **kw):
    kw.setdefault("paths", 20_000)
    return _sensor(lake, client, limit=1e12, window=60, scope="consolidated", **kw)


@pytest.fixture
def book_lake(small_lake):
    write_reference(small_lake)
    return small_lake


def test_consolidated_sensor_when_refreshed_then_per_class_components_add_up_to_the_totals(
    book_lake, redis_client
):
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 50_000, "MSFT": 30_000})
    sensor, alerts = _consolidated(book_lake, redis_client)

    figures = sensor.refresh(redis_client)

    current = redis_client.hgetall(SCHEMA.key("risk_current"))
    parts = [float(current[f"var_{c}"]) for c in ("equity", "rates", "fx")]
    tails = [float(current[f"cvar_{c}"]) for c in ("equity", "rates", "fx")]
    assert current["scope"] == "consolidated" and current["method"] == "monte_carlo"
    assert all(p > 0 for p in parts) and sum(parts) == pytest.approx(float(current["var"]), rel=1e-9)
    assert sum(tails) == pytest.approx(float(current["cvar"]), rel=1e-9)
    assert (current["bonds"], current["fx_exposures"], current["positions"]) == ("6", "5", "2")
    assert (current["marks_from_redis"], current["marks_from_close"]) == ("0", "2")
    assert float(current["revaluation_error"]) < 1e-6
    assert redis_client.exists(SCHEMA.heartbeat("var_sensor")) and alerts == []
    assert figures["seconds"] < 5.0


def test_consolidated_sensor_when_qb_marks_move_then_the_var_moves_and_says_where_prices_came_from(
    book_lake, redis_client
):
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 50_000, "MSFT": 30_000})
    sensor, _ = _consolidated(book_lake, redis_client)
    at_close = sensor.refresh(redis_client)
    close = Lake(book_lake.root).read_close_matrix().iloc[-1]

    redis_client.hset(SCHEMA.key("marks"), mapping={"AAPL": float(close["AAPL"]) * 1.5, "MSFT": "nan"})
    marked = sensor.refresh(redis_client)
    redis_client.hset(SCHEMA.key("marks"), "AAPL", "-1")  # unusable again: back to the close
    back = sensor.refresh(redis_client)

    assert marked["var"] > at_close["var"] and marked["var_equity"] > at_close["var_equity"]
    assert (marked["marks_from_redis"], marked["marks_from_close"]) == (1, 1)
    assert back["var"] == at_close["var"]  # seeded: the same draws, only the marks moved
    history = [float(f["var"]) for _id, f in redis_client.xrange(SCHEMA.key("risk_history"))]
    assert history == [at_close["var"], marked["var"], at_close["var"]]


def test_equities_scope_when_qb_marks_move_then_var_is_the_lake_close_figure(book_lake, redis_client):
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 500, "MSFT": 300})
    sensor, _ = _sensor(book_lake, redis_client, limit=1e12, window=60, scope="equities")
    before = sensor.refresh(redis_client)
    redis_client.hset(SCHEMA.key("marks"), "AAPL", "1000")

    after = sensor.refresh(redis_client)

    assert after["var"] == before["var"] and after["scope"] == "equities" and "var_rates" not in after


def test_consolidated_sensor_when_no_positions_then_the_bond_and_fx_book_is_still_measured(
    book_lake, redis_client
):
    sensor, _ = _consolidated(book_lake, redis_client)

    figures = sensor.refresh(redis_client)

    assert figures["positions"] == 0 and figures["var"] > 0 and figures["var_equity"] == 0.0


@pytest.mark.parametrize("fault", ["missing-curve", "matured-bond"])
def test_consolidated_sensor_when_reference_data_unusable_then_fails_closed_naming_it(
    small_lake, redis_client, fault
):
    from marketdata.reference import read_reference_csv

    if fault == "missing-curve":
        write_reference(small_lake)
        small_lake.reference("curve").unlink()
        expected = "reference table curve"
    else:
        book = read_reference_csv("bond_book")
        book.loc[0, "maturity_date"] = date(2024, 1, 31)  # before the lake's last date (2024-04-22)
        write_reference(small_lake, {"bond_book": book})
        expected = "bond UST-2Y maturity_date"
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 100})
    sensor, alerts = _consolidated(small_lake, redis_client, max_backoff_s=0.01)

    done = sensor.run(threading.Event(), max_refreshes=1)

    assert done == 0 and sensor.metrics.errors._value.get() == 1
    assert not redis_client.exists(SCHEMA.heartbeat("var_sensor"))
    assert not redis_client.exists(SCHEMA.key("risk_current"))
    assert [a["event"] for a in alerts] == ["var_sensor_error"] and expected in alerts[0]["error"]


def test_sensor_config_when_scope_unknown_then_input_error_names_the_setting():
    from quantbridge.errors import InputError

    with pytest.raises(InputError, match="QB_VAR_SCOPE"):
        SensorConfig(limit=1.0, scope="bonds")
    assert SensorConfig.from_settings(load_settings({"var_scope": "equities"})).scope == "equities"
    assert SensorConfig.from_settings(load_settings()).scope == "consolidated"
