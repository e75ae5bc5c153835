"""Evidence documents: the gate report of a candidate and the model documentation of an approved version.

The model documentation follows the headings of AI Act Annex IV (technical documentation) with a model card
for deployers (Art. 13). Every number comes from the MLflow registry and the Feast catalogue of that version;
the documents are written under FAIRWAY_HOME/reports and attached to the version's run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fairway.config import UseCase, paths, resolve
from fairway.fairness import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, worst_disparate_impact
from fairway.gate import CandidateMetrics, GateDecision, GroupFairness, fairness_distance
from fairway.markdown import cell_text, table

OWNER_MARKER = "**To be completed by the provider:**"

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
    return cell_text(value, digits)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return table(header, rows)


def owner(what: str) -> str:
    """The marker of a section the provider must write: never filled in by Fairway."""
    return f"{OWNER_MARKER} {what}"


_LOCAL_IMAGE = re.compile(r'(<img\b[^>]*\bsrc=")([A-Za-z0-9_.-]+\.png)(")')


def embed_images(html_text: str, folder: Path) -> str:
    """Local PNGs referenced by name become data: URIs, so the page shows them wherever it is opened (the Fairway
    view, MLflow's artifact view, which shows HTML from a blob: URL where relative links cannot resolve, a bundle
    on a laptop). A name without a file next to the page raises."""

    def inline(match: re.Match[str]) -> str:
        path = folder / match.group(2)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} of the document does not exist")
        return f"{match.group(1)}data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}{match.group(3)}"

    return _LOCAL_IMAGE.sub(inline, html_text)


def render_html(markdown_text: str, title: str, images: Path | None = None) -> str:
    """The Markdown as a standalone HTML page; with `images`, the PNGs it references are embedded from there."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    page = HTML_PAGE.format(title=html.escape(title), body=body)
    return embed_images(page, images) if images is not None else page


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


def error_rates_table(metrics: CandidateMetrics) -> str:
    """Beside the gate's metrics: each group's accuracy and false-positive rate against its reference's, and the
    average-odds difference (mean of the true- and false-positive rate differences)."""
    return _table(
        ["attribute", "group vs reference", "accuracy (group / ref)", "accuracy difference",
         "false-positive rate (group / ref)", "false-positive rate difference", "average odds difference"],
        [[g.attribute, f"{g.group} vs {g.reference}", f"{_fmt(g.accuracy_group)} / {_fmt(g.accuracy_reference)}",
          g.accuracy_difference, f"{_fmt(g.false_positive_rate_group)} / {_fmt(g.false_positive_rate_reference)}",
          g.false_positive_rate_difference, g.average_odds_difference] for g in metrics.fairness],
    )  # fmt: skip


ERROR_RATES_NOTE = (
    "Accuracy: share of decisions that match the observed outcome. False-positive rate: share approved among the "
    "customers whose outcome was unfavourable. Differences are group minus reference; the gate has no rule on "
    "them, they show where the model errs more."
)


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


def candidate_fairness(uc: UseCase, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidates of a training run with the fairness side of the trade-off: each trained one's fairness
    distance (gate.fairness_distance, 0 within every fairness threshold) and its disparate impact furthest from
    parity, read from its run's metrics."""
    from fairway import registry

    enriched = []
    for c in candidates:
        extra: dict[str, Any] = {"fairness_distance": None, "worst_disparate_impact": None}
        if c.get("status") != "failed" and c.get("run_id"):
            m = registry.run_metrics(str(c["run_id"]))
            extra = {"fairness_distance": fairness_distance(m, uc.gate),
                     "worst_disparate_impact": worst_disparate_impact(g.disparate_impact for g in m.fairness)}  # fmt: skip
        enriched.append({**c, **extra})
    return enriched


def candidates_table(candidates: list[dict[str, Any]], registered_run: str) -> str:
    """The candidates trained on the same frame, with both sides of the fairness/accuracy trade-off; a failed one
    with its reason."""

    def trained(c: dict[str, Any]) -> bool:
        return c["status"] != "failed"

    return _table(
        ["candidate", "status", "AUC", "accuracy", "Brier", "fairness distance", "worst disparate impact",
         "within fairness thresholds", "registered"],
        [[c["candidate"], "trained" if trained(c) else f"failed: {' '.join(str(c['failure']).split())}", c["auc"],
          c["accuracy"], c["brier"], c.get("fairness_distance") if trained(c) else "-",
          c.get("worst_disparate_impact") if trained(c) else "-",
          c["fairness_passed"] if trained(c) else "-", "yes" if c["run_id"] == registered_run else "no"]
         for c in candidates],
    )  # fmt: skip


def tradeoff(candidates: list[dict[str, Any]], registered_run: str) -> str:
    """What the registered candidate's fairness cost in AUC: against the candidate with the best AUC."""
    trained = [c for c in candidates if c["status"] != "failed" and c.get("auc") is not None]
    chosen = next((c for c in trained if c["run_id"] == registered_run), None)
    if chosen is None or len(trained) < 2:
        return "Only one candidate was trained on this data: there is no trade-off to show."
    best = max(trained, key=lambda c: float(c["auc"]))
    if best["run_id"] == registered_run:
        return (f"The registered candidate `{chosen['candidate']}` has the best AUC of the candidates "
                f"({_fmt(chosen['auc'])}): its fairness cost no AUC.")  # fmt: skip
    fairness = ""
    if best.get("fairness_distance") is not None and chosen.get("fairness_distance") is not None:
        fairness = (f"; its fairness distance is {_fmt(chosen['fairness_distance'])} against "
                    f"{_fmt(best['fairness_distance'])}")  # fmt: skip
    return (f"The registered candidate `{chosen['candidate']}` has AUC {_fmt(chosen['auc'])}, the best candidate "
            f"by AUC (`{best['candidate']}`) {_fmt(best['auc'])}: the fairness of the registered candidate cost "
            f"{_fmt(float(best['auc']) - float(chosen['auc']))} AUC and {_fmt(float(best['accuracy']) - float(chosen['accuracy']))} "
            f"accuracy{fairness}.")  # fmt: skip


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_gate_report(
    uc: UseCase,
    version: str,
    candidate: str,
    metrics: CandidateMetrics,
    decision: GateDecision,
    candidates: list[dict[str, Any]] | None = None,
    run_id: str = "",
    model_sha256: str = "",
    dataset_fingerprint: str = "",
) -> tuple[list[Path], str]:
    """gate_report.json and gate_report.md for a version; returns the files and the SHA-256 of the JSON (the
    evidence an approver signs off). `candidates`: every candidate of its training run, failed ones included;
    `model_sha256` and `dataset_fingerprint` bind the report to the model files and the training frame."""
    folder = reports_dir(uc, "gate", version)
    generated = _utc_now()
    report = {
        "model": uc.model_name,
        "version": version,
        "candidate": candidate,
        "usecase": uc.name,
        "generated_at": generated,
        "model_sha256": model_sha256 or None,
        "dataset_fingerprint": dataset_fingerprint or None,
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

- Evaluated at {generated} (UTC).
- Model files SHA-256: `{model_sha256 or "not recorded"}`
- Training frame fingerprint (SHA-256): `{dataset_fingerprint or "not recorded"}`

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

## Accuracy and error rates per protected group
{error_rates_table(metrics)}

{ERROR_RATES_NOTE}

## Candidates trained on the same data
{candidates_table(candidates, run_id) if candidates else "- not recorded"}

{tradeoff(candidates, run_id) if candidates else ""}
"""
    md_path = folder / "gate_report.md"
    md_path.write_text(md)
    return [json_path, md_path], evidence


def _assessed(metrics: CandidateMetrics, decision: GateDecision) -> list[GroupFairness]:
    unassessed = _unassessed(metrics, decision)
    return [g for g in metrics.fairness if (g.attribute, g.group) not in unassessed]


def _finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def worst_groups(metrics: CandidateMetrics, decision: GateDecision) -> list[str]:
    """For which assessable group the model works worst, by three measures, each stated: the lowest disparate
    impact (approvals), the lowest accuracy (groups and references alike) and the largest error-rate gap
    (|average odds difference|)."""
    assessed = _assessed(metrics, decision)
    if not assessed:
        return ["No group could be assessed, so it is not known for which group it works worst."]
    found = []
    by_di = [g for g in assessed if _finite(g.disparate_impact)]
    if by_di:
        w = min(by_di, key=lambda g: g.disparate_impact)
        found.append(f"Approvals (lowest disparate impact): `{w.attribute}` = {w.group}, approval rate "
                     f"{_fmt(w.selection_rate_group)} against {_fmt(w.selection_rate_reference)} for {w.reference} "
                     f"(disparate impact {with_interval(w.disparate_impact, w.disparate_impact_ci)}).")  # fmt: skip
    sides = [(g.attribute, g.group, g.accuracy_group) for g in assessed] + \
        [(g.attribute, g.reference, g.accuracy_reference) for g in assessed]  # fmt: skip
    sides = [s for s in sides if _finite(s[2])]
    if sides:
        attribute, group, accuracy = min(sides, key=lambda s: s[2])
        found.append(f"Accuracy (lowest share of decisions matching the outcome): `{attribute}` = {group}, "
                     f"accuracy {_fmt(accuracy)} against {_fmt(metrics.accuracy)} overall.")  # fmt: skip
    else:
        found.append("Accuracy per group was not recorded for this version.")
    by_odds = [g for g in assessed if _finite(g.average_odds_difference)]
    if by_odds:
        w = max(by_odds, key=lambda g: abs(g.average_odds_difference))
        found.append(f"Error rates (largest average-odds difference): `{w.attribute}` = {w.group} against "
                     f"{w.reference}, {_fmt(w.average_odds_difference)} (false-positive rate difference "
                     f"{_fmt(w.false_positive_rate_difference)}, equal opportunity {_fmt(w.equal_opportunity)}).")  # fmt: skip
    return found


def worst_group(metrics: CandidateMetrics, decision: GateDecision) -> str:
    """The model card's sentence on where the model works worst (every measure of `worst_groups`)."""
    return "It works worst for: " + " ".join(worst_groups(metrics, decision))


def unassessed_groups(decision: GateDecision) -> str:
    """The model card's sentence on the groups whose fairness the holdout could not show."""
    if not decision.not_assessable:
        return "Every protected group had enough holdout rows with both outcomes to be assessed."
    listed = "; ".join(f"`{g.attribute}` = {g.group} ({g.size} rows: {g.reason})" for g in decision.not_assessable)
    return f"Not assessed, so how fairly the model treats them is not shown: {listed}."


def catalogue_rows(uc: UseCase) -> list[dict[str, Any]]:
    """The Feast catalogue of the use case's features (tags as Feast holds them)."""
    from fairway.features.catalogue import catalogue
    from fairway.features.store import get_store

    return list(catalogue(get_store(uc)).rows)


def catalogue_table(uc: UseCase) -> str:
    return _table(
        ["feature", "view", "type", "personal data", "protected", "proxy risk", "legal basis", "retention (months)",
         "justification", "services"],
        [[r["feature"], r["view"], r["dtype"], r["personal_data"], r["protected"], r["proxy_risk"], r["legal_basis"],
          r["retention_months"], r["justification"] or "-", r["services"]] for r in catalogue_rows(uc)],
    )  # fmt: skip


def label_rates(uc: UseCase, lineage: dict[str, Any]) -> str:
    """The data's known bias: the favourable-outcome rate of each protected group in the training rows (the
    labels the model learns from), against its reference; or why the frame cannot be read any more."""
    from fairway.fairness import group_mask
    from fairway.training import load_frame

    try:
        train, _ = load_frame(lineage)
    except RuntimeError as error:  # erased by retention, or FAIRWAY_HOME reset
        return f"The training frame cannot be read any more ({error}): the outcome rates are not shown."
    favourable = (train[uc.label.feature] == uc.label.favourable_value).to_numpy()
    rows = []
    for attr in uc.protected_attributes:
        reference = favourable[group_mask(train, attr.feature, attr.groups[attr.reference])]
        reference_rate = float(reference.mean()) if len(reference) else math.nan
        for group, spec in attr.groups.items():
            mask = group_mask(train, attr.feature, spec)
            rate = float(favourable[mask].mean()) if mask.any() else math.nan
            rows.append([attr.feature, group + (" (reference)" if group == attr.reference else ""), int(mask.sum()),
                         rate, "-" if group == attr.reference else rate - reference_rate])  # fmt: skip
    return _table(
        ["attribute", "group", "training rows", f"share with {uc.label.feature} = {uc.label.favourable_value}",
         "difference to reference"], rows,
    )  # fmt: skip


def threshold_rationale(uc: UseCase) -> str:
    """Every threshold with its value and the provider's reason from the config, or the owner marker."""
    return _table(
        ["threshold", "value", "why (from the use-case config)"],
        [
            [path, value, uc.rationale.get(path) or owner(f"why {path} is {_fmt(value)}")]
            for path, value in uc.thresholds()
        ],
    )


def architecture(uc: UseCase) -> str:
    from fairway.deployment import facts

    return _table(["component", "setting", "as deployed"], [[f.component, f.setting, f.fact] for f in facts(uc)])


def energy(run: Any) -> str:
    """The candidate's training energy from its MLflow run (fairway.energy), or that it was not measured."""
    kwh, co2 = run.data.metrics.get("energy_kwh"), run.data.metrics.get("emissions_kg_co2eq")
    tags = run.data.tags
    if kwh is None and co2 is None:
        return "Energy was not measured for this version's training run."

    def amount(value: float | None) -> str:
        return "not measured" if value is None else f"{value:.3g}"

    return (f"Training this candidate used {amount(kwh)} kWh, estimated emissions {amount(co2)} kg CO2eq "
            f"({tags.get('fairway.energy_status', 'status not recorded')}; {tags.get('fairway.energy_tool', '')}"
            f"{', electricity mix of ' + tags['fairway.energy_country_iso_code'] if tags.get('fairway.energy_country_iso_code') else ''}"
            f"{'; ' + tags['fairway.energy_method'] if tags.get('fairway.energy_method') else ''}).")  # fmt: skip


def _explanation_evidence(run_id: str, folder: Path) -> tuple[Any, dict[str, Any]]:
    """The version's permutation importance (table; its plot downloaded into `folder`) and reference applicant."""
    import pandas as pd

    from fairway import registry
    from fairway.training import load_reference

    for name in ("permutation_importance.csv", "permutation_importance.png"):
        registry.download(run_id, f"evaluation/{name}", folder)
    return pd.read_csv(folder / "permutation_importance.csv"), load_reference(run_id)


IMAGES = ("fairness_by_group.png", "permutation_importance.png")


@dataclass(frozen=True)
class VersionEvidence:
    """Everything the documents of one approved version are written from (MLflow, the gate report, Feast)."""

    uc: UseCase
    version: str
    run_id: str
    run: Any
    version_tags: dict[str, str]
    metrics: CandidateMetrics
    lineage: dict[str, Any]
    gate: dict[str, Any]
    decision: GateDecision
    approval: dict[str, str]
    candidates: list[dict[str, Any]]
    folder: Path


def version_evidence(usecase: UseCase | str | None, version: str, kind: str = "documentation") -> VersionEvidence:
    """Read an approved version's evidence; refused for a version without an approval."""
    from fairway import registry

    uc = resolve(usecase)
    mv = registry.client().get_model_version(uc.model_name, version)
    run_id = str(mv.run_id)
    approval = registry.approval_of(mv)
    if approval.get("decision") != "approved":
        raise RuntimeError(f"{uc.model_name} v{version} has no approval record: document approved versions only")
    gate = registry.load_dict(run_id, "gate/gate_report.json")
    candidates = gate.get("candidates") or registry.sibling_candidates(run_id)
    if candidates and "fairness_distance" not in candidates[0]:  # a report written before the trade-off was kept
        candidates = candidate_fairness(uc, candidates)
    return VersionEvidence(uc, str(version), run_id, registry.client().get_run(run_id), dict(mv.tags),
                           registry.run_metrics(run_id), registry.load_dict(run_id, "lineage/training_frame.json"),
                           gate, GateDecision.from_dict(gate), approval, candidates,
                           reports_dir(uc, kind, str(version)))  # fmt: skip


def _documentation_markdown(e: VersionEvidence, importance: Any, reference: dict[str, Any]) -> str:
    uc, version, metrics, lineage, approval = e.uc, e.version, e.metrics, e.lineage, e.approval
    tags, params = e.run.data.tags, e.run.data.params
    baseline_auc = float(importance["baseline_auc"].iloc[0])
    importance_table = _table(
        ["input", "AUC drop (mean)", "spread (std)"],
        [[r.feature, r.importance_mean, r.importance_std] for r in importance.itertuples()],
    )
    reference_table = _table(["input", "reference value"], [[name, value] for name, value in reference.items()])
    mitigated = f", for {params['mitigated_attribute']}" if params.get("mitigated_attribute") else ""
    champion = ("No champion before this version." if metrics.champion_auc is None else
                f"Champion before this version, on the same holdout: AUC {_fmt(metrics.champion_auc)}.")  # fmt: skip
    worst = "\n".join(f"  - {line}" for line in worst_groups(metrics, e.decision))
    return f"""# {uc.model_name} v{version}: technical documentation and model card

Generated {_utc_now()} (UTC) by Fairway from MLflow run `{e.run_id}` and the Feast registry of use case `{uc.name}`.
Status: **champion** (approved {approval.get("decided_at")} by {approval.get("approver")}).

## 1. General description and intended purpose (Annex IV 1, Art. 13)
- Intended purpose: {uc.description}
- Provider team: {uc.owner}. Model: `{uc.model_name}` version {version}, candidate `{tags.get("fairway.candidate")}`
  ({params.get("algorithm")}; bias mitigation: {params.get("mitigation")}{mitigated}).
- Output: the probability that `{uc.label.feature}` = {uc.label.positive_value} ({uc.label.description}); a customer is approved when it is
  below {uc.gate.decision_threshold}.
- Inputs: feature service `{lineage["model_feature_service"]}` ({len(uc.model_inputs)} features). Protected attributes
  ({", ".join(uc.protected_features)}) are not model inputs; they come from `{lineage["audit_feature_service"]}` for evaluation only.

## 2. Design and development (Annex IV 2)
Candidates trained on the same data (choice rule: the best AUC among candidates within the fairness thresholds,
else the fairest, the smallest fairness distance):

{candidates_table(e.candidates, e.run_id)}

### Fairness and accuracy trade-off
{tradeoff(e.candidates, e.run_id)} Fairness distance: the sum of every fairness metric's excess beyond its
threshold (0 within all of them); worst disparate impact: the group ratio furthest from parity.

### Data (Art. 10)
- Snapshot months {", ".join(lineage["window_months"])}, labels as known at the end of {lineage["window_end"]};
  holdout month {lineage["holdout_month"]}.
- Rows: {lineage["rows"]} ({lineage["train_rows"]} training, {lineage["holdout_rows"]} holdout, {lineage["dropped_rows"]} left out for missing features);
  share of `{uc.label.feature}` = {uc.label.positive_value}: {_fmt(lineage["positive_rate"])}.
- Dataset fingerprint (SHA-256): `{lineage["fingerprint"]}`; code revision `{lineage.get("code_revision", tags.get("fairway.code_revision"))}`.

Data catalogue of the features:

{catalogue_table(uc)}

Erasure and retention (GDPR Art. 17, Art. 5(1)(e)): an erasure request removes the person from the raw data, the
feature store, the stored training frames, the prediction records and the decision log (`fairway erase`, DAG
`erasure`; a receipt keeps only a keyed hash of the id). This model stays in use: it holds fitted parameters, not
the person's record, and the next training run builds its frame without them. Records about people are deleted
after {uc.entity.tags.retention_months} months (DAG `retention`).

### Known biases of the data (Art. 10(2)(f))
The labels are observed outcomes: where they differ between groups, the model learns that difference. Share of
the favourable outcome per protected group in the {lineage["train_rows"]} training rows:

{label_rates(uc, lineage)}

{owner("known biases of how these outcomes came about (past lending decisions, who was offered credit, how defaults were recorded) and of how the data was collected.")}

### Architecture and cybersecurity (Annex IV 2(d), Art. 15(4-5))
Components and security measures as the deployment's settings show them when this document was written:

{architecture(uc)}

{owner("network segmentation, host hardening, access management of the stores and the keys, backups, and the results of security testing (none of these can be read from the settings).")}

## 3. Performance (Annex IV 3 and 4, Art. 15)
On the holdout month {lineage["holdout_month"]} ({lineage["holdout_rows"]} customers): AUC {_fmt(metrics.auc)}, accuracy {_fmt(metrics.accuracy)},
Brier score {_fmt(metrics.brier)}. {champion}

## 4. Fairness per protected group
{fairness_table(metrics, e.decision)}

{INTERVAL_NOTE}

Accuracy and error rates per group, beside the gate's metrics:

{error_rates_table(metrics)}

{ERROR_RATES_NOTE}

Groups not assessable (fewer than {uc.gate.min_group_rows} rows, or without both outcomes, in the group or its
reference): their metrics are shown above, the gate applied no rule to them.

{not_assessable_list(e.decision)}

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
Decision **{e.gate["decision"]}** against the thresholds of `{uc.name}`; gate report SHA-256 `{e.version_tags.get("fairway.gate_report_sha256")}`,
evaluated at {e.gate.get("generated_at") or "an unrecorded time"}.

{rules_table(e.decision)}

### Why the thresholds are what they are
{threshold_rationale(uc)}

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
- Works as measured above for the population of the training window. Where it works worst:
{worst}
- {unassessed_groups(e.decision)}
- Known limitations: trained on {len(lineage["window_months"])} months of data; customers whose situation differs
  from that window (for example after an income shock) may be scored less accurately. Features with proxy risk
  are listed in the catalogue above with their justification.

## 9. Lifecycle and post-market monitoring (Annex IV 6 and 9, Art. 72)
- Previous champion: {e.version_tags.get("fairway.previous_champion", "none")}. Every gate decision, approval, promotion, stop and rollback is kept in the promotion
  ledger; the MLflow registry mirrors them on each version's tags.
- Monitoring: monthly data drift (retraining requested when the share of drifted columns exceeds
  {uc.drift.share_of_drifted_columns_max}) and, once labels arrive, performance and the fairness rules above.

## 10. Energy
{energy(e.run)}
"""


def write_document(
    e: VersionEvidence, stem: str, markdown_text: str, title: str, images: tuple[str, ...] = ()
) -> dict[str, str]:
    """A document of the version as Markdown and HTML (images embedded) in its folder, logged to the version's
    MLflow run under `documentation/` with the images the Markdown links to."""
    from fairway import registry

    md_path = e.folder / f"{stem}.md"
    md_path.write_text(markdown_text)
    html_path = e.folder / f"{stem}.html"
    html_path.write_text(render_html(markdown_text, title, e.folder))
    mlc = registry.client()
    for path in (md_path, html_path, *(e.folder / name for name in images)):
        mlc.log_artifact(e.run_id, str(path), "documentation")
    return {"markdown": str(md_path), "html": str(html_path)}


def model_documentation(usecase: UseCase | str | None, version: str) -> dict[str, str]:
    """Write the technical documentation (Annex IV headings) and model card of an approved version."""
    from fairway import registry

    e = version_evidence(usecase, version)
    registry.download(e.run_id, "evaluation/fairness_by_group.png", e.folder)
    importance, reference = _explanation_evidence(e.run_id, e.folder)
    written = write_document(e, "model_documentation", _documentation_markdown(e, importance, reference),
                             f"{e.uc.model_name} v{version}", IMAGES)  # fmt: skip
    registry.client().set_model_version_tag(e.uc.model_name, version, "fairway.documentation",
                                            f"runs:/{e.run_id}/documentation/model_documentation.html")  # fmt: skip
    return written
