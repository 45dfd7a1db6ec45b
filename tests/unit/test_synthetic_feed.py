"""SyntheticFeed: a trained run's regime windows as closes continuing from real ones, through the real gates.

The run is made by the real pipeline (train 2 epochs, generate, evaluate) on real closes of 2019 in a
temporary lake, so the stored format is exactly what ``qb synth`` and the DAG write.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketdata.feed import SkfolioFeed
from marketdata.ingest import gate, stage
from marketdata.reference import load_reference_tables
from marketdata.synthetic_feed import SyntheticFeed, last_closes
from quantbridge.errors import InputError, NoDataError
from quantbridge.lake import Lake
from quantbridge.settings import load_settings

START = date(2020, 1, 4)  # a Saturday: the first session is Monday 2020-01-06


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    from synthetic.pipeline import RunSpec, evaluate_run, generate_run, train_run

    lake = Lake(tmp_path_factory.mktemp("lake"))
    for day, frame in SkfolioFeed().fetch(date(2019, 1, 2), date(2019, 12, 31)).groupby("date"):
        folder = lake.price_partition(day)
        folder.mkdir(parents=True)
        frame[["ticker", "close"]].to_parquet(folder / "part-00000.parquet", index=False)
    load_reference_tables(lake)
    spec = RunSpec(epochs=2, samples=200, seed=7)
    trained = train_run(lake, "t", spec)
    generate_run(lake, "t", spec)
    evaluate_run(lake, "t", spec, trained)
    return lake


@pytest.fixture(scope="module")
def anchor(lake) -> dict[str, float]:
    return last_closes(lake, START)


def _samples(lake: Lake, run: str = "t") -> pd.DataFrame:
    return pd.read_parquet(lake.partition("synthetic", "run", run) / "samples.parquet")


def _copy_run(lake: Lake, name: str, frame: pd.DataFrame) -> str:
    """A run holding ``frame`` as its samples (no metadata.json: a run generated but not yet evaluated)."""
    folder = lake.partition("synthetic", "run", name)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "samples.parquet", index=False)
    return name


def test_feed_when_built_then_named_weekday_calendar_and_closes_continue_from_anchor(lake, anchor):
    feed = SyntheticFeed(lake, "t", 3, anchor, START, days=30, seed=1)
    days = feed.dates()
    frame = feed.fetch(days[0], days[-1])

    assert feed.name == "synthetic:t:regime3"
    assert days[0] == date(2020, 1, 6) and len(days) == 30 and all(d.weekday() < 5 for d in days)
    assert {(b - a).days for a, b in zip(days[:-1], days[1:], strict=True)} == {1, 3}  # Fri -> Mon only
    assert date(2020, 1, 20) in days  # no holidays (MLK day is a session here)
    assert list(frame.columns) == ["date", "ticker", "close"] and len(frame) == 30 * 20
    assert frame["close"].dtype == "float64" and isinstance(frame.at[0, "date"], date)
    wide = frame.pivot(index="date", columns="ticker", values="close")
    first = wide.iloc[0] / pd.Series(anchor) - 1.0
    assert np.allclose(first, feed.returns().iloc[0])
    assert np.allclose(wide, pd.Series(anchor) * (1.0 + feed.returns()).cumprod())

    stored = _samples(lake).set_index(["sample", "day"])
    for row in feed.provenance().itertuples():
        assert stored.at[(row.sample, row.day), "regime"] == 3
        assert np.allclose(
            stored.loc[(row.sample, row.day), list(feed.tickers)], feed.returns().loc[row.date]
        )


def test_feed_when_same_seed_then_same_prices_and_other_seed_other_window_order(lake, anchor):
    one = SyntheticFeed(lake, "t", 3, anchor, START, days=20, seed=1).fetch(START, date(2020, 12, 31))
    again = SyntheticFeed(lake, "t", 3, anchor, START, days=20, seed=1).fetch(START, date(2020, 12, 31))
    other = SyntheticFeed(lake, "t", 3, anchor, START, days=20, seed=2)

    pd.testing.assert_frame_equal(one, again)
    assert not np.allclose(one["close"], other.fetch(START, date(2020, 12, 31))["close"])


def test_feed_when_year_needs_more_windows_than_run_holds_then_each_used_once_per_pass(lake, anchor):
    held = _samples(lake).query("regime == 3")["sample"].nunique()
    feed = SyntheticFeed(lake, "t", 3, anchor, START, days=held * 5 + 7, seed=3)
    used = feed.provenance()["sample"].to_numpy()[::5]
    summary = feed.summary()

    assert feed.windows_available == held and feed.passes == 2
    assert sorted(used[:held]) == sorted(_samples(lake).query("regime == 3")["sample"].unique())
    assert summary["source"] == feed.name and summary["sessions"] == held * 5 + 7
    assert summary["windows_used"] == held and summary["capped"] == 0 and summary["cap"] is None
    assert summary["calendar"] == "Monday-Friday, no holidays" and summary["window_days"] == 5
    assert summary["min_return"] < 0 < summary["max_return"]
    json.dumps(summary)


def test_fetch_when_range_partial_or_weekend_then_subset_or_empty_and_reversed_range_is_an_error(
    lake, anchor
):
    feed = SyntheticFeed(lake, "t", 0, anchor, date(2020, 1, 6), days=10, seed=1)
    part = feed.fetch(date(2020, 1, 8), date(2020, 1, 9))

    assert sorted(set(part["date"])) == [date(2020, 1, 8), date(2020, 1, 9)]
    assert feed.fetch(date(2020, 1, 11), date(2020, 1, 12)).empty
    with pytest.raises(InputError, match="start"):
        feed.fetch(date(2020, 1, 9), date(2020, 1, 8))


def test_feed_when_run_regime_or_tickers_absent_then_errors_name_them(lake, anchor):
    with pytest.raises(InputError, match="run='nope'.*known runs: t"):
        SyntheticFeed(lake, "nope", 3, anchor, START, 5, 1)
    lake.partition("synthetic", "run", "unsampled").mkdir(parents=True)
    with pytest.raises(NoDataError, match="qb synth sample --run unsampled"):
        SyntheticFeed(lake, "unsampled", 3, anchor, START, 5, 1)
    with pytest.raises(InputError, match=r"regime=4.*0\.\.3"):
        SyntheticFeed(lake, "t", 4, anchor, START, 5, 1)
    with pytest.raises(InputError, match="ZZZZ"):
        SyntheticFeed(lake, "t", 3, {**anchor, "ZZZZ": 10.0}, START, 5, 1)
    calm_only = _copy_run(lake, "calm", _samples(lake).query("regime < 3"))
    with pytest.raises(NoDataError, match="no window of regime 3 .regimes drawn: 0, 1, 2"):
        SyntheticFeed(lake, calm_only, 3, anchor, START, 5, 1)
    with pytest.raises(InputError, match="sample, day, regime"):
        SyntheticFeed(
            lake, _copy_run(lake, "bare", _samples(lake).drop(columns="regime")), 3, anchor, START, 5, 1
        )
    ragged = _copy_run(lake, "ragged", _samples(lake).query("not (sample == 0 and day == 4)"))
    with pytest.raises(InputError, match="unequal length"):
        SyntheticFeed(lake, ragged, int(_samples(lake).at[0, "regime"]), anchor, START, 5, 1)
    holed = _samples(lake)
    holed.loc[holed["regime"] == 3, "AAPL"] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        SyntheticFeed(lake, _copy_run(lake, "holed", holed), 3, anchor, START, 5, 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"run": "../t"}, "run"),
        ({"regime": True}, "regime"),
        ({"regime": -1}, "regime"),
        ({"days": 0}, "days"),
        ({"seed": 1.5}, "seed"),
        ({"anchor": {}}, "anchor"),
        ({"anchor": {"AAPL": -3.0}}, r"anchor\[AAPL\]"),
        ({"cap": (-1.5, 1.0)}, "cap"),
    ],
)
def test_feed_when_argument_invalid_then_input_error_names_field(lake, anchor, kwargs, field):
    args = {"lake": lake, "run": "t", "regime": 3, "anchor": anchor, "start": START, "days": 5, "seed": 1}
    with pytest.raises(InputError, match=f"^{field}="):
        SyntheticFeed(**{**args, **kwargs})


def test_feed_when_few_sessions_staged_then_real_gates_pass_and_record_says_synthetic(lake, anchor):
    settings = load_settings(overrides={"lake_root": str(lake.root)})
    feed = SyntheticFeed(lake, "t", 3, last_closes(lake, date(2020, 1, 2)), date(2020, 1, 2), days=5, seed=4)
    days = feed.dates()

    staged = stage(lake, feed, days[0], days[-1])
    report = gate(lake, settings, days[0], days[-1])

    assert staged.source == "synthetic:t:regime3" and staged.rows == 5 * 20
    assert report.passed and report.dates == tuple(days) and "outlier" in report.rules_checked


def test_feed_when_returns_beyond_gate_then_uncapped_day_quarantined_and_cap_clips_and_counts(lake, anchor):
    settings = load_settings(overrides={"lake_root": str(lake.root)})
    crash = _samples(lake)
    crash.loc[(crash["regime"] == 3) & (crash["day"] == 0), "AAPL"] = -0.9  # every regime-3 window opens -90%
    run = _copy_run(lake, "crash", crash)
    start = date(2021, 3, 1)
    raw = SyntheticFeed(lake, run, 3, anchor, start, days=3, seed=5)
    capped = SyntheticFeed(lake, run, 3, anchor, start, days=3, seed=5, cap=(-0.75, 1.5))

    flagged = raw.outliers(settings.min_daily_return, settings.max_daily_return)
    assert flagged[["date", "ticker"]].values.tolist() == [[start, "AAPL"]] and raw.capped == 0
    stage(lake, raw, start, raw.dates()[-1])
    report = gate(lake, settings, start, raw.dates()[-1])
    assert report.failed_dates == (start,) and {v.rule for v in report.violations} == {"outlier"}

    assert capped.capped == 1 and capped.summary()["cap"] == [-0.75, 1.5]
    assert capped.returns().at[start, "AAPL"] == -0.75 and capped.summary()["min_return"] == pytest.approx(
        -0.9
    )
    stage(lake, capped, start, capped.dates()[-1])
    assert gate(lake, settings, start, capped.dates()[-1]).passed

    crash.loc[(crash["regime"] == 3) & (crash["day"] == 0), "AAPL"] = -1.2
    with pytest.raises(InputError, match="<= -100%"):
        SyntheticFeed(lake, _copy_run(lake, "ruin", crash), 3, anchor, start, days=3, seed=5)
    assert SyntheticFeed(lake, "ruin", 3, anchor, start, days=3, seed=5, cap=(-0.75, 1.5)).capped == 1


def test_last_closes_when_lake_has_no_earlier_prices_then_no_data_error(tmp_path: Path):
    with pytest.raises(NoDataError, match="no published prices before 2020-01-02"):
        last_closes(Lake(tmp_path), date(2020, 1, 2))
