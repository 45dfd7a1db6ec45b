"""
### governance_monitor

The governance feedback loop, every weeknight after the other nightly DAGs (ingest 22:00, stress 23:30,
rebalance 23:45). It measures, on the lake and Redis:

1. **measure_drift**: feature drift of the champion model, its training window against the last 20 lake
   dates: PSI per feature (bins at the training window's quantiles, bands 0.10 / 0.25) and KS p-values,
   pooled over the universe and per name;
2. **measure_ic**: the champion's live rank IC (Spearman of its predictions vs next-day returns) over the
   last 60 dates against the out-of-sample IC recorded at training;
3. **measure_var**: VaR exceptions of the traded book (Redis positions, the live VaR model) over the last 250
   lake dates, hence the Basel zone (green <= 4, yellow 5-9, red >= 10);
4. **measure_costs**: execution cost (fees plus slippage, bps of notional) of the recent fills against their
   trailing baseline;
5. **read_limits**: the approved limits of `policies/` and those of the active bundle.

**decide** applies the thresholds of `governance/thresholds.json` (a pure function). **propose**, on a breach,
stores a signed bundle with tighter limits (yellow/red zone: lower `max_order_notional` and
`max_position_shares`; a drifted name joins `restricted`; costlier execution: lower `max_order_notional`)
and records the proposal, a model demotion included, under `governance/date=D/proposal.json` in the lake.
Nothing is activated: the returned revision enters the four-eyes `policy_release` DAG. Thresholds and their
reasons: docs/governance.md, "Governance monitor".
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    dag_id="governance_monitor",
    schedule="55 23 * * 1-5",  # after ingest (22:00), nightly_stress (23:30), daily_rebalance (23:45)
    start_date=pendulum.datetime(1990, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["governance", "drift", "risk", "policy"],
    default_args={"owner": "compliance", "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Date to monitor (YYYY-MM-DD); empty = the run's logical date.",
        ),
    },
)
def governance_monitor() -> None:
    @task
    def measure_drift() -> dict[str, Any]:
        from governance.measures import feature_drift
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.run_date import run_date

        day = run_date(get_current_context())
        return feature_drift(Lake(airflow_settings().lake_root), day)

    @task
    def measure_ic() -> dict[str, Any]:
        from governance.measures import live_ic
        from quantbridge.lake import Lake
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.run_date import run_date

        day = run_date(get_current_context())
        return live_ic(Lake(airflow_settings().lake_root), day)

    @task
    def measure_var() -> dict[str, Any]:
        from governance.measures import var_exceptions
        from quantbridge.lake import Lake
        from quantbridge.redis_schema import RedisSchema
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client
        from quantbridge_airflow.run_date import run_date

        settings, day = airflow_settings(), run_date(get_current_context())
        return var_exceptions(
            Lake(settings.lake_root),
            redis_client(),
            RedisSchema(settings.redis_prefix),
            day,
            model=settings.var_model,
            confidence=settings.var_confidence,
            window=settings.var_window,
        )

    @task
    def measure_costs() -> dict[str, Any]:
        from governance.measures import cost_drift
        from quantbridge.redis_schema import RedisSchema
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client
        from quantbridge_airflow.run_date import run_date

        settings, day = airflow_settings(), run_date(get_current_context())
        return cost_drift(redis_client(), RedisSchema(settings.redis_prefix), day)

    @task
    def read_limits() -> dict[str, Any]:
        from governance.monitor import current_limits
        from quantbridge.lake import Lake
        from quantbridge.redis_schema import RedisSchema
        from quantbridge.signing import keyring
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client

        settings = airflow_settings()
        return current_limits(
            Lake(settings.lake_root),
            keyring(settings, "policy"),
            redis_client(),
            RedisSchema(settings.redis_prefix),
        )

    @task
    def decide(
        drift: dict[str, Any],
        ic: dict[str, Any],
        var_backtest: dict[str, Any],
        costs: dict[str, Any],
        limits: dict[str, Any],
    ) -> dict[str, Any] | None:
        """The pure decision: the proposal as a dict, or None when nothing is breached."""
        from governance.monitor import decide_dict

        return decide_dict({"drift": drift, "ic": ic, "var": var_backtest, "costs": costs, "limits": limits})

    @task
    def propose(
        proposal: dict[str, Any] | None,
        drift: dict[str, Any],
        ic: dict[str, Any],
        var_backtest: dict[str, Any],
        costs: dict[str, Any],
        limits: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Store the proposed bundle and the proposal document; returns the revision and the reason (None:
        nothing to propose)."""
        from governance.monitor import submit
        from quantbridge.lake import Lake
        from quantbridge.redis_schema import RedisSchema
        from quantbridge.signing import keyring
        from quantbridge_airflow.config import airflow_settings
        from quantbridge_airflow.redis_state import redis_client
        from quantbridge_airflow.run_date import run_date

        settings, day = airflow_settings(), run_date(get_current_context())
        return submit(
            Lake(settings.lake_root),
            day,
            proposal,
            {"drift": drift, "ic": ic, "var": var_backtest, "costs": costs, "limits": limits},
            keyring(settings, "policy"),
            redis_client(),
            RedisSchema(settings.redis_prefix),
        )

    drift, ic, var_backtest, costs, limits = (
        measure_drift(),
        measure_ic(),
        measure_var(),
        measure_costs(),
        read_limits(),
    )
    # "var" names Airflow's Variable accessor in the task context: the VaR findings travel as var_backtest
    propose(decide(drift, ic, var_backtest, costs, limits), drift, ic, var_backtest, costs, limits)


dag = governance_monitor()

if __name__ == "__main__":
    dag.test()
