"""``qb stress``: stress scenarios (rates, FX, ESG, historical) on the book for one date."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from app.cli.common import echo
from quantbridge.settings import Settings


def cmd_stress(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Stress the book for one date and print per scenario the base, shocked value and change."""
    from app.cli.var import redis_positions
    from quantbridge.lake import Lake
    from risk.portfolio import load_positions
    from risk.stress_night import load_inputs, run_stress

    lake = Lake(settings.lake_root)
    positions = load_positions(args.positions) if args.positions else redis_positions(settings)
    inputs = load_inputs(lake, args.date, positions, args.book)
    frame = run_stress(
        inputs,
        args.scenarios,
        shock_scale=args.shock_scale,
        paths=args.paths,
        seed=settings.seed,
        dask_scheduler=settings.dask_scheduler,
        progress=lambda m: echo(args, m),
    )
    scenarios = []
    for (family, scenario), rows in frame.groupby(["family", "scenario"], sort=False):
        total = rows[rows["position"] == "TOTAL"].iloc[0]
        scenarios.append(
            {
                "family": family,
                "scenario": scenario,
                "base_value": total["base_value"],
                "shocked_value": total["shocked_value"],
                "change": total["change"],
                "positions": rows[rows["position"] != "TOTAL"]
                .loc[:, ["position", "base_value", "shocked_value", "change"]]
                .to_dict("records"),
            }
        )
    scenarios.sort(key=lambda r: r["change"])
    out: dict[str, Any] = {"date": args.date.isoformat(), "rows": len(frame), "scenarios": scenarios}
    if "rates" in args.scenarios:
        from risk.irrbb import bootstrap_par_curve, key_rate_durations

        krd = key_rate_durations(inputs.bond_book, bootstrap_par_curve(args.date, inputs.curve))
        out["key_rate_durations"] = {
            bond: {k: round(v, 4) for k, v in row.items()} for bond, row in krd.iterrows()
        }
    if not args.json:
        print(f"stress {args.date}: {len(scenarios)} scenarios, worst first")
        print(f"{'family':<11}{'scenario':<36}{'base':>16}{'shocked':>16}{'change':>14}")
        for r in scenarios:
            print(
                f"{r['family']:<11}{r['scenario']:<36}{r['base_value']:>16,.0f}{r['shocked_value']:>16,.0f}"
                f"{r['change']:>14,.0f}"
            )
    return out, 0


def add_parser(sub: Any, common: argparse.ArgumentParser, date_type: Callable[[str], Any]) -> None:
    """Register ``qb stress`` (it prints its own table)."""
    p = sub.add_parser(
        "stress", parents=[common], help="stress scenarios for one date (rates, fx, esg, historical)"
    )
    p.add_argument("--date", type=date_type("--date"), required=True)
    p.add_argument(
        "--book",
        help="your fixed-income book: CSV id, face, coupon_rate, maturity_date, "
        "coupon_frequency, currency (default: the illustrative book in the lake)",
    )
    p.add_argument("--positions", help="equity positions CSV/JSON (default: Redis, else the demo book)")
    p.add_argument(
        "--scenarios",
        nargs="+",
        default=["rates", "fx", "esg", "historical"],
        choices=["rates", "fx", "esg", "historical"],
        help="scenario families",
    )
    p.add_argument("--shock-scale", type=float, default=1.0)
    p.add_argument("--paths", type=int, default=50_000)
    p.set_defaults(func=cmd_stress, prints_own=True)
