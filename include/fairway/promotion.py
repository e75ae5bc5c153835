"""From candidate to champion, and back: gate, approval, promotion, documentation, stop and rollback.

These are the steps of the fairness_gate and model_control DAGs, one function each. Each decision is first an
entry of the promotion ledger (fairway.ledger), bound to its evidence; the MLflow registry then mirrors it
(registry.mirror_*). The ledger, not MLflow, says which version is champion:

- the gate's result and the SHA-256 of its report are appended before anyone is asked;
- an approval (a person through Airflow's human-in-the-loop step, or `policy:auto` only where the deployment
  sets FAIRWAY_APPROVAL_MODE=auto) is appended with the SHA-256 of the report that was approved;
- the promotion is appended with the model files' SHA-256, the training frame's fingerprint, the gate report's
  SHA-256, the code revision and the approver; only then does the `champion` alias move;
- a stop (AI Act Art. 14(4)(e)) takes effect at once; a rollback to an earlier champion needs an approval
  like any promotion.

Re-gating never rewrites history: the entries are appended, and a version that is already champion stays
champion (the result says why nothing changed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fairway import gate, ledger, registry, settings
from fairway.config import UseCase, resolve
from fairway.documentation import INTERVAL_NOTE, candidate_fairness, sha256_file, with_interval, write_gate_report

AUTO_APPROVER = "policy:auto"
GATE_ACTOR = "fairway:gate"


# the ledger does not allow the step: no passing gate entry, an approval of other evidence, evidence that changed
# since it was recorded, or a version that was never approved
PromotionRefused = registry.PromotionRefused


def approval_mode(usecase: UseCase | str | None = None) -> str:
    """`human`, unless the deployment sets FAIRWAY_APPROVAL_MODE=auto (a use-case config cannot)."""
    return settings.approval_mode()


def gate_candidate(usecase: UseCase | str | None, version: str | None = None) -> dict[str, Any]:
    """Evaluate a version (default: the `candidate` alias) against the thresholds; record report and decision."""
    uc = resolve(usecase)
    if version is None:
        mv = registry.version_by_alias(uc, registry.CANDIDATE)
        if mv is None:
            raise RuntimeError(
                f"model '{uc.model_name}' has no '{registry.CANDIDATE}' version: run the training DAG first"
            )
    else:
        mv = registry.get_version(uc, str(version))
    version = str(mv.version)
    metrics = registry.run_metrics(str(mv.run_id))
    decision = gate.evaluate(metrics, uc.gate)
    candidate = mv.tags.get("fairway.candidate", "?")
    siblings = candidate_fairness(uc, registry.sibling_candidates(str(mv.run_id)))
    files, evidence = write_gate_report(uc, version, candidate, metrics, decision, siblings, str(mv.run_id),
                                        registry.model_sha256(uc, version),
                                        mv.tags.get("fairway.dataset_fingerprint", ""))  # fmt: skip
    registry.record_gate(uc, version, decision, files, evidence)
    ledger.append(uc.name, uc.model_name, version, ledger.GATE, GATE_ACTOR, {
        "decision": decision.decision, "reasons": decision.reasons, "gate_report_sha256": evidence,
        "candidate": candidate, "dataset_fingerprint": mv.tags.get("fairway.dataset_fingerprint", ""),
        "thresholds": uc.gate.model_dump(),
    })  # fmt: skip
    summary = approval_summary(uc, version, candidate, metrics, decision, files[1], evidence)
    return {"usecase": uc.name, "version": version, "candidate": candidate, "decision": decision.decision,
            "reasons": decision.reasons, "evidence_sha256": evidence, "summary": summary}  # fmt: skip


def approval_summary(uc: UseCase, version: str, candidate: str, metrics: gate.CandidateMetrics,
                     decision: gate.GateDecision, report: Path, evidence: str) -> str:  # fmt: skip
    """What the approver reads in the human-in-the-loop form: the decision, performance, every group's fairness
    metrics with their bootstrap intervals, the groups the gate could not assess (size and reason), the report."""
    unassessed = {(g.attribute, g.group) for g in decision.not_assessable}
    fairness = "\n".join(
        f"- {g.attribute} {g.group} vs {g.reference} (n {g.group_size} / {g.reference_size}"
        f"{', not assessed' if (g.attribute, g.group) in unassessed else ''}): "
        f"DI {with_interval(g.disparate_impact, g.disparate_impact_ci, 2)}, "
        f"SPD {with_interval(g.statistical_parity, g.statistical_parity_ci, 2, signed=True)}, "
        f"EOD {with_interval(g.equal_opportunity, g.equal_opportunity_ci, 2, signed=True)}"
        for g in metrics.fairness
    )
    not_assessed = "\n".join(f"- {g.describe()}" for g in decision.not_assessable)
    failed = "\n".join(f"- {reason}" for reason in decision.reasons)
    return (
        f"**{uc.model_name} v{version}** ({candidate}): gate decision **{decision.decision}**.\n\n"
        f"AUC {metrics.auc:.3f} (minimum {uc.gate.auc_min}; champion on the same holdout: "
        f"{'none' if metrics.champion_auc is None else f'{metrics.champion_auc:.3f}'}), accuracy {metrics.accuracy:.3f}.\n\n"
        f"Fairness per group (DI disparate impact, SPD statistical parity difference, EOD equal opportunity "
        f"difference). {INTERVAL_NOTE}\n\n{fairness}\n\n"
        + (f"Not assessable (no rule applied; at least {uc.gate.min_group_rows} rows and both outcomes are needed "
           f"in the group and its reference):\n\n{not_assessed}\n\n" if not_assessed else "")
        + (f"Failed rules:\n\n{failed}\n\n" if failed else "")
        + f"Gate report: {report}\n\nEvidence SHA-256: `{evidence}`"
    )  # fmt: skip


def reject_candidate(usecase: UseCase | str | None, gated: dict[str, Any]) -> dict[str, Any]:
    """The gate said no: the version is tagged rejected with its reasons; `champion` does not move. A version that
    is champion stays champion (its earlier approval stands; stop it with model_control if it must not serve)."""
    uc = resolve(usecase)
    if ledger.state(uc.model_name).version == gated["version"]:
        message = (f"v{gated['version']} is the champion and failed this re-gate ({'; '.join(gated['reasons'])}): "
                   "it stays champion, the result is in the ledger; stop it with the model_control DAG "
                   "(or `fairway stop`) if it must not serve")  # fmt: skip
        return {"version": gated["version"], "status": "champion", "reasons": gated["reasons"], "message": message}
    registry.set_status(uc, gated["version"], "rejected")
    return {"version": gated["version"], "status": "rejected", "reasons": gated["reasons"]}


def auto_approval(usecase: UseCase | str | None, gated: dict[str, Any]) -> dict[str, Any]:
    """Approval by the deployment's policy (FAIRWAY_APPROVAL_MODE=auto), recorded as approver `policy:auto`."""
    if approval_mode(usecase) != "auto":
        raise PromotionRefused(
            "automatic approval is not allowed: the deployment does not set FAIRWAY_APPROVAL_MODE=auto"
        )
    return {"decision": "approved", "approver": AUTO_APPROVER, "decided_at": datetime.now(UTC).isoformat(),
            "comment": "approved by the deployment's policy FAIRWAY_APPROVAL_MODE=auto: every gate rule holds",
            "mode": "auto", "evidence_sha256": gated["evidence_sha256"]}  # fmt: skip


def approval_from_response(response: dict[str, Any], gated: dict[str, Any]) -> dict[str, Any]:
    """An Airflow human-in-the-loop response as an approval record."""
    user = response.get("responded_by_user") or {}
    chosen = response.get("chosen_options") or []
    responded = response.get("responded_at")
    decided_at = responded.isoformat() if isinstance(responded, datetime) else str(responded)
    approver = user.get("name") or ("timeout-default" if response.get("timedout") else "unknown")
    return {"decision": "approved" if chosen == ["Approve"] else "rejected", "approver": approver,
            "decided_at": decided_at, "comment": (response.get("params_input") or {}).get("comment") or "",
            "mode": "human", "evidence_sha256": gated["evidence_sha256"]}  # fmt: skip


def _passing_gate(uc: UseCase, version: str, evidence_sha256: str, found: list[ledger.Entry]) -> ledger.Entry:
    """The version's latest gate entry, which must pass, be the evidence approved, and match the stored report."""
    entry = ledger.latest(uc.model_name, version, ledger.GATE, found)
    if entry is None:
        raise PromotionRefused(f"{uc.model_name} v{version}: the ledger has no gate decision for it")
    if entry.payload["decision"] != "pass":
        raise PromotionRefused(
            f"{uc.model_name} v{version}: the ledger's gate decision is {entry.payload['decision']!r}"
        )
    if entry.payload["gate_report_sha256"] != evidence_sha256:
        raise PromotionRefused(
            f"{uc.model_name} v{version}: the approval covers other evidence than the latest gate report"
        )
    stored = registry.artifact_sha256(str(registry.get_version(uc, version).run_id),
                                      registry.gate_report_path(evidence_sha256))  # fmt: skip
    if stored != evidence_sha256:
        raise PromotionRefused(f"{uc.model_name} v{version}: the stored gate report was changed after the gate")
    return entry


def promote(usecase: UseCase | str | None, gated: dict[str, Any], approval: dict[str, Any]) -> dict[str, Any]:
    """Append the approval and the promotion to the ledger, then move `champion` (refused unless the ledger's
    latest gate decision for the version passed and this very evidence was approved)."""
    uc = resolve(usecase)
    version = str(gated["version"])
    record = registry.Approval(**approval)
    if record.decision != "approved":
        raise PromotionRefused(f"{uc.model_name} v{version}: approval decision is {record.decision!r}")
    found = ledger.verified_entries()
    gate_entry = _passing_gate(uc, version, record.evidence_sha256, found)
    approved = ledger.append(uc.name, uc.model_name, version, ledger.APPROVAL, record.approver,
                             {**approval, "gate_entry": gate_entry.seq, "for": ledger.PROMOTION})  # fmt: skip
    state = ledger.replay(uc.model_name, found)
    if state.serving == version:
        message = (f"{uc.model_name} v{version} is already champion (since {state.since.recorded_at if state.since else '?'}): "
                   f"the re-gate and approval #{approved.seq} are recorded, nothing changed")  # fmt: skip
        return {"model": uc.model_name, "version": version, "previous": version, "changed": False, "message": message}
    previous = state.version
    mv = registry.get_version(uc, version)
    run = registry.client().get_run(str(mv.run_id))
    ledger.append(uc.name, uc.model_name, version, ledger.PROMOTION, record.approver, {
        "model_sha256": registry.model_sha256(uc, version),
        "dataset_fingerprint": mv.tags.get("fairway.dataset_fingerprint", ""),
        "gate_report_sha256": record.evidence_sha256, "gate_entry": gate_entry.seq, "approval_entry": approved.seq,
        "code_revision": run.data.tags.get("fairway.code_revision", "unknown"), "approval_mode": record.mode,
        "previous_champion": previous, "run_id": str(mv.run_id),
    })  # fmt: skip
    registry.mirror_champion(uc, version, record, previous, "promoted")
    return {"model": uc.model_name, "version": version, "previous": previous, "changed": True,
            "message": f"{uc.model_name} v{version} is champion (was {previous or 'none'})"}  # fmt: skip


def record_review(
    usecase: UseCase | str | None, gated: dict[str, Any], approval: dict[str, Any] | None
) -> dict[str, Any]:
    """After the review: a human rejection is appended to the ledger and mirrored on the version (an approval was
    recorded by promote)."""
    uc = resolve(usecase)
    if approval is None:
        return {
            "version": gated["version"],
            "review": "none (gate rejected the candidate)" if gated["decision"] != "pass" else "none",
        }
    if approval["decision"] == "rejected":
        ledger.append(uc.name, uc.model_name, gated["version"], ledger.APPROVAL, approval["approver"],
                      {**approval, "for": ledger.PROMOTION})  # fmt: skip
        if ledger.state(uc.model_name).version != gated["version"]:
            registry.record_rejection(uc, gated["version"], registry.Approval(**approval))
    return {"version": gated["version"], "review": approval["decision"], "by": approval["approver"]}


def document(usecase: UseCase | str | None, version: str) -> dict[str, str]:
    """Write the version's documentation (fairway.documentation) and the documents for deployers and data
    protection (fairway.documents), and append the SHA-256 of each file to the ledger."""
    from fairway.documentation import model_documentation
    from fairway.documents import write_documents

    uc = resolve(usecase)
    written = {**model_documentation(uc, version), **write_documents(uc, version)}
    files = {Path(path).name: sha256_file(Path(path)) for path in written.values()}
    ledger.append(uc.name, uc.model_name, version, ledger.DOCUMENTATION, GATE_ACTOR, {"files": files})
    return written


# --- stop and rollback (AI Act Art. 14(4)(e)) ------------------------------------------------------------------


def stop(usecase: UseCase | str | None, reason: str, actor: str) -> dict[str, Any]:
    """Stop the champion now: a ledger entry (who, when, why), the `champion` alias removed. The service answers
    503 with the reason within seconds, batch inference refuses to score; `rollback` re-enables a version."""
    uc = resolve(usecase)
    if len(reason.strip()) < 5:
        raise PromotionRefused("a stop needs a reason (at least 5 characters)")
    state = ledger.state(uc.model_name)
    if state.version is None:
        raise PromotionRefused(f"{uc.model_name} has no champion in the ledger: nothing to stop")
    if state.stopped is not None:
        return {"model": uc.model_name, "version": state.version, "changed": False,
                "message": f"v{state.version} is already stopped: {state.stop_reason()}"}  # fmt: skip
    entry = ledger.append(uc.name, uc.model_name, state.version, ledger.STOP, actor, {"reason": reason.strip()})
    registry.mirror_stop(uc, state.version, reason)
    stopped = ledger.replay(uc.model_name, ledger.entries()).stop_reason()
    return {"model": uc.model_name, "version": state.version, "changed": True, "entry": entry.seq, "message": stopped}


def rollback_request(usecase: UseCase | str | None, version: str | None, reason: str) -> dict[str, Any]:
    """What an approver is asked to re-enable: a version that was champion before (default: the current one
    when stopped, else the previous champion), with its evidence re-checked. The request's `evidence_sha256`
    is the version's model files' SHA-256: the approval covers exactly these files."""
    uc = resolve(usecase)
    if len(reason.strip()) < 5:
        raise PromotionRefused("a rollback needs a reason (at least 5 characters)")
    state = ledger.replay(uc.model_name, ledger.verified_entries())
    target = version or (
        state.version if state.stopped else (state.since.payload.get("previous_champion") if state.since else None)
    )
    if not target:
        raise PromotionRefused(f"{uc.model_name}: no earlier champion to roll back to; name a version")
    target = str(target)
    earlier = state.approved_versions.get(target)
    if earlier is None:
        raise PromotionRefused(f"{uc.model_name} v{target} was never an approved champion: it cannot be rolled back to; "
                               "gate and approve it through fairness_gate")  # fmt: skip
    if state.serving == target:
        raise PromotionRefused(f"{uc.model_name} v{target} is already the serving champion")
    found = registry.model_sha256(uc, target)
    if found != earlier.payload["model_sha256"]:
        raise PromotionRefused(f"{uc.model_name} v{target}: its model files changed since it was approved")
    summary = (f"Roll **{uc.model_name}** back to **v{target}** (champion from {earlier.recorded_at}, approved by "
               f"{earlier.actor}; now: {'v' + state.version if state.version else 'none'}"
               f"{', stopped: ' + state.stop_reason() if state.stopped else ''}).\n\nReason: {reason.strip()}\n\n"
               f"Model files SHA-256: `{found}`")  # fmt: skip
    return {"usecase": uc.name, "version": target, "reason": reason.strip(), "evidence_sha256": found,
            "from_version": state.version, "summary": summary}  # fmt: skip


def rollback(usecase: UseCase | str | None, request: dict[str, Any], approval: dict[str, Any]) -> dict[str, Any]:
    """Re-enable an earlier champion once a person approved the request: approval and rollback entries in the
    ledger, then the alias."""
    uc = resolve(usecase)
    record = registry.Approval(**approval)
    version = str(request["version"])
    if record.decision != "approved":
        ledger.append(uc.name, uc.model_name, version, ledger.APPROVAL, record.approver,
                      {**approval, "for": ledger.ROLLBACK})  # fmt: skip
        return {"model": uc.model_name, "version": version, "changed": False,
                "message": f"rollback to v{version} rejected by {record.approver}"}  # fmt: skip
    if record.mode != "human":
        raise PromotionRefused("a rollback needs a person's approval")
    fresh = rollback_request(uc, version, request["reason"])  # re-checked now, not when the request was made
    if fresh["evidence_sha256"] != record.evidence_sha256:
        raise PromotionRefused(f"{uc.model_name} v{version}: the approval covers other model files than the version's")
    approved = ledger.append(uc.name, uc.model_name, version, ledger.APPROVAL, record.approver,
                             {**approval, "for": ledger.ROLLBACK})  # fmt: skip
    earlier = ledger.replay(uc.model_name, ledger.entries()).approved_versions[version]
    ledger.append(uc.name, uc.model_name, version, ledger.ROLLBACK, record.approver, {
        **{k: earlier.payload.get(k) for k in ("model_sha256", "dataset_fingerprint", "gate_report_sha256",
                                               "code_revision", "run_id")},
        "reason": request["reason"], "approval_entry": approved.seq, "previous_champion": fresh["from_version"],
        "approval_mode": record.mode,
    })  # fmt: skip
    registry.mirror_champion(uc, version, None, fresh["from_version"], "rolled_back")
    return {"model": uc.model_name, "version": version, "changed": True, "previous": fresh["from_version"],
            "message": f"{uc.model_name} v{version} is champion again (rollback approved by {record.approver})"}  # fmt: skip
