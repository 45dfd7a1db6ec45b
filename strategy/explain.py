"""SHAP explanations of the model's predictions (TreeExplainer on the fitted gradient-boosting trees)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategy.features import FEATURES


def explain(model: Any, features: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """(expected value, SHAP values (rows x FEATURES)) of ``model`` (the pipeline) on ``features``.

    Contributions are in the target's units; per row they sum to prediction - expected value.
    """
    import shap

    imputed = model.named_steps["impute"].transform(features.loc[:, list(FEATURES)])
    explainer = shap.TreeExplainer(model.named_steps["gbm"])
    values = explainer.shap_values(imputed, check_additivity=True)
    expected = float(np.ravel(explainer.expected_value)[0])
    return expected, pd.DataFrame(values, columns=list(FEATURES), index=features.index)


def top_contributions(row: pd.Series, k: int = 5) -> dict[str, float]:
    """The ``k`` largest contributions by absolute value, largest first."""
    order = row.abs().sort_values(ascending=False).index[:k]
    return {str(name): float(row[name]) for name in order}
