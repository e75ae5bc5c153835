"""
### model_control — stop the champion now, or roll back to an earlier approved version (AI Act Art. 14(4)(e))

Triggered by hand with the form below.

- **stop** takes effect at once, without an approval: a `stop` entry in the promotion ledger (who triggered the
  run, when, the reason) and the `champion` alias removed. The service answers 503 "model stopped by WHO at
  WHEN: REASON" within seconds, without a restart; `batch_inference` refuses to score; `fairway status` shows it.
- **rollback** re-enables a version that was champion before (the form's version; empty: the stopped champion,
  else the previous one): **request_rollback** re-checks its evidence (its model files still hash to the
  ledger's record), **approve_rollback** asks a person (Airflow human-in-the-loop, like any promotion),
  **apply_rollback** appends the approval and the rollback to the ledger and moves `champion`, **package**
  rebuilds its bento. A rejection is recorded in the ledger by **record_review**.

Emits `fairway_champion_model` after a rollback. Notified to the deployment's channels (fairway_notify): the stop,
the rollback's approval request with the link to its *Required actions* page, and a failed task.
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import Param, dag, task
from fairway_assets import CHAMPION_MODEL
from fairway_common import DEFAULT_ARGS, START_DATE, usecase_param
from fairway_hitl import RecordedApprovalOperator
from fairway_notify import FairwayNotifier


def _actor(dag_run: Any) -> str:
    return f"airflow:{getattr(dag_run, 'triggering_user_name', None) or 'unknown'}"


@dag(
    dag_id="model_control",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["fairway", "governance"],
    params={
        "usecase": usecase_param(),
        "action": Param(
            "stop",
            type="string",
            enum=["stop", "rollback"],
            title="Action",
            description="stop: the champion stops serving now. rollback: re-enable an earlier champion (needs an approval).",
        ),
        "version": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]+$",
            title="Version (rollback)",
            description="The version to roll back to. Empty: the stopped champion, else the previous champion.",
        ),
        "reason": Param(
            "",
            type="string",
            minLength=5,
            title="Reason",
            description="Why: shown in every answer the stopped service refuses, and kept in the promotion ledger.",
        ),
    },  # fmt: skip
)
def model_control() -> None:
    @task.branch
    def route(params: dict[str, Any]) -> str:
        return "stop_model" if params["action"] == "stop" else "request_rollback"

    @task(on_success_callback=FairwayNotifier("model_stopped"))
    def stop_model(params: dict[str, Any], dag_run: Any = None) -> dict[str, Any]:
        from fairway.promotion import stop

        return stop(params["usecase"], params["reason"], _actor(dag_run))

    @task
    def request_rollback(params: dict[str, Any]) -> dict[str, Any]:
        from fairway.promotion import rollback_request

        return rollback_request(params["usecase"], params["version"], params["reason"])

    approve_rollback = RecordedApprovalOperator(
        task_id="approve_rollback",
        subject="Roll {{ params.usecase }} back to v{{ ti.xcom_pull(task_ids='request_rollback')['version'] }}?",
        body="{{ ti.xcom_pull(task_ids='request_rollback')['summary'] }}",
        params={"comment": Param("", type=["string", "null"], title="Comment", description="Why approve or reject.")},
        response_timeout=datetime.timedelta(days=7),
        defaults="Reject",
        notifiers=[FairwayNotifier("approval_requested")],
    )

    @task
    def apply_rollback(params: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        from fairway.promotion import approval_from_response, rollback

        request = ti.xcom_pull(task_ids="request_rollback")
        response = ti.xcom_pull(task_ids="approve_rollback", key="hitl_response")
        return rollback(params["usecase"], request, approval_from_response(response, request))

    @task(outlets=[CHAMPION_MODEL])
    def package(rolled: dict[str, Any], params: dict[str, Any], outlet_events: Any = None) -> dict[str, str]:
        from fairway.packaging import package

        packaged = package(params["usecase"], rolled["version"])
        outlet_events[CHAMPION_MODEL].extra = {"usecase": params["usecase"], "version": rolled["version"], **packaged}
        return packaged

    # not downstream of the approval: on Reject the approval skips its direct downstream, this records why
    @task(trigger_rule="all_done")
    def record_review(params: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        from fairway.promotion import approval_from_response, rollback

        request = ti.xcom_pull(task_ids="request_rollback")
        response = ti.xcom_pull(task_ids="approve_rollback", key="hitl_response")
        if not request or not response or response.get("chosen_options") == ["Approve"]:
            return {"review": "approved" if response else "none"}
        return rollback(params["usecase"], request, approval_from_response(response, request))

    branch = route()
    requested = request_rollback()
    branch >> [stop_model(), requested]
    requested >> approve_rollback
    rolled = apply_rollback()
    approve_rollback >> rolled
    package(rolled)
    rolled >> record_review()


model_control()
