"""Intake of the orders stream: each entry validated into a :class:`~quantbridge.messages.SubmitOrder`, or
the reason it goes to the dead letters. Pure: bytes or text in, an :class:`Intake` out, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder

#: An order entry larger than this (all fields, bytes) is dead-lettered unread.
MAX_PAYLOAD_BYTES = 8192
#: Quantities beyond this are not an order but an accident (or an attack): dead-lettered.
MAX_QUANTITY = 1e9


@dataclass(frozen=True)
class Intake:
    """One stream entry after validation: an ``order``, or the ``dead`` reason it goes to the dead letters."""

    index: int
    entry_id: str
    fields: dict[str, str]
    order: SubmitOrder | None = None
    dead: str | None = None

    @property
    def ref(self) -> str:
        """The id the audit trail files this entry under (the order id when it has a usable one)."""
        oid = self.order.order_id if self.order is not None else self.fields.get("order_id", "")
        return oid if isinstance(oid, str) and 0 < len(oid) <= 128 else self.entry_id


def _decode(raw: Mapping[Any, Any]) -> tuple[dict[str, str], str | None]:
    """Fields as text, and the first field whose name or value is not UTF-8 (decoded with U+FFFD there)."""
    try:  # the usual entry: every name and value UTF-8 bytes, decoded in one pass
        return {a.decode("utf-8"): b.decode("utf-8") for a, b in raw.items()}, None
    except (UnicodeDecodeError, AttributeError):  # not UTF-8, or already text: field by field below
        pass
    fields: dict[str, str] = {}
    bad: str | None = None
    for a, b in raw.items():
        try:
            name = a.decode("utf-8") if isinstance(a, bytes) else str(a)
        except UnicodeDecodeError:
            name = a.decode("utf-8", errors="replace")
            bad = bad or name
        try:
            value = b.decode("utf-8") if isinstance(b, bytes) else str(b)
        except UnicodeDecodeError:
            value = b.decode("utf-8", errors="replace")
            bad = bad or name
        fields[name] = value
    return fields, bad


def intake(
    index: int,
    entry_id: str,
    raw: Mapping[Any, Any],
    tickers: frozenset[str] | set[str],
    deliveries: int = 1,
    max_deliveries: int = 5,
) -> Intake:
    """Validate one stream entry (bytes or text). Never raises: anything unusable becomes a dead-letter
    reason. An entry past the delivery cap keeps its parsed order, so an open one can be finished."""
    fields, bad = _decode(raw)
    size = sum(len(a) + len(b) for a, b in fields.items())
    if size > MAX_PAYLOAD_BYTES:
        reason = f"PAYLOAD_TOO_LARGE: max={MAX_PAYLOAD_BYTES} bytes, size={size}"
        return Intake(index, entry_id, _clip(fields), dead=reason)
    if bad is not None:
        return Intake(index, entry_id, fields, dead=f"MALFORMED: field {bad[:64]!r} is not UTF-8 text")
    order: SubmitOrder | None = None
    dead: str | None = None
    try:
        parsed = SubmitOrder.from_fields(fields)
    except InputError as exc:
        dead = f"MALFORMED: {exc}"
    else:
        if parsed.quantity > MAX_QUANTITY:
            dead = f"MALFORMED: quantity={parsed.quantity} is above {MAX_QUANTITY:.0e} shares"
        elif parsed.ticker not in tickers:
            dead = f"UNKNOWN_TICKER: ticker={parsed.ticker}"
        else:
            order = parsed
    if deliveries > max_deliveries:
        dead = f"MAX_DELIVERIES: delivered={deliveries}, max={max_deliveries}"
    return Intake(index, entry_id, fields, order=order, dead=dead)


def _clip(fields: dict[str, str], limit: int = 256) -> dict[str, str]:
    """A huge entry is kept in the dead letters by its first characters per field, never in full."""
    return {k[:limit]: v[:limit] for k, v in list(fields.items())[:32]}
