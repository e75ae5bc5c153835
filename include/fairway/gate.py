"""The fairness gate: a pure decision from a candidate's metrics, the thresholds and the champion's AUC.

Rules (every protected attribute, every group against the reference group):
  - disparate impact (favourable-outcome rate of the group / of the reference) inside [min, max]
  - |statistical parity difference| <= bound
  - |equal opportunity difference| <= bound
  - AUC >= the minimum
  - AUC >= the champion's AUC on the same holdout minus the allowed drop (when there is a champion)
A metric that cannot be measured (an empty group: NaN) fails its rule. The candidate passes when every rule does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from fairway.config import GateSpec


@dataclass(frozen=True)
class GroupFairness:
    """Fairness of one group against the reference group of a protected attribute (favourable = approved)."""

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
            fairness=[GroupFairness(**g) for g in data["fairness"]],
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
        value = "not measurable" if self.value is None or math.isnan(self.value) else f"{self.value:.4f}"
        return f"{self.rule} [{self.subject}] = {value}, required {self.threshold}: {'pass' if self.passed else 'FAIL'}"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    rules: list[RuleResult] = field(default_factory=list)

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
        }


def _ok(value: float | None, low: float, high: float) -> bool:
    return value is not None and not math.isnan(value) and low <= value <= high


def evaluate(metrics: CandidateMetrics, thresholds: GateSpec) -> GateDecision:
    """Apply every rule; the order of the rules is the order of the report."""
    t = thresholds
    rules: list[RuleResult] = []
    for g in metrics.fairness:
        subject = f"{g.attribute}: {g.group} vs {g.reference}"
        rules.append(RuleResult(
            "disparate_impact", subject, g.disparate_impact, f"in [{t.disparate_impact_min}, {t.disparate_impact_max}]",
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
    rules.append(RuleResult("auc_min", "model", metrics.auc, f">= {t.auc_min}", _ok(metrics.auc, t.auc_min, math.inf)))
    if metrics.champion_auc is not None:
        floor = metrics.champion_auc - t.max_auc_drop_vs_champion
        rules.append(RuleResult(
            "auc_vs_champion", "model", metrics.auc,
            f">= champion {metrics.champion_auc:.4f} - {t.max_auc_drop_vs_champion}", _ok(metrics.auc, floor, math.inf),
        ))  # fmt: skip
    return GateDecision(all(r.passed for r in rules), rules)


def fairness_distance(metrics: CandidateMetrics, thresholds: GateSpec) -> float:
    """How far a candidate is from meeting the fairness rules (0 when it meets them); ranks 'the fairest'."""
    t, total = thresholds, 0.0
    for g in metrics.fairness:
        di = g.disparate_impact if not math.isnan(g.disparate_impact) else 0.0
        total += max(0.0, t.disparate_impact_min - di) + max(0.0, di - t.disparate_impact_max)
        total += max(0.0, abs(g.statistical_parity) - t.statistical_parity_max_abs)
        total += max(0.0, abs(g.equal_opportunity) - t.equal_opportunity_max_abs)
    return total


def fairness_passed(metrics: CandidateMetrics, thresholds: GateSpec) -> bool:
    fairness_rules = {"disparate_impact", "statistical_parity_difference", "equal_opportunity_difference"}
    return all(r.passed for r in evaluate(metrics, thresholds).rules if r.rule in fairness_rules)


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
