"""monitoring through real `dag.test()` runs on the default use case's data (its seed, size and drift month):
real Evidently, real MLflow registry, real Feast; the retraining request is turned into a `training` run by
Airflow's own scheduler code and executed."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fairway import registry
from fairway.config import load_usecase
from fairway.data import read_month
from fairway.inference import pin_champion, score_month
from fairway.monitoring import MonitoringError, check_drift, monitoring_dir, month_dir, read_history
from fairway.records import prediction_partition, pseudonymise
from tests.champion import feature_store, isolated_home, make_champion
from tests.conftest import PROJECT
from tests.dags.assets import forget_events

sys.path.insert(0, str(PROJECT / "include"))
import local_runs  # noqa: E402

MONTHS = ["2024-07", "2024-08", "2024-09"]  # the default data drifts from month 9 (2024-09)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory, airflow_db) -> dict:
    """Ten months of the default data, a champion trained on labels known at the end of 2024-06, months 7-9
    scored, then the monitoring DAG run for each of them with `training` unpaused (so a request queues it)."""
    with isolated_home(tmp_path_factory, "monitoring-home") as home:
        uc = load_usecase("credit_risk")
        s = uc.synthetic
        assert s is not None and s.drift_month == 9
        feature_store(uc, s.customers, 10, s.seed, s.drift_month, s.monthly_churn)
        version = make_champion(uc, "2024-06", 6)
        pinned = pin_champion(uc)
        for month in MONTHS:
            score_month(uc, month, pinned, f"test-{month}")
        dag = local_runs.dagbag().get_dag("monitoring")
        dag.test(run_conf={"usecase": uc.name, "month": MONTHS[0]})  # writes the DAGs to the DB
        forget_events(["training"])  # retraining requests of earlier modules' homes are not this one's
        local_runs.unpause(["training"])
        runs = {}
        for month in MONTHS:
            run = dag.test(run_conf={"usecase": uc.name, "month": month})
            runs[month] = {ti.task_id: ti.state for ti in run.get_task_instances()}
        yield {"home": home, "uc": uc, "version": version, "states": runs}
        local_runs.unpause(["training"], paused=True)


def _summary(uc, month: str) -> dict:
    return json.loads((month_dir(uc, month) / "summary.json").read_text())


def test_drift_is_flagged_at_the_drift_month_and_not_before(monitored) -> None:
    uc, states = monitored["uc"], monitored["states"]
    for month in MONTHS:
        assert all(state in ("success", "skipped") for state in states[month].values()), (month, states[month])
    for month in ["2024-07", "2024-08"]:
        summary = _summary(uc, month)
        assert summary["drift"]["dataset_drift"] is False, summary["drift"]["drifted_columns"]
        assert summary["retraining_reasons"] == []
        assert states[month]["request_retraining"] == "skipped"
    drifted = _summary(uc, "2024-09")
    assert drifted["drift"]["dataset_drift"] is True
    assert drifted["drift"]["drift_share"] >= uc.drift.share_of_drifted_columns_max
    assert "income" in drifted["drift"]["drifted_columns"]  # the episode cuts incomes
    assert drifted["retraining_reasons"] and drifted["retraining_reasons"][0].startswith("data drift in 2024-09")
    assert states["2024-09"]["request_retraining"] == "success"


def test_reports_history_and_mlflow_runs(monitored) -> None:
    uc = monitored["uc"]
    history = read_history(uc)
    assert list(history["month"]) == MONTHS
    assert list(history["retraining_requested"]) == [False, False, True]
    assert list(history["judged_month"]) == ["2024-06", "2024-07", "2024-08"]
    assert math.isnan(history["auc"].iloc[0])  # 2024-06 was not scored by Fairway: nothing to judge
    assert history["auc"].iloc[1:].between(0.6, 0.8).all()
    for month in MONTHS:
        assert (month_dir(uc, month) / "drift.html").stat().st_size > 100_000
        assert json.loads((month_dir(uc, month) / "drift.json").read_text())["metrics"]
    for name in ("trends.png", "index.html", "history.csv"):
        assert (monitoring_dir(uc) / name).stat().st_size > 0
    mlc = registry.client()
    experiment = mlc.get_experiment_by_name(f"fairway-{uc.name}-monitoring")
    runs = mlc.search_runs([experiment.experiment_id])
    months = sorted(r.data.tags["fairway.month"] for r in runs)
    assert months[-3:] == MONTHS
    september = next(r for r in runs if r.data.tags["fairway.month"] == "2024-09")
    assert september.data.metrics["drift_share"] >= uc.drift.share_of_drifted_columns_max


def test_outcome_metrics_equal_an_independent_computation(monitored) -> None:
    """September judges August's recorded decisions: recompute from the raw snapshots, labels and records."""
    uc = monitored["uc"]
    outcomes = _summary(uc, "2024-09")["outcomes"]
    assert outcomes["judged_month"] == "2024-08" and outcomes["status"] == "judged"
    snapshots, _ = read_month(uc, "2024-08")
    _, delivered = read_month(uc, "2024-09")  # labels of August's snapshots arrive in September
    people = snapshots.merge(delivered[["customer_id", "default_12m"]], on="customer_id")
    people["subject"] = pseudonymise(people["customer_id"])
    records = pd.read_parquet(prediction_partition(uc, "2024-08"))
    joined = records.merge(people, on="subject")
    assert outcomes["rows"] == len(joined) > 4000
    approved = (joined["decision"] == "approve").to_numpy()
    good = (joined["default_12m"] == 0).to_numpy()
    metrics = outcomes["metrics"]
    assert metrics["auc"] == pytest.approx(roc_auc_score(joined["default_12m"], joined["score"]), abs=1e-12)
    assert metrics["accuracy"] == pytest.approx(float(np.mean(approved == good)), abs=1e-12)
    groups = {
        ("sex", "female"): (joined["sex"] == "female", joined["sex"] == "male"),
        ("age", "under_30"): (joined["age"] < 30, joined["age"] >= 30),
        ("citizenship", "foreign"): (joined["citizenship"] == "foreign", joined["citizenship"] == "national"),
    }
    measured = {(g["attribute"], g["group"]): g for g in metrics["fairness"]}
    assert set(measured) == set(groups)
    for key, (a, b) in groups.items():
        a, b = a.to_numpy(), b.to_numpy()
        rate_a, rate_b = approved[a].mean(), approved[b].mean()
        tpr_a, tpr_b = approved[a & good].mean(), approved[b & good].mean()
        assert measured[key]["group_size"] == a.sum() and measured[key]["reference_size"] == b.sum()
        assert measured[key]["disparate_impact"] == pytest.approx(rate_a / rate_b, abs=1e-12)
        assert measured[key]["statistical_parity"] == pytest.approx(rate_a - rate_b, abs=1e-12)
        assert measured[key]["equal_opportunity"] == pytest.approx(tpr_a - tpr_b, abs=1e-12)


def test_retraining_request_is_consumed_by_training(monitored, monkeypatch) -> None:
    uc = monitored["uc"]
    monkeypatch.setenv("FAIRWAY_HOME", str(monitored["home"]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{monitored['home'] / 'mlflow.db'}")
    queued = local_runs.create_triggered_runs(["training"])
    assert [r.dag_id for r in queued] == ["training"]
    assert queued[0].run_type == "asset_triggered"
    done = local_runs.execute(queued[0])
    assert done.state == "success", {ti.task_id: ti.state for ti in done.get_task_instances()}
    candidate = registry.version_by_alias(uc, registry.CANDIDATE)
    assert candidate is not None and str(candidate.version) != monitored["version"]
    lineage = registry.training_lineage(uc, str(candidate.version))
    assert lineage["window_end"] == "2024-09"  # the month of the request: labels known then
    assert lineage["trigger"][0].startswith("data drift in 2024-09")
    run = registry.client().get_run(candidate.run_id)
    assert run.data.tags["fairway.trigger"].startswith("data drift in 2024-09")
    champion = registry.version_by_alias(uc, registry.CHAMPION)
    assert str(champion.version) == monitored["version"]  # a request trains; only the gate and an approval promote


def test_a_month_that_was_not_scored_fails_with_the_reason(monitored, monkeypatch) -> None:
    monkeypatch.setenv("FAIRWAY_HOME", str(monitored["home"]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{monitored['home'] / 'mlflow.db'}")
    uc = monitored["uc"]
    dag = local_runs.dagbag().get_dag("monitoring")
    run = dag.test(run_conf={"usecase": uc.name, "month": "2024-10"})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "failed" and states["check_drift"] == "failed"
    assert not (month_dir(uc, "2024-10") / "summary.json").exists()
    assert list(read_history(uc)["month"]) == MONTHS
    with pytest.raises(MonitoringError, match="2024-10 has no prediction records.*run batch_inference"):
        check_drift(uc, "2024-10")


def test_cli_prints_the_history(monitored, monkeypatch, capsys) -> None:
    from fairway.cli import main

    monkeypatch.setenv("FAIRWAY_HOME", str(monitored["home"]))
    assert main(["monitoring"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("2024-")}
    assert set(lines) == set(MONTHS)
    assert "data drift" in lines["2024-09"] and "True" in lines["2024-09"]  # alerts, retraining requested
    assert "True" not in lines["2024-07"] and "True" not in lines["2024-08"]
    assert "monitoring/index.html" in out
    assert main(["monitoring", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["month"] for r in rows] == MONTHS


def test_every_month_is_in_evidently_s_ui(monitored, monkeypatch) -> None:
    """publish_to_evidently put each month's drift and declines into the use case's project of the local workspace;
    a real `evidently ui` over that folder plots the drift share of the summaries and the decline rates per group
    recomputed from the raw snapshots and the decision records."""
    from fairway import evidently_workspace as ew
    from tests.evidently_ui import dashboard, evidently_ui, panel_series, projects

    monkeypatch.setenv("FAIRWAY_HOME", str(monitored["home"]))
    uc = monitored["uc"]
    for month in MONTHS:
        assert monitored["states"][month]["publish_to_evidently"] == "success"
    expected: dict[str, dict[str, float]] = {}
    for month in MONTHS:
        snapshots, _ = read_month(uc, month)
        snapshots["subject"] = pseudonymise(snapshots["customer_id"])
        joined = pd.read_parquet(prediction_partition(uc, month)).merge(snapshots, on="subject")
        declined = joined["decision"] != "approve"
        expected[month] = {"sex=female": declined[joined["sex"] == "female"].mean(),
                           "sex=male": declined[joined["sex"] == "male"].mean(),
                           "age=under_30": declined[joined["age"] < 30].mean(),
                           "age=30_and_over": declined[joined["age"] >= 30].mean(),
                           "citizenship=foreign": declined[joined["citizenship"] == "foreign"].mean(),
                           "all": declined.mean()}  # fmt: skip
    pid = str(ew.project_id(uc))
    with evidently_ui(ew.workspace_path()) as url:
        assert [p["id"] for p in projects(url)] == [pid]
        plotted = {p["title"]: panel_series(url, pid, p) for p in dashboard(url, pid)["panels"]}
    share = plotted["Share of drifted model inputs"]["drift share"]
    assert share == pytest.approx({m: _summary(uc, m)["drift"]["drift_share"] for m in MONTHS})
    assert plotted["Decline rate, all decisions"]["all"] == pytest.approx({m: expected[m]["all"] for m in MONTHS})
    for attribute, group in [("sex", "female"), ("sex", "male"), ("age", "under_30"), ("age", "30_and_over"),
                             ("citizenship", "foreign")]:  # fmt: skip
        by_month = plotted[f"Decline rate by {attribute}"][group]
        assert by_month == pytest.approx({m: expected[m][f"{attribute}={group}"] for m in MONTHS}), (attribute, group)
