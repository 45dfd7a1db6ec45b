"""The naive executor the router is measured against: each order at once, at one venue, as a market order.

No split, no limit price, no Kalman filter: the whole quantity goes to one venue (by default the deepest,
:func:`deepest_venue`; BETA among the default venues) and walks its book beyond the touch (see
:func:`execution.market.walk_bps`: each further level shows the venue's depth and costs one more spread by
default). It trades against an **independent copy** of the replay's market (:meth:`Market.replica`: the
same sessions' anchors and daily vols, ADV, impact law and seed, before any trading), so its own depletion
and impact accumulate as the replay's do, and the replay's market is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from execution.market import Market, fills_frame
from execution.venues import VenueSpec
from quantbridge.errors import InputError

#: Order columns the naive executor reads (the replay's orders frame has more).
ORDER_COLUMNS = ("order_id", "exec_day", "ticker", "side", "quantity")
#: Orders in these states never reached a venue in the replay, so the naive executor skips them too.
SKIPPED_STATES = ("REJECTED",)


def deepest_venue(venues: Iterable[VenueSpec]) -> VenueSpec:
    """The venue with the most depth at the touch (ties: the first name in order)."""
    ranked = sorted(venues, key=lambda v: (-v.depth, v.name))
    if not ranked:
        raise InputError("venues", [], "at least one venue")
    return ranked[0]


def naive_execute(
    orders: pd.DataFrame,
    market: Market | Mapping[str, Any],
    venue: str | None = None,
    level_step_bps: float | None = None,
    skip_states: Sequence[str] = SKIPPED_STATES,
    adv_scale: float = 1.0,
) -> pd.DataFrame:
    """Fills of ``orders`` executed naively, session by session in ``exec_day`` order.

    Parameters
    ----------
    orders: the replay's orders (at least :data:`ORDER_COLUMNS`; a ``state`` in ``skip_states`` is skipped).
    market: the replay's market or its :meth:`Market.state`; only its parameters and sessions are read.
    venue: the one venue used (default: the deepest).
    level_step_bps: extra cost of each book level beyond the touch (default: the venue's full spread).
    adv_scale: multiplies every ADV (for :func:`execution.tca.adv_sensitivity`).

    Returns
    -------
    One fill per order executed, with :data:`execution.market.FILL_COLUMNS` (fill id ``<order_id>#naive``).
    """
    missing = [c for c in ORDER_COLUMNS if c not in orders.columns]
    if missing:
        raise InputError("orders columns", missing, f"columns {list(ORDER_COLUMNS)}")
    source = market if isinstance(market, Market) else Market.from_state(market)
    naive = source.replica(adv_scale)
    spec = naive.venue(venue).spec if venue is not None else deepest_venue(naive.specs.values())
    todo = orders if "state" not in orders.columns else orders[~orders["state"].isin(list(skip_states))]
    days = pd.to_datetime(todo["exec_day"]).dt.date
    for day in sorted(set(days)):
        session = source.sessions.get(day.isoformat())
        if session is None:
            raise InputError("exec_day", day.isoformat(), "a day the replay's market opened a session for")
        naive.open_session(day, session["anchors"], session["daily_vol"])
        for order in todo[days == day].itertuples(index=False):
            ticker = str(order.ticker).upper()
            naive.fill(
                spec,
                f"{order.order_id}#naive",
                str(order.order_id),
                ticker,
                str(order.side),
                float(order.quantity),
                naive.anchors.get(ticker, 1.0),  # the mark is the anchor; a missing one is named by fill
                walk=True,
                level_step_bps=level_step_bps,
            )
        naive.close_session()
    return fills_frame(naive.take_records())


__all__ = ["ORDER_COLUMNS", "SKIPPED_STATES", "deepest_venue", "naive_execute"]
