"""The replay's tear sheet on a small book built by hand: every section, the KPIs, the caveats, the synthetic
days, the pictures, and statistics equal to empyrical's for the same series."""

from __future__ import annotations

import html
import json

import empyrical
import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from reporting.tearsheet import PAGE_FILE, SUMMARY_FILE, build_tearsheet

DAYS = 100
TICKERS = ["AAA", "BBB", "CCC"]
SECTIONS = [
    "kpis",
    "data",
    "stats",
    "returns",
    "drawdown",
    "rolling",
    "beta",
    "exposure",
    "turnover",
    "monthly",
    "var",
    "cost",
]
KPIS = {
    "signal_to_fill_latency_ms": {"mean": 2.31, "p99": 11.7},
    "cost_pct_aum_per_month": {"mean": 0.0412, "worst": 0.0833},
    "policy_violations": 0,
    "basel_zone": "green",
    "kupiec_p": 0.4321,
    "kill_switch_episodes": np.int64(1),
    "halted_days": ["2020-03-16", "2020-03-17"],
    "resumed": True,
}
NOTES = [
    "Survivorship bias: the 20-name universe is today's large caps <chosen after the fact>.",
    "Closes only: fills are anchored on the next day's close & an intraday noise model.",
]


def replay_inputs(seed: int = 3) -> dict:
    """A 3-name book over 100 business days: shares change weekly, NAV = cash + shares x close."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2020-01-02", periods=DAYS)
    index = pd.DatetimeIndex(index.to_numpy())  # a plain calendar, as the replay's days (no freq)
    closes = pd.DataFrame(100 * np.cumprod(1 + rng.normal(0.0004, 0.012, (DAYS, 3)), axis=0), index, TICKERS)
    shares = pd.DataFrame(0.0, index, TICKERS)
    cash = pd.Series(0.0, index)
    trades = []
    held, money = np.zeros(3), 1_000_000.0
    for i, day in enumerate(index):
        if i % 5 == 0:
            target = np.floor(
                rng.uniform(0.2, 0.3, 3) * (money + held @ closes.iloc[i].to_numpy()) / closes.iloc[i]
            )
            for t, delta in zip(TICKERS, target - held, strict=True):
                if delta:
                    price = float(closes.at[day, t])
                    trades.append(
                        {"dt": day + pd.Timedelta(hours=15), "amount": delta, "price": price, "symbol": t}
                    )
                    money -= delta * price
            held = target
        shares.iloc[i], cash.iloc[i] = held, money
    positions = shares * closes
    positions["cash"] = cash
    nav = positions.sum(axis=1)
    returns = nav.pct_change().fillna(0.0)
    pnl = nav.diff().shift(-1).dropna()
    var = pd.DataFrame({"var": 0.008 * nav.loc[pnl.index], "pnl": pnl})  # tight enough for a few exceptions
    months = pd.period_range("2020-01", periods=5, freq="M")
    cost = pd.DataFrame(
        {
            "cost": [410.0, 380.5, 1200.0, 90.0, 55.0],
            "pct_aum": [0.041, 0.038, 0.12, 0.009, 0.0055],
            "naive_pct_aum": [0.06, 0.05, 0.17, 0.013, 0.008],
        },
        index=months,
    )
    equal = closes.pct_change().mean(axis=1).fillna(0.0).rename("equal weight")
    # a benchmark that starts later than the strategy (history too short for its first days)
    low = (closes.pct_change().iloc[5:, 0] * 0.5).rename("minimum variance")
    return {
        "returns": returns,
        "benchmarks": {"equal weight": equal, "minimum variance": low},
        "positions": positions,
        "transactions": pd.DataFrame(trades).set_index("dt"),
        "var": var,
        "monthly_cost": cost,
        "kpis": KPIS,
        "notes": NOTES,
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    inputs = replay_inputs()
    folder = tmp_path_factory.mktemp("tearsheet")
    synthetic = [inputs["returns"].index[40].date(), "2020-02-26"]  # the 26th and 27th of February
    path = build_tearsheet(folder, synthetic_days=synthetic, **inputs)
    return inputs, folder, path, path.read_text()


def test_build_when_replay_inputs_then_page_has_every_section_and_its_picture(built):
    _, folder, path, page = built
    assert path == folder / PAGE_FILE
    for key in SECTIONS:
        assert f"<h2 id='{key}'>" in page
    pictures = [s.split("'")[0] for s in page.split("<img src='")[1:]]
    assert len(pictures) == 9  # every section but the KPI, data and statistics tables
    for name in pictures:
        assert (folder / name).stat().st_size > 5_000
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_when_kpis_and_notes_then_shown_escaped(built):
    _, _, _, page = built
    for cell in [
        "signal_to_fill_latency_ms.p99</td><td>11.7",
        "policy_violations</td><td>0",
        "basel_zone</td><td>green",
        "cost_pct_aum_per_month.worst</td><td>0.0833",
        "kupiec_p</td><td>0.4321",
        "kill_switch_episodes</td><td>1",
        "halted_days</td><td>2020-03-16, 2020-03-17",
        "resumed</td><td>True",
    ]:
        assert cell in page
    for note in NOTES:
        assert f"<li>{html.escape(note)}</li>" in page
    assert "<chosen" not in page


def test_build_when_synthetic_days_then_listed_in_order(built):
    _, folder, _, page = built
    assert "Synthetic prices on 2 of the days" in page and "2020-02-26, 2020-02-27" in page
    assert "All days real" not in page
    assert json.loads((folder / SUMMARY_FILE).read_text())["synthetic_days"] == ["2020-02-26", "2020-02-27"]


def test_build_when_kpis_then_summary_json_holds_plain_values(built):
    _, folder, _, _ = built
    kpis = json.loads((folder / SUMMARY_FILE).read_text())["kpis"]
    assert kpis["kill_switch_episodes"] == 1 and kpis["halted_days"] == ["2020-03-16", "2020-03-17"]
    assert kpis["signal_to_fill_latency_ms.p99"] == 11.7


def test_build_when_stats_then_equal_to_empyrical_for_the_same_series(built):
    inputs, folder, _, page = built
    returns, equal = inputs["returns"], inputs["benchmarks"]["equal weight"]
    stats = json.loads((folder / SUMMARY_FILE).read_text())["stats"]

    assert stats["strategy"]["Sharpe ratio"] == pytest.approx(empyrical.sharpe_ratio(returns), rel=1e-12)
    assert stats["strategy"]["Max drawdown"] == pytest.approx(empyrical.max_drawdown(returns), rel=1e-12)
    assert stats["equal weight"]["Sharpe ratio"] == pytest.approx(empyrical.sharpe_ratio(equal), rel=1e-12)
    assert stats["strategy"]["Beta vs equal weight"] == pytest.approx(
        empyrical.beta(returns, equal), rel=1e-9
    )
    # the page shows the same numbers
    assert f"<td>Sharpe ratio</td><td>{empyrical.sharpe_ratio(returns):.4f}</td>" in page
    assert f"<td>Max drawdown</td><td>{empyrical.max_drawdown(returns):.4f}</td>" in page


def test_build_when_var_and_cost_then_exceptions_counted_and_months_listed(built):
    inputs, _, _, page = built
    var = inputs["var"]
    exceptions = var.index[var["pnl"] < -var["var"]]
    assert len(exceptions) > 0  # the book is volatile enough for the test to mean something
    assert f"exceptions (loss beyond VaR)</td><td>{len(exceptions)}</td>" in page
    assert exceptions[0].date().isoformat() in page
    assert "<td>2020-03</td><td>1,200</td><td>0.1200</td><td>0.1700</td>" in page


def test_build_when_benchmark_misses_days_then_compared_on_the_days_it_has(built):
    inputs, folder, _, page = built
    low = inputs["benchmarks"]["minimum variance"]
    stats = json.loads((folder / SUMMARY_FILE).read_text())["stats"]

    assert stats["minimum variance"]["Sharpe ratio"] == pytest.approx(empyrical.sharpe_ratio(low), rel=1e-12)
    beta = empyrical.beta(inputs["returns"].loc[low.index], low)
    assert stats["strategy"]["Beta vs minimum variance"] == pytest.approx(beta, rel=1e-9)
    assert "strategy: 100; equal weight: 100; minimum variance: 95" in page


def test_build_when_no_trades_var_cost_benchmarks_or_synthetic_days_then_sections_say_so(tmp_path):
    inputs = replay_inputs()
    inputs.update(
        benchmarks={},
        transactions=inputs["transactions"].iloc[:0],
        var=inputs["var"].iloc[:0],
        monthly_cost=inputs["monthly_cost"].iloc[:0],
        notes=[],
    )

    page = build_tearsheet(tmp_path, synthetic_days=[], **inputs).read_text()

    for note in [
        "no benchmark given",
        "no transactions in this run",
        "no VaR forecast in this run",
        "no execution cost in this run",
        "All days real",
        "No caveats were given",
    ]:
        assert note in page
    assert "<img src='returns.png'" in page and (tmp_path / "returns.png").stat().st_size > 5_000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"returns": pd.Series([0.01], index=pd.to_datetime(["2020-01-02"]))}, "returns"),
        (
            {"returns": pd.Series([0.01, np.nan], index=pd.to_datetime(["2020-01-02", "2020-01-03"]))},
            "returns",
        ),
        ({"returns": [0.01, 0.02]}, "returns"),
        ({"positions": pd.DataFrame({"AAA": [1.0]})}, "positions"),
        ({"positions": pd.DataFrame({"AAA": [np.nan], "cash": [1.0]})}, "positions"),
        ({"transactions": pd.DataFrame({"amount": [1.0]})}, "transactions"),
        ({"var": pd.DataFrame({"var": [-1.0], "pnl": [0.0]}, index=pd.to_datetime(["2020-01-02"]))}, "var"),
        ({"monthly_cost": pd.DataFrame({"cost": [1.0]})}, "monthly_cost"),
        ({"benchmarks": {"eq": pd.Series([0.0], index=pd.to_datetime(["1999-01-04"]))}}, "benchmarks['eq']"),
        ({"synthetic_days": ["not a date"]}, "synthetic_days"),
    ],
)
def test_build_when_input_unusable_then_input_error_names_it(tmp_path, change, field):
    inputs = {**replay_inputs(), "synthetic_days": []}
    inputs.update(change)
    with pytest.raises(InputError) as caught:
        build_tearsheet(tmp_path, **inputs)
    assert caught.value.field == field
    assert not (tmp_path / PAGE_FILE).exists()
