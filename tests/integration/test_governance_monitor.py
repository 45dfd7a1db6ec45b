"""The governance monitor on a real lake and a real redis-server: planted drift, planted VaR exceptions, a
champion whose live IC fell, costlier fills; the proposal is stored as a signed bundle and as a document."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from governance.measures import cost_drift, feature_drift, live_ic, var_exceptions
from governance.monitor import current_limits, decide, drifted_names, proposal_path, submit
from governance.thresholds import load_thresholds
from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema
from quantbridge.signing import KeyRing

SCHEMA = RedisSchema("qb")
TICKERS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH")
DAYS = 420
DRIFTED = "DDD"
BOOK = {"AAA": 1000.0, "BBB": 800.0, "CCC": 1200.0}
VAR = {"model": "historical", "confidence": 0.99, "window": 100}
#: rows (of DAYS) whose next return is a market crash, each deeper than the one before (so every one beats
#: the historical VaR that the previous crashes raised): six exceptions inside the last 250 days
CRASHES = (200, 230, 260, 290, 320, 350)


def _write_lake(root, *, planted: bool, oos_ic: float) -> tuple[Lake, list[date]]:
    from strategy.features import FEATURES, build_features
    from strategy.model import fit
    from strategy.registry import register, set_champion

    lake = Lake(root)
    dates = list(pd.bdate_range("2023-01-02", periods=DAYS).date)
    rng = np.random.default_rng(11)
    returns = rng.normal(0.0003, 0.012, (DAYS, len(TICKERS)))
    if planted:
        returns[-20:, TICKERS.index(DRIFTED)] = rng.normal(0.0, 0.06, 20)  # five times the volatility
        for k, row in enumerate(CRASHES):
            returns[row + 1, :] = -0.06 - 0.01 * k
    closes = 100 * np.exp(np.cumsum(returns, axis=0))
    for i, day in enumerate(dates):
        part = lake.price_partition(day)
        part.mkdir(parents=True)
        pd.DataFrame({"ticker": list(TICKERS), "close": closes[i]}).to_parquet(part / "part-00000.parquet")
    frame = pd.DataFrame(closes[:300], index=dates[:300], columns=list(TICKERS))
    panel = build_features(frame, npartitions=1)
    meta = {
        "kind": "gbm",
        "features": list(FEATURES),
        "data_window": [str(panel["date"].min()), str(panel["date"].max())],
        "metrics": {"ic": oos_ic},
    }
    # set by hand: a model fitted on random returns never passes the promotion rule's IC t of 2
    set_champion(lake, register(lake, fit(panel), meta, version="v1"), "fixture")
    return lake, dates


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return _write_lake(tmp_path_factory.mktemp("planted") / "lake", planted=True, oos_ic=0.5)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    return _write_lake(tmp_path_factory.mktemp("quiet") / "lake", planted=False, oos_ic=0.01)


def _fills(client, dates, bps_by_day):
    for day, bps in zip(dates, bps_by_day, strict=True):
        for k in range(3):
            client.xadd(
                SCHEMA.key("fills"),
                {
                    "fill_id": f"{day}:{k}",
                    "venue": "lit",
                    "ticker": "AAA",
                    "side": "BUY",
                    "quantity": "100",
                    "price": "50",
                    "fee": "0.5",  # 1 bp of 5,000
                    "slippage_bps": str(bps),
                    "ts": f"{day.isoformat()}T21:00:00+00:00",
                },
            )


def _findings(lake, client, day, th, ring):
    return {
        "drift": feature_drift(lake, day, th.drift),
        "ic": live_ic(lake, day, th.ic),
        "var": var_exceptions(lake, client, SCHEMA, day, th.var, **VAR),
        "costs": cost_drift(client, SCHEMA, day, th.costs),
        "limits": current_limits(lake, ring, client, SCHEMA),
    }


def test_feature_drift_when_one_name_got_five_times_the_volatility_then_psi_above_025_for_it_only(planted):
    lake, dates = planted
    th = load_thresholds().drift
    out = feature_drift(lake, dates[-1], th)
    assert out["model_version"] == "v1" and out["recent_window"] == [str(dates[-20]), str(dates[-1])]
    per_name = {t: v["ret_1d"] for t, v in out["names"].items()}
    alpha = th.ks_alpha / len(TICKERS)  # one feature per name: Bonferroni over the eight names
    assert per_name[DRIFTED]["psi"] > 0.25 and per_name[DRIFTED]["ks_p"] < alpha
    assert per_name[DRIFTED]["n_recent"] == 20
    assert all(v["ks_p"] > alpha for t, v in per_name.items() if t != DRIFTED)
    assert drifted_names(out, th) == {DRIFTED: {"ret_1d": per_name[DRIFTED]["psi"]}}
    assert set(out["features"]) >= {"ret_1d", "mom_21d", "vol_21d"}  # esg has no reference table here
    assert (
        out["features"]["ret_1d"]["psi"] < per_name[DRIFTED]["psi"]
    )  # one name in eight: diluted in the pool
    assert {v["band"] for v in out["features"].values()} <= {"stable", "moderate", "significant"}


def test_var_exceptions_when_six_crashes_planted_then_counted_in_the_last_250_days(planted, redis_client):
    lake, dates = planted
    redis_client.hset(SCHEMA.key("positions"), mapping=BOOK)
    out = var_exceptions(lake, redis_client, SCHEMA, dates[-1], load_thresholds().var, **VAR)
    assert out["observations"] == 250
    assert {str(dates[r]) for r in CRASHES} <= set(out["exception_dates"])
    assert 5 <= out["exceptions"] <= 9, out["exception_dates"]


def test_live_ic_when_measured_then_daily_spearman_of_predictions_vs_next_day_returns(planted):
    from scipy import stats

    from strategy.features import FEATURES, build_features
    from strategy.registry import champion, load_model

    lake, dates = planted
    out = live_ic(lake, dates[-1], load_thresholds().ic)
    assert out["days"] == 60 and out["window"] == [str(dates[-61]), str(dates[-2])]
    assert out["oos_ic"] == 0.5
    assert out["live_ic"] == pytest.approx(np.mean(list(out["daily"].values())), abs=1e-6)
    # one day by hand: the model's predictions on that day's features against the next close
    day = dates[-2]
    closes = lake.read_close_matrix(dates[-80], dates[-1])
    panel = build_features(closes, npartitions=1)
    rows = panel[panel["date"] == day]
    pred = load_model(champion(lake)).predict(rows.loc[:, list(FEATURES)])
    realised = (closes.loc[dates[-1]] / closes.loc[day] - 1).reindex(rows["ticker"]).to_numpy()
    assert out["daily"][str(day)] == pytest.approx(stats.spearmanr(pred, realised).statistic, abs=1e-6)


def test_cost_drift_when_recent_fills_slip_more_then_recent_bps_above_baseline(planted, redis_client):
    lake, dates = planted
    _fills(redis_client, dates[-65:], [3.0] * 60 + [15.0] * 5)
    out = cost_drift(redis_client, SCHEMA, dates[-1], load_thresholds().costs)
    assert out["recent_bps"] == pytest.approx(16.0) and out["baseline_bps"] == pytest.approx(4.0)
    assert (out["recent_fills"], out["baseline_fills"]) == (15, 180)
    assert out["recent_window"] == [str(dates[-5]), str(dates[-1])]


def test_monitor_when_breaches_planted_then_a_tighter_bundle_is_proposed_and_recorded(
    planted, redis_client, tmp_path
):
    from execution.bundle import verify
    from governance.release import activate

    lake, dates = planted
    day = dates[-1]
    th = load_thresholds()
    ring = KeyRing(tmp_path / "keys", "policy")
    redis_client.hset(SCHEMA.key("positions"), mapping=BOOK)
    _fills(redis_client, dates[-65:], [3.0] * 60 + [15.0] * 5)
    findings = json.loads(json.dumps(_findings(lake, redis_client, day, th, ring)))  # as XCom carries them
    proposal = decide(findings, th)
    assert proposal is not None
    reference = findings["limits"]["reference"]
    assert proposal.limits["max_order_notional"] == int(reference["max_order_notional"] * 0.75)
    assert proposal.limits["max_position_shares"] == int(reference["max_position_shares"] * 0.75)
    assert proposal.limits["restricted"] == sorted({*reference["restricted"], DRIFTED})
    assert proposal.demote is not None and proposal.demote["model_version"] == "v1"

    out = submit(lake, day, proposal.as_dict(), findings, ring, redis_client, SCHEMA)

    assert out is not None and out["revision"]
    stored = verify(lake, out["revision"], ring, require_approvals=False)
    assert stored.data["limits"] == {**reference, **proposal.limits}
    assert stored.metadata["author"] == "governance_monitor"
    assert "VaR zone yellow" in stored.metadata["reason"]
    assert redis_client.get(SCHEMA.key("policy_active")) is None  # proposed, never activated
    document = json.loads(proposal_path(lake, day).read_text())
    assert document["revision"] == out["revision"] and document["status"] == "proposed"
    assert document["demote"]["model_version"] == "v1"
    assert json.loads((lake.root / "models" / "champion.json").read_text())["version"] == "v1"  # unchanged

    # two approvers release it; the next night the same breaches propose no further limit change (the factors
    # apply to the approved reference limits, not to the already lowered ones), only the demotion again
    approvals = [{"user": "carol", "at": "t0", "task": "approve_compliance"}, {"user": "dave", "at": "t1"}]
    activate(redis_client, SCHEMA, lake, ring, out["revision"], approvals, "test:release")
    again = _findings(lake, redis_client, day, th, ring)
    assert again["limits"]["active_revision"] == out["revision"]
    assert again["limits"]["active"] == stored.data["limits"]
    repeat = decide(again, th)
    assert repeat is not None and repeat.limits == {} and repeat.demote is not None
    second = submit(lake, day, repeat, again, ring, redis_client, SCHEMA)
    assert second is not None and second["revision"] is None and second["diff"] == ""
    assert json.loads(proposal_path(lake, day).read_text())["revision"] is None


def test_monitor_when_nothing_breached_then_no_proposal_and_nothing_stored(quiet, redis_client, tmp_path):
    lake, dates = quiet
    th = load_thresholds()
    ring = KeyRing(tmp_path / "keys", "policy")
    redis_client.hset(SCHEMA.key("positions"), mapping=BOOK)
    findings = _findings(lake, redis_client, dates[-1], th, ring)
    assert findings["var"]["exceptions"] <= 4 and findings["costs"] == {
        "skipped": f"no fills up to {dates[-1]}"
    }
    assert decide(findings, th) is None
    assert submit(lake, dates[-1], None, findings, ring, redis_client, SCHEMA) is None
    assert not proposal_path(lake, dates[-1]).exists()


def test_measures_when_lake_and_redis_are_empty_then_each_says_what_is_missing(redis_client, lake_root):
    lake, th, day = Lake(lake_root), load_thresholds(), date(2024, 6, 3)
    assert feature_drift(lake, day, th.drift) == {"skipped": "no champion model in the registry"}
    assert live_ic(lake, day, th.ic) == {"skipped": "no champion model in the registry"}
    assert "no positions" in var_exceptions(lake, redis_client, SCHEMA, day, th.var)["skipped"]
    redis_client.hset(SCHEMA.key("positions"), "AAA", 10)
    assert "no prices" in var_exceptions(lake, redis_client, SCHEMA, day, th.var)["skipped"]
    redis_client.xadd(
        SCHEMA.key("fills"), {"venue": "lit", "quantity": "1", "price": "1", "fee": "0", "ts": "?"}
    )
    assert cost_drift(redis_client, SCHEMA, day, th.costs) == {"skipped": f"no fills up to {day}"}


def test_measures_when_history_is_shorter_than_the_windows_then_skipped_with_the_reason(
    redis_client, lake_root
):
    from tests.risk_book_support import write_closes

    lake, th = Lake(lake_root), load_thresholds()
    closes = write_closes(lake, days=30)
    day = closes.index[-1]
    redis_client.hset(SCHEMA.key("positions"), "AAA", 10)
    short = var_exceptions(lake, redis_client, SCHEMA, day, th.var, model="historical", window=100)
    assert "more than window=100 daily returns" in short["skipped"]
    _champion(lake, "2023-01-02")
    assert live_ic(lake, day, th.ic) == {"skipped": f"29 dates with a realised return up to {day}; 40 needed"}
    drift = feature_drift(lake, day, th.drift)
    assert "lacks the training window 2023-01-02..2023-06-30" in drift["skipped"]
    redis_client.hset(SCHEMA.key("positions"), "ZZZ", 10)  # not in the lake: an error, not a skip
    with pytest.raises(InputError) as caught:
        var_exceptions(lake, redis_client, SCHEMA, day, th.var, model="historical", window=20)
    assert caught.value.field == "positions"


def _champion(lake: Lake, start: str) -> None:
    """A champion registered on a window the lake does not hold (any fitted estimator serves)."""
    from sklearn.dummy import DummyRegressor

    from strategy.features import FEATURES
    from strategy.registry import register, set_champion

    model = DummyRegressor().fit(np.zeros((2, len(FEATURES))), [0.0, 0.0])
    meta = {"features": list(FEATURES), "data_window": [start, "2023-06-30"], "metrics": {"ic": 0.02}}
    set_champion(lake, register(lake, model, meta, version="old"), "fixture")
