"""The FIX-style order life cycle: allowed and refused state changes."""

from __future__ import annotations

import pytest

from execution import orders as life


def test_advance_when_routed_then_partially_filled_then_filled():
    history = life.advance([], life.NEW)
    history = life.after_fill(history, 40, 100)
    history = life.after_fill(history, 70, 100)
    history = life.after_fill(history, 100, 100)
    assert history == ["NEW", "PARTIALLY_FILLED", "FILLED"]


def test_advance_when_rest_cancelled_after_partial_fill_then_cancelled_is_terminal():
    history = life.advance(life.after_fill(["NEW"], 40, 100), life.CANCELLED)
    assert history == ["NEW", "PARTIALLY_FILLED", "CANCELLED"]
    assert not life.is_open(history[-1]) and life.is_open("PARTIALLY_FILLED")


@pytest.mark.parametrize(
    "history, target",
    [
        (["NEW", "FILLED"], "NEW"),
        (["REJECTED"], "FILLED"),
        ([], "FILLED"),
        (["NEW"], "REJECTED"),
        (["NEW", "CANCELLED"], "PARTIALLY_FILLED"),
    ],
)
def test_advance_when_change_not_allowed_then_error_names_both_states(history, target):
    with pytest.raises(life.InvalidTransition, match=f"-> {target} is not allowed"):
        life.advance(history, target)


def test_advance_when_state_unknown_then_error_names_it():
    with pytest.raises(life.InvalidTransition, match="'ROUTED' is unknown"):
        life.advance(["ROUTED"], life.FILLED)
