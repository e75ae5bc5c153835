"""fairway.monitoring: Evidently's drift read correctly in both of its regimes, sampling, the retraining rule."""

from __future__ import annotations

import pandas as pd
import pytest

from fairway import monitoring
from tests.datasets import credit_portfolio


@pytest.mark.parametrize(("rows", "method"), [(400, "p_value"), (5000, "distance")])
def test_drift_report_flags_the_shifted_input_in_both_regimes(usecase, tmp_path, rows, method) -> None:
    """Up to 1,000 rows Evidently tests (drift when p < threshold), above it measures distances (drift when
    distance >= threshold): the reading of its results must get both right."""
    reference = credit_portfolio(usecase, rows, seed=1)
    current = credit_portfolio(usecase, rows, seed=1).sample(frac=1.0, random_state=2)  # same people, other order
    current["income"] *= 0.6
    result = monitoring.drift_report(usecase, reference, current, tmp_path)
    assert result["drifted_columns"] == ["income"]
    assert method in result["columns"]["income"]["method"].lower()  # e.g. "K-S p_value", "Wasserstein distance"
    assert result["drift_share"] == pytest.approx(1 / len(usecase.model_inputs))
    assert result["dataset_drift"] is (result["drift_share"] >= usecase.drift.share_of_drifted_columns_max)
    assert result["prediction"]["drifted"] is False
    assert (tmp_path / "drift.html").stat().st_size > 100_000 and (tmp_path / "drift.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_sampling_is_seeded_and_bounded() -> None:
    frame = pd.DataFrame({"x": range(10_000)})
    first, second = monitoring.sample(frame, 500), monitoring.sample(frame, 500)
    assert len(first) == 500 and first.equals(second) and first["x"].is_unique
    assert monitoring.sample(frame, 20_000).equals(frame)


def _drift(month: str, window_end: str, drifted: bool) -> dict:
    columns = {"income": {"drifted": drifted}, "debt_ratio": {"drifted": False}}
    return {"month": month, "model_version": "3", "model_window_end": window_end, "columns": columns,
            "drifted_columns": ["income"] if drifted else [], "drift_share": 0.5 if drifted else 0.0,
            "share_threshold": 0.3, "dataset_drift": drifted}  # fmt: skip


def test_drift_requests_retraining_only_after_the_cooldown(usecase) -> None:
    cooldown = usecase.drift.retrain_cooldown_months
    reasons, held = monitoring.retraining_reasons(usecase, _drift("2024-09", "2024-06", True), {})
    assert reasons and reasons[0].startswith("data drift in 2024-09") and held == []
    fresh = str(pd.Period("2024-09", freq="M") - cooldown)
    reasons, held = monitoring.retraining_reasons(usecase, _drift("2024-09", fresh, True), {})
    assert reasons == [] and "cooldown" in held[0]
    assert monitoring.retraining_reasons(usecase, _drift("2024-09", "2024-01", False), {}) == ([], [])


def test_fairness_and_auc_breaches_request_retraining_whatever_the_cooldown(usecase) -> None:
    outcomes = {"judged_month": "2024-08", "breaches": [
        {"rule": "disparate_impact", "subject": "citizenship: foreign vs national", "reason": "DI 0.7"},
        {"rule": "auc_min", "subject": "model", "reason": "AUC 0.6"},
    ]}  # fmt: skip
    reasons, _ = monitoring.retraining_reasons(usecase, _drift("2024-09", "2024-08", False), outcomes)
    assert reasons == ["decisions of 2024-08: DI 0.7", "decisions of 2024-08: AUC 0.6"]
    lenient = usecase.model_copy(
        update={"drift": usecase.drift.model_copy(update={"fairness_retrain_on_breach": False})}
    )
    reasons, _ = monitoring.retraining_reasons(lenient, _drift("2024-09", "2024-08", False), outcomes)
    assert reasons == ["decisions of 2024-08: AUC 0.6"]


def test_history_keeps_one_row_per_month(usecase, home) -> None:
    for month, share in [("2024-08", 0.1), ("2024-07", 0.0), ("2024-08", 0.4)]:
        monitoring.update_history(usecase, {"month": month, "drift_share": share})
    history = monitoring.read_history(usecase)
    assert list(history["month"]) == ["2024-07", "2024-08"]
    assert list(history["drift_share"]) == [0.0, 0.4]


def test_what_a_monitoring_task_returns_is_strict_json() -> None:
    """A small group's metrics and intervals are NaN: Airflow's XCom takes strict JSON, so they become null."""
    import json
    import math

    from fairway.monitoring import json_safe

    data = {"auc": 0.8, "metrics": {"fairness": [{"disparate_impact": math.nan, "ci": (math.nan, math.inf)}]}}
    assert json.dumps(json_safe(data), allow_nan=False) == (
        '{"auc": 0.8, "metrics": {"fairness": [{"disparate_impact": null, "ci": [null, null]}]}}'
    )
