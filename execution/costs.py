"""Execution cost by venue, from fills as plain dicts (the ``fills`` stream's fields).

The one summary the dashboard (:mod:`reporting.snapshot`) and the nightly report both show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Fields a fill needs to count; numbers may be given as numbers or as the stream's text.
FILL_FIELDS = ("venue", "quantity", "price", "fee", "slippage_bps")


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None (missing, empty or not a number)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def venue_costs(fills: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Cost by venue over ``fills``, cheapest venue first (by ``cost_bps``, then name).

    Per venue: ``fills``, ``quantity`` (shares), ``notional`` (sum of quantity x price), ``fees`` and
    ``slippage_cost`` (sum of notional x slippage_bps / 1e4) in money; ``fee_bps`` (fees / notional),
    ``slippage_bps`` (slippage_cost / notional: the notional-weighted mean of the fills' slippage) and
    ``cost_bps`` (their sum, so cost_bps x notional is the venue's whole cost) in basis points. A fill
    without a venue, with a missing or non-numeric field, or with a notional <= 0 is left out, not guessed.
    """
    acc: dict[str, dict[str, float]] = {}
    for fill in fills:
        venue = fill.get("venue")
        qty, price, fee, slip = (_number(fill.get(k)) for k in FILL_FIELDS[1:])
        if not venue or qty is None or price is None or fee is None or slip is None or qty * price <= 0:
            continue
        a = acc.setdefault(
            str(venue),
            {
                "fills": 0,
                "quantity": 0.0,
                "notional": 0.0,
                "fees": 0.0,
                "slippage_cost": 0.0,
            },
        )
        a["fills"] += 1
        a["quantity"] += qty
        a["notional"] += qty * price
        a["fees"] += fee
        a["slippage_cost"] += qty * price * slip / 1e4
    rows = []
    for venue, a in acc.items():
        fee_bps = a["fees"] / a["notional"] * 1e4
        slip_bps = a["slippage_cost"] / a["notional"] * 1e4
        rows.append(
            {
                "venue": venue,
                "fills": int(a["fills"]),
                "quantity": a["quantity"],
                "notional": a["notional"],
                "fees": a["fees"],
                "slippage_cost": a["slippage_cost"],
                "fee_bps": fee_bps,
                "slippage_bps": slip_bps,
                "cost_bps": fee_bps + slip_bps,
            }
        )
    return sorted(rows, key=lambda r: (r["cost_bps"], r["venue"]))


__all__ = ["FILL_FIELDS", "venue_costs"]
