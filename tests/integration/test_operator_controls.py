"""Operator controls through the real ``qb`` CLI on a real redis-server: ``qb kill-switch on|off|status``,
``qb order submit`` (flags, CSV, JSON Lines) and ``qb order status``. Every change leaves an audit entry
naming who and why, and ``qb audit verify`` passes afterwards; the VaR sensor never clears or takes over an
operator's switch."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, timedelta

import numpy as np
import pandas as pd
import pytest

from app.cli.main import main
from quantbridge import kill_switch
from quantbridge.lake import Lake
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema

SCHEMA = RedisSchema("qb")
TICKERS = ("AAPL", "MSFT", "XOM")
LAST = date(2020, 3, 31)


def run_json(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main([*argv, "--json", "--quiet"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else {}), captured.err


@pytest.fixture
def operator(monkeypatch) -> str:
    """The login name the CLI reads (getpass: LOGNAME, then USER)."""
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.setenv("USER", "alice")
    return "operator:alice"


@pytest.fixture
def lake(settings) -> Lake:
    """40 business days of closes for three tickers, the last on 2020-03-31 (seeded random walk)."""
    lake = Lake(settings.lake_root)
    rng = np.random.default_rng(7)
    days = [LAST - timedelta(days=i) for i in range(60)]
    days = sorted(d for d in days if d.weekday() < 5)[-40:]
    prices = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(len(days), len(TICKERS))), axis=0))
    for day, row in zip(days, prices, strict=True):
        folder = lake.price_partition(day)
        folder.mkdir(parents=True)
        frame = pd.DataFrame({"ticker": list(TICKERS), "close": row})
        frame.to_parquet(folder / "part-00000.parquet", index=False)
    return lake


@pytest.fixture
def last_close(lake) -> dict[str, float]:
    frame = lake.read_prices(start=LAST)
    return dict(zip(frame["ticker"], frame["close"], strict=True))


def _audit(redis_client) -> list[tuple[str, str, dict]]:
    entries = redis_client.xrange(SCHEMA.key("audit"))
    return [(e["kind"], e["ref"], json.loads(e["payload"])) for _, e in entries]


def _orders(redis_client) -> list[SubmitOrder]:
    return [SubmitOrder.from_dict(f) for _, f in redis_client.xrange(SCHEMA.key("orders"))]


def _verify(capsys) -> dict:
    code, out, _ = run_json(capsys, "audit", "verify")
    assert code == 0, out
    return out


# --- kill switch --------------------------------------------------------------------------------------------


def test_kill_switch_on_then_off_when_reasons_given_then_each_change_audited_with_who_and_why(
    capsys, settings, redis_client, operator
):
    code_on, on, _ = run_json(capsys, "kill-switch", "on", "--reason", "venue outage")
    stored = json.loads(redis_client.get(SCHEMA.key("kill_switch")))
    code_status, status, _ = run_json(capsys, "kill-switch", "status")
    code_off, off, _ = run_json(capsys, "kill-switch", "off", "--reason", "venue back")

    assert (code_on, code_status, code_off) == (0, 0, 0)
    assert on["changed"] is True and on["active"] is True and on["by"] == operator
    assert stored["by"] == operator and stored["reason"] == "venue outage" and stored["at"]
    assert status["active"] is True and status["switch"] == stored
    assert off["changed"] is True and off["active"] is False
    assert redis_client.get(SCHEMA.key("kill_switch")) is None
    (kind_on, ref_on, entry_on), (kind_off, ref_off, entry_off) = _audit(redis_client)
    assert (kind_on, ref_on, entry_on["by"], entry_on["reason"]) == (
        "kill_switch_set",
        operator,
        operator,
        "venue outage",
    )
    assert (kind_off, ref_off, entry_off["by"], entry_off["reason"]) == (
        "kill_switch_cleared",
        operator,
        operator,
        "venue back",
    )
    assert entry_off["cleared"]["reason"] == "venue outage"
    assert _verify(capsys)["entries_checked"] == 2


def test_kill_switch_when_repeated_or_already_off_then_nothing_written_and_said_so(
    capsys, settings, redis_client, operator
):
    run_json(capsys, "kill-switch", "on", "--reason", "halt")

    _, again, _ = run_json(capsys, "kill-switch", "on", "--reason", "halt again")
    run_json(capsys, "kill-switch", "off", "--reason", "resume")
    _, off_again, _ = run_json(capsys, "kill-switch", "off", "--reason", "resume again")

    assert again["changed"] is False and "already set by you" in again["note"]
    assert off_again["changed"] is False and off_again["note"] == "the switch was already off"
    assert [kind for kind, _, _ in _audit(redis_client)] == ["kill_switch_set", "kill_switch_cleared"]


@pytest.mark.parametrize("argv", [["on"], ["off"], ["on", "--reason", "   "], ["on", "--reason", "a\nb"]])
def test_kill_switch_when_reason_missing_or_blank_then_exit_2_and_nothing_written(
    capsys, settings, redis_client, operator, argv
):
    code = main(["kill-switch", *argv])

    assert code == 2 and "--reason=" in capsys.readouterr().err
    assert redis_client.get(SCHEMA.key("kill_switch")) is None and redis_client.xlen(SCHEMA.key("audit")) == 0


def test_kill_switch_off_when_sensor_set_it_then_operator_clears_it_with_the_sensors_record_in_the_audit(
    capsys, settings, redis_client, operator
):
    kill_switch.engage(redis_client, SCHEMA, by="var_sensor", reason="VAR_LIMIT_BREACHED")

    code, out, _ = run_json(capsys, "kill-switch", "off", "--reason", "limit raised by the risk committee")

    assert code == 0 and out["changed"] is True
    kind, ref, entry = _audit(redis_client)[-1]
    assert (kind, ref, entry["cleared"]["by"]) == ("kill_switch_cleared", operator, "var_sensor")


def test_var_sensor_when_operator_switch_set_then_neither_clears_nor_takes_it_over(
    capsys, settings, redis_client, operator, lake
):
    from risk.sensor import SensorConfig, VarSensor

    run_json(capsys, "kill-switch", "on", "--reason", "manual halt")
    before = redis_client.get(SCHEMA.key("kill_switch"))

    def sensor(limit: float) -> VarSensor:
        return VarSensor(
            SensorConfig(limit=limit, window=20, model="historical"), lake, SCHEMA, lambda: redis_client
        )

    calm, breached = sensor(1e12), sensor(1.0)

    flat = calm.refresh(redis_client)  # no positions: VaR 0, far below the clear level
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": 1000, "MSFT": -500})
    high = breached.refresh(redis_client)  # VaR above a limit of 1.0: the sensor would set the switch

    assert flat["var"] == 0.0 and high["var"] > 1.0
    assert redis_client.get(SCHEMA.key("kill_switch")) == before
    assert json.loads(before)["by"] == operator
    assert [kind for kind, _, _ in _audit(redis_client)] == ["kill_switch_set"]
    _verify(capsys)


# --- order submit -------------------------------------------------------------------------------------------


def test_order_submit_when_single_order_then_on_the_stream_at_the_lake_close_with_its_audit_entry(
    capsys, settings, redis_client, operator, last_close
):
    code, out, _ = run_json(
        capsys,
        "order",
        "submit",
        "--ticker",
        "msft",
        "--side",
        "buy",
        "--quantity",
        "150",
        "--limit-price",
        "99.5",
        "--reason",
        "client request 42",
    )

    assert code == 0 and out["submitted"] == 1 and out["prices_as_of"] == LAST.isoformat()
    (order,) = _orders(redis_client)
    assert order.order_id == out["orders"][0]["order_id"] and order.order_id.startswith("op:")
    assert (order.ticker, order.side, order.quantity, order.limit_price, order.strategy) == (
        "MSFT",
        "BUY",
        150.0,
        99.5,
        "operator",
    )
    assert order.reference_price == pytest.approx(last_close["MSFT"], rel=1e-12)
    ((kind, ref, entry),) = _audit(redis_client)
    assert (kind, ref, entry["by"], entry["source"], entry["reason"]) == (
        "order_submitted",
        order.order_id,
        operator,
        "cli",
        "client request 42",
    )
    assert SubmitOrder.from_dict(entry["order"]) == order
    _verify(capsys)


def test_order_submit_when_id_given_and_no_limit_then_that_id_and_no_limit_field(
    capsys, settings, redis_client, operator, last_close
):
    code, out, _ = run_json(
        capsys, "order", "submit", "--ticker", "XOM", "--side", "SELL", "--quantity", "10", "--id", "desk|7"
    )

    ((_, fields),) = redis_client.xrange(SCHEMA.key("orders"))
    assert code == 0 and fields["order_id"] == "desk|7" and "limit_price" not in fields
    assert _audit(redis_client)[0][2].get("reason") is None


def test_order_submit_when_id_already_has_a_state_then_refused_and_nothing_published(
    capsys, settings, redis_client, operator, lake
):
    redis_client.hset(SCHEMA.key("order_state"), "dup-1", json.dumps({"state": "FILLED", "filled": 5.0}))

    code = main(["order", "submit", "--ticker", "AAPL", "--side", "BUY", "--quantity", "5", "--id", "dup-1"])

    err = capsys.readouterr().err
    assert code == 2 and "--id='dup-1' is already used" in err and "(FILLED)" in err
    assert redis_client.xlen(SCHEMA.key("orders")) == 0 and redis_client.xlen(SCHEMA.key("audit")) == 0


def test_order_submit_when_flags_bad_then_exit_2_listing_every_problem(
    capsys, settings, redis_client, operator
):
    code = main(["order", "submit", "--ticker", "AAPL", "--side", "HOLD", "--quantity", "-1"])

    err = capsys.readouterr().err
    assert code == 2 and "order refused, nothing submitted (3 problem(s))" in err
    assert "tickers and ids not checked: lake prices=" in err  # this test's lake is empty
    assert "--side='HOLD' is invalid" in err and "--quantity='-1' is invalid" in err
    assert redis_client.xlen(SCHEMA.key("orders")) == 0


def test_order_submit_when_ticker_not_in_latest_prices_then_refused_naming_the_date(
    capsys, settings, redis_client, operator, lake
):
    code = main(["order", "submit", "--ticker", "TSLA", "--side", "BUY", "--quantity", "1"])

    err = capsys.readouterr().err
    assert code == 2 and "--ticker='TSLA' has no close in the lake on 2020-03-31" in err
    assert "expected one of AAPL, MSFT, XOM" in err


def test_order_submit_when_lake_empty_then_exit_2_pointing_to_ingest(
    capsys, settings, redis_client, operator
):
    code = main(["order", "submit", "--ticker", "AAPL", "--side", "BUY", "--quantity", "1"])

    assert code == 2 and "run `qb ingest` first" in capsys.readouterr().err


def test_order_submit_when_file_and_flags_together_then_exit_2(capsys, settings, tmp_path, operator):
    code = main(["order", "submit", "--file", str(tmp_path / "o.csv"), "--ticker", "AAPL"])

    err = capsys.readouterr().err
    assert code == 2 and "--ticker='AAPL' is invalid: expected no order flags with --file" in err


@pytest.mark.parametrize(
    "name, body",
    [
        (
            "orders.csv",
            "ticker,side,quantity,limit_price,id\nAAPL,BUY,100,,f-1\nMSFT,SELL,50,250.5,\nXOM,buy,7,,\n",
        ),
        (
            "orders.jsonl",
            '{"ticker": "AAPL", "side": "BUY", "quantity": 100, "id": "f-1"}\n'
            '{"ticker": "MSFT", "side": "SELL", "quantity": 50, "limit_price": 250.5}\n\n'
            '{"ticker": "XOM", "side": "buy", "quantity": "7"}\n',
        ),
    ],
)
def test_order_submit_when_file_valid_then_every_order_published_with_its_line_in_the_audit(
    capsys, settings, redis_client, operator, last_close, tmp_path, name, body
):
    path = tmp_path / name
    path.write_text(body)

    code, out, _ = run_json(capsys, "order", "submit", "--file", str(path), "--reason", "rebalance by hand")

    orders = _orders(redis_client)
    assert code == 0 and out["submitted"] == 3 and out["source"] == f"file:{name}"
    assert [(o.ticker, o.side, o.quantity, o.limit_price) for o in orders] == [
        ("AAPL", "BUY", 100.0, None),
        ("MSFT", "SELL", 50.0, 250.5),
        ("XOM", "BUY", 7.0, None),
    ]
    assert orders[0].order_id == "f-1" and len({o.order_id for o in orders}) == 3
    assert all(o.reference_price == pytest.approx(last_close[o.ticker], rel=1e-12) for o in orders)
    audit = _audit(redis_client)
    lines = [2, 3, 4] if name.endswith(".csv") else [1, 2, 4]
    assert [(k, r, e["line"], e["source"], e["by"]) for k, r, e in audit] == [
        ("order_submitted", o.order_id, line, f"file:{name}", operator)
        for o, line in zip(orders, lines, strict=True)
    ]
    _verify(capsys)


@pytest.mark.parametrize(
    "name, body, problems",
    [
        (
            "orders.csv",
            "ticker,side,quantity,id\nAAPL,BUY,100,a\nMSFT,SELL,,b\nTSLA,BUY,5,c\nXOM,BUY,5,a\nJPM,HOLD,0,d\n",
            [
                "line 3: quantity is missing",
                "line 4: ticker='TSLA' has no close",
                "line 5: id='a' repeats the id of line 2",
                "line 6: side='HOLD' is invalid",
                "line 6: quantity='0' is invalid",
            ],
        ),
        (
            "orders.jsonl",
            '{"ticker": "AAPL", "side": "BUY", "quantity": 100}\n'
            '{"ticker": "MSFT", "side": "SELL", "quantity": -5}\n'
            '{"ticker": "XOM", "side": "BUY", "quantity": 5, "limit_price": "cheap"}\n',
            ["line 2: quantity=-5 is invalid", "line 3: limit_price='cheap' is invalid"],
        ),
    ],
)
def test_order_submit_when_file_has_bad_rows_then_refused_whole_listing_every_bad_row(
    capsys, settings, redis_client, operator, lake, tmp_path, name, body, problems
):
    path = tmp_path / name
    path.write_text(body)

    code = main(["order", "submit", "--file", str(path)])

    err = capsys.readouterr().err
    assert code == 2 and f"{path} refused, nothing submitted ({len(problems)} problem(s))" in err
    listed = [line.strip() for line in err.splitlines()[1:]]
    prefixes = [line[: len(p)] for line, p in zip(listed, problems, strict=True)]
    assert prefixes == problems  # every one, in line order
    assert redis_client.xlen(SCHEMA.key("orders")) == 0 and redis_client.xlen(SCHEMA.key("audit")) == 0


def test_order_submit_when_file_reuses_an_id_with_a_state_then_refused_naming_its_line(
    capsys, settings, redis_client, operator, lake, tmp_path
):
    redis_client.hset(
        SCHEMA.key("order_state"), mapping={"old": json.dumps({"state": "REJECTED"}), "odd": "{bad"}
    )
    path = tmp_path / "orders.csv"
    path.write_text("ticker,side,quantity,id\nAAPL,BUY,1,new\nAAPL,BUY,1,old\nAAPL,BUY,1,odd\n")

    code = main(["order", "submit", "--file", str(path)])

    err = capsys.readouterr().err
    assert code == 2
    assert "line 3: id='old' is already used: the order has a state in orders:state (REJECTED)" in err
    assert "line 4: id='odd' is already used: the order has a state in orders:state (unreadable)" in err
    assert redis_client.xlen(SCHEMA.key("orders")) == 0


def test_publish_when_an_id_gets_a_state_after_the_check_then_guard_refuses_the_whole_batch(
    settings, redis_client, operator, last_close
):
    from datetime import datetime

    from app.cli.ops import _plan, publish
    from app.cli.order_rows import OrderRow
    from quantbridge.errors import InputError

    rows = [OrderRow(2, "AAPL", "BUY", 1.0, None, "race-1"), OrderRow(3, "MSFT", "BUY", 1.0, None, "race-2")]
    planned, problems = _plan(rows, last_close, LAST, {}, datetime.now(UTC), {})
    redis_client.hset(SCHEMA.key("order_state"), "race-2", json.dumps({"state": "NEW"}))  # another submitter

    with pytest.raises(InputError, match="id='race-2'.*another process used it meanwhile"):
        publish(redis_client, SCHEMA, planned, by=operator, source="cli", reason=None)

    assert problems == [] and redis_client.xlen(SCHEMA.key("orders")) == 0
    assert redis_client.xlen(SCHEMA.key("audit")) == 0


def test_order_submit_when_file_bad_and_redis_down_then_refused_listing_rows_and_ids_unchecked(
    capsys, settings, operator, lake, monkeypatch, tmp_path
):
    monkeypatch.setenv("QB_REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")
    path = tmp_path / "orders.csv"
    path.write_text("ticker,side,quantity,id\nAAPL,BUY,x,a\n")

    code = main(["order", "submit", "--file", str(path)])

    err = capsys.readouterr().err
    assert code == 2 and "line 2: quantity='x' is invalid" in err
    assert "tickers and ids not checked: Redis at redis://:***@127.0.0.1:1/0" in err and "s3cret" not in err


def test_order_submit_when_redis_down_then_exit_3_with_the_url_redacted(
    capsys, settings, operator, lake, monkeypatch
):
    monkeypatch.setenv("QB_REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")

    code = main(["order", "submit", "--ticker", "AAPL", "--side", "BUY", "--quantity", "1"])

    err = capsys.readouterr().err
    assert code == 3 and "redis://:***@127.0.0.1:1/0" in err and "s3cret" not in err


# --- order status -------------------------------------------------------------------------------------------


def test_order_status_when_worker_took_operator_orders_then_states_as_json_and_table(
    capsys, settings, redis_client, operator, last_close
):
    from execution.worker import ExecutionWorker

    for order_id, ticker, quantity in (("s-1", "AAPL", "10"), ("s-2", "MSFT", "20")):
        run_json(
            capsys,
            "order",
            "submit",
            "--ticker",
            ticker,
            "--side",
            "BUY",
            "--quantity",
            quantity,
            "--id",
            order_id,
        )
    worker = ExecutionWorker(redis_client, SCHEMA, "w1", list(TICKERS))
    assert worker.run(threading.Event(), block_ms=50, max_orders=2) == 2
    stored = {k: json.loads(v) for k, v in redis_client.hgetall(SCHEMA.key("order_state")).items()}

    code_one, one, _ = run_json(capsys, "order", "status", "s-1")
    code_all, every, _ = run_json(capsys, "order", "status", "--all")
    assert main(["order", "status", "--all"]) == 0
    table = capsys.readouterr().out.splitlines()

    assert (code_one, code_all) == (0, 0)
    assert one == {"count": 1, "orders": [{"order_id": "s-1", **stored["s-1"]}]}
    assert every["orders"] == [{"order_id": k, **stored[k]} for k in ("s-1", "s-2")]
    assert table[0].split()[:4] == ["order", "id", "state", "filled"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["s-1", stored["s-1"]["state"]],
        ["s-2", stored["s-2"]["state"]],
    ]
    _verify(capsys)


def test_order_status_when_unknown_id_then_exit_1_and_when_both_or_neither_given_then_exit_2(
    capsys, settings, redis_client
):
    assert main(["order", "status", "nope"]) == 1
    assert "order 'nope' has no state in qb:orders:state" in capsys.readouterr().err
    assert main(["order", "status"]) == 2 and main(["order", "status", "x", "--all"]) == 2


def test_order_status_when_state_unreadable_then_shown_as_such(capsys, settings, redis_client):
    redis_client.hset(SCHEMA.key("order_state"), "bad", "{not json")

    code, out, _ = run_json(capsys, "order", "status", "bad")

    assert code == 0 and out["orders"] == [{"order_id": "bad", "state": "UNREADABLE", "raw": "{not json"}]
