"""``qb var backtest`` on a small lake: the VaR table, ES tests and stressed VaR, printed and returned."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from app.cli.main import build_parser
from app.cli.var_backtest import cmd_backtest
from quantbridge.lake import Lake
from risk.var import VAR_MODELS, VarSpec


def write_lake(lake: Lake, days: int) -> None:
    """``days`` business days of four tickers, published like the ingest does (one Parquet per date)."""
    rng = np.random.default_rng(21)
    tickers = ["AAA", "BBB", "CCC", "DDD"]
    prices = 50 * np.cumprod(1 + rng.standard_normal((days, 4)) * 0.012, axis=0)
    for day, row in zip(pd.bdate_range("2015-01-02", periods=days).date, prices, strict=True):
        folder = lake.price_partition(day)
        folder.mkdir(parents=True)
        pd.DataFrame({"ticker": tickers, "close": row}).to_parquet(folder / "part-00000.parquet")
    (lake.prices / "_SUCCESS").write_text("")


def test_cmd_backtest_when_every_model_then_table_with_es_tests_and_stressed_var(settings, capsys, tmp_path):
    write_lake(Lake(settings.lake_root), 320)
    csv = tmp_path / "forecasts.csv"
    args = build_parser().parse_args(
        ["var", "backtest", "--window", "60", "--book", "long_short", "--forecasts", str(csv), "-q"]
    )

    out, code = cmd_backtest(args, settings)

    printed = capsys.readouterr().out
    assert code == 0 and [m["model"] for m in out["models"]] == list(VAR_MODELS)
    assert "Expected Shortfall tests and stressed VaR" in printed and "filtered_historical_garch" in printed
    for m in out["models"]:
        assert m["observations"] == 320 - 1 - 60 and 0 < m["z2_p"] <= 1 and 0 < m["mcneil_frey_p"] <= 1
        assert m["stressed_var"] > 0 and m["stressed_start"] < m["stressed_end"]
    assert out["quantile"] == VarSpec().quantile and out["book"].startswith("long_short")
    table = pd.read_csv(csv)
    assert set(table["model"]) == set(VAR_MODELS) and "volatility" in table.columns
    json.dumps(out)  # --json prints this object


def test_cmd_backtest_when_history_under_a_stress_window_then_printed_without_stressed_var(settings, capsys):
    write_lake(Lake(settings.lake_root), 120)
    args = build_parser().parse_args(["var", "backtest", "--window", "40", "--model", "historical", "-q"])

    out, code = cmd_backtest(args, settings)

    assert code == 0 and out["models"][0]["stressed_var"] is None
    assert "(under 250 days)" in capsys.readouterr().out
