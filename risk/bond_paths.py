"""Full revaluation of the bond book on many simulated curves at once, exactly as QuantLib prices one.

:func:`cash_flows` asks QuantLib once for each bond's future cash flows (the bond that
:func:`risk.irrbb.price_book` builds: same schedule, day count and amounts); :meth:`Revaluer.revalue` then
values every path with NumPy:

* the zero rate at a cash flow's time t (Act/365F years from the valuation date, the curve's first pillar)
  is the rule of QuantLib's ``ZeroCurve`` (``InterpolatedZeroCurve<Linear>``) through the pillars: linear
  in t between pillars, and past the last pillar QuantLib's flat-forward
  extrapolation, z(t) = (z_n t_n + f_n (t - t_n)) / t with f_n = z_n + t_n z'(t_n), the instantaneous
  forward at the last pillar (z' the last segment's slope);
* every one of those rules is linear in the pillar zero rates, so z(t) = W(t) @ zeros: one weight matrix
  ``W`` (n_cash_flows, n_pillars) serves the base curve and every shocked one (base + pillar shocks);
* a bond's value is sum_k amount_k exp(-z(t_k) t_k) over its cash flows after the valuation date (a flow on
  that date has occurred, as in QuantLib's default).

:func:`check_against_quantlib` prices a sample of paths with QuantLib itself (``price_book`` on the shifted
:class:`~risk.irrbb.ZeroNodes`) and returns the largest relative difference (tested to 1e-6; ``qb var``
reports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from risk.irrbb import ZeroNodes, price_book, ql_bond, ql_date

#: Relative difference to QuantLib's prices a revaluation may show (the check fails above it).
CHECK_TOLERANCE = 1e-6


@dataclass(frozen=True)
class CashFlows:
    """The bond book's future cash flows, flattened: flow k pays ``amounts[k]`` at ``times[k]`` (Act/365F
    years after ``as_of``) to bond ``owner[k]`` (an index into ``ids``)."""

    as_of: date
    ids: tuple[str, ...]
    times: np.ndarray
    amounts: np.ndarray
    owner: np.ndarray

    def by_bond(self) -> np.ndarray:
        """(n_flows, n_bonds) matrix of the amounts, so that discount factors @ it are the bonds' values."""
        out = np.zeros((len(self.times), len(self.ids)))
        out[np.arange(len(self.times)), self.owner] = self.amounts
        return out


def cash_flows(book: pd.DataFrame, as_of: date) -> CashFlows:
    """Each bond's cash flows after ``as_of`` (coupons and redemption), amounts exactly QuantLib's.

    ``book``: the ``bond_book`` reference table (id, face, coupon_rate, maturity_date, coupon_frequency,
    currency); a matured bond, a non-positive face or an unknown currency is an InputError naming it."""
    import QuantLib as ql

    ql.Settings.instance().evaluationDate = ql_date(as_of)
    today = ql_date(as_of)
    times: list[float] = []
    amounts: list[float] = []
    owner: list[int] = []
    ids = [str(i) for i in book["id"]]
    if len(set(ids)) != len(ids):
        raise InputError("bond_book id", sorted({i for i in ids if ids.count(i) > 1}), "unique bond ids")
    for k, row in enumerate(book.itertuples(index=False)):
        for cf in ql_bond(row, as_of).cashflows():
            if cf.hasOccurred(today):
                continue
            d = cf.date()
            times.append((date(d.year(), d.month(), d.dayOfMonth()) - as_of).days / 365.0)
            amounts.append(float(cf.amount()))
            owner.append(k)
    return CashFlows(as_of, tuple(ids), np.array(times), np.array(amounts), np.array(owner, dtype=np.int64))


def zero_weights(pillars: np.ndarray, t: np.ndarray) -> np.ndarray:
    """W (len(t), len(pillars)) with z(t) = W @ zeros under QuantLib's ZeroCurve rule (module docstring).

    ``pillars``: increasing pillar times (years), at least two; ``t``: times to read the curve at."""
    p = np.asarray(pillars, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if p.ndim != 1 or len(p) < 2 or not (np.diff(p) > 0).all():
        raise InputError("pillar times", p.tolist(), "at least two increasing times")
    w = np.zeros((len(t), len(p)))
    rows = np.arange(len(t))
    inside = t <= p[-1]
    # Segment j spans [p[j], p[j+1]]; times before the first pillar use the first segment's line.
    j = np.clip(np.searchsorted(p, t[inside], side="right") - 1, 0, len(p) - 2)
    frac = (t[inside] - p[j]) / (p[j + 1] - p[j])
    w[rows[inside], j] = 1.0 - frac
    w[rows[inside], j + 1] += frac
    out = ~inside
    if out.any():
        # z(t) = (z_n t_n + (z_n + t_n s) (t - t_n)) / t, s = (z_n - z_{n-1}) / (t_n - t_{n-1})
        tn, tm, to = p[-1], p[-2], t[out]
        slope = tn / (tn - tm) * (to - tn) / to  # weight of s's numerator terms
        w[rows[out], -1] = 1.0 + slope
        w[rows[out], -2] = -slope
    return w


@dataclass(frozen=True)
class Revaluer:
    """Values the bond book on the base curve plus pillar shocks, many paths at once."""

    flows: CashFlows
    nodes: ZeroNodes
    weights: np.ndarray  # (n_flows, n_pillars)
    base_zeros: np.ndarray  # (n_flows,) the base curve's zero rate at each flow

    @classmethod
    def build(cls, book: pd.DataFrame, nodes: ZeroNodes) -> Revaluer:
        if not (len(nodes.times) and nodes.times[0] == 0):
            raise InputError(
                "curve first pillar",
                nodes.dates[0].isoformat() if nodes.dates else None,
                f"the valuation date {nodes.as_of.isoformat()} (QuantLib's reference date, t = 0)",
            )
        flows = cash_flows(book, nodes.as_of)
        weights = zero_weights(nodes.times, flows.times)
        return cls(flows, nodes, weights, weights @ nodes.zeros)

    @property
    def ids(self) -> tuple[str, ...]:
        return self.flows.ids

    def base_values(self) -> np.ndarray:
        """(n_bonds,) values on the base curve."""
        return self.revalue(np.zeros((1, len(self.nodes.times))))[0]

    def revalue(self, shocks: Any) -> np.ndarray:
        """(n_paths, n_bonds) values when the pillar zero rates move by ``shocks`` (n_paths, n_pillars),
        decimal continuously compounded."""
        s = np.asarray(shocks, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != len(self.nodes.times):
            raise InputError("shocks", f"shape {s.shape}", f"(n_paths, {len(self.nodes.times)} pillars)")
        z = self.base_zeros + s @ self.weights.T  # (n_paths, n_flows)
        discount = np.exp(-z * self.flows.times)
        return discount @ self.flows.by_bond()


def check_against_quantlib(
    book: pd.DataFrame, revaluer: Revaluer, shocks: np.ndarray, sample: int = 5
) -> float:
    """Largest relative difference between :meth:`Revaluer.revalue` and QuantLib's ``price_book`` on the
    shifted nodes, over the first ``sample`` paths of ``shocks`` and the base curve."""
    s = np.vstack([np.zeros(len(revaluer.nodes.times)), np.asarray(shocks)[:sample]])
    ours = revaluer.revalue(s)
    worst = 0.0
    for i, shock in enumerate(s):
        nodes = revaluer.nodes
        shifted = ZeroNodes(nodes.as_of, nodes.dates, nodes.times, nodes.zeros + shock)
        theirs = price_book(book, shifted).loc[list(revaluer.ids)].to_numpy()
        worst = max(worst, float(np.max(np.abs(ours[i] - theirs) / np.abs(theirs))))
    return worst
