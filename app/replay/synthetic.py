"""``qb replay --synthetic RUN --regime N``: the same bridge driven by prices that never happened.

The run's stored windows (``synthetic/run=RUN/`` in the user's lake, trained by ``qb synth train``) are copied
into the replay's lake, and :class:`~marketdata.synthetic_feed.SyntheticFeed` stitches the regime's windows
into closes continuing from the last real close before ``--start``; they go through the same stage, gates and
Spark publish as real prices. The feed's name (``synthetic:RUN:regimeN``) is what every ingest record, day
record and the KPIs carry, and the tear sheet lists the synthetic days.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from quantbridge.errors import InputError


def check_run(args: Any) -> Path:
    """The stored run's folder in the user's lake (InputError naming the known runs when it is absent):
    checked before anything is ingested."""
    if args.synthetic_lake is None:
        raise InputError("synthetic_lake", None, "the lake that holds the --synthetic run")
    source = Path(args.synthetic_lake) / "synthetic" / f"run={args.synthetic}"
    if not (source / "samples.parquet").is_file():
        known = sorted(p.name[4:] for p in source.parent.glob("run=*") if (p / "samples.parquet").is_file())
        raise InputError(
            "--synthetic",
            args.synthetic,
            f"a trained run with samples in {source.parent} ({', '.join(known) or 'none'})",
        )
    return source


def synthetic_feed(lake: Any, args: Any) -> Any:
    """The feed of ``args.synthetic``'s regime ``args.regime``, for the weekdays of [start, end]."""
    from marketdata.synthetic_feed import SyntheticFeed, last_closes

    target = lake.root / "synthetic" / f"run={args.synthetic}"
    if not target.is_dir():
        shutil.copytree(check_run(args), target)
    days = len(pd.bdate_range(args.start, args.end))
    anchor = last_closes(lake, args.start)
    return SyntheticFeed(lake, args.synthetic, args.regime, anchor, args.start, days, args.seed)
