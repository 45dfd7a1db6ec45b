# Unit tests of policies/pretrade.rego, `opa test` style: every rule `test_*` must be true. Run by
# `qb policy test`, by pytest (tests/unit/execution/test_policy_tests.py) and at every proposal, against the
# limits of the bundle proposed: each test derives its figures from data.limits (just over a limit the rule
# fires, at the limit it does not), so a change of limits passes as long as the rules hold and the limits
# are sane. Not part of the bundle: a bundle holds policies/*.rego and data.json only.
#
# regopy 1.5.2 crashes (SIGSEGV) on `with input as {...}` when a policy function is applied to input, and on
# `with input.order as base.order` (a rule as the value): tests call the functions on items, and replace
# single input fields by literals or local variables (`with input.items as [...]`), which works.
package pretrade_test

import rego.v1

limits := data.limits

# One share at a mark of 10, no position, fresh risk, best ESG score: inside any sane limits.
base := {
	"order": {"ticker": "QBTEST", "side": "BUY", "quantity": 1, "reference_price": 10, "strategy": "test"},
	"mark": 10,
	"position": 0,
	"pending_buy": 0,
	"pending_sell": 0,
	"kill_switch": false,
	"risk_stale": false,
	"risk_age_s": null,
	"risk_max_age_s": 90,
	"esg_score": 1,
}

# base with some order fields and some context fields replaced.
item(order, context) := object.union(object.union(base, context), {"order": object.union(base.order, order)})

reasons(it) := data.pretrade.reasons(it)

has_prefix(it, code) if {
	some r in reasons(it)
	startswith(r, code)
}

# --- limits are sane (a proposal with a broken limits file fails here) ------------------------------------

test_limits_are_sane if {
	limits.max_order_notional > 0
	limits.max_position_shares > 0
	limits.price_band > 0
	limits.price_band < 1
	limits.min_esg_score >= 0
	limits.min_esg_score <= 1
	every t in limits.restricted {
		is_string(t)
	}
}

test_base_item_is_allowed if {
	count(reasons(base)) == 0
}

# --- restricted instruments -------------------------------------------------------------------------------

test_restricted_when_ticker_listed_then_denied if {
	it := item({"ticker": "ZZZ"}, {})
	reasons(it) == {"RESTRICTED_INSTRUMENT: ticker=ZZZ"} with data.limits.restricted as ["ZZZ"]
}

test_restricted_when_every_listed_ticker_then_denied if {
	every t in limits.restricted {
		sprintf("RESTRICTED_INSTRUMENT: ticker=%v", [t]) in reasons(item({"ticker": t}, {}))
	}
}

test_restricted_when_selling_then_still_denied if {
	it := item({"ticker": "ZZZ", "side": "SELL"}, {"position": 5})
	"RESTRICTED_INSTRUMENT: ticker=ZZZ" in reasons(it) with data.limits.restricted as ["ZZZ"]
}

# --- notional at the trusted mark -------------------------------------------------------------------------

over_notional_quantity := floor(limits.max_order_notional / 100) + 1

test_notional_when_over_max_at_the_mark_then_denied if {
	it := item({"quantity": over_notional_quantity, "reference_price": 100}, {"mark": 100})
	msg := sprintf(
		"NOTIONAL_EXCEEDS_MAX: max=%v, notional=%v, mark=%v",
		[limits.max_order_notional, over_notional_quantity * 100, 100],
	)
	msg in reasons(it)
}

test_notional_when_at_max_then_not_denied if {
	it := item({"quantity": limits.max_order_notional / 100, "reference_price": 100}, {"mark": 100})
	not has_prefix(it, "NOTIONAL_EXCEEDS_MAX")
}

# The order's own price cannot hide its size: notional is taken at the mark.
test_notional_when_order_price_is_low_then_the_mark_decides if {
	it := item({"quantity": over_notional_quantity, "reference_price": 95}, {"mark": 100})
	has_prefix(it, "NOTIONAL_EXCEEDS_MAX")
}

# --- price band around the mark ---------------------------------------------------------------------------

test_band_when_price_above_the_band_then_denied if {
	price := (100 * (1 + limits.price_band)) + 1
	it := item({"reference_price": price}, {"mark": 100})
	sprintf("PRICE_BAND: band=%v, mark=100, reference_price=%v", [limits.price_band, price]) in reasons(it)
}

test_band_when_price_below_the_band_then_denied if {
	price := (100 * (1 - limits.price_band)) - 1
	it := item({"reference_price": price}, {"mark": 100})
	has_prefix(it, "PRICE_BAND")
}

test_band_when_price_inside_the_band_then_not_denied if {
	it := item({"reference_price": 100 * (1 + (limits.price_band / 2))}, {"mark": 100})
	not has_prefix(it, "PRICE_BAND")
}

# --- position limit, orders in flight counted -------------------------------------------------------------

test_position_when_buy_crosses_max_then_denied if {
	max := limits.max_position_shares
	it := item({}, {"position": max})
	sprintf("POSITION_EXCEEDS_MAX: max=%v, position_after=%v, in_flight=0", [max, max + 1]) in reasons(it)
}

test_position_when_buy_reaches_max_then_not_denied if {
	it := item({}, {"position": limits.max_position_shares - 1})
	not has_prefix(it, "POSITION_EXCEEDS_MAX")
}

test_position_when_open_buys_in_flight_then_they_count if {
	max := limits.max_position_shares
	it := item({}, {"position": max - 10, "pending_buy": 10, "pending_sell": 500})
	sprintf("POSITION_EXCEEDS_MAX: max=%v, position_after=%v, in_flight=10", [max, max + 1]) in reasons(it)
}

test_position_when_short_sell_crosses_max_then_denied if {
	max := limits.max_position_shares
	it := item({"side": "SELL"}, {"position": 0 - max})
	has_prefix(it, "POSITION_EXCEEDS_MAX")
}

# --- ESG floor: buys only ---------------------------------------------------------------------------------

test_esg_when_buy_below_the_floor_then_denied if {
	score := limits.min_esg_score / 2
	sprintf("ESG_EXCLUDED: min=%v, score=%v", [limits.min_esg_score, score]) in reasons(item({}, {"esg_score": score}))
}

test_esg_when_selling_a_low_score_then_not_denied if {
	it := item({"side": "SELL"}, {"position": 5, "esg_score": limits.min_esg_score / 2})
	not has_prefix(it, "ESG_EXCLUDED")
}

test_esg_when_score_unknown_then_not_denied if {
	not has_prefix(item({}, {"esg_score": null}), "ESG_EXCLUDED")
}

# --- kill switch: only risk-increasing orders -------------------------------------------------------------

test_kill_switch_when_buy_adds_risk_then_denied if {
	it := item({"quantity": 3}, {"position": 5, "kill_switch": true})
	reasons(it) == {"KILL_SWITCH_ACTIVE: position=5, position_after=8, reducible=0"}
}

test_kill_switch_when_sell_goes_through_zero_then_denied_with_the_reducible_part if {
	it := item({"side": "SELL", "quantity": 8}, {"position": 5, "kill_switch": true})
	reasons(it) == {"KILL_SWITCH_ACTIVE: position=5, position_after=-3, reducible=5"}
}

test_kill_switch_when_sell_reduces_then_allowed if {
	count(reasons(item({"side": "SELL", "quantity": 3}, {"position": 5, "kill_switch": true}))) == 0
}

test_kill_switch_when_sells_in_flight_already_flatten_then_a_further_sell_adds_risk if {
	it := item({"side": "SELL", "quantity": 1}, {"position": 5, "pending_sell": 5, "kill_switch": true})
	reasons(it) == {"KILL_SWITCH_ACTIVE: position=0, position_after=-1, reducible=0"}
}

# --- stale risk figures: fail closed ----------------------------------------------------------------------

test_stale_risk_when_buy_adds_risk_then_denied if {
	it := item({}, {"risk_stale": true, "risk_age_s": 301, "risk_max_age_s": 90})
	reasons(it) == {"RISK_STALE: age_s=301, max_s=90"}
}

test_stale_risk_when_age_unknown_then_denied_with_null if {
	"RISK_STALE: age_s=null, max_s=90" in reasons(item({}, {"risk_stale": true}))
}

test_stale_risk_when_order_reduces_then_allowed if {
	count(reasons(item({"side": "SELL", "quantity": 2}, {"position": 5, "risk_stale": true}))) == 0
}

# --- several rules at once, single input and batches --------------------------------------------------------

test_reasons_when_several_rules_break_then_all_are_named if {
	it := item({"ticker": "ZZZ"}, {"kill_switch": true, "esg_score": 0})
	count(reasons(it)) == 3 with data.limits.restricted as ["ZZZ"]
}

test_allow_when_single_input_is_clean_then_true if {
	data.pretrade.allow with input.order as {"ticker": "QBTEST", "side": "BUY", "quantity": 1, "reference_price": 10}
		with input.mark as 10
		with input.position as 0
		with input.pending_buy as 0
		with input.pending_sell as 0
		with input.kill_switch as false
		with input.risk_stale as false
		with input.esg_score as 1
}

test_deny_when_single_input_adds_risk_under_the_kill_switch_then_named if {
	data.pretrade.deny == {"KILL_SWITCH_ACTIVE: position=0, position_after=1, reducible=0"} with input.order as {"ticker": "QBTEST", "side": "BUY", "quantity": 1, "reference_price": 10}
		with input.mark as 10
		with input.position as 0
		with input.pending_buy as 0
		with input.pending_sell as 0
		with input.kill_switch as true
		with input.risk_stale as false
		with input.esg_score as 1
}

test_verdicts_when_batch_then_one_verdict_per_item_in_order if {
	bad := item({}, {"kill_switch": true})
	verdicts := data.pretrade.verdicts with input.items as [base, bad, base]
	count(verdicts) == 3
	verdicts[0] == {"allow": true, "deny": set()}
	verdicts[1] == {"allow": false, "deny": reasons(bad)}
	verdicts[2].allow
}

test_verdicts_when_batch_is_empty_then_empty if {
	data.pretrade.verdicts == [] with input.items as []
}
