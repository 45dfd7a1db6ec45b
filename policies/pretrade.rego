# Pre-trade policies of the execution worker. Limits are data (policies/data.json): changing a limit
# needs no code change. One item:
#   {"order": SubmitOrder fields, "mark": the worker's trusted price of the ticker (lake close or venue mid),
#    "position": current shares, "pending_buy"/"pending_sell": shares of open orders not yet filled,
#    "kill_switch": bool, "risk_stale": bool, "risk_age_s": seconds or null, "esg_score": score or null}.
# The input is one item (rules `allow`, `deny`) or a batch {"items": [item, ...]} (rule `verdicts`, one
# {"allow", "deny"} per item, in order): one query for a whole batch costs less than one per order.
package pretrade

import rego.v1

# Notional at the trusted mark, never only at the price the order carries (independent marks).
notional(it) := it.order.quantity * it.mark

signed_quantity(it) := it.order.quantity if it.order.side == "BUY"

signed_quantity(it) := 0 - it.order.quantity if it.order.side == "SELL"

# The position this order starts from in the worst case: open orders on the same side count as filled.
base_position(it) := it.position + it.pending_buy if it.order.side == "BUY"

base_position(it) := it.position - it.pending_sell if it.order.side == "SELL"

new_position(it) := base_position(it) + signed_quantity(it)

# Risk-increasing: the position moves further from zero, or through zero (the part beyond the
# current size opens risk on the other side).
risk_increasing(it) if abs(new_position(it)) > abs(base_position(it))

risk_increasing(it) if new_position(it) * base_position(it) < 0

# Shares of this order that only reduce the current exposure.
reducible(it) := min([it.order.quantity, abs(base_position(it))]) if {
	new_position(it) * base_position(it) <= 0
} else := 0

restricted(it) := {msg |
	it.order.ticker in data.limits.restricted
	msg := sprintf("RESTRICTED_INSTRUMENT: ticker=%v", [it.order.ticker])
}

oversized(it) := {msg |
	notional(it) > data.limits.max_order_notional
	msg := sprintf("NOTIONAL_EXCEEDS_MAX: max=%v, notional=%v, mark=%v", [data.limits.max_order_notional, notional(it), it.mark])
}

off_band(it) := {msg |
	abs(it.order.reference_price - it.mark) > data.limits.price_band * it.mark
	msg := sprintf("PRICE_BAND: band=%v, mark=%v, reference_price=%v", [data.limits.price_band, it.mark, it.order.reference_price])
}

over_position_limit(it) := {msg |
	abs(new_position(it)) > data.limits.max_position_shares
	msg := sprintf("POSITION_EXCEEDS_MAX: max=%v, position_after=%v, in_flight=%v", [data.limits.max_position_shares, new_position(it), base_position(it) - it.position])
}

esg_excluded(it) := {msg |
	it.order.side == "BUY"
	it.esg_score != null
	it.esg_score < data.limits.min_esg_score
	msg := sprintf("ESG_EXCLUDED: min=%v, score=%v", [data.limits.min_esg_score, it.esg_score])
}

kill_switch_blocks(it) := {msg |
	it.kill_switch
	risk_increasing(it)
	msg := sprintf("KILL_SWITCH_ACTIVE: position=%v, position_after=%v, reducible=%v", [base_position(it), new_position(it), reducible(it)])
}

# Fail closed: without fresh risk figures nothing may add risk.
risk_stale_blocks(it) := {msg |
	it.risk_stale
	risk_increasing(it)
	msg := sprintf("RISK_STALE: age_s=%v, max_s=%v", [it.risk_age_s, it.risk_max_age_s])
}

reasons(it) := ((((((restricted(it) | oversized(it)) | off_band(it)) | over_position_limit(it)) | esg_excluded(it)) | kill_switch_blocks(it)) | risk_stale_blocks(it))

deny := reasons(input)

default allow := false

allow if count(deny) == 0

verdicts := [{"allow": count(r) == 0, "deny": r} | some it in input.items; r := reasons(it)]
