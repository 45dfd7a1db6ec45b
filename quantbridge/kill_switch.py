"""The kill switch: the one place that reads, engages and releases it.

The switch is the string key ``schema.key("kill_switch")`` holding a JSON object ``{"reason", "by", "at",
...details}``; while it exists, risk-increasing orders are blocked. Every change is written in the same Lua
call as its audit entry (``kill_switch_set`` / ``kill_switch_cleared``) and is guarded on the exact value it
was decided on, so a concurrent change is never overwritten or cleared unseen. Writers name themselves in
``by``: operators as ``operator:<user>`` (:data:`OPERATOR_PREFIX`), the VaR sensor as ``var_sensor``.
An operator's switch is never taken over by a non-operator, so the sensor can never clear it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from quantbridge.audit import AuditWriter, Effects, GuardFailed
from quantbridge.redis_client import text
from quantbridge.redis_schema import RedisSchema

OPERATOR_PREFIX = "operator:"
#: ``reason`` of a switch whose stored value is not a JSON object: it still blocks (fail closed).
UNREADABLE = "UNREADABLE"
#: Attempts of :func:`engage` when the switch keeps changing under it.
_ATTEMPTS = 5


def _parse(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        return {"reason": UNREADABLE, "raw": raw}
    return value


def read(client: Any, schema: RedisSchema) -> dict[str, Any] | None:
    """The switch's record, or None when it is off. A value that is not a JSON object reads as
    ``{"reason": "UNREADABLE", "raw": <value>}``: it is still set and still blocks."""
    raw = client.get(schema.key("kill_switch"))
    return None if raw is None else _parse(text(raw))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def engage(
    client: Any, schema: RedisSchema, *, by: str, reason: str, details: dict[str, Any] | None = None
) -> bool:
    """Set the switch with a ``kill_switch_set`` audit entry, in one Lua call; returns whether it wrote.

    Writes nothing (False) when the switch is already set by the same ``by``, or when it is set by an
    operator and ``by`` is not one (an operator's halt is theirs to clear). Otherwise the new record replaces
    any other writer's switch (ownership passes to ``by``; the audit entry keeps the previous record). If
    the switch changes between the read and the write, the decision is made again on the new value.
    """
    if not by or not reason:
        raise ValueError(
            f"kill switch engage needs a non-empty by and reason, got by={by!r}, reason={reason!r}"
        )
    key = schema.key("kill_switch")
    writer = AuditWriter(client, schema)
    for _ in range(_ATTEMPTS):
        got = client.get(key)
        raw = None if got is None else text(got)
        current = None if raw is None else _parse(raw)
        if current is not None:
            owner = str(current.get("by", ""))
            if owner == by or (owner.startswith(OPERATOR_PREFIX) and not by.startswith(OPERATOR_PREFIX)):
                return False
        record = {**(details or {}), "reason": reason, "by": by, "at": _now()}
        value = json.dumps(record, sort_keys=True, default=str)
        try:
            writer.commit(
                [("kill_switch_set", by, {**record, "previous": current})],
                Effects(guards=((key, None, raw),), set_keys=((key, value),)),
            )
        except GuardFailed:
            continue  # changed under us: decide again on what is there now
        return True
    raise RuntimeError(
        f"kill switch {key} changed under every one of {_ATTEMPTS} attempts to engage it "
        f"(by={by!r}); it was not written"
    )


def release(
    client: Any, schema: RedisSchema, *, by: str, reason: str, only_if_set_by: str | None = None
) -> bool:
    """Delete the switch with a ``kill_switch_cleared`` audit entry, in one Lua call; returns whether it
    cleared. With ``only_if_set_by``, only a switch whose ``by`` equals it is cleared. The delete is guarded
    on the exact value read, so a switch that changed meanwhile (e.g. an operator's replacing the sensor's)
    is left set and False is returned: releasing never clears a switch it has not seen."""
    if not by or not reason:
        raise ValueError(
            f"kill switch release needs a non-empty by and reason, got by={by!r}, reason={reason!r}"
        )
    key = schema.key("kill_switch")
    got = client.get(key)
    if got is None:
        return False
    raw = text(got)
    current = _parse(raw)
    if only_if_set_by is not None and current.get("by") != only_if_set_by:
        return False
    payload = {"reason": reason, "by": by, "at": _now(), "cleared": current}
    try:
        AuditWriter(client, schema).commit(
            [("kill_switch_cleared", by, payload)], Effects(guards=((key, None, raw),), delete_keys=(key,))
        )
    except GuardFailed:
        return False
    return True
