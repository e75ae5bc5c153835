"""What Fairway tells people, and where the link in it points: one message per event, plain Python.

Events:

| event | when | link |
|---|---|---|
| `approval_requested` | a human-in-the-loop approval (fairness_gate's `human_approval`, model_control's `approve_rollback`) starts waiting | the task's *Required actions* page |
| `gate_rejected` | the fairness gate rejects a candidate | the gate run |
| `alert_raised` | an escalation alert (fairway.escalation) | the run that raised it |
| `run_failed` | a task failed for good (after its retries) | the task's log |
| `model_stopped` | model_control stopped the champion | the stop run |

The links are built on the Airflow UI's address of the deployment (fairway.settings.airflow_url). Sending is the
DAGs' part (`dags/fairway_notify.py`: Airflow notifiers, SMTP through Airflow's SMTP provider and a webhook).

A message holds no personal data: ids, feature values and exception texts (which may quote a row) stay in
Airflow's logs, which the link leads to.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fairway import settings

EVENTS = ("approval_requested", "gate_rejected", "alert_raised", "run_failed", "model_stopped")
SOURCE = "fairway"


@dataclass(frozen=True)
class Message:
    event: str
    subject: str
    body: str
    link: str | None = None
    usecase: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown notification event {self.event!r}: one of {', '.join(EVENTS)}")

    def as_payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {"source": SOURCE, "sent_at": datetime.now(UTC).isoformat(), **asdict(self)}

    def text(self) -> str:
        return self.body + (f"\n\n{self.link}" if self.link else "")

    def html(self) -> str:
        """The e-mail's HTML: the body's lines escaped, the link as a link."""
        lines = "<br>\n".join(html.escape(line) for line in self.body.splitlines())
        link = f'<p><a href="{html.escape(self.link)}">{html.escape(self.link)}</a></p>' if self.link else ""
        return f"<p>{lines}</p>{link}<p><small>Fairway notification: {html.escape(self.event)}</small></p>"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(data["event"], data["subject"], data["body"], data.get("link"), data.get("usecase"),
                   dict(data.get("details") or {}))  # fmt: skip


# --- links into the Airflow UI ------------------------------------------------------------------------


def _segment(value: str) -> str:
    return quote(str(value), safe=":")


def run_link(dag_id: str, run_id: str, base: str | None = None) -> str:
    return f"{base or settings.airflow_url()}/dags/{_segment(dag_id)}/runs/{_segment(run_id)}"


def task_link(dag_id: str, run_id: str, task_id: str, map_index: int = -1, base: str | None = None) -> str:
    link = f"{run_link(dag_id, run_id, base)}/tasks/{_segment(task_id)}"
    return link + (f"/mapped/{map_index}" if map_index >= 0 else "")


def approval_link(dag_id: str, run_id: str, task_id: str, map_index: int = -1, base: str | None = None) -> str:
    """The *Required actions* page of a waiting human-in-the-loop task (the page Airflow's HITLOperator links
    to), where the approver reads the request and answers."""
    query = urlencode({"map_index": map_index})
    return f"{run_link(dag_id, run_id, base)}/tasks/{_segment(task_id)}/required_actions?{query}"


# --- the messages -------------------------------------------------------------------------------------


def approval_requested(usecase: str, dag_id: str, run_id: str, task_id: str, map_index: int, subject: str,
                       body: str, answer_by: str | None) -> Message:  # fmt: skip
    deadline = (f"Without an answer by {answer_by} (UTC) the request counts as Reject." if answer_by
                else "The request waits until someone answers.")  # fmt: skip
    text = (f"A decision is waiting for you: {subject}\n\n{body}\n\n{deadline}\n"
            "Open the link, read the evidence and choose Approve or Reject with a comment.")  # fmt: skip
    return Message("approval_requested", f"[Fairway] approval requested: {subject}", text,
                   approval_link(dag_id, run_id, task_id, map_index), usecase,
                   {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "answer_by": answer_by})  # fmt: skip


def gate_rejected(usecase: str, model_name: str, result: dict[str, Any], dag_id: str, run_id: str) -> Message:
    """The gate rejected a candidate (`result` of fairway.promotion.reject_candidate)."""
    version, reasons = str(result["version"]), list(result.get("reasons") or [])
    stays = result.get("message") or "The candidate is tagged rejected; the champion does not change."
    text = (f"The fairness gate rejected {model_name} v{version} ({usecase}).\n\nFailed rules:\n"
            + "\n".join(f"- {reason}" for reason in reasons) + f"\n\n{stays}")  # fmt: skip
    return Message("gate_rejected", f"[Fairway] gate rejected {model_name} v{version}", text,
                   run_link(dag_id, run_id), usecase,
                   {"model": model_name, "version": version, "reasons": reasons, "status": result.get("status")})  # fmt: skip


def alert_raised(alert: dict[str, Any], dag_id: str | None = None, run_id: str | None = None) -> Message:
    """An escalation alert (a record of fairway.escalation)."""
    text = (f"{alert['summary']}\n\nUse case {alert['usecase']}, model {alert['model']} v{alert['model_version']}, "
            f"month {alert['month']}; alert {alert['id']} raised at {alert['raised_at']}.\n\n"
            f"What to do: {alert['action']}")  # fmt: skip
    link = run_link(dag_id, run_id) if dag_id and run_id else f"{settings.airflow_url()}/fairway/"
    return Message("alert_raised", f"[Fairway] alert: {alert['title']} ({alert['model']}, {alert['month']})", text,
                   link, alert["usecase"], {"alert_id": alert["id"], "kind": alert["kind"], "month": alert["month"],
                                            "model_version": alert["model_version"]})  # fmt: skip


def run_failed(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int | None, error: str | None,
               usecase: str | None = None) -> Message:  # fmt: skip
    """A task failed after its retries. `error` is the exception's class name only: its text may quote data."""
    tries = f" (try {try_number})" if try_number else ""
    text = (f"Task {task_id} of {dag_id} failed{tries} in run {run_id}"
            + (f": {error}" if error else "") + ".\n\nThe run stopped there; the task's log has the details. "
            "Fix the cause and clear the task to run it again.")  # fmt: skip
    return Message("run_failed", f"[Fairway] {dag_id} failed: {task_id}", text,
                   task_link(dag_id, run_id, task_id, map_index), usecase,
                   {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "error": error})  # fmt: skip


def model_stopped(usecase: str, model_name: str, result: dict[str, Any], dag_id: str, run_id: str) -> Message:
    """model_control stopped the champion (`result` of fairway.promotion.stop)."""
    version = str(result["version"])
    state = "stopped now" if result.get("changed") else "was already stopped"
    text = (f"{model_name} v{version} ({usecase}) {state}: {result.get('message', '')}\n\nThe service refuses every "
            "request and batch_inference does not score until a rollback is approved (model_control, action "
            "rollback).")  # fmt: skip
    return Message("model_stopped", f"[Fairway] {model_name} v{version} stopped", text, run_link(dag_id, run_id),
                   usecase, {"model": model_name, "version": version, "changed": bool(result.get("changed"))})  # fmt: skip
