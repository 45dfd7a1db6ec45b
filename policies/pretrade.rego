# Pre-trade policies of the execution worker. Limits are data (policies/data.json): changing a limit
# needs no code change. Input: {"order": SubmitOrder fields, "position": current shares of the ticker,
# "kill_switch": bool, "esg_score": score of the ticker or null}.
package pretrade

import rego.v1

default allow := false

notional := input.order.quantity * input.order.reference_price

signed_quantity := input.order.quantity if input.order.side == "BUY"

signed_quantity := 0 - input.order.quantity if input.order.side == "SELL"

new_position := input.position + signed_quantity

# An order increases risk when it moves the position further from zero.
risk_increasing if abs(new_position) > abs(input.position)

deny contains msg if {
	input.order.ticker in data.limits.restricted
	msg := sprintf("RESTRICTED_INSTRUMENT: ticker=%v", [input.order.ticker])
}

deny contains msg if {
	notional > data.limits.max_order_notional
	msg := sprintf("NOTIONAL_EXCEEDS_MAX: max=%v, notional=%v", [data.limits.max_order_notional, notional])
}

deny contains msg if {
	abs(new_position) > data.limits.max_position_shares
	msg := sprintf("POSITION_EXCEEDS_MAX: max=%v, position_after=%v", [data.limits.max_position_shares, new_position])
}

deny contains msg if {
	input.order.side == "BUY"
	input.esg_score != null
	input.esg_score < data.limits.min_esg_score
	msg := sprintf("ESG_EXCLUDED: min=%v, score=%v", [data.limits.min_esg_score, input.esg_score])
}

deny contains msg if {
	input.kill_switch
	risk_increasing
	msg := sprintf("KILL_SWITCH_ACTIVE: position=%v, position_after=%v", [input.position, new_position])
}

allow if count(deny) == 0
