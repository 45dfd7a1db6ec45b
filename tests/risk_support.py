"""Test support: the state a running VaR sensor leaves in Redis, for tests of the worker without one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from quantbridge.redis_schema import RedisSchema


def publish_fresh_risk(client: Any, schema: RedisSchema, age_s: float = 0.0, heartbeat: bool = True) -> None:
    """Risk figures ``age_s`` old in ``risk:current`` and (optionally) the sensor's heartbeat, as
    :class:`risk.sensor.VarSensor` writes them after a successful refresh."""
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    client.hset(
        schema.key("risk_current"), mapping={"updated_at": at.isoformat(timespec="seconds"), "var": "0"}
    )
    if heartbeat:
        client.set(schema.heartbeat("var_sensor"), at.isoformat(timespec="seconds"), ex=600)
    else:
        client.delete(schema.heartbeat("var_sensor"))
