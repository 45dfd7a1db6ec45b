"""Daily reconciliation: execution-side positions and P&L against the risk engine's mark-to-market.

For date D it compares, per ticker, the positions hash (what the worker says we hold) with the sum of
the fills stream (what the venues say we traded), marks both at the lake's close on D, and lists every
break with its cause:

``POSITION_VS_FILLS``   the positions hash differs from the signed sum of fills (a lost or doubled update)
``NO_MARK``             a held ticker has no lake price on D (missing or quarantined data)
``UNKNOWN_INSTRUMENT``  fills for a ticker the lake does not know

P&L: the risk engine's day P&L = position x (close_D - close_prev); the execution side's inception-to-date
P&L = market value at D + cash from fills (sales minus purchases minus fees).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from quantbridge.lake import Lake
from quantbridge.positions import read_positions
from quantbridge.redis_client import text
from quantbridge.redis_schema import RedisSchema

TOLERANCE = 1e-6


def reconcile(client: Any, schema: RedisSchema, lake: Lake, day: date) -> dict[str, Any]:
    positions = read_positions(client, schema)
    traded: dict[str, float] = {}
    cash = 0.0
    for _, raw in client.xrange(schema.key("fills")):
        f = {text(k): text(v) for k, v in raw.items()}
        sign = 1.0 if f["side"] == "BUY" else -1.0
        qty, fill_price = float(f["quantity"]), float(f["price"])
        traded[f["ticker"]] = traded.get(f["ticker"], 0.0) + sign * qty
        cash += -sign * qty * fill_price - float(f["fee"])
    dates = [d for d in lake.price_dates() if d <= day]
    closes = lake.read_close_matrix(dates[-2] if len(dates) > 1 else None, day) if dates else None
    mark = closes.loc[day] if closes is not None and day in closes.index else None
    prev = closes.iloc[-2] if closes is not None and len(closes) > 1 else None
    known = set(closes.columns) if closes is not None else set()
    rows, breaks = [], []
    market_value = day_pnl = 0.0
    for ticker in sorted(set(positions) | set(traded)):
        held, fills_qty = positions.get(ticker, 0.0), traded.get(ticker, 0.0)
        price = (
            float(mark[ticker])
            if mark is not None and ticker in mark.index and mark[ticker] == mark[ticker]
            else None
        )
        row = {
            "ticker": ticker,
            "position": held,
            "fills_position": fills_qty,
            "mark": price,
            "market_value": held * price if price is not None else None,
            "day_pnl": None,
        }
        if abs(held - fills_qty) > TOLERANCE:
            breaks.append(
                {
                    "ticker": ticker,
                    "break": "POSITION_VS_FILLS",
                    "position": held,
                    "fills": fills_qty,
                    "cause": f"positions hash {held:g} vs signed fills {fills_qty:g}: "
                    "an update lost or counted twice",
                }
            )
        if ticker not in known and ticker in traded:
            breaks.append(
                {
                    "ticker": ticker,
                    "break": "UNKNOWN_INSTRUMENT",
                    "cause": "fills for a ticker with no price history in the lake",
                }
            )
        elif price is None and held:
            breaks.append(
                {
                    "ticker": ticker,
                    "break": "NO_MARK",
                    "cause": f"no lake close on {day.isoformat()} (missing or quarantined)",
                }
            )
        if price is not None:
            market_value += held * price
            if prev is not None and ticker in prev.index:
                pnl = held * (price - float(prev[ticker]))
                row["day_pnl"] = pnl
                day_pnl += pnl
        rows.append(row)
    return {
        "date": day.isoformat(),
        "positions": rows,
        "breaks": breaks,
        "market_value": market_value,
        "risk_day_pnl": day_pnl,
        "execution_cash": cash,
        "execution_pnl_to_date": market_value + cash,
        "ok": not breaks,
    }
