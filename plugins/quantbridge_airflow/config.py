"""Settings inside Airflow: environment ``QB_*`` plus the JSON Airflow Variable ``quantbridge_settings``."""

from __future__ import annotations

import json
from typing import Any

from quantbridge.errors import ConfigError
from quantbridge.settings import Settings, load_settings

SETTINGS_VARIABLE = "quantbridge_settings"


def airflow_settings() -> Settings:
    """Settings for a running task (call inside a task, never at DAG-parse time).

    Invalid settings fail the task at once (AirflowFailException): a retry would read the same values.
    """
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowFailException

    try:
        return load_settings(_overrides(Variable.get(SETTINGS_VARIABLE, default=None)))
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from exc


def _overrides(raw: str | None) -> dict[str, Any]:
    if raw in (None, ""):
        return {}
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"Airflow Variable {SETTINGS_VARIABLE}", raw, f"a JSON object ({exc.msg})"
        ) from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"Airflow Variable {SETTINGS_VARIABLE}", raw, "a JSON object")
    return overrides
