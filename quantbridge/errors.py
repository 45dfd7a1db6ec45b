"""One exception hierarchy for the whole project.

Messages name the field, the value received, what was expected and, where there is one, the fix.
"""

from __future__ import annotations

from typing import Any


class QuantbridgeError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(QuantbridgeError, ValueError):
    """A setting has a value it cannot take."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"setting {field}={value!r} is invalid: expected {expected}")


class InputError(QuantbridgeError, ValueError):
    """User input (a CLI argument, a file, a message field) is invalid."""

    def __init__(self, field: str, value: Any, expected: str, hint: str = "") -> None:
        self.field, self.value, self.expected = field, value, expected
        message = f"{field}={value!r} is invalid: expected {expected}"
        super().__init__(message + (f" ({hint})" if hint else ""))


class QualityGateFailed(QuantbridgeError):
    """A data batch broke one or more data-quality rules; it was quarantined, not published."""

    def __init__(self, report: str, quarantined: list[str]) -> None:
        self.report, self.quarantined = report, quarantined
        super().__init__(report)


class NoDataError(QuantbridgeError):
    """The source has no data for the requested date or range (for example a market holiday)."""


class ServiceError(QuantbridgeError):
    """A local service (redis-server, an Airflow component) could not be started, reached or stopped."""
