"""``qb synth train|sample|report``: synthetic markets from the lake's real prices.

* ``train``: fit the conditional GAN (or the VAE) into ``synthetic/run=NAME/checkpoint.pt`` (resumes);
* ``sample``: draw windows from a trained run into ``samples.parquet`` (or ``--out``);
* ``report``: the beta sweep of ``--model`` and the baselines (i.i.d. normal, CCC-GARCH-t, resampled
  training windows) on the same split, with the HTML fidelity report (``--out`` folder).

Progress goes to stderr (a tqdm bar while training), the result to stdout (``--json``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quantbridge.errors import InputError
from quantbridge.settings import Settings


def _epoch_bar(
    args: argparse.Namespace, label: str
) -> tuple[Callable[[int, int, dict[str, float]], None], Any]:
    """A tqdm bar over epochs on stderr (silent with --quiet) and a function to close it."""
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(epoch: int, epochs: int, losses: dict[str, float]) -> None:
        if args.quiet:
            return
        if "bar" not in state:
            state["bar"] = tqdm(total=epochs, initial=epoch - 1, file=sys.stderr, unit="epoch", desc=label)
        state["bar"].set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
        state["bar"].update(1)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()
            state.clear()

    return update, close


def _spec(args: argparse.Namespace, settings: Settings) -> Any:
    from synthetic.pipeline import RunSpec

    return RunSpec(
        model_kind=args.model,
        beta=args.beta,
        epochs=args.epochs,
        samples=args.n,
        seed=settings.seed,
        end=args.end.isoformat() if args.end else None,
    )


def cmd_train(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from quantbridge.lake import Lake
    from synthetic.pipeline import train_run

    update, close = _epoch_bar(args, f"train {args.model}")
    try:
        out = train_run(Lake(settings.lake_root), args.run, _spec(args, settings), progress=update)
    finally:
        close()
    return out, 0


def cmd_sample(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from quantbridge.lake import Lake
    from synthetic.pipeline import generate_run, run_folder

    lake = Lake(settings.lake_root)
    out = generate_run(lake, args.run, _spec(args, settings))
    if args.out:
        target = Path(args.out)
        target.parent.mkdir(parents=True, exist_ok=True)
        (run_folder(lake, args.run) / "samples.parquet").replace(target)
        out["samples"] = str(target)
    return out, 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    from quantbridge.lake import Lake
    from synthetic.beta_sweep import baseline_rows, beta_sweep, sweep_report
    from synthetic.novelty import NoveltyReference
    from synthetic.pipeline import load_data

    if any(b < 0 for b in args.betas):
        raise InputError("--betas", args.betas, "numbers >= 0")
    if args.epochs < 1:
        raise InputError("--epochs", args.epochs, "a positive integer")
    split, esg = load_data(
        Lake(settings.lake_root), args.end.isoformat() if args.end else None, settings.seed
    )
    update, close = _epoch_bar(args, "sweep")

    def message(text: str) -> None:
        close()
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    novelty = NoveltyReference(split.train, split.test, split.scale, seed=settings.seed)
    rows, samples, models = beta_sweep(
        split,
        esg,
        args.betas,
        args.epochs,
        settings.seed,
        progress=message,
        epoch_progress=update,
        model_kind=args.model,
        novelty=novelty,
    )
    judge = models[args.betas[0]].plausibility
    baselines, _ = baseline_rows(
        split, esg, settings.seed, args.model, progress=message, novelty=novelty, judge=judge
    )
    out: dict[str, Any] = {
        "model": args.model,
        "train_windows": len(split.train),
        "test_windows": len(split.test),
        "start": split.start,
        "end": split.end,
        "epochs": args.epochs,
        "kurtosis_real": rows[0]["kurtosis_real"],
        "acf_abs_real": rows[0]["acf_abs_real"],
        "real_loss_q99": float(novelty.q99),
        "real_loss_q999": float(novelty.q999),
        "authenticity_holdout": novelty.test_authentic,
        "rows": rows,
        "baselines": baselines,
    }
    if args.out:
        model = " --model vae" if args.model == "vae" else ""
        command = (
            f"qb synth report{model} --betas {' '.join(f'{b:g}' for b in args.betas)} --epochs {args.epochs}"
            + (f" --end {args.end.isoformat()}" if args.end else "")
            + f" --out {shlex.quote(args.out)}"
        )
        out["report"] = str(
            sweep_report(
                split,
                esg,
                rows,
                samples,
                Path(args.out),
                command,
                settings.seed,
                args.model,
                baselines=baselines,
            )
        )
    return out, 0


def cmd_synth(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    return {"train": cmd_train, "sample": cmd_sample, "report": cmd_report}[args.action](args, settings)


def add_parser(
    sub: Any, common: argparse.ArgumentParser, date_type: Callable[[str], Callable[[str], Any]]
) -> None:
    """Register ``qb synth`` on the subcommand parsers of ``qb``."""
    from synthetic.beta_sweep import BETAS
    from synthetic.cgan import GANConfig

    p = sub.add_parser("synth", parents=[common], help="synthetic markets: train, sample, beta-sweep report")
    p.add_argument("action", choices=["train", "sample", "report"])
    p.add_argument("--run", default="cli", help="run name: lake folder synthetic/run=NAME/ (train, sample)")
    p.add_argument(
        "--model", default="cgan", choices=["cgan", "vae"], help="generator (train, sample, report)"
    )
    p.add_argument("--beta", type=float, default=0.0, help="ESG weight in the loss (train)")
    p.add_argument("--betas", type=float, nargs="+", default=list(BETAS), help="ESG weights (report)")
    p.add_argument("--epochs", type=int, default=GANConfig.epochs)
    p.add_argument("--n", type=int, default=1000, help="windows to draw (sample)")
    p.add_argument("--end", type=date_type("--end"), default=None, help="last price date used (default: all)")
    p.add_argument("--out", default=None, help="sample: Parquet file; report: folder for index.html and PNGs")
    p.set_defaults(func=cmd_synth)
