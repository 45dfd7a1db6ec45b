"""
### retraining

Retrains the strategy model whenever new data lands: scheduled on the Assets `lake_prices` (emitted by
`market_data_ingest`), `stress_ledger` (emitted by `nightly_stress`) or `lake_synthetic` (emitted weekly by
`synthetic_generation`: synthetic return windows under `synthetic/run=R/`).

1. **train**: leakage-free features on Dask over the last `window_days` trading days, purged walk-forward
   evaluation (out-of-sample IC, hit rate), fit on the window less its last 250 labelled dates (the
   holdout), register a new version under `models/version=V/` (skipped while the lake holds too little
   history).
2. **promote**: champion and challenger are scored on a common holdout later than both training windows;
   the challenger becomes champion only if its daily IC there has a Newey-West t of at least 2 and beats
   the champion's with a paired Newey-West t of at least 1.96 (`models/promotion.json` records why).
3. **decide**: the champion against equal weight, minimum variance, HRP and 12-1 momentum on the dates it
   never saw, traded at D+1 with the execution lane's costs; the model trades only with IC t >= 2 and a
   significant edge over the best baseline, else the best baseline trades (`models/decision.json` records
   the table and why; `daily_rebalance` reads it).

Scoring, portfolio construction, orders and SHAP explanations run in `daily_rebalance`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from quantbridge_airflow.assets import PRICES, STRESS_LEDGER, SYNTHETIC


@dag(
    dag_id="retraining",
    schedule=(PRICES | STRESS_LEDGER | SYNTHETIC),
    start_date=pendulum.datetime(1990, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["strategy", "model", "assets"],
    default_args={"owner": "quant-research", "retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "model_kind": Param("gbm", type="string", enum=["gbm"], description="Model family to train."),
        "window_days": Param(
            750,
            type="integer",
            minimum=150,
            maximum=10000,
            description="Trading days of history in the training window.",
        ),
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Train on data up to this date; empty = the lake's last date.",
        ),
    },
)
def retraining() -> None:
    @task
    def train() -> dict[str, Any]:
        from datetime import date

        from airflow.sdk.exceptions import AirflowSkipException

        from quantbridge.errors import NoDataError
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings
        from strategy.training import retrain

        params, settings = get_current_context()["params"], airflow_settings()
        lake = Lake(settings.lake_root)
        dates = lake.price_dates()
        if not dates:
            raise AirflowSkipException(f"no prices in the lake at {lake.root}")
        as_of = date.fromisoformat(params["as_of"]) if params["as_of"] else dates[-1]
        try:
            return retrain(
                lake,
                as_of,
                params["window_days"],
                params["model_kind"],
                seed=settings.seed,
                stress_weight=settings.train_stress_weight,
                dask_scheduler=settings.dask_scheduler,
            )
        except NoDataError as exc:
            raise AirflowSkipException(str(exc)) from None

    @task
    def promote(trained: dict[str, Any]) -> dict[str, Any]:
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings
        from strategy.registry import get, promote_if_better

        lake = Lake(airflow_settings().lake_root)
        return promote_if_better(lake, get(lake, trained["version"]))

    @task
    def decide(promoted: dict[str, Any]) -> dict[str, Any]:
        from datetime import date

        from airflow.sdk.exceptions import AirflowSkipException

        from execution.market import load_adv, sqrt_impact_bps
        from execution.venues import DEFAULT_VENUES
        from quantbridge.errors import NoDataError
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings
        from strategy.costs import CostModel
        from strategy.registry import get
        from strategy.selection import decide_book

        lake = Lake(airflow_settings().lake_root)
        as_of = date.fromisoformat(get(lake, promoted["challenger"]).meta["as_of"])
        costs = CostModel.from_venues(DEFAULT_VENUES, load_adv(), sqrt_impact_bps)  # the execution lane's
        try:
            return decide_book(lake, as_of, costs)
        except NoDataError as exc:
            raise AirflowSkipException(str(exc)) from None

    decide(promote(train()))


dag = retraining()

if __name__ == "__main__":
    dag.test()
