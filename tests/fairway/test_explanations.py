"""fairway.explanations: permutation importance and reason codes, on models fitted the way training fits them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fairway.data import missing_as_nan
from fairway.explanations import ReasonCodes, dumps, permutation_importance, reference_point
from fairway.serving import linear_scorer
from fairway.training import fit_candidate, predict_scores


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """January's snapshots with their outcomes, and the baseline and ExponentiatedGradient candidates fitted on them."""
    from tests.champion import january_with_outcomes

    with january_with_outcomes(tmp_path_factory, "explanations") as (uc, frame):
        models = {name: fit_candidate(uc, name, frame)[0] for name in ("baseline", "exponentiated_gradient")}
        yield uc, frame, models


def codes(uc, frame, model, compiled: bool) -> ReasonCodes:
    columns = uc.model_inputs
    fast = linear_scorer(model, columns) if compiled else None
    return ReasonCodes(columns, reference_point(frame, columns), lambda rows: predict_scores(model, rows), fast)


def test_reference_applicant_is_median_and_most_frequent_value() -> None:
    frame = pd.DataFrame({"n": [1, 2, 10], "x": [0.5, 1.5, 9.0], "c": ["b", "a", "a"], "t": ["z", "y", "x"]})
    assert reference_point(frame, ["n", "x", "c", "t"]) == {"n": 2, "x": 1.5, "c": "a", "t": "x"}
    with pytest.raises(ValueError, match="no values of 'n'"):
        reference_point(frame.assign(n=np.nan), ["n"])


def test_permutation_importance_finds_the_input_the_model_uses() -> None:
    rng = np.random.default_rng(0)
    inputs = pd.DataFrame({"used": rng.normal(size=2000), "ignored": rng.normal(size=2000)})
    target = (inputs["used"] + rng.normal(scale=0.5, size=2000) > 0).astype(int).to_numpy()
    table = permutation_importance(lambda rows: 1 / (1 + np.exp(-rows["used"].to_numpy())), inputs, target)
    by_name = table.set_index("feature")
    assert list(table["feature"]) == ["used", "ignored"]
    assert by_name.at["used", "importance_mean"] > 0.3
    assert by_name.at["ignored", "importance_mean"] == 0.0  # the score does not read it at all
    with pytest.raises(ValueError, match="both outcomes"):
        permutation_importance(lambda rows: rows["used"].to_numpy(), inputs, np.zeros(2000, dtype=int))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-linear", "predict_proba"])
def test_reason_codes_are_stable_and_follow_a_moving_feature(fitted, compiled) -> None:
    uc, frame, models = fitted
    explain = codes(uc, frame, models["baseline"], compiled)
    row = frame[uc.model_inputs].iloc[0].to_dict()
    calm = {**row, "late_payments_12m": explain.reference["late_payments_12m"]}
    assert explain.reasons(calm) == explain.reasons(dict(calm))  # same input, same reasons
    assert "late_payments_12m" not in [r["feature"] for r in explain.reasons(calm)]  # at the reference: no effect
    effects = []
    for late in (3, 6, 9):
        reasons = explain.reasons({**calm, "late_payments_12m": late})
        found = {r["feature"]: r for r in reasons}
        assert "late_payments_12m" in found, reasons
        assert found["late_payments_12m"]["value"] == late
        effects.append(found["late_payments_12m"]["effect"])
    assert effects[0] < effects[1] < effects[2]  # more late payments: a larger push towards decline
    assert explain.reasons({**calm, "late_payments_12m": 9})[0]["feature"] == "late_payments_12m"
    assert all(r["effect"] > 0 for r in explain.reasons({**calm, "late_payments_12m": 9}))


def test_compiled_and_model_reasons_agree_and_batch_equals_one_by_one(fitted) -> None:
    uc, frame, models = fitted
    compiled, plain = codes(uc, frame, models["baseline"], True), codes(uc, frame, models["baseline"], False)
    rows = frame[uc.model_inputs].iloc[:25]
    batch = plain.frame_reasons(rows)
    for i, values in enumerate(rows.to_dict(orient="records")):
        one = compiled.reasons(values)
        assert [r["feature"] for r in one] == [r["feature"] for r in batch[i]]
        assert [r["effect"] for r in one] == pytest.approx([r["effect"] for r in batch[i]], abs=1e-6)


def test_models_without_a_compiled_form_explain_through_predict_proba(fitted) -> None:
    uc, frame, models = fitted
    model = models["exponentiated_gradient"]
    assert linear_scorer(model, uc.model_inputs) is None
    explain = codes(uc, frame, model, False)
    rows = frame[uc.model_inputs].iloc[:40]
    batch = explain.frame_reasons(rows)
    assert any(batch), "a mixture of logistic models still has inputs that raise some scores"
    assert batch[7] == explain.reasons(rows.iloc[7].to_dict())


@pytest.mark.parametrize("name", ["baseline", "exponentiated_gradient"])
def test_the_records_json_is_the_json_of_the_reasons(fitted, name) -> None:
    uc, frame, models = fitted
    explain = codes(uc, frame, models[name], False)
    rows = frame[uc.model_inputs].iloc[:500]
    assert explain.frame_reasons_json(rows) == [dumps(r) for r in explain.frame_reasons(rows)]


def test_the_records_json_encodes_every_kind_of_value_as_json_does() -> None:
    inputs = pd.DataFrame({
        "x": [1e16, 1e-05, 36.0, -2.5, 0.1], "n": [3, -1, 0, 7, 12],
        "c": ['say "hi"', "naïve", "a\\b", "plain", "x"], "b": [True, False, True, False, True],
    })  # fmt: skip
    reference = {"x": 0.0, "n": 0, "c": "plain", "b": False}

    def score(rows: pd.DataFrame) -> np.ndarray:  # every input raises the score when it leaves the reference
        moved = (rows["x"] != 0).astype(float) + (rows["n"] != 0) + (rows["c"] != "plain") + rows["b"].astype(float)
        return 1 / (1 + np.exp(-moved.to_numpy(dtype=float) / 3))

    explain = ReasonCodes(["x", "n", "c", "b"], reference, score, top=4)
    expected = [dumps(r) for r in explain.frame_reasons(inputs)]
    assert explain.frame_reasons_json(inputs) == expected
    assert '"value":"say \\"hi\\""' in expected[0] and '"value":1e+16' in expected[0]


def test_reference_of_a_nullable_input_is_taken_from_the_values_present() -> None:
    frame = pd.DataFrame({
        "x": [1.0, np.nan, 3.0, np.nan, 10.0], "n": pd.array([1, None, 2, 6, None], dtype="Int64"),
        "f": [1.0, 2.0, np.nan, 2.0, 4.0], "c": ["a", None, np.nan, "b", "b"],
    })  # fmt: skip
    assert reference_point(frame, ["x", "n", "f", "c"]) == {"x": 3.0, "n": 2, "f": 2.0, "c": "b"}
    # an int input that retrieval gave as float64 (it has missing values) is still rounded to an int
    rounded = reference_point(frame.assign(f=[1.0, 2.0, np.nan, 3.0, np.nan]), ["f"], integers=["f"])
    assert rounded == {"f": 2} and isinstance(rounded["f"], int)


def _missing_raises(rows: pd.DataFrame) -> np.ndarray:
    """A score that a missing x or c raises, and a larger n raises (NaN is the only marker of a missing value)."""
    z = rows["x"].isna().astype(float) * 2 + rows["c"].isna() + rows["n"].astype(float).fillna(0) / 10
    assert not rows.map(lambda v: v is None or v is pd.NA).any().any(), "missing values reach the model as NaN"
    return 1 / (1 + np.exp(-z.to_numpy(dtype=float)))


def test_a_missing_value_is_scored_as_missing_and_reported_as_null() -> None:
    reference = {"x": 1.5, "n": 0, "c": "a"}
    explain = ReasonCodes(["x", "n", "c"], reference, _missing_raises)
    reasons = explain.reasons({"x": None, "n": 3, "c": np.nan})
    assert [(r["feature"], r["value"]) for r in reasons] == [("x", None), ("c", None), ("n", 3)]
    assert reasons[0]["reference"] == 1.5 and reasons[0]["effect"] > reasons[1]["effect"] > 0
    inputs = pd.DataFrame({"x": [np.nan, 2.0, 1.5], "n": [3.0, np.nan, 1.0], "c": [None, "b", np.nan]})
    batch = explain.frame_reasons(missing_as_nan(inputs))
    assert batch[0] == reasons
    assert [r["value"] for r in batch[2]] == [None, 1]  # an int input's value stays an int in a float64 column
    texts = explain.frame_reasons_json(missing_as_nan(inputs))
    assert texts == [dumps(r) for r in batch]
    assert not any("NaN" in t for t in texts) and [json.loads(t) for t in texts] == batch
    # an Int64 column (a raw file's nullable int) gives the same text
    typed = missing_as_nan(inputs).assign(n=pd.array([3, None, 1], dtype="Int64"))
    assert explain.frame_reasons_json(typed) == texts


def test_permutation_importance_with_missing_values() -> None:
    rng = np.random.default_rng(1)
    used = pd.Series(rng.normal(size=1000)).where(rng.random(1000) > 0.2)
    inputs = pd.DataFrame({"used": used, "n": pd.array(rng.integers(0, 5, 1000), dtype="Int64")})
    inputs.loc[::7, "n"] = pd.NA
    target = (used.fillna(0) + rng.normal(scale=0.5, size=1000) > 0).astype(int).to_numpy()

    def score(rows: pd.DataFrame) -> np.ndarray:
        assert str(rows["n"].dtype) == "Int64"  # shuffling keeps the column's type
        return 1 / (1 + np.exp(-rows["used"].fillna(0).to_numpy()))

    table = permutation_importance(score, inputs, target, repeats=2).set_index("feature")
    assert table.at["used", "importance_mean"] > 0.2 and table.at["n", "importance_mean"] == 0.0
