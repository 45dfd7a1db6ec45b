"""Intake of the orders stream: validation and dead-letter reasons, no Redis (execution/intake.py)."""

from __future__ import annotations

import pytest

from execution.intake import intake

TICKERS = frozenset({"AAPL", "MSFT"})


def fields(**kw):
    base = {
        "order_id": "o1",
        "ts": "t",
        "strategy": "s",
        "ticker": "AAPL",
        "side": "BUY",
        "quantity": "10",
        "reference_price": "100",
    }
    base.update(kw)
    return base


def test_intake_when_entry_valid_then_order_parsed():
    item = intake(
        3, "1-0", {b"order_id": b"o1", **{k: v for k, v in fields().items() if k != "order_id"}}, TICKERS
    )
    assert item.dead is None and item.order.quantity == 10.0 and item.ref == "o1" and item.index == 3


@pytest.mark.parametrize(
    "raw, deliveries, reason",
    [
        (fields(quantity="nan"), 1, "MALFORMED: quantity"),
        (fields(quantity="1e300"), 1, "MALFORMED: quantity=1e+300 is above 1e+09 shares"),
        (fields(ticker="ZZZ"), 1, "UNKNOWN_TICKER: ticker=ZZZ"),
        (fields(strategy="x" * 10_000), 1, "PAYLOAD_TOO_LARGE: max=8192 bytes, size="),
        (fields(), 6, "MAX_DELIVERIES: delivered=6, max=5"),
    ],
)
def test_intake_when_entry_unusable_then_dead_letter_reason(raw, deliveries, reason):
    item = intake(0, "9-0", raw, TICKERS, deliveries=deliveries)
    assert item.dead.startswith(reason)
    assert (item.order is not None) == (deliveries > 1)  # a capped order is kept: an open one gets cancelled
    assert all(len(v) <= 256 for v in item.fields.values()) or reason.startswith(("MALFORMED", "UNKNOWN"))


def test_intake_when_bytes_not_utf8_then_dead_letter_names_the_field():
    raw = {
        b"order_id": b"o1",
        b"strategy": b"\xff\xfe",
        **{k.encode(): v.encode() for k, v in fields().items() if k not in ("order_id", "strategy")},
    }
    item = intake(0, "9-0", raw, TICKERS)
    assert item.order is None and item.dead == "MALFORMED: field 'strategy' is not UTF-8 text"
    assert item.fields["strategy"] == "\ufffd\ufffd"


def test_intake_when_order_id_unusable_then_audited_under_the_entry_id():
    assert intake(0, "9-0", {"order_id": "x" * 500}, TICKERS).ref == "9-0"
    assert intake(0, "9-0", {"order_id": "a|b"}, TICKERS).ref == "a|b"
