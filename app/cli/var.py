"""``qb var``, ``qb var backtest`` and ``qb var-sensor``: the VaR commands, one code path.

* ``qb var``: the next-day VaR/CVaR of a book (``--positions``, else the Redis positions, else the demo
  book) at the lake's latest date (or ``--date``), the call the VaR sensor makes: with ``--scope
  consolidated`` (``QB_VAR_SCOPE``'s default) the equities at ``qb:marks`` (else the lake close; marks are
  not used with ``--date``) plus the lake's bond book and FX exposures, through
  :func:`risk.book_var.book_var` (Euler components per position and per class, the QuantLib check of the
  bond revaluation); with ``--scope equities`` the equities at the lake close through
  :func:`risk.portfolio_var.portfolio_var`;
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
MODELS = (
    "normal",
    "student_t",
    "ewma",
    "historical",
    "filtered_historical",
    "filtered_historical_portfolio",
    "filtered_historical_garch",
)
SCOPES = ("equities", "consolidated")  # risk.book.SCOPES
DEFAULT_PATHS = 100_000  # risk.book_var.DEFAULT_PATHS (a test checks they agree)
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


def redis_marks(settings: Settings, tickers: list[str]) -> dict[str, Any]:
    """Raw ``qb:marks`` values of ``tickers``, or {} when Redis is down (the lake close is used then)."""
    import redis

    from quantbridge.marks import read_marks
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    client = connect(settings)
    try:
        return read_marks(client, RedisSchema(settings.redis_prefix), tickers)
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
    scope = args.scope or settings.var_scope
    raw: dict[str, object] = dict(positions)
    held = parse_positions(raw)
    common = {
        "scope": scope,
        "window": spec.window,
        "positions_source": source,
        "as_of": str(closes.index[-1]),
        "positions": len(positions),
    }
    if args.stressed:
        common["stressed_var"] = _stressed(lake, held, spec, args.date)
    if scope == "consolidated":
        out = _consolidated(args, settings, lake, closes, held, spec)
        out.update(common)
        if not args.json:
            _print_table(out)
            args.printed_table = True
        return out, 0
    result = portfolio_var(closes, held, quarantined=lake.quarantined_dates(), spec=spec, mode=args.mode)
    out = result.as_dict()
    out.update(common)
    return out, 0


def _stressed(lake: Any, positions: dict[str, float], spec: Any, end: Any) -> dict[str, Any]:
    """Basel 2.5 stressed VaR of the equity positions (risk.stressed_var): the worst 250-day window of the
    whole lake up to ``end`` for the book as held now (reads every lake date: seconds, not milliseconds)."""
    from risk.stressed_var import stressed_var

    history = lake.read_close_matrix(end=end)
    return stressed_var(history, positions, spec, lake.quarantined_dates(), hold="shares")


def _consolidated(
    args: argparse.Namespace,
    settings: Settings,
    lake: Any,
    closes: Any,
    positions: dict[str, float],
    spec: Any,
) -> dict[str, Any]:
    """The consolidated book's figures (risk.book_var.BookVar.as_dict) with its marks, factors and tables."""
    from quantbridge.marks import FROM_CLOSE, FROM_MARKS
    from risk.book import build_book, load_reference
    from risk.book_var import book_var, prepare

    as_of = closes.index[-1]
    prepared = prepare(load_reference(lake, as_of))
    # Marks are today's prices: a valuation at an earlier --date uses that date's closes only.
    live = {} if args.date else redis_marks(settings, list(positions))
    book = build_book(as_of, positions, closes.ffill().iloc[-1], live, prepared.reference)
    result = book_var(
        book,
        closes,
        spec,
        quarantined=lake.quarantined_dates(),
        paths=args.paths,
        seed=settings.seed,
        prepared=prepared,
    )
    out = result.as_dict()
    counts = book.mark_counts()
    out["marks"] = {
        FROM_MARKS: counts[FROM_MARKS],
        FROM_CLOSE: counts[FROM_CLOSE],
        "source": "lake close at --date (marks not used)"
        if args.date
        else "the marks hash where a usable price is stored, else the lake's last close",
        "prices": book.price_sources,
    }
    reference = prepared.reference
    out["reference"] = {
        "bonds": len(reference.bonds),
        "fx_exposures": len(reference.fx),
        "curve": f"lake reference table curve (as_of {reference.curve_table_as_of}) bootstrapped at "
        f"{reference.as_of}",
    }
    if result.method == "monte_carlo":
        out["factors"] = prepared.factors.describe()
    return out


def _print_table(out: dict[str, Any]) -> None:
    """The consolidated book's short table: totals, one line per asset class, the largest positions."""
    print(
        f"VaR {out['confidence']:.0%} {out['horizon_days']}d ({out['model']}, {out['method']}, "
        f"{out['paths']:,} paths) as of {out['as_of']}: VaR {out['var']:,.0f}  CVaR {out['cvar']:,.0f}"
    )
    print(f"{'':<16}{'value':>16}{'component VaR':>16}{'component CVaR':>16}")
    for name, row in out["classes"].items():
        print(
            f"{name:<16}{row['value']:>16,.0f}{row['component_var']:>16,.0f}{row['component_cvar']:>16,.0f}"
        )
    print(f"{'total':<16}{'':>16}{out['class_var_sum']:>16,.0f}{out['class_cvar_sum']:>16,.0f}")
    top = sorted(out["components"], key=lambda r: -abs(r["component_var"]))[:8]
    print("largest positions by component VaR:")
    for r in top:
        var, cvar = r["component_var"], r["component_cvar"]
        print(f"  {r['position']:<14}{r['value']:>16,.0f}{var:>16,.0f}{cvar:>16,.0f}")
    marks = out["marks"]
    check = out.get("revaluation_check")
    print(
        f"equity prices: {marks['marks']} at the marks hash, {marks['lake_close']} at the lake close"
        + (f"; bond revaluation vs QuantLib: {check['max_relative_error']:.1e} relative" if check else "")
    )
    if "stressed_var" in out:
        sv = out["stressed_var"]
        print(
            f"stressed VaR of the equity positions: {sv['var']:,.0f} (CVaR {sv['cvar']:,.0f}), "
            f"worst 250-day window {sv['start']}..{sv['end']}"
        )


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
        help="full adds component VaR/CVaR per position (the consolidated scope always gives them)",
    )
    p.add_argument(
        "--scope",
        default=None,
        choices=SCOPES,
        help="consolidated: positions at qb:marks plus the lake's bond book and FX exposures (Monte Carlo); "
        "equities: positions at the lake close (default QB_VAR_SCOPE)",
    )
    p.add_argument(
        "--paths",
        type=int,
        default=DEFAULT_PATHS,
        help=f"Monte Carlo paths of the consolidated book (default {DEFAULT_PATHS:,})",
    )
    p.add_argument(
        "--date",
        type=date_type("--date"),
        default=None,
        help="valuation date: the lake's closes up to it (default: all; backtest: history up to it)",
    )
    p.add_argument(
        "--stressed",
        action="store_true",
        help="add the stressed VaR of the equity positions: the worst 250-day window of the lake's history "
        "(reads the whole lake)",
    )
    p.add_argument(
        "--forecasts",
        default=None,
        help="backtest: CSV of model, date, loss_date, var, cvar, volatility, loss, exception for every day",
    )
    # `qb var backtest` prints its own table; `qb var` gets the generic summary.
    p.set_defaults(
        func=cmd_var,
        prints_own=lambda args: args.action == "backtest" or getattr(args, "printed_table", False),
    )

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
