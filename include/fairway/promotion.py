"""From candidate to champion: gate the candidate, take the approval, promote, document and package.

These are the steps of the fairness_gate DAG, one function each. The gate decision and its report are recorded
on the version before anyone is asked; approval (human, or `policy:auto` where the config allows it) is
recorded with the SHA-256 of the report that was approved; only then does `registry.promote` move `champion`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from fairway import gate, registry
from fairway.config import UseCase, resolve
from fairway.documentation import write_gate_report

AUTO_APPROVER = "policy:auto"


def approval_mode(usecase: UseCase | str | None) -> str:
    """`human` or `auto`: the config's gate.approval_mode, unless the deployment sets FAIRWAY_APPROVAL_MODE."""
    mode = os.environ.get("FAIRWAY_APPROVAL_MODE") or resolve(usecase).gate.approval_mode
    if mode not in ("human", "auto"):
        raise ValueError(f"FAIRWAY_APPROVAL_MODE must be 'human' or 'auto', not {mode!r}")
    return mode


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
    files, evidence = write_gate_report(uc, version, candidate, metrics, decision)
    registry.record_gate(uc, version, decision, files, evidence)
    fairness = "\n".join(
        f"- {g.attribute} {g.group} vs {g.reference}: disparate impact {g.disparate_impact:.3f}, "
        f"statistical parity {g.statistical_parity:+.3f}, equal opportunity {g.equal_opportunity:+.3f}"
        for g in metrics.fairness
    )
    summary = (
        f"**{uc.model_name} v{version}** ({candidate}): gate decision **{decision.decision}**.\n\n"
        f"AUC {metrics.auc:.3f} (minimum {uc.gate.auc_min}; champion on the same holdout: "
        f"{'none' if metrics.champion_auc is None else f'{metrics.champion_auc:.3f}'}), accuracy {metrics.accuracy:.3f}.\n\n"
        f"{fairness}\n\nGate report: {files[1]}\n\nEvidence SHA-256: `{evidence}`"
    )
    return {"usecase": uc.name, "version": version, "candidate": candidate, "decision": decision.decision,
            "reasons": decision.reasons, "evidence_sha256": evidence, "summary": summary}  # fmt: skip


def reject_candidate(usecase: UseCase | str | None, gated: dict[str, Any]) -> dict[str, Any]:
    """The gate said no: the version is tagged rejected with its reasons; `champion` does not move."""
    uc = resolve(usecase)
    registry.client().set_model_version_tag(uc.model_name, gated["version"], "fairway.status", "rejected")
    return {"version": gated["version"], "status": "rejected", "reasons": gated["reasons"]}


def auto_approval(usecase: UseCase | str | None, gated: dict[str, Any]) -> dict[str, Any]:
    """Approval by policy (approval_mode auto), recorded as approver `policy:auto`."""
    if approval_mode(usecase) != "auto":
        raise RuntimeError("automatic approval is not allowed: approval_mode is 'human'")
    return {"decision": "approved", "approver": AUTO_APPROVER, "decided_at": datetime.now(UTC).isoformat(),
            "comment": "approved by policy: every gate rule holds", "mode": "auto",
            "evidence_sha256": gated["evidence_sha256"]}  # fmt: skip


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


def promote(usecase: UseCase | str | None, gated: dict[str, Any], approval: dict[str, Any]) -> dict[str, Any]:
    """Record the approval and move `champion` (refused unless the gate passed and this evidence was approved)."""
    uc = resolve(usecase)
    return registry.promote(uc, gated["version"], registry.Approval(**approval))


def record_review(
    usecase: UseCase | str | None, gated: dict[str, Any], approval: dict[str, Any] | None
) -> dict[str, Any]:
    """After the review: record a human rejection on the version (an approval was recorded by promote)."""
    uc = resolve(usecase)
    if approval is None:
        return {
            "version": gated["version"],
            "review": "none (gate rejected the candidate)" if gated["decision"] != "pass" else "none",
        }
    if approval["decision"] == "rejected":
        registry.record_rejection(uc, gated["version"], registry.Approval(**approval))
    return {"version": gated["version"], "review": approval["decision"], "by": approval["approver"]}
