"""VarSensorOperator: the live VaR sensor as a long-running Airflow task (same loop as `qb var-sensor`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from quantbridge_airflow.redis_state import REDIS_CONN_ID


class VarSensorOperator(BaseOperator):
    """Run the VaR sensor for ``duration_s`` seconds (0 = until the task is stopped).

    On a breach the sensor sets the kill switch, publishes on the alerts channel and calls
    ``alert_callback(context, alert)``, the task's alert hook (log, page, e-mail).
    """

    template_fields: Sequence[str] = ("duration_s", "interval_s", "limit")

    def __init__(
        self,
        *,
        duration_s: float | str = 0,
        interval_s: float | str | None = None,
        limit: float | str | None = None,
        redis_conn_id: str = REDIS_CONN_ID,
        alert_callback: Callable[[Any, dict[str, Any]], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.duration_s = duration_s
        self.interval_s = interval_s
        self.limit = limit
        self.redis_conn_id = redis_conn_id
        self.alert_callback = alert_callback
        self._stop = threading.Event()

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.providers.redis.hooks.redis import RedisHook

        from quantbridge.lake import Lake
        from quantbridge.redis_schema import RedisSchema
        from quantbridge_airflow.config import airflow_settings
        from risk.sensor import SensorConfig, SensorMetrics, VarSensor

        settings = airflow_settings()
        config = SensorConfig.from_settings(
            settings,
            interval_s=float(self.interval_s) if self.interval_s not in (None, "", "None") else None,
            limit=float(self.limit) if self.limit not in (None, "", "None") else None,
        )
        hook = RedisHook(redis_conn_id=self.redis_conn_id)
        alerts: list[dict[str, Any]] = []

        def on_alert(alert: dict[str, Any]) -> None:
            alerts.append(alert)
            self.log.error("VaR alert: %s", alert)
            if self.alert_callback is not None:
                self.alert_callback(context, alert)

        duration = float(self.duration_s or 0)
        timer = threading.Timer(duration, self._stop.set) if duration > 0 else None
        if timer is not None:
            timer.start()
        metrics, server = SensorMetrics(), None
        if settings.var_metrics_port:
            try:
                server = metrics.serve(settings.var_metrics_port)
            except OSError as exc:  # e.g. a `qb var-sensor` already serves that port: measure anyway
                self.log.warning(
                    "metrics port %s unavailable (%s); running without /metrics",
                    settings.var_metrics_port,
                    exc,
                )
        sensor = VarSensor(
            config,
            Lake(settings.lake_root),
            RedisSchema(settings.redis_prefix),
            hook.get_conn,
            on_alert=on_alert,
            metrics=metrics,
        )
        try:
            refreshes = sensor.run(self._stop)
        finally:
            if timer is not None:
                timer.cancel()
            if server is not None:
                server.shutdown()
        return {"refreshes": refreshes, "alerts": alerts, "limit": config.limit}

    def on_kill(self) -> None:
        self._stop.set()
