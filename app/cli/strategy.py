"""``qb explain`` and ``qb evaluate``: why the strategy ordered what it did, how it does out of sample, and
(``qb evaluate --retrain-as-of D``) the retraining DAG's steps: train, promotion rule, book decision."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from app.cli.common import echo
from quantbridge.errors import InputError
from quantbridge.settings import Settings


def cmd_explain(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """The SHAP explanation stored with an order."""
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema
    from strategy.rebalance import explanation

    client = connect(settings)
    try:
        record = explanation(client, RedisSchema(settings.redis_prefix), args.order_id)
    except KeyError:
        raise InputError(
            "ORDER_ID", args.order_id, "an order published by the rebalance (see the qb:orders stream)"
        ) from None
    finally:
        client.close()
    ranked = sorted(record["contributions"].items(), key=lambda kv: -abs(kv[1]))
    record["top"] = [
        {"feature": k, "contribution": v, "value": record["features"].get(k)} for k, v in ranked[:5]
    ]
    return record, 0


def execution_costs(book_value: float) -> Any:
    """The execution lane's cost model for the strategy's evaluations (the app layer may import both)."""
    from execution.market import load_adv, sqrt_impact_bps
    from execution.venues import DEFAULT_VENUES
    from strategy.costs import CostModel

    return CostModel.from_venues(DEFAULT_VENUES, load_adv(), sqrt_impact_bps, book_value=book_value)


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Out-of-sample evaluation of the model vs four baselines (walk-forward, purged, traded at D+1)."""
    from marketdata.reference import esg_scores
    from quantbridge.lake import Lake
    from strategy.evaluation import evaluate
    from strategy.features import build_features
    from strategy.model import walk_forward

    if args.retrain_as_of is not None:
        return cmd_retrain(args, settings)
    lake = Lake(settings.lake_root)
    closes = lake.read_close_matrix(args.start, args.end)
    if closes.empty:
        raise InputError("lake prices", str(settings.lake_root), "published prices: run `qb ingest` first")
    if not args.book_value > 0:
        raise InputError("--book-value", args.book_value, "a positive book value")
    esg = esg_scores(lake)
    echo(
        args,
        f"features and {args.folds}-fold purged walk-forward on {closes.shape[0]} dates x "
        f"{closes.shape[1]} tickers",
    )
    panel = build_features(closes, esg)
    model_eval, oos = walk_forward(panel, folds=args.folds, seed=settings.seed)
    out = evaluate(oos, closes, execution_costs(args.book_value), top_k=args.top_k)
    out["walk_forward"] = model_eval.as_dict()
    if not args.json:
        c = out["costs"]
        print(
            f"out of sample {out['start']}..{out['end']}, decided every {out['rebalance_days']} days at the "
            f"close, traded at the next close, top {out['top_k']}; costs: execution lane's model "
            f"({c['spread_fee_bps']:.1f} bp spread+fee + square-root impact on a {c['book_value']:,.0f} book)"
        )
        print(
            f"{'book':<15}{'IC':>8}{'IC t':>7}{'ann.ret':>9}{'ann.vol':>9}{'Sharpe':>8}{'(se)':>7}"
            f"{'maxDD':>8}{'turn/yr':>9}{'cost/yr':>9}"
        )
        for r in out["rows"]:
            print(
                f"{r['book']:<15}{r['ic']:>8.4f}{r['ic_t']:>7.2f}{r['annual_return']:>9.2%}"
                f"{r['annual_volatility']:>9.2%}{r['sharpe']:>8.2f}{r['sharpe_se']:>7.2f}"
                f"{r['max_drawdown']:>8.1%}{r['annual_turnover']:>9.2f}{r['annual_cost']:>9.2%}"
            )
        print(f"decision: {out['decision']['trade']} ({out['decision']['reason']})")
    return out, 0


def _num(value: float | None, spec: str) -> str:
    """A figure for the table; n/a where the record holds none (JSON null)."""
    import re

    return format(value, spec) if value is not None else format("n/a", re.sub(r"(\.\d+)?[f%]$", "", spec))


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """The retraining DAG's three steps on the lake: train, the promotion rule, the book decision."""
    from quantbridge.errors import NoDataError
    from quantbridge.lake import Lake
    from strategy.registry import get, promote_if_better
    from strategy.selection import decide_book
    from strategy.training import retrain

    lake = Lake(settings.lake_root)
    dates = lake.price_dates()
    if not dates:
        raise InputError("lake prices", str(settings.lake_root), "published prices: run `qb ingest` first")
    as_of = args.retrain_as_of
    echo(args, f"training a challenger on {args.window_days} trading days up to {as_of.isoformat()}")
    trained = retrain(
        lake,
        as_of,
        args.window_days,
        seed=settings.seed,
        stress_weight=settings.train_stress_weight,
        holdout_days=args.holdout_days,
    )
    promotion = promote_if_better(lake, get(lake, trained["version"]))
    try:
        book = decide_book(lake, as_of, execution_costs(args.book_value))
    except NoDataError as exc:
        book = {"trade": None, "reason": str(exc), "rows": []}
    out = {"trained": trained, "promotion": promotion, "book": book}
    if not args.json:
        print(
            f"challenger {trained['version']}: holdout {promotion['holdout'][0]}..{promotion['holdout'][1]}, "
            f"IC {_num(promotion['challenger_ic'], '.4f')} (t {_num(promotion['challenger_ic_t'], '.2f')}); "
            f"promoted: {promotion['promoted']} ({promotion['reason']})"
        )
        if promotion.get("champion_before") and "ic_difference" in promotion:
            print(
                f"  vs champion {promotion['champion_before']}: "
                f"its IC {_num(promotion['champion_ic'], '.4f')}, "
                f"paired IC difference {_num(promotion['ic_difference'], '+.4f')} "
                f"(Newey-West t {_num(promotion['difference_t'], '.2f')}) "
                f"over {promotion['holdout_days']} dates"
            )
        for r in book["rows"]:
            print(
                f"  {r['book']:<15} IC {_num(r['ic'], '>8.4f')} (t {_num(r['ic_t'], '>5.2f')})  "
                f"Sharpe {_num(r['sharpe'], '>5.2f')} (se {_num(r['sharpe_se'], '.2f')})  "
                f"turnover/yr {_num(r['annual_turnover'], '>6.2f')}  cost/yr {_num(r['annual_cost'], '.2%')}"
            )
        print(f"book: {book['trade']} ({book['reason']})")
    return out, 0


def add_parser(sub: Any, common: argparse.ArgumentParser, date_type: Callable[[str], Any]) -> None:
    """Register ``qb explain`` and ``qb evaluate`` (which prints its own tables)."""
    p = sub.add_parser("explain", parents=[common], help="SHAP explanation of an order")
    p.add_argument("order_id")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("evaluate", parents=[common], help="out-of-sample strategy evaluation vs baselines")
    p.add_argument("--start", type=date_type("--start"), default=None)
    p.add_argument("--end", type=date_type("--end"), default=None)
    p.add_argument("--folds", type=int, default=8)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--book-value", type=float, default=1_000_000.0, help="book value for the cost model")
    p.add_argument(
        "--retrain-as-of",
        type=date_type("--retrain-as-of"),
        default=None,
        help="instead: the retraining DAG's steps as of this date (train, promotion rule, book decision)",
    )
    p.add_argument("--window-days", type=int, default=750, help="with --retrain-as-of: training window")
    p.add_argument("--holdout-days", type=int, default=250, help="with --retrain-as-of: dates held out")
    p.set_defaults(func=cmd_evaluate, prints_own=True)
