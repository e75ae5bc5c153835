"""
### fairness_gate — no model reaches users unless it is fair enough and a person approved it

1. **evaluate_gate** — the candidate version (alias `candidate`, or the version in the form) against the
   use case's thresholds: disparate impact, statistical parity and equal opportunity for every assessable
   protected group (at least `gate.min_group_rows` holdout rows and both outcomes, in the group and its
   reference; an attribute without any fails), minimum AUC, no worse than the champion on the same holdout beyond
   the allowed drop. The gate report (JSON + Markdown: every metric with its 95 % bootstrap interval, the groups
   not assessable with their size and reason) is attached to the version with its SHA-256.
   The result and the report's SHA-256 are appended to the promotion ledger.
2. **route** — a visible branch: `reject_candidate` (tagged rejected with the reasons; `champion` does not move;
   a version that is already champion stays champion), `human_approval` (Airflow human-in-the-loop: the approver
   sees the metric summary, each group's metrics with their intervals, the groups not assessable with their size
   and reason, and the report's hash, and approves or rejects with a comment), or `auto_approval`
   only where the deployment sets FAIRWAY_APPROVAL_MODE=auto (recorded as approver `policy:auto`; a use-case
   config cannot ask for it).
3. **promote** — appends the approval and the promotion (model files' SHA-256, training frame fingerprint, gate
   report SHA-256, code revision, approver) to the ledger, then moves `champion`: the only step that does. A
   version that is already champion stays champion and the result says so.
4. **document** — technical documentation (AI Act Annex IV headings) and model card with this version's numbers,
   instructions for use, records of processing and the impact-assessment skeleton; their SHA-256 in the ledger.
5. **package** — imports the version into the BentoML model store and builds the bento from `bento/`.
6. **record_review** — appends a human rejection to the ledger and records it on the version.
7. **escalate** → **notify_alerts** — a candidate of a retraining request (drift, broken fairness or AUC) that
   is not approved raises the `retraining_rejected` alert (the champion keeps serving), sent to the
   deployment's notification channels.

Notifications (fairway_notify): the approval request with the link to its *Required actions* page when
`human_approval` starts waiting, the gate's rejection, the alert, and a failed task.

Scheduled on `fairway_model_candidate`; emits `fairway_champion_model`.
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import Param, dag, task
from fairway_assets import CHAMPION_MODEL, MODEL_CANDIDATE
from fairway_common import DEFAULT_ARGS, START_DATE, usecase_param
from fairway_hitl import RecordedApprovalOperator
from fairway_notify import FairwayNotifier, notify_alerts


@dag(
    dag_id="fairness_gate",
    schedule=MODEL_CANDIDATE,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["fairway", "governance"],
    params={
        "usecase": usecase_param(),
        "version": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]+$",
            title="Model version",
            description="Registered version to gate. Empty: the version with alias 'candidate'.",
        ),
    },  # fmt: skip
)
def fairness_gate() -> None:
    @task
    def evaluate_gate(params: dict[str, Any]) -> dict[str, Any]:
        from fairway.promotion import gate_candidate

        return gate_candidate(params["usecase"], params["version"])

    @task.branch
    def route(gated: dict[str, Any], params: dict[str, Any]) -> str:
        from fairway.promotion import approval_mode

        if gated["decision"] != "pass":
            return "reject_candidate"
        return "auto_approval" if approval_mode(params["usecase"]) == "auto" else "human_approval"

    @task(on_success_callback=FairwayNotifier("gate_rejected"))
    def reject_candidate(gated: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        from fairway.promotion import reject_candidate

        return reject_candidate(params["usecase"], gated)

    @task
    def auto_approval(gated: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        from fairway.promotion import auto_approval

        return auto_approval(params["usecase"], gated)

    human_approval = RecordedApprovalOperator(
        task_id="human_approval",
        subject="Deploy {{ ti.xcom_pull(task_ids='evaluate_gate')['candidate'] }} as champion of {{ params.usecase }}?",
        body="{{ ti.xcom_pull(task_ids='evaluate_gate')['summary'] }}",
        params={"comment": Param("", type=["string", "null"], title="Comment", description="Why approve or reject.")},
        response_timeout=datetime.timedelta(days=7),
        defaults="Reject",
        notifiers=[FairwayNotifier("approval_requested")],
    )

    # upstream are the two approval paths only (the gate result is pulled, not passed): when the gate
    # rejected, both are skipped and so is promote
    @task(trigger_rule="none_failed_min_one_success")
    def promote(params: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        from fairway.promotion import approval_from_response, promote

        gated = ti.xcom_pull(task_ids="evaluate_gate")
        approval = ti.xcom_pull(task_ids="auto_approval")
        if approval is None:
            approval = approval_from_response(ti.xcom_pull(task_ids="human_approval", key="hitl_response"), gated)
        return promote(params["usecase"], gated, approval)

    @task
    def document(promoted: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
        from fairway.promotion import document

        return document(params["usecase"], promoted["version"])

    @task(outlets=[CHAMPION_MODEL])
    def package(
        promoted: dict[str, Any], documented: dict[str, str], params: dict[str, Any], outlet_events: Any = None
    ) -> dict[str, str]:
        from fairway.packaging import package

        packaged = package(params["usecase"], promoted["version"])
        outlet_events[CHAMPION_MODEL].extra = {"usecase": params["usecase"], "version": promoted["version"], **packaged}
        return packaged

    @task(trigger_rule="all_done")
    def record_review(gated: dict[str, Any], params: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        from fairway.promotion import approval_from_response, record_review

        response = ti.xcom_pull(task_ids="human_approval", key="hitl_response")
        approval = approval_from_response(response, gated) if response else ti.xcom_pull(task_ids="auto_approval")
        return record_review(params["usecase"], gated, approval)

    @task
    def escalate(reviewed: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
        from fairway.escalation import check_retraining

        return check_retraining(params["usecase"], reviewed["version"])

    gated = evaluate_gate()
    branch = route(gated)
    rejected, auto = reject_candidate(gated), auto_approval(gated)
    branch >> [rejected, auto, human_approval]
    promoted = promote()
    [auto, human_approval] >> promoted
    package(promoted, document(promoted))
    # not downstream of package: a failed packaging must fail the run, not be masked by this all_done task
    reviewed = record_review(gated)
    [promoted, rejected] >> reviewed
    notify_alerts(escalate(reviewed))


fairness_gate()
