"""The live VaR sensor: every ``interval_s`` it values the book, computes VaR/CVaR, publishes the figures,
and drives the kill switch with hysteresis.

What it values (``SensorConfig.scope``, ``QB_VAR_SCOPE``):

* ``consolidated`` (the default of the settings): the consolidated book of :mod:`risk.book` - the Redis
  positions at their trusted marks (``qb:marks`` when usable, else the lake's last close), the lake's bond
  book and FX exposures - through :func:`risk.book_var.book_var` (Monte Carlo with full bond revaluation,
  seeded: the same draws every refresh, so the VaR moves only when the book, the marks or the lake move);
* ``equities``: the Redis positions alone at the lake's last close through
  :func:`risk.portfolio_var.portfolio_var`, the backtested formula (the replay's sensor).

Per refresh it writes (names from :mod:`quantbridge.redis_schema`):

* ``risk:current`` hash: var, cvar, volatility, limit, model, backend, as_of, positions, updated_at, scope;
  with the consolidated scope also method, paths, the Euler components per class (var_equity, var_rates,
  var_fx, cvar_equity, cvar_rates, cvar_fx, summing to var and cvar), the equity marks' sources
  (marks_from_redis, marks_from_close), bonds, fx_exposures and revaluation_error (QuantLib check);
* ``risk:history`` stream entry with the same figures (capped at ``history_len`` entries);
* on a breach (VaR > limit) while the switch is off: the kill switch, engaged by ``var_sensor`` through
  :mod:`quantbridge.kill_switch` (the switch and its audit entry in one call), and an ``alerts`` message;
  the sensor releases only its own switch, with another alert, once VaR < limit x clear_ratio;
* last, once the figures and the kill-switch decision have landed: ``heartbeat:var_sensor`` (ISO time) with
  a TTL of ``stale_after_s``, the execution worker's staleness bound (``settings.risk_stale_after_s``).

Fail closed: a refresh that raises (no prices, a held ticker the lake does not have, a VaR that is not a
positive finite number for a non-empty book, a Redis command error; with the consolidated scope also a
missing reference table, a matured bond, an unusable FX row, a revaluation off QuantLib's) writes no
heartbeat; it is logged with
its traceback, counted (``qb_var_sensor_errors_total``) and published on ``alerts`` as
``{"event": "var_sensor_error", ...}``, and the loop tries again after a back-off. Once the heartbeat has
expired or ``updated_at`` is older than the bound, the worker rejects risk-increasing orders (RISK_STALE).
Redis going away is survived the same way (back-off 0.5 s doubling to 30 s, reconnect when it returns).
``stop`` (a threading.Event, set by SIGTERM in the CLI) ends the loop between refreshes and back-offs.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from quantbridge import kill_switch
from quantbridge.errors import InputError, ServiceError
from quantbridge.lake import Lake
from quantbridge.positions import read_positions
from quantbridge.redis_schema import RedisSchema
from risk.book import SCOPES
from risk.book_var import DEFAULT_PATHS, DEFAULT_SEED
from risk.portfolio_var import portfolio_var
from risk.var import VarSpec

log = logging.getLogger(__name__)

COMPONENT = "var_sensor"
#: An error alert carries at most this much of the exception's message.
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class SensorConfig:
    """What the sensor measures and against which limit (built from Settings by the callers).

    ``scope``: ``equities`` or ``consolidated`` (module docstring). Its default here is ``equities``, the
    figure a config built by hand (a test, a tool) has always measured; :meth:`from_settings`, which every
    deployed sensor uses, takes ``QB_VAR_SCOPE`` (default ``consolidated``). ``paths``/``seed``: the
    consolidated book's Monte Carlo (seed: ``QB_SEED``)."""

    limit: float
    clear_ratio: float = 0.9
    interval_s: float = 30.0
    model: str = VarSpec.model  # the model defaults live in risk.var.VarSpec
    confidence: float = VarSpec.confidence
    horizon_days: int = VarSpec.horizon_days
    window: int = VarSpec.window
    history_len: int = 10_000
    max_backoff_s: float = 30.0
    #: The worker's staleness bound (settings.risk_stale_after_s), the heartbeat's TTL; 0 = three intervals.
    stale_after_s: float = 0.0
    scope: str = "equities"
    paths: int = DEFAULT_PATHS
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise InputError("scope", self.scope, "one of " + ", ".join(SCOPES) + " (QB_VAR_SCOPE)")

    @property
    def heartbeat_ttl_s(self) -> float:
        """Seconds the heartbeat lives: the staleness bound (three intervals when it is 0)."""
        return self.stale_after_s or 3 * self.interval_s

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SensorConfig:
        values = dict(
            limit=settings.var_limit,
            clear_ratio=settings.var_clear_ratio,
            interval_s=settings.var_interval_s,
            model=settings.var_model,
            confidence=settings.var_confidence,
            horizon_days=settings.var_horizon_days,
            window=settings.var_window,
            stale_after_s=settings.risk_stale_after_s,
            scope=settings.var_scope,
            seed=settings.seed,
        )
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
    _prepared: Any = field(default=None, init=False, repr=False)
    _prepared_key: Any = field(default=None, init=False, repr=False)
    _client: Any = field(default=None, init=False, repr=False)
    _errors_in_row: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.metrics is not None:  # the alert rules compare the last refresh with the same bound
            self.metrics.stale_after.set(self.config.heartbeat_ttl_s)
        if self.config.heartbeat_ttl_s < self.config.interval_s:
            log.warning(
                "VaR sensor: refreshes every %.1f s but figures count as stale after %.1f s: the "
                "worker will block risk-increasing orders between refreshes (raise QB_RISK_STALE_S)",
                self.config.interval_s,
                self.config.heartbeat_ttl_s,
            )

    def _latest_closes(self) -> pd.DataFrame:
        """The latest closes holding ``window`` daily returns (the backtest's window on the same lake:
        :func:`risk.portfolio_var.recent_closes`), reloaded only when the lake's dates or quarantine
        change."""
        from risk.portfolio_var import recent_closes

        dates = self.lake.price_dates()
        key = (dates[-1], len(dates), len(self.lake.quarantined_dates())) if dates else None
        if self._closes is None or key != self._closes_key:
            self._closes = recent_closes(self.lake, self.config.window)
            self._closes_key = key
        return self._closes

    def refresh(self, client: Any) -> dict[str, Any]:
        """One measurement: figures to Redis, kill switch and alerts. Returns what was published."""
        cfg = self.config
        now = datetime.now(UTC).isoformat(
            timespec="microseconds"
        )  # seconds would age fresh figures by up to 1 s
        positions = {t: q for t, q in read_positions(client, self.schema).items() if q != 0.0}
        figures: dict[str, Any] = {
            "updated_at": now,
            "limit": cfg.limit,
            "positions": len(positions),
            "model": cfg.model,
            "scope": cfg.scope,
        }
        others = 0  # bonds and FX exposures valued besides the positions
        if cfg.scope == "consolidated":
            others = self._value_consolidated(client, positions, figures)
        elif positions:
            closes = self._latest_closes()
            if closes.empty:
                raise RuntimeError(f"no prices in the lake at {self.lake.root}: run `qb ingest` first")
            result = portfolio_var(
                closes,
                positions,
                quarantined=self.lake.quarantined_dates(),
                model=cfg.model,
                confidence=cfg.confidence,
                horizon_days=cfg.horizon_days,
                window=cfg.window,
            )
            figures.update(
                var=result.var,
                cvar=result.cvar,
                volatility=result.volatility,
                backend=result.backend,
                confidence=cfg.confidence,
                horizon_days=cfg.horizon_days,
                seconds=result.seconds,
                as_of=str(closes.index[-1]),
            )
        else:
            figures.update(
                var=0.0,
                cvar=0.0,
                volatility=0.0,
                backend="none",
                confidence=cfg.confidence,
                horizon_days=cfg.horizon_days,
                seconds=0.0,
                as_of="",
            )
        _require_valued(figures, positions, others)
        flat = {k: str(v) for k, v in figures.items()}
        pipe = client.pipeline(transaction=True)
        pipe.hset(self.schema.key("risk_current"), mapping=flat)
        pipe.xadd(self.schema.key("risk_history"), flat, maxlen=cfg.history_len, approximate=True)
        pipe.execute()
        figures["kill_switch"] = self._drive_kill_switch(client, figures)
        # Last: the heartbeat vouches for figures and a kill-switch decision that have both landed.
        client.set(self.schema.heartbeat(COMPONENT), now, px=max(int(cfg.heartbeat_ttl_s * 1000), 1))
        if self.metrics is not None:
            self.metrics.observe(figures)
        return figures

    def _reference(self, as_of: Any) -> Any:
        """The bond book, curve and FX table prepared for ``as_of`` (:func:`risk.book_var.prepare`), reloaded
        when the valuation date or a reference file changes."""
        from risk.book import REFERENCE_TABLES, load_reference
        from risk.book_var import prepare

        stamps = []
        for name in REFERENCE_TABLES:
            path = self.lake.reference(name)
            stamps.append(path.stat().st_mtime_ns if path.is_file() else None)
        key = (as_of, tuple(stamps))
        if self._prepared is None or key != self._prepared_key:
            self._prepared = prepare(load_reference(self.lake, as_of))
            self._prepared_key = key
        return self._prepared

    def _value_consolidated(self, client: Any, positions: dict[str, float], figures: dict[str, Any]) -> int:
        """The consolidated book's figures into ``figures``; returns how many bonds and FX rows it holds."""
        from quantbridge.marks import FROM_CLOSE, FROM_MARKS, read_marks
        from risk.book import build_book
        from risk.book_var import book_var

        cfg = self.config
        closes = self._latest_closes()
        if closes.empty:
            raise RuntimeError(f"no prices in the lake at {self.lake.root}: run `qb ingest` first")
        as_of = closes.index[-1]
        prepared = self._reference(as_of)
        live = read_marks(client, self.schema, positions)
        book = build_book(as_of, positions, closes.ffill().iloc[-1], live, prepared.reference)
        spec = VarSpec(
            model=cfg.model, confidence=cfg.confidence, horizon_days=cfg.horizon_days, window=cfg.window
        )
        result = book_var(
            book,
            closes,
            spec,
            quarantined=self.lake.quarantined_dates(),
            paths=cfg.paths,
            seed=cfg.seed,
            prepared=prepared,
        )
        counts = book.mark_counts()
        figures.update(
            var=result.var,
            cvar=result.cvar,
            volatility=result.volatility,
            backend="numpy",
            confidence=cfg.confidence,
            horizon_days=cfg.horizon_days,
            seconds=result.seconds,
            as_of=str(as_of),
            method=result.method,
            paths=result.paths,
            **{f"var_{c}": v for c, v in result.class_var.items()},
            **{f"cvar_{c}": v for c, v in result.class_cvar.items()},
            marks_from_redis=counts[FROM_MARKS],
            marks_from_close=counts[FROM_CLOSE],
            bonds=len(book.bonds),
            fx_exposures=len(book.fx),
            revaluation_error="" if result.revaluation_error is None else result.revaluation_error,
        )
        return len(book.bonds) + len(book.fx)

    def _drive_kill_switch(self, client: Any, figures: dict[str, Any]) -> bool:
        """Engage the switch above the limit; release the sensor's own switch (never an operator's) below
        limit x clear_ratio. Each change goes with its audit entry. Returns whether a switch is set after."""
        var, limit = float(figures["var"]), self.config.limit
        current = kill_switch.read(client, self.schema)
        if var > limit and current is None:
            details = {"var": var, "limit": limit}
            if kill_switch.engage(
                client, self.schema, by=COMPONENT, reason="VAR_LIMIT_BREACHED", details=details
            ):
                self._alert(
                    client,
                    {
                        "event": "kill_switch_set",
                        "reason": "VAR_LIMIT_BREACHED",
                        **details,
                        "at": figures["updated_at"],
                        "by": COMPONENT,
                    },
                )
            return True  # engaged now, or set by someone else meanwhile
        clear_level = limit * self.config.clear_ratio
        if current is not None and current.get("by") == COMPONENT and var < clear_level:
            reason = f"VAR_BELOW_CLEAR_LEVEL: var={var:.2f}, clear_level={clear_level:.2f}"
            if kill_switch.release(
                client, self.schema, by=COMPONENT, reason=reason, only_if_set_by=COMPONENT
            ):
                self._alert(
                    client,
                    {
                        "event": "kill_switch_cleared",
                        "var": var,
                        "limit": limit,
                        "clear_level": clear_level,
                        "at": figures["updated_at"],
                    },
                )
                return False
            return kill_switch.read(client, self.schema) is not None  # it changed under us: report what is
        return current is not None

    def _alert(self, client: Any, alert: dict[str, Any]) -> None:
        client.publish(self.schema.key("alerts"), json.dumps(alert))
        log.warning("VaR sensor alert: %s", alert)
        self.on_alert(alert)

    def _report_failure(self, exc: Exception, retry_in_s: float) -> None:
        """A refresh raised: log it with its traceback, count it, publish it (when Redis answers)."""
        import redis

        self._errors_in_row += 1
        log.error(
            "VaR refresh failed (%d in a row); no heartbeat written, retrying in %.1f s",
            self._errors_in_row,
            retry_in_s,
            exc_info=exc,
        )
        if self.metrics is not None:
            self.metrics.errors.inc()
        alert = {
            "event": "var_sensor_error",
            "error": f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS],
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "consecutive": self._errors_in_row,
        }
        if self._client is not None:
            try:
                self._client.publish(self.schema.key("alerts"), json.dumps(alert))
            except redis.RedisError as publish_exc:
                log.warning("could not publish the VaR sensor error on the alerts channel: %s", publish_exc)
        try:
            self.on_alert(alert)
        except Exception:  # noqa: BLE001 - a failing alert hook (pager, e-mail) must not end the sensor
            log.exception("VaR sensor alert hook failed on %s", alert)

    def run(self, stop: threading.Event, max_refreshes: int | None = None) -> int:
        """Refresh every interval until ``stop`` is set (or ``max_refreshes`` attempts, failed ones
        included, Redis outages not); returns the refreshes that succeeded."""
        import redis

        done, attempts, backoff = 0, 0, 0.5
        while not stop.is_set() and (max_refreshes is None or attempts < max_refreshes):
            started = time.monotonic()
            try:
                if self._client is None:
                    self._client = self.connect()
                self.refresh(self._client)
                done, attempts, backoff, self._errors_in_row = done + 1, attempts + 1, 0.5, 0
            except redis.AuthenticationError as exc:  # a refused password never fixes itself by retrying
                raise ServiceError(
                    f"Redis refused the VaR sensor's credentials ({exc}): set QB_REDIS_PASSWORD, "
                    "or make the password file (<services_dir>/redis/password) readable to it"
                ) from exc
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, backoff)
                self._client = None
                if self.metrics is not None:
                    self.metrics.reconnects.inc()
                stop.wait(backoff)  # returns at once on SIGTERM
                backoff = min(backoff * 2, self.config.max_backoff_s)
                continue
            except Exception as exc:  # noqa: BLE001 - one bad refresh must not end the sensor
                # No heartbeat was written: the worker fails closed once the last one expires.
                attempts += 1
                self._report_failure(exc, backoff)
                if max_refreshes is None or attempts < max_refreshes:
                    stop.wait(backoff)
                backoff = min(backoff * 2, self.config.max_backoff_s)
                continue
            remaining = self.config.interval_s - (time.monotonic() - started)
            if remaining > 0 and (max_refreshes is None or attempts < max_refreshes):
                stop.wait(remaining)
        return done


def _require_valued(figures: dict[str, Any], positions: dict[str, float], others: int = 0) -> None:
    """Fail closed: a non-empty book (positions, or ``others`` bonds and FX exposures) whose VaR or CVaR is
    not a positive finite number was not valued (a NaN quantity or price, a ticker with no usable prices);
    publishing it would let trading go on."""
    if not positions and not others:
        return
    bad = {
        k: figures[k]
        for k in ("var", "cvar")
        if not (math.isfinite(float(figures[k])) and float(figures[k]) > 0)
    }
    if bad:
        raise InputError(
            "positions",
            positions,
            f"a book the lake's prices can value (VaR and CVaR positive and finite); got {bad}",
            hint="check the quantities in the positions hash and "
            "that every held ticker has recent closes in the lake",
        )


class SensorMetrics:
    """Prometheus gauges of the sensor (its own registry, so several sensors can live in one test process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.var = Gauge("qb_var", "Portfolio VaR (portfolio currency)", registry=self.registry)
        self.cvar = Gauge("qb_cvar", "Portfolio CVaR (portfolio currency)", registry=self.registry)
        self.limit = Gauge("qb_var_limit", "VaR limit (portfolio currency)", registry=self.registry)
        self.seconds = Gauge(
            "qb_var_compute_seconds", "Time of the last VaR computation", registry=self.registry
        )
        # Starts at the sensor's start, so one that never completes a refresh goes stale one bound later.
        self.last = Gauge(
            "qb_var_last_refresh_timestamp",
            "Unix time of the last successful refresh (the sensor's start before the first)",
            registry=self.registry,
        )
        self.last.set(time.time())
        self.stale_after = Gauge(
            "qb_var_stale_after_seconds",
            "Figures older than this count as missing (heartbeat TTL, RISK_STALE bound)",
            registry=self.registry,
        )
        self.kill = Gauge("qb_kill_switch", "1 while the kill switch is set", registry=self.registry)
        self.reconnects = Counter(
            "qb_var_sensor_redis_reconnects", "Redis connection losses", registry=self.registry
        )
        self.errors = Counter(
            "qb_var_sensor_errors", "Refreshes that raised (no heartbeat written)", registry=self.registry
        )

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
