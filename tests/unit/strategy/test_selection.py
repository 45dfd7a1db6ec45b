"""The baseline fallback: with no model that beats the best baseline with significance, the book decision
names that baseline with its reason, and the rebalance (the daily_rebalance DAG's function) trades it."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from execution.market import load_adv, sqrt_impact_bps
from execution.venues import DEFAULT_VENUES
from quantbridge.errors import NoDataError
from quantbridge.lake import Lake
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from strategy.baselines import BASELINES
from strategy.costs import CostModel
from strategy.features import build_features
from strategy.model import fit
from strategy.rebalance import rebalance
from strategy.registry import champion, promote_if_better, register
from strategy.selection import decide_book, read_decision


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Gradient boosting's OpenMP threads crawl on a busy 2-core machine (the suite runs beside other work):
    one thread keeps these tests fast and their results the same."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


SCHEMA = RedisSchema("qb")
COSTS = CostModel.from_venues(DEFAULT_VENUES, load_adv(), sqrt_impact_bps)


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    from marketdata.feed import SkfolioFeed

    frame = SkfolioFeed().fetch(date(2017, 11, 1), date(2019, 12, 31))
    return frame.pivot(index="date", columns="ticker", values="close").iloc[:, :8]


@pytest.fixture
def lake(tmp_path, closes, monkeypatch) -> Lake:
    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))  # the orders key ring publish_orders signs with
    lake = Lake(tmp_path / "lake")
    for day, row in closes.iterrows():
        folder = lake.price_partition(day)
        folder.mkdir(parents=True)
        row.rename("close").rename_axis("ticker").reset_index().to_parquet(folder / "part-0.parquet")
    return lake


def test_decide_when_no_champion_then_best_baseline_recorded_and_rebalance_trades_it(lake, redis_client):
    end = date(2019, 12, 31)
    record = decide_book(lake, end, COSTS, top_k=3)
    assert record["trade"] in BASELINES and "no champion" in record["reason"]
    assert {r["book"] for r in record["rows"]} == set(BASELINES)
    best = max(record["rows"], key=lambda r: r["sharpe"])["book"]
    assert record["trade"] == best and read_decision(lake)["trade"] == best
    out = rebalance(lake, redis_client, SCHEMA, end)
    assert out["book"] == best and out["model_version"] == f"baseline-{best}" and out["published"] > 0
    orders = [SubmitOrder.from_dict(f) for _, f in redis_client.xrange(SCHEMA.key("orders"))]
    assert orders and {o.strategy for o in orders} == {f"baseline_{best}"}
    assert sum(out["weights"].values()) == pytest.approx(1.0)
    stored = json.loads(redis_client.hget(SCHEMA.key("explanations"), orders[0].order_id))
    assert stored["baseline"] == best and stored["reason"] == record["reason"]


def test_decide_when_champion_without_significant_edge_then_baseline_trades_with_the_reason(lake, closes):
    panel = build_features(closes)
    cut = date(2018, 12, 31)
    meta = {"as_of": "2019-12-31", "train_end": cut.isoformat(), "metrics": {"ic": 0.0}}
    promote_if_better(lake, register(lake, fit(panel[panel["date"] <= cut]), meta, "v1"), min_ic_t=-np.inf)
    assert champion(lake).version == "v1"
    record = decide_book(lake, date(2019, 12, 31), COSTS, top_k=3)
    assert record["champion"] == "v1" and record["period"][0] > "2019-01-08"
    model = next(r for r in record["rows"] if r["book"] == "model")
    assert record["trade"] != "model" and record["trade"] == record["decision"]["best_baseline"]
    assert (model["ic_t"] < 2.0 and "IC t" in record["reason"]) or "edge" in record["reason"]


def test_rebalance_when_no_decision_and_no_champion_then_equal_weight_says_so(lake, redis_client):
    from strategy.rebalance import NO_DECISION

    out = rebalance(lake, redis_client, SCHEMA, date(2019, 12, 31))
    assert out["book"] == "equal_weight" and out["published"] > 0
    weights = [w for w in out["weights"].values() if w > 0]
    assert len(weights) == 8 and max(weights) == pytest.approx(min(weights))
    (entry_id, fields), *_ = redis_client.xrange(SCHEMA.key("orders"))
    stored = json.loads(redis_client.hget(SCHEMA.key("explanations"), fields["order_id"]))
    assert stored["reason"] == NO_DECISION
    (lake.root / "models").mkdir()
    (lake.root / "models" / "decision.json").write_text(json.dumps({"trade": "model", "reason": "x"}))
    with pytest.raises(NoDataError, match="no champion"):  # the decision names a model the registry lost
        rebalance(lake, redis_client, SCHEMA, date(2019, 12, 30))
