"""The fairness gate: a pure decision from a candidate's metrics, the thresholds and the champion's AUC.

Rules (every protected attribute, every assessable group against the reference group):
  - disparate impact (favourable-outcome rate of the group / of the reference) inside [min, max]
  - |statistical parity difference| <= bound
  - |equal opportunity difference| <= bound
  - at least one assessable group per attribute (`assessable_groups`, listed only when it fails)
  - AUC >= the minimum
  - AUC >= the champion's AUC on the same holdout minus the allowed drop (when there is a champion)

A group is assessable when it and its reference group each have at least `gate.min_group_rows` rows and both
outcomes (fairway.fairness.group_fairness decides and says why not; the gate also applies the row minimum to the
sizes it is given, so metrics stored before the minimum existed are judged by it too). A group that is not
assessable gets no rule: its metrics are still reported (NaN where they cannot be computed) and the decision lists
it with its size and the reason (`GateDecision.not_assessable`). When no group of an attribute is assessable,
the rule `assessable_groups` fails for that attribute: the model's fairness towards it cannot be shown, so the
model does not pass. A metric of an assessable group that cannot be measured (NaN) fails its rule. The
candidate passes when every rule does.

The rules apply to the point estimates. The bootstrap intervals stored with every metric (`*_ci`, see
fairway.fairness) are evidence for the approver, not part of the decision.

Choice among candidates (`choose`): the best AUC among those that pass every fairness rule, else the one with the
smallest fairness distance: the sum over the fairness rules of the excess beyond the threshold, where a metric
that cannot be measured, and an attribute without any assessable group, count `UNMEASURABLE_PENALTY` (1.0)
each. That is at least the largest excess a parity or opportunity difference (|x| <= 1) or a disparate impact
below the minimum (the minimum is at most 1) can have, so a candidate whose rules cannot be measured does not rank
as the fairest. Groups that are not assessable are left out of the distance as they are left out of the rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fairway.config import GateSpec

NAN_INTERVAL: tuple[float, float] = (math.nan, math.nan)
INTERVALS = ("disparate_impact_ci", "statistical_parity_ci", "equal_opportunity_ci")
FLOATS = ("selection_rate_group", "selection_rate_reference", "disparate_impact", "statistical_parity",
          "equal_opportunity", "false_positive_rate_difference", "average_odds_difference", "accuracy_difference",
          "accuracy_group", "accuracy_reference", "false_positive_rate_group", "false_positive_rate_reference")  # fmt: skip
FAIRNESS_RULES = frozenset(
    {"disparate_impact", "statistical_parity_difference", "equal_opportunity_difference", "assessable_groups"}
)
UNMEASURABLE_PENALTY = 1.0


def _interval(value: Any) -> tuple[float, float]:
    if value is None:
        return NAN_INTERVAL
    low, high = value
    return (math.nan if low is None else float(low), math.nan if high is None else float(high))


@dataclass(frozen=True)
class GroupFairness:
    """Fairness of one group against the reference group of a protected attribute (favourable = approved).

    `assessable` is False (with the `reason`) when the group or its reference is too small or lacks one of the
    outcomes; the `*_ci` fields are seeded bootstrap 95 % percentile intervals (fairway.fairness)."""

    attribute: str
    group: str
    reference: str
    group_size: int
    reference_size: int
    selection_rate_group: float
    selection_rate_reference: float
    disparate_impact: float
    statistical_parity: float
    equal_opportunity: float
    false_positive_rate_difference: float
    average_odds_difference: float
    accuracy_difference: float
    assessable: bool = True
    reason: str | None = None
    disparate_impact_ci: tuple[float, float] = NAN_INTERVAL
    statistical_parity_ci: tuple[float, float] = NAN_INTERVAL
    equal_opportunity_ci: tuple[float, float] = NAN_INTERVAL
    # the rates behind the differences, per side (NaN in metrics stored before they were recorded): accuracy is
    # the share of decisions that match the outcome, the false-positive rate the share approved among those whose
    # outcome was unfavourable
    accuracy_group: float = math.nan
    accuracy_reference: float = math.nan
    false_positive_rate_group: float = math.nan
    false_positive_rate_reference: float = math.nan

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupFairness:
        """Read a stored entry; entries written before a field existed get its default."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for name in FLOATS:  # a metric stored as JSON null (monitoring's strict-JSON summaries) is unmeasured
            if name in values and values[name] is None:
                values[name] = math.nan
        for name in INTERVALS:
            if name in values:
                values[name] = _interval(values[name])
        return cls(**values)


@dataclass(frozen=True)
class CandidateMetrics:
    auc: float
    accuracy: float
    brier: float
    fairness: list[GroupFairness]
    champion_auc: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateMetrics:
        return cls(
            auc=data["auc"],
            accuracy=data["accuracy"],
            brier=data["brier"],
            fairness=[GroupFairness.from_dict(g) for g in data["fairness"]],
            champion_auc=data.get("champion_auc"),
        )


@dataclass(frozen=True)
class RuleResult:
    rule: str
    subject: str
    value: float | None
    threshold: str
    passed: bool

    def describe(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        if self.rule == "assessable_groups":  # only listed when it fails: no group of the attribute is assessable
            return (f"assessable_groups [{self.subject}] = 0: no group could be assessed (required {self.threshold}), "
                    f"the model's fairness for this attribute cannot be shown: {verdict}")  # fmt: skip
        value = "not measurable" if self.value is None or math.isnan(self.value) else f"{self.value:.4f}"
        return f"{self.rule} [{self.subject}] = {value}, required {self.threshold}: {verdict}"


@dataclass(frozen=True)
class NotAssessable:
    """A group the gate applied no rule to, with its size and why."""

    attribute: str
    group: str
    reference: str
    size: int
    reference_size: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "assessable": False}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NotAssessable:
        return cls(data["attribute"], data["group"], data["reference"], int(data["size"]),
                   int(data.get("reference_size", 0)), str(data["reason"]))  # fmt: skip

    def describe(self) -> str:
        return (f"{self.attribute}: {self.group} vs {self.reference} ({self.size} / {self.reference_size} rows): "
                f"not assessable, {self.reason}")  # fmt: skip


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    rules: list[RuleResult] = field(default_factory=list)
    not_assessable: list[NotAssessable] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return "pass" if self.passed else "reject"

    @property
    def reasons(self) -> list[str]:
        return [r.describe() for r in self.rules if not r.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "passed": self.passed,
            "reasons": self.reasons,
            "rules": [asdict(r) for r in self.rules],
            "not_assessable": [g.as_dict() for g in self.not_assessable],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateDecision:
        """Read a stored gate report (reports written before `not_assessable` existed have none)."""
        return cls(
            bool(data["passed"]),
            [RuleResult(**r) for r in data["rules"]],
            [NotAssessable.from_dict(g) for g in data.get("not_assessable", [])],
        )


def not_assessable_reason(g: GroupFairness, thresholds: GateSpec) -> str | None:
    """Why the gate applies no rule to a group, or None when it is assessable."""
    if not g.assessable:
        return g.reason or "not assessable"
    minimum = thresholds.min_group_rows
    found = []
    if g.group_size < minimum:
        found.append(f"{g.group_size} rows, fewer than gate.min_group_rows {minimum}")
    if g.reference_size < minimum:
        found.append(f"reference {g.reference}: {g.reference_size} rows, fewer than gate.min_group_rows {minimum}")
    return "; ".join(found) or None


def _by_attribute(
    metrics: CandidateMetrics, thresholds: GateSpec
) -> Iterator[tuple[str, list[GroupFairness], list[NotAssessable]]]:
    """Per attribute (in the order of the metrics): its assessable groups and the others, with their reasons."""
    attributes = list(dict.fromkeys(g.attribute for g in metrics.fairness))
    for attribute in attributes:
        assessable, skipped = [], []
        for g in metrics.fairness:
            if g.attribute != attribute:
                continue
            reason = not_assessable_reason(g, thresholds)
            if reason is None:
                assessable.append(g)
            else:
                skipped.append(NotAssessable(g.attribute, g.group, g.reference, g.group_size, g.reference_size, reason))
        yield attribute, assessable, skipped


def _ok(value: float | None, low: float, high: float) -> bool:
    return value is not None and not math.isnan(value) and low <= value <= high


def _assessable_requirement(t: GateSpec) -> str:
    return f">= 1 group with >= {t.min_group_rows} rows and both outcomes, against such a reference"


def evaluate(metrics: CandidateMetrics, thresholds: GateSpec) -> GateDecision:
    """Apply every rule; the order of the rules is the order of the report."""
    t = thresholds
    rules: list[RuleResult] = []
    not_assessable: list[NotAssessable] = []
    for attribute, assessable, skipped in _by_attribute(metrics, t):
        not_assessable += skipped
        for g in assessable:
            subject = f"{g.attribute}: {g.group} vs {g.reference}"
            rules.append(RuleResult(
                "disparate_impact", subject, g.disparate_impact,
                f"in [{t.disparate_impact_min}, {t.disparate_impact_max}]",
                _ok(g.disparate_impact, t.disparate_impact_min, t.disparate_impact_max),
            ))  # fmt: skip
            rules.append(RuleResult(
                "statistical_parity_difference", subject, g.statistical_parity, f"|x| <= {t.statistical_parity_max_abs}",
                _ok(g.statistical_parity, -t.statistical_parity_max_abs, t.statistical_parity_max_abs),
            ))  # fmt: skip
            rules.append(RuleResult(
                "equal_opportunity_difference", subject, g.equal_opportunity, f"|x| <= {t.equal_opportunity_max_abs}",
                _ok(g.equal_opportunity, -t.equal_opportunity_max_abs, t.equal_opportunity_max_abs),
            ))  # fmt: skip
        if not assessable:
            rules.append(RuleResult("assessable_groups", attribute, 0.0, _assessable_requirement(t), False))
    rules.append(RuleResult("auc_min", "model", metrics.auc, f">= {t.auc_min}", _ok(metrics.auc, t.auc_min, math.inf)))
    if metrics.champion_auc is not None:
        floor = metrics.champion_auc - t.max_auc_drop_vs_champion
        rules.append(RuleResult(
            "auc_vs_champion", "model", metrics.auc,
            f">= champion {metrics.champion_auc:.4f} - {t.max_auc_drop_vs_champion}", _ok(metrics.auc, floor, math.inf),
        ))  # fmt: skip
    return GateDecision(all(r.passed for r in rules), rules, not_assessable)


def _excess(value: float, low: float, high: float) -> float:
    if math.isnan(value):
        return UNMEASURABLE_PENALTY
    return max(0.0, low - value) + max(0.0, value - high)


def fairness_distance(metrics: CandidateMetrics, thresholds: GateSpec) -> float:
    """How far a candidate is from meeting the fairness rules (0 when it meets them); ranks 'the fairest'. An
    unmeasurable metric counts UNMEASURABLE_PENALTY, as does an attribute without any assessable group; groups
    that are not assessable are left out."""
    t, total = thresholds, 0.0
    for _, assessable, _ in _by_attribute(metrics, t):
        if not assessable:
            total += UNMEASURABLE_PENALTY
        for g in assessable:
            total += _excess(g.disparate_impact, t.disparate_impact_min, t.disparate_impact_max)
            total += _excess(g.statistical_parity, -t.statistical_parity_max_abs, t.statistical_parity_max_abs)
            total += _excess(g.equal_opportunity, -t.equal_opportunity_max_abs, t.equal_opportunity_max_abs)
    return total


def fairness_passed(metrics: CandidateMetrics, thresholds: GateSpec) -> bool:
    return all(r.passed for r in evaluate(metrics, thresholds).rules if r.rule in FAIRNESS_RULES)


def choose(candidates: dict[str, CandidateMetrics], thresholds: GateSpec) -> str:
    """The candidate to register: the best AUC among those within the fairness thresholds, else the fairest
    (smallest fairness distance, then best AUC)."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    fair = [name for name, m in candidates.items() if fairness_passed(m, thresholds)]
    if fair:
        return max(fair, key=lambda name: (candidates[name].auc, name))
    return min(
        candidates, key=lambda name: (fairness_distance(candidates[name], thresholds), -candidates[name].auc, name)
    )
