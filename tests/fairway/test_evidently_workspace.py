"""fairway.evidently_workspace: the month's snapshots in an Evidently project, read back through a real
`evidently ui` server as its dashboard plots them; reruns replace, groups are the config's, bad settings refused."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from evidently.core.report import Snapshot

from fairway import evidently_workspace as ew
from fairway import monitoring, settings
from fairway.fairness import group_mask
from tests.datasets import credit_portfolio
from tests.evidently_ui import dashboard, evidently_ui, panel_series, projects

MONTHS = ["2024-07", "2024-08", "2024-09"]


def _attributes(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"sex": rng.choice(["female", "male"], rows, p=[0.3, 0.7]),
                         "age": rng.integers(18, 80, rows).astype(float),
                         "citizenship": rng.choice(["foreign", "national"], rows, p=[0.1, 0.9])})  # fmt: skip


def _decisions(attributes: pd.DataFrame, seed: int) -> pd.Series:
    """Declines twice as likely for the under-30s as for everyone else (20 % against 40 %)."""
    rng = np.random.default_rng(seed)
    declined = rng.uniform(size=len(attributes)) < np.where(attributes["age"] < 30, 0.4, 0.2)
    return pd.Series(np.where(declined, "decline", "approve"))


def _expected(usecase, attributes: pd.DataFrame, decisions: pd.Series) -> dict[str, float]:
    declined = (decisions != "approve").to_numpy()
    expected = {"all": float(declined.mean())}
    for attr in usecase.protected_attributes:
        for group, spec in attr.groups.items():
            expected[f"{attr.feature}={group}"] = float(declined[group_mask(attributes, attr.feature, spec)].mean())
    return expected


def _month(usecase, tmp_path, month: str, shift: float, seed: int) -> dict:
    """A month's two snapshots: drift of the model inputs with incomes cut by `shift`, and declines by group."""
    reference = credit_portfolio(usecase, 400, seed=1)
    current = credit_portfolio(usecase, 400, seed=seed)
    current["income"] *= 1 - shift
    labels = ew.run_labels(usecase, month, "3", ew.DRIFT)
    result = monitoring.drift_report(usecase, reference, current, tmp_path / month, labels)
    attributes = _attributes(600, seed)
    decisions = _decisions(attributes, seed)
    declines = ew.declines_report(usecase, decisions, attributes, ew.run_labels(usecase, month, "3", ew.DECLINES))
    return {"drift": Snapshot.load(tmp_path / month / monitoring.DRIFT_SNAPSHOT), "declines": declines,
            "share": result["drift_share"], "expected": _expected(usecase, attributes, decisions)}  # fmt: skip


def test_groups_are_the_configs_first_match_and_the_rest_is_no_group(usecase) -> None:
    attributes = pd.DataFrame({"sex": ["female", "male", "other", None], "age": [29.9, 30.0, np.nan, 45.0],
                               "citizenship": ["national", "foreign", "", "national"]})  # fmt: skip
    labels = ew.group_labels(usecase, attributes)
    assert labels["sex"].tolist() == ["female", "male", ew.NO_GROUP, ew.NO_GROUP]
    assert labels["age"].tolist() == ["under_30", "30_and_over", ew.NO_GROUP, "30_and_over"]
    assert labels["citizenship"].tolist() == ["national", "foreign", ew.NO_GROUP, "national"]


def test_decline_rates_per_group_equal_an_independent_count(usecase) -> None:
    attributes = _attributes(2000, seed=5)
    decisions = _decisions(attributes, seed=5)
    snapshot = ew.declines_report(usecase, decisions, attributes, ew.run_labels(usecase, "2024-07", "3", ew.DECLINES))
    assert ew.decline_rates(snapshot) == pytest.approx(_expected(usecase, attributes, decisions))
    rates = ew.decline_rates(snapshot)
    assert rates["age=under_30"] > rates["age=30_and_over"] + 0.1  # the built-in bias is what the snapshot shows


def test_a_snapshot_sits_at_its_months_last_moment_with_its_labels(usecase) -> None:
    labels = ew.run_labels(usecase, "2024-02", "7", ew.DRIFT)
    assert labels["timestamp"] == datetime(2024, 2, 29, 23, 59, 59, 999999)
    assert labels["tags"] == ["drift", "2024-02", "v7"]
    assert labels["metadata"] == {"usecase": "credit_risk", "month": "2024-02", "model_version": "7", "kind": "drift"}
    with pytest.raises(ValueError, match="snapshot kind 'fairness'"):
        ew.run_labels(usecase, "2024-02", "7", "fairness")


def test_the_evidently_url_must_be_http(home, monkeypatch) -> None:
    assert settings.evidently().url is None and settings.evidently().folder == home.resolve() / "reports" / "evidently"
    monkeypatch.setenv("FAIRWAY_EVIDENTLY_URL", "file:///tmp/workspace")
    with pytest.raises(settings.SettingsError, match="FAIRWAY_EVIDENTLY_URL must be an http"):
        settings.evidently()
    monkeypatch.setenv("FAIRWAY_EVIDENTLY_URL", "http://evidently:8000/")
    assert settings.evidently().url == "http://evidently:8000"


def test_a_rerun_replaces_its_months_snapshots_and_the_project_keeps_its_id(home, usecase, tmp_path) -> None:
    first, second = _month(usecase, tmp_path, "2024-07", 0.0, 2), _month(usecase, tmp_path, "2024-08", 0.0, 3)
    published = ew.publish(usecase, "2024-07", {ew.DRIFT: first["drift"], ew.DECLINES: first["declines"]})
    ew.publish(usecase, "2024-08", {ew.DRIFT: second["drift"], ew.DECLINES: second["declines"]})
    again = _month(usecase, tmp_path, "2024-07", 0.5, 4)
    rerun = ew.publish(usecase, "2024-07", {ew.DRIFT: again["drift"], ew.DECLINES: again["declines"]})
    assert published["project_id"] == rerun["project_id"] == str(ew.project_id(usecase))
    workspace = ew.open_workspace()
    assert [p.id for p in workspace.list_projects()] == [ew.project_id(usecase)]
    july = ew.month_runs(workspace, usecase, "2024-07")
    assert sorted(workspace.get_run(ew.project_id(usecase), r).metadata["kind"] for r in july) == sorted(ew.KINDS)
    assert len(workspace.list_runs(ew.project_id(usecase))) == 4
    kept = {str(r) for r in ew.month_runs(workspace, usecase, "2024-07")}
    assert kept == set(rerun["runs"].values()) and kept.isdisjoint(published["runs"].values())  # the rerun's
    saved = json.loads((ew.workspace_path() / str(ew.project_id(usecase)) / "metadata.json").read_text())
    assert saved["name"] == usecase.model_name


def test_the_evidently_ui_plots_every_panel_from_the_published_months(home, usecase, tmp_path, monkeypatch) -> None:
    """Published through a running `evidently ui` server (FAIRWAY_EVIDENTLY_URL): the server keeps the project under
    its derived id, its dashboard has every panel, and each panel's series, queried as the UI queries them, holds
    one value per month: the drift share the report measured and the decline rates counted independently."""
    served = tmp_path / "served-workspace"
    with evidently_ui(served) as url:
        monkeypatch.setenv("FAIRWAY_EVIDENTLY_URL", url)
        months = {}
        for index, month in enumerate(MONTHS):
            months[month] = _month(usecase, tmp_path, month, 0.5 if month == "2024-09" else 0.0, 10 + index)
            ew.publish(usecase, month, {ew.DRIFT: months[month]["drift"], ew.DECLINES: months[month]["declines"]})
        assert not (home / "reports" / "evidently").exists()  # nothing went to the local folder
        pid = str(ew.project_id(usecase))
        assert [(p["id"], p["name"]) for p in projects(url)] == [(pid, usecase.model_name)]
        again = _month(usecase, tmp_path, "2024-09", 0.5, 12)
        ew.publish(usecase, "2024-09", {ew.DRIFT: again["drift"], ew.DECLINES: again["declines"]})  # a rerun
        assert len(list((served / pid / "snapshots").iterdir())) == 6  # two per month, the rerun's replaced
        board = dashboard(url, pid)
        titles = [p["title"] for p in board["panels"]]
        assert titles == [p.title for p in ew.panels(usecase)]
        assert {"Decline rate by sex", "Decline rate by age", "Decline rate by citizenship"} <= set(titles)
        plotted = {p["title"]: panel_series(url, pid, p) for p in board["panels"]}
    share = plotted["Share of drifted model inputs"]["drift share"]
    assert share == pytest.approx({m: months[m]["share"] for m in MONTHS})
    assert share["2024-09"] > share["2024-07"]  # the income cut of September
    assert set(plotted["Score drift"]["score"]) == set(MONTHS)
    assert plotted["Decline rate, all decisions"]["all"] == pytest.approx({m: months[m]["expected"]["all"]
                                                                           for m in MONTHS})  # fmt: skip
    for attr in usecase.protected_attributes:
        by_group = plotted[f"Decline rate by {attr.feature}"]
        assert set(by_group) == set(attr.groups)
        for group in attr.groups:
            assert by_group[group] == pytest.approx({m: months[m]["expected"][f"{attr.feature}={group}"]
                                                     for m in MONTHS})  # fmt: skip
