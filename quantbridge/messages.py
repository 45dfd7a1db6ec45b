"""Typed, immutable messages that cross process boundaries (Redis streams). Commands are verbs.

``SubmitOrder`` is what the strategy publishes on the orders stream and the execution worker consumes;
``from_dict`` validates every field and names the one that is wrong.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from quantbridge.errors import InputError

_TICKER = re.compile(r"[A-Z][A-Z0-9.\-]{0,14}")
#: A plain ASCII decimal number: float() alone also takes "1_0", Arabic-Indic digits and padded text.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
#: Unicode categories refused in free-text fields: control and format characters (NUL, newline, ANSI
#: escapes, bidirectional overrides) would let an order forge lines or colours in logs and reports.
_HIDDEN = ("Cc", "Cf")
SIDES = ("BUY", "SELL")
MAX_EXPLANATION_CHARS = 4096
#: ``SubmitOrder.to_dict``'s plain fields, in declaration order (``explanation`` and ``limit_price`` follow).
_STRING_FIELDS = (
    "order_id",
    "ts",
    "strategy",
    "ticker",
    "side",
    "quantity",
    "reference_price",
    "model_version",
)
#: What ``json.dumps(value, sort_keys=True)`` builds on every call, built once (the same bytes).
_SORTED_JSON = json.JSONEncoder(sort_keys=True)


@dataclass(frozen=True)
class SubmitOrder:
    """A command to trade ``quantity`` shares of ``ticker`` (``side`` BUY or SELL); ``limit_price``, when
    given, is the worst price the sender accepts (a BUY fills at or below it, a SELL at or above it)."""

    order_id: str
    ts: str
    strategy: str
    ticker: str
    side: str
    quantity: float
    reference_price: float
    model_version: str = ""
    explanation: dict[str, float] = field(default_factory=dict)
    limit_price: float | None = None

    def __post_init__(self) -> None:
        if not self.order_id or len(self.order_id) > 128:
            raise InputError("order_id", self.order_id, "a non-empty id of at most 128 characters")
        for name in ("order_id", "ts", "strategy", "model_version"):
            value = getattr(self, name)
            if value.isprintable():  # no Cc/Cf: both are "Other", which isprintable() refuses (C-fast)
                continue
            hidden = next((c for c in value if unicodedata.category(c) in _HIDDEN), None)
            if hidden is not None:
                raise InputError(
                    name, value[:80], f"text without control or format characters (found U+{ord(hidden):04X})"
                )
        if not _TICKER.fullmatch(self.ticker):
            raise InputError("ticker", self.ticker, "an upper-case ticker such as AAPL")
        if self.side not in SIDES:
            raise InputError("side", self.side, "BUY or SELL")
        for name in ("quantity", "reference_price"):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InputError(name, value, "a positive finite number")
        limit = self.limit_price
        if limit is not None and (
            not isinstance(limit, (int, float))
            or isinstance(limit, bool)
            or not math.isfinite(limit)
            or limit <= 0
        ):
            raise InputError("limit_price", self.limit_price, "a positive finite number or None (no limit)")

    def to_dict(self) -> dict[str, str]:
        """Flat string fields, as a Redis stream entry (``limit_price`` only when there is one)."""
        # Field by field, in declaration order: dataclasses.asdict deep-copies and showed in the worker's
        # profile (one call per decided order, for its audit entry).
        out = {name: str(getattr(self, name)) for name in _STRING_FIELDS}
        if self.limit_price is not None:
            out["limit_price"] = str(self.limit_price)
        out["explanation"] = _SORTED_JSON.encode(self.explanation)
        return out

    @classmethod
    def from_dict(cls, data: dict[Any, Any]) -> SubmitOrder:
        """Parse a stream entry (bytes or text); raises InputError naming the bad field."""
        from quantbridge.redis_client import text

        return cls.from_fields({text(k): text(v) for k, v in data.items()})

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> SubmitOrder:
        """:meth:`from_dict` of fields already text (the worker's intake decodes each entry once)."""
        required = ("order_id", "ts", "strategy", "ticker", "side", "quantity", "reference_price")
        missing = [f for f in required if f not in fields]
        if missing:
            raise InputError("order", ",".join(missing), "fields " + ", ".join(required))
        numbers = {}
        for name in ("quantity", "reference_price", "limit_price"):
            if name not in fields:
                continue  # only limit_price is optional: the required ones were checked above
            if not _NUMBER.fullmatch(fields[name]):
                raise InputError(
                    name, fields[name][:80], "a number in plain ASCII decimal notation, e.g. 150.25"
                )
            numbers[name] = float(fields[name])
        raw = fields.get("explanation", "{}")
        if len(raw) > MAX_EXPLANATION_CHARS:
            raise InputError("explanation", f"{len(raw)} characters", f"at most {MAX_EXPLANATION_CHARS}")
        try:
            explanation = {str(k): float(v) for k, v in json.loads(raw).items()}
        except (ValueError, AttributeError, TypeError):
            raise InputError("explanation", raw[:80], "a JSON object feature -> contribution") from None
        return cls(
            order_id=fields["order_id"],
            ts=fields["ts"],
            strategy=fields["strategy"],
            ticker=fields["ticker"],
            side=fields["side"],
            model_version=fields.get("model_version", ""),
            explanation=explanation,
            **numbers,
        )
