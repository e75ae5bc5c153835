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
import tempfile
from pathlib import Path
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
            f"<table>{header}{''.join(rows)}</table>{alerts_section(uc)}")  # fmt: skip


def alerts_section(uc: UseCase) -> str:
    """The escalation alerts: what was raised, for which version, whether it was sent and whether someone accepted it."""
    from fairway.escalation import alerts

    found = alerts(uc)
    if not found:
        return "<h3>Escalation alerts</h3><p class='muted'>No alert raised.</p>"
    rows = "".join(
        f"<tr><td>{_e(a['id'])}</td><td>v{_e(a['model_version'])}</td><td>{_e(a['summary'])}</td>"
        f"<td>{_e((', '.join(a['channels']) or 'no channel configured') if a['notified_at'] else 'not yet')}</td>"
        f"<td>{_e(a['accepted']['by'] + ': ' + a['accepted']['reason'] if a.get('accepted') else 'open')}</td></tr>"
        for a in found
    )
    return ("<h3>Escalation alerts</h3><table><tr><th>alert</th><th>version</th><th>summary</th><th>notified</th>"
            f"<th>accepted</th></tr>{rows}</table>")  # fmt: skip


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
        f"FAIRWAY_HOME {_e(paths().home)} · MLflow {_e(status['tracking_uri'])} · "
        f"<a href='review?usecase={_e(uc.name)}'>review a decision</a></p>"
        f"<h2>Model versions, gate decisions and approvals</h2>{versions_table(status)}"
        f"<h2>Monthly monitoring: drift and fairness</h2>{monitoring_section(uc)}</body></html>"
    )


def _version_run(usecase: str, version: str) -> tuple[UseCase, str]:
    """The use case and the MLflow run of a version named in a URL (both checked first)."""
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
    return uc, str(mv.run_id)


DOCUMENTATION_FILE = re.compile(r"[a-z][a-z0-9_]{0,80}\.(png|md|html)")
MEDIA_TYPES = {"png": "image/png", "md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


def documentation_file(usecase: str, version: str, name: str) -> tuple[bytes, str]:
    """A file of the version's documentation folder in its MLflow run (a plain file name, never a path), with its
    media type: the Markdown documents and the figures they link to resolve next to the documentation page."""
    from mlflow.exceptions import MlflowException

    from fairway import registry

    if not DOCUMENTATION_FILE.fullmatch(name):
        raise RefusedName(f"{name[:80]!r} is not a documentation file name")
    uc, run_id = _version_run(usecase, version)
    logged = {Path(a.path).name for a in registry.client().list_artifacts(run_id, "documentation")}
    if name not in logged:
        raise NotFound(f"{uc.model_name} v{version} has no documentation file {name}")
    try:
        with tempfile.TemporaryDirectory(prefix="fairway-doc-") as tmp:
            path = registry.download(run_id, f"documentation/{name}", Path(tmp))
            return path.read_bytes(), MEDIA_TYPES[name.rsplit(".", 1)[1]]
    except (MlflowException, OSError):
        raise NotFound(f"{uc.model_name} v{version}: documentation file {name} cannot be read") from None


def documentation(usecase: str, version: str) -> str:
    """The version's generated technical documentation (HTML, its figures embedded) from its MLflow run."""
    from mlflow.exceptions import MlflowException

    from fairway import registry

    uc, run_id = _version_run(usecase, version)
    try:
        return registry.load_text(run_id, "documentation/model_documentation.html")
    except (MlflowException, OSError):  # not promoted (documentation is written at promotion) or removed
        raise NotFound(f"{uc.model_name} v{version} has no documentation (it is generated when a version is "
                       "promoted)") from None  # fmt: skip


# --- human review of single decisions (GDPR Art. 22(3)) ----------------------------------------------------


def _decision_table(decision: Any, effective: str) -> str:
    when = decision.month if decision.source == "batch" else decision.decided_at
    rows = [("request id", decision.request_id), ("source", f"{decision.source} ({decision.endpoint})"),
            ("decided", when), ("model", f"{decision.model_name} v{decision.model_version}"),
            ("score / threshold", f"{decision.score:.3f} / {decision.threshold:.3f}"),
            ("model's decision", decision.decision), ("effective decision", effective)]  # fmt: skip
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    reasons = "".join(
        f"<li>{_e(r['feature'])}: {_e(r.get('value'))} (reference {_e(r.get('reference'))}), "
        f"+{_e(round(100 * float(r['effect']), 1))} points</li>"
        for r in decision.reasons
    )
    return f"<table>{body}</table><p>Reasons:</p><ol>{reasons or '<li>none above the reference</li>'}</ol>"


def _reviews_table(reviews: list[dict[str, Any]]) -> str:
    if not reviews:
        return "<p class='muted'>No review recorded.</p>"
    rows = "".join(
        f"<tr><td>{_e(r['reviewed_at'])}</td><td>{_e(r['kind'])}</td><td>{_e(r['original_decision'])} → "
        f"<b>{_e(r['decision'])}</b></td><td>{_e(r['reviewer'])} ({_e(r['channel'])})</td><td>{_e(r['reason'])}</td></tr>"
        for r in reviews
    )
    return ("<table><tr><th>when (UTC)</th><th>kind</th><th>decision</th><th>by</th><th>reason</th></tr>"
            f"{rows}</table>")  # fmt: skip


def _review_form(uc: UseCase, request_id: str, reviewer: str | None) -> str:
    from fairway.review import DECISIONS, KINDS

    who = (f"<p>Recorded as <b>{_e(reviewer)}</b> (your Airflow login).</p>" if reviewer else
           "<p><label>Reviewer <input name='by' required maxlength='200'></label></p>")  # fmt: skip
    decisions = "".join(f"<option>{_e(d)}</option>" for d in DECISIONS)
    kinds = "".join(f"<option>{_e(k)}</option>" for k in KINDS)
    return (f"<h2>Record a review</h2><form method='post' action='review'>"
            f"<input type='hidden' name='usecase' value='{_e(uc.name)}'>"
            f"<input type='hidden' name='request_id' value='{_e(request_id)}'>"
            f"<p><label>Decision <select name='decision'>{decisions}</select></label> "
            f"<label>Kind <select name='kind'>{kinds}</select></label></p>{who}"
            "<p><label>Reason<br><textarea name='reason' rows='3' cols='80' required maxlength='5000'></textarea>"
            "</label></p><p><button type='submit'>Record review</button></p></form>")  # fmt: skip


def review_page(usecase: str | None = None, request_id: str | None = None, reviewer: str | None = None,
                message: str = "", error: str = "", may_review: bool = True) -> str:  # fmt: skip
    """Look up a decision by request id, see it with its reviews, and record a review (override or contest): the
    form names the reviewer (`reviewer`, the logged-in user) or asks for one; without `may_review` it is not
    shown. An unknown request id raises NotFound (show the error with `review_page(..., error=...)`)."""
    from fairway.review import UnknownDecision, decision_with_reviews, effective_decision

    uc = select_usecase(usecase)
    request_id = (request_id or "").strip()
    shown = ""
    if request_id:
        try:
            decision, reviews = decision_with_reviews(uc, request_id)
        except UnknownDecision as unknown:
            raise NotFound(str(unknown)) from None
        shown = (f"<h2>Decision</h2>{_decision_table(decision, effective_decision(decision, reviews))}"
                 f"<h2>Reviews</h2>{_reviews_table(reviews)}")  # fmt: skip
        shown += _review_form(uc, decision.request_id, reviewer) if may_review else (
            "<p class='muted'>Your Airflow role may see decisions and reviews, not record them.</p>")  # fmt: skip
    notes = (f"<p class='pass'>{_e(message)}</p>" if message else "") + (
        f"<p class='reject'>{_e(error)}</p>" if error else "")  # fmt: skip
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Fairway: review a decision</title>"
        f"<style>{STYLE}</style></head><body><h1>Fairway · {_e(uc.name)} · review a decision</h1>"
        f"<p><a href='./?usecase={_e(uc.name)}'>back to the overview</a></p>{notes}"
        f"<form method='get' action='review'><input type='hidden' name='usecase' value='{_e(uc.name)}'>"
        f"<label>Request id <input name='request_id' value='{_e(request_id)}' size='50' maxlength='64' required>"
        "</label> <button type='submit'>Look up</button></form>"
        "<p class='muted'>An online decision's request id is in the service's answer; a batch decision's is "
        "batch-&lt;YYYY-MM&gt;-&lt;subject&gt;. A review is appended: the decision's record never changes.</p>"
        f"{shown}</body></html>"
    )


def submit_review(usecase: str | None, request_id: str, decision: str, kind: str, reason: str, reviewer: str) -> str:
    """Record a review from the form (fairway.review.record_review, channel `airflow-ui`) and show the decision
    again. Raises NotFound (unknown request id) or fairway.review.InvalidReview (empty reviewer or reason, a
    decision or kind that is not one of the choices)."""
    from fairway.review import UnknownDecision, record_review

    uc = select_usecase(usecase)
    try:
        result = record_review(uc, request_id, decision, reviewer, reason, kind, channel="airflow-ui")
    except UnknownDecision as unknown:
        raise NotFound(str(unknown)) from None
    review = result["review"]
    message = f"{review['kind']} recorded: {review['original_decision']} → {review['decision']} by {review['reviewer']}"
    return review_page(uc.name, request_id, reviewer, message=message)
