"""Escalation on real data: a real champion (MLflow registry, ledger), real monthly scoring and the real monitoring
steps. The outcomes of the judged month are turned against the decisions (its delivered labels inverted), as
when the population changes after training: its judged accuracy collapses."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fairway import escalation, ledger, promotion, registry
from fairway.config import load_usecase, paths
from fairway.features.store import write_offline_partition
from fairway.inference import pin_champion, score_month
from fairway.markdown import ragged_rows
from fairway.monitoring import check_drift, check_outcomes, month_dir, record_month
from fairway.training import build_training_frame, register_best, train_candidate
from tests.champion import feature_store, isolated_home, make_champion

SCORED = ["2024-05", "2024-06"]
MONTH = "2024-06"  # judges the decisions of 2024-05, whose outcomes arrive with 2024-06's labels


def invert_delivered_labels(uc, month: str) -> None:
    """The outcomes delivered in `month` turned over (1 - label), written back through the feature pipeline's
    own step."""
    path = paths().raw_month(uc.name, month) / "labels.parquet"
    labels = pd.read_parquet(path)
    labels[uc.label.feature] = 1 - labels[uc.label.feature]
    labels.to_parquet(path, index=False)
    write_offline_partition(uc, month)


def monitor(uc, month: str) -> dict:
    return record_month(uc, check_drift(uc, month), check_outcomes(uc, month), f"test-{month}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with isolated_home(tmp_path_factory, "escalation-home") as home:
        uc = load_usecase("credit_risk")
        feature_store(uc, customers=1500, months=6, seed=5)
        version = make_champion(uc, "2024-04", 3)
        pinned = pin_champion(uc)
        for month in SCORED:
            score_month(uc, month, pinned, f"test-{month}")
        invert_delivered_labels(uc, MONTH)
        monitor(uc, MONTH)
        yield {"home": home, "uc": uc, "version": version}


def _outcomes(uc, month: str) -> dict:
    return json.loads((month_dir(uc, month) / "outcomes.json").read_text())


def test_a_month_whose_judged_accuracy_drops_raises_the_alert_and_a_risk_entry(world) -> None:
    uc, version = world["uc"], world["version"]
    documented = escalation.documented_level(uc, version)
    metrics = registry.run_metrics(str(registry.get_version(uc, version).run_id))
    assert documented == {"auc": metrics.auc, "accuracy": metrics.accuracy}
    judged = _outcomes(uc, MONTH)["metrics"]
    assert judged["accuracy"] < documented["accuracy"] - uc.monitoring.escalation.accuracy_margin

    pending = escalation.escalate_month(uc, MONTH)
    performance = [a for a in pending if a["kind"] == escalation.PERFORMANCE]
    assert len(performance) == 1
    alert = performance[0]
    assert alert["id"] == f"{MONTH}-performance" and alert["model_version"] == version
    assert alert["notified_at"] is None
    breach = {b["metric"]: b for b in alert["details"]["breaches"]}
    assert breach["accuracy"]["judged"] == pytest.approx(judged["accuracy"])
    assert breach["accuracy"]["documented"] == pytest.approx(documented["accuracy"])
    assert f"accuracy {judged['accuracy']:.3f} against {documented['accuracy']:.3f}" in alert["summary"]
    stored = json.loads((escalation.alerts_dir(uc) / f"{MONTH}-performance.json").read_text())
    assert stored == alert
    assert alert["details"]["judged_month"] == "2024-05"

    register = escalation.risk_register(uc, version)
    entry = next(r for r in register if r["source"] == "monitoring" and f"alert {alert['id']}" == r["evidence"])
    assert entry["status"] == escalation.OPEN
    text = escalation.risk_register_markdown(uc, version)
    assert alert["summary"].split(":")[0] in text and not ragged_rows(text)


def test_escalation_is_idempotent_per_month_and_kind(world) -> None:
    uc = world["uc"]
    first = escalation.alerts(uc)
    again = escalation.escalate_month(uc, MONTH)
    assert escalation.alerts(uc) == first
    assert {a["id"] for a in again} == {a["id"] for a in first if a["month"] == MONTH}
    escalation.mark_notified(uc, [a["id"] for a in again], ["email", "webhook"])
    assert escalation.escalate_month(uc, MONTH) == []  # notified: a rerun sends nothing
    raised = {a["id"]: a["raised_at"] for a in escalation.alerts(uc)}
    assert raised == {a["id"]: a["raised_at"] for a in first}
    assert all(a["channels"] == ["email", "webhook"] for a in escalation.alerts(uc) if a["month"] == MONTH)
    files = sorted(p.name for p in escalation.alerts_dir(uc).iterdir())
    assert files == sorted(f"{a['id']}.json" for a in first)  # no temporary file left behind


def test_a_group_decline_rate_beyond_the_gate_bounds_raises_an_alert(world) -> None:
    uc = world["uc"]
    fairness = _outcomes(uc, MONTH)["metrics"]["fairness"]
    assert escalation.decline_rate_breaches(uc, fairness) == []  # the champion's decisions keep the gate's bounds
    lowest = min(fairness, key=lambda g: g["disparate_impact"])
    bound = round(lowest["disparate_impact"] + 1e-6, 9)  # just above the lowest approval ratio: that group breaks it
    strict = uc.model_copy(update={"gate": uc.gate.model_copy(update={"disparate_impact_min": bound})})
    expected = {(g["attribute"], g["group"]) for g in fairness if g["disparate_impact"] < bound
                or g["disparate_impact"] > strict.gate.disparate_impact_max
                or abs(g["statistical_parity"]) > strict.gate.statistical_parity_max_abs}  # fmt: skip
    assert (lowest["attribute"], lowest["group"]) in expected

    pending = escalation.escalate_month(strict, MONTH)
    alert = next(a for a in pending if a["kind"] == escalation.DECLINE_RATE)
    groups = alert["details"]["groups"]
    assert {(g["attribute"], g["group"]) for g in groups} == expected
    flagged = next(g for g in groups if (g["attribute"], g["group"]) == (lowest["attribute"], lowest["group"]))
    assert flagged["decline_rate"] == pytest.approx(1 - lowest["selection_rate_group"])
    assert flagged["reference_decline_rate"] == pytest.approx(1 - lowest["selection_rate_reference"])
    assert (
        f"{lowest['attribute']} {lowest['group']} declined {1 - lowest['selection_rate_group']:.1%}" in alert["summary"]
    )


def _retrain(uc, trigger: list[str] | None, candidate: str = "reweighing") -> str:
    frame = build_training_frame(uc, "2024-05", 3, trigger=trigger)
    return str(register_best(uc, [train_candidate(uc, frame, candidate)])["version"])


def test_a_rejected_retraining_raises_an_alert_and_the_champion_keeps_serving(world) -> None:
    uc, champion = world["uc"], world["version"]
    strict = uc.model_copy(update={"gate": uc.gate.model_copy(update={"auc_min": 0.99})})  # nothing passes
    manual = _retrain(uc, None)
    gated = promotion.gate_candidate(strict, manual)
    assert gated["decision"] == "reject"
    promotion.reject_candidate(strict, gated)
    assert escalation.check_retraining(uc, manual) == []  # a manual training is no escalation

    reasons = ["data drift in 2024-05: 4 of 9 model inputs drifted"]
    retrained = _retrain(uc, reasons)
    gated = promotion.gate_candidate(strict, retrained)
    assert gated["decision"] == "reject"
    promotion.reject_candidate(strict, gated)
    pending = escalation.check_retraining(uc, retrained)
    assert [a["id"] for a in pending] == ["2024-05-retraining_rejected"]
    alert = pending[0]
    assert alert["model_version"] == champion and alert["details"]["candidate_version"] == retrained
    assert ledger.state(uc.model_name).serving == champion
    assert f"v{champion} keeps serving" in alert["summary"] and "auc_min" in alert["summary"]
    assert escalation.check_retraining(uc, retrained) == pending  # not notified yet: still pending, not duplicated
    assert [a["id"] for a in escalation.alerts(uc)].count("2024-05-retraining_rejected") == 1

    register = escalation.risk_register(uc, champion)
    retraining = [r for r in register if r["source"] == "retraining"]
    assert len(retraining) == 1 and f"candidate v{retrained}" in retraining[0]["risk"]
    assert (
        retraining[0]["status"] == escalation.OPEN and "alert 2024-05-retraining_rejected" in retraining[0]["evidence"]
    )
    own = escalation.risk_register(uc, retrained)
    assert own and all(r["source"] == "gate" and r["status"] == escalation.MITIGATED for r in own)
    assert any("auc_min" in r["risk"] for r in own)


def test_statuses_follow_acceptance_and_a_later_approved_version(world) -> None:
    uc, champion = world["uc"], world["version"]
    escalation.escalate_month(uc, MONTH)
    alert_id = f"{MONTH}-performance"
    with pytest.raises(escalation.EscalationError, match="reason"):
        escalation.accept_alert(uc, alert_id, "risk-owner", "")
    escalation.accept_alert(uc, alert_id, "risk-owner", "outcomes of May under review with the data provider")
    entry = next(r for r in escalation.risk_register(uc, champion) if r["evidence"] == f"alert {alert_id}")
    assert entry["status"] == escalation.ACCEPTED and "risk-owner" in entry["status_reason"]

    replacement = make_champion_from_current_data(uc)
    for row in escalation.risk_register(uc, champion):
        if row["source"] in ("monitoring", "retraining"):
            assert row["status"] == escalation.MITIGATED, row
            assert f"v{replacement} replaced it" in row["status_reason"]


def make_champion_from_current_data(uc) -> str:
    version = _retrain(uc, None)
    gated = promotion.gate_candidate(uc, version)
    assert gated["decision"] == "pass", gated["reasons"]
    promotion.promote(uc, gated, promotion.approval_from_response(
        {"chosen_options": ["Approve"], "params_input": {"comment": "replaces the drifting champion"},
         "responded_at": "2031-02-01T00:00:00+00:00", "responded_by_user": {"id": "r", "name": "reviewer"}}, gated))  # fmt: skip
    return version


def test_the_monitoring_plan_has_the_real_thresholds_and_marks_what_the_provider_writes(world, monkeypatch) -> None:
    uc, version = world["uc"], world["version"]
    monkeypatch.setenv("FAIRWAY_NOTIFY_EMAIL_TO", "risk@bank.example, oncall@bank.example")
    monkeypatch.setenv("FAIRWAY_NOTIFY_WEBHOOK_URL", "https://hooks.example.org/services/T0/SECRETPATH")
    text = escalation.monitoring_plan_markdown(uc, version)
    level = escalation.documented_level(uc, version)
    e = uc.monitoring.escalation
    assert f"< {level['accuracy'] - e.accuracy_margin:.3f} (margin {e.accuracy_margin})" in text
    assert f"< {level['auc'] - e.auc_margin:.3f} (margin {e.auc_margin})" in text
    assert f">= {uc.drift.share_of_drifted_columns_max}" in text
    assert f"outside [{uc.gate.disparate_impact_min}, {uc.gate.disparate_impact_max}]" in text
    assert "risk@bank.example, oncall@bank.example" in text
    assert "https://hooks.example.org" in text and "SECRETPATH" not in text
    assert text.count(escalation.TO_COMPLETE) >= 2 and "## Serious incidents (Art. 73)" in text
    assert f"{MONTH}-performance" in text  # the alerts so far
    assert not ragged_rows(text)
    monkeypatch.delenv("FAIRWAY_NOTIFY_EMAIL_TO")
    monkeypatch.delenv("FAIRWAY_NOTIFY_WEBHOOK_URL")
    assert "**nobody**" in escalation.monitoring_plan_markdown(uc, version)


def test_cli_lists_the_alerts_and_records_an_acceptance(world, capsys) -> None:
    from fairway.cli import main

    uc = world["uc"]
    assert main(["alerts"]) == 0
    out = capsys.readouterr().out
    for alert in escalation.alerts(uc):
        assert alert["id"] in out and alert["summary"] in out
    alert_id = f"{MONTH}-{escalation.DECLINE_RATE}"
    assert main(["alerts", "--accept", alert_id, "--by", "dora", "--reason", "bounds tightened for the test"]) == 0
    assert "accepted by dora" in capsys.readouterr().out
    [accepted] = [a for a in escalation.alerts(uc) if a["id"] == alert_id]
    assert accepted["accepted"]["by"] == "dora" and accepted["accepted"]["reason"] == "bounds tightened for the test"
    assert main(["alerts", "--json"]) == 0
    assert {a["id"] for a in json.loads(capsys.readouterr().out)} == {a["id"] for a in escalation.alerts(uc)}


def test_the_fairway_view_lists_every_alert_with_its_state(world) -> None:
    from fairway.ui import alerts_section

    uc = world["uc"]
    escalation.escalate_month(uc, MONTH)
    html = alerts_section(uc)
    found = escalation.alerts(uc)
    assert found and html.count("<tr><td>") == len(found)
    for alert in found:
        assert alert["id"] in html
        if alert.get("accepted"):
            assert alert["accepted"]["by"] in html
