"""The pages of the "Fairway" view in the Airflow UI (the plugin in plugins/ serves them): per use case, the model
versions with their gate decisions and approvals, the champion, the documentation, and the monthly monitoring.

Plain HTML built from the registry (MLflow) and the reports under FAIRWAY_HOME; links are relative, so the pages
work under any prefix (the plugin mounts them at /fairway).

A page names its use case and version in the URL, so both are checked here before anything is looked up: a use
case is one of the names in the use-case folders (never a path), a version is a number. A name that is not a plain
name raises `RefusedName` and nothing is read; an unknown use case or version raises `NotFound`.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from fairway.config import UseCase, current_usecase_name, paths, resolve, usecase_dirs
from fairway.fairness import worst_disparate_impact

USECASE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
VERSION = re.compile(r"[1-9][0-9]{0,8}")


class RefusedName(ValueError):
    """A use case or version in a request that is not a plain name or number (a path, `..`, a slash)."""


class NotFound(LookupError):
    """No use case, version or documentation of that name."""


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#1f2937}h1{font-size:1.5em}h2{margin-top:1.6em}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #d1d5db;padding:4px 8px;text-align:left}"
    "th{background:#f3f4f6}.pass{color:#047857;font-weight:600}.reject{color:#b91c1c;font-weight:600}"
    ".champion{background:#ecfdf5}.muted{color:#6b7280}img{max-width:100%;border:1px solid #e5e7eb}"
)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _number(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def usecase_names() -> list[str]:
    names = {p.stem for folder in usecase_dirs() if folder.is_dir() for p in folder.glob("*.yaml")}
    return sorted(name for name in names if USECASE_NAME.fullmatch(name))


def select_usecase(name: str | None) -> UseCase:
    """The use case a page shows (None: the configured one), by its plain name only: the name is checked before
    any file is opened, and it must be one of the use cases the use-case folders hold."""
    name = current_usecase_name() if name is None else name
    if not USECASE_NAME.fullmatch(name):
        raise RefusedName(f"{name[:80]!r} is not a use-case name (lower-case letters, digits and _)")
    known = usecase_names()
    if name not in known:
        raise NotFound(f"no use case named {name!r}; the use cases are: {', '.join(known) or 'none'}")
    return resolve(name)


def documentation_link(usecase: str, version: dict[str, Any]) -> str:
    """Documentation is generated when a version is promoted."""
    if version["status"] not in ("champion", "superseded"):
        return ""
    return f"<a href='documentation/{_e(usecase)}/{_e(version['version'])}'>documentation</a>"


def versions_table(status: dict[str, Any]) -> str:
    rows = []
    for v in status["versions"]:
        metrics = v["metrics"]
        worst = worst_disparate_impact(value for key, value in metrics.items() if key.endswith(".disparate_impact"))
        approval = v["approval"]
        who = f"{approval.get('decision', '')} by {approval.get('approver', '')}" if approval else "–"
        css = "champion" if v["status"] == "champion" else ""
        gate = v["gate_decision"] or "pending"
        rows.append(
            f"<tr class='{css}'><td>v{_e(v['version'])}</td><td>{_e(v['candidate'])}</td><td>{_e(v['status'])}</td>"
            f"<td class='{_e(gate)}'>{_e(gate)}</td><td>{_number(metrics.get('auc'))}</td><td>{_number(worst)}</td>"
            f"<td>{_e(who)}<br><span class='muted'>{_e(approval.get('decided_at', ''))} {_e(approval.get('comment', ''))}"
            f"</span></td><td class='muted'>{_e(v['gate_reasons'])}</td>"
            f"<td>{documentation_link(status['usecase'], v)}</td></tr>"
        )
    header = ("<tr><th>version</th><th>candidate</th><th>status</th><th>gate</th><th>AUC</th><th>worst DI</th>"
              "<th>approval</th><th>gate reasons</th><th></th></tr>")  # fmt: skip
    return f"<table>{header}{''.join(rows)}</table>" if rows else "<p class='muted'>No model version yet.</p>"


def monitoring_section(uc: UseCase) -> str:
    from fairway.monitoring import monitoring_dir, read_history

    history = read_history(uc)
    if history.empty:
        return "<p class='muted'>No month monitored yet.</p>"
    base = f"reports/{uc.name}/monitoring"
    rows = []
    for _, row in history.iterrows():
        month = row["month"]
        fairness = f" · <a href='{base}/{month}/fairness_by_group.png'>fairness</a>" if (
            monitoring_dir(uc) / month / "fairness_by_group.png").is_file() else ""  # fmt: skip
        rows.append(
            f"<tr><td>{_e(month)}</td><td>v{_e(row['model_version'])}</td><td>{_number(row['drift_share'])}</td>"
            f"<td>{_e(row['judged_month'])}</td><td>{_number(row['auc'])}</td><td>{_e(row['alerts'] or '–')}</td>"
            f"<td>{'yes' if row['retraining_requested'] else 'no'}</td>"
            f"<td><a href='{base}/{month}/drift.html'>drift report</a>{fairness}</td></tr>"
        )
    header = ("<tr><th>month</th><th>scored by</th><th>drift share</th><th>judged</th><th>AUC</th><th>alerts</th>"
              "<th>retraining</th><th>reports</th></tr>")  # fmt: skip
    return (f"<p><a href='{base}/index.html'>monitoring index</a></p><img src='{base}/trends.png' alt='trends'>"
            f"<table>{header}{''.join(rows)}</table>")  # fmt: skip


def page(usecase: str | None = None) -> str:
    """The Fairway page of one use case (default: the configured one)."""
    from fairway import registry

    uc = select_usecase(usecase)
    status = registry.status(uc)
    champion = status["champion"]
    if champion:
        approval = champion["approval"]
        headline = (f"Champion: <b>{_e(status['model'])} v{_e(champion['version'])}</b>, approved by "
                    f"{_e(approval.get('approver'))} ({_e(approval.get('mode'))}) at {_e(approval.get('decided_at'))}")  # fmt: skip
        if champion["stopped"]:
            headline += f" — <b>STOPPED</b>: {_e(champion['stopped'])}"
    else:
        headline = "No champion: no version has passed the gate and been approved yet."
    switch = " ".join(f"<a href='?usecase={_e(n)}'>{_e(n)}</a>" for n in usecase_names())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Fairway: {_e(uc.name)}</title>"
        f"<style>{STYLE}</style></head><body><h1>Fairway · {_e(uc.name)}</h1>"
        f"<p class='muted'>{_e(uc.description)}</p><p>{headline}</p><p class='muted'>use cases: {switch} · "
        f"FAIRWAY_HOME {_e(paths().home)} · MLflow {_e(status['tracking_uri'])}</p>"
        f"<h2>Model versions, gate decisions and approvals</h2>{versions_table(status)}"
        f"<h2>Monthly monitoring: drift and fairness</h2>{monitoring_section(uc)}</body></html>"
    )


def documentation(usecase: str, version: str) -> str:
    """The version's generated technical documentation (HTML) from its MLflow run."""
    from mlflow.exceptions import MlflowException

    from fairway import registry

    uc = select_usecase(usecase)
    if not VERSION.fullmatch(version):
        raise RefusedName(f"{version[:80]!r} is not a model version (a number)")
    try:
        mv = registry.get_version(uc, version)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise NotFound(f"{uc.model_name} has no version {version}") from None
    try:
        return registry.load_text(str(mv.run_id), "documentation/model_documentation.html")
    except (MlflowException, OSError):  # not promoted (documentation is written at promotion) or removed
        raise NotFound(f"{uc.model_name} v{version} has no documentation (it is generated when a version is "
                       "promoted)") from None  # fmt: skip
