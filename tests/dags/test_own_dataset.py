"""Bring your own dataset, end to end: a CSV the test writes (1,000 rows, no time column, a binary target with two
string values and a historical bias against one group, learnable through a proxy) becomes a use case with
`fairway usecase init`, then runs the lifecycle through real Airflow DagRuns as `make demo` does: feature_pipeline
per month, training, fairness_gate (approval by policy), then batch_inference per later month and what the Assets
trigger (monitoring, and retraining when it asks)."""

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
from fairway.monitoring import month_dir, read_history
from fairway.onboarding import lifecycle
from fairway.records import prediction_partition
from tests.champion import isolated_home
from tests.conftest import PROJECT
from tests.dags.assets import pause_and_forget

sys.path.insert(0, str(PROJECT / "include"))
import local_runs  # noqa: E402

NAME = "loans_own"
CANDIDATES = ["baseline", "reweighing", "exponentiated_gradient"]


def write_biased_csv(path: Path, rows: int = 1000, seed: int = 1) -> Path:
    """Loan outcomes driven by late payments, income, loan size, employment and a guarantor; recorded outcomes of
    migrants were turned 'bad' for 40 % of those who repaid (the bias), and District is a proxy for Origin."""
    rng = np.random.default_rng(seed)
    migrant = rng.random(rows) < 0.4
    areas = ["north", "south", "east", "west"]
    district = np.where(migrant, rng.choice(areas, rows, p=[0.1, 0.1, 0.7, 0.1]),
                        rng.choice(areas, rows, p=[0.3, 0.3, 0.1, 0.3]))  # fmt: skip
    age = rng.integers(18, 76, rows)
    employment = rng.choice(["permanent", "temporary", "self-employed"], rows, p=[0.6, 0.25, 0.15])
    income = np.round(rng.lognormal(np.log(2800), 0.4, rows), 2)
    loan = np.round(rng.lognormal(np.log(12000), 0.6, rows), 2)
    years = rng.integers(0, 30, rows)
    late = rng.binomial(6, 0.12, rows)
    guarantor = rng.random(rows) < 0.3
    logit = (-3.4 + 1.8 * late - 3.5 * np.log(income / 2800) + 2.0 * np.log(loan / 12000)
             + 1.5 * (employment == "temporary") - 1.5 * guarantor - 0.05 * years)  # fmt: skip
    bad = rng.random(rows) < 1 / (1 + np.exp(-logit))
    biased = migrant & ~bad & (rng.random(rows) < 0.4)
    pd.DataFrame({
        "Income (EUR)": income, "Loan amount": loan, "Years employed": years, "Late payments": late,
        "Employment": employment, "District": district, "Has guarantor": np.where(guarantor, "TRUE", "FALSE"),
        "Age": age, "Origin": np.where(migrant, "migrant", "local"), "Outcome": np.where(bad | biased, "bad", "good"),
    }).to_csv(path, index=False)  # fmt: skip
    return path


ASSET_SCHEDULED = ["monitoring", "training", "fairness_gate"]


def _paused(dag_ids: list[str]) -> dict[str, bool]:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(DagModel.dag_id, DagModel.is_paused).where(DagModel.dag_id.in_(dag_ids)))
        return {dag_id: bool(paused) for dag_id, paused in rows}


def _run(dag_id: str, conf: dict) -> None:
    run = local_runs.run(dag_id, conf)
    assert run.state == "success", (dag_id, conf, {ti.task_id: ti.state for ti in run.get_task_instances()})


@pytest.fixture(scope="module")
def own(tmp_path_factory, airflow_db) -> dict:
    with isolated_home(tmp_path_factory, "own-dataset") as home, pytest.MonkeyPatch.context() as mp:
        # as `make demo USECASE=...` sets it: the DAGs' use-case Param defaults to it when they are parsed, which
        # is what the asset-triggered runs (fairness_gate, a requested training) take
        mp.setenv("FAIRWAY_USECASE", NAME)
        mp.setenv("FAIRWAY_APPROVAL_MODE", "auto")
        csv = write_biased_csv(home / "loans.csv")
        assert main(["usecase", "init", "--name", NAME, "--csv", str(csv), "--target", "Outcome",
                     "--protected", "Origin,Age"]) == 0  # fmt: skip
        assert main(["--usecase", NAME, "features", "apply"]) == 0
        uc = load_usecase(NAME)
        plan = lifecycle(available_months(uc))
        _run("feature_pipeline", {"usecase": NAME, "month": plan.history[0]})  # also writes every DAG to the DB
        before = _paused(ASSET_SCHEDULED)
        try:
            pause_and_forget(ASSET_SCHEDULED)
            for month in plan.history[1:]:
                _run("feature_pipeline", {"usecase": NAME, "month": month})
            _run("training", {"usecase": NAME, "window_end": plan.history[-1], "window_months": 6,
                              "candidates": CANDIDATES})  # fmt: skip
            _run("fairness_gate", {"usecase": NAME, "version": None})
            first_champion = registry.version_by_alias(uc, registry.CHAMPION)
            local_runs.unpause(ASSET_SCHEDULED)
            triggered: dict[str, list[tuple[str, str]]] = {}
            for month in plan.scored:
                _run("feature_pipeline", {"usecase": NAME, "month": month})
                _run("batch_inference", {"usecase": NAME, "month": month})
                triggered[month] = [(r.dag_id, r.state) for r in local_runs.run_triggered()]
            yield {"home": home, "uc": uc, "plan": plan, "champion": first_champion, "triggered": triggered}
        finally:
            pause_and_forget(ASSET_SCHEDULED)
            for dag_id, paused in before.items():
                local_runs.unpause([dag_id], paused=paused)


def test_the_csv_became_six_months_of_a_use_case(own) -> None:
    uc, plan = own["uc"], own["plan"]
    assert (own["home"] / "usecases" / f"{NAME}.yaml").is_file() and uc.synthetic is None
    assert plan.months == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
    assert plan.history == plan.months[:4] and plan.scored == ["2024-05", "2024-06"]
    assert uc.protected_features == ["origin", "age"] and "district" in uc.model_inputs
    assert (own["home"] / "feast" / NAME / "registry.db").is_file()  # the Feast project of this use case


def test_the_gate_rejects_the_biased_baseline_and_promotes_a_fair_candidate(own) -> None:
    uc, champion = own["uc"], own["champion"]
    assert champion is not None and champion.tags["fairway.gate_decision"] == "pass"
    assert champion.tags["fairway.approval.approver"] == "policy:auto"
    mlc = registry.client()
    runs = mlc.search_runs([registry.experiment_id(uc)], order_by=["attributes.start_time ASC"])
    first = {r.data.tags["fairway.candidate"]: r for r in runs[:3]}
    assert set(first) == set(CANDIDATES)
    baseline = first["baseline"]
    assert baseline.data.tags["fairway.gate_precheck"] == "reject"
    assert baseline.data.metrics["origin.migrant.disparate_impact"] < uc.gate.disparate_impact_min  # the bias
    assert mlc.get_run(champion.run_id).data.tags["fairway.candidate"] != "baseline"
    assert champion.tags.get("fairway.bento")


def test_scored_months_have_predictions_and_monitoring(own) -> None:
    uc, plan = own["uc"], own["plan"]
    for month in plan.scored:
        records = pd.read_parquet(prediction_partition(uc, month))
        assert len(records) == len(read_month(uc, month)[0]) > 150
        assert set(records["decision"]) <= {"approve", "decline"} and records["score"].between(0, 1).all()
        assert own["triggered"][month] and all(state == "success" for _, state in own["triggered"][month])
        assert own["triggered"][month][0][0] == "monitoring"
        summary = json.loads((month_dir(uc, month) / "summary.json").read_text())
        assert summary["drift"]["rows_scored"] == len(records)
    first, last = plan.scored
    assert json.loads((month_dir(uc, first) / "summary.json").read_text())["outcomes"]["status"] != "judged"
    judged = json.loads((month_dir(uc, last) / "summary.json").read_text())["outcomes"]
    assert judged["status"] == "judged" and judged["judged_month"] == first  # 2024-05's decisions met their outcome
    assert {g["attribute"] for g in judged["metrics"]["fairness"]} == {"origin", "age"}
    history = read_history(uc)
    assert list(history["month"]) == plan.scored


def test_a_requested_retraining_runs_on_this_use_case(own) -> None:
    """The runs the Assets trigger take the use case from the Param default ($FAIRWAY_USECASE at parse time)."""
    uc, history = own["uc"], read_history(own["uc"])
    requested = history.loc[history["retraining_requested"], "month"].tolist()
    assert requested == ["2024-06"]  # judged decisions of 2024-05 broke a fairness threshold (seeded data)
    assert [dag_id for dag_id, _ in own["triggered"]["2024-06"]] == ["monitoring", "training", "fairness_gate"]
    versions = registry.status(uc)["versions"]
    assert len(versions) == 2 and versions[0]["window"].endswith("2024-05")  # trained on outcomes known in 2024-06
