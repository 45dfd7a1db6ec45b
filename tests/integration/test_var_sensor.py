"""The VaR sensor against a real redis-server and a real lake: kill-switch round trip with hysteresis,
alerts, a Redis restart in the middle of the loop, metrics, SIGTERM, and the Airflow operator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import date, datetime, timezone

import pytest

from marketdata.feed import SkfolioFeed
from marketdata.ingest import ingest_range
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.services import RedisService
from quantbridge.settings import load_settings
from quantbridge.state import connect
from risk.sensor import SensorConfig, SensorMetrics, VarSensor
from tests.conftest import ROOT, _free_port

SCHEMA = RedisSchema("qb")


@pytest.fixture(scope="module")
def priced_lake(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("sensor-lake")
    settings = load_settings({"lake_root": root})
    ingest_range(settings, SkfolioFeed(), date(2019, 1, 2), date(2019, 12, 31), spark=spark)
    return root


def _sensor(priced_lake, client, limit, **kw):
    config = SensorConfig(limit=limit, interval_s=kw.pop("interval_s", 0.01), window=120, **kw)
    alerts = []
    sensor = VarSensor(config, Lake(priced_lake), SCHEMA, lambda: client, on_alert=alerts.append,
                       metrics=SensorMetrics())
    return sensor, alerts


def _book(client, scale=1.0):
    client.hset(SCHEMA.key("positions"), mapping={"AAPL": 500 * scale, "MSFT": 800 * scale, "XOM": 1000 * scale})


def test_sensor_when_var_breaches_then_kill_switch_set_and_cleared_only_below_hysteresis(priced_lake, redis_client):
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
    assert 0 < redis_client.ttl(SCHEMA.heartbeat("var_sensor")) <= 5
    pubsub.close()


def test_sensor_when_operator_set_the_switch_then_it_is_not_cleared_by_the_sensor(priced_lake, redis_client):
    _book(redis_client, scale=0.01)
    redis_client.set(SCHEMA.key("kill_switch"), json.dumps({"reason": "MANUAL", "by": "ops"}))
    sensor, alerts = _sensor(priced_lake, redis_client, limit=1e9)
    assert sensor.refresh(redis_client)["kill_switch"] is True and alerts == []


def test_sensor_when_no_positions_then_zero_var_published(priced_lake, redis_client):
    sensor, _ = _sensor(priced_lake, redis_client, limit=1.0)
    figures = sensor.refresh(redis_client)
    assert figures["var"] == 0.0 and figures["positions"] == 0 and figures["kill_switch"] is False


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
    proc = subprocess.Popen([sys.executable, "-m", "quantbridge.cli.main", "var-sensor", "--interval", "0.2",
                             "--metrics-port", str(port), "--json", "--quiet"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    from quantbridge.cli.backfill import _task_states, load_dag

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

    sell = SubmitOrder(order_id="rt-1", ts="2026-01-05T14:30:00+00:00", strategy="t", ticker="AAPL", side="SELL",
                       quantity=10.0, reference_price=70.0)  # risk-reducing: allowed even under the kill switch
    redis_client.xadd(SCHEMA.key("orders"), sell.to_dict())
    dag = load_dag("realtime_risk")
    run = dag.test(logical_date=datetime(2026, 1, 5, tzinfo=timezone.utc),
                   run_conf={"duration_s": 1, "interval_s": 0.2, "limit": 1})
    assert str(run.state) == "success", _task_states("realtime_risk", run.run_id)
    assert redis_client.exists(SCHEMA.key("kill_switch"))
    assert redis_client.xlen(SCHEMA.key("risk_history")) >= 2
    assert _task_states("realtime_risk", run.run_id)["execution_worker"] == "success"
    assert json.loads(redis_client.hget(SCHEMA.key("order_state"), "rt-1"))["state"] == "FILLED"
    assert float(redis_client.hget(SCHEMA.key("positions"), "AAPL")) == 490
    scraper.join(65)
    assert scraped and "qb_var_limit 1.0" in scraped[0]  # the task served /metrics while it ran
