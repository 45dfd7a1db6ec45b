"""The independent post-trade check reading a real audit chain on a real redis-server: the limits timeline and
kill-switch episodes as the worker and quantbridge.kill_switch write them, fill times, a broken chain
refused, and a worker whose verdicts are wrong caught from the record alone."""

from __future__ import annotations

import json
import math
import threading
from datetime import date, datetime

import pandas as pd
import pytest

from execution.policy import PolicyEngine, PolicyVerdict
from execution.surveillance import check_fills, fill_times_from_audit, summary, timeline_from_audit
from execution.worker import ExecutionWorker
from quantbridge import kill_switch
from quantbridge.audit import AuditWriter, ChainBroken
from quantbridge.errors import InputError
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from tests.risk_support import publish_fresh_risk

SCHEMA = RedisSchema("qb")
LIMITS = PolicyEngine().data  # {"limits": {...}}, as the worker records it
TIGHT = {"limits": {**LIMITS["limits"], "max_order_notional": 1_000}}
DAY = date(2020, 3, 2)
MARKS = {"AAPL": 150.0, "MSFT": 30.0, "XOM": 100.0, "RRC": 10.0}
ESG = {"AAPL": 0.7, "MSFT": 0.6, "XOM": 0.2, "RRC": 0.5}


def audit_times(client, kind):
    """The recorded times (epoch seconds) of the chain's entries of ``kind``, read here independently."""
    return [
        datetime.fromisoformat(f["ts"]).timestamp()
        for _, f in client.xrange(SCHEMA.key("audit"))
        if f["kind"] == kind
    ]


def loaded(sha, data):
    return ("limits_loaded", "w1", {"sha256": sha, "limits": data, "folder": "policies"})


def test_timeline_from_audit_when_limits_reloaded_and_switch_set_cleared_then_timeline_and_episodes(
    redis_client,
):
    writer = AuditWriter(redis_client, SCHEMA)
    writer.commit([loaded("a" * 64, LIMITS)])
    writer.commit([("order", "o1", {"order_id": "o1"})])  # other kinds are skipped
    assert kill_switch.engage(redis_client, SCHEMA, by="var_sensor", reason="VAR_LIMIT")
    assert kill_switch.engage(redis_client, SCHEMA, by="operator:alice", reason="takeover")  # same episode
    assert kill_switch.release(redis_client, SCHEMA, by="operator:alice", reason="done")
    writer.commit([loaded("b" * 64, TIGHT)])
    assert kill_switch.engage(redis_client, SCHEMA, by="operator:bob", reason="halt")  # still set at the end

    timeline, episodes = timeline_from_audit(redis_client, SCHEMA)

    t_loads, t_sets = audit_times(redis_client, "limits_loaded"), audit_times(redis_client, "kill_switch_set")
    t_clear = audit_times(redis_client, "kill_switch_cleared")
    assert timeline == [(t_loads[0], "a" * 64, LIMITS["limits"]), (t_loads[1], "b" * 64, TIGHT["limits"])]
    assert episodes == [(t_sets[0], t_clear[0]), (t_sets[2], None)]

    # the timeline drives the check: 20 AAPL (3,000 at 150) is clean under the first limits, a breach of
    # the 1,000 loaded later; a BUY between the episodes is clean, one in the open episode is not
    between = (t_clear[0] + t_loads[1]) / 2
    orders = pd.DataFrame(
        [
            {"order_id": o, "ticker": "AAPL", "side": "BUY", "quantity": 20.0, "decision_price": 150.0}
            for o in ("early", "late")
        ]
    )
    fills = pd.DataFrame(
        [
            {"fill_id": "f1", "order_id": "early", "exec_day": DAY, "ticker": "AAPL", "side": "BUY"}
            | {"quantity": 20.0, "ts": between},
            {"fill_id": "f2", "order_id": "late", "exec_day": DAY, "ticker": "AAPL", "side": "BUY"}
            | {"quantity": 20.0, "ts": t_sets[2] + 0.5},
        ]
    )
    marks = {(DAY, t): p for t, p in MARKS.items()}
    got = check_fills(fills, orders, timeline, marks, ESG, episodes)
    assert [(v.rule, v.fill_id, v.limits_sha256) for v in got] == [
        ("KILL_SWITCH_ACTIVE", "f2", "b" * 64),
        ("NOTIONAL_EXCEEDS_MAX", "f2", "b" * 64),
    ]


def test_timeline_from_audit_when_chain_broken_then_refused_unless_told_not_to_verify(redis_client):
    AuditWriter(redis_client, SCHEMA).commit([loaded("a" * 64, LIMITS)])
    at = "2020-03-02T15:00:00+00:00"
    forged = {"kind": "kill_switch_cleared", "ref": "x", "ts": at, "payload": "{}"}  # no prev, no hash
    redis_client.xadd(SCHEMA.key("audit"), forged)
    with pytest.raises(ChainBroken, match="audit chain is broken"):
        timeline_from_audit(redis_client, SCHEMA)
    with pytest.raises(ChainBroken):
        fill_times_from_audit(redis_client, SCHEMA)
    # unverified, on the caller's word: a clear with no set before it means set before the record began
    _, episodes = timeline_from_audit(redis_client, SCHEMA, verify_chain=False)
    assert episodes == [(-math.inf, datetime.fromisoformat(at).timestamp())]
    redis_client.xadd(SCHEMA.key("audit"), {**forged, "kind": "limits_loaded", "payload": "not json"})
    with pytest.raises(InputError, match="payload"):
        timeline_from_audit(redis_client, SCHEMA, verify_chain=False)


def test_timeline_from_audit_when_empty_chain_then_nothing(redis_client):
    assert timeline_from_audit(redis_client, SCHEMA) == ([], [])
    assert fill_times_from_audit(redis_client, SCHEMA) == {}


class AllowAll(PolicyEngine):
    """A worker bug: every order allowed, while the real limits are loaded and recorded."""

    def evaluate_many(self, items):
        return [PolicyVerdict(True, ()) for _ in items]

    def evaluate(self, order, context):
        return PolicyVerdict(True, ())


def run_worker(client, policy):
    publish_fresh_risk(client, SCHEMA)
    sent = [("ok", "AAPL", 100.0), ("big", "AAPL", 1_700.0), ("rrc", "RRC", 100.0), ("xom", "XOM", 10.0)]
    worker = ExecutionWorker(client, SCHEMA, "w1", list(MARKS), esg=ESG, marks=MARKS, policy=policy)
    for oid, ticker, quantity in sent:
        order = SubmitOrder(oid, "2020-03-02T14:30:00+00:00", "test", ticker, "BUY", quantity, MARKS[ticker])
        client.xadd(SCHEMA.key("orders"), order.to_dict())
    assert worker.run(threading.Event(), block_ms=50, max_orders=len(sent)) == len(sent)
    times = fill_times_from_audit(client, SCHEMA)
    fills = pd.DataFrame(
        [
            {**f, "quantity": float(f["quantity"]), "exec_day": DAY, "ts": times[f["fill_id"]]}
            for _, f in client.xrange(SCHEMA.key("fills"))
        ]
    )
    orders = pd.DataFrame(
        [
            {"order_id": o, "ticker": t, "side": "BUY", "quantity": q, "decision_price": MARKS[t]}
            for o, t, q in sent
        ]
    )
    timeline, episodes = timeline_from_audit(client, SCHEMA)
    marks = {(DAY, t): p for t, p in MARKS.items()}  # the lake's closes of the day, in a test the same
    return check_fills(fills, orders, timeline, marks, ESG, episodes), fills, times


def test_check_fills_when_honest_worker_then_zero_violations_from_its_audit_chain(redis_client):
    violations, fills, times = run_worker(redis_client, PolicyEngine())
    assert set(fills["order_id"]) == {"ok"}  # the others were rejected before the fact
    assert set(times) == set(fills["fill_id"])
    assert violations == [] and summary(violations)["violations"] == 0


def test_check_fills_when_worker_verdicts_wrong_then_breaches_found_from_the_record(redis_client):
    violations, fills, _ = run_worker(redis_client, AllowAll())
    assert set(fills["order_id"]) == {"ok", "big", "rrc", "xom"}  # the bug let every order through
    assert summary(violations)["by_rule"] == {
        "ESG_EXCLUDED": (fills["order_id"] == "xom").sum(),
        "NOTIONAL_EXCEEDS_MAX": 1,
        "RESTRICTED_INSTRUMENT": 1,
    }
    assert {(v.rule, v.order_id) for v in violations} == {
        ("NOTIONAL_EXCEEDS_MAX", "big"),
        ("RESTRICTED_INSTRUMENT", "rrc"),
        ("ESG_EXCLUDED", "xom"),
    }
    sha = json.loads(
        next(f for _, f in redis_client.xrange(SCHEMA.key("audit")) if f["kind"] == "limits_loaded")[
            "payload"
        ]
    )["sha256"]
    assert {v.limits_sha256 for v in violations} == {sha}
