"""The replay's simulated market: venues that fill around the day's real close and push back.

The bundled data has **daily closes only** (no intraday prices, no volumes), so a session's *anchor* for a
ticker is the real close of the day the orders execute; everything intraday is modelled around it.

Model of one child of ``q`` shares at venue ``v`` in ticker ``t``, side sign ``s`` (+1 buy, -1 sell)::

    price = anchor x (1 + s x (half_spread_bps + noise_bps + impact_bps [+ walk_bps]) / 1e4)

* **half spread**: the venue's ``half_spread_bps``.
* **noise** (intraday price noise over the fill's window), zero mean, Normal with standard deviation
  ``sqrt(v.noise_bps**2 + (daily_vol x sqrt(noise_window_s / 23_400) x 1e4)**2)`` bps: the venue's
  microstructure noise plus the price's diffusion over ``noise_window_s`` seconds of a 6.5 h session
  (1 s by default: a fill follows its release by milliseconds; at 2% daily vol that is 1.3 bps).
  Where the close stands within the day is market movement common to every executor (the arrival price is
  the anchor by construction), so it is not drawn.
* **impact**: the square-root law (Toth et al. 2011) on the instrument, all venues together: after ``X``
  shares traded this session in ``t`` (both sides, all venues) the peak impact is
  ``Y x daily_vol x sqrt(X / ADV)``; a child taking cumulative volume from ``X0`` to ``X1`` pays the
  average over that interval, ``Y x daily_vol x (2/3) x (X1**1.5 - X0**1.5) / ((X1 - X0) x sqrt(ADV))``
  (temporary impact: ``X`` restarts at zero each session). At 1% of ADV and 2% daily vol the peak is
  20 bps and a single child from zero pays 13.3 bps.
* **depth**: each venue shows ``v.depth`` shares at the touch per ticker. What the replay's own trading
  took is missing from it (whole shares shown) and recovers between sessions: at each close a fraction
  ``resilience`` of the missing depth comes back (0.5: a half-life of one session), so trading the same
  name day after day finds a thinner book. A child fills at most the depth shown (a partial fill; the
  worker cancels the rest); a limit price beyond which the price lands fills nothing (as
  :class:`~execution.venues.SimulatedVenue`; the refusal is kept in :attr:`Market.refusals`).
* **walk** (market orders of :mod:`execution.naive` only): beyond the touch a market order walks the book;
  behind the touch each further level shows ``v.depth`` shares, level ``k`` costing ``k x level_step_bps``
  more (default one full spread, ``2 x half_spread_bps``); ``walk_bps`` is the average over the order.
* **fees**: ``taker_fee_bps`` of the notional; ``Fill.slippage_bps`` is the slippage against the reference
  price excluding the half spread (what the router's Kalman filter learns from).

Randomness comes from a generator seeded with (market seed, venue seed, child id), so a child fills the
same way on every run; :meth:`Market.state` / :meth:`Market.from_state` carry everything else (depth,
session volumes, the sessions' anchors and vols, untaken records) so a resumed replay fills byte-identically.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from execution.venues import DEFAULT_VENUES, Fill, VenueSpec
from quantbridge.errors import InputError

#: The illustrative ADV table (see execution/data/README.md).
ADV_PATH = Path(__file__).resolve().parent / "data" / "adv.csv"
#: Seconds in a regular US equity session (09:30-16:00).
SESSION_SECONDS = 23_400.0
#: Columns of a fills frame (:func:`fills_frame`): the replay's fills plus the market's breakdown.
FILL_COLUMNS = (
    "fill_id",
    "order_id",
    "exec_day",
    "ticker",
    "side",
    "venue",
    "quantity",
    "price",
    "fee",
    "slippage_bps",
    "anchor",
    "half_spread_bps",
    "noise_bps",
    "impact_bps",
    "walk_bps",
    "depth_before",
)
#: Fields of a refusal (:attr:`Market.refusals`): a child whose price landed beyond its limit.
REFUSAL_COLUMNS = (
    "child_id",
    "order_id",
    "exec_day",
    "ticker",
    "side",
    "venue",
    "quantity",
    "price",
    "limit_price",
)
STATE_VERSION = 1
SIDES = {"BUY": 1.0, "SELL": -1.0}


def load_adv(path: str | Path | None = None) -> dict[str, float]:
    """ADV per ticker (shares a day) from a CSV with columns ``ticker, adv_shares`` (``#`` comments)."""
    path = Path(path) if path is not None else ADV_PATH
    if not path.is_file():
        raise InputError("adv path", str(path), "an existing CSV file with columns ticker, adv_shares")
    raw = pd.read_csv(path, comment="#", dtype=str, skipinitialspace=True)
    if sorted(raw.columns) != ["adv_shares", "ticker"]:
        raise InputError(f"{path} columns", list(raw.columns), "exactly ticker, adv_shares")
    adv: dict[str, float] = {}
    for row, (ticker, text) in enumerate(zip(raw["ticker"], raw["adv_shares"], strict=True), start=1):
        name = str(ticker).strip().upper() if isinstance(ticker, str) else ""
        if not name:
            raise InputError(f"{path} row {row} ticker", ticker, "a ticker symbol")
        if name in adv:
            raise InputError(f"{path} row {row} ticker", name, "each ticker once")
        adv[name] = _positive(f"{path} row {row} adv_shares", text)
    if not adv:
        raise InputError(f"{path}", "no rows", "one row per ticker")
    return adv


def _positive(field: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise InputError(field, value, "a finite number > 0")
    return number


def _non_negative(field: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise InputError(field, value, "a finite number >= 0")
    return number


def sqrt_impact_bps(impact_y: float, daily_vol: float, adv: float, x0: float, x1: float) -> float:
    """Average square-root impact (bps) paid by shares ``x0``..``x1`` of the session's volume in a name.

    Peak impact after ``x`` shares: ``impact_y x daily_vol x sqrt(x / adv)``; the average over the interval
    is its integral divided by ``x1 - x0`` (at ``x0 == x1`` the peak itself).
    """
    if x1 <= x0:
        return impact_y * daily_vol * math.sqrt(x0 / adv) * 1e4
    integral = (2.0 / 3.0) * (x1**1.5 - x0**1.5) / math.sqrt(adv)
    return impact_y * daily_vol * integral / (x1 - x0) * 1e4


def walk_bps(quantity: float, touch: float, depth: float, level_step_bps: float) -> float:
    """Average extra cost (bps) of a market order of ``quantity`` walking a book of ``touch`` shares at the
    touch and ``depth`` shares at each further level, level ``k`` costing ``k x level_step_bps`` more."""
    beyond = max(quantity - touch, 0.0)
    if beyond <= 0 or quantity <= 0:
        return 0.0
    full = math.floor(beyond / depth)
    rest = beyond - full * depth
    levels = depth * full * (full + 1) / 2 + rest * (full + 1)  # sum over the shares beyond of their level
    return level_step_bps * levels / quantity


class MarketVenue:
    """One venue of a :class:`Market`: a drop-in for :class:`~execution.venues.SimulatedVenue`."""

    def __init__(self, market: Market, spec: VenueSpec) -> None:
        self.market, self.spec = market, spec

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
        """Fill what the depth shown allows of one child (None when nothing fills)."""
        return self.market.fill(
            self.spec, child_id, order_id, ticker, side, quantity, reference_price, limit_price
        )


class Market:
    """The simulated market of a replay: sessions anchored on real closes, square-root impact, depth
    that depletes and recovers. See the module's docstring for the model.

    Parameters
    ----------
    venues: the venues' specs (fees, half spread, touch depth, noise, seed).
    adv: average daily volume per ticker (shares); None loads ``execution/data/adv.csv``.
    impact_y: the square-root law's prefactor Y (about 1 in Toth et al. 2011).
    resilience: fraction of the missing touch depth that recovers at each session close, in [0, 1].
    seed: the market's seed (with each venue's seed and the child id, it seeds each fill's noise).
    noise_window_s: seconds of price diffusion a fill's price is exposed to (intraday noise).
    """

    def __init__(
        self,
        venues: tuple[VenueSpec, ...] = DEFAULT_VENUES,
        adv: Mapping[str, float] | None = None,
        impact_y: float = 1.0,
        resilience: float = 0.5,
        seed: int = 20260101,
        noise_window_s: float = 1.0,
    ) -> None:
        if not venues or len({v.name for v in venues}) != len(venues):
            raise InputError("venues", [v.name for v in venues], "at least one venue, names unique")
        for v in venues:
            _positive(f"venue {v.name} depth", v.depth)
        self.specs = {v.name: v for v in venues}
        raw_adv = load_adv() if adv is None else adv
        self.adv = {str(t).upper(): _positive(f"adv[{t}]", a) for t, a in raw_adv.items()}
        self.impact_y = _non_negative("impact_y", impact_y)
        self.resilience = _non_negative("resilience", resilience)
        if self.resilience > 1:
            raise InputError("resilience", resilience, "a fraction in [0, 1]")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError("seed", seed, "an integer >= 0")
        self.seed = seed
        self.noise_window_s = _non_negative("noise_window_s", noise_window_s)
        self.day: date | None = None
        self.anchors: dict[str, float] = {}
        self.daily_vol: dict[str, float] = {}
        #: Shares traded this session per ticker, all venues and both sides (the impact law's X).
        self.traded: dict[str, float] = {}
        #: Shares missing from the touch, per venue and ticker (absent: the full depth shows).
        self.depleted: dict[str, dict[str, float]] = {}
        #: Every session opened: day (ISO) -> {"anchors": ..., "daily_vol": ...} (the naive executor's input).
        self.sessions: dict[str, dict[str, dict[str, float]]] = {}
        #: One dict per fill (:data:`FILL_COLUMNS`), until :meth:`take_records`.
        self.records: list[dict[str, Any]] = []
        #: One dict per child refused at its limit (:data:`REFUSAL_COLUMNS`), until :meth:`take_refusals`.
        self.refusals: list[dict[str, Any]] = []
        self._venues = {name: MarketVenue(self, spec) for name, spec in self.specs.items()}

    # --- sessions -------------------------------------------------------------------------------------
    def open_session(self, day: date, anchors: Mapping[str, float], daily_vol: Mapping[str, float]) -> None:
        """Open ``day``'s session. ``anchors``: ticker -> the day's real close (the data has closes only);
        ``daily_vol``: ticker -> daily volatility as a fraction (0.02 = 2%), e.g. an EWMA of past returns.
        Every anchored ticker needs a vol; days must increase."""
        if self.day is not None:
            raise InputError("day", day.isoformat(), "no session open", f"close {self.day.isoformat()} first")
        last = max(self.sessions) if self.sessions else None
        if last is not None and day.isoformat() <= last:
            raise InputError("day", day.isoformat(), f"a day after the last session {last}")
        marks = {str(t).upper(): _positive(f"anchors[{t}]", p) for t, p in anchors.items()}
        vols = {str(t).upper(): v for t, v in daily_vol.items()}
        missing = sorted(set(marks) - set(vols))
        if missing:
            raise InputError("daily_vol", missing, "a daily vol for every anchored ticker")
        self.day, self.anchors, self.traded = day, marks, {}
        self.daily_vol = {t: _non_negative(f"daily_vol[{t}]", vols[t]) for t in marks}
        self.sessions[day.isoformat()] = {"anchors": dict(self.anchors), "daily_vol": dict(self.daily_vol)}

    def close_session(self) -> None:
        """End the session: its impact volume lapses; ``resilience`` of the missing depth comes back."""
        keep = 1.0 - self.resilience
        for venue in list(self.depleted):
            left = {t: m * keep for t, m in self.depleted[venue].items() if m * keep > 1e-9}
            if left:
                self.depleted[venue] = left
            else:
                del self.depleted[venue]
        self.day, self.anchors, self.daily_vol, self.traded = None, {}, {}, {}

    # --- venues ---------------------------------------------------------------------------------------
    def venue(self, name: str) -> MarketVenue:
        """The venue ``name``, a drop-in for :class:`~execution.venues.SimulatedVenue`."""
        if name not in self._venues:
            raise InputError("venue", name, f"one of {sorted(self._venues)}")
        return self._venues[name]

    def venues(self) -> dict[str, MarketVenue]:
        """Every venue by name (what the worker's ``venues`` holds)."""
        return dict(self._venues)

    def depth(self, venue: str, ticker: str) -> float:
        """Whole shares the venue shows at the touch in ``ticker`` now."""
        spec = self.venue(venue).spec
        missing = self.depleted.get(venue, {}).get(ticker.upper(), 0.0)
        return float(max(math.floor(spec.depth - missing + 1e-9), 0))

    def impact_bps(self, ticker: str, quantity: float) -> float:
        """Average impact (bps) the next ``quantity`` shares of ``ticker`` would pay this session."""
        ticker = self._anchor(ticker)[0]
        x0 = self.traded.get(ticker, 0.0)
        return sqrt_impact_bps(self.impact_y, self.daily_vol[ticker], self._adv(ticker), x0, x0 + quantity)

    def fill(
        self,
        spec: VenueSpec,
        child_id: str,
        order_id: str,
        ticker: str,
        side: str,
        quantity: float,
        reference_price: float,
        limit_price: float | None = None,
        *,
        walk: bool = False,
        level_step_bps: float | None = None,
    ) -> Fill | None:
        """One child at ``spec``'s venue: at most the depth shown, or (``walk``) all, walking the book."""
        if side not in SIDES:
            raise InputError("side", side, "BUY or SELL")
        quantity = _positive("quantity", quantity)
        reference_price = _positive("reference_price", reference_price)
        ticker, anchor = self._anchor(ticker)
        adv = self._adv(ticker)
        sign = SIDES[side]
        shown = self.depth(spec.name, ticker)
        filled = quantity if walk else min(quantity, shown)
        if filled <= 0:
            return None
        step = 2 * spec.half_spread_bps if level_step_bps is None else level_step_bps
        walked = walk_bps(filled, shown, spec.depth, _non_negative("level_step_bps", step)) if walk else 0.0
        x0 = self.traded.get(ticker, 0.0)
        vol = self.daily_vol[ticker]
        impact = sqrt_impact_bps(self.impact_y, vol, adv, x0, x0 + filled)
        diffusion = vol * math.sqrt(self.noise_window_s / SESSION_SECONDS) * 1e4
        noise = float(self._rng(spec, child_id).normal(0.0, math.hypot(spec.noise_bps, diffusion)))
        moved = noise + impact + walked
        price = anchor * (1 + sign * (spec.half_spread_bps + moved) / 1e4)
        if limit_price is not None and sign * (price - limit_price) > 0:
            assert self.day is not None  # _anchor checked a session is open
            refusal = (
                child_id,
                order_id,
                self.day.isoformat(),
                ticker,
                side,
                spec.name,
                filled,
                price,
                limit_price,
            )
            self.refusals.append(dict(zip(REFUSAL_COLUMNS, refusal, strict=True)))
            return None
        if reference_price != anchor:  # the slippage is against the reference the caller priced with
            moved = sign * (price / reference_price - 1) * 1e4 - spec.half_spread_bps
        self.traded[ticker] = x0 + filled
        venue_missing = self.depleted.setdefault(spec.name, {})
        venue_missing[ticker] = min(venue_missing.get(ticker, 0.0) + min(filled, shown), spec.depth)
        fill = Fill(
            fill_id=child_id,
            order_id=order_id,
            venue=spec.name,
            ticker=ticker,
            side=side,
            quantity=filled,
            price=price,
            fee=filled * price * spec.taker_fee_bps / 1e4,
            slippage_bps=moved,
            latency_ms=spec.latency_ms,
        )
        assert self.day is not None  # _anchor checked a session is open
        self.records.append(
            {
                "fill_id": child_id,
                "order_id": order_id,
                "exec_day": self.day.isoformat(),
                "ticker": ticker,
                "side": side,
                "venue": spec.name,
                "quantity": filled,
                "price": price,
                "fee": fill.fee,
                "slippage_bps": moved,
                "anchor": anchor,
                "half_spread_bps": spec.half_spread_bps,
                "noise_bps": noise,
                "impact_bps": impact,
                "walk_bps": walked,
                "depth_before": shown,
            }
        )
        return fill

    def take_records(self) -> list[dict[str, Any]]:
        """The fills' breakdowns recorded since the last call (they leave the market's state)."""
        taken, self.records = self.records, []
        return taken

    def take_refusals(self) -> list[dict[str, Any]]:
        """The children refused at their limit price since the last call (they leave the market's state)."""
        taken, self.refusals = self.refusals, []
        return taken

    # --- state ----------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything a resumed replay needs, JSON-serialisable (floats round-trip exactly in JSON)."""
        return {
            "version": STATE_VERSION,
            "params": self._params(),
            "day": None if self.day is None else self.day.isoformat(),
            "anchors": dict(self.anchors),
            "daily_vol": dict(self.daily_vol),
            "traded": dict(self.traded),
            "depleted": {v: dict(m) for v, m in self.depleted.items()},
            "sessions": {d: {k: dict(x) for k, x in s.items()} for d, s in self.sessions.items()},
            "records": [dict(r) for r in self.records],
            "refusals": [dict(r) for r in self.refusals],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Market:
        """The market :meth:`state` described, ready to go on where it stopped."""
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            got = state.get("version") if isinstance(state, Mapping) else type(state).__name__
            raise InputError("market state version", got, f"{STATE_VERSION} (a dict from Market.state())")
        try:
            market = cls._from_params(state["params"])
            market.day = None if state["day"] is None else date.fromisoformat(state["day"])
            market.anchors = {t: float(p) for t, p in state["anchors"].items()}
            market.daily_vol = {t: float(v) for t, v in state["daily_vol"].items()}
            market.traded = {t: float(x) for t, x in state["traded"].items()}
            market.depleted = {v: {t: float(m) for t, m in ms.items()} for v, ms in state["depleted"].items()}
            market.sessions = {
                d: {k: {t: float(x) for t, x in xs.items()} for k, xs in s.items()}
                for d, s in state["sessions"].items()
            }
            market.records = [dict(r) for r in state["records"]]
            market.refusals = [dict(r) for r in state["refusals"]]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError("market state", repr(exc), "a dict from Market.state()") from exc
        return market

    def replica(self, adv_scale: float = 1.0) -> Market:
        """A fresh market with the same venues, ADV (times ``adv_scale``), law and seed, before any session
        or trading: an independent copy for another executor (open it with this one's :attr:`sessions`)."""
        scale = _positive("adv_scale", adv_scale)
        params = self._params()
        params["adv"] = {t: a * scale for t, a in self.adv.items()}
        return self._from_params(params)

    # --- helpers --------------------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        return {
            "venues": [asdict(v) for v in self.specs.values()],
            "adv": dict(self.adv),
            "impact_y": self.impact_y,
            "resilience": self.resilience,
            "seed": self.seed,
            "noise_window_s": self.noise_window_s,
        }

    @classmethod
    def _from_params(cls, params: Mapping[str, Any]) -> Market:
        return cls(
            venues=tuple(VenueSpec(**v) for v in params["venues"]),
            adv=params["adv"],
            impact_y=params["impact_y"],
            resilience=params["resilience"],
            seed=params["seed"],
            noise_window_s=params["noise_window_s"],
        )

    def _anchor(self, ticker: str) -> tuple[str, float]:
        name = str(ticker).upper()
        if name not in self.anchors:
            hint = "open_session first" if self.day is None else f"session {self.day.isoformat()}"
            raise InputError("ticker", ticker, "a ticker with an anchor in this session", hint)
        return name, self.anchors[name]

    def _adv(self, ticker: str) -> float:
        if ticker not in self.adv:
            raise InputError(
                "adv", ticker, "an average daily volume for the ticker", "see execution/data/adv.csv"
            )
        return self.adv[ticker]

    def _rng(self, spec: VenueSpec, child_id: str) -> np.random.Generator:
        digest = int.from_bytes(hashlib.sha256(child_id.encode()).digest()[:8], "big")
        return np.random.default_rng([self.seed, spec.seed, digest])


def fills_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Fill records (:attr:`Market.records`) as a frame with :data:`FILL_COLUMNS`."""
    return pd.DataFrame([dict(r) for r in records], columns=list(FILL_COLUMNS))


__all__ = [
    "ADV_PATH",
    "FILL_COLUMNS",
    "Market",
    "MarketVenue",
    "REFUSAL_COLUMNS",
    "fills_frame",
    "load_adv",
    "sqrt_impact_bps",
    "walk_bps",
]
