"""Monitoring in Evidently's own UI: a workspace with a project per use case, every monitored month as snapshots.

The workspace is the folder FAIRWAY_HOME/reports/evidently (`evidently ui --workspace <it>` serves it; `make up`
starts that UI), or, with FAIRWAY_EVIDENTLY_URL, a running `evidently ui` server that several machines write to
(fairway.settings.evidently). Each use case is one project, its id derived from the use-case name, so every worker process
finds or creates the same project without asking anyone. Per monitored month it holds two snapshots, both
stamped with the month's last moment (the dashboard's time axis is the month, not the day it ran):

- `drift`: the month's Evidently drift report (the snapshot behind drift.html);
- `decline-by-group`: the month's decline rate over all decisions and per group of every protected attribute.

A rerun of a month replaces that month's snapshots; the dashboard is written again on every publication from the
use case's config (a group added to the config gets its line). The HTML reports under monitoring/ stay.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from fairway.config import UseCase, month_str

# the namespace of every id Fairway derives for Evidently (projects and panels)
NAMESPACE = uuid.UUID("5b0f6c52-3f0e-4a55-9a53-1f3c8e6d2a10")
DRIFT = "drift"
DECLINES = "decline-by-group"
KINDS = (DRIFT, DECLINES)
DECLINED = "declined"
NO_GROUP = "(no group)"
TAB = "Monitoring"


def workspace_path() -> Path:
    from fairway import settings

    return settings.evidently().folder


def target() -> str:
    """Where snapshots go: the server's URL, or the workspace folder."""
    from fairway import settings

    where = settings.evidently()
    return where.url or str(where.folder)


def project_id(uc: UseCase) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"project:{uc.name}")


def month_timestamp(month: str) -> datetime:
    """The last moment of the month (UTC, naive as Evidently stores it): where the month sits on the time axis."""
    end = (pd.Period(month_str(month), freq="M") + 1).start_time
    return (end - timedelta(microseconds=1)).to_pydatetime()


def run_labels(uc: UseCase, month: str, version: str, kind: str) -> dict[str, Any]:
    """Timestamp, tags and metadata of one of the month's snapshots (Report.run's keyword arguments)."""
    if kind not in KINDS:
        raise ValueError(f"snapshot kind {kind!r}: not one of {KINDS}")
    month = month_str(month)
    return {
        "timestamp": month_timestamp(month),
        "tags": [kind, month, f"v{version}"],
        "metadata": {"usecase": uc.name, "month": month, "model_version": str(version), "kind": kind},
        "name": f"{uc.name} {month} {kind} (v{version})",
    }


# --- the month's decisions by group ------------------------------------------------------------------


def group_labels(uc: UseCase, attributes: pd.DataFrame) -> pd.DataFrame:
    """Per protected attribute, the config's group each row falls in (the first that matches; NO_GROUP when none)."""
    from fairway.fairness import group_mask

    labels = pd.DataFrame(index=attributes.index)
    for attr in uc.protected_attributes:
        label = pd.Series(NO_GROUP, index=attributes.index, dtype=object)
        for group, spec in reversed(list(attr.groups.items())):
            label[group_mask(attributes, attr.feature, spec)] = group
        labels[attr.feature] = label
    return labels


def declines_report(uc: UseCase, decisions: pd.Series, attributes: pd.DataFrame, labels: dict[str, Any]) -> Any:
    """An Evidently snapshot of the decline rate (share of decisions that are not "approve") over all decisions
    and, with Evidently's GroupBy, per group of every protected attribute; the row count next to it."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue, RowCount
    from evidently.metrics.group_by import GroupBy

    frame = group_labels(uc, attributes.reset_index(drop=True))
    frame[DECLINED] = (decisions.reset_index(drop=True).astype(str) != "approve").astype(float)
    definition = DataDefinition(numerical_columns=[DECLINED], categorical_columns=uc.protected_features)
    rate = MeanValue(column=DECLINED)
    report = Report([RowCount(), rate, *(GroupBy(rate, a) for a in uc.protected_features)])
    return report.run(Dataset.from_pandas(frame, data_definition=definition), None, **labels)


def decline_rates(snapshot: Any) -> dict[str, float]:
    """`all` and `<attribute>=<group>` -> decline rate, read back from a declines snapshot."""
    rates: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":MeanValue"):
            rates["all"] = float(metric["value"])
        elif config.get("type", "").endswith(":GroupByMetric"):
            rates[f"{config['column_name']}={config['label']}"] = float(metric["value"])
    return rates


# --- the project and its dashboard -------------------------------------------------------------------


def _panel_id(uc: UseCase, title: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"panel:{uc.name}:{title}")


def _panel(uc: UseCase, title: str, subtitle: str, values: list[Any], plot: str = "line", size: str = "half") -> Any:
    from evidently.sdk.models import DashboardPanelPlot

    return DashboardPanelPlot(id=_panel_id(uc, title), title=title, subtitle=subtitle, size=size, values=values,
                              plot_params={"plot_type": plot})  # fmt: skip


def panels(uc: UseCase) -> list[Any]:
    """Drift share and score drift by month; decline rate over all decisions and per group of each attribute."""
    from evidently.sdk.models import PanelMetric

    threshold = uc.drift.share_of_drifted_columns_max
    result = [
        _panel(uc, "Share of drifted model inputs", f"retraining is requested at {threshold:.0%} or more",
               [PanelMetric(legend="drift share", tags=[DRIFT], metric="DriftedColumnsCount",
                            metric_labels={"value_type": "share"})]),  # fmt: skip
        _panel(uc, "Score drift", "drift statistic of the recorded scores against the training frame's",
               [PanelMetric(legend="score", tags=[DRIFT], metric="ValueDrift", metric_labels={"column": "score"})]),  # fmt: skip
        _panel(uc, "Decline rate, all decisions", "share of the month's decisions that are not approve",
               [PanelMetric(legend="all", tags=[DECLINES], metric="MeanValue", metric_labels={"column": DECLINED})]),  # fmt: skip
    ]
    for attr in uc.protected_attributes:
        values = [PanelMetric(legend=group, tags=[DECLINES], metric="GroupByMetric",
                              metric_labels={"column_name": attr.feature, "label": group}) for group in attr.groups]  # fmt: skip
        result.append(_panel(uc, f"Decline rate by {attr.feature}", f"reference group: {attr.reference}", values))
    return result


def dashboard(uc: UseCase) -> Any:
    from evidently.sdk.models import DashboardModel, DashboardTabModel

    shown = panels(uc)
    tab = DashboardTabModel(id=uuid.uuid5(NAMESPACE, f"tab:{uc.name}:{TAB}"), title=TAB, panels=[p.id for p in shown])
    return DashboardModel(tabs=[tab], panels=shown)


def open_workspace() -> Any:
    """The deployment's Evidently workspace: the server at FAIRWAY_EVIDENTLY_URL, else the local folder."""
    from fairway import settings

    where = settings.evidently()
    if where.url:
        from evidently.ui.workspace import RemoteWorkspace

        return RemoteWorkspace(where.url, secret=where.secret)
    from evidently.ui.workspace import Workspace

    folder = workspace_path()
    folder.mkdir(parents=True, exist_ok=True)
    return Workspace(str(folder))


def find_project(workspace: Any, pid: uuid.UUID) -> Any:
    """The project, or None (a local workspace answers None, a server's raises "project not found")."""
    from evidently.errors import EvidentlyError

    try:
        return workspace.get_project(pid)
    except EvidentlyError as error:
        if "not found" in str(error):
            return None
        raise


def ensure_project(workspace: Any, uc: UseCase) -> Any:
    """The use case's project (created on first use, under its derived id) with the dashboard of today's config."""
    from evidently.sdk.models import ProjectModel

    project = find_project(workspace, project_id(uc))
    if project is None:
        project = workspace.add_project(ProjectModel(
            id=project_id(uc), name=uc.model_name,
            description=f"Fairway use case {uc.name}: monthly drift and decline rates per protected group",
        ))  # fmt: skip
    workspace.save_dashboard(project.id, dashboard(uc))
    return project


def snapshot_metadata(workspace: Any, pid: uuid.UUID) -> list[tuple[uuid.UUID, dict[str, str]]]:
    """(id, metadata) of every snapshot of the project: from the folder, or from the server's snapshot list (its
    SDK client does not list runs)."""
    from evidently.ui.workspace import RemoteWorkspace

    if isinstance(workspace, RemoteWorkspace):
        listed = workspace._request(f"/api/projects/{pid}/snapshots", "GET").json()  # the SDK client carries its session and secret
        return [(uuid.UUID(s["id"]), dict(s.get("metadata") or {})) for s in listed]
    runs = [(sid, workspace.get_run(pid, sid)) for sid in workspace.list_runs(pid)]
    return [(sid, dict(run.metadata)) for sid, run in runs if run is not None]


def delete_snapshot(workspace: Any, pid: uuid.UUID, snapshot_id: uuid.UUID) -> None:
    from evidently.ui.workspace import RemoteWorkspace

    if isinstance(workspace, RemoteWorkspace):
        workspace._request(f"/api/projects/{pid}/{snapshot_id}", "DELETE")  # see snapshot_metadata
    else:
        workspace.delete_run(pid, snapshot_id)


def month_runs(workspace: Any, uc: UseCase, month: str, kinds: Iterable[str] = KINDS) -> list[uuid.UUID]:
    """Ids of the project's snapshots of `month` of the given kinds."""
    month, wanted = month_str(month), set(kinds)
    return [sid for sid, metadata in snapshot_metadata(workspace, project_id(uc))
            if metadata.get("month") == month and metadata.get("kind") in wanted]  # fmt: skip


def publish(uc: UseCase, month: str, snapshots: dict[str, Any]) -> dict[str, Any]:
    """Write the month's snapshots (kind -> Evidently snapshot) into the use case's project, replacing the month's
    earlier snapshots of those kinds; the dashboard is written too."""
    workspace = open_workspace()
    project = ensure_project(workspace, uc)
    for earlier in month_runs(workspace, uc, month, snapshots):
        delete_snapshot(workspace, project.id, earlier)
    runs = {kind: str(workspace.add_run(project.id, snapshot).id) for kind, snapshot in snapshots.items()}
    return {"workspace": target(), "project_id": str(project.id), "runs": runs}
