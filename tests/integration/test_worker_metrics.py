"""The execution worker's Prometheus metrics, scraped over HTTP after real orders on the test redis-server."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.cli.main import main
from execution.venues import DEFAULT_VENUES
from execution.worker import ExecutionWorker
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from tests.conftest import _free_port
from tests.risk_support import publish_fresh_risk

SCHEMA = RedisSchema("qb")
TICKERS = ["AAPL", "MSFT", "XOM"]


def _submit(client, order_id, ticker="AAPL", side="BUY", quantity=100.0, price=150.0):
    client.xadd(
        SCHEMA.key("orders"),
        SubmitOrder(
            order_id=order_id,
            ts="2026-01-05T14:30:00+00:00",
            strategy="t",
            ticker=ticker,
            side=side,
            quantity=quantity,
            reference_price=price,
        ).to_dict(),
    )


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint as (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        body = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_worker_metrics_when_orders_processed_then_http_endpoint_counts_outcomes_fills_fees_latency(
    redis_client,
):
    publish_fresh_risk(redis_client, SCHEMA)
    worker = ExecutionWorker(
        redis_client, SCHEMA, "m1", TICKERS, esg={}, marks={"AAPL": 150.0, "MSFT": 30.0, "XOM": 100.0}
    )
    port = _free_port()
    server = worker.metrics.serve(port)
    try:
        _submit(redis_client, "f1")  # filled at one venue
        _submit(
            redis_client, "f2", ticker="MSFT", side="SELL", quantity=5000, price=30.0
        )  # split over venues
        _submit(redis_client, "f1")  # duplicate delivery
        _submit(redis_client, "big", quantity=2000, price=150.0)  # notional 300k > 250k
        redis_client.xadd(SCHEMA.key("orders"), {"order_id": "bad"})  # malformed
        assert worker.run(threading.Event(), block_ms=50, max_orders=5) == 5
        redis_client.set(SCHEMA.key("kill_switch"), json.dumps({"reason": "test"}))
        _submit(redis_client, "blocked", quantity=10)  # risk-increasing under kill
        assert worker.run(threading.Event(), block_ms=50, max_orders=1) == 1
        samples = scrape(port)
    finally:
        server.shutdown()

    states = {k: json.loads(v)["state"] for k, v in redis_client.hgetall(SCHEMA.key("order_state")).items()}
    expected = {"filled": 0.0, "cancelled": 0.0, "rejected": 2.0, "dead_letter": 1.0, "duplicate": 1.0}
    for state in ("FILLED", "CANCELLED"):
        expected[state.lower()] = float(sum(1 for s in states.values() if s == state))
    got = {o: samples[("qb_worker_orders_total", (("outcome", o),))] for o in expected}
    assert got == expected and got["filled"] + got["cancelled"] == 2

    fills = [f for _, f in redis_client.xrange(SCHEMA.key("fills"))]
    for venue in (v.name for v in DEFAULT_VENUES):
        mine = [f for f in fills if f["venue"] == venue]
        labels = (("venue", venue),)
        assert samples[("qb_worker_fills_total", labels)] == len(mine)
        assert samples[("qb_worker_fees_total", labels)] == pytest.approx(sum(float(f["fee"]) for f in mine))
        assert samples[("qb_worker_fill_quantity_total", labels)] == pytest.approx(
            sum(float(f["quantity"]) for f in mine)
        )
        assert samples[("qb_worker_slippage_bps_count", labels)] == len(mine)
        assert samples[("qb_worker_slippage_bps_sum", labels)] == pytest.approx(
            sum(float(f["slippage_bps"]) for f in mine)
        )
    assert len({f["venue"] for f in fills}) >= 2  # the MSFT order was split

    # Four decisions (two routes, two rejections); duplicates and dead letters decide nothing.
    assert samples[("qb_worker_decision_seconds_count", ())] == 4
    assert 0 < samples[("qb_worker_decision_seconds_sum", ())] < 4.0
    assert samples[("qb_worker_order_to_decision_seconds_count", ())] == 4
    assert samples[("qb_worker_kill_switch", ())] == 1.0


def test_qb_worker_when_explicit_metrics_port_busy_then_exit_3_naming_the_port(
    redis_client, settings, capsys
):
    from datetime import date

    import pandas as pd

    from quantbridge.lake import Lake

    # The worker only needs the lake's tradable universe; one partition written directly keeps this fast.
    part = Lake(settings.lake_root).price_partition(date(2020, 1, 2))
    part.mkdir(parents=True)
    pd.DataFrame({"ticker": ["AAPL", "MSFT"], "close": [75.09, 160.62]}).to_parquet(
        part / "part-00000.parquet"
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["worker", "--consumer", "c", "--max-orders", "1", "--metrics-port", str(port), "-q"])
    assert code == 3
    assert f"--metrics-port={port}" in capsys.readouterr().err
