"""The gate as a pure function: every rule, NaN handling, the champion rule, the choice rule, and a property
test that a candidate passes exactly when every rule holds."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairway.config import GateSpec
from fairway.gate import CandidateMetrics, GroupFairness, choose, evaluate

T = GateSpec(
    disparate_impact_min=0.8, disparate_impact_max=1.25, statistical_parity_max_abs=0.1,
    equal_opportunity_max_abs=0.1, auc_min=0.65, max_auc_drop_vs_champion=0.02, approval_mode="human",
    decision_threshold=0.5,
)  # fmt: skip


def group(attribute="citizenship", di=1.0, spd=0.0, eod=0.0) -> GroupFairness:
    return GroupFairness(attribute, "a", "b", 100, 100, 0.5, 0.5, di, spd, eod, 0.0, 0.0, 0.0)


def metrics(auc=0.75, champion=None, groups=None) -> CandidateMetrics:
    return CandidateMetrics(auc=auc, accuracy=0.7, brier=0.2, fairness=groups or [group()], champion_auc=champion)


def test_a_fair_accurate_candidate_passes() -> None:
    decision = evaluate(metrics(), T)
    assert decision.passed and decision.decision == "pass" and decision.reasons == []
    assert [r.rule for r in decision.rules] == [
        "disparate_impact", "statistical_parity_difference", "equal_opportunity_difference", "auc_min"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("candidate", "failed_rule"),
    [
        (metrics(groups=[group(di=0.79)]), "disparate_impact"),
        (metrics(groups=[group(di=1.26)]), "disparate_impact"),
        (metrics(groups=[group(spd=-0.11)]), "statistical_parity_difference"),
        (metrics(groups=[group(eod=0.101)]), "equal_opportunity_difference"),
        (metrics(auc=0.64), "auc_min"),
        (metrics(auc=0.70, champion=0.73), "auc_vs_champion"),
        (metrics(groups=[group(di=math.nan)]), "disparate_impact"),
    ],
)
def test_each_rule_rejects(candidate: CandidateMetrics, failed_rule: str) -> None:
    decision = evaluate(candidate, T)
    assert not decision.passed
    assert [r.rule for r in decision.rules if not r.passed] == [failed_rule]
    assert decision.reasons[0].startswith(failed_rule)


def test_thresholds_are_inclusive_and_the_champion_margin_applies() -> None:
    assert evaluate(metrics(groups=[group(di=0.8, spd=-0.1, eod=0.1)], auc=0.65), T).passed
    assert evaluate(metrics(auc=0.71, champion=0.73), T).passed  # within the allowed drop of 0.02
    assert "not measurable" in evaluate(metrics(groups=[group(di=math.nan)]), T).reasons[0]


def test_choice_prefers_the_best_fair_candidate_else_the_fairest() -> None:
    fair_low = metrics(auc=0.68)
    fair_high = metrics(auc=0.70)
    unfair_best = metrics(auc=0.80, groups=[group(di=0.6)])
    assert choose({"a": fair_low, "b": fair_high, "c": unfair_best}, T) == "b"
    slightly_unfair = metrics(auc=0.70, groups=[group(di=0.78)])
    very_unfair = metrics(auc=0.90, groups=[group(di=0.5, spd=-0.3)])
    assert choose({"x": very_unfair, "y": slightly_unfair}, T) == "y"


values = st.one_of(st.floats(min_value=-0.3, max_value=1.6), st.just(math.nan))


@settings(max_examples=400, deadline=None)
@given(
    groups=st.lists(st.tuples(values, values, values), min_size=1, max_size=4),
    auc=st.floats(min_value=0.5, max_value=0.9),
    champion=st.one_of(st.none(), st.floats(min_value=0.5, max_value=0.9)),
)
def test_a_candidate_passes_exactly_when_every_rule_holds(groups, auc, champion) -> None:
    candidate = metrics(auc=auc, champion=champion, groups=[group(f"attr{i}", *g) for i, g in enumerate(groups)])

    def holds(x: float, low: float, high: float) -> bool:
        return not math.isnan(x) and low <= x <= high

    expected = all(
        holds(di, 0.8, 1.25) and holds(spd, -0.1, 0.1) and holds(eod, -0.1, 0.1) for di, spd, eod in groups
    ) and auc >= 0.65 and (champion is None or auc >= champion - 0.02)  # fmt: skip
    decision = evaluate(candidate, T)
    assert decision.passed is expected
    assert decision.passed == (not decision.reasons)
