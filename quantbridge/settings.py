"""One typed settings object for every component, parsed by pydantic-settings.

Every field can be set from the environment as ``QB_<FIELD NAME IN UPPER CASE>`` (for example
``QB_LAKE_ROOT``, ``QB_REDIS_URL``), or from an overrides mapping (the Airflow glue passes the JSON of
the Airflow Variable ``quantbridge_settings``). Precedence: defaults < environment < overrides.
Defaults run on one machine; the same code scales out by configuration alone (Spark master URL, Dask
scheduler address, Redis URL with password/TLS).

The Redis password, when ``QB_REDIS_PASSWORD`` is not given, is the one ``make services`` generated for
the project's own redis-server (``<services_dir>/redis/password``, mode 0600), so every local component
authenticates with no secret in the environment. A ``SecretStr``, it never appears in ``repr``, dumps,
``qb settings`` or errors; a client reads ``settings.redis_password.get_secret_value()``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from quantbridge.errors import ConfigError

#: Repository root (the folder holding this package); project-local state lives under it by default.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_PREFIX = "QB_"

#: Hosts on which ``qb services`` runs the project's own redis-server (the only one its password file is for).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: URL query parameters that carry a secret (redis-py reads ``?password=``).
_SECRET_QUERY_KEYS = frozenset({"password", "pass", "passwd", "token", "secret"})

#: A path as given, ``~`` expanded.
UserPath = Annotated[Path, AfterValidator(Path.expanduser)]
Port = Annotated[int, Field(ge=0, le=65535)]
#: risk.var.VAR_MODELS (the base imports no domain package).
VarModel = Literal[
    "normal",
    "student_t",
    "ewma",
    "historical",
    "filtered_historical",
    "filtered_historical_portfolio",
    "filtered_historical_garch",
]


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


class Settings(BaseSettings):
    """Project configuration: frozen, validated, secrets redacted in ``repr`` and dumps.

    ``Settings(...)`` takes only the values it is given (a test or a service builds one explicitly);
    :func:`load_settings` adds the ``QB_*`` environment and the overrides. An invalid value raises
    :class:`~quantbridge.errors.ConfigError` naming the field, its variable, the value and what was expected.
    """

    # Each field's docstring is its description (Settings.model_fields[name].description).
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        coerce_numbers_to_str=True,  # {"redis_prefix": 7} in the Airflow Variable's JSON reads "7"
        use_attribute_docstrings=True,
    )

    lake_root: UserPath = PROJECT_ROOT / ".lake"
    """Root of the Parquet lake (local path; a cluster deployment points it at shared storage)."""
    redis_url: str = "redis://127.0.0.1:6390/0"
    """Redis URL used by the long-running processes and the CLI (``rediss://`` for TLS)."""
    redis_password: SecretStr = SecretStr("")
    """Kept out of the URL so it can come from a secret store; empty: the file of ``make services``."""
    redis_tls_ca_cert: str = ""
    """CA bundle (PEM) that signed the Redis server's certificate, for ``rediss://``; empty = the system's."""
    redis_tls_cert: str = ""
    """Client certificate (PEM) when the server verifies clients (``tls-auth-clients``); with its key."""
    redis_tls_key: str = ""
    """Key of :attr:`redis_tls_cert`: a path, the key itself stays in the file, outside the repository."""
    redis_prefix: str = "qb"
    """Prefix of every Redis key (see :mod:`quantbridge.redis_schema`)."""
    services_dir: UserPath = PROJECT_ROOT / ".services"
    """Folder where ``make services`` keeps the project's own redis-server (AOF, pid, log)."""
    spark_master: str = "local[*]"
    """Spark master URL; ``local[*]`` runs in-process, ``spark://host:7077`` uses a cluster."""
    dask_scheduler: str = ""
    """Dask scheduler address; empty means in-process threads."""
    universe: Annotated[tuple[str, ...], NoDecode] = ()
    """Tickers the ingest job loads (``QB_UNIVERSE=aapl,msft``); empty = every ticker the feed has."""
    max_stale_days: PositiveInt = 10
    """A close equal to the previous one for more than this many trading days in a row is stale."""
    min_daily_return: Annotated[float, Field(lt=0)] = -0.75
    """Lower daily simple return bound; a return below it is an outlier that blocks the batch."""
    max_daily_return: Annotated[float, Field(gt=0)] = 1.5
    """Upper daily simple return bound; a return above it is an outlier that blocks the batch."""
    max_cross_sectional_skew: PositiveFloat = 4.5
    """Absolute bound on the cross-sectional skewness of one day's returns."""
    history_days: PositiveInt = 15
    """How many prior trading days the quality gate reads for returns/staleness (> max_stale_days)."""
    array_backend: Literal["auto", "gpu", "cpu"] = "auto"
    """Array backend: the GPU (CuPy) when present, always, or never."""
    seed: int = 20260101
    """Seed for every random generator that is not given one explicitly."""
    var_model: VarModel = "filtered_historical_portfolio"
    """VaR model of the sensor, `qb var` and the nightly report: the one that passes Kupiec, Christoffersen
    and no red window on the equal-weight and the long/short book (docs/risk.md, `qb var backtest`)."""
    var_scope: Literal["equities", "consolidated"] = "consolidated"
    """What the VaR sensor and `qb var` value: `consolidated` = the Redis positions at trusted marks plus the
    lake's bond book and FX exposures (Monte Carlo, risk.book_var); `equities` = the positions alone at the
    lake's close (the backtested formula; the replay's sensor)."""
    var_confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.99
    """VaR confidence level."""
    var_horizon_days: PositiveInt = 1
    """VaR horizon, trading days."""
    var_window: Annotated[int, Field(ge=20)] = 1000
    """Daily returns behind the covariance / historical sample."""
    var_interval_s: PositiveFloat = 30.0
    """VaR sensor refresh period, seconds."""
    var_limit: PositiveFloat = 400_000.0
    """VaR limit in the portfolio currency: above it the kill switch is set. Sized for the demo's consolidated
    book (the $1M equity book, the $16.4M bond book and $24.5M of FX exposures: VaR about 262,000)."""
    var_clear_ratio: Annotated[float, Field(gt=0, le=1)] = 0.9
    """The kill switch clears when VaR falls below var_limit x var_clear_ratio (hysteresis)."""
    var_metrics_port: Port = 9108
    """Port of the VaR sensor's Prometheus metrics (0 = no HTTP endpoint)."""
    worker_metrics_port: Port = 9109
    """Port of the execution worker's Prometheus metrics (0 = no HTTP endpoint)."""
    train_stress_weight: NonNegativeFloat = 0.0
    """Extra sample weight of training rows inside the stress ledger's historical windows (0 = off)."""
    risk_stale_s: NonNegativeFloat = 0.0
    """Risk figures older than this (seconds), or a missing sensor heartbeat, count as missing: the worker
    rejects risk-increasing orders (RISK_STALE). 0 = three sensor intervals."""
    max_deliveries: PositiveInt = 5
    """A stream entry delivered more than this many times goes to the dead-letter stream (poison order)."""
    audit_key_path: UserPath = PROJECT_ROOT / ".services" / "audit" / "checkpoint_ed25519.pem"
    """Ed25519 private key (PEM, mode 0600, outside Redis) that signs audit checkpoints; made on first use."""
    key_dir: UserPath = PROJECT_ROOT / ".services" / "keys"
    """Key directory (mode 0700, outside Redis): one key ring per purpose (``orders``, ``policy``, ``audit``),
    each key a hybrid ML-DSA-65 + Ed25519 pair; made on first use, rotated by ``qb keys rotate``."""
    key_grace_s: PositiveFloat = 7 * 86_400.0
    """After a rotation the previous key still verifies this many seconds (orders and records in flight)."""
    order_signatures: Literal["required", "off"] = "required"
    """``required``: the worker dead-letters an order whose batch signature is missing or does not verify
    (BAD_SIGNATURE) before anything else; ``off`` only for benchmarks measuring the cost of signatures."""
    compliance_approvers: str = "compliance"
    """Airflow user names (comma-separated) assigned to the first approval of a policy release."""
    risk_approvers: str = "risk"
    """Airflow user names (comma-separated) assigned to the second approval of a policy release."""
    approval_timeout_s: PositiveFloat = 3 * 86_400.0
    """How long each approval of a ``policy_release`` run waits for its answer; then it fails and nothing
    activates (no default answer)."""
    policy_check_s: PositiveFloat = 1.0
    """How often (seconds) a worker looks for a newly activated policy revision between batches."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the values given: load_settings reads the environment (os.environ or a test's mapping).
        return (init_settings,)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc) from None

    @field_validator("*", mode="before")
    @classmethod
    def _not_a_boolean(cls, raw: Any, info: ValidationInfo) -> Any:
        # pydantic reads JSON true as 1: {"history_days": true} in the Airflow Variable is a mistake
        if isinstance(raw, bool):
            name = str(info.field_name)
            expected = f"a number or text, not a boolean (variable {ENV_PREFIX}{name.upper()})"
            raise ConfigError(name, raw, expected)
        return raw

    @field_validator("universe", mode="before")
    @classmethod
    def _tickers(cls, raw: Any) -> Any:
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple):
            return raw  # not a list of tickers: the tuple validation names it
        return tuple(str(t).strip().upper() for t in items if str(t).strip())

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        with suppress(ValueError):  # unparseable
            parts = urlsplit(url)
            parts.port  # noqa: B018 - a port that is not a number fails here, not at first connection
            if parts.scheme in {"redis", "rediss", "unix"}:
                return url
        expected = "a redis://, rediss:// or unix:// URL with a numeric port"
        raise ConfigError("redis_url", redact_url(url), expected)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.history_days < self.max_stale_days + 1:
            expected = f"at least max_stale_days + 1 = {self.max_stale_days + 1}"
            raise ConfigError("history_days", self.history_days, expected)
        tls_files = ("redis_tls_ca_cert", "redis_tls_cert", "redis_tls_key")
        if urlsplit(self.redis_url).scheme != "rediss" and any(getattr(self, f) for f in tls_files):
            named = ", ".join(f"{ENV_PREFIX}{f.upper()}" for f in tls_files if getattr(self, f))
            expected = f"a rediss:// (TLS) URL, since {named} is set"
            raise ConfigError("redis_url", self.redis_url_redacted(), expected)
        if bool(self.redis_tls_cert) != bool(self.redis_tls_key):
            raise ConfigError(
                "redis_tls_cert/redis_tls_key",
                (self.redis_tls_cert, self.redis_tls_key),
                "both set (a client certificate and its key) or both empty",
            )
        return self

    @field_serializer("redis_password", "redis_url")
    def _redacted(self, value: SecretStr | str) -> str:
        # Dumps are for showing (`qb settings`): secrets redacted; code reads the attributes.
        if isinstance(value, SecretStr):
            return "***" if value.get_secret_value() else ""
        return redact_url(value)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The URL as given may embed a password (redis://:pw@host).
        for name, value in super().__repr_args__():
            yield name, self.redis_url_redacted() if name == "redis_url" else value

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
        files = {
            "ssl_ca_certs": "redis_tls_ca_cert",
            "ssl_certfile": "redis_tls_cert",
            "ssl_keyfile": "redis_tls_key",
        }
        for kwarg, name in files.items():
            if value := getattr(self, name):
                path = Path(value).expanduser()
                if not path.is_file():
                    expected = "a PEM file that exists on this machine (fix the path or copy the file here)"
                    raise ConfigError(f"{ENV_PREFIX}{name.upper()}", value, expected)
                options[kwarg] = str(path)
        return options

    @property
    def redis_password_file(self) -> Path:
        """Where ``make services`` keeps the password of the project's own redis-server (mode 0600)."""
        return redis_password_path(self.services_dir)

    def redis_url_redacted(self) -> str:
        """The Redis URL with any embedded password replaced by ``***`` (safe to print)."""
        return redact_url(self.redis_url)

    def as_public_dict(self) -> dict[str, Any]:
        """Every setting as JSON-friendly values, secrets redacted."""
        return self.model_dump(mode="json")

    @property
    def risk_stale_after_s(self) -> float:
        """Age (seconds) beyond which the worker treats the risk figures as missing."""
        return self.risk_stale_s or 3 * self.var_interval_s

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (values are parsed and validated like the environment's)."""
        return type(self)(**{**dict(self), **changes})


def _config_error(exc: ValidationError) -> ConfigError:
    """pydantic's first error in the project's words: the field, its variable, the value, the expectation."""
    error = exc.errors()[0]
    if isinstance(cause := error.get("ctx", {}).get("error"), ConfigError):
        return cause  # raised by a validator of Settings, already in those words
    name, value = str(error["loc"][0]), error["input"]
    if name not in Settings.model_fields:  # the value is not shown: a misspelt name may hold a secret
        return ConfigError(name, "***", f"a known setting ({', '.join(Settings.model_fields)})")
    kind = Settings.model_fields[name].annotation or Any
    if kind is SecretStr:
        value = "***"
    else:
        with suppress(ValidationError):  # "-3" for a positive int shows -3: the value, not the string
            value = TypeAdapter(kind).validate_python(value)
    expected = error["msg"].removeprefix("Input should be ")
    return ConfigError(name, value, f"{expected} (variable {ENV_PREFIX}{name.upper()})")


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' ``QB_*`` parsing over a given mapping (``os.environ`` unless a test passes one)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Case-insensitive field lookup, but only variables spelt QB_* (as DotEnvSettingsSource overrides it).
        return {k.lower(): v for k, v in self._environ.items() if k.startswith(ENV_PREFIX)}


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings: defaults, then ``QB_*`` environment variables, then ``overrides``.

    Unknown ``QB_*`` variables are an error (a typo must not silently fall back to a default). Without a
    Redis password from either, a loopback URL uses the password file ``make services`` wrote
    (``<services_dir>/redis/password``); one that group or others can read is an error.
    """
    env = os.environ if environ is None else environ
    for key in env:
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() not in Settings.model_fields:
            # The value is not shown: a misspelt name (QB_REDIS_PASWORD) may well hold a secret.
            known = ", ".join(f"{ENV_PREFIX}{name.upper()}" for name in sorted(Settings.model_fields))
            raise ConfigError(key, "***", "a known setting: " + known)
    settings = Settings(**{**_EnvironSource(env)(), **(overrides or {})})
    if settings.redis_password.get_secret_value():
        return settings
    password = _stored_redis_password(settings)
    return settings.model_copy(update={"redis_password": SecretStr(password)}) if password else settings


def _stored_redis_password(settings: Settings) -> str:
    """The password file of ``qb services`` for the local server's URL, else ""."""
    parts = urlsplit(settings.redis_url)
    local = parts.scheme in {"redis", "rediss"} and parts.hostname in LOCAL_HOSTS and parts.password is None
    # A remote Redis (or a password in the URL): its password is not the local server's.
    return read_password_file(settings.redis_password_file) if local else ""
