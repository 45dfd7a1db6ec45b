"""The FIX-style life of an order in the worker (OrdStatus): every state change goes through :func:`advance`.

::

    (none) -> NEW               route stored, children about to be sent
    (none) -> REJECTED          a pre-trade policy denied it                        (terminal)
    NEW | PARTIALLY_FILLED -> PARTIALLY_FILLED   a child filled, quantity still open
    NEW | PARTIALLY_FILLED -> FILLED             cumulative fills reach the order quantity (terminal)
    NEW | PARTIALLY_FILLED -> CANCELLED          the open rest is cancelled (no depth / limit), possibly
                                                 after partial fills: ``filled`` says how much (terminal)

The state record in Redis (``orders:state``) is JSON ``{"state", "filled", "history", "children"|"reasons"}``.
"""

from __future__ import annotations

from collections.abc import Sequence

NEW = "NEW"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELLED = "CANCELLED"
REJECTED = "REJECTED"

TERMINAL = frozenset({FILLED, CANCELLED, REJECTED})
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({NEW, REJECTED}),
    NEW: frozenset({PARTIALLY_FILLED, FILLED, CANCELLED}),
    PARTIALLY_FILLED: frozenset({PARTIALLY_FILLED, FILLED, CANCELLED}),
    FILLED: frozenset(),
    CANCELLED: frozenset(),
    REJECTED: frozenset(),
}


class InvalidTransition(ValueError):
    """A state change the order life cycle does not allow (e.g. FILLED -> NEW)."""


def advance(history: Sequence[str], target: str) -> list[str]:
    """``history`` extended by ``target``; raises InvalidTransition when the last state cannot go there.
    A repeated PARTIALLY_FILLED is one state, not two entries."""
    current = history[-1] if history else None
    allowed = TRANSITIONS.get(current)
    if allowed is None:
        raise InvalidTransition(
            f"order state {current!r} is unknown: expected one of {', '.join(s for s in TRANSITIONS if s)}"
        )
    if target not in allowed:
        raise InvalidTransition(
            f"order state change {current} -> {target} is not allowed: from {current} only "
            f"{', '.join(sorted(allowed)) or 'nothing (terminal)'}"
        )
    return list(history) if target == current else [*history, target]


def after_fill(history: Sequence[str], filled: float, quantity: float) -> list[str]:
    """History after a fill bringing the cumulative quantity to ``filled`` of ``quantity``."""
    return advance(history, FILLED if filled >= quantity - 1e-9 else PARTIALLY_FILLED)


def is_open(state: str) -> bool:
    """True for a routed order whose children may still fill (a replay resumes it)."""
    return state not in TERMINAL
