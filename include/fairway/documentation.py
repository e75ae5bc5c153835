"""Evidence documents: the gate report of a candidate and the model documentation of an approved version.

The model documentation follows the headings of AI Act Annex IV (technical documentation) with a model card
for deployers (Art. 13). Every number comes from the MLflow registry and the Feast catalogue of that version;
the documents are written under FAIRWAY_HOME/reports and attached to the version's run.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fairway.config import UseCase, paths, resolve
from fairway.fairness import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from fairway.gate import CandidateMetrics, GateDecision, GroupFairness

HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1f2933; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }}
th, td {{ border: 1px solid #cbd2d9; padding: 0.25rem 0.5rem; text-align: left; }}
th {{ background: #f0f4f8; }} code {{ background: #f0f4f8; padding: 0 0.2rem; }} img {{ max-width: 100%; }}
h1 {{ border-bottom: 2px solid #334e68; }} h2 {{ margin-top: 2rem; color: #334e68; }}
</style></head><body>
{body}
</body></html>
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "not measurable" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]  # `|x|` in a cell
    return "\n".join(lines)


def render_html(markdown_text: str, title: str) -> str:
    import markdown

    return HTML_PAGE.format(title=title, body=markdown.markdown(markdown_text, extensions=["tables"]))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reports_dir(uc: UseCase, kind: str, version: str) -> Path:
    path = paths().reports / uc.name / kind / f"{uc.model_name}-v{version}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def with_interval(value: float, interval: tuple[float, float], digits: int = 3, signed: bool = False) -> str:
    """A metric with its bootstrap interval, `0.830 [0.710, 0.950]`; the interval is left out when it is unknown
    (reports written before intervals existed), the metric reads `not measurable` when it is NaN."""
    if value is None or math.isnan(value):
        return "not measurable"
    spec = f"{'+' if signed else ''}.{digits}f"
    low, high = interval
    if math.isnan(low) or math.isnan(high):
        return format(value, spec)
    return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"


INTERVAL_NOTE = (
    f"Brackets: 95 % bootstrap percentile intervals (group and reference rows resampled separately, "
    f"{BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}); the gate decides on the point values."
)


def _unassessed(metrics: CandidateMetrics, decision: GateDecision | None) -> dict[tuple[str, str], str]:
    """(attribute, group) -> why the gate applied no rule: from the decision when given, else from the metrics."""
    if decision is not None:
        return {(g.attribute, g.group): g.reason for g in decision.not_assessable}
    return {(g.attribute, g.group): g.reason or "not assessable" for g in metrics.fairness if not g.assessable}


def fairness_table(metrics: CandidateMetrics, decision: GateDecision | None = None) -> str:
    """Every group with its sizes, approval rates and the gate's metrics with their intervals, and whether the
    gate assessed it."""
    unassessed = _unassessed(metrics, decision)
    return _table(
        ["attribute", "group vs reference", "n (group / ref)", "approval rate (group / ref)",
         "disparate impact [95 % CI]", "statistical parity [95 % CI]", "equal opportunity [95 % CI]", "assessed"],
        [[g.attribute, f"{g.group} vs {g.reference}", f"{g.group_size} / {g.reference_size}",
          f"{_fmt(g.selection_rate_group)} / {_fmt(g.selection_rate_reference)}",
          with_interval(g.disparate_impact, g.disparate_impact_ci),
          with_interval(g.statistical_parity, g.statistical_parity_ci),
          with_interval(g.equal_opportunity, g.equal_opportunity_ci),
          f"no: {unassessed[g.attribute, g.group]}" if (g.attribute, g.group) in unassessed else "yes"]
         for g in metrics.fairness],
    )  # fmt: skip


def not_assessable_list(decision: GateDecision) -> str:
    """The groups the gate applied no rule to, each with its size and reason, as a Markdown list."""
    if not decision.not_assessable:
        return "- none: every group could be assessed"
    return "\n".join(f"- {g.describe()}" for g in decision.not_assessable)


def rules_table(decision: GateDecision) -> str:
    return _table(
        ["rule", "subject", "value", "required", "result"],
        [[r.rule, r.subject, r.value, r.threshold, "pass" if r.passed else "FAIL"] for r in decision.rules],
    )


def candidates_table(candidates: list[dict[str, Any]], registered_run: str) -> str:
    """The candidates trained on the same frame; a failed one with its reason."""
    return _table(
        ["candidate", "status", "AUC", "accuracy", "Brier", "within fairness thresholds", "registered"],
        [[c["candidate"], "trained" if c["status"] != "failed" else f"failed: {' '.join(str(c['failure']).split())}", c["auc"],
          c["accuracy"], c["brier"], c["fairness_passed"] if c["status"] != "failed" else "-",
          "yes" if c["run_id"] == registered_run else "no"] for c in candidates],
    )  # fmt: skip


def write_gate_report(
    uc: UseCase,
    version: str,
    candidate: str,
    metrics: CandidateMetrics,
    decision: GateDecision,
    candidates: list[dict[str, Any]] | None = None,
    run_id: str = "",
) -> tuple[list[Path], str]:
    """gate_report.json and gate_report.md for a version; returns the files and the SHA-256 of the JSON (the
    evidence an approver signs off). `candidates`: every candidate of its training run, failed ones included."""
    folder = reports_dir(uc, "gate", version)
    report = {
        "model": uc.model_name,
        "version": version,
        "candidate": candidate,
        "usecase": uc.name,
        "thresholds": uc.gate.model_dump(),
        "metrics": metrics.as_dict(),
        **decision.as_dict(),
        "candidates": candidates or [],
    }
    json_path = folder / "gate_report.json"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    evidence = sha256_file(json_path)
    failed = "\n".join(f"- {reason}" for reason in decision.reasons) or "- none: every rule holds"
    md = f"""# Fairness gate report: {uc.model_name} v{version} ({candidate})

**Decision: {decision.decision.upper()}**. Evidence SHA-256 (gate_report.json): `{evidence}`

Performance on the holdout: AUC {_fmt(metrics.auc)}, accuracy {_fmt(metrics.accuracy)}, Brier score {_fmt(metrics.brier)};
champion AUC on the same holdout: {_fmt(metrics.champion_auc)}.

## Failed rules
{failed}

## Every rule
{rules_table(decision)}

## Groups not assessable (no rule applied; gate.min_group_rows {uc.gate.min_group_rows}, both outcomes needed)
{not_assessable_list(decision)}

## Fairness per protected group (favourable outcome: approval)
{fairness_table(metrics, decision)}

{INTERVAL_NOTE}

## Candidates trained on the same data
{candidates_table(candidates, run_id) if candidates else "- not recorded"}
"""
    md_path = folder / "gate_report.md"
    md_path.write_text(md)
    return [json_path, md_path], evidence


def worst_group(metrics: CandidateMetrics, decision: GateDecision) -> str:
    """The model card's sentence on the assessable group with the lowest measured disparate impact."""
    unassessed = _unassessed(metrics, decision)
    measured = [g for g in metrics.fairness
                if (g.attribute, g.group) not in unassessed and not math.isnan(g.disparate_impact)]  # fmt: skip
    if not measured:
        return "No group could be assessed, so it is not known for which group it works worst."
    worst: GroupFairness = min(measured, key=lambda g: g.disparate_impact)
    return (f"It works worst for `{worst.attribute}` = {worst.group} (approval rate {_fmt(worst.selection_rate_group)} "
            f"against {_fmt(worst.selection_rate_reference)} for {worst.reference}; disparate impact "
            f"{with_interval(worst.disparate_impact, worst.disparate_impact_ci)}).")  # fmt: skip


def unassessed_groups(decision: GateDecision) -> str:
    """The model card's sentence on the groups whose fairness the holdout could not show."""
    if not decision.not_assessable:
        return "Every protected group had enough holdout rows with both outcomes to be assessed."
    listed = "; ".join(f"`{g.attribute}` = {g.group} ({g.size} rows: {g.reason})" for g in decision.not_assessable)
    return f"Not assessed, so how fairly the model treats them is not shown: {listed}."


def _catalogue_rows(uc: UseCase) -> list[list[Any]]:
    from fairway.features.catalogue import catalogue
    from fairway.features.store import get_store

    report = catalogue(get_store(uc))
    return [
        [r["feature"], r["view"], r["dtype"], r["personal_data"], r["protected"], r["proxy_risk"], r["legal_basis"],
         r["retention_months"], r["justification"] or "-", r["services"]] for r in report.rows
    ]  # fmt: skip


def _explanation_evidence(run_id: str, folder: Path) -> tuple[Any, dict[str, Any]]:
    """The version's permutation importance (table; its plot downloaded into `folder`) and reference applicant."""
    import pandas as pd

    from fairway import registry
    from fairway.training import load_reference

    for name in ("permutation_importance.csv", "permutation_importance.png"):
        registry.download(run_id, f"evaluation/{name}", folder)
    return pd.read_csv(folder / "permutation_importance.csv"), load_reference(run_id)


def model_documentation(usecase: UseCase | str | None, version: str) -> dict[str, str]:
    """Write the technical documentation (Annex IV headings) and model card of an approved version."""
    from fairway import registry

    uc = resolve(usecase)
    mlc = registry.client()
    mv = mlc.get_model_version(uc.model_name, version)
    run = mlc.get_run(str(mv.run_id))
    tags, params = run.data.tags, run.data.params
    metrics = registry.run_metrics(str(mv.run_id))
    lineage = registry.load_dict(str(mv.run_id), "lineage/training_frame.json")
    gate = registry.load_dict(str(mv.run_id), "gate/gate_report.json")
    approval = registry.approval_of(mv)
    if approval.get("decision") != "approved":
        raise RuntimeError(f"{uc.model_name} v{version} has no approval record: document approved versions only")
    candidates = candidates_table(registry.sibling_candidates(str(mv.run_id)), str(mv.run_id))
    gate_decision = GateDecision.from_dict(gate)
    previous = mv.tags.get("fairway.previous_champion", "none")
    folder = reports_dir(uc, "documentation", version)
    plot = folder / "fairness_by_group.png"
    registry.download(str(mv.run_id), "evaluation/fairness_by_group.png", folder)
    importance, reference = _explanation_evidence(str(mv.run_id), folder)
    baseline_auc = float(importance["baseline_auc"].iloc[0])
    importance_table = _table(
        ["input", "AUC drop (mean)", "spread (std)"],
        [[r.feature, r.importance_mean, r.importance_std] for r in importance.itertuples()],
    )
    reference_table = _table(["input", "reference value"], [[name, value] for name, value in reference.items()])
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    md = f"""# {uc.model_name} v{version}: technical documentation and model card

Generated {generated} by Fairway from MLflow run `{mv.run_id}` and the Feast registry of use case `{uc.name}`.
Status: **champion** (approved {approval.get("decided_at")} by {approval.get("approver")}).

## 1. General description and intended purpose (Annex IV 1, Art. 13)
- Intended purpose: {uc.description}
- Provider team: {uc.owner}. Model: `{uc.model_name}` version {version}, candidate `{tags.get("fairway.candidate")}`
  ({params.get("algorithm")}; bias mitigation: {params.get("mitigation")}{", for " + params["mitigated_attribute"] if params.get("mitigated_attribute") else ""}).
- Output: the probability that `{uc.label.feature}` = {uc.label.positive_value} ({uc.label.description}); a customer is approved when it is
  below {uc.gate.decision_threshold}.
- Inputs: feature service `{lineage["model_feature_service"]}` ({len(uc.model_inputs)} features). Protected attributes
  ({", ".join(uc.protected_features)}) are not model inputs; they come from `{lineage["audit_feature_service"]}` for evaluation only.

## 2. Design and development (Annex IV 2)
Candidates trained on the same data (choice rule: the best AUC among candidates within the fairness thresholds,
else the fairest):

{candidates}

### Data (Art. 10)
- Snapshot months {", ".join(lineage["window_months"])}, labels as known at the end of {lineage["window_end"]};
  holdout month {lineage["holdout_month"]}.
- Rows: {lineage["rows"]} ({lineage["train_rows"]} training, {lineage["holdout_rows"]} holdout, {lineage["dropped_rows"]} left out for missing features);
  share of `{uc.label.feature}` = {uc.label.positive_value}: {_fmt(lineage["positive_rate"])}.
- Dataset fingerprint (SHA-256): `{lineage["fingerprint"]}`; code revision `{lineage.get("code_revision", tags.get("fairway.code_revision"))}`.

Data catalogue of the features:

{_table(["feature", "view", "type", "personal data", "protected", "proxy risk", "legal basis", "retention (months)", "justification", "services"], _catalogue_rows(uc))}

Erasure and retention (GDPR Art. 17, Art. 5(1)(e)): an erasure request removes the person from the raw data, the
feature store, the stored training frames, the prediction records and the decision log (`fairway erase`, DAG
`erasure`; a receipt keeps only a keyed hash of the id). This model stays in use: it holds fitted parameters, not
the person's record, and the next training run builds its frame without them. Records about people are deleted
after {uc.entity.tags.retention_months} months (DAG `retention`).

## 3. Performance (Annex IV 3 and 4, Art. 15)
On the holdout month {lineage["holdout_month"]} ({lineage["holdout_rows"]} customers): AUC {_fmt(metrics.auc)}, accuracy {_fmt(metrics.accuracy)},
Brier score {_fmt(metrics.brier)}. {"No champion before this version." if metrics.champion_auc is None else f"Champion before this version, on the same holdout: AUC {_fmt(metrics.champion_auc)}."}

## 4. Fairness per protected group
{fairness_table(metrics, gate_decision)}

{INTERVAL_NOTE}

Groups not assessable (fewer than {uc.gate.min_group_rows} rows, or without both outcomes, in the group or its
reference): their metrics are shown above, the gate applied no rule to them.

{not_assessable_list(gate_decision)}

![approval, true-positive and false-positive rates by group](fairness_by_group.png)

## 5. Explanations (Art. 13(3)(b), Art. 86)
What the model relies on: permutation importance on the holdout month, the drop of the holdout AUC (from
{_fmt(baseline_auc)}) when one input's values are shuffled across rows (mean and spread of 5 seeded shuffles). An
input near 0 is not used; a negative value is noise.

{importance_table}

![permutation importance on the holdout](permutation_importance.png)

Every decision (batch records, online answers and the decision log) carries its reason codes: the up to three
inputs that raise the person's score most compared with the reference applicant below (median of each number,
most frequent category of the training rows), with the person's value, the reference value and the effect in
score points.

{reference_table}

## 6. Risk management: the fairness gate (Art. 9)
Decision **{gate["decision"]}** against the thresholds of `{uc.name}`; gate report SHA-256 `{mv.tags.get("fairway.gate_report_sha256")}`.

{rules_table(gate_decision)}

## 7. Human oversight (Art. 14)
- Decision: {approval.get("decision")} by **{approval.get("approver")}** ({approval.get("mode")} mode) at {approval.get("decided_at")}.
- Comment: {approval.get("comment") or "(none given)"}
- The approval covers the evidence with SHA-256 `{approval.get("evidence_sha256")}`.
- The approval and the promotion are entries of Fairway's signed, hash-chained promotion ledger, bound to the model
  files' SHA-256, the training frame's fingerprint and the gate report's SHA-256; `fairway verify` re-checks them.
- To stop the model: the `model_control` DAG (action stop, with a reason) or `fairway stop --reason TEXT`. The
  service then refuses every decision with the reason within seconds and batch scoring refuses to run; a rollback
  to an earlier approved version needs a person's approval in the same DAG. Moving the MLflow alias by hand does
  not change which version may score.

## 8. Model card for deployers (Art. 13)
- Works as measured above for the population of the training window. {worst_group(metrics, gate_decision)}
- {unassessed_groups(gate_decision)}
- Known limitations: trained on {len(lineage["window_months"])} months of data; customers whose situation differs
  from that window (for example after an income shock) may be scored less accurately. Features with proxy risk
  are listed in the catalogue above with their justification.

## 9. Lifecycle and post-market monitoring (Annex IV 6 and 9, Art. 72)
- Previous champion: {previous}. Every gate decision, approval, promotion, stop and rollback is kept in the promotion
  ledger; the MLflow registry mirrors them on each version's tags.
- Monitoring: monthly data drift (retraining requested when the share of drifted columns exceeds
  {uc.drift.share_of_drifted_columns_max}) and, once labels arrive, performance and the fairness rules above.
"""
    md_path = folder / "model_documentation.md"
    md_path.write_text(md)
    html_path = folder / "model_documentation.html"
    html_path.write_text(render_html(md, f"{uc.model_name} v{version}"))
    for path in (md_path, html_path, plot, folder / "permutation_importance.png"):
        mlc.log_artifact(str(mv.run_id), str(path), "documentation")
    mlc.set_model_version_tag(
        uc.model_name, version, "fairway.documentation", f"runs:/{mv.run_id}/documentation/model_documentation.html"
    )
    return {"markdown": str(md_path), "html": str(html_path)}
