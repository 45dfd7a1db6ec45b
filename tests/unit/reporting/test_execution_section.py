"""The report's execution section on fills built by hand (the shared summary, execution.costs, underneath)."""

from __future__ import annotations

import pytest
from PIL import Image

from reporting import RedisSnapshot
from reporting.sections.execution import execution_section, venue_cost_frame


def fill(fill_id, venue, quantity, price, fee, slippage_bps):
    """One entry as the fills stream holds it: every field is text."""
    return {
        "fill_id": fill_id,
        "venue": venue,
        "ticker": "AAPL",
        "quantity": str(quantity),
        "price": str(price),
        "fee": str(fee),
        "slippage_bps": str(slippage_bps),
        "ts": "2020-06-30T15:00:00+00:00",
    }


FILLS = [
    fill("f1", "ZULU", 100, 10.0, 0.05, 2.0),  # notional 1,000
    fill("f2", "ZULU", 300, 20.0, 0.60, 4.0),  # notional 6,000
    fill("f3", "ALPHA", 200, 50.0, 1.50, 0.5),  # notional 10,000
]


def test_venue_cost_frame_when_fills_then_report_columns_by_venue_name():
    frame = venue_cost_frame(FILLS)
    assert list(frame.index) == ["ALPHA", "ZULU"]  # by name on the page, not cheapest first
    assert list(frame.columns) == [
        "fills",
        "shares",
        "notional",
        "fees",
        "slippage_cost",
        "fees_bps",
        "slippage_bps",
    ]
    zulu = frame.loc["ZULU"]
    assert zulu["fills"] == 2 and zulu["shares"] == 400.0 and zulu["notional"] == 7_000.0
    assert zulu["slippage_cost"] == pytest.approx(0.2 + 2.4)
    assert zulu["fees_bps"] == pytest.approx(0.65 / 7_000 * 1e4)
    assert zulu["slippage_bps"] == pytest.approx(2.6 / 7_000 * 1e4)  # notional-weighted, as on the dashboard


def test_execution_section_when_fills_then_png_figures_and_left_out_count(tmp_path):
    bad = fill("f4", "ZULU", 10, "n/a", 0.1, 1.0)
    s = execution_section(RedisSnapshot(fills=[*FILLS, bad]), tmp_path)
    assert s.note == "" and s.png == "execution.png"
    with Image.open(tmp_path / "execution.png") as image:
        assert image.format == "PNG"
    assert s.figures["fills"] == 4
    assert s.figures["venues"]["ALPHA"] == {
        "fills": 1.0,
        "shares": 200.0,
        "notional": 10_000.0,
        "fees": 1.5,
        "slippage_cost": 0.5,
        "fees_bps": 1.5,
        "slippage_bps": 0.5,
    }
    assert "4 fills in the fills stream, orders dated 2020-06-30..2020-06-30, 1 without a usable" in s.body


def test_execution_section_when_no_fill_usable_then_note_and_no_picture(tmp_path):
    s = execution_section(RedisSnapshot(fills=[fill("f1", "", 10, 1.0, 0.1, 1.0)]), tmp_path)
    assert s.note.startswith("no data yet: fills without the fields venue, quantity") and s.png == ""
    assert "(1 in the stream, none usable)" in s.note
    assert list(tmp_path.iterdir()) == []


def test_execution_section_when_redis_down_or_stream_empty_then_note(tmp_path):
    assert execution_section(RedisSnapshot(error="Redis not reachable (x)"), tmp_path).note == (
        "no data yet: Redis not reachable (x)"
    )
    assert "the fills stream is empty" in execution_section(RedisSnapshot(), tmp_path).note
