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
