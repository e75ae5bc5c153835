"""The human-in-the-loop step shared by fairness_gate and model_control."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator


class RecordedApprovalOperator(ApprovalOperator):
    """ApprovalOperator that also keeps the response (approve or reject) in XCom key `hitl_response`:
    on Reject the stock operator skips its downstream without pushing its return value."""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            context["ti"].xcom_push(key="hitl_response", value={
                "chosen_options": event["chosen_options"], "params_input": event.get("params_input") or {},
                "responded_at": event["responded_at"], "responded_by_user": event.get("responded_by_user"),
                "timedout": event.get("timedout", False),
            })  # fmt: skip
        return super().execute_complete(context, event)
