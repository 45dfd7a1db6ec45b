"""Effects land in the same Lua call as their audit entries, on a real redis-server: guards first (a failed
guard writes nothing), then entries + head, then every kind of effect."""

from __future__ import annotations

import pytest

from quantbridge.audit import AuditWriter, Effects, GuardFailed, append, verify
from quantbridge.redis_schema import RedisSchema

SCHEMA = RedisSchema("qb")
STREAM, HEAD = SCHEMA.key("audit"), SCHEMA.key("audit_head")


def _snapshot(client) -> dict[str, object]:
    """Every key's type and content, to prove a refused call wrote nothing."""
    out: dict[str, object] = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        out[key] = {"string": client.get, "hash": client.hgetall, "stream": client.xrange}[kind](key)
    return out


def test_commit_when_effects_of_every_kind_then_all_land_with_the_entries(redis_client):
    redis_client.set("qb:t:old", "x")
    redis_client.hset("qb:t:h", mapping={"gone": "1", "keep": "2"})
    redis_client.hset("qb:t:inflight", mapping={"AAPL": "10"})
    redis_client.xgroup_create("qb:t:orders", "workers", id="0", mkstream=True)
    order_id = redis_client.xadd("qb:t:orders", {"id": "o1"})
    redis_client.xreadgroup("workers", "c1", {"qb:t:orders": ">"})
    writer = AuditWriter(redis_client, SCHEMA)
    effects = Effects(
        state_key="qb:t:state",
        create=(("o1", "NEW"),),
        update=(("o2", "FILLED"),),
        stream="qb:t:orders",
        group="workers",
        ack=(order_id,),
        guards=(
            ("qb:t:old", None, "x"),
            ("qb:t:h", "keep", "2"),
            ("qb:t:absent", None, None),
            ("qb:t:h", "nofield", None),
        ),
        set_keys=(("qb:t:new", "v"),),
        delete_keys=("qb:t:old",),
        hset=(("qb:t:h", "added", "3"),),
        hdel=(("qb:t:h", "gone"),),
        hincr=(("qb:t:inflight", "AAPL", 2.5), ("qb:t:inflight", "MSFT", -1.0)),
        xadd=(("qb:t:dead", (("id", "o9"), ("why", "poison"))),),
    )

    written, created = writer.commit(
        [("order", "o1", {"q": 1}), ("dead_letter", "o9", {"why": "poison"})], effects
    )

    assert len(written) == 2 and created == [True]
    assert redis_client.hgetall("qb:t:state") == {"o1": "NEW", "o2": "FILLED"}
    assert redis_client.xpending("qb:t:orders", "workers")["pending"] == 0
    assert redis_client.get("qb:t:new") == "v" and not redis_client.exists("qb:t:old")
    assert redis_client.hgetall("qb:t:h") == {"keep": "2", "added": "3"}
    assert redis_client.hgetall("qb:t:inflight") == {"AAPL": "12.5", "MSFT": "-1"}
    assert [f for _, f in redis_client.xrange("qb:t:dead")] == [{"id": "o9", "why": "poison"}]
    assert redis_client.get(HEAD) == written[-1][1]
    assert verify(redis_client, SCHEMA)["ok"]


def test_commit_when_hincr_brings_a_field_to_zero_then_the_field_is_deleted(redis_client):
    redis_client.hset("qb:t:inflight", mapping={"AAPL": "0.3", "MSFT": "5"})
    writer = AuditWriter(redis_client, SCHEMA)

    writer.commit([("release", "o1", {})], Effects(hincr=(("qb:t:inflight", "AAPL", -0.1),) * 3))

    assert redis_client.hgetall("qb:t:inflight") == {"MSFT": "5"}  # 0.3 - 3 x 0.1 is ~5.5e-17, not kept


@pytest.mark.parametrize(
    "guard",
    [
        ("qb:t:k", None, "other"),
        ("qb:t:k", None, None),
        ("qb:t:h", "f", None),
        ("qb:t:h", "f", "2"),
        ("qb:t:missing", None, "1"),
        ("qb:t:h", "nope", "1"),
    ],
)
def test_commit_when_a_guard_fails_then_nothing_is_written_and_guard_failed_names_it(redis_client, guard):
    append(redis_client, SCHEMA, "order", "o0", {})
    redis_client.set("qb:t:k", "v")
    redis_client.hset("qb:t:h", "f", "1")
    before = _snapshot(redis_client)
    effects = Effects(
        guards=(("qb:t:k", None, "v"), guard),
        state_key="qb:t:state",
        create=(("o1", "NEW"),),
        set_keys=(("qb:t:k", "changed"),),
        delete_keys=("qb:t:h",),
        hincr=(("qb:t:h", "g", 1.0),),
        xadd=(("qb:t:dead", (("a", "b"),)),),
    )

    with pytest.raises(GuardFailed) as failed:
        AuditWriter(redis_client, SCHEMA).commit([("order", "o1", {"q": 1})], effects)

    assert _snapshot(redis_client) == before
    key, field, expected = guard
    assert (failed.value.key, failed.value.field, failed.value.expected) == (key, field, expected)
    assert key in str(failed.value) and "nothing was written" in str(failed.value)


def test_guard_failed_when_raised_then_actual_is_the_value_found(redis_client):
    redis_client.hset("qb:t:h", "f", "1")

    with pytest.raises(GuardFailed) as failed:
        AuditWriter(redis_client, SCHEMA).commit([], Effects(guards=(("qb:t:h", "f", "2"),)))

    assert failed.value.actual == "1" and "found '1'" in str(failed.value) and "field f" in str(failed.value)


def test_settle_when_queued_attempt_guard_fails_then_guard_failed_and_the_pipeline_rest_applies(redis_client):
    writer = AuditWriter(redis_client, SCHEMA)
    pipe = redis_client.pipeline(transaction=False)
    pipe.set("qb:t:other", "1")
    pending = writer.queue(
        pipe, [("order", "o1", {})], Effects(guards=(("qb:t:k", None, "v"),), set_keys=(("qb:t:k", "w"),))
    )

    reply = pipe.execute()

    with pytest.raises(GuardFailed):
        writer.settle(pending, reply[-1])
    assert redis_client.xlen(STREAM) == 0 and not redis_client.exists("qb:t:k")


def test_settle_when_head_moved_and_guard_broken_meanwhile_then_the_retry_checks_it_again(redis_client):
    writer, other = AuditWriter(redis_client, SCHEMA), AuditWriter(redis_client, SCHEMA)
    redis_client.set("qb:t:k", "v")
    pipe = redis_client.pipeline(transaction=False)
    pending = writer.queue(
        pipe, [("order", "o1", {})], Effects(guards=(("qb:t:k", None, "v"),), delete_keys=("qb:t:k",))
    )
    other.append_many([("fill", "o0", {})])  # moves the head: the queued attempt will be refused...
    redis_client.set("qb:t:k", "changed")  # ...and by the retry, the guarded value has changed

    reply = pipe.execute()

    with pytest.raises(GuardFailed):
        writer.settle(pending, reply[-1])
    assert redis_client.get("qb:t:k") == "changed" and redis_client.xlen(STREAM) == 1


def test_settle_when_head_moved_and_guard_holds_then_rechained_and_applied(redis_client):
    writer, other = AuditWriter(redis_client, SCHEMA), AuditWriter(redis_client, SCHEMA)
    redis_client.set("qb:t:k", "v")
    pipe = redis_client.pipeline(transaction=False)
    pending = writer.queue(
        pipe, [("order", "o1", {})], Effects(guards=(("qb:t:k", None, "v"),), delete_keys=("qb:t:k",))
    )
    other.append_many([("fill", "o0", {})])

    written, _ = writer.settle(pending, pipe.execute()[-1])

    assert not redis_client.exists("qb:t:k") and redis_client.get(HEAD) == written[-1][1]
    assert [f["kind"] for _, f in redis_client.xrange(STREAM)] == ["fill", "order"]
    assert verify(redis_client, SCHEMA)["ok"]


def test_commit_when_effects_only_then_applied_without_moving_the_head(redis_client):
    append(redis_client, SCHEMA, "order", "o0", {})
    head = redis_client.get(HEAD)

    written, created = AuditWriter(redis_client, SCHEMA).commit([], Effects(set_keys=(("qb:t:k", "v"),)))

    assert (written, created) == ([], []) and redis_client.get("qb:t:k") == "v"
    assert redis_client.get(HEAD) == head and redis_client.xlen(STREAM) == 1


def test_commit_when_nothing_to_do_then_no_call(redis_client):
    assert AuditWriter(redis_client, SCHEMA).commit([]) == ([], [])
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    "effects, word",
    [
        (Effects(create=(("o1", "NEW"),)), "state_key"),
        (Effects(ack=("1-0",), stream="s"), "group"),
        (Effects(hincr=(("k", "f", float("nan")),)), "finite"),
        (Effects(xadd=(("k", ()),)), "pairs"),
    ],
)
def test_commit_when_effects_malformed_then_value_error_names_it(redis_client, effects, word):
    with pytest.raises(ValueError, match=word):
        AuditWriter(redis_client, SCHEMA).commit([("order", "o1", {})], effects)
    assert redis_client.dbsize() == 0
