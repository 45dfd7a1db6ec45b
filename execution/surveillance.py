"""Post-trade surveillance: every fill re-checked after the run against the limits in force at its time, as a
compliance desk does after the fact.

Independent of the execution worker by construction, so that a bug in its state, marks or verdicts shows
here: the rules are written again from their definitions (``policies/data.json`` and the meaning
``policies/pretrade.rego`` documents), never by calling :mod:`execution.policy` or :mod:`execution.decisions`;
positions are rebuilt from the fills alone (cumulative, in fill order, from ``initial_positions``), never read
from ``qb:positions``; prices are trusted marks the caller takes from the lake (closes of the exec day), not
the worker's ``qb:marks``; limits and kill-switch episodes come from the audit chain, verified first.

Rules (the policy's reason codes), each against the limits in force at the fill's time:

``RESTRICTED_INSTRUMENT``  the order's ticker is in ``restricted`` (once per order)
``NOTIONAL_EXCEEDS_MAX``   the order's FULL quantity x the trusted mark > ``max_order_notional``: order
                          notional as the policy defines it (the order as submitted); its fills sum to no
                          more unless OVERFILL, so the filled notional is covered too (the detail gives
                          both); once per order
``PRICE_BAND``             |decision price - trusted mark| > ``price_band`` x mark, for a filled order (once)
``POSITION_EXCEEDS_MAX``   |position after the fill| > ``max_position_shares``
``ESG_EXCLUDED``           a BUY fill of a name scored below ``min_esg_score`` (no score: not excluded, as in
                          the policy)
``KILL_SWITCH_ACTIVE``     a fill during an episode [start, end) that increases |position| or takes it
                          through zero (the policy's "risk-increasing")

and the record's integrity, without which the rules above prove nothing: ``NO_LIMITS`` (a fill before any
limits were on record), ``NO_MARK`` (no trusted mark of the order's ticker on the fill's exec day: notional
and band unverifiable), ``UNKNOWN_ORDER`` (a fill of an order not in ``orders``), ``FILL_MISMATCH`` (ticker
or side differs from its order's), ``OVERFILL`` (an order's fills exceed its quantity), ``DUPLICATE_FILL``.

The limits are checked on the filled book, at the fill's time. The worker checks before the fact, counting
shares in flight, which is stricter for positions; but it judges the kill switch when it decides, so an
order accepted just before a switch and filled after it is flagged here (a switch set between a decision
and its fill is a breach to review: a halt should stop what is still open).

Not re-checked: ``RISK_STALE``. The audit chain holds no VaR refresh times (the sensor audits only its
kill-switch changes; a ``verdict`` entry records mark, position, kill switch and policy digest, not the risk
figures' age), so the staleness an order saw cannot be rebuilt from the record.

Times are epoch seconds (float). :func:`check_fills` also takes ISO-8601 strings with an offset and
timezone-aware datetimes (a naive time is refused: whose clock?). A fill's ``ts`` should be when it was
recorded, its ``fill`` audit entry's time (:func:`fill_times_from_audit`); the fills stream's own ``ts``
field carries its order's submit time.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
import numbers
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeAlias

import pandas as pd

from quantbridge.audit import ChainBroken, verify
from quantbridge.errors import InputError
from quantbridge.redis_client import text
from quantbridge.redis_schema import RedisSchema

#: Shares below which a rebuilt position's excess counts as float residue of summing fills, not a breach
#: (order-level figures are compared exactly, as the policy computes them).
EPS_SHARES = 1e-9
FILL_COLUMNS = ("fill_id", "order_id", "exec_day", "ticker", "side", "quantity", "ts")
ORDER_COLUMNS = ("order_id", "ticker", "side", "quantity", "decision_price")
LIMIT_KEYS = ("restricted", "max_order_notional", "max_position_shares", "min_esg_score", "price_band")
SIDES = ("BUY", "SELL")

#: (effective time in epoch seconds, SHA-256 of the policy and limits, limits as in data.json's ``limits``).
LimitsEntry = tuple[float, str, Mapping[str, Any]]
#: (start, end or None while still set), epoch seconds; start is -inf for a switch set before the record.
Episode = tuple[float, float | None]
#: Trusted closes: (day, ticker) -> price, or a frame, wide (days x tickers) or long (date|day, ticker, close)
Marks: TypeAlias = "Mapping[tuple[Any, str], float] | pd.DataFrame"


@dataclass(frozen=True)
class Violation:
    """One breach: the rule (a reason code), the fill and its order, the figures, the limits' digest ('' when
    no limits were on record) and the fill's time (epoch seconds)."""

    rule: str
    order_id: str
    fill_id: str
    ticker: str
    detail: str
    limits_sha256: str
    ts: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Limits:
    ts: float
    sha256: str
    restricted: frozenset[str]
    max_order_notional: float
    max_position_shares: float
    min_esg_score: float
    price_band: float


@dataclass(frozen=True)
class _Order:
    ticker: str
    side: str
    quantity: float
    decision_price: float


@dataclass(frozen=True)
class _Fill:
    fill_id: str
    order_id: str
    day: date
    ticker: str
    side: str
    quantity: float
    ts: float


# --- the check ------------------------------------------------------------------------------------------
def check_fills(
    fills: pd.DataFrame,
    orders: pd.DataFrame,
    limits_timeline: Sequence[LimitsEntry],
    marks: Marks,
    esg: Mapping[str, float],
    kill_switch_episodes: Sequence[Episode],
    initial_positions: Mapping[str, float] | None = None,
) -> list[Violation]:
    """Every fill checked against the limits in force at its ``ts`` (the newest ``limits_timeline`` entry at
    or before it); violations in fill order (fills sorted by ``ts``, ties in row order).

    fills: one row per fill, columns :data:`FILL_COLUMNS` (``exec_day``: the day whose trusted close prices
    it; ``ts``: when it was recorded). orders: one row per order, columns :data:`ORDER_COLUMNS`
    (``decision_price``: the order's reference price). marks: trusted closes, see :data:`Marks`; NaN is no
    mark. esg: ticker -> score (NaN or absent: no score). Raises InputError on malformed input.
    """
    timeline = _timeline(limits_timeline)
    starts = [limits.ts for limits in timeline]
    episodes = _episodes(kill_switch_episodes)
    book = _orders(orders)
    prices = _marks(marks)
    scores = _scores(esg)
    positions = {str(t): _number(q, f"initial_positions[{t}]") for t, q in (initial_positions or {}).items()}
    filled: dict[str, float] = {}
    seen: set[str] = set()
    once: set[tuple[str, str]] = set()  # (rule, order id) of order-level rules already reported
    out: list[Violation] = []
    for fill in _fills(fills):
        at = bisect.bisect_right(starts, fill.ts) - 1
        limits = timeline[at] if at >= 0 else None
        found: list[tuple[str, str]] = []
        if fill.fill_id in seen:
            found.append(("DUPLICATE_FILL", f"fill_id={fill.fill_id} is recorded more than once"))
        seen.add(fill.fill_id)
        order = book.get(fill.order_id)
        if order is None:
            found.append(("UNKNOWN_ORDER", f"order_id={fill.order_id} is not among the run's orders"))
        else:
            found += _against_order(fill, order, filled)
        before = positions.get(fill.ticker, 0.0)
        after = before + (fill.quantity if fill.side == "BUY" else -fill.quantity)
        positions[fill.ticker] = after
        if limits is None:
            first = _iso(starts[0])
            found.append(
                ("NO_LIMITS", f"fill at {_iso(fill.ts)} precedes the first limits on record ({first})")
            )
        else:
            found += _per_fill(fill, limits, before, after, scores, episodes)
            if order is not None:
                for rule, detail in _per_order(fill, order, limits, prices, filled[fill.order_id]):
                    if (rule, fill.order_id) not in once:
                        once.add((rule, fill.order_id))
                        found.append((rule, detail))
        sha = limits.sha256 if limits is not None else ""
        out += [Violation(r, fill.order_id, fill.fill_id, fill.ticker, d, sha, fill.ts) for r, d in found]
    return out


def _against_order(fill: _Fill, order: _Order, filled: dict[str, float]) -> list[tuple[str, str]]:
    """FILL_MISMATCH and OVERFILL; adds the fill to its order's filled shares."""
    found = []
    if (fill.ticker, fill.side) != (order.ticker, order.side):
        found.append(
            (
                "FILL_MISMATCH",
                f"fill {fill.side} {fill.ticker}, its order {order.side} {order.ticker}",
            )
        )
    done = filled[fill.order_id] = filled.get(fill.order_id, 0.0) + fill.quantity
    if done > order.quantity + EPS_SHARES:
        found.append(
            ("OVERFILL", f"filled={_f(done)} > quantity={_f(order.quantity)} (this fill {_f(fill.quantity)})")
        )
    return found


def _per_fill(
    fill: _Fill,
    limits: _Limits,
    before: float,
    after: float,
    scores: Mapping[str, float],
    episodes: Sequence[Episode],
) -> list[tuple[str, str]]:
    """POSITION_EXCEEDS_MAX, ESG_EXCLUDED, KILL_SWITCH_ACTIVE for one fill."""
    found = []
    if abs(after) > limits.max_position_shares + EPS_SHARES:
        found.append(
            (
                "POSITION_EXCEEDS_MAX",
                f"max={_f(limits.max_position_shares)}, position_before={_f(before)}, "
                f"position_after={_f(after)}, fill={fill.side} {_f(fill.quantity)}",
            )
        )
    score = scores.get(fill.ticker)
    if fill.side == "BUY" and score is not None and score < limits.min_esg_score:
        found.append(
            ("ESG_EXCLUDED", f"min={_f(limits.min_esg_score)}, score={_f(score)}, BUY {_f(fill.quantity)}")
        )
    episode = next((e for e in episodes if e[0] <= fill.ts and (e[1] is None or fill.ts < e[1])), None)
    if episode is not None and _risk_increasing(before, after):
        end = "still set" if episode[1] is None else _iso(episode[1])
        found.append(
            (
                "KILL_SWITCH_ACTIVE",
                f"episode {_iso(episode[0])} to {end}, fill at {_iso(fill.ts)}: "
                f"position_before={_f(before)}, position_after={_f(after)}",
            )
        )
    return found


def _per_order(
    fill: _Fill, order: _Order, limits: _Limits, prices: Mapping[tuple[date, str], float], done: float
) -> list[tuple[str, str]]:
    """RESTRICTED_INSTRUMENT, NO_MARK, NOTIONAL_EXCEEDS_MAX, PRICE_BAND of a fill's order (reported once per
    order by the caller)."""
    found = []
    if order.ticker in limits.restricted:
        found.append(
            ("RESTRICTED_INSTRUMENT", f"ticker={order.ticker}, restricted={sorted(limits.restricted)}")
        )
    mark = prices.get((fill.day, order.ticker))
    if mark is None:
        return found + [
            ("NO_MARK", f"no trusted close of {order.ticker} on {fill.day}: notional and band unchecked")
        ]
    notional = order.quantity * mark
    if notional > limits.max_order_notional:
        found.append(
            (
                "NOTIONAL_EXCEEDS_MAX",
                f"max={_f(limits.max_order_notional)}, notional={_f(notional)} (full quantity "
                f"{_f(order.quantity)} x mark {_f(mark)} of {fill.day}; filled so far {_f(done)} = "
                f"{_f(done * mark)})",
            )
        )
    off = abs(order.decision_price - mark)
    if off > limits.price_band * mark:
        found.append(
            (
                "PRICE_BAND",
                f"band={_f(limits.price_band)}, mark={_f(mark)} of {fill.day}, "
                f"decision_price={_f(order.decision_price)}, off by {_f(off / mark)} of the mark",
            )
        )
    return found


def _risk_increasing(before: float, after: float) -> bool:
    """|position| grows, or the position goes through zero (the part beyond opens risk on the other side)."""
    through_zero = (before > EPS_SHARES and after < -EPS_SHARES) or (
        before < -EPS_SHARES and after > EPS_SHARES
    )
    return abs(after) > abs(before) + EPS_SHARES or through_zero


def summary(violations: Sequence[Violation], examples: int = 3) -> dict[str, Any]:
    """For kpis.json: ``violations`` (count), ``by_rule`` (rule -> count) and ``examples`` (rule -> its first
    ``examples`` violations as dicts); JSON-serializable."""
    examples_by_rule: dict[str, list[dict[str, Any]]] = {}
    for v in violations:
        kept = examples_by_rule.setdefault(v.rule, [])
        if len(kept) < examples:
            kept.append(v.as_dict())
    counts = Counter(v.rule for v in violations)
    return {
        "violations": len(violations),
        "by_rule": dict(sorted(counts.items())),
        "examples": examples_by_rule,
    }


# --- the audit chain ------------------------------------------------------------------------------------
def timeline_from_audit(
    client: Any, schema: RedisSchema, *, verify_chain: bool = True
) -> tuple[list[LimitsEntry], list[Episode]]:
    """(limits timeline, kill-switch episodes) from the audit chain, in chain order.

    Limits: one entry per ``limits_loaded`` (its time, ``sha256``, the ``limits`` it carries); with several
    workers the newest load before a fill is the one in force. Episodes: from a ``kill_switch_set`` while off
    to the next ``kill_switch_cleared`` (a set while set, a change of owner, continues the episode); an
    episode still open has end None. With ``verify_chain`` the chain (hashes and head) is verified first and
    a broken one raises :class:`~quantbridge.audit.ChainBroken`: a record that may have been edited proves
    nothing.
    """
    if verify_chain:
        _verified(client, schema)
    limits: list[LimitsEntry] = []
    episodes: list[Episode] = []
    since: float | None = None
    for entry_id, kind, fields in _entries(
        client, schema, {"limits_loaded", "kill_switch_set", "kill_switch_cleared"}
    ):
        ts = _epoch(fields["ts"], f"audit {entry_id}.ts")
        if kind == "limits_loaded":
            payload = _payload(entry_id, fields)
            loaded = payload.get("limits")
            # The worker records the policy's data ({"limits": {...}}), as in data.json.
            inner = loaded.get("limits") if isinstance(loaded, Mapping) and "limits" in loaded else loaded
            limits.append((ts, str(payload.get("sha256", "")), inner if isinstance(inner, Mapping) else {}))
        elif kind == "kill_switch_set":
            since = ts if since is None else since
        else:  # cleared; one with no set before it was set before the record began
            episodes.append((-math.inf if since is None else since, ts))
            since = None
    if since is not None:
        episodes.append((since, None))
    return limits, episodes


def fill_times_from_audit(client: Any, schema: RedisSchema, *, verify_chain: bool = True) -> dict[str, float]:
    """fill_id -> when its ``fill`` audit entry was recorded (epoch seconds; the first entry of an id)."""
    if verify_chain:
        _verified(client, schema)
    out: dict[str, float] = {}
    for entry_id, _, fields in _entries(client, schema, {"fill"}):
        fill_id = str(_payload(entry_id, fields).get("fill_id", ""))
        if fill_id and fill_id not in out:
            out[fill_id] = _epoch(fields["ts"], f"audit {entry_id}.ts")
    return out


def _verified(client: Any, schema: RedisSchema) -> None:
    result = verify(client, schema)
    if not result["ok"]:
        raise ChainBroken(
            f"the audit chain is broken at entry {result['first_bad']} ({result['reason']}): surveillance "
            "reads only a whole chain; run `qb audit verify`"
        )


def _entries(
    client: Any, schema: RedisSchema, kinds: set[str], batch: int = 1000
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(entry id, kind, fields as text) of the chain's entries of ``kinds``, oldest first, in pages."""
    stream, start = schema.key("audit"), "-"
    while True:
        chunk = client.xrange(stream, min=start, max="+", count=batch)
        if not chunk:
            return
        for raw_id, raw in chunk:
            fields = {text(k): text(v) for k, v in raw.items()}
            if fields.get("kind") in kinds:
                yield text(raw_id), fields["kind"], fields
        start = "(" + text(chunk[-1][0])


def _payload(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    try:
        payload = json.loads(fields.get("payload", ""))
    except json.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise InputError(f"audit {entry_id}.payload", fields.get("payload"), "a JSON object")
    return payload


# --- input -----------------------------------------------------------------------------------------------
def _columns(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(name, type(frame).__name__, "a pandas DataFrame")
    for column in columns:
        if column not in frame.columns:
            raise InputError(
                f"{name}.{column}", None, f"a column {column!r}", f"columns present: {list(frame.columns)}"
            )


def _fills(fills: pd.DataFrame) -> list[_Fill]:
    _columns(fills, "fills", FILL_COLUMNS)
    rows = []
    for i, r in enumerate(fills[list(FILL_COLUMNS)].itertuples(index=False)):
        where = f"fills[{i}]"
        rows.append(
            _Fill(
                fill_id=_name(r.fill_id, f"{where}.fill_id"),
                order_id=_name(r.order_id, f"{where}.order_id"),
                day=_day(r.exec_day, f"{where}.exec_day"),
                ticker=_name(r.ticker, f"{where}.ticker"),
                side=_side(r.side, f"{where}.side"),
                quantity=_number(r.quantity, f"{where}.quantity", positive=True),
                ts=_epoch(r.ts, f"{where}.ts"),
            )
        )
    return sorted(rows, key=lambda f: f.ts)  # stable: ties keep their row order


def _orders(orders: pd.DataFrame) -> dict[str, _Order]:
    _columns(orders, "orders", ORDER_COLUMNS)
    out: dict[str, _Order] = {}
    for i, r in enumerate(orders[list(ORDER_COLUMNS)].itertuples(index=False)):
        where = f"orders[{i}]"
        oid = _name(r.order_id, f"{where}.order_id")
        if oid in out:
            raise InputError(f"{where}.order_id", oid, "each order once in orders")
        out[oid] = _Order(
            ticker=_name(r.ticker, f"{where}.ticker"),
            side=_side(r.side, f"{where}.side"),
            quantity=_number(r.quantity, f"{where}.quantity", positive=True),
            decision_price=_number(r.decision_price, f"{where}.decision_price", positive=True),
        )
    return out


def _timeline(entries: Sequence[LimitsEntry]) -> list[_Limits]:
    if not entries:
        raise InputError("limits_timeline", list(entries), "at least one (ts, sha256, limits) entry")
    out = []
    for i, entry in enumerate(entries):
        try:
            ts, sha, limits = entry
        except (TypeError, ValueError):
            raise InputError(f"limits_timeline[{i}]", entry, "a (ts, sha256, limits) triple") from None
        if isinstance(limits, Mapping) and isinstance(limits.get("limits"), Mapping):
            limits = limits["limits"]  # data.json's whole document
        if not isinstance(limits, Mapping):
            raise InputError(f"limits_timeline[{i}].limits", limits, "a mapping as data.json's limits")
        for key in LIMIT_KEYS:
            if key not in limits:
                raise InputError(f"limits_timeline[{i}].limits.{key}", None, f"a value (limits {sha})")
        restricted = limits["restricted"]
        if isinstance(restricted, str) or not isinstance(restricted, Iterable):
            raise InputError(f"limits_timeline[{i}].limits.restricted", restricted, "a list of tickers")
        field = f"limits_timeline[{i}].limits"
        out.append(
            _Limits(
                ts=_epoch(ts, f"limits_timeline[{i}].ts"),
                sha256=str(sha),
                restricted=frozenset(str(t) for t in restricted),
                max_order_notional=_number(limits["max_order_notional"], f"{field}.max_order_notional", True),
                max_position_shares=_number(
                    limits["max_position_shares"], f"{field}.max_position_shares", True
                ),
                min_esg_score=_number(limits["min_esg_score"], f"{field}.min_esg_score"),
                price_band=_number(limits["price_band"], f"{field}.price_band", nonnegative=True),
            )
        )
    return sorted(out, key=lambda limits: limits.ts)


def _episodes(episodes: Sequence[Episode]) -> list[Episode]:
    out: list[Episode] = []
    for i, episode in enumerate(episodes):
        try:
            start, end = episode
        except (TypeError, ValueError):
            raise InputError(f"kill_switch_episodes[{i}]", episode, "a (start, end or None) pair") from None
        begin = -math.inf if start == -math.inf else _epoch(start, f"kill_switch_episodes[{i}].start")
        stop = None if end is None else _epoch(end, f"kill_switch_episodes[{i}].end")
        if stop is not None and stop < begin:
            raise InputError(f"kill_switch_episodes[{i}].end", end, f"a time at or after its start {start!r}")
        out.append((begin, stop))
    return out


def _marks(marks: Marks) -> dict[tuple[date, str], float]:
    items: Iterable[tuple[Any, Any]]
    if isinstance(marks, pd.DataFrame):
        day_column = next((c for c in ("date", "day") if c in marks.columns), None)
        if day_column is not None and {"ticker", "close"} <= set(marks.columns):  # long, as Lake.read_prices
            items = zip(zip(marks[day_column], marks["ticker"], strict=True), marks["close"], strict=True)
        else:  # wide, as Lake.read_close_matrix: days x tickers
            items = (((d, t), v) for t in marks.columns for d, v in marks[t].items())
    elif isinstance(marks, Mapping):
        items = marks.items()
    else:
        raise InputError("marks", type(marks).__name__, "a (day, ticker) -> price mapping or a DataFrame")
    out: dict[tuple[date, str], float] = {}
    for key, value in items:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise InputError("marks", key, "(day, ticker) keys")
        day, ticker = _day(key[0], f"marks[{key!r}]"), _name(key[1], f"marks[{key!r}].ticker")
        if value is None or (isinstance(value, numbers.Real) and math.isnan(value)):
            continue  # no close that day (a pivot's hole): a fill that needs it is NO_MARK
        out[(day, ticker)] = _number(value, f"marks[{key!r}]", positive=True)
    return out


def _scores(esg: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for ticker, score in esg.items():
        if score is None or (isinstance(score, numbers.Real) and math.isnan(score)):
            continue  # no score: not excluded, as in the policy
        out[str(ticker)] = _number(score, f"esg[{ticker}]")
    return out


def _number(value: Any, field: str, positive: bool = False, nonnegative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(field, value, "a finite number")
    if positive and value <= 0:
        raise InputError(field, value, "a number > 0")
    if nonnegative and value < 0:
        raise InputError(field, value, "a number >= 0")
    return float(value)


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(field, value, "a non-empty string")
    return value


def _side(value: Any, field: str) -> str:
    if value not in SIDES:
        raise InputError(field, value, "BUY or SELL")
    return str(value)


def _day(value: Any, field: str) -> date:
    if isinstance(value, datetime):  # a Timestamp too; before date: datetime is a date
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise InputError(field, value, "a day (date, Timestamp or YYYY-MM-DD)")


def _epoch(value: Any, field: str) -> float:
    """Epoch seconds of a number, an ISO-8601 string with an offset or a timezone-aware datetime."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InputError(field, value, "epoch seconds or an ISO-8601 time with an offset") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or pd.isna(value):
            raise InputError(field, str(value), "a time with a timezone (epoch seconds are UTC)")
        return value.timestamp()
    return _number(value, field)


def _f(x: float) -> str:
    return f"{x:.12g}"


def _iso(ts: float) -> str:
    return "before the record" if ts == -math.inf else datetime.fromtimestamp(ts, UTC).isoformat()


__all__ = ["Violation", "check_fills", "fill_times_from_audit", "summary", "timeline_from_audit"]
