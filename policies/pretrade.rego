# Pre-trade policies of the execution worker. Limits are data (policies/data.json): changing a limit
# needs no code change. One item: {"order": SubmitOrder fields, "position": current shares of the ticker,
# "kill_switch": bool, "esg_score": score of the ticker or null}. The input is one item (rules `allow`,
# `deny`) or a batch {"items": [item, ...]} (rule `verdicts`, one {"allow", "deny"} per item, in order):
# one query for a whole batch costs less than one query per order.
package pretrade

import rego.v1

notional(it) := it.order.quantity * it.order.reference_price

signed_quantity(it) := it.order.quantity if it.order.side == "BUY"

signed_quantity(it) := 0 - it.order.quantity if it.order.side == "SELL"

new_position(it) := it.position + signed_quantity(it)

# An order increases risk when it moves the position further from zero.
risk_increasing(it) if abs(new_position(it)) > abs(it.position)

restricted(it) := {msg |
	it.order.ticker in data.limits.restricted
	msg := sprintf("RESTRICTED_INSTRUMENT: ticker=%v", [it.order.ticker])
}

oversized(it) := {msg |
	notional(it) > data.limits.max_order_notional
	msg := sprintf("NOTIONAL_EXCEEDS_MAX: max=%v, notional=%v", [data.limits.max_order_notional, notional(it)])
}

over_position_limit(it) := {msg |
	abs(new_position(it)) > data.limits.max_position_shares
	msg := sprintf("POSITION_EXCEEDS_MAX: max=%v, position_after=%v", [data.limits.max_position_shares, new_position(it)])
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
	msg := sprintf("KILL_SWITCH_ACTIVE: position=%v, position_after=%v", [it.position, new_position(it)])
}

reasons(it) := (((restricted(it) | oversized(it)) | over_position_limit(it)) | esg_excluded(it)) | kill_switch_blocks(it)

deny := reasons(input)

default allow := false

allow if count(deny) == 0

verdicts := [{"allow": count(r) == 0, "deny": r} | some it in input.items; r := reasons(it)]
