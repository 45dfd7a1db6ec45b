"""Settings inside Airflow: environment ``QB_*`` plus the JSON Airflow Variable ``quantbridge_settings``."""

from __future__ import annotations

import json

from quantbridge.errors import ConfigError
from quantbridge.settings import Settings, load_settings

SETTINGS_VARIABLE = "quantbridge_settings"


def airflow_settings() -> Settings:
    """Settings for a running task (call inside a task, never at DAG-parse time)."""
    from airflow.sdk import Variable

    raw = Variable.get(SETTINGS_VARIABLE, default=None)
    if raw in (None, ""):
        return load_settings()
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Airflow Variable {SETTINGS_VARIABLE}", raw, f"a JSON object ({exc.msg})") from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"Airflow Variable {SETTINGS_VARIABLE}", raw, "a JSON object")
    return load_settings(overrides)
