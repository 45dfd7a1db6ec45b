"""``qb var backtest``: the live VaR forecast rolled over the lake's whole history for a reference book
(``--book``, constant money) or any book (``--positions``, constant shares), with the exception tests, the
Basel zones, the Expected Shortfall tests (Acerbi-Szekely Z2, McNeil-Frey) and the stressed VaR per model
(docs/risk-backtests.md); ``--forecasts CSV`` writes every day's forecast and realised loss.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from app.cli.common import echo
from app.cli.var import spec_from_args
from quantbridge.errors import InputError
from quantbridge.settings import Settings


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Every model (or ``--model``) over the whole lake for one book; the table, and the forecasts CSV."""
    from dataclasses import replace

    import pandas as pd

    from quantbridge.lake import Lake
    from risk.backtest import backtest
    from risk.portfolio import DEMO_NOTIONAL, load_positions, reference_book
    from risk.var import VAR_MODELS

    if args.positions and args.book:
        raise InputError("--book", args.book, "either --book or --positions, not both")
    spec = spec_from_args(args, settings)
    # the scenario models' quantile estimator (risk.var.QUANTILES), once the settings carry it
    spec = replace(spec, quantile=getattr(settings, "var_quantile", spec.quantile))
    lake = Lake(settings.lake_root)
    echo(args, f"reading the lake at {lake.root}")
    closes = lake.read_close_matrix(end=args.date)
    if closes.empty:
        raise InputError("lake prices", str(settings.lake_root), "published prices: run `qb ingest` first")
    if args.positions:
        positions, hold, book = (
            load_positions(args.positions),
            "shares",
            f"{args.positions} (shares held constant)",
        )
    else:
        name = args.book or "equal_weight"
        positions, hold = reference_book(name, list(closes.columns), DEMO_NOTIONAL), "money"
        book = f"{name}, $1,000,000 gross, same money in each position every day"
    models = [args.model] if args.model else list(VAR_MODELS)
    quarantined = lake.quarantined_dates()
    echo(args, f"backtesting {', '.join(models)} on {len(closes)} lake dates for {book}")
    frames: dict[str, pd.DataFrame] = {}
    out = backtest(
        closes, positions, quarantined=quarantined, hold=hold, models=models, spec=spec, forecasts=frames
    )
    default = next((m for m in out["models"] if m["model"] == settings.var_model), None)
    out.update(
        book=book,
        quarantined_dates=len(quarantined),
        default_model=settings.var_model,
        default_passes=default["passes"] if default else None,
    )
    if args.forecasts:
        path = Path(args.forecasts)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pd.concat([f.reset_index().assign(model=m) for m, f in frames.items()], ignore_index=True)
        table.loc[:, ["model", "date", "loss_date", "var", "cvar", "volatility", "loss", "exception"]].to_csv(
            path, index=False
        )
        out["forecasts"] = str(path)
    if not args.json:
        _print_backtest(out)
    return out, 0


def _print_backtest(out: dict[str, Any]) -> None:
    print(
        f"one-day {out['confidence']:.0%} VaR backtest, {out['start']}..{out['end']}, "
        f"window {out['window']}, quantile {out['quantile']}, "
        f"book {out['book']}"
    )
    print(
        f"{'model':<31}{'obs':>6}{'exc':>5}{'expected':>9}{'Kupiec p':>9}{'Christ. p':>10}{'last zone':>10}"
        f"{'green%':>7}{'red%':>6}{'seconds':>8}  passes"
    )
    for m in out["models"]:
        print(
            f"{m['model']:<31}{m['observations']:>6}{m['exceptions']:>5}{m['expected_exceptions']:>9.1f}"
            f"{m['kupiec_p']:>9.4f}{m['christoffersen_p']:>10.4f}{m['zone_last_window']:>10}"
            f"{100 * m['windows_green']:>7.1f}{100 * m['windows_red']:>6.1f}{m['seconds']:>8.1f}"
            f"  {m['passes']}"
        )
    print("passes: Kupiec and Christoffersen p > 5% and no red 250-day window")
    print()
    print("Expected Shortfall tests and stressed VaR (worst 250-day window, book as held at the end)")
    print(
        f"{'model':<31}{'Z2':>7}{'Z2 p':>7}{'MF p':>7}  ES ok{'VaR end':>10}{'sVaR':>10}{'sCVaR':>10}"
        f"  {'stressed window':<23}{'seconds':>8}"
    )
    for m in out["models"]:
        if m["stressed_var"] is None:
            m = {
                **m,
                "stressed_var": math.nan,
                "stressed_cvar": math.nan,
                "stressed_start": "(under 250 days)",
            }
            m["stressed_end"] = ""
        print(
            f"{m['model']:<31}{m['z2']:>7.3f}{m['z2_p']:>7.3f}{m['mcneil_frey_p']:>7.3f}"
            f"  {str(m['es_passes']):<5}"
            f"{m['var_last']:>10,.0f}{m['stressed_var']:>10,.0f}{m['stressed_cvar']:>10,.0f}"
            f"  {m['stressed_start'] + '..' + m['stressed_end']:<23}{m['stressed_seconds']:>8.1f}"
        )
    print(
        "Z2: Acerbi-Szekely (0 expected, < 0: ES understated; p simulated from each day's forecast); "
        "MF: McNeil-Frey exceedance residuals (bootstrap p); ES ok: both p > 5%; sVaR by "
        "historical simulation for the filtered models"
    )
    if out["default_passes"] is not None:
        print(f"default model (QB_VAR_MODEL): {out['default_model']}, passes: {out['default_passes']}")
    if "forecasts" in out:
        print(f"forecasts: {out['forecasts']}")
