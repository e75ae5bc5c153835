"""The messages Fairway sends and the links in them (fairway.notifications, fairway.settings.notifications)."""

from __future__ import annotations

import pytest

from fairway import notifications, settings


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FAIRWAY_AIRFLOW_URL", "https://airflow.bank.example/ops/")
    return "https://airflow.bank.example/ops"


def test_the_approval_link_is_the_required_actions_page_of_the_waiting_task(base) -> None:
    run_id = "asset_triggered__2031-01-02T00:00:00+00:00"
    message = notifications.approval_requested("credit_risk", "fairness_gate", run_id, "human_approval", -1,
                                               "Deploy reweighing as champion of credit_risk?", "**credit-risk v3**",
                                               "2031-01-09T00:00:00+00:00")  # fmt: skip
    assert message.link == (f"{base}/dags/fairness_gate/runs/asset_triggered__2031-01-02T00:00:00%2B00:00"
                            "/tasks/human_approval/required_actions?map_index=-1")  # fmt: skip
    assert message.subject == "[Fairway] approval requested: Deploy reweighing as champion of credit_risk?"
    assert "Without an answer by 2031-01-09T00:00:00+00:00 (UTC) the request counts as Reject." in message.body
    payload = message.as_payload()
    assert payload["event"] == "approval_requested" and payload["link"] == message.link
    assert payload["source"] == "fairway" and payload["details"]["run_id"] == run_id


def test_airflow_url_falls_back_to_airflows_base_url_then_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAIRWAY_AIRFLOW_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.internal:8080/")
    assert settings.airflow_url() == "http://airflow.internal:8080"
    monkeypatch.delenv("AIRFLOW__API__BASE_URL")
    assert notifications.run_link("monitoring", "r1") == "http://localhost:8080/dags/monitoring/runs/r1"


def test_the_email_html_is_escaped_and_a_message_round_trips(base) -> None:
    result = {"version": "4", "status": "rejected",
              "reasons": ["statistical_parity_difference [sex: female vs male] = -0.2, required |x| <= 0.1: FAIL",
                          "a <script> in a reason"]}  # fmt: skip
    message = notifications.gate_rejected("credit_risk", "credit-risk", result, "fairness_gate", "manual__1")
    assert "- statistical_parity_difference [sex: female vs male] = -0.2, required |x| <= 0.1: FAIL" in message.body
    assert "<script>" not in message.html() and "&lt;script&gt;" in message.html()
    assert f'<a href="{base}/dags/fairness_gate/runs/manual__1">' in message.html()
    assert notifications.Message.from_dict(message.as_payload()) == message


def test_a_failed_run_names_the_task_and_the_error_class_not_its_text(base) -> None:
    message = notifications.run_failed("feature_pipeline", "scheduled__2024-07-01", "validate", 2, 3, "ValueError")
    assert message.link == f"{base}/dags/feature_pipeline/runs/scheduled__2024-07-01/tasks/validate/mapped/2"
    assert "Task validate of feature_pipeline failed (try 3) in run scheduled__2024-07-01: ValueError." in message.body


def test_stop_and_alert_messages(base) -> None:
    stopped = notifications.model_stopped("credit_risk", "credit-risk", {
        "version": "2", "changed": True, "message": "model stopped by airflow:olga at 2031-01-01: income feed broken"},
        "model_control", "manual__2")  # fmt: skip
    assert stopped.subject == "[Fairway] credit-risk v2 stopped" and "income feed broken" in stopped.body
    alert = {"id": "2024-09-performance", "usecase": "credit_risk", "model": "credit-risk", "model_version": "1",
             "kind": "performance", "title": "judged performance below the documented level", "month": "2024-09",
             "raised_at": "2031-01-01T00:00:00+00:00", "summary": "accuracy 0.633 against 0.709 documented",
             "action": "retrain, roll back or stop"}  # fmt: skip
    message = notifications.alert_raised(alert)
    assert message.link == f"{base}/fairway/"  # no run: the Fairway view
    assert message.subject == "[Fairway] alert: judged performance below the documented level (credit-risk, 2024-09)"
    assert "accuracy 0.633 against 0.709 documented" in message.body and message.details["alert_id"] == alert["id"]
    with pytest.raises(ValueError, match="unknown notification event"):
        notifications.Message("drift", "s", "b")


def test_notification_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAIRWAY_NOTIFY_EMAIL_TO", "FAIRWAY_NOTIFY_WEBHOOK_URL", "FAIRWAY_NOTIFY_SMTP_CONN_ID"):
        monkeypatch.delenv(name, raising=False)
    assert settings.notifications().channels == []
    monkeypatch.setenv("FAIRWAY_NOTIFY_EMAIL_TO", " risk@bank.example, ,oncall@bank.example ")
    monkeypatch.setenv("FAIRWAY_NOTIFY_WEBHOOK_URL", "https://hooks.bank.example/fairway")
    config = settings.notifications()
    assert config.email_to == ("risk@bank.example", "oncall@bank.example")
    assert config.channels == ["email", "webhook"] and config.smtp_conn_id == "smtp_default"
    monkeypatch.setenv("FAIRWAY_NOTIFY_WEBHOOK_URL", "file:///etc/passwd")
    with pytest.raises(settings.SettingsError, match="http"):
        settings.notifications()
    monkeypatch.setenv("FAIRWAY_NOTIFY_WEBHOOK_URL", "https://hooks.bank.example/CHANGE-ME")
    with pytest.raises(settings.SettingsError, match="placeholder"):
        settings.notifications()
