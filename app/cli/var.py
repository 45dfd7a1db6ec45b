"""``qb var``, ``qb var backtest`` and ``qb var-sensor``: the VaR commands, one code path.

* ``qb var``: the next-day VaR/CVaR of a book (``--positions``, else the Redis positions, else the demo
  book) at the lake's latest date (or ``--date``), through :func:`risk.portfolio_var.portfolio_var`, the call
  the VaR sensor makes;
* ``qb var backtest`` (:mod:`app.cli.var_backtest`): the same forecast rolled over the lake's whole
  history;
* ``qb var-sensor``: the live sensor loop.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from app.cli.common import echo
from quantbridge.errors import InputError
from quantbridge.settings import Settings

#: Models of ``--model`` (risk.var.VAR_MODELS; spelled here so that ``qb --help`` imports no domain package).
MODELS = ("normal", "student_t", "ewma", "historical", "filtered_historical", "filtered_historical_portfolio")
BOOKS = ("equal_weight", "long_short")


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--confidence={text!r} is invalid: expected a number like 0.99"
        ) from None


def redis_positions(settings: Settings) -> dict[str, float]:
    """Live positions from Redis, or {} when Redis is down or holds none (the demo book is used then)."""
    import redis

    from quantbridge.positions import read_positions
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    client = connect(settings)
    try:
        return read_positions(client, RedisSchema(settings.redis_prefix))
    except redis.RedisError:
        return {}
    finally:
        client.close()


def spec_from_args(args: argparse.Namespace, settings: Settings) -> Any:
    from risk.var import VarSpec

    return VarSpec(
        model=args.model or settings.var_model,
        confidence=settings.var_confidence if args.confidence is None else args.confidence,
        horizon_days=settings.var_horizon_days if args.horizon is None else args.horizon,
        window=settings.var_window if args.window is None else args.window,
    )


def cmd_var(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    if args.action == "backtest":
        from app.cli.var_backtest import cmd_backtest

        return cmd_backtest(args, settings)
    if args.forecasts or args.book:
        raise InputError(
            "--forecasts/--book", args.forecasts or args.book, "`qb var backtest` (they backtest)"
        )
    from quantbridge.lake import Lake
    from risk.portfolio import DEMO_NOTIONAL, equal_weight_book, load_positions, parse_positions
    from risk.portfolio_var import portfolio_var, recent_closes

    spec = spec_from_args(args, settings)
    lake = Lake(settings.lake_root)
    closes = recent_closes(lake, spec.window, end=args.date)
    if closes.empty:
        where = f" on or before {args.date}" if args.date else ""
        raise InputError(
            "lake prices", f"{settings.lake_root}{where}", "published prices: run `qb ingest` first"
        )
    if args.positions:
        positions, source = load_positions(args.positions), args.positions
    else:
        positions, source = redis_positions(settings), "redis"
        if not positions:
            positions = equal_weight_book(closes.ffill().iloc[-1], DEMO_NOTIONAL)
            source = "demo equal-weight book ($1,000,000)"
    result = portfolio_var(
        closes, parse_positions(positions), quarantined=lake.quarantined_dates(), spec=spec, mode=args.mode
    )
    out = result.as_dict()
    out.update(
        window=spec.window, positions_source=source, as_of=str(closes.index[-1]), positions=len(positions)
    )
    return out, 0


def cmd_var_sensor(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """The long-running VaR sensor; SIGTERM or Ctrl-C stops it between refreshes."""
    import signal
    import threading

    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema
    from risk.sensor import SensorConfig, SensorMetrics, VarSensor

    config = SensorConfig.from_settings(settings, interval_s=args.interval, limit=args.limit)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.duration:
        threading.Timer(args.duration, stop.set).start()
    metrics = SensorMetrics()
    port = settings.var_metrics_port if args.metrics_port is None else args.metrics_port
    server = metrics.serve(port) if port else None
    sensor = VarSensor(
        config,
        Lake(settings.lake_root),
        RedisSchema(settings.redis_prefix),
        lambda: connect(settings),
        on_alert=lambda alert: echo(args, f"ALERT {alert}"),
        metrics=metrics,
    )
    echo(
        args,
        f"VaR sensor: {config.model} {config.confidence:.0%} {config.horizon_days}d, "
        f"limit {config.limit:,.0f}, "
        f"every {config.interval_s} s" + (f", metrics on 127.0.0.1:{port}/metrics" if port else ""),
    )
    try:
        refreshes = sensor.run(stop, max_refreshes=args.max_refreshes)
    finally:
        if server is not None:
            server.shutdown()
    return {
        "refreshes": refreshes,
        "stopped": "signal or duration" if stop.is_set() else "max_refreshes",
        "limit": config.limit,
        "model": config.model,
    }, 0


def add_parser(
    sub: Any, common: argparse.ArgumentParser, date_type: Callable[[str], Callable[[str], Any]]
) -> None:
    """Register ``qb var`` (with its ``backtest`` action) and ``qb var-sensor`` on the subcommands."""
    p = sub.add_parser(
        "var",
        parents=[common],
        help="next-day VaR/CVaR from lake prices; `qb var backtest` runs the same code over history",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["backtest"],
        help="backtest on the lake's whole history (every model unless --model)",
    )
    p.add_argument(
        "--positions",
        help="CSV (ticker, quantity) or JSON, in shares; default: Redis positions, else "
        "the demo book (backtest: held constant in shares)",
    )
    p.add_argument(
        "--book",
        choices=BOOKS,
        default=None,
        help="backtest: a reference book of $1,000,000 gross, same money every day (default equal_weight; "
        "long_short: long the first half of the sorted tickers, short the second)",
    )
    p.add_argument("--model", default=None, choices=MODELS, help="default QB_VAR_MODEL")
    p.add_argument("--confidence", type=_fraction, default=None, help="default QB_VAR_CONFIDENCE (0.99)")
    p.add_argument(
        "--horizon", type=int, default=None, help="days, sqrt-time scaled (default QB_VAR_HORIZON_DAYS)"
    )
    p.add_argument("--window", type=int, default=None, help="daily returns behind a forecast (QB_VAR_WINDOW)")
    p.add_argument(
        "--mode",
        default="totals",
        choices=["totals", "full"],
        help="full adds component VaR/CVaR per position",
    )
    p.add_argument(
        "--date",
        type=date_type("--date"),
        default=None,
        help="valuation date: the lake's closes up to it (default: all; backtest: history up to it)",
    )
    p.add_argument(
        "--forecasts",
        default=None,
        help="backtest: CSV of model, date, loss_date, var, cvar, loss, exception for every day",
    )
    # `qb var backtest` prints its own table; `qb var` gets the generic summary.
    p.set_defaults(func=cmd_var, prints_own=lambda args: args.action == "backtest")

    p = sub.add_parser(
        "var-sensor", parents=[common], help="the live VaR sensor loop (Redis, kill switch, metrics)"
    )
    p.add_argument(
        "--interval", type=float, default=None, help="seconds between refreshes (default QB_VAR_INTERVAL_S)"
    )
    p.add_argument("--limit", type=float, default=None, help="VaR limit (default QB_VAR_LIMIT)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--max-refreshes", type=int, default=None)
    p.add_argument(
        "--metrics-port", type=int, default=None, help="0 disables /metrics (default QB_VAR_METRICS_PORT)"
    )
    p.set_defaults(func=cmd_var_sensor)
