"""ExecutionWorkerOperator: the execution worker as a long-running Airflow task (same loop as `qb worker`)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from quantbridge_airflow.redis_state import REDIS_CONN_ID


class ExecutionWorkerOperator(BaseOperator):
    """Consume the orders stream for ``duration_s`` seconds (0 = until the task is stopped)."""

    template_fields: Sequence[str] = ("duration_s",)

    def __init__(
        self, *, duration_s: float | str = 0, redis_conn_id: str = REDIS_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.duration_s = duration_s
        self.redis_conn_id = redis_conn_id
        self._stop = threading.Event()

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.providers.redis.hooks.redis import RedisHook

        from execution.worker import worker_from_lake
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings

        settings = airflow_settings()
        client = RedisHook(redis_conn_id=self.redis_conn_id).get_conn()
        consumer = f"airflow-{context['run_id']}"[:120]
        worker = worker_from_lake(client, settings, Lake(settings.lake_root), consumer)
        duration = float(self.duration_s or 0)
        timer = threading.Timer(duration, self._stop.set) if duration > 0 else None
        if timer is not None:
            timer.start()
        server = None
        if settings.worker_metrics_port:
            try:
                server = worker.metrics.serve(settings.worker_metrics_port)
            except OSError as exc:  # e.g. a `qb worker` already serves that port: trade anyway
                self.log.warning(
                    "metrics port %s unavailable (%s); running without /metrics",
                    settings.worker_metrics_port,
                    exc,
                )
        try:
            handled = worker.run(self._stop)
        finally:
            if timer is not None:
                timer.cancel()
            if server is not None:
                server.shutdown()
        return {"consumer": consumer, "handled": handled}

    def on_kill(self) -> None:
        self._stop.set()
