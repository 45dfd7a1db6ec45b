"""`qb synth train|sample|report` on real prices in a lake (bundled S&P 500 closes, 2018-2019)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from app.cli.main import main
from marketdata.feed import SkfolioFeed
from marketdata.reference import load_reference_tables
from quantbridge.lake import Lake


def write_prices(root: Path, start: date, end: date) -> Lake:
    """Real closes written as published price partitions plus the reference tables (no Spark needed:
    the synthetic lane only reads the lake)."""
    lake = Lake(root)
    prices = SkfolioFeed().fetch(start, end)
    for day, frame in prices.groupby("date"):
        folder = lake.price_partition(day)
        folder.mkdir(parents=True, exist_ok=True)
        frame[["ticker", "close"]].to_parquet(folder / "part-00000.parquet", index=False)
    load_reference_tables(lake)
    return lake


def _qb(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(["synth", *argv])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 and "--json" in argv else {}), captured.err


def test_qb_synth_train_then_sample_when_lake_has_prices_then_checkpoint_resumes_and_samples_are_returns(
    settings, capsys, tmp_path
):
    write_prices(settings.lake_root, date(2018, 1, 2), date(2019, 12, 31))
    code, out, err = _qb(capsys, "train", "--run", "t", "--epochs", "2", "--json")
    assert code == 0 and out["resumed_from_epoch"] == 0 and out["epochs"] == 2 and out["train_seconds"] > 0
    assert "epoch" in err and "2/2" in err  # the tqdm bar on stderr
    assert (Lake(settings.lake_root).partition("synthetic", "run", "t") / "checkpoint.pt").is_file()
    assert out["test_windows"] == 32 and out["train_windows"] > 200
    code, again, _ = _qb(capsys, "train", "--run", "t", "--epochs", "3", "--json", "-q")
    assert code == 0 and again["resumed_from_epoch"] == 2 and again["version"] != out["version"]

    target = tmp_path / "s.parquet"
    code, sampled, _ = _qb(capsys, "sample", "--run", "t", "--n", "30", "--out", str(target), "--json")
    frame = pd.read_parquet(target)
    assert code == 0 and sampled["shape"] == [30, 5, 20] and sampled["samples"] == str(target)
    assert frame.shape == (150, 23) and list(frame.columns[:3]) == ["sample", "day", "regime"]
    values = frame.iloc[:, 3:].to_numpy()
    assert np.isfinite(values).all() and 0.002 < np.abs(values).mean() < 0.05  # simple daily returns
    assert 0 < sampled["mean_esg"] < 1


def test_qb_synth_report_when_lake_has_prices_then_mean_esg_rises_with_beta_and_html_written(
    settings, capsys, tmp_path
):
    write_prices(settings.lake_root, date(2018, 1, 2), date(2019, 12, 31))
    code, out, _ = _qb(
        capsys,
        "report",
        "--betas",
        "0",
        "20",
        "--epochs",
        "3",
        "--out",
        str(tmp_path / "rep"),
        "--json",
        "-q",
    )
    rows = out["rows"]
    assert (
        code == 0 and [r["beta"] for r in rows] == [0.0, 20.0] and rows[1]["mean_esg"] > rows[0]["mean_esg"]
    )
    for row in rows:
        assert 0 <= row["discriminative_score"] <= 0.5 and row["train_seconds"] > 0
        assert row["discriminative_score"] == max(row["discriminative_flat"], row["discriminative_features"])
    page = Path(out["report"]).read_text()
    assert "qb synth report --betas 0 20 --epochs 3" in page and (tmp_path / "rep" / "sweep.png").is_file()
    # the fidelity table of the first beta shows the same discriminative score as the sweep's first row
    assert f"<td>discriminative_score</td><td>{rows[0]['discriminative_score']:.4f}</td>" in page


def test_qb_synth_report_when_model_vae_then_the_vae_is_swept_and_named_in_the_command(
    settings, capsys, tmp_path
):
    write_prices(settings.lake_root, date(2018, 1, 2), date(2019, 12, 31))
    code, out, _ = _qb(
        capsys,
        "report",
        "--model",
        "vae",
        "--betas",
        "0",
        "4",
        "--epochs",
        "5",
        "--out",
        str(tmp_path / "vae"),
        "--json",
        "-q",
    )
    rows = out["rows"]
    assert code == 0 and out["model"] == "vae" and rows[1]["mean_esg"] > rows[0]["mean_esg"]
    assert "qb synth report --model vae --betas 0 4 --epochs 5" in Path(out["report"]).read_text()


def test_qb_synth_when_lake_empty_or_input_bad_then_exit_codes_and_messages_name_the_field(settings, capsys):
    code, _, err = _qb(capsys, "report", "-q")
    assert code == 1 and "qb ingest" in err
    write_prices(settings.lake_root, date(2019, 1, 2), date(2019, 12, 31))
    code, _, err = _qb(capsys, "sample", "--run", "nothing-here")
    assert code == 2 and "run='nothing-here'" in err and "train it first" in err
    code, _, err = _qb(capsys, "train", "--beta", "-1")
    assert code == 2 and "beta=-1.0" in err
    code, _, err = _qb(capsys, "sample", "--n", "0")
    assert code == 2 and "samples=0" in err
    code, _, err = _qb(capsys, "report", "--betas", "-2")
    assert code == 2 and "--betas" in err
    code, _, err = _qb(capsys, "report", "--epochs", "0")
    assert code == 2 and "--epochs" in err
