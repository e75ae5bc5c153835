"""Files nobody here tidied, through `fairway usecase init` and real Airflow DagRuns (`dag.test()`):

- a census-income-like file (tests/datasets.py): `?` markers and empty cells, a 41-valued category with rare
  values, six race groups of which two are tiny, a sex gap in the recorded outcome, and a leaky column dropped
  at import; every candidate trains on it, the gate does not judge the tiny groups, the champion scores later
  months whose inputs have missing values, and monitoring judges them;
- a file whose outcomes arrive two years after the snapshot: training uses the snapshots whose outcomes were
  known by the end of its window.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairway import registry
from fairway.cli import main
from fairway.config import load_usecase
from fairway.data import available_months, read_month
from fairway.monitoring import month_dir
from fairway.records import prediction_partition
from tests.champion import isolated_home
from tests.conftest import PROJECT
from tests.dags.assets import pause_and_forget
from tests.datasets import write_census_like

sys.path.insert(0, str(PROJECT / "include"))
import local_runs  # noqa: E402

CANDIDATES = ["baseline", "reweighing", "exponentiated_gradient", "gradient_boosting", "gradient_boosting_reweighing"]
ASSET_SCHEDULED = ["monitoring", "training", "fairness_gate"]


def _run(dag_id: str, conf: dict) -> None:
    run = local_runs.run(dag_id, conf)
    assert run.state == "success", (dag_id, conf, {ti.task_id: ti.state for ti in run.get_task_instances()})


@pytest.fixture(scope="module")
def census(tmp_path_factory, airflow_db) -> dict:
    """24,000 census-like rows over 12 months (2,000 a month; a smaller sex gap than the census', one that
    reweighing can close): six months of features, training with every candidate, the gate (approval by policy),
    then two scored and monitored months."""
    with isolated_home(tmp_path_factory, "census") as home, pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRWAY_USECASE", "census")
        mp.setenv("FAIRWAY_APPROVAL_MODE", "auto")
        csv = write_census_like(home / "adult.csv", rows=24_000, seed=3, gap=0.3, leaky=True)
        assert main(["usecase", "init", "--name", "census", "--csv", str(csv), "--target", "income",
                     "--positive", "<=50K", "--protected", "sex,race", "--na-values", "?",
                     "--drop-columns", "Tax bracket"]) == 0  # fmt: skip
        assert main(["--usecase", "census", "features", "apply"]) == 0
        uc = load_usecase("census")
        months = available_months(uc)
        _run("feature_pipeline", {"usecase": "census", "month": months[0]})
        pause_and_forget(ASSET_SCHEDULED)
        try:
            for month in months[1:6]:
                _run("feature_pipeline", {"usecase": "census", "month": month})
            _run("training", {"usecase": "census", "window_end": months[5], "window_months": 6,
                              "candidates": CANDIDATES})  # fmt: skip
            _run("fairness_gate", {"usecase": "census", "version": None})
            champion = registry.version_by_alias(uc, registry.CHAMPION)
            if champion is not None:
                for month in months[6:8]:
                    _run("feature_pipeline", {"usecase": "census", "month": month})
                    _run("batch_inference", {"usecase": "census", "month": month})
                    _run("monitoring", {"usecase": "census", "month": month})
            yield {"home": home, "uc": uc, "months": months, "champion": champion, "csv": csv}
        finally:
            pause_and_forget(ASSET_SCHEDULED)


def _runs(uc) -> dict:
    runs = registry.client().search_runs([registry.experiment_id(uc)], order_by=["attributes.start_time ASC"])
    return {r.data.tags["fairway.candidate"]: r for r in runs}


def test_the_import_keeps_missing_values_and_drops_the_leaky_column(census) -> None:
    uc = census["uc"]
    nullable = {f.name for f in uc.features if f.nullable}
    assert {"workclass", "occupation", "native_country", "hours_per_week"} <= nullable
    assert "tax_bracket" not in uc.model_inputs and "sex" not in uc.model_inputs
    snapshot, _ = read_month(uc, census["months"][0])
    assert snapshot["occupation"].isna().any() and not (snapshot["occupation"] == "?").any()
    assert len(uc.feature("native_country").allowed or []) > 30
    race = next(a for a in uc.protected_attributes if a.feature == "race")
    sex = next(a for a in uc.protected_attributes if a.feature == "sex")
    assert sex.reference == "male" and race.reference != "pacific_islander"  # a tiny group is never the reference


def test_every_candidate_trains_on_wide_categories_with_missing_values(census) -> None:
    runs = _runs(census["uc"])
    assert set(runs) == set(CANDIDATES)
    for name, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.tags["fairway.candidate_status"] == "trained", name
        assert run.data.metrics["auc"] > 0.75 or name == "exponentiated_gradient", (name, run.data.metrics["auc"])
    mitigated = runs["reweighing"].data.params["mitigated_groups"]
    assert mitigated.startswith("sex: female") and "race: " in mitigated  # every protected attribute
    assert int(runs["exponentiated_gradient"].data.params["eg_sample_rows"]) <= 8000
    # the recorded gap: the baseline approves women too rarely; the champion is a mitigated candidate that does not
    uc, champion = census["uc"], census["champion"]
    assert runs["baseline"].data.metrics["sex.female.disparate_impact"] < uc.gate.disparate_impact_min
    chosen = champion.tags["fairway.candidate"]
    assert chosen.endswith("reweighing") or chosen == "exponentiated_gradient"
    assert runs[chosen].data.metrics["sex.female.disparate_impact"] >= uc.gate.disparate_impact_min


def test_the_gate_leaves_tiny_groups_unassessed_with_intervals(census) -> None:
    uc = census["uc"]
    mv = registry.version_by_alias(uc, registry.CHAMPION) or registry.version_by_alias(uc, registry.CANDIDATE)
    report = registry.load_dict(str(mv.run_id), "gate/gate_report.json")
    unassessed = {(g["attribute"], g["group"]) for g in report["not_assessable"]}
    assert ("race", "pacific_islander") in unassessed and all(a == "race" for a, _ in unassessed)
    for group in report["metrics"]["fairness"]:
        if group["assessable"]:
            low, high = group["disparate_impact_ci"]
            assert low <= group["disparate_impact"] <= high
    assert {c["candidate"] for c in report["candidates"]} == set(CANDIDATES)
    subjects = {r["subject"] for r in report["rules"]}
    assert not any("pacific_islander" in s for s in subjects)  # no pass/fail rule for an unassessed group


def test_the_champion_scores_months_with_missing_inputs(census) -> None:
    uc, champion = census["uc"], census["champion"]
    assert champion is not None and champion.tags["fairway.gate_decision"] == "pass"
    for month in census["months"][6:8]:
        snapshot, _ = read_month(uc, month)
        records = pd.read_parquet(prediction_partition(uc, month))
        assert len(records) == len(snapshot) and snapshot["workclass"].isna().any()
        assert records["score"].between(0, 1).all() and np.isfinite(records["score"]).all()
    judged = json.loads((month_dir(uc, census["months"][7]) / "summary.json").read_text())["outcomes"]
    assert judged["status"] == "judged"


def _delayed_csv(path: Path, months: int = 30, per_month: int = 150, seed: int = 5) -> Path:
    """An outcome known two years after the interview: rows over `months` months with an ISO date column."""
    rng = np.random.default_rng(seed)
    rows = months * per_month
    group = rng.choice(["a", "b"], rows)
    score = rng.normal(0, 1, rows)
    bad = rng.random(rows) < 1 / (1 + np.exp(-(score * 1.5 - 0.8 + 0.3 * (group == "b"))))
    dates = [str((pd.Period("2020-01", freq="M") + i // per_month).start_time.date()) for i in range(rows)]
    pd.DataFrame({"Date": dates, "Score": score.round(3), "Channel": rng.choice(["web", "branch", "phone"], rows),
                  "Group": group, "Outcome": np.where(bad, "bad", "good")}).to_csv(path, index=False)  # fmt: skip
    return path


def test_a_two_year_outcome_trains_on_snapshots_known_by_then(tmp_path_factory, airflow_db) -> None:
    from fairway.training import build_training_frame

    with isolated_home(tmp_path_factory, "delayed") as home:
        csv = _delayed_csv(home / "late.csv")
        assert main(["usecase", "init", "--name", "late", "--csv", str(csv), "--target", "Outcome", "--positive",
                     "bad", "--protected", "Group", "--timestamp", "Date", "--outcome-delay-months", "24"]) == 0  # fmt: skip
        uc = load_usecase("late")
        assert uc.label.available_after_months == 24
        months = available_months(uc)
        assert months[0] == "2020-01" and len(months) == 30
        _, labels = read_month(uc, "2022-01")
        assert len(labels) == 150 and (labels["snapshot_ts"].dt.strftime("%Y-%m") == "2020-01").all()
        assert main(["--usecase", "late", "features", "apply"]) == 0
        _run("feature_pipeline", {"usecase": "late", "month": months[0]})
        pause_and_forget(ASSET_SCHEDULED)
        for month in months[1:28]:  # up to 2022-04: the outcomes of 2020-01..2020-04 are known
            _run("feature_pipeline", {"usecase": "late", "month": month})
        frame = build_training_frame("late", "2022-04", 6)
        assert frame["window_months"] == ["2020-01", "2020-02", "2020-03", "2020-04"]
        assert frame["holdout_month"] == "2020-04" and frame["rows"] == 4 * 150
