"""Trading costs for the strategy's evaluations: the execution lane's cost model, passed in.

The layers forbid ``strategy`` to import ``execution`` (siblings), so the caller above both (the ``qb`` CLI,
a DAG task) hands over the execution lane's figures and its impact function
(:func:`execution.market.sqrt_impact_bps`): a trade of ``|dw|`` of a book worth ``book_value`` in a name
at price ``P`` with daily volatility ``sigma`` is ``q = |dw| x book_value / P`` shares and costs::

    |dw| x (half_spread_bps + taker_fee_bps + impact_bps(Y, sigma, ADV, 0, q)) / 1e4   (a share of the book)

with the cheapest venue's half spread plus taker fee (the router seeks it) and the square-root impact of
the whole trade in one session (no slicing across days, so an upper bound on impact).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quantbridge.errors import InputError

#: ``impact_bps(impact_y, daily_vol, adv, x0, x1)``: the execution lane's average impact of shares x0..x1.
ImpactFunction = Callable[[float, float, float, float, float], float]


@dataclass(frozen=True)
class CostModel:
    """Expected cost of rebalancing trades (see the module docstring).

    spread_fee_bps: half spread plus taker fee of the venue the trades go to (bps of the notional).
    impact_y: the square-root law's prefactor Y; adv: average daily volume per ticker (shares).
    impact_bps: the execution lane's impact function; book_value: the book's value in money.
    """

    spread_fee_bps: float
    impact_y: float
    adv: Mapping[str, float] = field(repr=False)
    impact_bps: ImpactFunction = field(repr=False)
    book_value: float = 1_000_000.0

    def __post_init__(self) -> None:
        for name in ("spread_fee_bps", "impact_y", "book_value"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InputError(name, value, "a finite number >= 0")
        if self.book_value <= 0:
            raise InputError("book_value", self.book_value, "a positive book value")

    @classmethod
    def from_venues(
        cls,
        venues: Iterable[Any],
        adv: Mapping[str, float],
        impact_bps: ImpactFunction,
        impact_y: float = 1.0,
        book_value: float = 1_000_000.0,
    ) -> CostModel:
        """From the execution lane's venue specs (``half_spread_bps``, ``taker_fee_bps``): the cheapest."""
        specs = list(venues)
        if not specs:
            raise InputError("venues", specs, "at least one venue spec")
        cheapest = min(float(v.half_spread_bps) + float(v.taker_fee_bps) for v in specs)
        return cls(cheapest, float(impact_y), dict(adv), impact_bps, float(book_value))

    def cost(self, ticker: str, traded_weight: float, price: float, daily_vol: float) -> float:
        """Cost of trading ``|traded_weight|`` of the book in ``ticker``, as a share of the book."""
        size = abs(float(traded_weight))
        if size == 0:
            return 0.0
        if not (math.isfinite(price) and price > 0):
            raise InputError(f"price[{ticker}]", price, "a positive price to size the trade")
        adv = self.adv.get(ticker)
        if adv is None:
            raise InputError("adv", ticker, "an average daily volume for every traded ticker")
        vol = float(daily_vol) if math.isfinite(daily_vol) else 0.0
        shares = size * self.book_value / price
        bps = self.spread_fee_bps + self.impact_bps(self.impact_y, vol, float(adv), 0.0, shares)
        return size * bps / 1e4


__all__ = ["CostModel", "ImpactFunction"]
