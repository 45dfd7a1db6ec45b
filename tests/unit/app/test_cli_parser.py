"""How ``qb`` assembles its commands: every module registers its own, and says whether it prints itself."""

from __future__ import annotations

import pytest

from app.cli.common import prints_own
from app.cli.demo import live_summary, run_summary
from app.cli.main import build_parser


@pytest.mark.parametrize(
    ("argv", "own"),
    [
        (["status"], False),
        (["var"], False),
        (["var", "backtest"], True),  # its table, not the generic summary
        (["stress", "--date", "2020-04-01"], True),
        (["evaluate"], True),
        (["schema"], True),
        (["settings"], True),
        (["demo"], True),  # the story and the report's and log's paths
        (["kill-switch", "status"], False),
    ],
)
def test_parser_when_command_parsed_then_prints_own_says_who_prints_the_human_output(argv, own):
    assert prints_own(build_parser().parse_args(argv)) is own


def test_parser_when_help_listed_then_every_command_in_its_historic_order():
    sub = next(a for a in build_parser()._actions if a.dest == "command")

    assert list(sub.choices) == [
        "ingest",
        "backfill",
        "status",
        "services",
        "airflow",
        "var",
        "var-sensor",
        "stress",
        "explain",
        "evaluate",
        "audit",
        "worker",
        "reconcile",
        "synth",
        "kill-switch",
        "order",
        "policy",
        "keys",
        "report",
        "schema",
        "settings",
        "demo",
        "replay",
    ]


def test_demo_parser_when_verbose_flag_then_set_and_default_quiet_story():
    parser = build_parser()

    assert parser.parse_args(["demo"]).verbose is False
    assert parser.parse_args(["demo", "-v"]).verbose is True


def test_run_summary_when_a_task_failed_then_named_with_its_state():
    run = {
        "state": "failed",
        "tasks": {"extract": "success", "publish": "failed", "record": "upstream_failed"},
    }

    assert run_summary(run) == "failed: 1/3 tasks succeeded (publish=failed, record=upstream_failed)"
    assert run_summary({"state": "success", "tasks": {"a": "success"}}) == "success: 1/1 tasks succeeded"


def test_live_summary_when_orders_traded_then_states_fills_var_and_kill_switch_on_one_line():
    live = {
        "orders_handled": 8,
        "order_states": {"FILLED": 7, "CANCELLED": 1},
        "fills": 16,
        "var": 197336.1,
        "cvar": 226702.6,
        "kill_switch": True,
    }

    assert live_summary(live) == (
        "8 orders (1 CANCELLED, 7 FILLED), 16 fills, VaR 197,336 CVaR 226,703, kill switch SET"
    )
