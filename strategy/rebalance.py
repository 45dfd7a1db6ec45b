"""Daily rebalance: score the universe with the champion model, build target weights, and publish orders
(with their SHAP explanations) on the orders stream; or, when the book decision in force
(:func:`strategy.selection.decide_book`, ``models/decision.json``) says no model beat the best baseline
with significance, trade that baseline's target weights (orders of strategy ``baseline_<name>``, model
version ``baseline-<name>``, their record naming the baseline and the decision's reason). With neither a
decision nor a champion (no retraining has decided yet, or no model reached the minimum IC t before the
decision ran), equal weight trades, the record saying so.

Order ids are ``D:strategy:ticker:model_version``: re-running a date publishes exactly the orders that are
missing (each order lands with its explanation in one atomic step).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError, NoDataError
from quantbridge.lake import Lake
from quantbridge.messages import SubmitOrder
from quantbridge.positions import read_positions
from quantbridge.redis_schema import RedisSchema
from quantbridge.returns import daily_returns
from quantbridge.signing import KeyRing, sign_orders
from strategy.explain import explain, top_contributions
from strategy.features import FEATURES, HORIZON, LOOKBACK, build_features
from strategy.portfolio import Constraints, optimise
from strategy.registry import champion, load_model

STRATEGY = "gbm_mv"
#: Why equal weight trades when the registry holds neither a book decision nor a champion.
NO_DECISION = "no book decision and no champion in the registry yet: equal weight, the default baseline"


def rebalance(
    lake: Lake,
    client: Any,
    schema: RedisSchema,
    as_of: date,
    portfolio_value: float = 1_000_000.0,
    constraints: Constraints = Constraints(),
    cov_days: int = 250,
    *,
    book_value: float | None = None,
    max_order_notional: float | None = None,
    max_position_shares: float | None = None,
) -> dict[str, Any]:
    """Score, optimise and publish orders for ``as_of``; returns the orders and the target weights.

    ``book_value``: the account's whole value (cash and positions) when the caller keeps the cash (the
    replay); otherwise the positions' value, or ``portfolio_value`` when nothing is held.
    ``max_position_shares``: target shares are capped at it (the pre-trade limit would reject the excess).
    ``max_order_notional``: a trade above it at the decision price is sliced into clips of at most that
    notional (ids ``...:version``, ``...:version:2``, ...): the pre-trade limit would reject it whole.
    """
    from risk.covariance import covariance
    from strategy.baselines import baseline_weights
    from strategy.evaluation import HISTORY
    from strategy.selection import read_decision

    if as_of not in set(lake.price_dates()):  # never trade on the last close of another day
        raise NoDataError(
            f"no published prices for {as_of.isoformat()} (a holiday, a quarantined date or one not ingested "
            "yet): nothing to rebalance on"
        )
    decision = read_decision(lake)
    baseline = decision["trade"] if decision is not None and decision["trade"] != "model" else None
    reason = decision["reason"] if decision is not None else ""
    current_champion = champion(lake) if baseline is None else None
    if baseline is None and current_champion is None:
        if decision is not None:  # the decision names the model, and the registry has lost it
            raise NoDataError("the book decision names the model but the registry has no champion")
        baseline, reason = "equal_weight", NO_DECISION
    days = max(cov_days, LOOKBACK) + 2 if baseline is None else HISTORY + 1
    least = HISTORY + 1 if baseline not in (None, "equal_weight") else LOOKBACK + 2
    dates = [d for d in lake.price_dates() if d <= as_of][-days:]
    if len(dates) < least:
        raise NoDataError(
            f"rebalance needs {least} trading days up to {as_of.isoformat()}; the lake has {len(dates)}"
        )
    closes = lake.read_close_matrix(dates[0], dates[-1])
    if baseline is not None:
        # no model beat the best baseline with significance: trade that baseline's book as evaluated
        strategy, version = f"baseline_{baseline}", f"baseline-{baseline}"
        tickers = [t for t in closes.columns if pd.notna(closes[t].iloc[-1])]
        book = baseline_weights(baseline, closes.loc[:, tickers])
        model, today, mu = None, None, np.zeros(len(tickers))
    else:
        assert current_champion is not None
        from marketdata.reference import esg_scores

        strategy, version = STRATEGY, current_champion.version
        model = load_model(current_champion)
        panel = build_features(closes, esg_scores(lake))
        today = panel[panel["date"] == panel["date"].max()].set_index("ticker")
        mu = model.predict(today.loc[:, list(FEATURES)])
        tickers = list(today.index)
    prices = closes.ffill().iloc[-1].loc[tickers]
    held = read_positions(client, schema)
    unknown = sorted(set(held) - set(tickers))
    if unknown:
        raise InputError("positions", ",".join(unknown), "tickers the model scores: " + ", ".join(tickers))
    held_qty = pd.Series(held, dtype="float64").reindex(tickers).fillna(0.0)
    held_value = float((held_qty * prices).sum())
    value = book_value if book_value is not None else held_value if held_value > 0 else portfolio_value
    if value <= 0:
        raise InputError("book_value", value, "a positive account value")
    current = (held_qty * prices / value).to_numpy() if held_value > 0 else None
    if baseline is not None:
        weights = book.reindex(tickers).fillna(0.0).to_numpy(np.float64)
    else:
        returns = daily_returns(closes.loc[:, tickers], lake.quarantined_dates()).iloc[-cov_days:]
        cov = covariance(returns, "ledoit_wolf") * HORIZON
        weights = optimise(mu, cov, current, constraints)
    target_qty = np.floor(weights * value / prices.to_numpy())
    if max_position_shares is not None:
        target_qty = np.minimum(target_qty, np.floor(max_position_shares))
    delta = target_qty - held_qty.to_numpy()
    if model is not None:
        expected, shap_values = explain(model, today)
    ts = datetime.now(UTC).isoformat(timespec="seconds")
    orders, records = [], []
    for i, ticker in enumerate(tickers):
        if abs(delta[i]) < 1:
            continue
        base_id = f"{as_of.isoformat()}:{strategy}:{ticker}:{version}"
        for k, quantity in enumerate(clips(abs(delta[i]), float(prices[ticker]), max_order_notional), 1):
            order = SubmitOrder(
                order_id=base_id if k == 1 else f"{base_id}:{k}",
                ts=ts,
                strategy=strategy,
                ticker=ticker,
                side="BUY" if delta[i] > 0 else "SELL",
                quantity=quantity,
                reference_price=float(prices[ticker]),
                model_version=version,
                explanation={} if model is None else top_contributions(shap_values.loc[ticker]),
            )
            if model is None:
                record: dict[str, Any] = {
                    "order_id": order.order_id,
                    "model_version": version,
                    "baseline": baseline,
                    "reason": reason,
                    "target_weight": float(weights[i]),
                    "contributions": {},
                    "features": {},
                }
            else:
                assert today is not None
                record = {
                    "order_id": order.order_id,
                    "model_version": version,
                    "base_value": expected,
                    "prediction": float(mu[i]),
                    "contributions": shap_values.loc[ticker].to_dict(),
                    "features": today.loc[ticker, list(FEATURES)].astype(float).to_dict(),
                }
            orders.append(order)
            records.append(json.dumps(record))
    published = publish_orders(client, schema, orders, records)
    return {
        "as_of": as_of.isoformat(),
        "book": baseline or "model",
        "model_version": version,
        "orders": len(orders),
        "published": published,
        "portfolio_value": value,
        "weights": {t: round(float(w), 6) for t, w in zip(tickers, weights, strict=True)},
    }


def clips(quantity: float, price: float, max_notional: float | None) -> list[float]:
    """Whole-share clips of ``quantity`` each worth at most ``max_notional`` at ``price`` (one clip without a
    cap), as equal as whole shares allow."""
    if max_notional is None or quantity * price <= max_notional:
        return [float(quantity)]
    per_clip = np.floor(max_notional / price)
    if per_clip < 1:
        raise InputError("max_order_notional", max_notional, f"at least one share's price ({price:g})")
    n = int(np.ceil(quantity / per_clip))
    base, extra = divmod(int(quantity), n)
    return [float(base + (1 if k < extra else 0)) for k in range(n)]


# Per order, in one script (nothing runs between its commands): an order whose explanation is absent is
# added to the stream, then its explanation stored, so a crash can never leave an explanation without its
# order (which a re-run would then skip for good). The order goes first because scripts do not roll back:
# if the XADD fails nothing of the order is written. The batch's root signature (ARGV[2] -> ARGV[3] in
# KEYS[3]) is stored before any order, so no signed order is ever visible without its signature.
_PUBLISH = """
local published = 0
local b = 4
for i = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[b + 2])
  if redis.call('HEXISTS', KEYS[1], ARGV[b]) == 0 then
    if published == 0 then redis.call('HSET', KEYS[3], ARGV[2], ARGV[3]) end
    redis.call('XADD', KEYS[2], '*', unpack(ARGV, b + 3, b + 2 + 2 * n))
    redis.call('HSET', KEYS[1], ARGV[b], ARGV[b + 1])
    published = published + 1
  end
  b = b + 3 + 2 * n
end
return published
"""


def publish_orders(
    client: Any,
    schema: RedisSchema,
    orders: list[SubmitOrder],
    explanations: list[str],
    *,
    ring: KeyRing | None = None,
) -> int:
    """Publish each order with its explanation in one atomic step (one Lua call for all); an order whose
    explanation is already stored was published before and is skipped. Returns how many were published.

    The batch is signed (:func:`quantbridge.signing.sign_orders`): every order carries its Merkle root and
    proof, and the root's signature lands in ``order_signatures`` in the same Lua call. ``ring``: the
    ``orders`` key ring (default: the one of :func:`~quantbridge.settings.load_settings`).
    """
    if len(orders) != len(explanations):
        raise InputError("explanations", len(explanations), f"one per order ({len(orders)})")
    if not orders:
        return 0
    if ring is None:
        from quantbridge.settings import load_settings
        from quantbridge.signing import keyring

        ring = keyring(load_settings(), "orders")
    root, signature, signed = sign_orders(ring, [order.to_dict() for order in orders])
    args: list[Any] = [len(orders), root, signature]
    for order, record, fields in zip(orders, explanations, signed, strict=True):
        args += [order.order_id, record, len(fields)]
        for name, value in fields.items():
            args += [name, value]
    script = client.register_script(_PUBLISH)
    keys = [schema.key("explanations"), schema.key("orders"), schema.key("order_signatures")]
    return int(script(keys=keys, args=args))


def explanation(client: Any, schema: RedisSchema, order_id: str) -> dict[str, Any]:
    """The stored SHAP explanation of an order (KeyError naming the id when absent)."""
    raw = client.hget(schema.key("explanations"), order_id)
    if raw is None:
        raise KeyError(f"no explanation for order {order_id!r} in {schema.key('explanations')}")
    return json.loads(raw)
