"""Simulated venues (no broker can be reached here): seeded, documented, with fees, spread, depth,
latency and partial fills.

Model of one child order of ``quantity`` shares at a venue, for a reference price P:
* the venue shows ``depth`` shares at the touch; at most that much fills, the rest is cancelled
  (a partial fill);
* the fill price is P x (1 + s x (half_spread_bps + slippage_bps) / 1e4), s = +1 to buy and -1 to sell,
  where slippage_bps ~ Normal(true_slippage_bps x (1 + filled / depth), noise_bps): bigger takes move the
  price more; a limit price caps it (beyond it, nothing fills);
* fees: taker_fee_bps of the notional; latency: ``latency_ms`` (recorded, slept only if asked).
The slippage draw is fixed by (venue seed, child id) through SHA-256, so a replay gives the same fills.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from statistics import NormalDist

_STANDARD = NormalDist()


@dataclass(frozen=True)
class Fill:
    fill_id: str
    order_id: str
    venue: str
    ticker: str
    side: str
    quantity: float
    price: float
    fee: float
    slippage_bps: float
    latency_ms: float


@dataclass(frozen=True)
class VenueSpec:
    name: str
    taker_fee_bps: float
    maker_fee_bps: float
    half_spread_bps: float
    true_slippage_bps: float
    noise_bps: float
    depth: float
    latency_ms: float
    seed: int


#: Three venues with different trade-offs: a cheap but thin one, a deep lit one, a slow dark pool.
DEFAULT_VENUES = (
    VenueSpec(
        "ALPHA",
        taker_fee_bps=0.5,
        maker_fee_bps=-0.2,
        half_spread_bps=2.0,
        true_slippage_bps=1.5,
        noise_bps=0.5,
        depth=400,
        latency_ms=0.2,
        seed=11,
    ),
    VenueSpec(
        "BETA",
        taker_fee_bps=1.5,
        maker_fee_bps=-0.1,
        half_spread_bps=1.0,
        true_slippage_bps=0.8,
        noise_bps=0.3,
        depth=3000,
        latency_ms=0.5,
        seed=22,
    ),
    VenueSpec(
        "GAMMA",
        taker_fee_bps=0.8,
        maker_fee_bps=0.0,
        half_spread_bps=0.5,
        true_slippage_bps=3.0,
        noise_bps=1.0,
        depth=1500,
        latency_ms=2.0,
        seed=33,
    ),
)


class SimulatedVenue:
    def __init__(self, spec: VenueSpec, sleep: bool = False) -> None:
        self.spec, self.sleep = spec, sleep

    def _normal(self, child_id: str, mean: float, sd: float) -> float:
        """A normal draw fixed by (venue seed, child id): the inverse CDF of a uniform taken from their
        SHA-256 (a NumPy generator per child cost ~15 us, a fifth of a worker's budget per order)."""
        digest = hashlib.sha256(b"%d:%s" % (self.spec.seed, child_id.encode())).digest()
        uniform = (int.from_bytes(digest[:7], "big") + 0.5) / 2**56  # in (0, 1), never 0 or 1
        return _STANDARD.inv_cdf(uniform) * sd + mean

    def execute(
        self,
        child_id: str,
        order_id: str,
        ticker: str,
        side: str,
        quantity: float,
        reference_price: float,
        limit_price: float | None = None,
    ) -> Fill | None:
        """Fill what the book allows of one child order (None when nothing fills)."""
        s = self.spec
        if self.sleep:
            time.sleep(s.latency_ms / 1000)
        filled = float(min(quantity, s.depth))
        slippage = self._normal(child_id, s.true_slippage_bps * (1 + filled / s.depth), s.noise_bps)
        sign = 1.0 if side == "BUY" else -1.0
        price = reference_price * (1 + sign * (s.half_spread_bps + slippage) / 1e4)
        if limit_price is not None and sign * (price - limit_price) > 0:
            return None
        return Fill(
            fill_id=child_id,
            order_id=order_id,
            venue=s.name,
            ticker=ticker,
            side=side,
            quantity=filled,
            price=price,
            fee=filled * price * s.taker_fee_bps / 1e4,
            slippage_bps=slippage,
            latency_ms=s.latency_ms,
        )
