"""Orders and their explanations reach Redis together (strategy.rebalance.publish_orders, real redis)."""

from __future__ import annotations

import json

import pytest

from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from strategy.rebalance import publish_orders

SCHEMA = RedisSchema("qb")


def orders(n):
    return [
        SubmitOrder(
            order_id=f"2020-01-02:s:T{i}:v1",
            ts="t",
            strategy="s",
            ticker=f"T{i}",
            side="BUY",
            quantity=10.0 + i,
            reference_price=100.0,
            explanation={"mom": 0.1},
        )
        for i in range(n)
    ]


def test_publish_when_run_twice_then_each_order_once_with_its_explanation(redis_client):
    batch = orders(4)
    records = [json.dumps({"order_id": o.order_id}) for o in batch]
    assert publish_orders(redis_client, SCHEMA, batch, records) == 4
    assert publish_orders(redis_client, SCHEMA, batch, records) == 0
    stream = [SubmitOrder.from_dict(f) for _, f in redis_client.xrange(SCHEMA.key("orders"))]
    assert stream == batch
    assert redis_client.hlen(SCHEMA.key("explanations")) == 4


def test_publish_when_some_orders_lost_then_rerun_publishes_exactly_the_missing(redis_client):
    batch = orders(5)
    records = [json.dumps({"order_id": o.order_id}) for o in batch]
    publish_orders(redis_client, SCHEMA, batch[:2], records[:2])  # a run that stopped after two orders
    assert publish_orders(redis_client, SCHEMA, batch, records) == 3
    ids = [f["order_id"] for _, f in redis_client.xrange(SCHEMA.key("orders"))]
    assert ids == [o.order_id for o in batch]


def test_publish_when_stream_unwritable_then_no_explanation_left_behind(redis_client):
    redis_client.set(SCHEMA.key("orders"), "not a stream")  # the XADD fails inside the script
    batch = orders(1)
    with pytest.raises(Exception, match="WRONGTYPE"):
        publish_orders(redis_client, SCHEMA, batch, [json.dumps({})])
    assert redis_client.hlen(SCHEMA.key("explanations")) == 0  # so a re-run will publish it


def test_publish_when_explanations_do_not_match_orders_then_error_names_field(redis_client):
    with pytest.raises(InputError, match="explanations"):
        publish_orders(redis_client, SCHEMA, orders(2), ["{}"])
    assert publish_orders(redis_client, SCHEMA, [], []) == 0
