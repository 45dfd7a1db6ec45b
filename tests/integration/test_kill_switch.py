"""The kill switch on a real redis-server: every change lands with its audit entry, an operator's switch is
never taken over or cleared by the sensor, a concurrent change is never cleared unseen, and an unreadable
value still blocks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from quantbridge import kill_switch
from quantbridge.audit import verify
from quantbridge.redis_schema import RedisSchema

SCHEMA = RedisSchema("qb")
KEY, STREAM = SCHEMA.key("kill_switch"), SCHEMA.key("audit")
OPERATOR, SENSOR = "operator:alice", "var_sensor"


class WriteAfterFirstGet:
    """A real client whose first GET of the switch is followed by another writer's SET (the race between
    reading the switch and the Lua call); everything else goes straight to Redis."""

    def __init__(self, client: Any, value: str) -> None:
        self._client, self._value, self._done = client, value, False

    def get(self, key: str) -> Any:
        got = self._client.get(key)
        if key == KEY and not self._done:
            self._done = True
            self._client.set(KEY, self._value)
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _audit(client) -> list[tuple[str, str, dict[str, Any]]]:
    return [(f["kind"], f["ref"], json.loads(f["payload"])) for _, f in client.xrange(STREAM)]


def test_read_when_off_then_none(redis_client):
    assert kill_switch.read(redis_client, SCHEMA) is None


@pytest.mark.parametrize("raw", ["MANUAL HALT", "[1, 2]", '"text"', "{broken"])
def test_read_when_value_is_not_a_json_object_then_unreadable_and_still_set(redis_client, raw):
    redis_client.set(KEY, raw)

    record = kill_switch.read(redis_client, SCHEMA)

    assert record == {"reason": "UNREADABLE", "raw": raw}


def test_engage_when_off_then_set_with_its_audit_entry_and_the_chain_verifies(redis_client):
    assert kill_switch.engage(
        redis_client, SCHEMA, by=SENSOR, reason="VAR_LIMIT_BREACHED", details={"var": 2.0, "limit": 1.0}
    )

    record = kill_switch.read(redis_client, SCHEMA)
    assert record["by"] == SENSOR and record["reason"] == "VAR_LIMIT_BREACHED" and record["var"] == 2.0
    assert "at" in record
    [(kind, ref, payload)] = _audit(redis_client)
    assert (kind, ref) == ("kill_switch_set", SENSOR) and payload["previous"] is None
    assert {k: payload[k] for k in record} == record
    assert verify(redis_client, SCHEMA)["ok"]


def test_engage_when_already_set_by_the_same_writer_then_false_and_nothing_written(redis_client):
    kill_switch.engage(redis_client, SCHEMA, by=SENSOR, reason="VAR_LIMIT_BREACHED")
    before = redis_client.get(KEY)

    assert kill_switch.engage(redis_client, SCHEMA, by=SENSOR, reason="AGAIN") is False

    assert redis_client.get(KEY) == before and redis_client.xlen(STREAM) == 1


def test_engage_when_operator_over_sensor_then_operator_takes_it_and_sensor_cannot_clear(redis_client):
    kill_switch.engage(redis_client, SCHEMA, by=SENSOR, reason="VAR_LIMIT_BREACHED")

    assert kill_switch.engage(redis_client, SCHEMA, by=OPERATOR, reason="desk halt")

    assert kill_switch.read(redis_client, SCHEMA)["by"] == OPERATOR
    assert _audit(redis_client)[-1][2]["previous"]["by"] == SENSOR
    assert not kill_switch.release(redis_client, SCHEMA, by=SENSOR, reason="VaR back", only_if_set_by=SENSOR)
    assert kill_switch.read(redis_client, SCHEMA)["by"] == OPERATOR


def test_engage_when_sensor_over_operator_then_false_and_the_operator_keeps_it(redis_client):
    kill_switch.engage(redis_client, SCHEMA, by=OPERATOR, reason="desk halt")

    assert kill_switch.engage(redis_client, SCHEMA, by=SENSOR, reason="VAR_LIMIT_BREACHED") is False

    assert kill_switch.read(redis_client, SCHEMA)["by"] == OPERATOR and redis_client.xlen(STREAM) == 1


def test_engage_when_operator_sets_it_between_read_and_write_then_sensor_decides_again_and_yields(
    redis_client,
):
    racing = WriteAfterFirstGet(redis_client, json.dumps({"reason": "desk halt", "by": OPERATOR}))

    assert kill_switch.engage(racing, SCHEMA, by=SENSOR, reason="VAR_LIMIT_BREACHED") is False

    assert kill_switch.read(redis_client, SCHEMA)["by"] == OPERATOR and redis_client.xlen(STREAM) == 0


def test_release_when_set_then_deleted_with_its_audit_entry(redis_client):
    kill_switch.engage(redis_client, SCHEMA, by=OPERATOR, reason="desk halt")

    assert kill_switch.release(redis_client, SCHEMA, by="operator:bob", reason="all clear")

    assert kill_switch.read(redis_client, SCHEMA) is None
    kind, ref, payload = _audit(redis_client)[-1]
    assert (kind, ref, payload["reason"]) == ("kill_switch_cleared", "operator:bob", "all clear")
    assert payload["cleared"]["by"] == OPERATOR
    assert verify(redis_client, SCHEMA)["ok"]


def test_release_when_off_then_false_and_nothing_written(redis_client):
    assert kill_switch.release(redis_client, SCHEMA, by=OPERATOR, reason="x") is False
    assert redis_client.dbsize() == 0


def test_release_when_sensor_owns_it_and_only_if_set_by_sensor_then_cleared(redis_client):
    kill_switch.engage(redis_client, SCHEMA, by=SENSOR, reason="VAR_LIMIT_BREACHED")

    assert kill_switch.release(redis_client, SCHEMA, by=SENSOR, reason="VaR back", only_if_set_by=SENSOR)

    assert not redis_client.exists(KEY) and [k for k, _, _ in _audit(redis_client)] == [
        "kill_switch_set",
        "kill_switch_cleared",
    ]


def test_release_when_operator_replaces_it_between_read_and_delete_then_not_cleared(redis_client):
    kill_switch.engage(redis_client, SCHEMA, by=SENSOR, reason="VAR_LIMIT_BREACHED")
    operator_value = json.dumps({"reason": "desk halt", "by": OPERATOR})
    racing = WriteAfterFirstGet(redis_client, operator_value)

    cleared = kill_switch.release(racing, SCHEMA, by=SENSOR, reason="VaR back", only_if_set_by=SENSOR)

    assert cleared is False and redis_client.get(KEY) == operator_value
    assert [k for k, _, _ in _audit(redis_client)] == ["kill_switch_set"]
    assert verify(redis_client, SCHEMA)["ok"]


def test_release_when_unreadable_and_only_if_set_by_sensor_then_kept(redis_client):
    redis_client.set(KEY, "MANUAL HALT")

    assert not kill_switch.release(redis_client, SCHEMA, by=SENSOR, reason="x", only_if_set_by=SENSOR)
    assert kill_switch.release(redis_client, SCHEMA, by=OPERATOR, reason="cleanup")

    assert _audit(redis_client)[-1][2]["cleared"] == {"reason": "UNREADABLE", "raw": "MANUAL HALT"}


@pytest.mark.parametrize("call", [kill_switch.engage, kill_switch.release])
def test_engage_or_release_when_by_or_reason_empty_then_value_error(redis_client, call):
    with pytest.raises(ValueError, match="by"):
        call(redis_client, SCHEMA, by="", reason="x")
    with pytest.raises(ValueError, match="reason"):
        call(redis_client, SCHEMA, by=OPERATOR, reason="")
