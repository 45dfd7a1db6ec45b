"""Rego pre-trade policies evaluated for real with each engine (regorus, regopy); limits come from data,
prices from the mark."""

from __future__ import annotations

import json

import pytest

from execution.policy import ENGINES, PolicyEngine, RiskContext
from quantbridge.messages import SubmitOrder


def order(ticker="AAPL", side="BUY", quantity=100.0, price=100.0) -> SubmitOrder:
    return SubmitOrder(
        order_id="o1",
        ts="t",
        strategy="s",
        ticker=ticker,
        side=side,
        quantity=quantity,
        reference_price=price,
    )


def ctx(mark=100.0, **kwargs) -> RiskContext:
    return RiskContext(mark=mark, **kwargs)


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    return PolicyEngine(engine=request.param)


def test_policy_when_order_within_limits_then_allowed(engine):
    verdict = engine.evaluate(order(), ctx(esg_score=0.7))
    assert verdict.allowed and verdict.reasons == ()


@pytest.mark.parametrize(
    "kwargs, context, reason",
    [
        ({"ticker": "RRC"}, ctx(esg_score=0.5), "RESTRICTED_INSTRUMENT: ticker=RRC"),
        ({"quantity": 3000.0}, ctx(), "NOTIONAL_EXCEEDS_MAX: max=250000, notional=300000, mark=100"),
        (
            {"quantity": 2600.0, "price": 95.0},
            ctx(),
            "NOTIONAL_EXCEEDS_MAX: max=250000, notional=260000, mark=100",
        ),
        ({"price": 111.0}, ctx(), "PRICE_BAND: band=0.1, mark=100, reference_price=111"),
        ({"price": 89.0}, ctx(), "PRICE_BAND: band=0.1, mark=100, reference_price=89"),
        (
            {"quantity": 100.0, "price": 10.0},
            ctx(mark=10.0, position=19950),
            "POSITION_EXCEEDS_MAX: max=20000, position_after=20050, in_flight=0",
        ),
        (
            {"quantity": 100.0, "price": 10.0},
            ctx(mark=10.0, position=19000, pending_buy=950, pending_sell=5000),
            "POSITION_EXCEEDS_MAX: max=20000, position_after=20050, in_flight=950",
        ),
        (
            {"side": "SELL", "quantity": 100.0, "price": 10.0},
            ctx(mark=10.0, position=-19000, pending_sell=950),
            "POSITION_EXCEEDS_MAX: max=20000, position_after=-20050, in_flight=-950",
        ),
        ({}, ctx(esg_score=0.2), "ESG_EXCLUDED: min=0.25, score=0.2"),
        (
            {},
            ctx(position=50, kill_switch=True),
            "KILL_SWITCH_ACTIVE: position=50, position_after=150, reducible=0",
        ),
        (
            {"side": "SELL", "quantity": 200.0},
            ctx(position=100, kill_switch=True),
            "KILL_SWITCH_ACTIVE: position=100, position_after=-100, reducible=100",
        ),
        ({}, ctx(risk_stale=True, risk_age_s=301.5, risk_max_age_s=90), "RISK_STALE: age_s=301.5, max_s=90"),
        ({}, ctx(risk_stale=True), "RISK_STALE: age_s=null, max_s=90"),
    ],
)
def test_policy_when_a_rule_is_broken_then_denied_with_reason_code(engine, kwargs, context, reason):
    verdict = engine.evaluate(order(**kwargs), context)
    assert not verdict.allowed
    assert verdict.reasons == (reason,)


@pytest.mark.parametrize("blocker", [{"kill_switch": True}, {"risk_stale": True}])
def test_policy_when_halted_or_blind_then_risk_reducing_orders_still_pass(engine, blocker):
    assert engine.evaluate(
        order(side="SELL", quantity=50), ctx(position=200, esg_score=0.1, **blocker)
    ).allowed
    assert engine.evaluate(order(side="SELL", quantity=200), ctx(position=200, **blocker)).allowed  # to flat
    assert engine.evaluate(order(side="BUY", quantity=50), ctx(position=-200, **blocker)).allowed
    assert not engine.evaluate(order(side="SELL", quantity=500), ctx(position=200, **blocker)).allowed


def test_policy_when_orders_in_flight_reduce_then_the_kill_switch_counts_them(engine):
    # Long 100 with a sell of 100 already in flight: a further sell opens a short, so it adds risk.
    verdict = engine.evaluate(
        order(side="SELL", quantity=10), ctx(position=100, pending_sell=100, kill_switch=True)
    )
    assert verdict.reasons == ("KILL_SWITCH_ACTIVE: position=0, position_after=-10, reducible=0",)


def test_policy_when_limit_changed_in_data_then_no_code_change_needed():
    loose = PolicyEngine(data_overrides={"max_order_notional": 1_000_000, "price_band": 0.5})
    assert loose.evaluate(order(quantity=3000.0, price=140.0), ctx()).allowed
    assert loose.evaluate(order(quantity=3000.0), ctx()).as_dict() == {"allowed": True, "reasons": []}
    assert loose.revision != PolicyEngine().revision  # the audit names which limits decided


def test_policy_when_folder_has_no_rego_then_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="rego"):
        PolicyEngine(tmp_path)


def test_policy_when_regorus_given_several_modules_or_unknown_engine_then_error(tmp_path):
    for name in ("a.rego", "b.rego"):
        (tmp_path / name).write_text("package pretrade\n")
    (tmp_path / "data.json").write_text('{"limits": {}}')
    with pytest.raises(ValueError, match="one .rego module"):
        PolicyEngine(tmp_path)
    assert PolicyEngine(tmp_path, engine="regopy").engine == "regopy"
    with pytest.raises(ValueError, match="unknown policy engine"):
        PolicyEngine(engine="opa")  # type: ignore[arg-type]


def test_evaluate_many_when_batch_of_varied_orders_then_each_verdict_equals_the_single_evaluation(engine):
    cases = [
        (order(), ctx(esg_score=0.7)),
        (order(ticker="RRC"), ctx(esg_score=0.5)),
        (order(quantity=3000.0), ctx(kill_switch=True, esg_score=0.5)),
        (order(side="SELL", quantity=50.0), ctx(position=100.0, kill_switch=True)),
        (
            order(side="BUY", quantity=100.0, price=10.0),
            ctx(mark=10.0, position=19950.0, kill_switch=True, esg_score=0.1),
        ),
        (order(ticker="XOM"), ctx(position=-5.0, esg_score=0.3)),
        (order(price=200.0), ctx(risk_stale=True)),
    ]
    batch = engine.evaluate_many(cases)
    assert batch == [engine.evaluate(*case) for case in cases]
    assert [v.allowed for v in batch] == [True, False, False, True, False, True, False]
    assert len(batch[4].reasons) == 3 and len(batch[6].reasons) == 2 and engine.evaluate_many([]) == []


def test_revision_when_folder_loaded_then_it_is_the_bundle_revision_and_sha256_its_alias(engine, tmp_path):
    from execution.bundle import build, canonical_data, revision_of

    assert engine.revision == build(engine.folder, "a", "r").revision
    overrides = {"max_order_notional": 1_000_000}
    loose = PolicyEngine(data_overrides=overrides, engine=engine.engine)
    data = {"limits": {**engine.data["limits"], **overrides}}
    files = {
        "pretrade.rego": (engine.folder / "pretrade.rego").read_bytes(),
        "data.json": canonical_data(data),
    }
    assert loose.revision == revision_of(files) and loose.data == data


def test_from_verified_when_bundle_checked_then_same_verdicts_from_its_bytes(engine, tmp_path):
    from execution.bundle import build, store, verify
    from quantbridge.lake import Lake
    from quantbridge.signing import KeyRing

    lake, ring = Lake(tmp_path / "lake"), KeyRing(tmp_path / "keys", "policy")
    bundle = build(engine.folder, "alice", "test")
    store(bundle, lake, ring)
    loaded = PolicyEngine.from_verified(
        verify(lake, bundle.revision, ring, require_approvals=False), engine.engine
    )
    assert loaded.revision == engine.revision and loaded.engine == engine.engine
    cases = [(order(), ctx(esg_score=0.7)), (order(ticker="RRC"), ctx()), (order(quantity=3000.0), ctx())]
    assert loaded.evaluate_many(cases) == engine.evaluate_many(cases)
    tight = PolicyEngine.from_verified(
        verify(lake, bundle.revision, ring, require_approvals=False), engine.engine, {"max_order_notional": 1}
    )
    assert not tight.evaluate(order(), ctx(esg_score=0.7)).allowed and tight.revision != loaded.revision


def test_policy_when_item_lacks_its_mark_then_no_verdict_and_the_batch_fails_closed():
    engine = PolicyEngine()
    item = PolicyEngine._item(
        SubmitOrder("o1", "2026-12-01T00:00:00+00:00", "s", "AAPL", "BUY", 1.0, 50.0), RiskContext(mark=50.0)
    )
    del item["mark"]
    assert engine._regorus.evaluate_parsed(json.dumps({"items": [item]})) == []  # no verdict, never "allow"
