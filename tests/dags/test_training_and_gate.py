"""training and fairness_gate through real `dag.test()` runs: real Feast store, real MLflow registry (SQLite),
real BentoML store; the human approval answered as the REST API does."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd
import pendulum
import pytest

from fairway import registry
from fairway.config import load_usecase
from fairway.data import available_months, generate
from fairway.features.store import apply_repo, write_offline_partition
from fairway.training import load_frame
from tests.dags.hitl import answer_in_background

ALL = ["baseline", "reweighing", "exponentiated_gradient"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """2,000 customers over 7 months in the offline store: shared by the tests of this module."""
    home = tmp_path_factory.mktemp("gate-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRWAY_HOME", str(home))
        uc = load_usecase("credit_risk")
        generate(uc, customers=2000, n_months=7, seed=21, drift_month=None)
        apply_repo(uc)
        for month in available_months(uc):
            write_offline_partition(uc, month)
    return home


@pytest.fixture
def lifecycle(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db):
    """The shared feature store with a fresh MLflow registry for each test."""
    from airflow.dag_processing.dagbag import BundleDagBag

    from tests.conftest import DAGS

    monkeypatch.setenv("FAIRWAY_HOME", str(store))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("FAIRWAY_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")  # the registry's own ledger
    monkeypatch.delenv("FAIRWAY_APPROVAL_MODE", raising=False)
    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)
    return {
        "training": bag.get_dag("training"),
        "gate": bag.get_dag("fairness_gate"),
        "uc": load_usecase("credit_risk"),
    }


_runs = iter(range(1, 10_000))


def run(dag, conf: dict):
    when = pendulum.datetime(2031, 1, 1, tz="UTC").add(days=next(_runs))
    result = dag.test(run_conf=conf, logical_date=when)
    return result, {ti.task_id: ti.state for ti in result.get_task_instances()}


def train(lifecycle, candidates: list[str]):
    return run(
        lifecycle["training"],
        {"usecase": "credit_risk", "window_end": "2024-06", "window_months": 5, "candidates": candidates},
    )


def gate(lifecycle):
    return run(lifecycle["gate"], {"usecase": "credit_risk", "version": None})


def champion(uc) -> str | None:
    mv = registry.version_by_alias(uc, registry.CHAMPION)
    return None if mv is None else str(mv.version)


def test_a_biased_candidate_is_rejected_and_a_fair_one_becomes_champion(lifecycle, monkeypatch) -> None:
    uc = lifecycle["uc"]
    monkeypatch.setenv("FAIRWAY_APPROVAL_MODE", "auto")
    trained, states = train(lifecycle, ["baseline"])
    assert trained.state == "success", states
    gated, states = gate(lifecycle)
    assert gated.state == "success", states
    assert states["reject_candidate"] == "success"
    assert states["promote"] == "skipped" and states["package"] == "skipped"
    rejected = registry.get_version(uc, "1")
    assert rejected.tags["fairway.gate_decision"] == "reject"
    assert rejected.tags["fairway.status"] == "rejected"
    assert "disparate_impact [citizenship: foreign vs national]" in rejected.tags["fairway.gate_reasons"]
    assert champion(uc) is None

    trained, _ = train(lifecycle, ALL)
    assert trained.state == "success"
    gated, states = gate(lifecycle)
    assert gated.state == "success", states
    assert states["promote"] == "success" and states["package"] == "success"
    assert champion(uc) == "2"
    promoted = registry.get_version(uc, "2")
    assert promoted.tags["fairway.candidate"] in ("reweighing", "exponentiated_gradient")
    assert promoted.tags["fairway.approval.approver"] == "policy:auto"
    assert promoted.tags["fairway.approval.evidence_sha256"] == promoted.tags["fairway.gate_report_sha256"]
    assert promoted.tags["fairway.bento"].startswith("fairway_credit_risk:mlflow-v2-")  # as `bentoml list` shows

    import bentoml

    bento = bentoml.get(promoted.tags["fairway.bento"])
    assert bento.info.labels["mlflow_version"] == "2"
    assert [str(m.tag) for m in bento.info.all_models] == [bento.info.labels["bento_model"]]

    # the packaged champion serves over HTTP and says which version answers
    import httpx

    from tests.bento.serving import served

    applicant = {"income": 2500.0, "debt_ratio": 0.3, "credit_amount": 12000.0, "loan_duration_months": 36,
                 "late_payments_12m": 1, "savings_balance": 1500.0, "tenure_months": 40,
                 "employment_type": "permanent", "housing": "rent", "residential_area": "east"}  # fmt: skip
    with served(promoted.tags["fairway.bento"]) as url:
        answer = httpx.post(f"{url}/predict_features", json={"applicant": applicant}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "2"
        refused = httpx.post(
            f"{url}/predict_features", json={"applicant": {**applicant, "citizenship": "foreign"}}, timeout=10
        )
        assert refused.status_code == 400 and "citizenship" in refused.text
        info = httpx.get(f"{url}/model", timeout=10).json()
        assert info["mlflow_version"] == "2" and info["approval"]["approver"] == "policy:auto"


def test_gate_numbers_equal_an_independent_numpy_computation(lifecycle, monkeypatch) -> None:
    uc = lifecycle["uc"]
    trained, _ = train(lifecycle, ["baseline"])
    registered = trained.get_task_instance("register_candidate").xcom_pull(task_ids="register_candidate")
    mv = registry.get_version(uc, registered["version"])
    lineage = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/lineage/training_frame.json")
    _, holdout = load_frame(lineage)
    model = mlflow.sklearn.load_model(f"models:/{uc.model_name}/{mv.version}")
    approved = model.predict_proba(holdout[uc.model_inputs])[:, 1] < uc.gate.decision_threshold
    deserved = holdout["default_12m"].to_numpy() == 0
    logged = {(g.attribute, g.group): g for g in registry.run_metrics(str(mv.run_id)).fairness}
    checked = 0
    for attribute, group, reference in [
        ("citizenship", holdout.citizenship == "foreign", holdout.citizenship == "national"),
        ("sex", holdout.sex == "female", holdout.sex == "male"),
        ("age", holdout.age < 30, holdout.age >= 30),
    ]:
        a, b = group.to_numpy(), reference.to_numpy()
        name = {"citizenship": "foreign", "sex": "female", "age": "under_30"}[attribute]
        rate_a, rate_b = approved[a].mean(), approved[b].mean()
        tpr_a, tpr_b = approved[a & deserved].mean(), approved[b & deserved].mean()
        g = logged[(attribute, name)]
        assert g.disparate_impact == pytest.approx(rate_a / rate_b, abs=1e-12)
        assert g.statistical_parity == pytest.approx(rate_a - rate_b, abs=1e-12)
        assert g.equal_opportunity == pytest.approx(tpr_a - tpr_b, abs=1e-12)
        assert (g.group_size, g.reference_size) == (a.sum(), b.sum())
        checked += 1
    assert checked == 3
    assert logged[("citizenship", "foreign")].disparate_impact < 0.8, "the default data carries the bias"


def _human_gate(lifecycle, option: str, comment: str, user: str) -> tuple:
    seen: dict = {}
    thread = answer_in_background("fairness_gate", "human_approval", option, comment, user, seen)
    result = gate(lifecycle)
    thread.join(timeout=10)
    if "error" in seen:
        raise seen["error"]
    return result, seen


def test_human_mode_waits_for_approval_and_a_rejection_leaves_champion_untouched(lifecycle) -> None:
    uc = lifecycle["uc"]
    train(lifecycle, ALL)
    (gated, states), seen = _human_gate(lifecycle, "Reject", "holdout too small to trust", "carla")
    assert gated.state == "success", states
    assert "gate decision **pass**" in seen["body"] and "Evidence SHA-256" in seen["body"]
    assert seen["options"] == ["Approve", "Reject"]
    assert states["human_approval"] == "success" and states["promote"] == "skipped"
    assert champion(uc) is None
    version = registry.get_version(uc, "1")
    assert version.tags["fairway.status"] == "rejected"
    assert version.tags["fairway.approval.approver"] == "carla"
    assert version.tags["fairway.approval.decision"] == "rejected"
    assert version.tags["fairway.approval.comment"] == "holdout too small to trust"


def test_human_approval_promotes_with_the_approver_and_documents_the_version(lifecycle) -> None:
    uc = lifecycle["uc"]
    train(lifecycle, ALL)
    (gated, states), _ = _human_gate(lifecycle, "Approve", "reviewed the fairness table", "dana")
    assert gated.state == "success", states
    assert champion(uc) == "1"
    mv = registry.get_version(uc, "1")
    assert mv.tags["fairway.approval.approver"] == "dana"
    assert mv.tags["fairway.approval.mode"] == "human"
    assert mv.tags["fairway.approval.comment"] == "reviewed the fairness table"
    assert mv.tags["fairway.approval.evidence_sha256"] == mv.tags["fairway.gate_report_sha256"]

    doc = (Path(gated.get_task_instance("document").xcom_pull(task_ids="document")["markdown"])).read_text()
    metrics = registry.run_metrics(str(mv.run_id))
    for heading in ["## 1. General description and intended purpose", "## 2. Design and development", "### Data (Art. 10)",
                    "## 3. Performance", "## 4. Fairness per protected group", "## 5. Explanations",
                    "## 6. Risk management: the fairness gate", "## 7. Human oversight", "## 8. Model card for deployers",
                    "## 9. Lifecycle and post-market monitoring"]:  # fmt: skip
        assert heading in doc
    importance = pd.read_csv(
        mlflow.artifacts.download_artifacts(f"runs:/{mv.run_id}/evaluation/permutation_importance.csv")
    )
    assert set(importance["feature"]) == set(uc.model_inputs)
    top = importance.iloc[0]
    assert top["importance_mean"] > 0.01  # the model uses its inputs: shuffling the most important one costs AUC
    assert f"| {top['feature']} | {top['importance_mean']:.3f} |" in doc
    assert (Path(gated.get_task_instance("document").xcom_pull(task_ids="document")["markdown"]).parent
            / "permutation_importance.png").stat().st_size > 1000  # fmt: skip
    assert f"AUC {metrics.auc:.3f}" in doc
    for g in metrics.fairness:
        assert f"| {g.attribute} | {g.group} vs {g.reference} |" in doc and f"{g.disparate_impact:.3f}" in doc
    assert "by **dana** (human mode)" in doc and "reviewed the fairness table" in doc
    assert mv.tags["fairway.gate_report_sha256"] in doc
    for placeholder in (r"\bTODO\b", r"\bTBD\b", r"\bnan\b", r"\bNone\b", r"\bn/a\b", r"[{}]"):
        assert not re.search(placeholder, doc), placeholder
    html = Path(gated.get_task_instance("document").xcom_pull(task_ids="document")["html"]).read_text()
    assert "<table>" in html and "<h2>" in html


def test_promotion_is_refused_without_a_passing_gate_or_for_other_evidence(lifecycle) -> None:
    uc = lifecycle["uc"]
    train(lifecycle, ["baseline"])
    from fairway.promotion import gate_candidate, promote

    gated = gate_candidate(uc)
    assert gated["decision"] == "reject"
    approval = {"decision": "approved", "approver": "eve", "decided_at": "2031-01-01T00:00:00+00:00", "comment": "",
                "mode": "human", "evidence_sha256": gated["evidence_sha256"]}  # fmt: skip
    # the tag says pass, the ledger says reject: the ledger decides
    registry.client().set_model_version_tag(uc.model_name, gated["version"], "fairway.gate_decision", "pass")
    with pytest.raises(registry.PromotionRefused, match="the ledger's gate decision is 'reject'"):
        promote(uc, gated, approval)
    train(lifecycle, ALL)
    gated = gate_candidate(uc)
    assert gated["decision"] == "pass"
    with pytest.raises(registry.PromotionRefused, match="other evidence"):
        promote(uc, gated, {**approval, "evidence_sha256": "0" * 64})
    assert champion(uc) is None


def test_model_control_stops_at_once_and_rolls_back_only_with_a_person(lifecycle, monkeypatch) -> None:
    from airflow.dag_processing.dagbag import BundleDagBag

    from fairway import ledger
    from fairway.inference import ScoringError, pin_champion
    from tests.conftest import DAGS

    uc = lifecycle["uc"]
    monkeypatch.setenv("FAIRWAY_APPROVAL_MODE", "auto")
    train(lifecycle, ALL)
    gate(lifecycle)
    assert champion(uc) == "1"
    control = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS).get_dag("model_control")
    conf = {"usecase": "credit_risk", "version": None}
    stopped, states = run(control, {**conf, "action": "stop", "reason": "complaints about declines"})
    assert stopped.state == "success" and states["stop_model"] == "success", states
    assert states["request_rollback"] == "skipped" and states["package"] == "skipped"
    assert champion(uc) is None and registry.get_version(uc, "1").tags["fairway.status"] == "stopped"
    with pytest.raises(ScoringError, match="model stopped by airflow:.* at .*: complaints about declines"):
        pin_champion(uc)

    # a rollback is a promotion: FAIRWAY_APPROVAL_MODE=auto does not apply, a person answers; first a rejection
    seen: dict = {}
    thread = answer_in_background("model_control", "approve_rollback", "Reject", "not yet", "carla", seen)
    rejected, states = run(control, {**conf, "action": "rollback", "reason": "the data feed is fixed"})
    thread.join(timeout=10)
    assert "error" not in seen and "Roll **credit-risk** back to **v1**" in seen["body"]
    assert states["apply_rollback"] == "skipped" and states["record_review"] == "success", states
    assert champion(uc) is None
    assert [e.action for e in ledger.entries(uc.model_name)][-1] == "approval"
    thread = answer_in_background("model_control", "approve_rollback", "Approve", "checked the feed", "olga", seen)
    rolled, states = run(control, {**conf, "action": "rollback", "reason": "the data feed is fixed"})
    thread.join(timeout=10)
    assert rolled.state == "success" and states["package"] == "success", states
    assert champion(uc) == "1" and pin_champion(uc)["version"] == "1"
    last = ledger.entries(uc.model_name)[-1]
    assert (last.action, last.actor, last.payload["reason"]) == ("rollback", "olga", "the data feed is fixed")


def test_a_path_as_usecase_is_refused_before_anything_runs(lifecycle) -> None:
    """The attack of a REST trigger: a copy of the config with loose thresholds, passed where a name belongs."""
    from airflow.sdk.exceptions import ParamValidationError

    from fairway.config import ConfigError
    from fairway.promotion import gate_candidate

    with pytest.raises(ParamValidationError):
        run(lifecycle["gate"], {"usecase": "/tmp/loose_copy.yaml", "version": "1"})
    with pytest.raises(ConfigError, match="is not a use-case name"):
        gate_candidate("/tmp/loose_copy.yaml", "1")


def test_a_candidate_that_raises_is_recorded_and_the_others_are_compared(lifecycle, monkeypatch) -> None:
    """One candidate raises (as ExponentiatedGradient once did on a sparse matrix): its MLflow run is FAILED with
    the reason, the others are compared and the best is registered; when every candidate raises, training fails
    with each reason."""
    from fairway import training

    uc = lifecycle["uc"]
    plain = training._classifier

    def broken(name: str):
        if name == "gradient_boosting":
            raise IndexError("tuple index out of range")
        return plain(name)

    monkeypatch.setattr(training, "_classifier", broken)
    trained, states = train(lifecycle, ["baseline", "gradient_boosting"])
    assert trained.state == "success", states
    registered = registry.get_version(uc, "1")
    assert registered.tags["fairway.candidate"] == "baseline"
    runs = {r.data.tags["fairway.candidate"]: r for r in registry.client().search_runs([registry.experiment_id(uc)])}
    failed = runs["gradient_boosting"]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["fairway.candidate_status"] == "failed"
    assert failed.data.tags["fairway.failure"] == "IndexError: tuple index out of range"
    trace = mlflow.artifacts.load_text(f"runs:/{failed.info.run_id}/evaluation/failure.txt")
    assert "Traceback" in trace and "IndexError" in trace
    assert runs["baseline"].data.tags["fairway.candidate_status"] == "trained"
    gated, states = gate(lifecycle)  # the gate report lists every candidate of the run, the failed one too
    assert gated.state == "success", states
    report = registry.load_dict(str(registered.run_id), "gate/gate_report.json")
    listed = {c["candidate"]: c for c in report["candidates"]}
    assert listed["gradient_boosting"]["status"] == "failed"
    assert listed["gradient_boosting"]["failure"] == "IndexError: tuple index out of range"
    assert listed["baseline"]["status"] == "trained" and listed["baseline"]["auc"] > 0.5

    def always(name: str):
        raise ValueError(f"{name} cannot fit")

    monkeypatch.setattr(training, "_classifier", always)
    trained, states = train(lifecycle, ["baseline", "reweighing"])
    assert trained.state == "failed"
    assert states["register_candidate"] == "failed"
    assert states["train_candidate"] == "success"  # each candidate's failure is recorded, not raised
    with pytest.raises(training.CandidateFailed, match="baseline: ValueError: baseline cannot fit; reweighing"):
        training.register_best(uc, [{"candidate": n, "failed": True, "error": f"ValueError: {n} cannot fit"}
                                    for n in ("baseline", "reweighing")])  # fmt: skip
    versions = registry.client().search_model_versions(f"name='{uc.model_name}'")
    assert [str(v.version) for v in versions] == ["1"]  # nothing new registered
