"""Environment that runs Airflow for this project (no Airflow import here: it is set before one).

``AIRFLOW_HOME`` is project-local (``.airflow/``), ``AIRFLOW_CONFIG`` the committed ``airflow.cfg``,
``redis_default`` the project's Redis from settings, and a JWT secret shared by every component
(api-server, scheduler, dag-processor, triggerer must agree on it) is kept in ``.airflow/jwt_secret``.
Variables already present in the environment win, so a deployment can override any of them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import quote, unquote, urlencode, urlsplit

from quantbridge.settings import PROJECT_ROOT, Settings


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", PROJECT_ROOT / ".airflow"))


def redis_conn_uri(settings: Settings) -> str:
    """``redis_default`` as a connection URI; the provider reads the database from ``?db=N``.

    For a ``rediss://`` URL the query also carries the hook's TLS extras (``ssl=True``, ``ssl_ca_certs``,
    ``ssl_certfile``, ``ssl_keyfile`` from the ``QB_REDIS_TLS_*`` files). The password (URL-encoded) comes
    from the settings (the environment, else the password file of ``make services``), so the URI is a secret
    too: it is exported, never written to a file or printed.
    """
    parts = urlsplit(settings.redis_url)
    # As redis-py reads the URL: its user part is percent-encoded, and QB_REDIS_PASSWORD (or the password
    # file of `make services`, which load_settings reads) fills in a password the URL does not carry.
    password = unquote(parts.password or "") or settings.redis_password.get_secret_value()
    user = quote(unquote(parts.username or ""), safe="")
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    query: dict[str, str] = {"db": str(settings.redis_db)}
    if parts.scheme == "rediss":
        query["ssl"] = "True"
        query.update(settings.redis_tls_options())
    return f"redis://{auth}{settings.redis_host}:{settings.redis_port}?{urlencode(query, quote_via=quote)}"


def _jwt_secret(home: Path) -> str:
    path = home / "jwt_secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_environment(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with what Airflow needs for this project added."""
    env = dict(os.environ if base is None else base)
    home = Path(env.get("AIRFLOW_HOME", PROJECT_ROOT / ".airflow"))
    env.setdefault("AIRFLOW_HOME", str(home))
    env.setdefault("AIRFLOW_CONFIG", str(PROJECT_ROOT / "airflow.cfg"))
    # Explicit, so a test or research AIRFLOW_HOME elsewhere still reads this repository's DAGs.
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    env.setdefault("AIRFLOW_CONN_REDIS_DEFAULT", redis_conn_uri(settings))
    env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", _jwt_secret(home))
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("NO_PROXY", "*")  # macOS fork-safety issue with proxies in task processes; harmless here
    plugins = str(PROJECT_ROOT / "plugins")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if plugins not in paths:
        env["PYTHONPATH"] = os.pathsep.join([plugins, *paths])
    return env


def apply_airflow_environment(settings: Settings) -> dict[str, str]:
    """Set the Airflow environment in this process (before ``import airflow``)."""
    env = airflow_environment(settings)
    os.environ.update(env)
    import sys

    plugins = str(PROJECT_ROOT / "plugins")
    if plugins not in sys.path:
        sys.path.insert(0, plugins)
    return env
