"""The live VaR sensor: every ``interval_s`` it values the positions in Redis at the lake's latest prices,
computes VaR/CVaR, publishes the figures, and drives the kill switch with hysteresis.

Per refresh it writes (names from :mod:`quantbridge.redis_schema`):

* ``risk:current`` hash: var, cvar, volatility, limit, model, backend, as_of, positions, updated_at;
* ``risk:history`` stream entry with the same figures (capped at ``history_len`` entries);
* ``heartbeat:var_sensor`` with a TTL of three intervals;
* on a breach (VaR > limit) while the switch is off: ``risk:kill_switch`` (JSON reason) and an ``alerts``
  message; the switch is cleared, with another alert, only once VaR < limit x clear_ratio.

Redis going away is survived: the loop backs off (0.5 s doubling to 30 s) and carries on when it returns.
``stop`` (a threading.Event, set by SIGTERM in the CLI) ends the loop between refreshes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.state import read_positions
from risk.measure import portfolio_var

log = logging.getLogger(__name__)

COMPONENT = "var_sensor"


@dataclass(frozen=True)
class SensorConfig:
    """What the sensor measures and against which limit (built from Settings by the callers)."""

    limit: float
    clear_ratio: float = 0.9
    interval_s: float = 30.0
    model: str = "filtered_historical"
    confidence: float = 0.99
    horizon_days: int = 1
    paths: int = 100_000
    window: int = 500
    seed: int = 20260101
    backend: str = "auto"
    history_len: int = 10_000
    max_backoff_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SensorConfig:
        values = dict(limit=settings.var_limit, clear_ratio=settings.var_clear_ratio,
                      interval_s=settings.var_interval_s, model=settings.var_model,
                      confidence=settings.var_confidence, horizon_days=settings.var_horizon_days,
                      paths=settings.var_paths, window=settings.var_window, seed=settings.seed,
                      backend=settings.array_backend)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class VarSensor:
    """One sensor loop. ``connect`` returns a fresh Redis client (called again after a connection loss)."""

    config: SensorConfig
    lake: Lake
    schema: RedisSchema
    connect: Callable[[], Any]
    on_alert: Callable[[dict[str, Any]], None] = lambda _alert: None
    metrics: Any = None
    _closes: pd.DataFrame | None = field(default=None, init=False, repr=False)
    _closes_key: Any = field(default=None, init=False, repr=False)
    _client: Any = field(default=None, init=False, repr=False)

    def _latest_closes(self) -> pd.DataFrame:
        """The last ``window + 1`` dates of closes, reloaded only when the lake has a new date."""
        dates = self.lake.price_dates()
        key = (dates[-1], len(dates)) if dates else None
        if self._closes is None or key != self._closes_key:
            long = self.lake.read_prices(last_n_dates=self.config.window + 1)
            self._closes = long.pivot(index="date", columns="ticker", values="close")
            self._closes_key = key
        return self._closes

    def refresh(self, client: Any) -> dict[str, Any]:
        """One measurement: figures to Redis, kill switch and alerts. Returns what was published."""
        cfg = self.config
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        client.set(self.schema.heartbeat(COMPONENT), now, ex=max(int(cfg.interval_s * 3), 5))
        positions = {t: q for t, q in read_positions(client, self.schema).items() if q != 0.0}
        figures: dict[str, Any] = {"updated_at": now, "limit": cfg.limit, "positions": len(positions), "model": cfg.model}
        if positions:
            closes = self._latest_closes()
            if closes.empty:
                raise RuntimeError(f"no prices in the lake at {self.lake.root}: run `qb ingest` first")
            result = portfolio_var(closes, positions, model=cfg.model, confidence=cfg.confidence,
                                   horizon_days=cfg.horizon_days, paths=cfg.paths, seed=cfg.seed,
                                   window=cfg.window, backend_preference=cfg.backend)
            figures.update(var=result.var, cvar=result.cvar, volatility=result.volatility, backend=result.backend,
                           confidence=cfg.confidence, horizon_days=cfg.horizon_days, seconds=result.seconds,
                           as_of=str(closes.index[-1]))
        else:
            figures.update(var=0.0, cvar=0.0, volatility=0.0, backend="none", confidence=cfg.confidence,
                           horizon_days=cfg.horizon_days, seconds=0.0, as_of="")
        flat = {k: str(v) for k, v in figures.items()}
        pipe = client.pipeline(transaction=True)
        pipe.hset(self.schema.key("risk_current"), mapping=flat)
        pipe.xadd(self.schema.key("risk_history"), flat, maxlen=cfg.history_len, approximate=True)
        pipe.execute()
        figures["kill_switch"] = self._drive_kill_switch(client, figures)
        if self.metrics is not None:
            self.metrics.observe(figures)
        return figures

    def _drive_kill_switch(self, client: Any, figures: dict[str, Any]) -> bool:
        key = self.schema.key("kill_switch")
        var, limit = float(figures["var"]), self.config.limit
        active = bool(client.exists(key))
        if var > limit and not active:
            reason = {"reason": "VAR_LIMIT_BREACHED", "var": var, "limit": limit, "at": figures["updated_at"],
                      "by": COMPONENT}
            client.set(key, json.dumps(reason))
            self._alert(client, {"event": "kill_switch_set", **reason})
            return True
        if active and var < limit * self.config.clear_ratio:
            owner = json.loads(client.get(key) or "{}").get("by")
            if owner == COMPONENT:  # an operator's manual switch is theirs to clear
                client.delete(key)
                self._alert(client, {"event": "kill_switch_cleared", "var": var, "limit": limit,
                                     "clear_level": limit * self.config.clear_ratio, "at": figures["updated_at"]})
                return False
        return active

    def _alert(self, client: Any, alert: dict[str, Any]) -> None:
        client.publish(self.schema.key("alerts"), json.dumps(alert))
        log.warning("VaR sensor alert: %s", alert)
        self.on_alert(alert)

    def run(self, stop: threading.Event, max_refreshes: int | None = None) -> int:
        """Refresh every interval until ``stop`` is set (or ``max_refreshes``); returns refreshes done."""
        import redis

        done, backoff = 0, 0.5
        while not stop.is_set() and (max_refreshes is None or done < max_refreshes):
            started = time.monotonic()
            try:
                if self._client is None:
                    self._client = self.connect()
                self.refresh(self._client)
                done, backoff = done + 1, 0.5
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, backoff)
                self._client = None
                if self.metrics is not None:
                    self.metrics.reconnects.inc()
                stop.wait(backoff)  # returns at once on SIGTERM
                backoff = min(backoff * 2, self.config.max_backoff_s)
                continue
            remaining = self.config.interval_s - (time.monotonic() - started)
            if remaining > 0 and (max_refreshes is None or done < max_refreshes):
                stop.wait(remaining)
        return done


class SensorMetrics:
    """Prometheus gauges of the sensor (its own registry, so several sensors can live in one test process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.var = Gauge("qb_var", "Portfolio VaR (portfolio currency)", registry=self.registry)
        self.cvar = Gauge("qb_cvar", "Portfolio CVaR (portfolio currency)", registry=self.registry)
        self.limit = Gauge("qb_var_limit", "VaR limit (portfolio currency)", registry=self.registry)
        self.seconds = Gauge("qb_var_compute_seconds", "Time of the last VaR computation", registry=self.registry)
        self.last = Gauge("qb_var_last_refresh_timestamp", "Unix time of the last refresh", registry=self.registry)
        self.kill = Gauge("qb_kill_switch", "1 while the kill switch is set", registry=self.registry)
        self.reconnects = Counter("qb_var_sensor_redis_reconnects", "Redis connection losses", registry=self.registry)

    def observe(self, figures: dict[str, Any]) -> None:
        self.var.set(float(figures["var"]))
        self.cvar.set(float(figures["cvar"]))
        self.limit.set(float(figures["limit"]))
        self.seconds.set(float(figures["seconds"]))
        self.last.set(time.time())
        self.kill.set(1.0 if figures["kill_switch"] else 0.0)

    def serve(self, port: int) -> Any:
        """Expose /metrics on 127.0.0.1:port; returns the server (``shutdown()`` stops it)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        return server
