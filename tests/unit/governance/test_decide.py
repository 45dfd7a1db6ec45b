"""decide(findings, thresholds): the pure rule from findings to a proposal, driven by thresholds.json."""

from __future__ import annotations

import json

import pytest

from governance.monitor import decide, drifted_names
from governance.thresholds import (
    THRESHOLDS_PATH,
    Thresholds,
    load_thresholds,
    thresholds_from_dict,
)
from quantbridge.errors import ConfigError

LIMITS = {
    "restricted": ["RRC"],
    "max_order_notional": 250000,
    "max_position_shares": 20000,
    "min_esg_score": 0.25,
    "price_band": 0.1,
}
QUIET_NAME = {"ret_1d": {"psi": 0.08, "ks_p": 0.4, "n_recent": 20, "ks_statistic": 0.1, "n_reference": 700}}


@pytest.fixture(scope="module")
def th() -> Thresholds:
    return load_thresholds()


def findings(**sections):
    base = {
        "var": {"observations": 250, "exceptions": 2, "confidence": 0.99},
        "drift": {"features": {}, "names": {"AAA": QUIET_NAME}},
        "ic": {"model_version": "v1", "days": 60, "live_ic": 0.03, "live_ic_se": 0.01, "oos_ic": 0.05},
        "costs": {
            "recent_bps": 5.0,
            "recent_fills": 50,
            "baseline_bps": 4.8,
            "baseline_fills": 400,
        },
        "limits": {"reference": dict(LIMITS), "active": dict(LIMITS)},
    }
    return {**base, **sections}


def test_load_thresholds_when_repository_file_read_then_values_are_the_json_ones(th):
    raw = json.loads(THRESHOLDS_PATH.read_text())
    assert th.drift.psi_moderate == raw["drift"]["psi_moderate"] == 0.1
    assert th.drift.psi_significant == raw["drift"]["psi_significant"] == 0.25
    assert th.drift.name_features == tuple(raw["drift"]["name_features"])
    assert th.var.zone_factors == raw["var"]["zone_factors"]
    assert th.ic.live_days == raw["ic"]["live_days"] == 60
    assert th.drift.recent_days == 20 and th.var.days == 250


def test_decide_when_nothing_breached_then_none(th):
    assert decide(findings(), th) is None


def test_decide_when_six_exceptions_in_250_days_then_yellow_lowers_notional_and_position_limits(th):
    proposal = decide(findings(var={"observations": 250, "exceptions": 6, "confidence": 0.99}), th)
    assert proposal is not None
    assert proposal.limits == {"max_order_notional": 187500, "max_position_shares": 15000}
    assert proposal.demote is None
    assert "VaR zone yellow: 6 exceptions in 250 days" in proposal.reason


def test_decide_when_four_exceptions_then_green_and_no_change(th):
    assert decide(findings(var={"observations": 250, "exceptions": 4, "confidence": 0.99}), th) is None


def test_decide_when_ten_exceptions_then_red_lowers_further(th):
    proposal = decide(findings(var={"observations": 250, "exceptions": 10, "confidence": 0.99}), th)
    assert proposal is not None
    assert proposal.limits == {"max_order_notional": 125000, "max_position_shares": 10000}
    assert "VaR zone red" in proposal.reasons[0]


def test_decide_when_active_limits_already_lowered_then_yellow_proposes_nothing_again(th):
    active = {**LIMITS, "max_order_notional": 187500, "max_position_shares": 15000}
    out = findings(
        var={"observations": 250, "exceptions": 7, "confidence": 0.99},
        limits={"reference": dict(LIMITS), "active": active},
    )
    assert decide(out, th) is None


def test_decide_when_factors_come_from_the_thresholds_then_other_factors_apply(th):
    raw = json.loads(THRESHOLDS_PATH.read_text())
    raw["var"]["zone_factors"]["yellow"] = {"max_order_notional": 0.9}
    proposal = decide(
        findings(var={"observations": 250, "exceptions": 6, "confidence": 0.99}), thresholds_from_dict(raw)
    )
    assert proposal is not None and proposal.limits == {"max_order_notional": 225000}


def test_decide_when_a_name_drifted_past_025_then_it_joins_restricted(th):
    drifted = {
        "ret_1d": {"psi": 1.7, "ks_p": 1e-9, "n_recent": 20, "ks_statistic": 0.8, "n_reference": 700},
        "vol_21d": {"psi": 0.2, "ks_p": 1e-5, "n_recent": 20, "ks_statistic": 0.5, "n_reference": 700},
    }
    proposal = decide(findings(drift={"features": {}, "names": {"AAA": QUIET_NAME, "BBB": drifted}}), th)
    assert proposal is not None
    assert proposal.limits == {"restricted": ["BBB", "RRC"]}
    assert "restrict BBB (ret_1d PSI 1.70)" in proposal.reason


def test_drifted_names_when_psi_high_but_ks_not_significant_then_not_restricted(th):
    noisy = {"ret_1d": {"psi": 0.4, "ks_p": 0.2, "n_recent": 20, "ks_statistic": 0.2, "n_reference": 700}}
    few = {"ret_1d": {"psi": 2.0, "ks_p": 1e-9, "n_recent": 5, "ks_statistic": 0.9, "n_reference": 700}}
    assert drifted_names({"names": {"AAA": noisy, "BBB": few}}, th.drift) == {}


def test_decide_when_drifted_name_already_restricted_then_none(th):
    drifted = {"ret_1d": {"psi": 1.7, "ks_p": 1e-9, "n_recent": 20, "ks_statistic": 0.8, "n_reference": 700}}
    assert decide(findings(drift={"features": {}, "names": {"RRC": drifted}}), th) is None


def test_decide_when_live_ic_far_below_oos_then_demotion_proposed_without_limit_changes(th):
    ic = {"model_version": "v7", "days": 60, "live_ic": -0.02, "live_ic_se": 0.01, "oos_ic": 0.05}
    proposal = decide(findings(ic=ic), th)
    assert proposal is not None and proposal.limits == {}
    assert proposal.demote is not None and proposal.demote["model_version"] == "v7"
    # the 5-day out-of-sample IC scaled to 1-day returns by the square root of time
    assert proposal.demote["expected_live_ic"] == pytest.approx(0.05 * (1 / 5) ** 0.5, abs=1e-6)
    assert "propose demotion" in proposal.reason


@pytest.mark.parametrize(
    "ic",
    [
        {"model_version": "v7", "days": 60, "live_ic": 0.0, "live_ic_se": 0.02, "oos_ic": 0.05},  # noise
        {"model_version": "v7", "days": 20, "live_ic": -0.05, "live_ic_se": 0.01, "oos_ic": 0.05},  # days
        {"model_version": "v7", "days": 60, "live_ic": -0.05, "live_ic_se": 0.01, "oos_ic": -0.01},  # no edge
        {"model_version": "v7", "days": 60, "live_ic": None, "live_ic_se": None, "oos_ic": 0.05},
        {"skipped": "no champion model in the registry"},
    ],
)
def test_decide_when_ic_shortfall_is_within_noise_or_unmeasured_then_no_demotion(th, ic):
    assert decide(findings(ic=ic), th) is None


def test_decide_when_execution_cost_drifts_then_max_order_notional_lowered(th):
    costs = {"recent_bps": 12.0, "recent_fills": 40, "baseline_bps": 5.0, "baseline_fills": 400}
    proposal = decide(findings(costs=costs), th)
    assert proposal is not None and proposal.limits == {"max_order_notional": 200000}
    assert "execution cost drift: 12.00 bps" in proposal.reason


def test_decide_when_zone_and_costs_both_lower_notional_then_the_smaller_factor_wins(th):
    costs = {"recent_bps": 12.0, "recent_fills": 40, "baseline_bps": 5.0, "baseline_fills": 400}
    var = {"observations": 250, "exceptions": 6, "confidence": 0.99}
    proposal = decide(findings(costs=costs, var=var), th)
    assert proposal is not None and proposal.limits["max_order_notional"] == 187500


@pytest.mark.parametrize(
    "costs",
    [
        {"recent_bps": 12.0, "recent_fills": 3, "baseline_bps": 5.0, "baseline_fills": 400},  # few fills
        {"recent_bps": 6.5, "recent_fills": 40, "baseline_bps": 5.0, "baseline_fills": 400},  # below ratio
        {"recent_bps": 1.5, "recent_fills": 40, "baseline_bps": 0.5, "baseline_fills": 400},  # below 2 bps
        {"recent_bps": 8.0, "recent_fills": 40, "baseline_bps": None, "baseline_fills": 0},
    ],
)
def test_decide_when_cost_change_is_small_or_thin_then_none(th, costs):
    assert decide(findings(costs=costs), th) is None


def test_decide_when_baseline_cost_is_negative_then_the_excess_alone_decides(th):
    costs = {"recent_bps": 3.0, "recent_fills": 40, "baseline_bps": -1.0, "baseline_fills": 400}
    assert decide(findings(costs=costs), th) is not None


def test_decide_when_sections_skipped_or_absent_then_none(th):
    skipped = {"skipped": "no data"}
    assert decide({"var": skipped, "drift": skipped, "ic": skipped, "costs": skipped}, th) is None


def test_decide_when_no_active_limits_then_reference_is_the_active_one(th):
    out = findings(
        var={"observations": 250, "exceptions": 6, "confidence": 0.99}, limits={"reference": dict(LIMITS)}
    )
    proposal = decide(out, th)
    assert proposal is not None and proposal.limits["max_order_notional"] == 187500


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda r: r["drift"].update(psi_significant=0.05), "thresholds drift.psi_significant"),
        (lambda r: r["var"]["zone_factors"]["yellow"].update(max_order_notional=1.5), "max_order_notional"),
        (lambda r: r["var"]["zone_factors"].update(orange={}), "thresholds var.zone_factors"),
        (lambda r: r["costs"]["factors"].update(gross=0.5), "thresholds costs.factors.gross"),
        (lambda r: r["ic"].update(typo=1), "thresholds ic"),
        (lambda r: r.update(extra={}), "thresholds"),
        (lambda r: r.update(drift=[]), "thresholds drift"),
        (lambda r: r["ic"].update(min_days=100), "thresholds ic.live_days"),
    ],
)
def test_thresholds_when_a_value_is_out_of_range_then_config_error_names_it(edit, field):
    raw = json.loads(THRESHOLDS_PATH.read_text())
    edit(raw)
    with pytest.raises(ConfigError) as caught:
        thresholds_from_dict(raw)
    assert field in caught.value.field


def test_load_thresholds_when_file_is_not_json_then_config_error_names_the_file(tmp_path):
    bad = tmp_path / "thresholds.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError) as caught:
        load_thresholds(bad)
    assert caught.value.field == "thresholds file" and str(bad) in str(caught.value)
