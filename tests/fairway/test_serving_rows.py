"""fairway.serving: the one-row compiled form of every candidate pipeline scores as the pipeline does (missing
values and unseen categories included) without calling the pipeline, and is not used when it cannot be verified; the
service reads online features directly (tests/fairway/test_nullable.py checks that read against Feast's)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairway.data import is_missing, missing_as_nan
from fairway.explanations import ReasonCodes, reference_point
from fairway.serving import RowScorer, row_scorer
from fairway.training import CANDIDATES, fit_candidate, predict_scores


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from tests.champion import january_with_outcomes

    with january_with_outcomes(tmp_path_factory, "serving-rows") as (uc, frame):
        models = {name: fit_candidate(uc, name, frame)[0] for name in CANDIDATES}
        yield {"uc": uc, "frame": frame, "models": models, "reference": reference_point(frame, uc.model_inputs)}


def _numeric(uc) -> list[str]:  # noqa: ANN001
    return [c for c in uc.model_inputs if uc.feature(c).dtype in ("float", "int")]


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_every_candidate_has_a_one_row_form_equal_to_predict_proba(fitted, candidate) -> None:
    uc, model = fitted["uc"], fitted["models"][candidate]
    scorer = row_scorer(model, uc.model_inputs, _numeric(uc), set(), fitted["reference"])
    assert isinstance(scorer, RowScorer)
    rows = fitted["frame"][uc.model_inputs].head(400).to_dict(orient="records")
    rows += [{**r, "housing": "boat"} for r in rows[:40]]  # a category unseen in training: scored as infrequent
    rows += [{**r, "residential_area": None} for r in rows[:20]]  # missing, not nullable: the encoder's answer
    expected = predict_scores(model, pd.DataFrame(rows, columns=uc.model_inputs))
    one_by_one = np.array([scorer(r) for r in rows])
    assert np.abs(one_by_one - expected).max() < 1e-9
    assert np.abs(np.array(scorer.many(rows[:11])) - expected[:11]).max() < 1e-9


@pytest.mark.parametrize("candidate", ["exponentiated_gradient", "gradient_boosting"])
def test_a_non_linear_candidate_scores_one_row_without_the_pipeline(fitted, candidate, monkeypatch) -> None:
    """The one-row form works on the numbers alone: neither the preprocessor's transform (pandas, validation: the
    milliseconds a one-row predict_proba costs) nor the pipeline's predict_proba is called (the time is measured
    in bench/bench_request_path.py)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    uc, model = fitted["uc"], fitted["models"][candidate]
    scorer = row_scorer(model, uc.model_inputs, _numeric(uc), set(), fitted["reference"])
    assert scorer is not None
    rows = fitted["frame"][uc.model_inputs].head(50).to_dict(orient="records")
    expected = predict_scores(model, pd.DataFrame(rows, columns=uc.model_inputs))

    def refused(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the one-row form called the pipeline")

    for owner, name in ((ColumnTransformer, "transform"), (Pipeline, "predict_proba"), (Pipeline, "predict")):
        monkeypatch.setattr(owner, name, refused)
    assert np.abs(np.array([scorer(r) for r in rows]) - expected).max() < 1e-9


@pytest.mark.parametrize("candidate", ["exponentiated_gradient", "gradient_boosting_reweighing"])
def test_reasons_from_the_one_row_form_are_those_of_the_pipeline(fitted, candidate) -> None:
    uc, model = fitted["uc"], fitted["models"][candidate]
    scorer = row_scorer(model, uc.model_inputs, _numeric(uc), set(), fitted["reference"])
    fast = ReasonCodes(uc.model_inputs, fitted["reference"], lambda f: predict_scores(model, f), scorer)
    slow = ReasonCodes(uc.model_inputs, fitted["reference"], lambda f: predict_scores(model, f))
    for row in fitted["frame"][uc.model_inputs].head(30).to_dict(orient="records"):
        assert fast.reasons(row, scorer(row)) == slow.reasons(row)


def _imputing(rows: int = 600):
    """Fairway's preprocessor shapes on a small frame: imputed numbers with a missing indicator, a nullable
    category with its "missing" level, rare categories grouped; then each kind of final estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=rows), "n": rng.integers(0, 9, rows).astype(float),
                      "c": rng.choice(["u", "v", "w", "rare"], rows, p=[0.45, 0.3, 0.22, 0.03])})  # fmt: skip
    y = (x["a"] + (x["c"] == "u") + rng.normal(size=rows) > 0.5).astype(int)
    x = x.assign(a=x["a"].where(x.index % 5 != 0), c=x["c"].where(x.index % 7 != 0, None))
    fill = {"strategy": "constant", "fill_value": "missing"}

    def prep() -> ColumnTransformer:
        return ColumnTransformer([
            ("numeric", StandardScaler(), ["n"]),
            ("numeric_a", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), ["a"]),
            ("categorical_c", make_pipeline(SimpleImputer(**fill), SimpleImputer(missing_values=None, **fill),
                                            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20,
                                                          sparse_output=False)), ["c"]),
        ], sparse_threshold=0.0)  # fmt: skip

    models = {
        "logistic": Pipeline([("prep", prep()), ("clf", LogisticRegression())]).fit(x, y),
        "boosting": Pipeline([("prep", prep()), ("clf", HistGradientBoostingClassifier(max_iter=30))]).fit(x, y),
    }
    return x, models


@pytest.mark.parametrize("kind", ["logistic", "boosting"])
def test_missing_values_and_unseen_categories_are_scored_as_the_pipeline_does(kind) -> None:
    x, models = _imputing()
    model, columns = models[kind], ["a", "n", "c"]
    reference = {"a": 0.1, "n": 4, "c": "u"}
    scorer = row_scorer(model, columns, ["a", "n"], {"a", "c"}, reference)
    assert scorer is not None
    rows = x.head(200).to_dict(orient="records")
    for missing in (None, np.nan, pd.NA):
        rows += [{"a": missing, "n": 3.0, "c": "v"}, {"a": 0.3, "n": 3.0, "c": missing}]
    rows += [{"a": 0.3, "n": 3.0, "c": "never"}, {"a": -1.0, "n": 8.0, "c": "rare"}]
    frame = missing_as_nan(pd.DataFrame(rows, columns=columns), ["a", "n"])  # as the pipeline is called online
    expected = predict_scores(model, frame.assign(c=[None if is_missing(v) else v for v in frame["c"]]))
    got = np.array([scorer(r) for r in rows])
    assert np.abs(got - expected).max() < 1e-9
    codes = ReasonCodes(columns, reference, lambda f: predict_scores(model, f), scorer, score_one_missing=True)
    plain = ReasonCodes(columns, reference, lambda f: predict_scores(model, f))
    for row in rows[-8:]:
        assert codes.reasons(row) == plain.reasons(row)


def test_a_pipeline_it_cannot_verify_is_left_to_predict_proba(monkeypatch) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    x, models = _imputing()
    reference = {"a": 0.1, "n": 4, "c": "u"}
    unknown = make_pipeline(ColumnTransformer([("numeric", MinMaxScaler(), ["n"])]), LogisticRegression())
    unknown.fit(x, x["n"] > 4)
    assert row_scorer(unknown, ["a", "n", "c"], ["a", "n"], {"a", "c"}, reference) is None
    model = models["logistic"]
    original = model.predict_proba
    monkeypatch.setattr(model, "predict_proba", lambda frame: original(frame) * 0.999 + 0.0005)  # disagrees
    assert row_scorer(model, ["a", "n", "c"], ["a", "n"], {"a", "c"}, reference) is None
