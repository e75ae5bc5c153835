"""Escalation: the alerts monitoring raises, the risk register (AI Act Art. 9) and the post-market monitoring plan
(Art. 72, 73).

An alert is raised

- `performance`: when a month's judged decisions (fairway.monitoring.check_outcomes) reach an AUC or an accuracy
  more than `monitoring.escalation.auc_margin` / `accuracy_margin` below the level documented for the version
  that made them: its gate evaluation on the holdout;
- `decline_rate`: when the decline rate of an assessable protected group, against its reference group, moves
  beyond the gate's bounds (the approval-rate ratio outside [disparate_impact_min, disparate_impact_max], or the
  approval-rate difference beyond statistical_parity_max_abs);
- `retraining_rejected`: when a retraining asked for by monitoring (drift, broken fairness or AUC) produces no
  approved model: the gate or the approver rejected the candidate, and the champion that caused the request
  keeps serving.

Each alert is one JSON file, `FAIRWAY_HOME/reports/<usecase>/monitoring/alerts/<month>-<kind>.json`, written
atomically and once per month and kind: a rerun finds it and adds nothing. It records whether and where it
was notified (the DAGs send it, fairway.notifications builds the message) and, if a person accepted the risk,
who and why. It holds no personal data.

The risk register of a version lists the failed and unassessable gate rules of the version, the rejected
candidates trained beside it, the alerts raised while it scored and the rejected retrainings that were to
replace it, each with a status: `open`, `mitigated` (the version never served, a later approved version
replaced it, or it was stopped) or `accepted` (a person approved it knowing the risk, or accepted the alert).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fairway import gate, ledger, registry, settings
from fairway.config import UseCase, month_str, resolve
from fairway.data import write_atomic
from fairway.markdown import table
from fairway.monitoring import json_safe, monitoring_dir, month_dir

log = logging.getLogger(__name__)

PERFORMANCE, DECLINE_RATE, RETRAINING_REJECTED = "performance", "decline_rate", "retraining_rejected"
KINDS = {
    PERFORMANCE: "judged performance below the documented level",
    DECLINE_RATE: "a protected group's decline rate beyond the gate's bounds",
    RETRAINING_REJECTED: "a retraining produced no approved model",
}
OPEN, MITIGATED, ACCEPTED = "open", "mitigated", "accepted"
TO_COMPLETE = "**To be completed by the provider:**"


def _now() -> str:
    """UTC now, in the ledger's format (comparable with its `recorded_at` as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class EscalationError(RuntimeError):
    """An alert cannot be found or changed as asked."""


# --- alerts on disk ----------------------------------------------------------------------------------


def alerts_dir(uc: UseCase) -> Path:
    return monitoring_dir(uc) / "alerts"


def alert_path(uc: UseCase, month: str, kind: str) -> Path:
    return alerts_dir(uc) / f"{month}-{kind}.json"


def _write(path: Path, alert: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(json_safe(alert), indent=2, sort_keys=True)
    write_atomic(path, lambda tmp: tmp.write_text(text))
    return alert


def alerts(uc: UseCase | str | None) -> list[dict[str, Any]]:
    """Every alert of the use case, by month and kind."""
    folder = alerts_dir(resolve(uc))
    found = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(found, key=lambda a: (a["month"], a["kind"]))


def raise_alert(uc: UseCase, kind: str, month: str, version: str, summary: str, action: str,
                details: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The month's alert of this kind: written when new, the stored one when it exists (a rerun adds nothing)."""
    path = alert_path(uc, month, kind)
    if path.is_file():
        return dict(json.loads(path.read_text()))
    alert: dict[str, Any] = {
        "id": f"{month}-{kind}", "usecase": uc.name, "model": uc.model_name, "kind": kind, "title": KINDS[kind],
        "month": month, "model_version": str(version), "raised_at": _now(),
        "summary": summary, "action": action, "details": details,
        "notified_at": None, "channels": [], "accepted": None,
    }  # fmt: skip
    log.warning("alert %s: %s", alert["id"], summary)
    return _write(path, alert)


def _update(uc: UseCase, alert_id: str, change: dict[str, Any]) -> dict[str, Any]:
    path = alerts_dir(uc) / f"{alert_id}.json"
    if not path.is_file():
        raise EscalationError(f"{uc.name} has no alert {alert_id!r} (in {alerts_dir(uc)})")
    return _write(path, {**json.loads(path.read_text()), **change})


def mark_notified(usecase: UseCase | str | None, alert_ids: list[str], channels: list[str]) -> list[dict[str, Any]]:
    """Record that the alerts went out (through `channels`; empty: none was configured)."""
    uc = resolve(usecase)
    when = _now()
    return [_update(uc, alert_id, {"notified_at": when, "channels": list(channels)}) for alert_id in alert_ids]


def accept_alert(usecase: UseCase | str | None, alert_id: str, by: str, reason: str) -> dict[str, Any]:
    """A person accepts the risk an alert describes (the register shows it `accepted` with who and why)."""
    if not by.strip() or len(reason.strip()) < 5:
        raise EscalationError("accepting an alert needs a name and a reason (at least 5 characters)")
    accepted = {"by": by.strip(), "reason": reason.strip(), "at": _now()}
    return _update(resolve(usecase), alert_id, {"accepted": accepted})


def _pending(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [alert for alert in found if alert.get("notified_at") is None]


# --- (a) and (b): a judged month ---------------------------------------------------------------------


def documented_level(uc: UseCase, version: str) -> dict[str, float]:
    """AUC and accuracy documented for a version: its evaluation on the holdout, which the gate judged."""
    metrics = registry.run_metrics(str(registry.get_version(uc, version).run_id))
    return {"auc": float(metrics.auc), "accuracy": float(metrics.accuracy)}


def performance_breaches(uc: UseCase, judged: dict[str, Any], documented: dict[str, float]) -> list[dict[str, Any]]:
    """The judged metrics more than their margin below the documented level (a metric that is not measurable
    raises nothing)."""
    margins = uc.monitoring.escalation
    found = []
    for metric, margin in (("auc", margins.auc_margin), ("accuracy", margins.accuracy_margin)):
        value, level = judged.get(metric), documented[metric]
        if value is not None and value == value and value < level - margin:
            found.append({"metric": metric, "judged": value, "documented": level, "margin": margin,
                          "alert_below": level - margin})  # fmt: skip
    return found


def decline_rate_breaches(uc: UseCase, fairness: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The assessable groups whose decline rate moved beyond the gate's bounds against their reference."""
    t, found = uc.gate, []
    for group in (gate.GroupFairness.from_dict(g) for g in fairness):
        if gate.not_assessable_reason(group, t) is not None:
            continue
        ratio, gap = group.disparate_impact, group.statistical_parity
        if not (t.disparate_impact_min <= ratio <= t.disparate_impact_max) or abs(gap) > t.statistical_parity_max_abs:
            found.append({
                "attribute": group.attribute, "group": group.group, "reference": group.reference,
                "decline_rate": 1 - group.selection_rate_group, "reference_decline_rate": 1 - group.selection_rate_reference,
                "approval_ratio": ratio, "approval_difference": gap, "group_size": group.group_size,
                "bounds": f"approval ratio in [{t.disparate_impact_min}, {t.disparate_impact_max}], "
                          f"|approval difference| <= {t.statistical_parity_max_abs}",
            })  # fmt: skip
    return found


def _month_summary(uc: UseCase, month: str) -> dict[str, Any]:
    path = month_dir(uc, month) / "summary.json"
    if not path.is_file():
        raise EscalationError(f"{month} was not monitored ({path} is missing): run the monitoring DAG for it first")
    return dict(json.loads(path.read_text()))


def _performance_alert(uc: UseCase, month: str, outcomes: dict[str, Any], version: str) -> dict[str, Any] | None:
    breaches = performance_breaches(uc, outcomes["metrics"], documented_level(uc, version))
    if not breaches:
        return None
    text = "; ".join(f"{b['metric']} {b['judged']:.3f} against {b['documented']:.3f} documented "
                     f"(alert below {b['alert_below']:.3f}, margin {b['margin']})" for b in breaches)  # fmt: skip
    summary = (
        f"The decisions of {outcomes['judged_month']} by v{version}, judged on {outcomes['rows']} outcomes: {text}."
    )
    action = (f"read the month's reports (monitoring/{month}/), then retrain (training DAG), roll back or stop the "
              "model (model_control DAG, `fairway stop`), or accept the risk with a reason")  # fmt: skip
    return raise_alert(uc, PERFORMANCE, month, version, summary, action,
                       {"judged_month": outcomes["judged_month"], "rows": outcomes["rows"], "breaches": breaches})  # fmt: skip


def _decline_rate_alert(uc: UseCase, month: str, outcomes: dict[str, Any], version: str) -> dict[str, Any] | None:
    breaches = decline_rate_breaches(uc, outcomes["metrics"]["fairness"])
    if not breaches:
        return None
    text = "; ".join(f"{b['attribute']} {b['group']} declined {b['decline_rate']:.1%} vs {b['reference']} "
                     f"{b['reference_decline_rate']:.1%} (approval ratio {b['approval_ratio']:.3f}, difference "
                     f"{b['approval_difference']:+.3f})" for b in breaches)  # fmt: skip
    summary = (f"The decisions of {outcomes['judged_month']} by v{version}: {text}; the gate allows "
               f"{breaches[0]['bounds']}.")  # fmt: skip
    action = ("check the month's fairness report (monitoring/" + month + "/fairness_by_group.png); retraining is "
              "requested when drift.fairness_retrain_on_breach is set; stop or roll back the model if the decisions "
              "must not continue, or accept the risk with a reason")  # fmt: skip
    return raise_alert(uc, DECLINE_RATE, month, version, summary, action,
                       {"judged_month": outcomes["judged_month"], "groups": breaches})  # fmt: skip


def escalate_month(usecase: UseCase | str | None, month: str) -> list[dict[str, Any]]:
    """Raise the month's alerts from its monitoring summary; returns the month's alerts not notified yet (the new
    ones, and any whose notification did not go out)."""
    uc = resolve(usecase)
    month = month_str(month)
    outcomes = _month_summary(uc, month)["outcomes"]
    if outcomes.get("status") != "judged":
        return _pending([a for a in alerts(uc) if a["month"] == month])
    version = str(outcomes["model_version"])
    for step in (_performance_alert, _decline_rate_alert):
        step(uc, month, outcomes, version)
    return _pending([a for a in alerts(uc) if a["month"] == month and a["kind"] != RETRAINING_REJECTED])


# --- (c): a retraining that produced no approved model ----------------------------------------------


def _trigger(uc: UseCase, version: str) -> str:
    run = registry.client().get_run(str(registry.get_version(uc, version).run_id))
    return str(run.data.tags.get(f"{registry.TAG}trigger", "manual"))


def _champion_when_gated(uc: UseCase, version: str, found: list[ledger.Entry]) -> ledger.ChampionState:
    """The champion at the version's latest gate entry (the one a retraining was to replace)."""
    entry = ledger.latest(uc.model_name, version, ledger.GATE, found)
    cut = found if entry is None else [e for e in found if e.seq <= entry.seq]
    return ledger.replay(uc.model_name, cut)


def _review(uc: UseCase, version: str, found: list[ledger.Entry]) -> str:
    gated = ledger.latest(uc.model_name, version, ledger.GATE, found)
    approval = ledger.latest(uc.model_name, version, ledger.APPROVAL, found)
    if gated is not None and gated.payload.get("decision") != "pass":
        return "rejected by the gate: " + "; ".join(gated.payload.get("reasons", []))
    if approval is not None and approval.payload.get("decision") == "rejected":
        return f"rejected by {approval.actor}: {approval.payload.get('comment') or 'no comment'}"
    return "not approved"


def check_retraining(usecase: UseCase | str | None, version: str) -> list[dict[str, Any]]:
    """After a version's review: when it was trained on a retraining request and is not approved, the
    `retraining_rejected` alert of the request's month (the champion keeps serving); returns the alerts not
    notified yet (empty for a manual training or an approved version)."""
    uc = resolve(usecase)
    version = str(version)
    trigger = _trigger(uc, version)
    found = ledger.verified_entries()
    approved = ledger.replay(uc.model_name, found).approved_versions
    if trigger == "manual" or version in approved:
        return []
    month = str(registry.training_lineage(uc, version)["window_end"])
    champion = _champion_when_gated(uc, version, found)
    serving = champion.serving or "none"
    review = _review(uc, version, found)
    summary = (f"The retraining requested in {month} ({trigger}) produced no approved model: candidate v{version} "
               f"was {review}. " + (f"v{serving} keeps serving although monitoring asked to replace it."
                                    if champion.serving else "No version is serving."))  # fmt: skip
    action = (f"decide about v{serving}: stop it (model_control, action stop, or `fairway stop`), roll back to an "
              "earlier champion, retrain with other candidates or another window, or accept the risk with a reason")  # fmt: skip
    raise_alert(uc, RETRAINING_REJECTED, month, serving, summary, action,
                {"candidate_version": version, "trigger": trigger, "review": review, "serving_version": serving})  # fmt: skip
    return _pending([a for a in alerts(uc) if a["month"] == month and a["kind"] == RETRAINING_REJECTED])


# --- the risk register (Art. 9) ----------------------------------------------------------------------


def _entry(source: str, risk: str, detected: str, evidence: str, status: str, why: str) -> dict[str, Any]:
    return {"source": source, "risk": risk, "detected": detected, "evidence": evidence, "status": status,
            "status_reason": why}  # fmt: skip


def _later_change(uc: UseCase, version: str, since: str, found: list[ledger.Entry]) -> str | None:
    """Why a risk of `version` raised at `since` is mitigated by what the ledger recorded after it: another
    version approved and promoted (or rolled back to), or the version stopped."""
    for e in found:
        if e.model_name != uc.model_name or e.recorded_at <= since:
            continue
        if e.action in (ledger.PROMOTION, ledger.ROLLBACK) and e.version != version:
            return f"v{e.version} replaced it ({e.action} #{e.seq}, {e.recorded_at[:10]}, approved by {e.actor})"
        if e.action == ledger.STOP and e.version == version:
            return f"stopped by {e.actor} ({e.recorded_at[:10]}): {e.payload.get('reason', '')}"
    return None


def _gate_entries(uc: UseCase, version: str, found: list[ledger.Entry]) -> list[dict[str, Any]]:
    """Failed and unassessable rules of the version's latest gate report."""
    run_id = str(registry.get_version(uc, version).run_id)
    report = registry.load_dict(run_id, "gate/gate_report.json")
    decision = gate.GateDecision.from_dict(report)
    gated = ledger.latest(uc.model_name, version, ledger.GATE, found)
    detected = gated.recorded_at[:10] if gated else "?"
    evidence = f"gate report sha256 {gated.payload['gate_report_sha256'][:12]}" if gated else "gate report"
    promoted = ledger.replay(uc.model_name, found).approved_versions.get(version)
    rows = []
    for reason in decision.reasons:
        status, why = (OPEN, "the version was approved before and serves despite the failed re-gate") if promoted \
            else (MITIGATED, "the gate rejected the version: it never served")  # fmt: skip
        rows.append(_entry("gate", f"v{version}: {reason}", detected, evidence, status, why))
    for group in decision.not_assessable:
        risk = f"v{version}: fairness towards {group.attribute} {group.group} cannot be shown ({group.reason})"
        if promoted is None:
            status, why = MITIGATED, "the version was not approved: it never served"
        elif promoted.actor.startswith("policy:"):
            status, why = OPEN, f"approved by the deployment's policy ({promoted.actor}), not by a person"
        else:
            status, why = ACCEPTED, f"approved by {promoted.actor} on {promoted.recorded_at[:10]} with this gap shown"
        rows.append(_entry("gate", risk, detected, evidence, status, why))
    return rows


def _candidate_entries(uc: UseCase, version: str) -> list[dict[str, Any]]:
    """The candidates trained on the version's frame that failed the fairness rules (not registered)."""
    mv = registry.get_version(uc, version)
    rows = []
    for sibling in registry.sibling_candidates(str(mv.run_id)):
        if sibling["run_id"] == mv.run_id or sibling["status"] == "failed" or sibling["fairness_passed"] != "false":
            continue
        decision = gate.evaluate(registry.run_metrics(sibling["run_id"]), uc.gate)
        failed = [r for r in decision.reasons if not r.startswith(("auc_min", "auc_vs_champion"))]
        rows.append(_entry("candidate", f"candidate {sibling['candidate']}: " + "; ".join(failed),
                           "training", f"MLflow run {sibling['run_id'][:12]}", MITIGATED,
                           f"not registered: v{version} ({mv.tags.get(f'{registry.TAG}candidate', '?')}) was chosen"))  # fmt: skip
    return rows


def _status_of(uc: UseCase, version: str, alert: dict[str, Any] | None, since: str,
               found: list[ledger.Entry]) -> tuple[str, str]:  # fmt: skip
    change = _later_change(uc, version, since, found)
    if change:
        return MITIGATED, change
    if alert and alert.get("accepted"):
        accepted = alert["accepted"]
        return ACCEPTED, f"accepted by {accepted['by']} on {accepted['at'][:10]}: {accepted['reason']}"
    return OPEN, f"v{version} still scores as it did when this was found"


def _alert_entries(uc: UseCase, version: str, found: list[ledger.Entry]) -> list[dict[str, Any]]:
    rows = []
    for alert in alerts(uc):
        if alert["kind"] == RETRAINING_REJECTED or alert["model_version"] != version:
            continue
        status, why = _status_of(uc, version, alert, alert["raised_at"], found)
        rows.append(_entry("monitoring", f"{alert['title']}: {alert['summary']}", alert["raised_at"][:10],
                           f"alert {alert['id']}", status, why))  # fmt: skip
    return rows


def _retraining_entries(uc: UseCase, version: str, found: list[ledger.Entry]) -> list[dict[str, Any]]:
    """Retrainings requested while `version` was champion that produced no approved model."""
    by_id = {a["id"]: a for a in alerts(uc)}
    approved = ledger.replay(uc.model_name, found).approved_versions
    rows = []
    for mv in registry.client().search_model_versions(f"name = '{uc.model_name}'"):
        candidate = str(mv.version)
        gated = ledger.latest(uc.model_name, candidate, ledger.GATE, found)
        if candidate in approved or gated is None or _champion_when_gated(uc, candidate, found).version != version:
            continue
        trigger = _trigger(uc, candidate)
        if trigger == "manual":
            continue
        month = str(registry.training_lineage(uc, candidate)["window_end"])
        alert = by_id.get(f"{month}-{RETRAINING_REJECTED}")
        status, why = _status_of(uc, version, alert, gated.recorded_at, found)
        rows.append(_entry("retraining", f"retraining of {month} ({trigger}): candidate v{candidate} "
                           f"{_review(uc, candidate, found)}; v{version} kept serving", gated.recorded_at[:10],
                           f"ledger #{gated.seq}" + (f", alert {alert['id']}" if alert else ""), status, why))  # fmt: skip
    return rows


def risk_register(uc: UseCase | str | None, version: str) -> list[dict[str, Any]]:
    """The version's risks with their status, numbered R1, R2, ...: gate results, rejected candidates,
    monitoring alerts, rejected retrainings."""
    usecase, version = resolve(uc), str(version)
    found = ledger.verified_entries()
    rows = [*_gate_entries(usecase, version, found), *_candidate_entries(usecase, version),
            *_alert_entries(usecase, version, found), *_retraining_entries(usecase, version, found)]  # fmt: skip
    return [{"id": f"R{i}", **row} for i, row in enumerate(rows, start=1)]


def risk_register_markdown(uc: UseCase | str | None, version: str) -> str:
    usecase = resolve(uc)
    rows = risk_register(usecase, version)
    counts = ", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in (OPEN, MITIGATED, ACCEPTED))
    body = table(["#", "source", "risk", "detected", "evidence", "status", "why"],
                 [[r["id"], r["source"], r["risk"], r["detected"], r["evidence"], r["status"], r["status_reason"]]
                  for r in rows]) if rows else "No risk was recorded by the gate or the monitoring for this version."  # fmt: skip
    return f"""# Risk register: {usecase.model_name} v{version} ({usecase.name})

AI Act Art. 9. Generated {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} from the fairness gate's reports, the
promotion ledger, the monitoring alerts and the registry: {len(rows)} entries ({counts}).

Status: *open* (the risk stands), *mitigated* (the version never served, a later approved version replaced it,
or it was stopped), *accepted* (a person approved or accepted it knowing the risk).

{body}

## Risks the system does not measure

{TO_COMPLETE} the risks to health, safety and fundamental rights that the gate and the monitoring cannot see
(e.g. misuse by deployers, decisions on people outside the intended purpose, the effect of a decline on the
person), with their likelihood, severity and the measures taken.

## Owner and review

{TO_COMPLETE} the risk owner, the acceptance criteria for residual risk, and the review dates of this register.
"""


# --- the post-market monitoring plan (Art. 72, 73) -------------------------------------------------------


def _channels() -> list[str]:
    config = settings.notifications()
    found = []
    if config.email_to:
        sender = config.email_from or "the connection's from_email"
        found.append(f"e-mail to {', '.join(config.email_to)} from {sender}, through the Airflow SMTP connection "
                     f"`{config.smtp_conn_id}`")  # fmt: skip
    if config.webhook_url:
        parts = urlsplit(config.webhook_url)
        auth = " with a bearer token" if config.webhook_token else ""
        found.append(f"a JSON POST to the webhook at {parts.scheme}://{parts.netloc}{auth} (its path is not shown)")
    return found


def _thresholds(uc: UseCase, version: str) -> str:
    d, g, e = uc.drift, uc.gate, uc.monitoring.escalation
    level = documented_level(uc, version)
    rows = [
        ["data drift", "share of drifted model inputs", f">= {d.share_of_drifted_columns_max}",
         f"retraining requested, unless v{version}'s window ended within {d.retrain_cooldown_months} month(s)"],
        ["prediction drift", "drift of the recorded scores", "Evidently's column test", "shown in the history, no request"],
        ["judged AUC", f"documented {level['auc']:.3f} (holdout)", f"< {level['auc'] - e.auc_margin:.3f} (margin {e.auc_margin})",
         "alert `performance`, notification"],
        ["judged accuracy", f"documented {level['accuracy']:.3f} (holdout)",
         f"< {level['accuracy'] - e.accuracy_margin:.3f} (margin {e.accuracy_margin})", "alert `performance`, notification"],
        ["judged AUC", "gate minimum", f"< {g.auc_min}", "retraining requested"],
        ["decline rate per group", "approval ratio to the reference",
         f"outside [{g.disparate_impact_min}, {g.disparate_impact_max}]", "alert `decline_rate`, notification"
         + (", retraining requested" if d.fairness_retrain_on_breach else "")],
        ["decline rate per group", "approval difference to the reference", f"|x| > {g.statistical_parity_max_abs}",
         "alert `decline_rate`, notification" + (", retraining requested" if d.fairness_retrain_on_breach else "")],
        ["equal opportunity per group", "difference to the reference", f"|x| > {g.equal_opportunity_max_abs}",
         "retraining requested" if d.fairness_retrain_on_breach else "shown in the history"],
        ["retraining", "the candidate of a retraining request", "rejected by the gate or the approver",
         "alert `retraining_rejected`, notification; the champion keeps serving"],
    ]  # fmt: skip
    return table(["what", "measure", "alert when", "then"], rows)


def monitoring_plan_markdown(uc: UseCase | str | None, version: str) -> str:
    """The post-market monitoring plan of a version, with the thresholds of its config and the incident path."""
    usecase, version = resolve(uc), str(version)
    channels = _channels()
    notified = ("\n".join(f"   - {c}" for c in channels) if channels else
                "   - **nobody**: this deployment configures no channel (FAIRWAY_NOTIFY_EMAIL_TO, FAIRWAY_NOTIFY_WEBHOOK_URL); "
                "alerts are only logged and kept in the alert files")  # fmt: skip
    found = alerts(usecase)
    history = table(["alert", "version", "raised", "notified", "accepted"],
                    [[a["id"], a["model_version"], a["raised_at"][:16], (a.get("notified_at") or "no")[:16],
                      (a.get("accepted") or {}).get("by", "no")] for a in found]) if found else "No alert so far."  # fmt: skip
    lag = usecase.label.available_after_months
    return f"""# Post-market monitoring plan: {usecase.model_name} v{version} ({usecase.name})

AI Act Art. 72 (post-market monitoring) and Art. 73 (reporting of serious incidents). Generated
{datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} from the use-case config, the version's documented metrics and the
deployment's notification settings.

## What is collected, and when

- Every month: `feature_pipeline` loads the month's snapshot, `batch_inference` scores it with the ledger's
  champion and keeps a prediction record per decision; each online decision is kept in the decision log.
- After every scored month (the `fairway_predictions` asset): the `monitoring` DAG measures data and prediction
  drift against the scoring version's training frame (both sides sampled to at most {usecase.drift.sample_rows:,}
  rows), and judges the decisions of {lag} month(s) earlier, whose outcomes are known by then: AUC, accuracy and
  the fairness of the decisions per protected group.
- Reports: `reports/{usecase.name}/monitoring/<month>/`, the history (`history.csv`, `index.html`), one MLflow run
  per month in `fairway-{usecase.name}-monitoring`; alerts in `reports/{usecase.name}/monitoring/alerts/`.

## Thresholds

{_thresholds(usecase, version)}

Documented levels are v{version}'s evaluation on its holdout (the gate report). The margins are
`monitoring.escalation` of the use-case config, the bounds its `gate:` block, the drift threshold its `drift:`
block.

## Incident path

1. The `monitoring` DAG (task `escalate`) or `fairness_gate` (a rejected retraining) raises the alert and keeps
   it, once per month and kind.
2. The alert is notified (task `notify_alerts`) to:
{notified}
3. The alert is an entry of the version's risk register, `open` until a later approved version replaces the
   model, the model is stopped, or a person accepts it with a reason.
4. A person decides: stop the model at once (`model_control`, action stop, or `fairway stop`: the service
   refuses every request within seconds), roll back to an earlier champion (needs an approval), retrain, or
   accept the risk.
5. Failed runs, pending approvals, gate rejections and stops are notified through the same channels.

{TO_COMPLETE} the names and roles of the people on call for alerts, and how fast they must respond.

## Serious incidents (Art. 73)

{TO_COMPLETE} how a serious incident is recognised from an alert or a complaint, who reports it to the market
surveillance authority of which member state, within which deadline, and how the report and the corrective
action are recorded.

## Alerts so far

{history}
"""
