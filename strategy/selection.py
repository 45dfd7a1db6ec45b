"""Which book the daily rebalance trades: the champion model, or the best baseline when the model has not
beaten it with significance.

:func:`decide_book` runs :func:`strategy.evaluation.evaluate` (one walk-forward, decisions at the close of
D traded at D+1 with the execution lane's costs) on the dates the champion never saw: from its
``train_end`` plus the purge up to ``as_of``, the champion's own predictions against the four baselines.
The model trades only when :func:`strategy.evaluation.choose` says so (IC t >= MIN_IC_T and a Newey-West
t >= MIN_EDGE_T on its daily net-return edge over the best baseline by Sharpe); otherwise the best baseline
trades. Without a champion (none promoted: no model reached the minimum IC t), the best baseline over the
last :data:`NO_CHAMPION_DAYS` trading days (fewer on a shorter lake, at least :data:`MIN_DAYS`) trades.
``models/decision.json`` records the choice, the table and the reason; :func:`strategy.rebalance.rebalance`
reads it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from quantbridge.errors import NoDataError
from quantbridge.lake import Lake
from strategy.costs import CostModel
from strategy.stats import json_safe

DECISION_FILE = "decision.json"
#: Trading days the baselines are compared over when there is no champion.
NO_CHAMPION_DAYS = 250
#: Labelled dates the comparison needs at least.
MIN_DAYS = 60


def decide_book(lake: Lake, as_of: date, costs: CostModel, top_k: int = 5) -> dict[str, Any]:
    """Decide the book to trade from ``as_of`` on, write ``models/decision.json`` and return the record.

    Raises NoDataError when the lake holds fewer than :data:`MIN_DAYS` labelled dates to compare on (the
    previous decision, if any, stays in force).
    """
    import pandas as pd

    from marketdata.reference import esg_scores
    from strategy.evaluation import HISTORY, evaluate
    from strategy.features import FEATURES, TARGET, build_features
    from strategy.model import PURGE
    from strategy.registry import champion, load_model, train_end

    current = champion(lake)
    dates = [d for d in lake.price_dates() if d <= as_of]
    if current is not None:
        after = [i for i, d in enumerate(dates) if d > train_end(current)]
        first = after[PURGE] if len(after) > PURGE else len(dates)
    else:
        first = max(HISTORY + 1, len(dates) - NO_CHAMPION_DAYS)  # fewer days on a short lake
    labelled = len(dates) - first - PURGE
    if labelled < MIN_DAYS or first < HISTORY + 1:
        raise NoDataError(
            f"choosing the book needs {MIN_DAYS} labelled dates after the champion's training and "
            f"{HISTORY} closes before them up to {as_of.isoformat()}; the lake has {max(labelled, 0)}"
        )
    closes = lake.read_close_matrix(dates[first - HISTORY - 1], as_of)
    panel = build_features(closes, esg_scores(lake), npartitions=1).dropna(subset=[TARGET])
    rows = panel[panel["date"] >= dates[first]]
    if current is not None:
        pred = load_model(current).predict(rows.loc[:, list(FEATURES)])
    else:
        pred = pd.Series(0.0, index=rows.index)  # no model: a flat signal, never chosen
    oos = rows.loc[:, ["date", "ticker", TARGET]].assign(pred=pred)
    table = evaluate(oos, closes, costs, top_k=top_k)
    decision = table["decision"]
    if current is None:
        decision["trade"] = decision["best_baseline"]
        decision["reason"] = "no champion model (none reached the minimum IC t): the best baseline trades"
    record = json_safe(
        {
            "as_of": as_of.isoformat(),
            "champion": current.version if current else None,
            "trade": decision["trade"],
            "reason": decision["reason"],
            "decision": decision,
            "period": [table["start"], table["end"]],
            "rows": [r for r in table["rows"] if current is not None or r["book"] != "model"],
            "costs": table["costs"],
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    path = lake.root / "models" / DECISION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")
    tmp.replace(path)
    return record


def read_decision(lake: Lake) -> dict[str, Any] | None:
    """The decision in force (``models/decision.json``), or None when none was taken yet."""
    path = lake.root / "models" / DECISION_FILE
    return json.loads(path.read_text()) if path.is_file() else None


__all__ = ["DECISION_FILE", "MIN_DAYS", "NO_CHAMPION_DAYS", "decide_book", "read_decision"]
