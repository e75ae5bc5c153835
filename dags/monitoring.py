"""
### monitoring — drift, and the outcomes of earlier decisions, for every scored month

1. **check_drift** — Evidently data drift of the month's model inputs against the training frame of the
   version that scored the month (both sides sampled above `drift.sample_rows`), and prediction drift of the
   recorded scores. Report: `reports/<usecase>/monitoring/<month>/drift.html`.
2. **check_outcomes** — the decisions whose outcomes are known by now (the month minus the label delay):
   AUC and accuracy of the recorded scores, holisticai fairness metrics per protected group of the recorded
   decisions, checked against the gate's thresholds.
3. **publish_to_evidently** — the month in Evidently's UI: the drift snapshot and the decline rate per protected
   group, into the use case's project of the Evidently workspace (`reports/evidently`, or FAIRWAY_EVIDENTLY_URL),
   where the dashboard shows them by month (`evidently ui --workspace $FAIRWAY_HOME/reports/evidently`).
4. **record_month** — summary, history row (`history.csv`), trend plot and `index.html` under
   `reports/<usecase>/monitoring/`, and an MLflow run in `fairway-<usecase>-monitoring`.
5. **needs_retraining** → **request_retraining** — only when the month drifted or the judged decisions broke
   the fairness thresholds or the minimum AUC: emits `fairway_retraining_request` with the reasons, which
   schedules `training`; the new candidate goes through `fairness_gate` and its approval.
6. **escalate** → **notify_alerts** — alerts (fairway.escalation) when the judged AUC or accuracy falls more than
   `monitoring.escalation`'s margin below the scoring version's documented level, or a protected group's decline
   rate moves beyond the gate's bounds; each alert is kept once per month and kind under
   `reports/<usecase>/monitoring/alerts/`, and sent to the deployment's notification channels.

Scheduled on `fairway_predictions` (the use case and month come with the event), or triggered by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import dag, task
from fairway_assets import PREDICTIONS, RETRAINING_REQUEST
from fairway_common import DEFAULT_ARGS, START_DATE, asset_events, month_param, triggered_by, usecase_param
from fairway_notify import notify_alerts


@dag(
    dag_id="monitoring",
    schedule=PREDICTIONS,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["fairway", "monitoring"],
    params={
        "usecase": usecase_param(),
        "month": month_param("monitor", "the month of the triggering fairway_predictions event"),
    },
)
def monitoring() -> None:
    @task
    def target(params: dict[str, Any], triggering_asset_events: Any = None) -> dict[str, str]:
        event = triggered_by(triggering_asset_events)
        month = event.get("month") or params["month"]
        carried = sorted({str(e.extra["month"]) for e in asset_events(triggering_asset_events)
                          if (e.extra or {}).get("month")})  # fmt: skip
        if len(carried) > 1:
            # the scheduler hands over every event queued since the last run: only the latest month is monitored
            logging.getLogger(__name__).warning(
                "events for %s arrived together; monitoring %s: trigger monitoring with Month for %s",
                carried, month, [m for m in carried if m != month],
            )  # fmt: skip
        if not month:
            raise ValueError("no month to monitor: give one in the form (YYYY-MM)")
        return {"usecase": event.get("usecase") or params["usecase"], "month": month}

    @task
    def check_drift(month: dict[str, str]) -> dict[str, Any]:
        from fairway.monitoring import check_drift

        return check_drift(month["usecase"], month["month"])

    @task
    def check_outcomes(month: dict[str, str]) -> dict[str, Any]:
        from fairway.monitoring import check_outcomes

        return check_outcomes(month["usecase"], month["month"])

    @task
    def publish_to_evidently(month: dict[str, str], drift: dict[str, Any]) -> dict[str, Any]:
        from fairway.monitoring import publish_month

        return publish_month(month["usecase"], drift["month"])

    @task
    def record_month(
        month: dict[str, str], drift: dict[str, Any], outcomes: dict[str, Any], run_id: str | None = None
    ) -> dict[str, Any]:
        from fairway.monitoring import record_month

        return record_month(month["usecase"], drift, outcomes, str(run_id))

    @task.short_circuit
    def needs_retraining(verdict: dict[str, Any]) -> bool:
        return bool(verdict["retraining_reasons"])

    @task(outlets=[RETRAINING_REQUEST])
    def request_retraining(verdict: dict[str, Any], outlet_events: Any = None) -> list[str]:
        outlet_events[RETRAINING_REQUEST].extra = {
            "usecase": verdict["usecase"], "month": verdict["month"], "reasons": verdict["retraining_reasons"],
        }  # fmt: skip
        return list(verdict["retraining_reasons"])

    @task
    def escalate(month: dict[str, str], verdict: dict[str, Any]) -> list[dict[str, Any]]:
        from fairway.escalation import escalate_month

        return escalate_month(verdict["usecase"], month["month"])

    month = target()
    drift = check_drift(month)
    publish_to_evidently(month, drift)
    verdict = record_month(month, drift, check_outcomes(month))
    needs_retraining(verdict) >> request_retraining(verdict)
    notify_alerts(escalate(month, verdict))


monitoring()
