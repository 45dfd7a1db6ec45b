"""Trusted marks: the price of a ticker in ``qb:marks`` when it is usable, else the lake's last close.

One rule for every reader of ``qb:marks`` (the execution worker's limits and routes, the VaR sensor's
valuation): a stored value counts as a mark only when it parses as a positive finite number; anything else
(missing, ``nan``, ``inf``, zero, negative, bytes that are not UTF-8) is no mark, and the lake's last close
stands in. The hash carries no timestamps: a usable mark is taken to be fresher than the lake close
(feeds and the replay's venues write it intraday, after the close the lake holds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from quantbridge.redis_schema import RedisSchema

#: Where a trusted mark came from (the VaR sensor publishes the counts).
FROM_MARKS = "marks"
FROM_CLOSE = "lake_close"


def mark_price(value: Any) -> float | None:
    """The price a stored ``qb:marks`` value stands for, or None when it is not a positive finite number."""
    try:  # a stored value is bytes or text; one that is not UTF-8 is no number either
        number = float(value.decode() if isinstance(value, bytes) else str(value))
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def trusted_marks(live: Mapping[str, Any], lake: Mapping[str, float]) -> dict[str, float | None]:
    """Each ticker's mark: its price in ``qb:marks`` (``live``: ticker -> the stored value or None) when that
    is a positive finite number, else the lake's last close; None without either (an unusable mark is no
    mark, so its orders are rejected NO_MARK)."""
    return {ticker: price for ticker, (price, _source) in marks_with_source(live, lake).items()}


def marks_with_source(
    live: Mapping[str, Any], lake: Mapping[str, float]
) -> dict[str, tuple[float | None, str | None]]:
    """As :func:`trusted_marks`, with where each price came from (:data:`FROM_MARKS`, :data:`FROM_CLOSE`, or
    None when there is neither)."""
    out: dict[str, tuple[float | None, str | None]] = {}
    for ticker, value in live.items():
        price = mark_price(value)
        if price is not None:
            out[ticker] = (price, FROM_MARKS)
        elif ticker in lake:
            out[ticker] = (lake[ticker], FROM_CLOSE)
        else:
            out[ticker] = (None, None)
    return out


def read_marks(client: Any, schema: RedisSchema, tickers: Iterable[str]) -> dict[str, Any]:
    """The raw ``qb:marks`` values of ``tickers`` (None where absent), one HMGET."""
    names = list(tickers)
    if not names:
        return {}
    return dict(zip(names, client.hmget(schema.key("marks"), names), strict=True))
