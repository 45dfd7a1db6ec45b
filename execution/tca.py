"""Transaction-cost analysis of the replay's orders: per order, per month, router against naive executor.

Prices: the **decision price** ``Pd`` is the close of the signal day (the rebalance's reference price); the
**arrival price** ``Pa`` is the market's anchor on the execution day, which is that day's close (the data has
closes only), and the execution day's close ``Pc`` that values the unfilled rest is the same price unless an
``exec_close`` column says otherwise. Side sign ``s``: +1 buy, -1 sell. Money is positive when it is a cost.

Per order of ``Q`` shares with fills ``q_i`` at ``p_i`` (``q = sum q_i``):

* ``trading_cost = s x (sum q_i p_i - q Pa)``: the fills against arrival (spread, noise, impact, walk);
  ``spread_cost``, ``noise_cost``, ``impact_cost``, ``walk_cost`` split it by the fills' breakdown
  (``q_i x anchor_i x bps_i / 1e4``);
* ``fees``; ``delay_cost = s x q x (Pa - Pd)``: the market's move from decision to arrival on what filled;
* ``opportunity_cost = s x (Q - q) x (Pc - Pd)``: what the unfilled rest missed (Perold);
* **implementation shortfall** (Perold 1988) against the paper portfolio at ``Pd``:
  ``is_cost = trading_cost + fees + delay_cost + opportunity_cost`` and ``is_bps = is_cost / (Q Pd)``;
* **execution cost** ``= trading_cost + fees`` (arrival-based: what the execution itself cost, impact
  included; the overnight delay and the opportunity cost are market movement and are reported in the IS
  only), ``execution_cost_bps`` over the filled notional at arrival; ``arrival_slippage_bps =
  s x (VWAP / Pa - 1) x 1e4`` (fees excluded).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from execution.market import Market
from execution.naive import naive_execute
from quantbridge.errors import InputError

ORDER_COLUMNS = ("order_id", "exec_day", "ticker", "side", "quantity", "decision_price", "arrival_price")
FILL_COLUMNS = (
    "order_id",
    "quantity",
    "price",
    "fee",
    "anchor",
    "half_spread_bps",
    "noise_bps",
    "impact_bps",
)
#: Money columns summed per month (and compared).
COSTS = (
    "fees",
    "spread_cost",
    "noise_cost",
    "impact_cost",
    "walk_cost",
    "trading_cost",
    "delay_cost",
    "opportunity_cost",
    "execution_cost",
    "is_cost",
)
#: Default ADV multipliers of :func:`adv_sensitivity`.
ADV_SCALES = (0.25, 1.0, 4.0)


def _require(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{name} columns", missing, f"a frame with columns {list(columns)}")


def order_tca(orders: pd.DataFrame, fills: pd.DataFrame) -> pd.DataFrame:
    """One row per order: the costs of the module's docstring (money, bps) and the fill rate.

    ``orders``: the replay's orders (:data:`ORDER_COLUMNS`, optional ``signal_day``, ``state``,
    ``exec_close``); ``fills``: their fills (:data:`FILL_COLUMNS`, optional ``walk_bps``), any executor's.
    An order without fills has ``filled`` 0 and only an opportunity cost.
    """
    _require(orders, ORDER_COLUMNS, "orders")
    _require(fills, FILL_COLUMNS, "fills")
    if orders["order_id"].duplicated().any():
        raise InputError(
            "orders order_id", orders["order_id"][orders["order_id"].duplicated()].tolist(), "unique"
        )
    bad_side = sorted(set(orders["side"]) - {"BUY", "SELL"})
    if bad_side:
        raise InputError("orders side", bad_side, "BUY or SELL")
    for column in ("quantity", "decision_price", "arrival_price"):
        values = pd.to_numeric(orders[column], errors="coerce")
        if not (values > 0).all():
            raise InputError(f"orders {column}", orders[column][~(values > 0)].tolist(), "numbers > 0")
    orphans = sorted(set(fills["order_id"]) - set(orders["order_id"]))
    if orphans:
        raise InputError("fills order_id", orphans[:5], "ids of the orders given")

    f = fills.copy()
    if "walk_bps" not in f.columns:
        f["walk_bps"] = 0.0
    f["notional"] = f["quantity"] * f["price"]
    at_anchor = f["quantity"] * f["anchor"] / 1e4
    for part in ("half_spread", "noise", "impact", "walk"):
        f[f"{part}_money"] = at_anchor * f[f"{part}_bps"]
    sums = f.groupby("order_id")[
        ["quantity", "notional", "fee", "half_spread_money", "noise_money", "impact_money", "walk_money"]
    ].sum()

    out = orders.copy()
    by_id = sums.reindex(out["order_id"]).fillna(0.0).to_numpy()
    filled, notional, fees, spread, noise, impact, walk = by_id.T
    s = out["side"].map({"BUY": 1.0, "SELL": -1.0}).to_numpy()
    qty = out["quantity"].astype(float).to_numpy()
    pd_, pa = out["decision_price"].astype(float).to_numpy(), out["arrival_price"].astype(float).to_numpy()
    pc = out["exec_close"].astype(float).to_numpy() if "exec_close" in out.columns else pa
    if (filled > qty * (1 + 1e-9)).any():
        raise InputError(
            "fills quantity", out["order_id"][filled > qty * (1 + 1e-9)].tolist(), "<= the order's"
        )
    with_fill = filled > 0
    safe = filled.copy()
    safe[~with_fill] = 1.0  # no division by zero; the result is masked to NaN below
    vwap = notional / safe
    out["filled"] = filled
    out["fill_rate"] = filled / qty
    out["vwap"] = pd.Series(vwap, index=out.index).where(with_fill)
    out["notional"] = notional
    out["fees"] = fees
    out["spread_cost"] = spread
    out["noise_cost"] = noise
    out["impact_cost"] = impact
    out["walk_cost"] = walk
    out["trading_cost"] = s * (notional - filled * pa)
    out["delay_cost"] = s * filled * (pa - pd_)
    out["opportunity_cost"] = s * (qty - filled) * (pc - pd_)
    out["execution_cost"] = out["trading_cost"] + fees
    out["is_cost"] = out["execution_cost"] + out["delay_cost"] + out["opportunity_cost"]
    out["is_bps"] = out["is_cost"] / (qty * pd_) * 1e4
    out["execution_cost_bps"] = (out["execution_cost"] / (safe * pa) * 1e4).where(with_fill)
    out["arrival_slippage_bps"] = pd.Series(s * (vwap / pa - 1) * 1e4, index=out.index).where(with_fill)
    return out.reset_index(drop=True)


def monthly_tca(per_order: pd.DataFrame, nav: pd.Series) -> pd.DataFrame:
    """Costs per calendar month of ``exec_day``, in money and as % of AUM (the month's mean ``nav``).

    ``per_order``: :func:`order_tca`'s frame; ``nav``: the book's NAV by day (index: dates). Every month of
    ``nav`` gets a row (a month without orders costs 0); a month with orders but no NAV is an error.
    Columns: ``month`` (YYYY-MM), ``orders``, ``filled_notional``, the money columns of :data:`COSTS`,
    ``execution_cost_bps`` (over the filled notional), ``aum``, ``execution_cost_pct_aum``, ``is_pct_aum``.
    """
    _require(per_order, ("exec_day", "notional", *COSTS), "per_order")
    if nav.empty or not pd.api.types.is_numeric_dtype(nav) or not (nav > 0).all():
        raise InputError("nav", nav.head().tolist(), "a non-empty series of NAVs > 0 indexed by date")
    aum = nav.groupby(pd.DatetimeIndex(pd.to_datetime(nav.index)).strftime("%Y-%m")).mean()
    months = pd.to_datetime(per_order["exec_day"]).dt.strftime("%Y-%m")
    orphan = sorted(set(months) - set(aum.index))
    if orphan:
        raise InputError("nav", orphan, "a NAV in every month with orders")
    grouped = per_order.assign(month=months).groupby("month")
    table = grouped[["notional", *COSTS]].sum().reindex(aum.index, fill_value=0.0)
    table.insert(0, "orders", grouped.size().reindex(aum.index, fill_value=0).astype(int))
    table = table.rename(columns={"notional": "filled_notional"})
    notional = table["filled_notional"].where(table["filled_notional"] > 0)
    table["execution_cost_bps"] = table["execution_cost"] / notional * 1e4
    table["aum"] = aum
    table["execution_cost_pct_aum"] = table["execution_cost"] / aum * 100
    table["is_pct_aum"] = table["is_cost"] / aum * 100
    return table.rename_axis("month").reset_index()


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 or not math.isfinite(num / den) else num / den


def _totals(per_order: pd.DataFrame) -> dict[str, float]:
    cost, is_cost = float(per_order["execution_cost"].sum()), float(per_order["is_cost"].sum())
    notional_at_arrival = float((per_order["filled"] * per_order["arrival_price"]).sum())
    return {
        "orders": int(len(per_order)),
        "cost": cost,
        "cost_bps": cost / notional_at_arrival * 1e4 if notional_at_arrival > 0 else math.nan,
        "is": is_cost,
        "impact": float(per_order["impact_cost"].sum()),
        "fill_rate": float(per_order["filled"].sum() / per_order["quantity"].sum()),
    }


def _saving(router: float, naive: float) -> float | None:
    ratio = _ratio(naive - router, naive) if naive > 0 else None
    return None if ratio is None else ratio * 100


def compare(router_tca: pd.DataFrame, naive_tca: pd.DataFrame) -> dict[str, Any]:
    """The router against the naive executor on the same orders (both :func:`order_tca` frames).

    ``saving_pct``: the saving in % of the naive cost per traded notional (execution cost in bps: like for
    like, since the naive executor fills everything and the router may leave a rest); ``saving_money_pct``:
    on the execution cost in money; ``saving_is_pct``: on the implementation shortfall (which charges the
    router's unfilled rests their opportunity cost). None where the naive figure is not a positive cost.
    """
    r, n = _totals(router_tca), _totals(naive_tca)
    out: dict[str, Any] = {f"router_{k}": v for k, v in r.items()}
    out.update({f"naive_{k}": v for k, v in n.items()})
    out["saving_pct"] = _saving(r["cost_bps"], n["cost_bps"])
    out["saving_money_pct"] = _saving(r["cost"], n["cost"])
    out["saving_is_pct"] = _saving(r["is"], n["is"])
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def matched_orders(router_tca: pd.DataFrame) -> pd.DataFrame:
    """The orders the router filled, each cut to the quantity it filled: given to the naive executor, the
    like-for-like comparison (same shares traded; :func:`compare` then needs no opportunity cost to be fair).
    """
    _require(router_tca, (*ORDER_COLUMNS, "filled"), "router_tca")
    done = router_tca[router_tca["filled"] > 0]
    keep = [c for c in router_tca.columns if c in (*ORDER_COLUMNS, "signal_day", "state", "exec_close")]
    return done[keep].assign(quantity=done["filled"]).reset_index(drop=True)


def reprice_fills(fills: pd.DataFrame, adv_scale: float) -> pd.DataFrame:
    """``fills`` as they would have priced with every ADV times ``adv_scale``, same quantities: impact
    scales by ``1 / sqrt(adv_scale)`` under the square-root law, the price and the fee follow."""
    if not (math.isfinite(adv_scale) and adv_scale > 0):
        raise InputError("adv_scale", adv_scale, "a finite number > 0")
    _require(fills, (*FILL_COLUMNS, "side"), "fills")
    out = fills.copy()
    walk = out["walk_bps"] if "walk_bps" in out.columns else 0.0
    s = out["side"].map({"BUY": 1.0, "SELL": -1.0})
    out["impact_bps"] = out["impact_bps"] / math.sqrt(adv_scale)
    moved = out["noise_bps"] + out["impact_bps"] + walk
    price = out["anchor"] * (1 + s * (out["half_spread_bps"] + moved) / 1e4)
    out["fee"] = out["fee"] * price / out["price"]
    out["price"] = price
    if "slippage_bps" in out.columns:
        out["slippage_bps"] = moved
    return out


def adv_sensitivity(
    orders: pd.DataFrame,
    fills: pd.DataFrame,
    market: Market | dict[str, Any],
    scales: Iterable[float] = ADV_SCALES,
    venue: str | None = None,
) -> pd.DataFrame:
    """How the execution cost moves when every ADV is scaled, for the same orders.

    Per scale: the router's fills re-priced (:func:`reprice_fills`: same quantities; a limit refusal or a
    fill that a different impact would change is not replayed, only a rerun of the replay with
    ``Market(adv=...)`` shows those) and the naive executor rerun on a market with the scaled ADV.
    Columns: ``adv_scale``, ``router_cost``, ``router_cost_bps``, ``router_impact``, ``naive_cost``,
    ``naive_cost_bps``, ``naive_impact``, ``saving_pct``.
    """
    rows = []
    for scale in scales:
        router = order_tca(orders, reprice_fills(fills, float(scale)))
        naive = order_tca(orders, naive_execute(orders, market, venue=venue, adv_scale=float(scale)))
        c = compare(router, naive)
        rows.append(
            {
                "adv_scale": float(scale),
                "router_cost": c["router_cost"],
                "router_cost_bps": c["router_cost_bps"],
                "router_impact": c["router_impact"],
                "naive_cost": c["naive_cost"],
                "naive_cost_bps": c["naive_cost_bps"],
                "naive_impact": c["naive_impact"],
                "saving_pct": c["saving_pct"],
            }
        )
    return pd.DataFrame(rows)


__all__ = [
    "ADV_SCALES",
    "COSTS",
    "adv_sensitivity",
    "compare",
    "matched_orders",
    "monthly_tca",
    "order_tca",
    "reprice_fills",
]
