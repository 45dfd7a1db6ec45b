"""Reconciliation of the worker's positions and fills against lake marks, on a real Redis."""

from __future__ import annotations

import json
import threading
from datetime import date

import pytest

from app.cli.main import main
from execution.reconcile import reconcile
from execution.worker import ExecutionWorker, lake_marks
from marketdata.feed import SkfolioFeed
from marketdata.ingest import ingest_range
from quantbridge.lake import Lake
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from tests.risk_support import publish_fresh_risk

SCHEMA = RedisSchema("qb")
DAY = date(2020, 1, 6)


@pytest.fixture
def traded(redis_client, settings, spark):
    ingest_range(settings, SkfolioFeed(), date(2020, 1, 2), DAY, spark=spark)
    marks = lake_marks(Lake(settings.lake_root))
    publish_fresh_risk(redis_client, SCHEMA)
    worker = ExecutionWorker(redis_client, SCHEMA, "w", ["AAPL", "MSFT"], {}, marks=marks)
    for i, (ticker, side, qty) in enumerate(
        [("AAPL", "BUY", 100), ("MSFT", "BUY", 50), ("AAPL", "SELL", 30)]
    ):
        redis_client.xadd(
            SCHEMA.key("orders"),
            SubmitOrder(
                order_id=f"o{i}",
                ts="2020-01-06T15:00:00+00:00",
                strategy="t",
                ticker=ticker,
                side=side,
                quantity=float(qty),
                reference_price=marks[ticker],
            ).to_dict(),
        )
    worker.run(threading.Event(), block_ms=50, max_orders=3)
    return Lake(settings.lake_root)


def test_reconcile_when_books_agree_then_no_break_and_pnl_from_lake_marks(traded, redis_client):
    out = reconcile(redis_client, SCHEMA, traded, DAY)
    assert out["ok"] and out["breaks"] == []
    closes = traded.read_close_matrix()
    rows = {r["ticker"]: r for r in out["positions"]}
    assert rows["AAPL"]["position"] == 70 and rows["AAPL"]["mark"] == closes.loc[DAY, "AAPL"]
    expected = 70 * (closes.loc[DAY, "AAPL"] - closes.iloc[-2]["AAPL"]) + 50 * (
        closes.loc[DAY, "MSFT"] - closes.iloc[-2]["MSFT"]
    )
    assert out["risk_day_pnl"] == pytest.approx(expected)
    assert out["execution_pnl_to_date"] == pytest.approx(out["market_value"] + out["execution_cash"])


def test_reconcile_when_position_drifts_or_mark_missing_then_each_break_has_its_cause(
    traded, redis_client, capsys
):
    redis_client.hincrbyfloat(SCHEMA.key("positions"), "AAPL", 5)  # an update applied twice, say
    redis_client.hset(SCHEMA.key("positions"), "ZZZ", 10)  # held, no fills, no lake price
    redis_client.xadd(
        SCHEMA.key("fills"),
        {"fill_id": "x", "ticker": "QQQ", "side": "BUY", "quantity": "1", "price": "1", "fee": "0"},
    )
    redis_client.hset(SCHEMA.key("positions"), "QQQ", 1)
    assert main(["reconcile", "--date", DAY.isoformat(), "--json", "-q"]) == 1
    out = json.loads(capsys.readouterr().out)
    breaks = {(b["ticker"], b["break"]) for b in out["breaks"]}
    assert breaks == {
        ("AAPL", "POSITION_VS_FILLS"),
        ("ZZZ", "POSITION_VS_FILLS"),
        ("ZZZ", "NO_MARK"),
        ("QQQ", "UNKNOWN_INSTRUMENT"),
    }
    assert "counted twice" in next(b["cause"] for b in out["breaks"] if b["ticker"] == "AAPL")
