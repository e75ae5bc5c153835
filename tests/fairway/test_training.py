"""fairway.training's model pipeline and candidates on data nobody tidied: missing values, a 150-valued category
with rare values, unseen categories, several protected attributes; and a candidate that raises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairway import training
from fairway.config import UseCase, load_usecase
from fairway.fairness import group_mask
from fairway.training import (
    CANDIDATES,
    MIN_CATEGORY_ROWS,
    fit_candidate,
    mitigation_plan,
    predict_scores,
    preprocessor,
    reweighing_weights,
    stratified_sample,
)

WIDE = [f"v{i:03d}" for i in range(150)]


def wide_usecase() -> UseCase:
    """credit_risk with nullable income and employment type, and residential_area a 150-valued category."""
    uc = load_usecase("credit_risk")
    features = []
    for f in uc.features:
        if f.name in ("income", "employment_type"):
            f = f.model_copy(update={"nullable": True})
        if f.name == "residential_area":
            f = f.model_copy(update={"allowed": WIDE})
        features.append(f)
    return uc.model_copy(update={"features": features})


def wide_frame(uc: UseCase, rows: int = 8000, seed: int = 0) -> pd.DataFrame:
    """Rows with the use case's inputs, protected attributes and a label that depends on income, late payments,
    sex (recorded bias) and the area; 8 % of incomes and 5 % of employment types missing."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, len(WIDE) + 1) ** 0.8  # ~110 areas with 20 rows or more, ~40 rarer ones
    frame = pd.DataFrame({
        "income": rng.lognormal(8, 0.5, rows), "debt_ratio": rng.uniform(0, 2, rows),
        "credit_amount": rng.lognormal(9, 0.6, rows), "loan_duration_months": rng.integers(6, 120, rows),
        "late_payments_12m": rng.poisson(0.6, rows), "savings_balance": rng.lognormal(7, 1, rows),
        "tenure_months": rng.integers(0, 400, rows),
        "employment_type": rng.choice(["permanent", "temporary", "self_employed", "unemployed", "retired"], rows),
        "housing": rng.choice(["own", "rent", "family"], rows),
        "residential_area": rng.choice(WIDE, rows, p=weights / weights.sum()),
        "sex": rng.choice(["female", "male"], rows), "age": rng.integers(18, 90, rows),
        "citizenship": rng.choice(["national", "foreign"], rows, p=[0.8, 0.2]),
    })  # fmt: skip
    logit = (-1.0 - 1.2 * np.log(frame["income"] / 3000) + 0.8 * frame["late_payments_12m"]
             + 0.7 * (frame["sex"] == "female") + 0.5 * (frame["residential_area"].str[-1] == "7"))  # fmt: skip
    frame[uc.label.feature] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.loc[rng.random(rows) < 0.08, "income"] = np.nan
    frame["employment_type"] = frame["employment_type"].astype(object)
    frame.loc[rng.random(rows) < 0.05, "employment_type"] = None
    return frame


@pytest.fixture(scope="module")
def wide() -> tuple[UseCase, pd.DataFrame]:
    uc = wide_usecase()
    return uc, wide_frame(uc)


def test_preprocessing_imputes_nullable_inputs_and_groups_rare_categories(wide) -> None:
    uc, frame = wide
    prep = preprocessor(uc).fit(frame[uc.model_inputs])
    matrix = prep.transform(frame[uc.model_inputs])
    assert isinstance(matrix, np.ndarray) and not np.isnan(matrix).any()  # dense, nothing missing left
    names = list(prep.get_feature_names_out())
    assert any("missingindicator_income" in n for n in names)  # a 0/1 column: income was missing
    assert any(n.endswith("employment_type_missing") for n in names)  # the category "missing"
    counts = frame["residential_area"].value_counts()
    frequent = int((counts >= MIN_CATEGORY_ROWS).sum())
    area_columns = [n for n in names if "residential_area_" in n]
    assert len(area_columns) == frequent + 1  # the rare and never-seen areas share "infrequent_sklearn"
    assert any(n.endswith("infrequent_sklearn") for n in area_columns)
    # an area not in the config, a missing income: scored, no error
    unseen = frame[uc.model_inputs].head(2).assign(residential_area="zzz", income=np.nan)
    assert not np.isnan(prep.transform(unseen)).any()


def test_non_nullable_inputs_keep_the_plain_pipeline() -> None:
    """credit_risk has no nullable input: one scaler and one encoder, as the service's fast path expects."""
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    kinds = [type(t) for _, t, _ in preprocessor(load_usecase("credit_risk")).transformers]
    assert kinds == [StandardScaler, OneHotEncoder]


@pytest.mark.parametrize("name", CANDIDATES)
def test_every_candidate_fits_wide_data_with_missing_values(wide, name: str) -> None:
    uc, frame = wide
    train, holdout = frame.iloc[:7000], frame.iloc[7000:]
    model, params = fit_candidate(uc, name, train)
    assert model[0].transform(train[uc.model_inputs].head(1)).shape[1] > 100
    scores = predict_scores(model, holdout[uc.model_inputs])
    assert scores.shape == (len(holdout),) and np.isfinite(scores).all() and (0 <= scores).all() <= 1
    if params["mitigation"] != "none":
        assert "sex: female" in params["mitigated_groups"]  # the recorded choice names the group


def test_reweighing_weights_are_holisticais_for_two_groups() -> None:
    from holisticai.bias.mitigation import Reweighing

    rng = np.random.default_rng(1)
    y = (rng.random(2000) < 0.3).astype(int)
    group = rng.random(2000) < np.where(y == 1, 0.6, 0.3)
    expected = Reweighing().fit(y, group, ~group).sample_weight
    ours = reweighing_weights(np.where(group, "a", "b"), y)
    np.testing.assert_allclose(ours, expected / expected.mean(), rtol=1e-6)


def test_reweighing_makes_the_label_independent_of_every_intersectional_group(wide) -> None:
    uc, frame = wide
    plan = mitigation_plan(uc, frame)
    y = training.positive_target(uc, frame)
    weights = reweighing_weights(plan.cells, y)
    overall = np.average(y, weights=weights)
    for cell in np.unique(plan.cells):
        rows = plan.cells == cell
        if rows.sum() >= 50:
            assert np.average(y[rows], weights=weights[rows]) == pytest.approx(overall, abs=1e-9)
    assert len(np.unique(plan.cells)) == 2 * 2 * 2  # sex x age band x citizenship


def test_mitigation_targets_the_worst_group_of_each_attribute_and_skips_tiny_groups(wide) -> None:
    uc, frame = wide
    frame = frame.copy()
    female = group_mask(frame, "sex", uc.protected_attributes[0].groups["female"])
    plan = mitigation_plan(uc, frame)
    assert plan.worst["sex"][0] == "female" and plan.worst["sex"][1] < 0.95
    assert (plan.disadvantaged == female).all() and plan.constrained == "sex: female"  # the most disadvantaged
    # ten foreign customers who all defaulted: the worst rate, but too few rows to be the target
    foreign = frame.index[frame["citizenship"] == "foreign"]
    frame.loc[foreign, "citizenship"] = "national"
    frame.loc[foreign[:10], "citizenship"] = "foreign"
    frame.loc[foreign[:10], uc.label.feature] = 1
    assert "citizenship" not in mitigation_plan(uc, frame).worst


def test_stratified_sample_keeps_shares_and_every_stratum() -> None:
    strata = np.array(["a"] * 9000 + ["b"] * 990 + ["c"] * 10)
    rows = stratified_sample(strata, 1000, seed=0)
    picked = pd.Series(strata[rows]).value_counts()
    assert picked["a"] == 900 and picked["b"] == 99 and picked["c"] == 1
    assert (stratified_sample(strata, 20_000) == np.arange(len(strata))).all()
    assert (rows == stratified_sample(strata, 1000, seed=0)).all()


def test_unknown_candidate_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown candidate 'forest'"):
        fit_candidate(load_usecase("credit_risk"), "forest", pd.DataFrame())


def test_training_window_follows_the_outcome_delay() -> None:
    """Outcomes one month after the snapshot: the six months before the end; two years after: the six months
    ending 24 months before the end (their outcomes are the ones known by then)."""
    assert training.TrainingWindow("2024-07", 6).snapshot_months == training.months("2024-01", 6)
    late = training.TrainingWindow("2026-06", 6, delay=24)
    assert late.snapshot_months == training.months("2024-01", 6) and late.holdout_month == "2024-06"
    assert training.TrainingWindow("2024-06", 3, delay=0).snapshot_months == ["2024-04", "2024-05", "2024-06"]
    with pytest.raises(ValueError, match="delay of -1"):
        training.TrainingWindow("2024-06", 3, delay=-1)
