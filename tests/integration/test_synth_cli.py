"""`qb synth report` on real lake prices: a small, seeded beta sweep."""

from __future__ import annotations

import json
from datetime import date

import pytest

from marketdata.feed import SkfolioFeed
from marketdata.ingest import ingest_range
from marketdata.reference import load_reference_tables
from quantbridge.cli.main import main
from quantbridge.lake import Lake
from synthetic.report import windows_from_closes


def test_qb_synth_report_when_lake_has_prices_then_mean_esg_rises_with_beta(settings, spark, capsys):
    ingest_range(settings, SkfolioFeed(), date(2018, 1, 2), date(2019, 12, 31), spark=spark)
    load_reference_tables(Lake(settings.lake_root))
    assert main(["synth", "report", "--betas", "0", "5", "--epochs", "8", "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    assert [r["beta"] for r in rows] == [0.0, 5.0] and rows[1]["mean_esg"] > rows[0]["mean_esg"]
    for row in rows:
        assert 0 <= row["discriminative_score"] <= 0.5 and row["train_seconds"] > 0
    assert out["windows"] == 100  # 501 returns in 5-day windows


def test_qb_synth_report_when_lake_empty_then_exit_2(settings, capsys):
    assert main(["synth", "report", "-q"]) == 2
    assert "qb ingest" in capsys.readouterr().err
    with pytest.raises(ValueError, match="usable daily returns"):
        windows_from_closes(__import__("pandas").DataFrame({"A": [1.0, 2.0]}))
