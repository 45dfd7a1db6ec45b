"""``qb var`` on the consolidated book: JSON with per-position and per-class components that add up to the
totals, the factor assumptions and the marks' source; a short human table; ``--scope equities`` is the
equity figure of before; the Redis marks count only without ``--date``."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from app.cli.main import main
from app.cli.var import DEFAULT_PATHS
from quantbridge.lake import Lake
from risk.book_var import DEFAULT_PATHS as ENGINE_PATHS
from tests.risk_book_support import write_closes, write_reference


def _json(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json", "--quiet"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.fixture
def book_lake(settings):
    lake = Lake(settings.lake_root)
    write_closes(lake)
    write_reference(lake)
    return lake


def test_qb_var_json_when_consolidated_then_components_per_position_and_class_sum_to_the_totals(
    capsys, book_lake, redis_client
):
    code, out = _json(capsys, "var", "--window", "60", "--paths", "20000")

    assert code == 0 and out["scope"] == "consolidated" and out["method"] == "monte_carlo"
    assert out["positions_source"].startswith("demo") and out["paths"] == 20_000
    classes = out["classes"]
    assert set(classes) == {"equity", "rates", "fx"}
    assert sum(c["component_var"] for c in classes.values()) == pytest.approx(out["var"], rel=1e-9)
    assert sum(c["component_cvar"] for c in classes.values()) == pytest.approx(out["cvar"], rel=1e-9)
    assert sum(r["component_var"] for r in out["components"]) == pytest.approx(out["var"], rel=1e-9)
    assert {r["class"] for r in out["components"]} == {"equity", "rates", "fx"}
    assert out["revaluation_check"]["max_relative_error"] < 1e-6
    assert "stated assumptions" in out["factors"]["source"] and out["factors"]["fx_pair_correlation"] == 0.3
    assert out["marks"]["lake_close"] == 3 and out["marks"]["marks"] == 0
    assert out["reference"] == {
        "bonds": 6,
        "fx_exposures": 5,
        "curve": "lake reference table curve (as_of 2022-12-28) bootstrapped at 2024-05-06",
    }
    assert DEFAULT_PATHS == ENGINE_PATHS  # the CLI spells the engine's default without importing it


def test_qb_var_when_marks_in_redis_then_used_unless_a_date_is_given(capsys, book_lake, redis_client):
    redis_client.hset("qb:positions", mapping={"AAA": 1000, "BBB": 500})
    redis_client.hset("qb:marks", mapping={"AAA": "250.0"})

    code, live = _json(capsys, "var", "--window", "60", "--paths", "5000")
    code_d, dated = _json(capsys, "var", "--window", "60", "--paths", "5000", "--date", "2024-05-06")

    assert code == code_d == 0 and live["positions_source"] == "redis"
    assert live["marks"]["marks"] == 1 and live["marks"]["prices"]["AAA"] == "marks"
    assert dated["marks"]["marks"] == 0 and "not used" in dated["marks"]["source"]
    aaa = {r["position"]: r for r in live["components"]}["AAA"]
    assert aaa["value"] == pytest.approx(250_000.0)


def test_qb_var_when_printed_then_a_short_table_and_equities_scope_is_the_old_figure(
    capsys, book_lake, redis_client
):
    assert main(["var", "--window", "60", "--paths", "5000", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "component VaR" in printed and "rates" in printed and "bond revaluation vs QuantLib" in printed

    code, equities = _json(capsys, "var", "--window", "60", "--scope", "equities")
    assert code == 0 and equities["scope"] == "equities" and "classes" not in equities
    assert equities["var"] > 0 and equities["backend"] == "numpy"


def test_qb_var_when_reference_tables_missing_then_exit_2_names_the_table(capsys, settings, redis_client):
    write_closes(Lake(settings.lake_root))

    assert main(["var", "--window", "60"]) == 2

    err = capsys.readouterr().err
    assert "reference table bond_book" in err and "QB_VAR_SCOPE=equities" in err


def test_qb_var_when_stressed_then_the_worst_250_day_window_is_reported_or_a_short_lake_named(
    capsys, settings, redis_client
):
    lake = Lake(settings.lake_root)
    closes = write_closes(lake, days=90)
    assert main(["var", "--scope", "equities", "--window", "60", "--stressed", "--quiet"]) == 2
    assert "250" in capsys.readouterr().err  # too short a lake for a 250-day window, said so

    write_closes(lake, days=320, start=str(closes.index[-1] + pd.Timedelta(days=3)))
    code, out = _json(capsys, "var", "--scope", "equities", "--window", "60", "--stressed")
    stressed = out["stressed_var"]
    assert code == 0 and stressed["window"] == 250 and stressed["windows"] > 1
    assert stressed["var"] >= out["var"] * 0.5 and stressed["cvar"] >= stressed["var"] > 0
    assert stressed["start"] < stressed["end"] <= out["as_of"]
