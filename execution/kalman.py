"""A scalar Kalman filter per (venue, ticker) tracking the venue's base slippage (bps) from fills.

State: base slippage b (random walk, process variance q). Observation of a fill of size f at a venue of
depth D: z = slippage_bps / (1 + f / D), i.e. the fill's slippage scaled back to a base; noise variance r.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SlippageFilter:
    estimate: float = 1.0
    variance: float = 4.0
    process_var: float = 0.01
    measurement_var: float = 0.25

    def update(self, observed_bps: float, size: float, depth: float) -> float:
        """Fold one fill in; returns the new base-slippage estimate."""
        z = observed_bps / (1 + size / depth)
        prior = self.variance + self.process_var
        gain = prior / (prior + self.measurement_var)
        self.estimate += gain * (z - self.estimate)
        self.variance = (1 - gain) * prior
        return self.estimate

    def expected_bps(self, size: float, depth: float) -> float:
        return self.estimate * (1 + size / depth)
