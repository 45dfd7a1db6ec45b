"""The synthetic_generation DAG through dag.test() on a small real lake: samples, metadata and report in
synthetic/run=R/, the lake_synthetic Asset, an identical re-run that resumes from the checkpoint."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from quantbridge.lake import Lake
from quantbridge.settings import load_settings
from synthetic.pipeline import RunSpec, run_id
from tests.integration.test_synth_cli import write_prices

DAY = date(2019, 12, 31)
CONF = {"model_kind": "cgan", "beta": 0.5, "epochs": 3, "samples": 40}  # every Param, every time


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return write_prices(tmp_path_factory.mktemp("synth-lake"), date(2018, 1, 2), DAY)


def _run(conf: dict, monkeypatch, lake: Lake):
    from app.cli.backfill import _task_states, load_dag

    monkeypatch.setenv("QB_LAKE_ROOT", str(lake.root))
    dag = load_dag("synthetic_generation")
    run = dag.test(logical_date=datetime(DAY.year, DAY.month, DAY.day, 3, tzinfo=UTC), run_conf=conf)
    return str(run.state), _task_states("synthetic_generation", run.run_id), run


def _folder(lake: Lake, conf: dict):
    spec = RunSpec(
        model_kind=conf["model_kind"],
        beta=conf["beta"],
        epochs=conf["epochs"],
        samples=conf["samples"],
        seed=load_settings().seed,
        end=DAY.isoformat(),
    )
    return lake.partition("synthetic", "run", run_id(DAY, spec))


def test_dag_when_run_twice_for_a_date_then_same_samples_metadata_report_and_asset_event(
    airflow_db, lake, monkeypatch
):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    state, tasks, _ = _run(CONF, monkeypatch, lake)
    assert state == "success" and tasks == {"train": "success", "generate": "success", "evaluate": "success"}
    folder = _folder(lake, CONF)
    assert folder.name.startswith("run=2019-12-31-cgan-")
    samples = pd.read_parquet(folder / "samples.parquet")
    assert samples.shape == (40 * 5, 3 + 20) and np.isfinite(samples.iloc[:, 3:].to_numpy()).all()
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["model_version"].startswith("cgan-wgangp-2-") and metadata["config"]["beta"] == 0.5
    assert metadata["config"]["epochs"] == 3 and metadata["training"]["resumed_from_epoch"] == 0
    assert 0 <= metadata["metrics"]["discriminative_score"] <= 0.5 and 0 < metadata["metrics"]["mean_esg"] < 1
    assert metadata["training"]["data_end"] == "2019-12-31"
    assert "distributions.png" in (folder / "report" / "index.html").read_text()
    with create_session() as session:
        events = session.execute(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "lake_synthetic")
        ).scalar()
    assert events >= 1

    state, _, _ = _run(
        CONF, monkeypatch, lake
    )  # re-run of the same date: resumes (nothing left), same output
    assert state == "success"
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "samples.parquet"), samples)
    again = json.loads((folder / "metadata.json").read_text())
    assert (
        again["training"]["resumed_from_epoch"] == 3 and again["model_version"] == metadata["model_version"]
    )
    assert again["metrics"] == metadata["metrics"]


def test_dag_when_vae_chosen_then_its_own_run_folder_with_vae_samples(airflow_db, lake, monkeypatch):
    conf = {"model_kind": "vae", "beta": 0.0, "epochs": 2, "samples": 10}
    state, tasks, _ = _run(conf, monkeypatch, lake)
    assert state == "success", tasks
    folder = _folder(lake, conf)
    assert folder != _folder(lake, CONF) and "-vae-" in folder.name
    assert json.loads((folder / "metadata.json").read_text())["model_version"].startswith("vae-3-")
    assert len(pd.read_parquet(folder / "samples.parquet")) == 50


def test_dag_when_lake_has_no_prices_then_train_skips(airflow_db, tmp_path, monkeypatch):
    state, tasks, _ = _run(CONF, monkeypatch, Lake(tmp_path / "empty"))
    assert tasks["train"] == "skipped" and tasks["evaluate"] == "skipped"
