"""The strategy model and its honest, walk-forward, purged evaluation.

The model (a scikit-learn Pipeline: median imputation, then gradient boosting) forecasts ``target_5d``,
the forward 5-day return relative to the cross-section. Evaluation walks forward: each fold trains on
dates before the test block minus a purge gap of ``HORIZON + EXECUTION_LAG`` trading days (labels of the
last training rows would otherwise overlap the test block) and tests on the block. Metrics per fold: mean
daily Spearman information coefficient (IC) and hit rate (share of names whose predicted sign of the
relative return is right). An optional ``weight`` column of the panel is used as sample weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantbridge.errors import InputError
from strategy.features import EXECUTION_LAG, FEATURES, HORIZON, TARGET

PURGE = HORIZON + EXECUTION_LAG

MODEL_KINDS = ("gbm",)


def make_model(kind: str = "gbm", seed: int = 20260101) -> Any:
    """An unfitted pipeline of the given kind."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    if kind not in MODEL_KINDS:
        raise InputError("model_kind", kind, "one of " + ", ".join(MODEL_KINDS))
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            (
                "gbm",
                HistGradientBoostingRegressor(
                    max_iter=150,
                    learning_rate=0.05,
                    max_depth=3,
                    min_samples_leaf=50,
                    l2_regularization=1.0,
                    random_state=seed,
                ),
            ),
        ]
    )


@dataclass(frozen=True)
class Evaluation:
    ic: float
    ic_std: float
    hit_rate: float
    folds: int
    test_days: int
    start: str
    end: str

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def daily_ic(frame: pd.DataFrame, prediction: np.ndarray) -> pd.Series:
    """Spearman correlation of prediction and realised target, per date (none on a date with fewer than three
    names or a constant prediction)."""
    scored = frame.assign(pred=prediction)
    return (
        scored.groupby("date")
        .apply(
            lambda g: (
                g["pred"].rank().corr(g[TARGET].rank()) if g["pred"].nunique() > 1 and len(g) > 2 else np.nan
            ),
            include_groups=False,
        )
        .dropna()
    )


def _weights(rows: pd.DataFrame) -> np.ndarray | None:
    return rows["weight"].to_numpy() if "weight" in rows else None


def walk_forward(
    panel: pd.DataFrame, kind: str = "gbm", folds: int = 4, seed: int = 20260101
) -> tuple[Evaluation, pd.DataFrame]:
    """Purged walk-forward evaluation; returns the metrics and the out-of-sample predictions."""
    labelled = panel.dropna(subset=[TARGET])
    dates = np.array(sorted(labelled["date"].unique()))
    if len(dates) < (folds + 1) * 20:
        raise InputError(
            "panel", f"{len(dates)} labelled dates", f"at least {(folds + 1) * 20} for {folds} folds"
        )
    blocks = np.array_split(dates[len(dates) // (folds + 1) :], folds)
    ics, hits, predictions = [], [], []
    for block in blocks:
        train_end = dates[max(0, np.searchsorted(dates, block[0]) - PURGE)]  # purge the overlapping labels
        train = labelled[labelled["date"] < train_end]
        test = labelled[labelled["date"].isin(block)]
        model = make_model(kind, seed).fit(
            train.loc[:, FEATURES], train[TARGET], gbm__sample_weight=_weights(train)
        )
        pred = model.predict(test.loc[:, FEATURES])
        ics.append(daily_ic(test, pred))
        hits.append(float(np.mean(np.sign(pred) == np.sign(test[TARGET].to_numpy()))))
        predictions.append(test.loc[:, ["date", "ticker", TARGET]].assign(pred=pred))
    ic = pd.concat(ics)
    oos = pd.concat(predictions, ignore_index=True)
    return Evaluation(
        ic=float(ic.mean()),
        ic_std=float(ic.std()),
        hit_rate=float(np.mean(hits)),
        folds=folds,
        test_days=int(oos["date"].nunique()),
        start=str(oos["date"].min()),
        end=str(oos["date"].max()),
    ), oos


def fit(panel: pd.DataFrame, kind: str = "gbm", seed: int = 20260101) -> Any:
    """The model fitted on every labelled row of the panel."""
    labelled = panel.dropna(subset=[TARGET])
    if labelled.empty:
        raise InputError("panel", "no labelled rows", "at least one date with a forward return")
    return make_model(kind, seed).fit(
        labelled.loc[:, FEATURES], labelled[TARGET], gbm__sample_weight=_weights(labelled)
    )
