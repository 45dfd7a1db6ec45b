"""
### daily_rebalance

Scores the universe with the champion model (registered by `retraining`), builds mean-variance target
weights (Ledoit-Wolf covariance; long-only, 15% position cap, 50% turnover limit), turns target weights
minus the positions in Redis (`qb:positions`) into orders on the `qb:orders` stream, and stores each
order's SHAP explanation in `qb:orders:explanations` (`qb explain ORDER_ID`). When the book decision of
`retraining` (`models/decision.json`) says no model beat the best baseline with significance, it trades
that baseline's weights instead (equal weight, minimum variance, HRP or 12-1 momentum; strategy
`baseline_<name>`, the decision's reason stored with each order). Re-running a date
publishes nothing twice (order ids are `date:strategy:ticker:model_version`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    dag_id="daily_rebalance",
    schedule="45 23 * * 1-5",  # after ingest (22:00) and the nightly stress (23:30)
    start_date=pendulum.datetime(1990, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["strategy", "orders", "shap"],
    default_args={"owner": "quant-research", "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Rebalance as of this date; empty = the run's logical date.",
        ),
        "portfolio_value": Param(
            1000000,
            type="number",
            minimum=10000,
            description="Book value used when Redis holds no positions.",
        ),
        "max_weight": Param(0.15, type="number", exclusiveMinimum=0, maximum=1, description="Position cap."),
        "max_turnover": Param(
            0.5,
            type="number",
            exclusiveMinimum=0,
            maximum=2,
            description="Sum of |target - current| weights.",
        ),
    },
)
def daily_rebalance() -> None:
    @task
    def emit_orders() -> dict[str, Any]:

        from airflow.sdk.exceptions import AirflowSkipException

        from quantbridge.errors import NoDataError
        from quantbridge.lake import Lake
        from quantbridge.redis_schema import RedisSchema
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client
        from quantbridge_airflow.run_date import run_date
        from strategy.portfolio import Constraints
        from strategy.rebalance import rebalance

        context = get_current_context()
        params, settings = context["params"], airflow_settings()
        day = run_date(context)
        try:
            return rebalance(
                Lake(settings.lake_root),
                redis_client(),
                RedisSchema(settings.redis_prefix),
                day,
                float(params["portfolio_value"]),
                Constraints(max_weight=params["max_weight"], max_turnover=params["max_turnover"]),
            )
        except NoDataError as exc:
            raise AirflowSkipException(str(exc)) from None

    emit_orders()


dag = daily_rebalance()

if __name__ == "__main__":
    dag.test()
