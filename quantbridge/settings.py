"""One typed settings object for every component.

Every field can be set from the environment as ``QB_<FIELD NAME IN UPPER CASE>`` (for example
``QB_LAKE_ROOT``, ``QB_REDIS_URL``), or from an overrides mapping (the Airflow glue passes the JSON of
the Airflow Variable ``quantbridge_settings``). Precedence: defaults < environment < overrides.
Defaults run on one machine; the same code scales out by configuration alone (Spark master URL, Dask
scheduler address, Redis URL with password/TLS).

The Redis password, when ``QB_REDIS_PASSWORD`` is not given, is the one ``make services`` generated for
the project's own redis-server (``<services_dir>/redis/password``, mode 0600), so every local component
authenticates with no secret in the environment. It never appears in ``repr``, ``qb settings`` or errors.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from quantbridge.errors import ConfigError

#: Repository root (the folder holding this package); project-local state lives under it by default.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_PREFIX = "QB_"

#: Hosts on which ``qb services`` runs the project's own redis-server (the only one its password file is for).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: URL query parameters that carry a secret (redis-py reads ``?password=``).
_SECRET_QUERY_KEYS = frozenset({"password", "pass", "passwd", "token", "secret"})


def redact_url(url: str) -> str:
    """``url`` with any password (in the user part or a ``?password=`` query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc, query = parts.netloc, parts.query
        if parts.password is not None:
            userinfo, _, hostport = netloc.rpartition("@")
            netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            hidden = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs]
            query = urlencode(hidden, safe="*")
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:  # not parseable as a URL: show none of it, it may hold a secret
        return "<unparseable URL, not shown>"


def redis_password_path(services_dir: Path) -> Path:
    """The password file of the project's own redis-server (written by ``qb services start``)."""
    return Path(services_dir) / "redis" / "password"


def read_password_file(path: Path) -> str:
    """The password stored in ``path`` (surrounding whitespace stripped); "" when the file does not exist.

    A file that group or others may read or write is refused (the password would not be a secret), as is
    an empty or unreadable one; the error names the path, its mode and the fix.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return ""
    if mode & 0o077:
        raise ConfigError(
            "redis password file",
            str(path),
            f"a file only its owner can read or write (mode 0600), not mode {mode:04o}: "
            f"run `chmod 600 {path}`",
        )
    try:
        password = path.read_text().strip()
    except OSError as exc:
        raise ConfigError("redis password file", str(path), f"a file this user can read ({exc})") from None
    if not password:
        raise ConfigError(
            "redis password file",
            str(path),
            "a non-empty password: delete the file and run `make services` to generate one",
        )
    return password


@dataclass(frozen=True)
class Settings:
    """Project configuration. Secrets (the Redis password) are redacted in ``repr``."""

    #: Root of the Parquet lake (local path; a cluster deployment points it at shared storage).
    lake_root: Path = PROJECT_ROOT / ".lake"
    #: Redis URL used by the long-running processes and the CLI (``rediss://`` for TLS).
    redis_url: str = "redis://127.0.0.1:6390/0"
    #: Password for Redis; kept out of the URL so it can come from a secret store. When not given (or empty),
    #: :func:`load_settings` uses the file ``make services`` wrote (:attr:`redis_password_file`) for a
    #: loopback URL.
    redis_password: str = field(default="", repr=False)
    #: CA bundle (PEM) that signed the Redis server's certificate, for ``rediss://``; empty = the system's.
    redis_tls_ca_cert: str = ""
    #: Client certificate and its key (PEM) when the server verifies clients (``tls-auth-clients``);
    #: both or neither. Paths, not contents: the key itself stays in the file, outside the repository.
    redis_tls_cert: str = ""
    redis_tls_key: str = ""
    #: Prefix of every Redis key (see :mod:`quantbridge.redis_schema`).
    redis_prefix: str = "qb"
    #: Folder where ``make services`` keeps the project's own redis-server (AOF, pid, log).
    services_dir: Path = PROJECT_ROOT / ".services"
    #: Spark master URL; ``local[*]`` runs in-process, ``spark://host:7077`` uses a cluster.
    spark_master: str = "local[*]"
    #: Dask scheduler address; empty means an in-process LocalCluster.
    dask_scheduler: str = ""
    #: First and last dates the bundled vendor feed can deliver are those of the dataset; this
    #: is the reference universe the ingest job loads (empty = every ticker the feed has).
    universe: tuple[str, ...] = ()
    #: A close equal to the previous one for more than this many trading days in a row is stale.
    max_stale_days: int = 10
    #: Daily simple return bounds; anything outside is an outlier that blocks the batch.
    min_daily_return: float = -0.75
    max_daily_return: float = 1.5
    #: Absolute bound on the cross-sectional skewness of one day's returns.
    max_cross_sectional_skew: float = 4.5
    #: How many prior trading days the quality gate reads from the lake for returns/staleness.
    history_days: int = 15
    #: Use the GPU array backend (CuPy) when present: "auto", "gpu" or "cpu".
    array_backend: str = "auto"
    #: Seed for every random generator that is not given one explicitly.
    seed: int = 20260101
    #: VaR model of the sensor, `qb var` and the nightly report: the one that passes Kupiec, Christoffersen and
    #: no red window on the equal-weight and the long/short book (README, `qb var backtest`).
    var_model: str = "filtered_historical_portfolio"
    var_confidence: float = 0.99
    var_horizon_days: int = 1
    #: Daily returns behind the covariance / historical sample.
    var_window: int = 500
    #: VaR sensor refresh period, seconds.
    var_interval_s: float = 30.0
    #: VaR limit in the portfolio currency: above it the kill switch is set.
    var_limit: float = 50_000.0
    #: The kill switch clears when VaR falls below var_limit x var_clear_ratio (hysteresis).
    var_clear_ratio: float = 0.9
    #: Port of the VaR sensor's Prometheus metrics (0 = no HTTP endpoint).
    var_metrics_port: int = 9108
    #: Port of the execution worker's Prometheus metrics (0 = no HTTP endpoint).
    worker_metrics_port: int = 9109
    #: Extra sample weight of training rows inside the stress ledger's historical windows (0 = off).
    train_stress_weight: float = 0.0
    #: Risk figures older than this (seconds), or a missing sensor heartbeat, count as missing: the worker
    #: rejects risk-increasing orders (RISK_STALE). 0 = three sensor intervals.
    risk_stale_s: float = 0.0
    #: A stream entry delivered more than this many times goes to the dead-letter stream (poison order).
    max_deliveries: int = 5
    #: Ed25519 private key (PEM, mode 0600, outside Redis) that signs audit checkpoints; created on first use.
    audit_key_path: Path = PROJECT_ROOT / ".services" / "audit" / "checkpoint_ed25519.pem"

    def __post_init__(self) -> None:
        if self.max_stale_days < 1:
            raise ConfigError("max_stale_days", self.max_stale_days, "an integer >= 1")
        if not self.min_daily_return < 0 < self.max_daily_return:
            raise ConfigError(
                "min_daily_return/max_daily_return",
                (self.min_daily_return, self.max_daily_return),
                "min < 0 < max",
            )
        if self.max_cross_sectional_skew <= 0:
            raise ConfigError("max_cross_sectional_skew", self.max_cross_sectional_skew, "a positive number")
        if self.history_days < self.max_stale_days + 1:
            raise ConfigError(
                "history_days", self.history_days, f"at least max_stale_days + 1 = {self.max_stale_days + 1}"
            )
        if self.risk_stale_s < 0:
            raise ConfigError(
                "risk_stale_s", self.risk_stale_s, "seconds >= 0 (0 = three VaR sensor intervals)"
            )
        if self.max_deliveries < 1:
            raise ConfigError("max_deliveries", self.max_deliveries, "an integer >= 1")
        if self.array_backend not in {"auto", "gpu", "cpu"}:
            raise ConfigError("array_backend", self.array_backend, "one of auto, gpu, cpu")
        if self.var_model not in {
            "normal",
            "student_t",
            "ewma",
            "historical",
            "filtered_historical",
            "filtered_historical_portfolio",
        }:  # risk.var.VAR_MODELS
            raise ConfigError(
                "var_model",
                self.var_model,
                "one of normal, student_t, ewma, historical, "
                "filtered_historical, filtered_historical_portfolio",
            )
        if not 0.5 <= self.var_confidence < 1:
            raise ConfigError("var_confidence", self.var_confidence, "a number in [0.5, 1)")
        if self.var_horizon_days < 1 or self.var_window < 20:
            raise ConfigError(
                "var_horizon_days/var_window", (self.var_horizon_days, self.var_window), ">= 1 and >= 20"
            )
        if self.var_interval_s <= 0 or self.var_limit <= 0:
            raise ConfigError(
                "var_interval_s/var_limit", (self.var_interval_s, self.var_limit), "positive numbers"
            )
        if self.train_stress_weight < 0:
            raise ConfigError("train_stress_weight", self.train_stress_weight, "a number >= 0 (0 = off)")
        if not 0 < self.var_clear_ratio <= 1:
            raise ConfigError("var_clear_ratio", self.var_clear_ratio, "a number in (0, 1]")
        shown_url = redact_url(self.redis_url)
        try:
            scheme = urlsplit(self.redis_url).scheme
            self.redis_port  # noqa: B018 - a port that is not a number fails here, not at first connection
        except ValueError:
            scheme = ""
        if scheme not in {"redis", "rediss", "unix"}:
            raise ConfigError(
                "redis_url", shown_url, "a redis://, rediss:// or unix:// URL with a numeric port"
            )
        tls_files = {
            "redis_tls_ca_cert": self.redis_tls_ca_cert,
            "redis_tls_cert": self.redis_tls_cert,
            "redis_tls_key": self.redis_tls_key,
        }
        if scheme != "rediss" and any(tls_files.values()):
            named = ", ".join(f"{ENV_PREFIX}{k.upper()}" for k, v in tls_files.items() if v)
            raise ConfigError("redis_url", shown_url, f"a rediss:// (TLS) URL, since {named} is set")
        if bool(self.redis_tls_cert) != bool(self.redis_tls_key):
            raise ConfigError(
                "redis_tls_cert/redis_tls_key",
                (self.redis_tls_cert, self.redis_tls_key),
                "both set (a client certificate and its key) or both empty",
            )

    @property
    def redis_host(self) -> str:
        return urlsplit(self.redis_url).hostname or "127.0.0.1"

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 6379

    @property
    def redis_db(self) -> int:
        path = urlsplit(self.redis_url).path.strip("/")
        return int(path) if path else 0

    def redis_tls_options(self) -> dict[str, str]:
        """redis-py's TLS keyword arguments (``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``) for the
        files that are set; each must be a file on this machine. Empty for a plain ``redis://`` URL."""
        options: dict[str, str] = {}
        for name, kwarg in (
            ("redis_tls_ca_cert", "ssl_ca_certs"),
            ("redis_tls_cert", "ssl_certfile"),
            ("redis_tls_key", "ssl_keyfile"),
        ):
            value = getattr(self, name)
            if not value:
                continue
            path = Path(value).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"{ENV_PREFIX}{name.upper()}",
                    value,
                    "a PEM file that exists on this machine (fix the path or copy the file here)",
                )
            options[kwarg] = str(path)
        return options

    @property
    def redis_password_file(self) -> Path:
        """Where ``make services`` keeps the password of the project's own redis-server (mode 0600)."""
        return redis_password_path(self.services_dir)

    def redis_url_redacted(self) -> str:
        """The Redis URL with any embedded password replaced by ``***`` (safe to print)."""
        return redact_url(self.redis_url)

    def __repr__(self) -> str:
        # The generated repr would print redis_url as given, password included when it is embedded there.
        shown = (
            f"{f.name}={self.redis_url_redacted() if f.name == 'redis_url' else getattr(self, f.name)!r}"
            for f in fields(self)
            if f.repr
        )
        return f"{type(self).__name__}({', '.join(shown)})"

    def as_public_dict(self) -> dict[str, Any]:
        """Every setting as JSON-friendly values, secrets redacted."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "redis_password":
                value = "***" if value else ""
            elif f.name == "redis_url":
                value = self.redis_url_redacted()
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @property
    def risk_stale_after_s(self) -> float:
        """Age (seconds) beyond which the worker treats the risk figures as missing."""
        return self.risk_stale_s or 3 * self.var_interval_s

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (values are coerced and validated like the environment's)."""
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})


_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}
_DEFAULTS = {f.name: f.default for f in fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    """Turn a raw value (usually a string from the environment) into the field's type."""
    if name not in _FIELD_TYPES:
        known = ", ".join(sorted(_FIELD_TYPES))
        raise ConfigError(name, raw, f"a known setting ({known})")
    kind = _FIELD_TYPES[name]
    try:
        if kind == "Path":
            return Path(raw).expanduser()
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple"):
            if isinstance(raw, str):
                return tuple(t.strip().upper() for t in raw.split(",") if t.strip())
            return tuple(str(t).upper() for t in raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}", raw, f"a value of type {kind}") from None


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings: defaults, then ``QB_*`` environment variables, then ``overrides``.

    Unknown ``QB_*`` variables are an error (a typo must not silently fall back to a default). Without a
    Redis password from either, a loopback URL uses the password file ``make services`` wrote
    (``<services_dir>/redis/password``); one that group or others can read is an error.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in _FIELD_TYPES:
            # The value is not shown: a misspelt name (QB_REDIS_PASWORD) may well hold a secret.
            known = ", ".join(f"{ENV_PREFIX}{n.upper()}" for n in sorted(_FIELD_TYPES))
            raise ConfigError(key, "***", "a known setting: " + known)
        values[name] = _coerce(name, raw)
    for name, raw in (overrides or {}).items():
        values[name] = _coerce(name, raw)
    if not values.get("redis_password"):
        values.update(_stored_redis_password(values))
    return Settings(**values)


def _stored_redis_password(values: Mapping[str, Any]) -> dict[str, str]:
    """``{"redis_password": ...}`` from the password file of ``qb services``, for the local server's URL."""
    try:
        parts = urlsplit(values.get("redis_url", _DEFAULTS["redis_url"]))
        local = (
            parts.scheme in {"redis", "rediss"} and parts.hostname in LOCAL_HOSTS and parts.password is None
        )
    except ValueError:  # Settings() reports the malformed URL
        return {}
    if not local:  # a remote Redis (or a password in the URL): its password is not the local server's
        return {}
    folder = values.get("services_dir", _DEFAULTS["services_dir"])
    password = read_password_file(redis_password_path(folder))
    return {"redis_password": password} if password else {}
