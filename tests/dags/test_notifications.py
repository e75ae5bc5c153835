"""Notifications through real `dag.test()` runs to a real local SMTP server (aiosmtpd, through the SMTP provider's
notifier and an Airflow connection) and a real local HTTP server (the webhook): an escalation alert of the
monitoring DAG, a failed run, a pending approval with its link, a rejected retraining, a stop.

The data: a real champion, two scored months, and the outcomes of the judged month turned against the decisions
(delivered labels inverted), so that its judged accuracy collapses."""

from __future__ import annotations

import json
import sys

import pytest

from fairway import escalation
from fairway.config import BUILTIN_USECASES_DIR, load_usecase
from fairway.inference import pin_champion, score_month
from tests.champion import feature_store, isolated_home, make_champion
from tests.conftest import PROJECT
from tests.dags.assets import forget_events
from tests.dags.hitl import answer_in_background
from tests.fairway.test_escalation import invert_delivered_labels
from tests.sinks import http_sink, smtp_sink

sys.path.insert(0, str(PROJECT / "include"))
import local_runs  # noqa: E402

BASE = "https://airflow.bank.example"
TO = ["risk-owner@bank.example", "oncall@bank.example"]
MONTH = "2024-06"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, airflow_db):
    with isolated_home(tmp_path_factory, "notify-home") as home, smtp_sink() as (inbox, port), \
            http_sink() as (hooks, url), pytest.MonkeyPatch.context() as mp:  # fmt: skip
        mp.setenv("FAIRWAY_NOTIFY_EMAIL_TO", ",".join(TO))
        mp.setenv("FAIRWAY_NOTIFY_EMAIL_FROM", "fairway@bank.example")
        mp.setenv("FAIRWAY_NOTIFY_SMTP_CONN_ID", "fairway_smtp")
        mp.setenv("AIRFLOW_CONN_FAIRWAY_SMTP", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 0},
        }))  # fmt: skip
        mp.setenv("FAIRWAY_NOTIFY_WEBHOOK_URL", f"{url}/hooks/fairway")
        mp.setenv("FAIRWAY_NOTIFY_WEBHOOK_TOKEN", "test-webhook-token")
        mp.setenv("FAIRWAY_AIRFLOW_URL", BASE)
        mp.delenv("FAIRWAY_APPROVAL_MODE", raising=False)
        uc = load_usecase("credit_risk")
        feature_store(uc, customers=1500, months=6, seed=5)
        version = make_champion(uc, "2024-04", 3)
        pinned = pin_champion(uc)
        for month in ("2024-05", MONTH):
            score_month(uc, month, pinned, f"test-{month}")
        invert_delivered_labels(uc, MONTH)
        yield {"home": home, "uc": uc, "version": version, "inbox": inbox, "hooks": hooks, "mp": mp,
               "bag": local_runs.dagbag()}  # fmt: skip
        forget_events(["monitoring", "training", "fairness_gate"])  # this home's requests stay with this module


@pytest.fixture
def sinks(deployment):
    deployment["inbox"].mails.clear()
    deployment["hooks"].posts.clear()
    return deployment["inbox"], deployment["hooks"]


def _states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _check_webhook(hooks, event: str) -> dict:
    [(path, headers, body)] = [post for post in hooks.posts if post[2]["event"] == event]
    assert path == "/hooks/fairway" and headers["Authorization"] == "Bearer test-webhook-token"
    assert body["source"] == "fairway"
    return body


def test_an_alert_reaches_both_sinks_once_and_becomes_a_risk_entry(deployment, sinks) -> None:
    inbox, hooks = sinks
    uc, version = deployment["uc"], deployment["version"]
    dag = deployment["bag"].get_dag("monitoring")
    run = dag.test(run_conf={"usecase": uc.name, "month": MONTH})
    states = _states(run)
    assert run.state == "success", states
    assert states["escalate"] == "success" and states["notify_alerts"] == "success"

    [alert] = escalation.alerts(uc)
    assert alert["id"] == f"{MONTH}-performance" and alert["model_version"] == version
    subject = f"[Fairway] alert: {alert['title']} ({uc.model_name}, {MONTH})"
    assert inbox.subjects() == [subject]
    sender, recipients, mail = inbox.mails[0]
    assert sender == "fairway@bank.example" and recipients == TO
    judged = alert["details"]["breaches"]
    accuracy = next(b for b in judged if b["metric"] == "accuracy")
    assert f"accuracy {accuracy['judged']:.3f} against {accuracy['documented']:.3f} documented" in inbox.html(0)
    run_link = f"{BASE}/dags/monitoring/runs/{run.run_id.replace('+', '%2B')}"
    assert f'href="{run_link}"' in inbox.html(0)

    body = _check_webhook(hooks, "alert_raised")
    assert len(hooks.posts) == 1
    assert body["subject"] == subject and body["link"] == run_link and body["details"]["alert_id"] == alert["id"]
    assert alert["notified_at"] and alert["channels"] == ["email", "webhook"]
    entry = next(r for r in escalation.risk_register(uc, version) if r["evidence"] == f"alert {alert['id']}")
    assert entry["status"] == escalation.OPEN

    again = dag.test(run_conf={"usecase": uc.name, "month": MONTH})
    assert again.state == "success", _states(again)
    assert len(inbox.mails) == 1 and len(hooks.posts) == 1  # a rerun raises and sends nothing new
    assert [a["id"] for a in escalation.alerts(uc)] == [alert["id"]]


def test_a_failed_run_is_notified_with_the_link_to_the_task(deployment, sinks) -> None:
    inbox, hooks = sinks
    dag = deployment["bag"].get_dag("monitoring")
    run = dag.test(run_conf={"usecase": "credit_risk", "month": "2024-03"})  # never scored
    assert run.state == "failed" and _states(run)["check_drift"] == "failed"
    assert inbox.subjects() == ["[Fairway] monitoring failed: check_drift"]
    body = _check_webhook(hooks, "run_failed")
    assert len(hooks.posts) == 1
    assert body["link"] == f"{BASE}/dags/monitoring/runs/{run.run_id.replace('+', '%2B')}/tasks/check_drift"
    assert body["details"]["error"] == "MonitoringError"
    assert "C0" not in json.dumps(body)  # no customer id: the exception's text stays in the log


def _retrain(uc, trigger):
    from fairway.training import build_training_frame, register_best, train_candidate

    frame = build_training_frame(uc, "2024-05", 3, trigger=trigger)
    return str(register_best(uc, [train_candidate(uc, frame, "reweighing")])["version"])


def test_a_pending_approval_sends_one_notification_with_the_link(deployment, sinks) -> None:
    inbox, hooks = sinks
    uc = deployment["uc"]
    version = _retrain(uc, None)
    seen: dict = {}
    thread = answer_in_background("fairness_gate", "human_approval", "Reject", "not now", "carla", seen)
    run = deployment["bag"].get_dag("fairness_gate").test(run_conf={"usecase": uc.name, "version": version})
    thread.join(timeout=10)
    if "error" in seen:
        raise seen["error"]
    states = _states(run)
    assert run.state == "success" and states["human_approval"] == "success", states
    link = (f"{BASE}/dags/fairness_gate/runs/{run.run_id.replace('+', '%2B')}/tasks/human_approval"
            "/required_actions?map_index=-1")  # fmt: skip
    assert inbox.subjects() == [f"[Fairway] approval requested: {seen['subject']}"]
    assert f'href="{link}"' in inbox.html(0)
    assert f"v{version}" in inbox.html(0) and "counts as Reject" in inbox.html(0)
    body = _check_webhook(hooks, "approval_requested")
    assert len(hooks.posts) == 1 and body["link"] == link
    assert body["details"]["answer_by"]  # the 7-day timeout, when no answer counts as Reject


def test_a_rejected_retraining_notifies_the_rejection_and_the_alert(deployment, sinks, tmp_path) -> None:
    inbox, hooks = sinks
    uc, champion = deployment["uc"], deployment["version"]
    version = _retrain(uc, ["data drift in 2024-05: 4 of 9 model inputs drifted"])
    strict = tmp_path / "usecases"
    strict.mkdir()
    text = (BUILTIN_USECASES_DIR / "credit_risk.yaml").read_text()
    assert text.count("auc_min: 0.65") == 1
    (strict / "credit_risk.yaml").write_text(text.replace("auc_min: 0.65", "auc_min: 0.99"))  # nothing passes
    deployment["mp"].setenv("FAIRWAY_USECASES_DIR", str(strict))
    try:
        run = deployment["bag"].get_dag("fairness_gate").test(run_conf={"usecase": uc.name, "version": version})
    finally:
        deployment["mp"].delenv("FAIRWAY_USECASES_DIR")
    states = _states(run)
    assert run.state == "success" and states["reject_candidate"] == "success", states
    assert sorted(inbox.subjects()) == sorted([
        f"[Fairway] gate rejected {uc.model_name} v{version}",
        f"[Fairway] alert: {escalation.KINDS[escalation.RETRAINING_REJECTED]} ({uc.model_name}, 2024-05)",
    ])  # fmt: skip
    rejected = _check_webhook(hooks, "gate_rejected")
    assert any("auc_min" in reason for reason in rejected["details"]["reasons"])
    alert = _check_webhook(hooks, "alert_raised")
    assert alert["details"]["alert_id"] == "2024-05-retraining_rejected"
    assert f"v{champion} keeps serving" in alert["body"]
    assert len(hooks.posts) == 2


def test_a_stop_is_notified(deployment, sinks) -> None:
    inbox, hooks = sinks
    uc, champion = deployment["uc"], deployment["version"]
    conf = {"usecase": uc.name, "action": "stop", "version": None, "reason": "income feed broken since May"}
    run = deployment["bag"].get_dag("model_control").test(run_conf=conf)
    assert run.state == "success", _states(run)
    assert inbox.subjects() == [f"[Fairway] {uc.model_name} v{champion} stopped"]
    body = _check_webhook(hooks, "model_stopped")
    assert "income feed broken since May" in body["body"] and body["details"]["changed"] is True
    assert len(hooks.posts) == 1
