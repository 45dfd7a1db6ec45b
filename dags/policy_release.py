"""
### policy_release

Releases a change of the trading policies (Rego rules and limits) through four eyes. Nothing here changes
a limit by itself: a bundle becomes active only after two different people, neither of them the proposer,
approved it in Airflow's human-in-the-loop view (Browse > Required Actions) or over REST (`hitlDetails`).

1. **propose**: builds the bundle from `limits` (the form: a JSON object of limit changes applied to the
   active bundle) or checks the stored bundle `revision` (from `qb policy propose`); runs the Rego unit
   tests of `policies/tests/`; pushes the readable diff (rules as a unified diff, limits as
   `key: old -> new`) and the test results, which the approvals show.
2. **approve_compliance**: Approve / Reject, open only to `QB_COMPLIANCE_APPROVERS`.
3. **approve_risk**: Approve / Reject, open only to `QB_RISK_APPROVERS`.
4. **check_four_eyes**: both approved, by two different people, neither the one who triggered the run nor
   the bundle's author; otherwise the task fails and nothing is activated.
5. **activate**: writes the signed approvals beside the bundle and makes it the active revision (Redis
   `policy_active`, with its `policy_activated` audit entry in the same call); workers switch between
   batches.

A Reject skips everything after it; an approval without an answer within the response timeout fails (there
is no default answer), so a proposal nobody approved never activates. The assigned users are read from the
environment when the file is parsed (never from the Airflow Variable, which Op users can edit).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, get_current_context, task

from quantbridge_airflow.release_tasks import approval_timeout, release_assignees

COMPLIANCE, RISK = release_assignees()
_PROPOSAL = "ti.xcom_pull(task_ids='propose')"


@dag(
    dag_id="policy_release",
    schedule=None,  # started by a person: the trigger form, `qb policy propose`, or governance_monitor
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["governance", "policy", "four-eyes"],
    default_args={
        "owner": "compliance",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=10),
    },
    params={
        "revision": Param(
            None,
            type=["null", "string"],
            pattern="^[0-9a-f]{64}$",
            description="A proposed bundle revision (SHA-256 hex, from `qb policy propose`); "
            "leave empty when giving limits.",
        ),
        "limits": Param(
            None,
            type=["null", "object"],
            description='Limit changes on the active bundle, e.g. {"max_notional": 250000}; '
            "leave empty when giving a revision.",
        ),
        "reason": Param(
            "",
            type="string",
            minLength=1,
            maxLength=1000,
            description="Why the change is needed (kept in the bundle's manifest and the audit trail).",
        ),
    },
)
def policy_release() -> None:
    @task
    def propose() -> dict[str, Any]:
        from quantbridge_airflow.release_tasks import propose_release

        context = get_current_context()
        return propose_release(context["params"], context["dag_run"].triggering_user_name)

    approval: dict[str, Any] = {
        "subject": "Policy release {{ " + _PROPOSAL + "['revision'][:12] }}: {{ params.reason }}",
        "body": "{{ " + _PROPOSAL + "['body'] }}",
        "response_timeout": approval_timeout(),  # no defaults: an unanswered approval fails
        "retries": 0,  # a retry would reopen a decision already taken (or timed out)
    }
    approve_compliance = ApprovalOperator(task_id="approve_compliance", assigned_users=COMPLIANCE, **approval)
    approve_risk = ApprovalOperator(task_id="approve_risk", assigned_users=RISK, **approval)

    @task(retries=0)  # a refusal is a verdict on this run's answers: a retry would read the same ones
    def check_four_eyes(
        proposal: dict[str, Any], compliance: dict[str, Any], risk: dict[str, Any]
    ) -> list[dict[str, Any]]:
        from quantbridge_airflow.release_tasks import four_eyes

        run = get_current_context()["dag_run"]
        return four_eyes(
            proposal,
            run.triggering_user_name,
            {"approve_compliance": compliance, "approve_risk": risk},
            {"approve_compliance": COMPLIANCE, "approve_risk": RISK},
        )

    @task
    def activate(proposal: dict[str, Any], approvals: list[dict[str, Any]]) -> dict[str, Any]:
        from quantbridge_airflow.release_tasks import activate_release

        context = get_current_context()
        return activate_release(
            proposal, approvals, context["dag_run"].triggering_user_name, context["run_id"]
        )

    proposal = propose()
    proposal >> approve_compliance >> approve_risk
    approvals = check_four_eyes(proposal, approve_compliance.output, approve_risk.output)
    activate(proposal, approvals)


dag = policy_release()

if __name__ == "__main__":
    dag.test()
