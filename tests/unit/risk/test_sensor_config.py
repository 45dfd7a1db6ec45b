"""SensorConfig carries the worker's staleness bound, which is the heartbeat's TTL (and the sensor warns when
it is shorter than the refresh interval)."""

from __future__ import annotations

import pytest

from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.settings import load_settings
from risk.sensor import SensorConfig, VarSensor


def test_sensor_config_when_built_from_settings_then_heartbeat_ttl_is_three_intervals_by_default():
    settings = load_settings({"var_interval_s": 10}, environ={})

    config = SensorConfig.from_settings(settings)

    assert config.stale_after_s == settings.risk_stale_after_s == 30.0
    assert config.heartbeat_ttl_s == 30.0


def test_sensor_config_when_risk_stale_s_is_set_then_heartbeat_ttl_follows_it():
    config = SensorConfig.from_settings(load_settings({"var_interval_s": 10, "risk_stale_s": 45}, environ={}))

    assert config.heartbeat_ttl_s == 45.0


def test_sensor_config_when_built_directly_without_a_bound_then_ttl_is_three_intervals():
    assert SensorConfig(limit=1.0, interval_s=0.5).heartbeat_ttl_s == pytest.approx(1.5)


def test_sensor_when_bound_is_shorter_than_the_interval_then_it_warns_that_trading_will_block(
    tmp_path, caplog
):
    config = SensorConfig(limit=1.0, interval_s=60.0, stale_after_s=30.0)

    VarSensor(config, Lake(tmp_path), RedisSchema("qb"), connect=lambda: None)

    assert "raise QB_RISK_STALE_S" in caplog.text
