"""batch_inference through real `dag.test()` runs: a real champion in a real MLflow registry, real Feast."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import mlflow
import pandas as pd
import pendulum
import pytest

from fairway import registry
from fairway.config import load_usecase
from fairway.data import available_months, generate, read_month
from fairway.features.store import apply_repo, write_offline_partition
from fairway.inference import ScoringError, pin_champion, score_month
from fairway.records import prediction_partition, pseudonymise
from tests.champion import dag_bag, isolated_home, make_champion, pin_home


@pytest.fixture(scope="module")
def scoring_home(tmp_path_factory) -> Path:
    """1,500 customers over 7 months; a champion trained on the first months; months 5-7 to score."""
    with isolated_home(tmp_path_factory, "scoring-home") as home:
        uc = load_usecase("credit_risk")
        generate(uc, customers=1500, n_months=7, seed=5, drift_month=None)
        apply_repo(uc)
        for month in available_months(uc)[:-1]:  # the last month has no features: a "missing features" case
            write_offline_partition(uc, month)
        make_champion(uc, "2024-04", 3)
    return home


@pytest.fixture
def scoring(scoring_home: Path, monkeypatch: pytest.MonkeyPatch, airflow_db):
    pin_home(monkeypatch, scoring_home)
    return dag_bag().get_dag("batch_inference")


def _run(dag, month: str, day: int = 1):
    run = dag.test(
        run_conf={"usecase": "credit_risk", "month": month}, logical_date=pendulum.datetime(2032, 1, day, tz="UTC")
    )
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_three_months_are_scored_with_their_own_features(scoring, scoring_home) -> None:
    uc = load_usecase("credit_risk")
    champion = registry.version_by_alias(uc, registry.CHAMPION)
    model = mlflow.sklearn.load_model(f"models:/{uc.model_name}/{champion.version}")
    for day, month in enumerate(["2024-04", "2024-05", "2024-06"], start=1):
        run, states = _run(scoring, month, day)
        assert run.state == "success", states
        records = pd.read_parquet(prediction_partition(uc, month))
        snapshot = read_month(uc, month)[0]
        assert len(records) == len(snapshot) and records["subject"].is_unique
        # independent: the month's raw snapshot, scored directly, keyed by the same pseudonym
        expected = pd.Series(
            model.predict_proba(snapshot[uc.model_inputs])[:, 1], index=pseudonymise(snapshot["customer_id"]).to_numpy()
        )
        assert records.set_index("subject")["score"].sort_index().to_numpy() == pytest.approx(
            expected.sort_index().to_numpy(), abs=1e-12
        )
        assert set(records["model_version"]) == {str(champion.version)}
        assert set(records["interval_start"].dt.strftime("%Y-%m")) == {month}
        assert not records["subject"].str.startswith("C").any(), "no customer id in the records"
        # reason codes of a decision: the inputs whose move to the reference lowers the score most
        reference = mlflow.artifacts.load_dict(f"runs:/{champion.run_id}/evaluation/reference.json")
        row = snapshot.iloc[[3]][uc.model_inputs]
        reasons = json.loads(records.set_index("subject").at[pseudonymise(snapshot["customer_id"]).iloc[3], "reasons"])
        effects = {f: float(model.predict_proba(row)[0, 1] - model.predict_proba(row.assign(**{f: reference[f]}))[0, 1])
                   for f in uc.model_inputs}  # fmt: skip
        expected_top = sorted((f for f in effects if effects[f] > 1e-6), key=lambda f: -effects[f])[:3]
        assert [r["feature"] for r in reasons] == expected_top


def test_a_rerun_gives_identical_records_and_no_duplicates(scoring, scoring_home) -> None:
    uc = load_usecase("credit_risk")
    pinned = pin_champion(uc)
    first = score_month(uc, "2024-05", pinned, "run-a")
    digest = _digest(Path(first["path"]))
    again = score_month(uc, "2024-05", pinned, "run-a")
    assert _digest(Path(again["path"])) == digest
    assert len(pd.read_parquet(again["path"])) == first["rows"]


def test_a_crash_between_write_and_rename_leaves_no_partial_file(scoring, scoring_home, monkeypatch) -> None:
    uc = load_usecase("credit_risk")
    pinned = pin_champion(uc)
    target = prediction_partition(uc, "2024-03")
    target.unlink(missing_ok=True)

    def crash(src, dst):  # noqa: ANN001
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed before the rename"):
        score_month(uc, "2024-03", pinned, "run-b")
    monkeypatch.undo()
    assert not target.exists()
    assert list(target.parent.iterdir()) == [p for p in target.parent.iterdir() if p.suffix == ".parquet"], (
        "no temporary file left"
    )
    pin_home(monkeypatch, scoring_home)
    score_month(uc, "2024-03", pinned, "run-b")
    reference = _digest(target)
    score_month(uc, "2024-03", pinned, "run-b")
    assert _digest(target) == reference


def test_missing_features_fail_with_the_reason_and_write_nothing(scoring, scoring_home) -> None:
    uc = load_usecase("credit_risk")
    run, states = _run(scoring, "2024-07", 20)
    assert run.state == "failed" and states["score_month"] == "failed"
    assert not prediction_partition(uc, "2024-07").exists()
    with pytest.raises(ScoringError, match="no features for 2024-07"):
        score_month(uc, "2024-07", pin_champion(uc), "x")


def test_no_champion_fails_with_the_reason_and_writes_nothing(scoring, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("FAIRWAY_LEDGER_URL", f"sqlite:///{tmp_path / 'empty-ledger.db'}")
    uc = load_usecase("credit_risk")
    before = sorted(prediction_partition(uc, "2024-01").parent.glob("*.parquet"))
    run, states = _run(scoring, "2024-01", 25)
    assert run.state == "failed" and states["pin_champion"] == "failed" and states["score_month"] == "upstream_failed"
    assert sorted(prediction_partition(uc, "2024-01").parent.glob("*.parquet")) == before
    with pytest.raises(ScoringError, match="has no champion"):
        pin_champion(uc)
