"""Strategy lane: no leakage in features, the model learns a planted signal, promotion logic."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from strategy.features import FEATURES, TARGET, build_features
from strategy.model import fit, make_model, walk_forward
from strategy.registry import champion, get, load_model, register


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Gradient boosting's OpenMP threads crawl on a busy 2-core machine (the suite runs beside other work):
    one thread keeps these tests fast and their results the same."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    from marketdata.feed import SkfolioFeed

    return (
        SkfolioFeed()
        .fetch(date(2017, 1, 3), date(2019, 12, 31))
        .pivot(index="date", columns="ticker", values="close")
    )


def test_features_when_future_prices_change_then_past_features_do_not(closes):
    cut = date(2019, 6, 28)
    base = build_features(closes)
    future = closes.copy()
    future.loc[future.index > cut] *= np.random.default_rng(1).uniform(
        0.5, 1.5, size=future.loc[future.index > cut].shape
    )
    perturbed = build_features(future)
    past = lambda f: f[f["date"] <= cut].loc[:, ["date", "ticker", *FEATURES]].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(past(base), past(perturbed))
    # the label looks ahead by design: it is the only column allowed to change
    assert not base.loc[base["date"] <= cut, TARGET].equals(perturbed.loc[perturbed["date"] <= cut, TARGET])


def test_features_when_computed_then_match_hand_calculation(closes):
    panel = build_features(closes, esg=pd.Series({"AAPL": 0.72}), esg_as_of=date(2019, 1, 2))
    row = panel[(panel["ticker"] == "AAPL") & (panel["date"] == date(2019, 3, 1))].iloc[0]
    series = closes["AAPL"]
    i = series.index.get_loc(date(2019, 3, 1))
    assert row["mom_21d"] == pytest.approx(series.iloc[i] / series.iloc[i - 21] - 1)
    assert row["vol_21d"] == pytest.approx(series.pct_change().iloc[i - 20 : i + 1].std())
    assert row["esg"] == 0.72 and np.isnan(panel.loc[panel["ticker"] == "MSFT", "esg"]).all()
    day = panel[panel["date"] == date(2019, 3, 1)]
    assert day[TARGET].mean() == pytest.approx(0, abs=1e-12)  # relative to the cross-section
    assert panel["date"].min() > closes.index[62]  # only rows with a full 63-day lookback


def test_walk_forward_when_signal_planted_then_high_ic_and_when_noise_then_near_zero(closes):
    panel = build_features(closes).dropna(subset=[TARGET]).copy()
    rng = np.random.default_rng(3)
    planted = panel.assign(**{TARGET: panel["mom_21d"] * 0.2 + rng.normal(0, 0.002, len(panel))})
    good, oos = walk_forward(planted, folds=3)
    assert good.ic > 0.5 and good.hit_rate > 0.6 and good.folds == 3
    assert oos["date"].min() > panel["date"].min()  # the first block is never tested on
    noise = panel.assign(**{TARGET: rng.normal(0, 0.02, len(panel))})
    assert abs(walk_forward(noise, folds=3)[0].ic) < 0.05
    with pytest.raises(InputError, match="panel"):
        walk_forward(panel[panel["date"] < date(2017, 6, 1)], folds=4)
    with pytest.raises(InputError, match="model_kind"):
        make_model("lstm")


def test_registry_when_versions_registered_then_stored_loaded_and_never_overwritten(tmp_path, closes):
    lake = Lake(tmp_path)
    model = fit(build_features(closes))
    register(lake, model, {"metrics": {"ic": 0.01}}, version="v1")
    assert get(lake, "v1").meta["code_version"] and champion(lake) is None
    panel = build_features(closes)
    assert np.allclose(
        load_model(get(lake, "v1")).predict(panel.loc[:, FEATURES]), model.predict(panel.loc[:, FEATURES])
    )
    with pytest.raises(KeyError, match="v9"):
        get(lake, "v9")
    with pytest.raises(FileExistsError):
        register(lake, model, {"metrics": {"ic": 0.0}}, version="v1")


def test_features_when_computed_on_a_distributed_scheduler_then_same_panel(closes):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = build_features(closes.iloc[:120], dask_scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(remote, build_features(closes.iloc[:120]))
