"""The worker and governance on a real redis-server: it switches to a newly activated policy revision between
batches (on the record), refuses one that does not verify and keeps judging by the one it has, refuses to
start on an active revision that does not verify, and names the revision in every verdict and dead letter."""

from __future__ import annotations

import json
import threading

import pytest

from execution.policy import PolicyEngine
from execution.worker import ExecutionWorker
from quantbridge.errors import ServiceError
from tests.integration.test_worker import MARKS, SCHEMA, TICKERS, read_batch, submit
from tests.risk_support import publish_fresh_risk


@pytest.fixture
def client(redis_client):
    publish_fresh_risk(redis_client, SCHEMA)
    return redis_client


def audit(client, kind=None):
    rows = [(f["kind"], f["ref"], json.loads(f["payload"])) for _, f in client.xrange(SCHEMA.key("audit"))]
    return [r for r in rows if kind is None or r[0] == kind]


def activate(client, revision):
    """What governance.release.activate leaves for the workers (its own tests cover the approvals)."""
    client.set(SCHEMA.key("policy_active"), json.dumps({"revision": revision, "by": "test"}))


class Bundles:
    """A loader over engines known by revision, standing in for the lake's verified bundle store: the
    verification itself (files, signature, approvals) is tested with the real store in its own tests."""

    def __init__(self, *engines: PolicyEngine) -> None:
        self.engines = {e.revision: e for e in engines}
        self.calls: list[str] = []

    def __call__(self, revision: str) -> PolicyEngine:
        self.calls.append(revision)
        if revision not in self.engines:
            raise ValueError(f"bundle {revision}: file data.json does not match the manifest")
        return self.engines[revision]


def worker(client, loader, **kw):
    return ExecutionWorker(
        client, SCHEMA, "w1", TICKERS, {"AAPL": 0.7}, marks=MARKS, policy_loader=loader, **kw
    )


def test_worker_when_revision_activated_then_switches_between_batches_and_verdicts_name_it(client):
    base, tight = PolicyEngine(), PolicyEngine(data_overrides={"max_order_notional": 1000})
    bundles = Bundles(base, tight)
    w = worker(client, bundles, policy_check_s=3600)  # only forced checks in this test
    submit(client, "before", quantity=100)  # 15,000 notional: allowed by the repository's limits
    w.process_batch(read_batch(client))
    activate(client, tight.revision)
    assert w.refresh_policy() == base.revision  # not due yet (checked at most every policy_check_s)
    assert w.refresh_policy(force=True) == tight.revision
    submit(client, "after", quantity=100)
    outcome = w.process_batch(read_batch(client))[0]
    assert outcome.state == "REJECTED" and outcome.reasons[0].startswith("NOTIONAL_EXCEEDS_MAX")
    verdicts = {ref: p["policy_revision"] for kind, ref, p in audit(client, "verdict")}
    assert verdicts == {"before": base.revision, "after": tight.revision}
    loads = audit(client, "limits_loaded")
    assert [p["revision"] for _, _, p in loads] == [base.revision, tight.revision]
    assert (
        loads[1][2]["previous"] == base.revision
        and loads[1][2]["limits"]["limits"]["max_order_notional"] == 1000
    )
    state = json.loads(client.hget(SCHEMA.key("policy_workers"), "w1"))
    assert state["revision"] == tight.revision and state["refused"] is None


def test_worker_when_active_revision_does_not_verify_then_refused_on_record_and_old_one_kept(client):
    base = PolicyEngine()
    bundles = Bundles(base)
    w = worker(client, bundles, policy_check_s=0.0)
    activate(client, "f" * 64)
    assert w.refresh_policy() == base.revision
    assert w.refresh_policy() == base.revision and bundles.calls == ["f" * 64]  # refused once, not retried
    (refusal,) = audit(client, "policy_refused")
    assert refusal[2]["revision"] == "f" * 64 and "does not match the manifest" in refusal[2]["reason"]
    assert refusal[2]["kept"] == base.revision
    assert json.loads(client.hget(SCHEMA.key("policy_workers"), "w1"))["refused"] == "f" * 64
    # the loop goes on judging by the old revision
    submit(client, "o1", quantity=10)
    assert w.run(threading.Event(), block_ms=20, max_orders=1) == 1
    assert audit(client, "verdict")[0][2]["policy_revision"] == base.revision


def test_worker_when_started_on_active_revision_that_does_not_verify_then_refuses_to_start(client):
    activate(client, "e" * 64)
    with pytest.raises(ServiceError, match="does not verify.*qb policy rollback"):
        worker(client, Bundles(PolicyEngine()))
    client.set(SCHEMA.key("policy_active"), "not json")  # what a stray writer could leave
    with pytest.raises(ServiceError, match="does not verify"):
        worker(client, Bundles(PolicyEngine()))


def test_worker_when_active_record_unreadable_then_refused_and_old_revision_kept(client):
    base = PolicyEngine()
    w = worker(client, Bundles(base), policy_check_s=0.0)
    client.set(SCHEMA.key("policy_active"), '{"revision": "x"}')
    assert w.refresh_policy() == base.revision
    (refusal,) = audit(client, "policy_refused")
    assert refusal[2]["revision"] == "unreadable" and "policy_active revision" in refusal[2]["reason"]


def test_worker_when_started_with_active_revision_then_judges_by_it_from_the_first_order(client):
    tight = PolicyEngine(data_overrides={"max_order_notional": 1000})
    activate(client, tight.revision)
    w = worker(client, Bundles(tight))
    assert w.policy is tight
    submit(client, "o1", quantity=100)
    assert w.process_batch(read_batch(client))[0].state == "REJECTED"


def test_worker_when_entry_dead_lettered_then_letter_names_policy_revision(client):
    w = ExecutionWorker(client, SCHEMA, "w1", TICKERS, marks=MARKS)
    client.xadd(SCHEMA.key("orders"), {"order_id": "x", "quantity": "abc"})
    w.process_batch(read_batch(client))
    (letter,) = [f for _, f in client.xrange(SCHEMA.key("dead_letter"))]
    assert letter["policy_revision"] == w.policy.revision != ""


# --- the production wiring (execution.worker.governed): real key rings, real bundles, real releases -------
@pytest.fixture
def governed_env(client, lake_root, tmp_path, monkeypatch):
    from quantbridge.lake import Lake
    from quantbridge.settings import load_settings

    monkeypatch.setenv("QB_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("QB_POLICY_CHECK_S", "0.001")
    settings = load_settings()
    return client, settings, Lake(settings.lake_root)


def released(env, changes):
    """A revision proposed by alice and released by carol and dave (governance.release, as the DAG does)."""
    from governance import release
    from quantbridge.signing import keyring

    client, settings, lake = env
    ring = keyring(settings, "policy")
    proposal = release.propose(
        lake, ring, author="alice", reason="test", changes=changes, client=client, schema=SCHEMA
    )
    approvals = [
        {"user": "carol", "at": "2026-01-01T10:00:00+00:00", "task": "approve_compliance"},
        {"user": "dave", "at": "2026-01-01T10:05:00+00:00", "task": "approve_risk"},
    ]
    release.activate(client, SCHEMA, lake, ring, proposal["revision"], approvals, "policy_release")
    return proposal["revision"]


def signed_submit(env, *orders):
    from strategy.rebalance import publish_orders

    client, settings, _ = env
    return publish_orders(client, SCHEMA, list(orders), ["{}"] * len(orders))


def make(order_id, quantity=100.0, ticker="AAPL"):
    from quantbridge.messages import SubmitOrder

    return SubmitOrder(order_id, "2026-01-05T14:30:00+00:00", "test", ticker, "BUY", quantity, MARKS[ticker])


def test_governed_worker_when_orders_signed_forged_or_altered_then_only_signed_ones_traded(governed_env):
    from execution.worker import governed

    client, settings, lake = governed_env
    w = ExecutionWorker(client, SCHEMA, "w1", TICKERS, {"AAPL": 0.7}, marks=MARKS, **governed(settings, lake))
    assert signed_submit(governed_env, make("good"), make("victim")) == 2
    entries = read_batch(client)
    # a copy of a signed entry with its quantity raised, and an unsigned order injected by any Redis writer
    altered = dict(entries[1][1], quantity="5000", order_id="altered")
    client.xadd(SCHEMA.key("orders"), altered)
    submit(client, "forged", quantity=10)
    outcomes = w.process_batch(entries + read_batch(client))
    assert [o.state for o in outcomes] == ["FILLED", "FILLED", "DEAD_LETTER", "DEAD_LETTER"]
    letters = {f["entry_id"]: f["reason"] for _, f in client.xrange(SCHEMA.key("dead_letter"))}
    reasons = sorted(letters.values())
    assert reasons[0].startswith("BAD_SIGNATURE: leaf not under root")  # the altered copy
    assert reasons[1].startswith("BAD_SIGNATURE: unsigned order")  # the injected one
    assert "altered" not in {ref for _, ref, _ in audit(client, "verdict")}  # never judged, never traded


def test_governed_worker_when_release_activated_then_switches_and_refuses_a_tampered_one(governed_env):
    from execution.bundle import bundle_dir
    from execution.worker import governed

    client, settings, lake = governed_env
    w = ExecutionWorker(client, SCHEMA, "w1", TICKERS, {"AAPL": 0.7}, marks=MARKS, **governed(settings, lake))
    tight = released(governed_env, {"max_order_notional": 1000})
    assert w.refresh_policy(force=True) == tight
    assert signed_submit(governed_env, make("big")) == 1
    assert w.process_batch(read_batch(client))[0].state == "REJECTED"
    # a second release whose stored data.json is then loosened on disk: refused, the tight one kept
    loose = released(governed_env, {"max_order_notional": 2000})
    data = bundle_dir(lake, loose) / "data.json"
    data.write_text(data.read_text().replace("2000", "9999999"))
    assert w.refresh_policy(force=True) == tight
    (refusal,) = audit(client, "policy_refused")
    assert refusal[2]["revision"] == loose and "data.json" in refusal[2]["reason"]
    assert json.loads(client.hget(SCHEMA.key("policy_workers"), "w1"))["refused"] == loose


def test_governed_worker_when_active_record_deleted_from_redis_then_refuses_to_start_until_restored(
    governed_env,
):
    from execution.bundle import active_record_path
    from execution.worker import governed
    from governance import release
    from quantbridge.signing import keyring

    client, settings, lake = governed_env
    tight = released(governed_env, {"max_order_notional": 1000})
    client.delete(SCHEMA.key("policy_active"))  # what any process that can write Redis could do
    with pytest.raises(ServiceError, match=f"lake's signed record names revision {tight}"):
        ExecutionWorker(client, SCHEMA, "w1", TICKERS, marks=MARKS, **governed(settings, lake))
    # a forged lake copy does not pass either (the policy key signs it)
    path = active_record_path(lake)
    saved = path.read_text()
    path.write_text(saved.replace(tight, "0" * 64))
    with pytest.raises(ServiceError, match="signature does not verify"):
        ExecutionWorker(client, SCHEMA, "w1", TICKERS, marks=MARKS, **governed(settings, lake))
    path.write_text(saved)
    # restored by a rollback to the approved revision (no new approval): the worker starts on it
    release.rollback(client, SCHEMA, lake, keyring(settings, "policy"), tight, "carol", "restore the record")
    w = ExecutionWorker(client, SCHEMA, "w1", TICKERS, marks=MARKS, **governed(settings, lake))
    assert w.policy.revision == tight
