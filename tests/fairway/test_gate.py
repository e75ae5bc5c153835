"""The gate as a pure function: every rule, NaN handling, the champion rule, groups that are not assessable, the
choice rule and its distance, reading old reports, what the report and the approver show, and a property test
that a candidate passes exactly when every rule holds."""

import json
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairway.config import GateSpec
from fairway.gate import (
    CandidateMetrics,
    GateDecision,
    GroupFairness,
    choose,
    evaluate,
    fairness_distance,
    fairness_passed,
)

T = GateSpec(
    disparate_impact_min=0.8, disparate_impact_max=1.25, statistical_parity_max_abs=0.1,
    equal_opportunity_max_abs=0.1, auc_min=0.65, max_auc_drop_vs_champion=0.02, approval_mode="human",
    decision_threshold=0.5,
)  # fmt: skip


def group(attribute="citizenship", di=1.0, spd=0.0, eod=0.0, name="a", size=100) -> GroupFairness:
    return GroupFairness(attribute, name, "b", size, 100, 0.5, 0.5, di, spd, eod, 0.0, 0.0, 0.0)


def unassessable(attribute="citizenship", name="c", di=0.3) -> GroupFairness:
    reason = "12 rows, fewer than gate.min_group_rows 30"
    return replace(group(attribute, di=di, spd=-0.4, eod=math.nan, name=name, size=12), assessable=False, reason=reason)


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
    groups=st.lists(st.tuples(st.integers(0, 2), st.booleans(), values, values, values), min_size=1, max_size=5),
    auc=st.floats(min_value=0.5, max_value=0.9),
    champion=st.one_of(st.none(), st.floats(min_value=0.5, max_value=0.9)),
)
def test_a_candidate_passes_exactly_when_every_rule_holds(groups, auc, champion) -> None:
    built = []
    for i, (attr, assessable, di, spd, eod) in enumerate(groups):
        g = group(f"attr{attr}", di, spd, eod, name=f"g{i}")
        built.append(g if assessable else replace(g, assessable=False, reason="too small"))
    candidate = metrics(auc=auc, champion=champion, groups=built)

    def holds(x: float, low: float, high: float) -> bool:
        return not math.isnan(x) and low <= x <= high

    attributes = {attr for attr, *_ in groups}
    expected = all(
        holds(di, 0.8, 1.25) and holds(spd, -0.1, 0.1) and holds(eod, -0.1, 0.1)
        for _, assessable, di, spd, eod in groups if assessable
    ) and all(any(a == attr and ok for a, ok, *_ in groups) for attr in attributes) \
        and auc >= 0.65 and (champion is None or auc >= champion - 0.02)  # fmt: skip
    decision = evaluate(candidate, T)
    assert decision.passed is expected
    assert decision.passed == (not decision.reasons)
    assert len(decision.not_assessable) == sum(not ok for _, ok, *_ in groups)
    assert (fairness_distance(candidate, T) == 0) == fairness_passed(candidate, T)


def test_a_group_that_is_not_assessable_gets_no_rule_but_is_listed() -> None:
    decision = evaluate(metrics(groups=[group(), unassessable()]), T)
    assert decision.passed  # its DI 0.3 and unmeasurable EOD are reported, not judged
    assert [r.subject for r in decision.rules if r.rule == "disparate_impact"] == ["citizenship: a vs b"]
    listed = decision.as_dict()["not_assessable"]
    assert listed == [{"attribute": "citizenship", "group": "c", "reference": "b", "size": 12, "reference_size": 100,
                       "reason": "12 rows, fewer than gate.min_group_rows 30", "assessable": False}]  # fmt: skip
    assert fairness_passed(metrics(groups=[group(), unassessable()]), T)


def test_the_gate_applies_min_group_rows_to_the_sizes_it_is_given() -> None:
    old = group(size=12)  # stored before assessability existed: assessable by default
    decision = evaluate(metrics(groups=[group("sex"), old]), T)
    assert [g.reason for g in decision.not_assessable] == ["12 rows, fewer than gate.min_group_rows 30"]
    small_reference = replace(group(), reference_size=29)
    reason = evaluate(metrics(groups=[group("sex"), small_reference]), T).not_assessable[0].reason
    assert reason == "reference b: 29 rows, fewer than gate.min_group_rows 30"
    assert evaluate(metrics(groups=[old]), T.model_copy(update={"min_group_rows": 12})).not_assessable == []


def test_an_attribute_without_any_assessable_group_fails() -> None:
    decision = evaluate(
        metrics(groups=[group("sex"), unassessable("citizenship"), unassessable("citizenship", "d")]), T
    )
    assert not decision.passed
    assert [(r.rule, r.subject) for r in decision.rules if not r.passed] == [("assessable_groups", "citizenship")]
    assert decision.reasons == [
        "assessable_groups [citizenship] = 0: no group could be assessed (required >= 1 group with >= 30 rows and "
        "both outcomes, against such a reference), the model's fairness for this attribute cannot be shown: FAIL"
    ]
    assert [g.group for g in decision.not_assessable] == ["c", "d"]
    assert not fairness_passed(metrics(groups=[unassessable()]), T)


def test_unmeasurable_metrics_do_not_rank_as_fairest() -> None:
    unmeasurable = metrics(auc=0.80, groups=[group(spd=math.nan, eod=math.nan)])
    small_excess = metrics(auc=0.70, groups=[group(di=0.78)])
    assert fairness_distance(unmeasurable, T) == pytest.approx(2.0)  # one penalty per unmeasurable rule
    assert fairness_distance(small_excess, T) == pytest.approx(0.02)
    assert choose({"nan": unmeasurable, "small": small_excess}, T) == "small"
    all_nan = metrics(auc=0.9, groups=[group(di=math.nan, spd=math.nan, eod=math.nan)])
    assert choose({"nan": all_nan, "unfair": metrics(groups=[group(di=0.5, spd=-0.3, eod=0.3)])}, T) == "unfair"
    # groups that are not assessable are left out of the distance, like they are left out of the rules
    assert fairness_distance(metrics(groups=[group(), unassessable(di=math.nan)]), T) == 0.0
    assert fairness_distance(metrics(groups=[unassessable()]), T) == pytest.approx(1.0)


def test_old_reports_without_the_new_fields_are_read_with_defaults() -> None:
    stored = json.loads(json.dumps(metrics(groups=[group()]).as_dict()))
    for g in stored["fairness"]:
        for name in ("assessable", "reason", "disparate_impact_ci", "statistical_parity_ci", "equal_opportunity_ci"):
            del g[name]
    read = CandidateMetrics.from_dict(stored)
    assert read.fairness[0].assessable and read.fairness[0].reason is None
    assert all(math.isnan(v) for v in read.fairness[0].disparate_impact_ci)
    report = evaluate(read, T).as_dict()
    del report["not_assessable"]
    assert GateDecision.from_dict(report).not_assessable == []


def test_metrics_and_decisions_survive_json() -> None:
    kept = metrics(groups=[replace(group(), disparate_impact_ci=(0.9, 1.1)), unassessable()])
    read = CandidateMetrics.from_dict(json.loads(json.dumps(kept.as_dict())))
    assert json.dumps(read.as_dict()) == json.dumps(kept.as_dict())  # NaN != NaN, so compared as JSON
    assert read.fairness[0].disparate_impact_ci == (0.9, 1.1)  # a tuple again, not the JSON list
    assert read.fairness[1].reason == kept.fairness[1].reason and not read.fairness[1].assessable
    decision = evaluate(kept, T)
    assert GateDecision.from_dict(json.loads(json.dumps(decision.as_dict()))) == decision


def test_the_report_and_the_approval_form_show_intervals_and_groups_not_assessable(home) -> None:
    from fairway.config import load_usecase
    from fairway.documentation import write_gate_report
    from fairway.promotion import approval_summary

    uc = load_usecase("credit_risk")
    fair = replace(group(), disparate_impact=0.83, disparate_impact_ci=(0.71, 0.95), statistical_parity=-0.05,
                   statistical_parity_ci=(-0.09, -0.01), equal_opportunity=0.02, equal_opportunity_ci=(-0.03, 0.07))  # fmt: skip
    candidate = metrics(groups=[fair, unassessable()])
    decision = evaluate(candidate, uc.gate)
    files, evidence = write_gate_report(uc, "7", "baseline", candidate, decision)
    report = json.loads(files[0].read_text())
    assert report["not_assessable"] == decision.as_dict()["not_assessable"]
    assert report["metrics"]["fairness"][0]["disparate_impact_ci"] == [0.71, 0.95]
    assert report["metrics"]["fairness"][1]["assessable"] is False
    md = files[1].read_text()
    assert "| 0.830 [0.710, 0.950] | -0.050 [-0.090, -0.010] | 0.020 [-0.030, 0.070] | yes |" in md
    assert "citizenship: c vs b (12 / 100 rows): not assessable, 12 rows, fewer than gate.min_group_rows 30" in md
    assert "| no: 12 rows, fewer than gate.min_group_rows 30 |" in md and "nan" not in md

    form = approval_summary(uc, "7", "baseline", candidate, decision, files[1], evidence)
    assert "DI 0.83 [0.71, 0.95], SPD -0.05 [-0.09, -0.01], EOD +0.02 [-0.03, +0.07]" in form
    assert "- citizenship c vs b (n 12 / 100, not assessed): DI 0.30, SPD -0.40, EOD not measurable" in form
    assert "- citizenship: c vs b (12 / 100 rows): not assessable, 12 rows, fewer than gate.min_group_rows 30" in form
    assert f"Evidence SHA-256: `{evidence}`" in form
