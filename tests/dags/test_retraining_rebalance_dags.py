"""retraining then daily_rebalance through dag.test() on a small real lake: the three retraining tasks run,
the registry records the promotion decision and the book decision, and the rebalance trades the book that
decision names (the best baseline when no model beat it with significance)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from strategy.selection import read_decision
from tests.integration.test_retraining import _run
from tests.integration.test_synth_cli import write_prices


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Gradient boosting's OpenMP threads crawl on a busy 2-core machine (the suite runs beside other work):
    one thread keeps these tests fast and their results the same."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def test_retraining_then_rebalance_when_run_then_the_decided_book_trades(
    airflow_db, redis_client, tmp_path, monkeypatch
):
    lake = write_prices(tmp_path / "lake", date(2018, 1, 2), date(2019, 12, 31))
    monkeypatch.setenv("QB_LAKE_ROOT", str(lake.root))
    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))
    conf = {"model_kind": "gbm", "window_days": 400, "as_of": None}
    state, tasks = _run("retraining", datetime(2019, 12, 31, 23, tzinfo=UTC), conf)
    assert state == "success" and tasks == {"train": "success", "promote": "success", "decide": "success"}
    promotion = (lake.root / "models" / "promotion.json").read_text()
    assert '"reason"' in promotion and '"challenger_ic_t"' in promotion
    decision = read_decision(lake)
    assert decision["as_of"] == "2019-12-31" and decision["reason"]
    conf = {"date": "2019-12-31", "portfolio_value": 1_000_000, "max_weight": 0.15, "max_turnover": 2.0}
    state, tasks = _run("daily_rebalance", datetime(2019, 12, 31, 23, 45, tzinfo=UTC), conf)
    assert state == "success", tasks
    orders = [SubmitOrder.from_dict(f) for _, f in redis_client.xrange(RedisSchema("qb").key("orders"))]
    expected = "gbm_mv" if decision["trade"] == "model" else f"baseline_{decision['trade']}"
    assert orders and {o.strategy for o in orders} == {expected}
