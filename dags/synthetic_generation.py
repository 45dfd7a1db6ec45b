"""
### synthetic_generation

Weekly synthetic markets from the lake's real prices (issue 5):

1. **train**: the conditional GAN over 5-day x 20-asset return windows, conditioned on the volatility
   regime (`model_kind=cgan`), or the VAE over the same windows (`vae`), trained with the ESG constraint
   loss `loss + beta * (1 - esg_score)` on overlapping windows outside the held-out blocks. The checkpoint
   lives in `synthetic/run=R/checkpoint.pt`: a retry or re-run resumes from it.
2. **generate**: `samples` windows into `synthetic/run=R/samples.parquet` (simple daily returns).
3. **evaluate**: fidelity against held-out real windows (Wasserstein/KS, moments, ACFs, correlation
   distance, discriminative and predictive scores, mean ESG), the HTML report in `synthetic/run=R/report/`
   and `metadata.json` (model version, configuration, metrics); emits the Asset `lake_synthetic`, which
   schedules `retraining`.

The run id `R` is the logical date plus a digest of the Params, and every draw is seeded: re-running a
date with the same Params rewrites the same samples. Trigger from the UI with the form below, or
`airflow dags trigger synthetic_generation --conf '{"model_kind": "cgan", "beta": 0.5, "epochs": 450,
"samples": 1000}'`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from quantbridge_airflow.assets import SYNTHETIC


def _spec_and_run(context: Any, seed: int) -> tuple[Any, str]:
    from quantbridge_airflow.run_date import run_date
    from synthetic.pipeline import RunSpec, run_id

    params = context["params"]
    day = run_date(context)
    spec = RunSpec(
        model_kind=params["model_kind"],
        beta=float(params["beta"]),
        epochs=int(params["epochs"]),
        samples=int(params["samples"]),
        seed=seed,
        end=day.isoformat(),
    )
    return spec, run_id(day, spec)


@dag(
    dag_id="synthetic_generation",
    schedule="0 3 * * 6",  # Saturdays, after the week's ingests
    start_date=pendulum.datetime(1990, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["synthetic", "gan", "esg", "assets"],
    default_args={"owner": "quant-research", "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "model_kind": Param(
            "cgan",
            type="string",
            enum=["cgan", "vae"],
            description="Generator: conditional WGAN over return windows, or the VAE.",
        ),
        "beta": Param(
            0.0,
            type="number",
            minimum=0,
            description="ESG weight in the loss: loss + beta * (1 - esg_score); 0 = no tilt.",
        ),
        "epochs": Param(
            450,
            type="integer",
            minimum=1,
            maximum=2000,
            description=(
                "Training epochs (450: the sweep's default model in docs/synthetic.md, ~3 min on 2 cores)."
            ),
        ),
        "samples": Param(
            1000,
            type="integer",
            minimum=1,
            maximum=100000,
            description="Synthetic 5-day windows written to the lake.",
        ),
    },
)
def synthetic_generation() -> None:
    @task
    def train() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from quantbridge.errors import NoDataError
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings
        from synthetic.pipeline import train_run

        settings = airflow_settings()
        spec, run = _spec_and_run(get_current_context(), settings.seed)
        try:
            return train_run(Lake(settings.lake_root), run, spec)
        except NoDataError as exc:
            raise AirflowSkipException(str(exc)) from None

    @task
    def generate(trained: dict[str, Any]) -> dict[str, Any]:
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings
        from synthetic.pipeline import generate_run

        settings = airflow_settings()
        spec, run = _spec_and_run(get_current_context(), settings.seed)
        return generate_run(Lake(settings.lake_root), run, spec)

    @task(outlets=[SYNTHETIC])
    def evaluate(trained: dict[str, Any], generated: dict[str, Any]) -> dict[str, Any]:
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings
        from synthetic.pipeline import evaluate_run

        settings = airflow_settings()
        spec, run = _spec_and_run(get_current_context(), settings.seed)
        metadata = evaluate_run(Lake(settings.lake_root), run, spec, trained)
        return {
            "run": run,
            "model_version": metadata["model_version"],
            "report": metadata["report"],
            "discriminative_score": metadata["metrics"]["discriminative_score"],
            "mean_esg": metadata["metrics"]["mean_esg"],
            "samples": generated["samples"],
        }

    trained = train()
    evaluate(trained, generate(trained))


dag = synthetic_generation()

if __name__ == "__main__":
    dag.test()
