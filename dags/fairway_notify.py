"""Fairway's notifications through Airflow's notifier framework (`BaseNotifier`), shared by the DAG files.

`FairwayNotifier(event)` builds the event's message (fairway.notifications) from the task's context and sends
it to every channel the deployment configures (fairway.settings.notifications):

- e-mail through the SMTP provider's `SmtpNotifier` on the Airflow connection FAIRWAY_NOTIFY_SMTP_CONN_ID
  (default `smtp_default`) to FAIRWAY_NOTIFY_EMAIL_TO,
- `WebhookNotifier`: the message as JSON, POSTed to FAIRWAY_NOTIFY_WEBHOOK_URL (with FAIRWAY_NOTIFY_WEBHOOK_TOKEN
  as a bearer token when set).

No channel configured: the message is logged, nothing is sent. A channel that fails does not stop the others;
the notifier raises afterwards, naming each failure (a task that sends alerts fails and retries; Airflow logs
a failing callback).

Used as `on_failure_callback` (run failed, in DEFAULT_ARGS), as the `notifiers` of the human-in-the-loop tasks
(approval requested), as `on_success_callback` (gate rejected, model stopped), and by the tasks that send the
alerts (`send`).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier, task

log = logging.getLogger(__name__)


class WebhookNotifier(BaseNotifier):
    """POST a JSON payload to a URL (with an optional bearer token); raises on a non-2xx answer."""

    template_fields = ()  # the payload is data, never a template

    def __init__(self, url: str, payload: dict[str, Any], token: str | None = None, timeout: float = 10.0) -> None:
        super().__init__()
        self.url, self.payload, self.token, self.timeout = url, payload, token, timeout

    def notify(self, context: Any) -> None:
        import httpx

        headers = {"User-Agent": "fairway-notifier"} | ({"Authorization": f"Bearer {self.token}"} if self.token else {})
        response = httpx.post(self.url, json=self.payload, headers=headers, timeout=self.timeout)
        response.raise_for_status()


def _no_template(text: str) -> str:
    """Text the SMTP notifier's Jinja rendering leaves as it is."""
    return "{% raw %}" + text.replace("{% endraw %}", "{ % endraw % }") + "{% endraw %}"


def channels(message: Any) -> list[tuple[str, BaseNotifier]]:
    """The deployment's channels for one message: (name, notifier)."""
    from fairway import settings

    config = settings.notifications()
    found: list[tuple[str, BaseNotifier]] = []
    if config.email_to:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        found.append(("email", SmtpNotifier(
            to=list(config.email_to), from_email=config.email_from, smtp_conn_id=config.smtp_conn_id,
            subject=_no_template(message.subject), html_content=_no_template(message.html()),
        )))  # fmt: skip
    if config.webhook_url:
        found.append(("webhook", WebhookNotifier(config.webhook_url, message.as_payload(), config.webhook_token)))
    return found


def deliver(message: Any, context: Any) -> list[str]:
    """Send one fairway.notifications.Message to every configured channel; the channels it went to."""
    sent, failed = [], []
    targets = channels(message)
    if not targets:
        log.warning("no notification channel configured (FAIRWAY_NOTIFY_EMAIL_TO, FAIRWAY_NOTIFY_WEBHOOK_URL): "
                    "not sent: %s", message.subject)  # fmt: skip
    for name, notifier in targets:
        try:
            notifier(dict(context))  # a copy: a notifier merges its fields into the context it renders
            sent.append(name)
        except Exception as error:  # noqa: BLE001 - every channel is tried, the failures are raised together
            failed.append(f"{name}: {type(error).__name__}: {error}")
    if failed:
        raise RuntimeError(f"notification {message.subject!r} not delivered by {'; '.join(failed)}")
    log.info("notified %s: %s", ",".join(sent) or "nobody", message.subject)
    return sent


def send(messages: list[dict[str, Any]], context: Any) -> list[str]:
    """Deliver messages (fairway.notifications.Message as dicts); the channels used."""
    from fairway.notifications import Message

    used: list[str] = []
    for data in messages:
        used += [name for name in deliver(Message.from_dict(data), context) if name not in used]
    return used


def _model_name(usecase: str) -> str:
    from fairway.config import resolve

    return resolve(usecase).model_name


def message_for(event: str, context: Any) -> Any:
    """The message of an event, from the task's context."""
    from fairway import notifications

    ti = context["ti"]
    usecase = str((context.get("params") or {}).get("usecase") or "")
    if event == "approval_requested":
        task = context["task"]
        answer_by = getattr(task, "hitl_summary_extra", {}).get("timeout_datetime")
        return notifications.approval_requested(usecase, ti.dag_id, ti.run_id, ti.task_id, ti.map_index,
                                                str(task.subject), str(task.body or ""), answer_by)  # fmt: skip
    if event == "run_failed":
        error = context.get("exception")
        return notifications.run_failed(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, getattr(ti, "try_number", None),
                                        type(error).__name__ if error else None, usecase or None)  # fmt: skip
    result = ti.xcom_pull(task_ids=ti.task_id)
    if event == "gate_rejected":
        return notifications.gate_rejected(usecase, _model_name(usecase), result, ti.dag_id, ti.run_id)
    if event == "model_stopped":
        return notifications.model_stopped(usecase, _model_name(usecase), result, ti.dag_id, ti.run_id)
    raise ValueError(f"FairwayNotifier cannot build {event!r} from a task's context")


class FairwayNotifier(BaseNotifier):
    """One Fairway event, built from the context, to every channel the deployment configures."""

    template_fields = ()

    def __init__(self, event: str) -> None:
        super().__init__()
        self.event = event

    def notify(self, context: Any) -> None:
        deliver(message_for(self.event, context), context)


@task
def notify_alerts(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Send the escalation alerts not notified yet (fairway.escalation) and record where they went."""
    from airflow.sdk import get_current_context

    from fairway import notifications
    from fairway.escalation import mark_notified

    context = get_current_context()
    ti = context["ti"]
    sent: dict[str, Any] = {}
    for alert in found:
        used = deliver(notifications.alert_raised(alert, ti.dag_id, ti.run_id), context)
        mark_notified(alert["usecase"], [alert["id"]], used)
        sent[alert["id"]] = used
    return sent
