"""quantbridge.redis_client.Wire on a real redis-server: replies as sent, errors in step, a dropped connection
re-established, a script the server forgot loaded again."""

from __future__ import annotations

import pytest
import redis

from quantbridge.redis_client import Wire, stream_entries


def test_wire_when_commands_sent_together_then_replies_in_order_as_the_server_sends_them(redis_client):
    redis_client.hset("h", mapping={"a": "1", "b": "2"})
    wire = Wire(redis_client)

    got = wire.execute(("SET", "k", "v"), ("GET", "k"), ("HMGET", "h", "a", "zz"), ("EXISTS", "k", "h"))

    assert got == ["OK", "v", ["1", None], 2]
    flat = wire.execute(("HGETALL", "h"))[0]  # a flat list (RESP2) or a map (RESP3): as sent
    assert (flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))) == {
        "a": "1",
        "b": "2",
    }


def test_wire_when_one_command_errors_then_raised_after_all_replies_and_the_connection_stays_in_step(
    redis_client,
):
    wire = Wire(redis_client)
    redis_client.set("s", "text")

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        wire.execute(("SET", "a", "1"), ("HGET", "s", "f"), ("SET", "b", "2"))

    assert redis_client.mget("a", "b") == ["1", "2"]  # the commands after the error ran
    assert wire.execute(("GET", "a")) == ["1"]  # the next reply is this command's, not a stale one


def test_wire_when_connection_killed_then_error_raised_and_next_call_reconnects(redis_client):
    wire = Wire(redis_client)
    assert wire.execute(("CLIENT", "SETNAME", "wire-test")) == ["OK"]
    redis_client.client_kill_filter(_type=None, skipme=True)  # every other client's connection

    with pytest.raises(redis.ConnectionError):
        wire.execute(("PING",))

    assert wire.execute(("PING",)) == ["PONG"]


def test_wire_evalsha_when_the_server_forgot_the_script_then_loaded_and_run(redis_client):
    wire, source = Wire(redis_client), "return ARGV[1] .. KEYS[1]"
    script = redis_client.register_script(source)
    redis_client.script_flush()

    assert wire.evalsha(source, script.sha, ["k"], ["v"]) == "vk"
    assert redis_client.script_exists(script.sha) == [True]


def test_stream_entries_when_read_then_fields_as_dicts_and_deleted_entries_as_none(redis_client):
    redis_client.xgroup_create("s", "g", id="0", mkstream=True)
    first = redis_client.xadd("s", {"a": "1"})
    redis_client.xadd("s", {"b": "2"})
    wire = Wire(redis_client)
    read = ("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "s")

    assert stream_entries(wire.execute((*read, ">"))[0])[0][1][1] == {"b": "2"}
    redis_client.xdel("s", first)
    assert stream_entries(wire.execute((*read, "0"))[0]) == [
        [(first, None), (_second(redis_client), {"b": "2"})]
    ]
    assert stream_entries(wire.execute((*read, ">"))[0]) == []  # nothing new: nil


def _second(client) -> str:
    return client.xrange("s")[-1][0]
