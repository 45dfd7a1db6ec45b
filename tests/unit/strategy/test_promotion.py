"""The promotion rule: champion and challenger on a common, later holdout, a paired Newey-West test on their
daily IC differences, and a minimum IC t-statistic to trade at all."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from quantbridge.lake import Lake
from strategy.features import build_features
from strategy.model import fit
from strategy.registry import PROMOTION_FILE, champion, get, promote_if_better, promotion_rule, register


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Gradient boosting's OpenMP threads crawl on a busy 2-core machine (the suite runs beside other work):
    one thread keeps these tests fast and their results the same."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


DAYS = pd.RangeIndex(250)


def ic_series(mean: float, seed: int, sd: float = 0.2) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(mean, sd, len(DAYS)), index=DAYS)


def test_rule_when_challenger_better_but_not_significantly_then_not_promoted():
    champion_ic = ic_series(0.05, 1)
    challenger_ic = champion_ic + 0.01 + ic_series(0.0, 2, sd=0.15)  # better on average, noisy difference
    decision = promotion_rule(challenger_ic, champion_ic)
    assert challenger_ic.mean() > champion_ic.mean() and decision["challenger_ic_t"] >= 2.0
    assert decision["promoted"] is False and 0 < decision["difference_t"] < 1.96
    assert "not significantly better" in decision["reason"]


def test_rule_when_challenger_significantly_better_then_promoted():
    champion_ic = ic_series(0.05, 1)
    challenger_ic = champion_ic + 0.05 + ic_series(0.0, 2, sd=0.05)
    decision = promotion_rule(challenger_ic, champion_ic)
    assert decision["promoted"] is True and decision["difference_t"] >= 1.96


def test_rule_when_ic_t_below_minimum_or_holdout_short_then_not_promoted_even_without_champion():
    weak = ic_series(0.005, 3)
    assert promotion_rule(weak, None)["promoted"] is False  # no champion: still not fit to trade
    assert promotion_rule(ic_series(0.08, 4), None)["promoted"] is True
    short = promotion_rule(ic_series(0.3, 5).iloc[:40], ic_series(0.0, 6).iloc[:40])
    assert short["promoted"] is False and "holdout of 40 dates" in short["reason"]


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    from marketdata.feed import SkfolioFeed

    frame = SkfolioFeed().fetch(date(2018, 1, 2), date(2019, 12, 31))
    return frame.pivot(index="date", columns="ticker", values="close").iloc[:, :8]


def test_promote_when_on_the_lake_then_common_holdout_after_both_training_ends_and_decision_recorded(
    tmp_path, closes
):
    lake = Lake(tmp_path)
    for day, row in closes.iterrows():
        folder = lake.price_partition(day)
        folder.mkdir(parents=True)
        row.rename("close").rename_axis("ticker").reset_index().to_parquet(folder / "part-0.parquet")
    panel = build_features(closes)
    old, new = date(2018, 9, 28), date(2019, 3, 29)
    meta = lambda end: {"as_of": "2019-12-31", "train_end": end.isoformat(), "metrics": {"ic": 0.0}}  # noqa: E731
    register(lake, fit(panel[panel["date"] <= old]), meta(old), version="v1")
    first = promote_if_better(lake, get(lake, "v1"), min_ic_t=-np.inf)
    assert first["promoted"] is True and champion(lake).version == "v1"
    same = register(lake, fit(panel[panel["date"] <= old]), meta(new), version="v2")
    decision = promote_if_better(lake, same, min_ic_t=-np.inf)
    # the common holdout starts after the later training end plus the purge, and runs to the label's end
    assert decision["holdout"][0] > "2019-04-08" and decision["holdout"][1] <= "2019-12-31"
    assert decision["ic_difference"] == pytest.approx(0.0) and decision["promoted"] is False
    assert champion(lake).version == "v1"
    recorded = json.loads((lake.root / "models" / PROMOTION_FILE).read_text())
    assert recorded["challenger"] == "v2" and recorded["reason"] == decision["reason"]


def test_set_champion_when_by_hand_then_recorded_as_such_and_a_reason_is_required(tmp_path):
    from sklearn.dummy import DummyRegressor

    from strategy.registry import set_champion

    lake = Lake(tmp_path)
    registered = register(lake, DummyRegressor().fit([[0.0]], [0.0]), {"metrics": {"ic": 0.0}}, version="v1")
    with pytest.raises(ValueError, match="reason"):
        set_champion(lake, registered, " ")
    assert champion(lake) is None
    record = set_champion(lake, registered, "fixture")
    assert champion(lake).version == "v1" and record["reason"].startswith("set by hand")
    assert json.loads((lake.root / "models" / PROMOTION_FILE).read_text())["reason"] == record["reason"]
