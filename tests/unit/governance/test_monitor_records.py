"""The monitor's small pieces: the daily rank IC, the bundle's one-line reason, the proposal document."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest
from scipy import stats

from governance.measures import rank_ic
from governance.monitor import Proposal, _bundle_reason, decide_dict, proposal_path, write_proposal
from governance.thresholds import THRESHOLDS_PATH, thresholds_from_dict
from quantbridge.errors import ConfigError
from quantbridge.lake import Lake


def test_rank_ic_when_compared_with_scipy_then_same_spearman_and_nan_pairs_dropped():
    rng = np.random.default_rng(3)
    pred, out = rng.normal(size=12), rng.normal(size=12)
    assert rank_ic(pred, out) == pytest.approx(stats.spearmanr(pred, out).statistic)
    assert rank_ic(np.r_[pred, 1.0], np.r_[out, np.nan]) == pytest.approx(rank_ic(pred, out))


@pytest.mark.parametrize(
    ("pred", "out"),
    [
        ([1.0, 2.0], [2.0, 1.0]),
        ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]),
        ([1.0, np.nan, 3.0, 4.0], [1, 2, np.nan, 4]),
    ],
)
def test_rank_ic_when_fewer_than_three_pairs_or_a_constant_side_then_nan(pred, out):
    assert np.isnan(rank_ic(np.asarray(pred, float), np.asarray(out, float)))


def test_bundle_reason_when_breaches_are_long_then_one_line_of_1000_characters_pointing_to_the_document():
    names = [f"T{i:03d} (ret_1d PSI 1.00)" for i in range(200)]
    proposal = Proposal(limits={"restricted": []}, demote=None, reasons=["restrict " + ", ".join(names)])
    text = _bundle_reason(date(2024, 6, 3), proposal)
    assert len(text) == 1000 and "\n" not in text
    assert text.endswith("(all in governance/date=2024-06-03/proposal.json)")
    short = Proposal(limits={}, demote=None, reasons=["VaR zone yellow"])
    assert _bundle_reason(date(2024, 6, 3), short) == "governance monitor: VaR zone yellow (2024-06-03)"


def test_write_proposal_when_rerun_for_a_date_then_the_document_is_replaced(tmp_path):
    lake, day = Lake(tmp_path), date(2024, 6, 3)
    findings = {"var": {"exceptions": 6}, "limits": {"active": {"max_order_notional": 1}}}
    write_proposal(lake, day, Proposal({"max_order_notional": 0}, None, ["first"]), findings, "ab" * 32)
    path = write_proposal(lake, day, Proposal({}, {"model_version": "v1"}, ["second"]), findings)
    assert path == proposal_path(lake, day) == tmp_path / "governance" / "date=2024-06-03" / "proposal.json"
    document = json.loads(path.read_text())
    assert document["reasons"] == ["second"] and document["revision"] is None
    assert document["limits_before"] == {"max_order_notional": 1} and "limits" not in document["findings"]


def test_decide_dict_when_yellow_then_plain_dict_from_the_repository_thresholds():
    limits = {"max_order_notional": 100, "max_position_shares": 10}
    out = decide_dict(
        {
            "var": {"exceptions": 6, "observations": 250, "confidence": 0.99},
            "limits": {"reference": limits},
        }
    )
    assert out is not None and out["demote"] is None
    assert out["limits"] == {"max_order_notional": 75, "max_position_shares": 7}
    assert out["reasons"][0].startswith("VaR zone yellow: 6 exceptions in 250 days at 99%")
    json.dumps(out)  # travels as XCom


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("drift", "bins", "ten", "a number"),
        ("drift", "bins", 7.5, "a whole number"),
        ("ic", "demote_ratio", True, "a number"),
        ("drift", "name_features", "ret_1d", "a list of feature names"),
        ("costs", "factors", [0.8], "a JSON object"),
    ],
)
def test_thresholds_when_a_value_has_the_wrong_type_then_config_error_names_the_key(
    section, key, value, expected
):
    raw = json.loads(THRESHOLDS_PATH.read_text())
    raw[section][key] = value
    with pytest.raises(ConfigError) as caught:
        thresholds_from_dict(raw)
    assert caught.value.field == f"thresholds {section}.{key}" and caught.value.expected == expected
