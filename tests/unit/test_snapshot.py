"""The dashboard's data (reporting.snapshot) on a real redis-server and a temporary lake."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from reporting.snapshot import report_file, risk_snapshot

SCHEMA = RedisSchema("qb")
CLOCK = lambda: datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # noqa: E731


def _refresh(client, var, cvar, at, limit=50_000.0):
    flat = {
        "var": str(var),
        "cvar": str(cvar),
        "limit": str(limit),
        "volatility": "0.012",
        "model": "filtered_historical",
        "backend": "numpy",
        "as_of": "2020-03-31",
        "positions": "3",
        "updated_at": at,
        "confidence": "0.99",
        "horizon_days": "1",
        "seconds": "0.2",
    }
    client.hset(SCHEMA.key("risk_current"), mapping=flat)
    client.xadd(SCHEMA.key("risk_history"), flat)


def _fill(client, fill_id, venue, quantity, price, fee, slippage_bps, ticker="AAPL"):
    client.xadd(
        SCHEMA.key("fills"),
        {
            "fill_id": fill_id,
            "order_id": "o-" + fill_id,
            "venue": venue,
            "ticker": ticker,
            "side": "BUY",
            "quantity": str(quantity),
            "price": str(price),
            "fee": str(fee),
            "slippage_bps": str(slippage_bps),
            "latency_ms": "0.2",
            "ts": "2026-01-05T14:30:00",
        },
    )


def _ledger(day: str, changes: dict[str, float]) -> pd.DataFrame:
    rows = []
    for scenario, change in changes.items():
        rows.append(
            {
                "id": f"{day}:rates:{scenario}:TOTAL",
                "date": day,
                "family": "rates",
                "scenario": scenario,
                "position": "TOTAL",
                "base_value": 1000.0,
                "shocked_value": 1000.0 + change,
                "change": change,
            }
        )
        rows.append(
            {
                "id": f"{day}:rates:{scenario}:UST-2Y",
                "date": day,
                "family": "rates",
                "scenario": scenario,
                "position": "UST-2Y",
                "base_value": 500.0,
                "shocked_value": 500.0 + change,
                "change": change,
            }
        )
    return pd.DataFrame(rows)


def _write_stress(lake: Lake, day: str, frame: pd.DataFrame) -> None:
    folder = lake.partition("stress", "date", day)
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "part-00000.parquet", index=False)


def test_snapshot_when_redis_and_lake_empty_then_nothing_invented(redis_client, settings):
    snap = risk_snapshot(settings, redis_client, clock=CLOCK)
    assert snap["generated_at"] == "2026-01-05T15:00:00+00:00"
    assert (
        snap["risk"] is None and snap["history"] == [] and snap["fills"] == [] and snap["venue_costs"] == []
    )
    assert snap["kill_switch"] == {"active": False, "reason": None}
    assert snap["stress"] == {"date": None, "source": None, "rows": 0, "scenarios": []}
    assert snap["report"] is None and snap["positions"] == {}
    assert snap["heartbeats"] == {"var_sensor": None, "execution_worker": None}
    json.dumps(snap)  # JSON-ready as it is


def test_snapshot_when_sensor_refreshed_then_current_typed_and_history_oldest_first_capped(
    redis_client, settings
):
    for i in range(5):
        _refresh(redis_client, 10_000.0 + i, 12_000.5 + i, f"2026-01-05T14:3{i}:00+00:00")
    redis_client.set(SCHEMA.heartbeat("var_sensor"), "2026-01-05T14:34:00+00:00")
    redis_client.set(
        SCHEMA.key("kill_switch"),
        json.dumps({"reason": "VAR_LIMIT_BREACHED", "var": 60000.0, "by": "var_sensor"}),
    )
    redis_client.hset(SCHEMA.key("positions"), mapping={"AAPL": "100", "XOM": "-20.5"})

    snap = risk_snapshot(settings, redis_client, history=3)

    assert (
        snap["risk"]["var"] == 10_004.0
        and snap["risk"]["cvar"] == 12_004.5
        and snap["risk"]["limit"] == 50_000.0
    )
    assert snap["risk"]["model"] == "filtered_historical" and snap["risk"]["positions"] == 3.0
    assert [h["var"] for h in snap["history"]] == [10_002.0, 10_003.0, 10_004.0]
    assert snap["history"][-1]["at"] == "2026-01-05T14:34:00+00:00"
    assert snap["kill_switch"]["active"] and snap["kill_switch"]["reason"]["reason"] == "VAR_LIMIT_BREACHED"
    assert snap["heartbeats"]["var_sensor"] == "2026-01-05T14:34:00+00:00"
    assert snap["positions"] == {"AAPL": 100.0, "XOM": -20.5}


def test_snapshot_when_operator_sets_plain_text_switch_then_reason_is_the_text(redis_client, settings):
    redis_client.set(SCHEMA.key("kill_switch"), "manual: desk closed")
    assert risk_snapshot(settings, redis_client)["kill_switch"] == {
        "active": True,
        "reason": "manual: desk closed",
    }


def test_snapshot_when_fills_then_newest_first_and_cost_by_venue_in_bps(redis_client, settings):
    _fill(redis_client, "f1", "ALPHA", 100, 10.0, 0.05, 2.0)  # notional 1000, fee 0.5 bp
    _fill(redis_client, "f2", "ALPHA", 300, 10.0, 0.30, 4.0)  # notional 3000, fee 1 bp
    _fill(redis_client, "f3", "BETA", 200, 50.0, 1.50, 0.5)  # notional 10000, fee 1.5 bp

    snap = risk_snapshot(settings, redis_client, fills=2)

    assert [f["fill_id"] for f in snap["fills"]] == ["f3", "f2"]
    assert snap["fills"][0]["notional"] == 10_000.0 and snap["fills"][0]["venue"] == "BETA"
    costs = {c["venue"]: c for c in snap["venue_costs"]}
    assert costs["ALPHA"]["fills"] == 2 and costs["ALPHA"]["notional"] == 4_000.0
    assert costs["ALPHA"]["fee_bps"] == pytest.approx(0.35 / 4_000 * 1e4)
    assert costs["ALPHA"]["slippage_bps"] == pytest.approx((2.0 * 1_000 + 4.0 * 3_000) / 4_000)  # by notional
    assert costs["BETA"]["cost_bps"] == pytest.approx(1.5 + 0.5)
    assert [c["venue"] for c in snap["venue_costs"]] == ["BETA", "ALPHA"]  # cheapest first (2.0 < 4.375)


def test_snapshot_when_stress_in_lake_and_stream_then_latest_lake_date_worst_first(redis_client, settings):
    lake = Lake(settings.lake_root)
    _write_stress(lake, "2020-12-30", _ledger("2020-12-30", {"old": -1.0}))
    _write_stress(
        lake, "2020-12-31", _ledger("2020-12-31", {"up_100": -250.0, "down_100": 180.0, "steepener": -900.0})
    )
    for _, row in _ledger("2021-01-04", {"stream_only": -5.0}).iterrows():
        redis_client.xadd(SCHEMA.key("stress_ledger"), {k: str(v) for k, v in row.items()})

    stress = risk_snapshot(settings, redis_client)["stress"]

    assert stress["date"] == "2020-12-31" and stress["source"] == "lake" and stress["rows"] == 6
    assert [s["scenario"] for s in stress["scenarios"]] == ["steepener", "up_100", "down_100"]
    assert stress["scenarios"][0]["change"] == -900.0 and stress["scenarios"][0]["shocked_value"] == 100.0


def test_snapshot_when_stress_only_on_stream_then_latest_stream_date(redis_client, settings):
    for day, changes in (("2020-12-30", {"a": -1.0}), ("2020-12-31", {"b": 3.0, "c": -7.5})):
        for _, row in _ledger(day, changes).iterrows():
            redis_client.xadd(SCHEMA.key("stress_ledger"), {k: str(v) for k, v in row.items()})
    stress = risk_snapshot(settings, redis_client)["stress"]
    assert stress["date"] == "2020-12-31" and stress["source"] == "stream"
    assert [(s["scenario"], s["change"]) for s in stress["scenarios"]] == [("c", -7.5), ("b", 3.0)]


def test_snapshot_when_stress_partition_lacks_columns_then_error_names_them(redis_client, settings):
    _write_stress(
        Lake(settings.lake_root), "2020-12-31", pd.DataFrame({"date": ["2020-12-31"], "family": ["rates"]})
    )
    with pytest.raises(InputError, match="missing.*change"):
        risk_snapshot(settings, redis_client)


def test_snapshot_when_reports_exist_then_newest_date_with_a_report_html(redis_client, settings):
    lake = Lake(settings.lake_root)
    for day, name in (
        ("2020-12-30", "report.html"),
        ("2020-12-31", "report.html"),
        ("2021-01-04", "reconciliation.json"),
    ):
        folder = lake.partition("reports", "date", day)
        folder.mkdir(parents=True)
        (folder / name).write_text("x")
    assert risk_snapshot(settings, redis_client)["report"] == {
        "date": "2020-12-31",
        "path": "date=2020-12-31/report.html",
    }


@pytest.mark.parametrize("name, value", [("history", 0), ("fills", -1), ("cost_window", 1.5)])
def test_snapshot_when_sizes_invalid_then_error_names_field(redis_client, settings, name, value):
    with pytest.raises(InputError, match=f"{name}={value!r} is invalid"):
        risk_snapshot(settings, redis_client, **{name: value})


def test_report_file_when_inside_reports_then_path_else_refused(settings, tmp_path):
    lake = Lake(settings.lake_root)
    folder = lake.partition("reports", "date", date(2020, 12, 31).isoformat())
    (folder / "img").mkdir(parents=True)
    (folder / "report.html").write_text("<h1>report</h1>")
    (folder / "img" / "var.png").write_bytes(b"\x89PNG")
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    (folder / "escape.txt").symlink_to(secret)

    assert report_file(settings, "date=2020-12-31/report.html").read_text() == "<h1>report</h1>"
    assert report_file(settings, "date=2020-12-31/img/var.png").read_bytes() == b"\x89PNG"
    for bad in (
        "../prices",
        "date=2020-12-31/../../secret.txt",
        "/etc/passwd",
        "",
        "date=2020-12-31/escape.txt",
        "date=2020-12-31\\..\\..\\secret.txt",
    ):
        with pytest.raises(InputError, match="report path"):
            report_file(settings, bad)
    with pytest.raises(FileNotFoundError, match="nothing.html"):
        report_file(settings, "date=2020-12-31/nothing.html")
    with pytest.raises(FileNotFoundError):
        report_file(settings, "date=2020-12-31/img")  # a folder is not a file
