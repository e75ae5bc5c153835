"""fairway.serving: the compiled form of the logistic pipeline scores exactly as the pipeline does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairway.data import generate, read_month
from fairway.serving import linear_scorer
from fairway.training import fit_candidate


@pytest.fixture
def frame(home, usecase) -> pd.DataFrame:
    generate(usecase, customers=1500, n_months=2, seed=3)
    snapshot, _ = read_month(usecase, "2024-01")
    _, labels = read_month(usecase, "2024-02")  # outcomes of January's snapshots
    return snapshot.merge(labels[["customer_id", "default_12m"]], on="customer_id")


@pytest.mark.parametrize("candidate", ["baseline", "reweighing"])
def test_compiled_logistic_pipeline_equals_predict_proba(usecase, frame, candidate) -> None:
    model, _ = fit_candidate(usecase, candidate, frame)
    score = linear_scorer(model, usecase.model_inputs)
    assert score is not None
    rows = frame[usecase.model_inputs]
    expected = model.predict_proba(rows)[:, 1]
    compiled = np.array([score(row) for row in rows.to_dict(orient="records")])
    assert np.abs(compiled - expected).max() < 1e-12
    moved = {**rows.iloc[0].to_dict(), "late_payments_12m": 9}
    assert score(moved) == pytest.approx(model.predict_proba(pd.DataFrame([moved]))[0, 1], abs=1e-12)


def test_other_models_are_left_to_predict_proba(usecase, frame) -> None:
    model, _ = fit_candidate(usecase, "exponentiated_gradient", frame)
    assert linear_scorer(model, usecase.model_inputs) is None


def _plain_and_imputing(rows: int = 400):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=rows), "n": rng.integers(0, 9, rows), "c": rng.choice(["u", "v"], rows)})
    y = (x["a"] + (x["c"] == "u") > 0.5).astype(int)
    plain = make_pipeline(
        ColumnTransformer([("numeric", StandardScaler(), ["a", "n"]), ("categorical", OneHotEncoder(), ["c"])]),
        LogisticRegression(),
    ).fit(x, y)
    imputed = make_pipeline(
        ColumnTransformer([("numeric", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), ["a", "n"]),
                           ("categorical", OneHotEncoder(handle_unknown="ignore"), ["c"])]),
        LogisticRegression(),
    ).fit(x.assign(a=x["a"].where(x.index % 5 != 0)), y)  # fmt: skip
    return plain, imputed


def test_a_missing_value_is_left_to_the_pipeline_never_to_the_compiled_form() -> None:
    plain, imputed = _plain_and_imputing()
    assert linear_scorer(imputed, ["a", "n", "c"]) is None  # imputation inside: not the plain pipeline
    score = linear_scorer(plain, ["a", "n", "c"])
    assert score is not None
    seen: list[pd.DataFrame] = []

    def predict_proba(frame: pd.DataFrame) -> np.ndarray:
        seen.append(frame)
        return np.array([[0.25, 0.75]])

    plain.predict_proba = predict_proba  # what the pipeline answers for a row the compiled form cannot compute
    for missing in (None, np.nan, pd.NA):
        assert score({"a": missing, "n": 3, "c": "u"}) == 0.75
        assert score({"a": 0.3, "n": missing, "c": None}) == 0.75
        assert score({"a": 0.3, "n": 3, "c": missing}) == 0.75
    assert len(seen) == 9 and all(f["n"].dtype.kind in "if" for f in seen)  # numbers stay numbers, NaN when missing
    assert seen[1]["c"].isna().all() and seen[1]["c"].iloc[0] is not None
    assert 0 < score({"a": 0.3, "n": 3, "c": "u"}) < 1 and 0 < score({"a": 0.3, "n": 3, "c": "w"}) < 1
    assert len(seen) == 9, "complete rows, an unknown category included, are computed by the compiled form"
