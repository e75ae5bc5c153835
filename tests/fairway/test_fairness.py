"""fairway.fairness: which disparate impact is the worst one shown in tables, which groups can be assessed, the
bootstrap intervals against an independent plain loop, and merged groups measured as one."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fairway import gate
from fairway.config import UseCase, load_usecase
from fairway.fairness import BOOTSTRAP_RESAMPLES, deserved, group_fairness, worst_disparate_impact


def test_worst_disparate_impact_is_the_furthest_from_parity_on_a_log_scale() -> None:
    assert worst_disparate_impact([0.9, 1.3, 0.95]) == 1.3  # 1.3 is further from 1 than 0.9 (x 1/0.9 = 1.11)
    assert worst_disparate_impact([0.7, 1.3]) == 0.7
    assert worst_disparate_impact([0.8, math.nan]) == 0.8
    assert worst_disparate_impact([0.0, 0.5]) == 0.0  # nobody of the group approved
    assert worst_disparate_impact([math.nan]) is None and worst_disparate_impact([]) is None


@pytest.fixture(scope="module")
def uc() -> UseCase:
    return load_usecase("credit_risk")


def holdout(n: int = 3000, foreign: int | None = None, seed: int = 5) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with the credit_risk protected attributes and label, and approvals that favour nationals."""
    rng = np.random.default_rng(seed)
    citizenship = rng.choice(["foreign", "national"], n, p=[0.25, 0.75])
    if foreign is not None:
        citizenship = np.array(["foreign"] * foreign + ["national"] * (n - foreign))
    frame = pd.DataFrame({
        "sex": rng.choice(["female", "male"], n),
        "age": rng.integers(18, 80, n),
        "citizenship": citizenship,
        "default_12m": (rng.random(n) < 0.3).astype(int),
    })  # fmt: skip
    approval_rate = np.where(citizenship == "foreign", 0.55, 0.7)
    approved = (rng.random(n) < approval_rate).astype(int)
    return frame, approved


def plain_bootstrap(approved: np.ndarray, good: np.ndarray, rows: np.ndarray, seed: list[int]) -> list[tuple]:
    """(approval rate, true-positive rate or None) of each resample, one resample at a time."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        picked = rows[rng.integers(0, len(rows), len(rows))]
        a, f = approved[picked], good[picked]
        out.append((a.mean(), a[f == 1].mean() if (f == 1).any() else None))
    return out


def test_intervals_equal_a_plain_bootstrap_loop_and_hold_the_point_estimate(uc: UseCase) -> None:
    frame, approved = holdout()
    good = deserved(uc, frame)
    results = {(g.attribute, g.group): g for g in group_fairness(uc, frame, approved, good)}
    cases = [  # attribute and its position, group and its position, the reference's position, the rows of both
        ("sex", 0, "female", 0, 1, frame.sex == "female", frame.sex == "male"),
        ("age", 1, "under_30", 0, 1, frame.age < 30, frame.age >= 30),
        ("citizenship", 2, "foreign", 0, 1, frame.citizenship == "foreign", frame.citizenship == "national"),
    ]
    for attribute, a, group, k, ref, in_group, in_reference in cases:
        g = results[(attribute, group)]
        assert g.assessable and g.reason is None
        group_draws = plain_bootstrap(approved, good, np.flatnonzero(in_group), [0, a, k])
        reference_draws = plain_bootstrap(approved, good, np.flatnonzero(in_reference), [0, a, ref])
        di, spd, eod = [], [], []
        for (rate_g, tpr_g), (rate_r, tpr_r) in zip(group_draws, reference_draws, strict=True):
            if rate_r > 0:
                di.append(rate_g / rate_r)
            spd.append(rate_g - rate_r)
            if tpr_g is not None and tpr_r is not None:
                eod.append(tpr_g - tpr_r)
        for values, interval, point in [
            (di, g.disparate_impact_ci, g.disparate_impact),
            (spd, g.statistical_parity_ci, g.statistical_parity),
            (eod, g.equal_opportunity_ci, g.equal_opportunity),
        ]:
            expected = np.percentile(values, [2.5, 97.5])
            assert interval == pytest.approx(tuple(expected), rel=1e-12, abs=1e-12)
            assert interval[0] < point < interval[1]
    foreign = results[("citizenship", "foreign")]
    assert foreign.disparate_impact_ci[1] < 1  # the built-in bias is clear of the noise at this size
    again = {(g.attribute, g.group): g for g in group_fairness(uc, frame, approved, good)}
    assert again == results  # seeded


def test_small_or_single_outcome_groups_are_reported_but_not_assessable(uc: UseCase) -> None:
    frame, approved = holdout(n=1000, foreign=12)
    good = deserved(uc, frame)
    found = {(g.attribute, g.group): g for g in group_fairness(uc, frame, approved, good)}
    small = found[("citizenship", "foreign")]
    assert not small.assessable and small.group_size == 12
    assert small.reason == "12 rows, fewer than gate.min_group_rows 30"
    assert not math.isnan(small.disparate_impact)  # still measured and reported, with its (wide) interval
    assert small.disparate_impact_ci[0] <= small.disparate_impact <= small.disparate_impact_ci[1]
    assert found[("sex", "female")].assessable

    decision = gate.evaluate(gate.CandidateMetrics(0.75, 0.7, 0.2, list(found.values())), uc.gate)
    assert not decision.passed
    assert [(n.attribute, n.group, n.size) for n in decision.not_assessable] == [("citizenship", "foreign", 12)]
    assert [r.rule for r in decision.rules if not r.passed] == ["assessable_groups"]
    assert decision.reasons[0].startswith("assessable_groups [citizenship] = 0: no group could be assessed")

    # a group whose rows all have the same outcome: metrics not measurable, no rule
    frame.loc[frame.sex == "female", "default_12m"] = 0
    female = next(g for g in group_fairness(uc, frame, approved, deserved(uc, frame)) if g.group == "female")
    assert not female.assessable and "have the favourable outcome of default_12m" in (female.reason or "")
    assert math.isnan(female.disparate_impact) and all(math.isnan(v) for v in female.disparate_impact_ci)


def test_a_small_reference_makes_its_groups_not_assessable(uc: UseCase) -> None:
    frame, approved = holdout(n=1000, foreign=990)
    found = {(g.attribute, g.group): g for g in group_fairness(uc, frame, approved, deserved(uc, frame))}
    foreign = found[("citizenship", "foreign")]
    assert not foreign.assessable and foreign.reason == "reference national: 10 rows, fewer than gate.min_group_rows 30"


def test_min_group_rows_comes_from_the_config(uc: UseCase) -> None:
    data = uc.model_dump()
    data["gate"]["min_group_rows"] = 5
    loose = UseCase.model_validate(data)
    frame, approved = holdout(n=1000, foreign=12)
    foreign = next(g for g in group_fairness(loose, frame, approved, deserved(loose, frame)) if g.group == "foreign")
    assert foreign.assessable
    data["gate"]["min_group_rows"] = 0
    with pytest.raises(ValueError, match="min_group_rows"):
        UseCase.model_validate(data)
    del data["gate"]["min_group_rows"]
    assert UseCase.model_validate(data).gate.min_group_rows == 30  # existing configs stay valid


def test_a_merged_group_is_measured_as_one_group(uc: UseCase) -> None:
    data = uc.model_dump()
    data["protected_attributes"][2] = {
        "feature": "citizenship",
        "reference": "national",
        "groups": {"national": {"values": ["national"]}, "other": {"values": ["foreign", "stateless"]}},
    }
    merged = UseCase.model_validate(data)
    frame, approved = holdout(n=2000)
    rng = np.random.default_rng(9)
    frame.loc[rng.random(len(frame)) < 0.1, "citizenship"] = "stateless"
    good = deserved(merged, frame)
    citizenship = [g for g in group_fairness(merged, frame, approved, good) if g.attribute == "citizenship"]
    assert [g.group for g in citizenship] == ["other"]
    other = citizenship[0]
    in_group = frame.citizenship.isin(["foreign", "stateless"]).to_numpy()
    in_reference = (frame.citizenship == "national").to_numpy()
    assert (frame.citizenship == "stateless").sum() > 0 and (frame.citizenship == "foreign").sum() > 0
    assert (other.group_size, other.reference_size) == (in_group.sum(), in_reference.sum())
    rate_g, rate_r = approved[in_group].mean(), approved[in_reference].mean()
    tpr_g = approved[in_group & (good == 1)].mean()
    tpr_r = approved[in_reference & (good == 1)].mean()
    assert other.disparate_impact == pytest.approx(rate_g / rate_r, abs=1e-12)
    assert other.statistical_parity == pytest.approx(rate_g - rate_r, abs=1e-12)
    assert other.equal_opportunity == pytest.approx(tpr_g - tpr_r, abs=1e-12)
