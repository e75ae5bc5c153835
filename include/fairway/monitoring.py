"""Monthly monitoring of the model that scored a month: drift, and the outcomes of earlier decisions.

For month M (after its batch inference):

- **data drift** (Evidently `DataDriftPreset`): the model inputs of M's customers as of the end of M against the
  scoring version's training frame. Above 1,000 rows Evidently measures normed Wasserstein distance (numbers)
  and Jensen-Shannon distance (categories), a column drifts at distance >= 0.1; below, statistical tests. Both
  sides are sampled down to `drift.sample_rows` rows (seeded) when larger, which keeps the check's time flat.
  The month drifts when the share of drifted model inputs reaches `drift.share_of_drifted_columns_max`.
- **prediction drift**: the recorded scores of M against the same version's scores on its training frame
  (an alert; it does not request retraining on its own).
- **outcomes**: labels arrive `label.available_after_months` after a snapshot, so in month M the decisions of
  month M - that lag can be judged: AUC and accuracy of the recorded scores and decisions, and holisticai
  fairness metrics per protected group on the recorded decisions (protected attributes through the
  fairness-audit feature service, joined by the pseudonymised subject key).

Everything lands under FAIRWAY_HOME/reports/<usecase>/monitoring: `<M>/` (drift.html, drift.json,
drift.snapshot.json, outcomes.json, fairness_by_group.csv/.png, summary.json), `history.csv` (one row per month),
`trends.png` and `index.html`; each month is also an MLflow run in `fairway-<usecase>-monitoring`, and two
snapshots in the use case's Evidently project (drift; decline rate per protected group: `publish_month`). The
month asks for retraining when the data drifts, or when the judged decisions break the gate's fairness thresholds
(`drift.fairness_retrain_on_breach`) or its minimum AUC.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairway.config import UseCase, month_str, paths, resolve
from fairway.data import write_atomic

log = logging.getLogger(__name__)

SAMPLE_SEED = 0
SCORE = "score"
DRIFT_SNAPSHOT = "drift.snapshot.json"
FAIRNESS_RULES = (
    "disparate_impact",
    "statistical_parity_difference",
    "equal_opportunity_difference",
    "assessable_groups",
)


class MonitoringError(RuntimeError):
    """A month cannot be monitored (not scored yet, reference data missing); nothing was written."""


# --- where things go ---------------------------------------------------------------------------------


def monitoring_dir(uc: UseCase) -> Path:
    return paths().reports / uc.name / "monitoring"


def month_dir(uc: UseCase, month: str) -> Path:
    return monitoring_dir(uc) / month


def _write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    return write_atomic(path, write, keep_suffix=True)


def json_safe(data: Any) -> Any:
    """`data` with every NaN or infinite float as None: what a task returns goes to Airflow as strict JSON (an
    unmeasurable metric, a small group's interval)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def _write_json(path: Path, data: Any) -> Path:
    text = json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=True)
    return _write_atomic(path, lambda tmp: tmp.write_text(text))


# --- inputs ------------------------------------------------------------------------------------------


def scored_month(uc: UseCase, month: str) -> pd.DataFrame:
    """The month's batch prediction records; refuses a month that was not scored."""
    from fairway.records import prediction_partition

    path = prediction_partition(uc, month)
    if not path.is_file():
        raise MonitoringError(f"{month} has no prediction records ({path}): run batch_inference for it first")
    return pd.read_parquet(path)


def scoring_version(records: pd.DataFrame, month: str) -> str:
    versions = records["model_version"].astype(str).unique()
    if len(versions) != 1:
        raise MonitoringError(f"{month}: prediction records of more than one model version {sorted(versions)}")
    return str(versions[0])


def sample(frame: pd.DataFrame, rows: int, seed: int = SAMPLE_SEED) -> pd.DataFrame:
    """At most `rows` rows, drawn uniformly without replacement (seeded); the frame itself when smaller."""
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=rows, random_state=seed).reset_index(drop=True)


def reference_frame(uc: UseCase, version: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The version's training frame (model inputs) with the version's own scores on it, the drift reference,
    and the frame's lineage."""
    from fairway import registry, verification
    from fairway.training import predict_scores, read_frame

    lineage = registry.training_lineage(uc, version)
    try:
        frame = read_frame(lineage)
    except RuntimeError as error:
        raise MonitoringError(f"{uc.model_name} v{version}: no drift reference: {error}") from error
    reference = sample(frame[uc.model_inputs], uc.drift.sample_rows)
    try:
        model = verification.approved_model(uc, version)
    except verification.ChampionRefused as error:
        raise MonitoringError(str(error)) from None
    reference[SCORE] = predict_scores(model, reference[uc.model_inputs])
    return reference, lineage


# --- drift -------------------------------------------------------------------------------------------


def _definition(uc: UseCase, columns: list[str]) -> Any:
    from evidently import DataDefinition

    categorical = [c for c in columns if c != SCORE and uc.feature(c).dtype in ("string", "bool")]
    numerical = [c for c in columns if c not in categorical]
    return DataDefinition(numerical_columns=numerical, categorical_columns=categorical)


def drift_results(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column of an Evidently snapshot: method, score, threshold and whether the column drifted (its test
    failed: covers both distances, drift at score >= threshold, and p-values, drift at p < threshold)."""
    results: dict[str, dict[str, Any]] = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            results[config["column"]] = {
                "method": config.get("method"),
                "score": float(metric["value"]),
                "threshold": config.get("threshold"),
                "drifted": False,
            }
    for test in snapshot.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift") and params.get("column") in results:
            results[params["column"]]["drifted"] = test["status"] == "FAIL"
    return results


def drift_report(
    uc: UseCase, reference: pd.DataFrame, current: pd.DataFrame, folder: Path, labels: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Evidently drift of the model inputs and the score; writes drift.html, drift.json (the results) and
    drift.snapshot.json (Evidently's snapshot: `Snapshot.load` reads it) into `folder`. `labels`: the snapshot's
    timestamp, tags, metadata and name (Report.run's keywords)."""
    from evidently import Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = [*uc.model_inputs, SCORE]
    definition = _definition(uc, columns)
    threshold = uc.drift.share_of_drifted_columns_max
    report = Report([DataDriftPreset(columns=uc.model_inputs, drift_share=threshold), ValueDrift(column=SCORE)],
                    include_tests=True)  # fmt: skip
    snapshot = report.run(
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        **(labels or {}),
    )
    _write_atomic(folder / "drift.html", lambda tmp: snapshot.save_html(str(tmp)))
    _write_atomic(folder / DRIFT_SNAPSHOT, lambda tmp: tmp.write_text(snapshot.dumps()))
    raw = snapshot.dict()
    _write_json(folder / "drift.json", raw)
    per_column = drift_results(raw)
    inputs = {c: per_column[c] for c in uc.model_inputs}
    drifted = [c for c, r in inputs.items() if r["drifted"]]
    share = len(drifted) / len(inputs)
    return {
        "reference_rows": len(reference),
        "current_rows": len(current),
        "columns": inputs,
        "drifted_columns": drifted,
        "drift_share": share,
        "share_threshold": threshold,
        "dataset_drift": share >= threshold,
        "prediction": per_column[SCORE],
    }


def check_drift(usecase: UseCase | str | None, month: str) -> dict[str, Any]:
    """Data and prediction drift of a scored month against its scoring version's training frame."""
    from fairway import evidently_workspace
    from fairway.inference import ScoringError, month_inputs
    from fairway.records import pseudonymise

    uc = resolve(usecase)
    month = month_str(month)
    records = scored_month(uc, month)
    version = scoring_version(records, month)
    reference, lineage = reference_frame(uc, version)
    try:
        inputs = month_inputs(uc, month)
    except ScoringError as error:
        raise MonitoringError(str(error)) from error
    current = inputs[[uc.entity.join_key, *uc.model_inputs]].copy()
    current["subject"] = pseudonymise(current[uc.entity.join_key])
    current = current.merge(records[["subject", SCORE]], on="subject", how="inner", validate="one_to_one")
    if len(current) != len(records):
        raise MonitoringError(f"{month}: {len(records)} prediction records but {len(current)} match today's features")
    current = sample(current, uc.drift.sample_rows)
    labels = evidently_workspace.run_labels(uc, month, version, evidently_workspace.DRIFT)
    result = drift_report(uc, reference, current, month_dir(uc, month), labels)
    result.update(month=month, model_version=version, model_window_end=lineage["window_end"], rows_scored=len(records),
                  approval_rate=float((records["decision"] == "approve").mean()))  # fmt: skip
    log.info(
        "%s: %d of %d model inputs drifted (share %.2f, threshold %.2f): %s",
        month,
        len(result["drifted_columns"]),
        len(uc.model_inputs),
        result["drift_share"],
        result["share_threshold"],
        ", ".join(result["drifted_columns"]) or "none",
    )
    return result


# --- Evidently's UI ----------------------------------------------------------------------------------


def protected_attributes(uc: UseCase, rows: pd.DataFrame) -> pd.DataFrame:
    """The protected attributes of the entity rows (key, timestamp) as of their timestamps, in their order, from
    the feature store's fairness_audit service."""
    from fairway.features.retrieval import historical_features
    from fairway.features.store import get_store

    key, ts = uc.entity.join_key, uc.event_timestamp
    audit = historical_features(get_store(uc), uc, rows[[key, ts]], uc.service("fairness_audit").name)
    return audit[uc.protected_features]


def month_decisions(uc: UseCase, month: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The month's recorded decisions (decision, model_version), and beside them (same order) the customers'
    protected attributes as of the month's end."""
    from fairway.inference import ScoringError, month_customers
    from fairway.records import pseudonymise

    records = scored_month(uc, month)
    try:
        rows = month_customers(uc, month)
    except ScoringError as error:
        raise MonitoringError(str(error)) from error
    rows["subject"] = pseudonymise(rows[uc.entity.join_key])
    frame = records[["subject", "decision", "model_version"]].merge(rows, on="subject", how="inner",
                                                                validate="one_to_one")  # fmt: skip
    if len(frame) != len(records):
        raise MonitoringError(f"{month}: {len(records)} prediction records, {len(frame)} of the month's customers")
    return frame[["decision", "model_version"]], protected_attributes(uc, frame)


def publish_month(usecase: UseCase | str | None, month: str) -> dict[str, Any]:
    """The month in Evidently's UI: its drift snapshot (written by check_drift) and a snapshot of its decline rates
    per protected group, into the use case's project (fairway.evidently_workspace), replacing a rerun's."""
    from evidently.core.report import Snapshot

    from fairway import evidently_workspace as ew

    uc = resolve(usecase)
    month = month_str(month)
    path = month_dir(uc, month) / DRIFT_SNAPSHOT
    if not path.is_file():
        raise MonitoringError(f"{month} has no drift snapshot ({path}): run check_drift for it first")
    drift = Snapshot.load(path)
    decisions, attributes = month_decisions(uc, month)
    version = scoring_version(decisions, month)
    declines = ew.declines_report(uc, decisions["decision"], attributes, ew.run_labels(uc, month, version, ew.DECLINES))
    published = ew.publish(uc, month, {ew.DRIFT: drift, ew.DECLINES: declines})
    rates = ew.decline_rates(declines)
    log.info("%s: snapshots in Evidently project %s at %s; decline rate %.3f overall, by group: %s", month,
             published["project_id"], published["workspace"], rates.pop("all"),
             ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))  # fmt: skip
    return {**published, "month": month, "model_version": version}


# --- outcomes ----------------------------------------------------------------------------------------


def judged_month(uc: UseCase, month: str) -> str:
    """The snapshot month whose outcomes are known by the end of `month`."""
    return str(pd.Period(month_str(month), freq="M") - uc.label.available_after_months)


def outcome_frame(uc: UseCase, judged: str, known_by: str) -> pd.DataFrame | None:
    """The recorded predictions of month `judged` with their labels (as known by the end of `known_by`) and the
    customers' protected attributes as of the snapshot; None when that month was not scored."""
    from fairway.data import month_bounds
    from fairway.records import prediction_partition, pseudonymise
    from fairway.training import known_labels

    path = prediction_partition(uc, judged)
    if not path.is_file():
        return None
    records = pd.read_parquet(path)
    try:
        labels = known_labels(uc, [judged], month_bounds(known_by)[1])
    except RuntimeError:
        return None
    key, ts = uc.entity.join_key, uc.event_timestamp
    labels["subject"] = pseudonymise(labels[key])
    frame = records.merge(labels[["subject", key, ts, uc.label.feature]], on="subject", how="inner",
                          validate="one_to_one")  # fmt: skip
    frame[uc.protected_features] = protected_attributes(uc, frame).to_numpy()
    return frame.drop(columns=[key])


def outcome_metrics(uc: UseCase, frame: pd.DataFrame) -> Any:
    """AUC, accuracy and Brier of the recorded scores and decisions, holisticai fairness of the decisions."""
    from sklearn.metrics import accuracy_score, brier_score_loss, roc_auc_score

    from fairway.fairness import deserved, group_fairness
    from fairway.gate import CandidateMetrics
    from fairway.training import positive_target

    y = positive_target(uc, frame)
    approved = (frame["decision"] == "approve").to_numpy(dtype=int)
    scores = frame[SCORE].to_numpy()
    return CandidateMetrics(
        auc=float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else math.nan,
        accuracy=float(accuracy_score(y, 1 - approved)),
        brier=float(brier_score_loss(y, scores)),
        fairness=group_fairness(uc, frame, approved, deserved(uc, frame)),
    )


def check_outcomes(usecase: UseCase | str | None, month: str) -> dict[str, Any]:
    """Performance and fairness of the decisions whose outcomes became known by the end of `month`."""
    from fairway import gate
    from fairway.fairness import deserved, group_rates, plot_group_rates

    uc = resolve(usecase)
    month = month_str(month)
    judged = judged_month(uc, month)
    frame = outcome_frame(uc, judged, month)
    if frame is None or frame.empty:
        log.info("%s: no judged decisions yet (month %s was not scored or has no labels)", month, judged)
        return {
            "month": month,
            "judged_month": judged,
            "status": f"no scored decisions of {judged} with known outcomes",
        }
    metrics = outcome_metrics(uc, frame)
    decision = gate.evaluate(metrics, uc.gate)
    folder = month_dir(uc, month)
    rates = group_rates(uc, frame, (frame["decision"] == "approve").to_numpy(dtype=int), deserved(uc, frame))
    _write_atomic(folder / "fairness_by_group.csv", lambda tmp: rates.to_csv(tmp, index=False))
    version = scoring_version(frame, judged)
    _write_atomic(
        folder / "fairness_by_group.png",
        lambda tmp: plot_group_rates(rates, tmp, f"decisions of {judged} (v{version}), outcomes known {month}"),
    )
    result = {
        "month": month,
        "judged_month": judged,
        "status": "judged",
        "model_version": version,
        "rows": len(frame),
        "metrics": metrics.as_dict(),
        "breaches": [
            {"rule": r.rule, "subject": r.subject, "reason": r.describe()} for r in decision.rules if not r.passed
        ],
    }
    _write_json(folder / "outcomes.json", result)
    log.info("%s: decisions of %s judged on %d outcomes: AUC %.3f, %d rule(s) broken", month, judged, len(frame),
             metrics.auc, len(result["breaches"]))  # fmt: skip
    return json_safe(result)


# --- the month's verdict, history and trends ---------------------------------------------------------


def months_since_training(drift: dict[str, Any]) -> int:
    """Months from the end of the scoring version's training window to the monitored month."""
    return (pd.Period(drift["month"], freq="M") - pd.Period(drift["model_window_end"], freq="M")).n


def retraining_reasons(uc: UseCase, drift: dict[str, Any], outcomes: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Why the month asks for retraining (empty: it does not), and what it does not ask for and why.

    Data drift asks only when the scoring version's training window ended more than
    `drift.retrain_cooldown_months` before the month (a version retrained on the drift just now would be asked
    again every month until labels of the new situation arrive). Broken fairness or AUC of judged decisions
    always asks."""
    reasons, held_back = [], []
    if drift["dataset_drift"]:
        text = (
            f"data drift in {drift['month']}: {len(drift['drifted_columns'])} of {len(drift['columns'])} model inputs "
            f"drifted (share {drift['drift_share']:.2f} >= {drift['share_threshold']}): {', '.join(drift['drifted_columns'])}"
        )
        age, cooldown = months_since_training(drift), uc.drift.retrain_cooldown_months
        if age > cooldown:
            reasons.append(text)
        else:
            held_back.append(f"{text}; not requested: v{drift['model_version']} was trained on labels up to "
                             f"{drift['model_window_end']}, {age} month(s) ago (cooldown {cooldown})")  # fmt: skip
    for breach in outcomes.get("breaches", []):
        fairness = breach["rule"] in FAIRNESS_RULES
        if breach["rule"] == "auc_min" or (fairness and uc.drift.fairness_retrain_on_breach):
            reasons.append(f"decisions of {outcomes['judged_month']}: {breach['reason']}")
    return reasons, held_back


def alerts(drift: dict[str, Any], outcomes: dict[str, Any]) -> list[str]:
    """Everything worth a look, including what does not request retraining (prediction drift)."""
    found = []
    if drift["dataset_drift"]:
        found.append("data drift")
    if drift["prediction"]["drifted"]:
        found.append("prediction drift")
    rules = {b["rule"] for b in outcomes.get("breaches", [])}
    if rules & set(FAIRNESS_RULES):
        found.append("fairness")
    if "auc_min" in rules:
        found.append("performance")
    return found


def history_row(
    drift: dict[str, Any], outcomes: dict[str, Any], found: list[str], reasons: list[str]
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "month": drift["month"],
        "model_version": drift["model_version"],
        "rows_scored": drift["rows_scored"],
        "approval_rate": drift["approval_rate"],
        "drift_share": drift["drift_share"],
        "drifted_columns": ",".join(drift["drifted_columns"]),
        "prediction_drift_score": drift["prediction"]["score"],
        "prediction_drifted": drift["prediction"]["drifted"],
        "judged_month": outcomes["judged_month"],
        "judged_rows": outcomes.get("rows", 0),
        "auc": math.nan,
        "accuracy": math.nan,
    }
    if outcomes["status"] == "judged":
        metrics = outcomes["metrics"]
        row.update(auc=metrics["auc"], accuracy=metrics["accuracy"])
        for g in metrics["fairness"]:
            for measure in ("disparate_impact", "statistical_parity", "equal_opportunity"):
                row[f"{g['attribute']}.{g['group']}.{measure}"] = g[measure]
    row["alerts"] = ",".join(found)
    row["retraining_requested"] = bool(reasons)
    row["reasons"] = " | ".join(reasons)
    return row


def read_history(uc: UseCase) -> pd.DataFrame:
    path = monitoring_dir(uc) / "history.csv"
    return pd.read_csv(path, dtype={"month": str, "judged_month": str, "model_version": str}) if path.is_file() \
        else pd.DataFrame()  # fmt: skip


def update_history(uc: UseCase, row: dict[str, Any]) -> pd.DataFrame:
    """Replace the month's row of history.csv (a rerun of a month does not add a row), sorted by month."""
    history = read_history(uc)
    if not history.empty:
        history = history[history["month"] != row["month"]]
    history = pd.concat([history, pd.DataFrame([row])], ignore_index=True).sort_values("month").reset_index(drop=True)
    _write_atomic(monitoring_dir(uc) / "history.csv", lambda tmp: history.to_csv(tmp, index=False))
    return history


def plot_trends(uc: UseCase, history: pd.DataFrame, path: Path) -> Path:
    """Three panels over months: drift share, AUC of judged decisions, disparate impact per protected group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(history))
    fig, axes = plt.subplots(3, 1, figsize=(8, 8.5), sharex=True)
    ax = axes[0]
    ax.bar(x, history["drift_share"], color=["tab:red" if d else "tab:blue" for d in
                                             history["drift_share"] >= uc.drift.share_of_drifted_columns_max])  # fmt: skip
    ax.axhline(uc.drift.share_of_drifted_columns_max, color="tab:red", linestyle="--", label="threshold")
    ax.set_ylabel("share of drifted inputs")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(x, history["auc"], marker="o", label="AUC of judged decisions")
    ax.axhline(uc.gate.auc_min, color="tab:red", linestyle="--", label="gate minimum")
    ax.set_ylabel("AUC")
    ax.legend(fontsize=8)
    ax = axes[2]
    for column in [c for c in history.columns if c.endswith(".disparate_impact")]:
        ax.plot(x, history[column], marker="o", label=column.removesuffix(".disparate_impact"))
    ax.axhspan(uc.gate.disparate_impact_min, uc.gate.disparate_impact_max, color="tab:green", alpha=0.1,
               label="gate band")  # fmt: skip
    ax.set_ylabel("disparate impact")
    ax.legend(fontsize=7, ncol=2)
    labels = [f"{m}\n(judged {j})" for m, j in zip(history["month"], history["judged_month"], strict=True)]
    axes[2].set_xticks(x, labels, fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"{uc.model_name}: monitoring by month (version that scored the month in the table)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return path


def write_index(uc: UseCase, history: pd.DataFrame) -> Path:
    """index.html: the trend plot, the history table and links to every month's reports."""
    table = history.copy()
    table["reports"] = [f'<a href="{m}/drift.html">drift</a>'
                        + (f' · <a href="{m}/fairness_by_group.png">fairness</a>'
                           if (month_dir(uc, m) / "fairness_by_group.png").is_file() else "")
                        for m in history["month"]]  # fmt: skip
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{uc.model_name} monitoring</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>"
        f"<h1>{uc.model_name}: monthly monitoring</h1><img src='trends.png' alt='trends by month'>"
        f"<h2>History</h2>{table.to_html(index=False, escape=False, float_format=lambda v: f'{v:.3f}', na_rep='')}"
        "</body></html>"
    )
    return _write_atomic(monitoring_dir(uc) / "index.html", lambda tmp: tmp.write_text(html))


def record_month(
    usecase: UseCase | str | None, drift: dict[str, Any], outcomes: dict[str, Any], run_id: str
) -> dict[str, Any]:
    """The month's verdict: summary.json, history row, trend plot, index page and MLflow run."""
    from fairway import registry

    uc = resolve(usecase)
    month = drift["month"]
    reasons, held_back = retraining_reasons(uc, drift, outcomes)
    found = alerts(drift, outcomes)
    row = history_row(drift, outcomes, found, reasons)
    folder = month_dir(uc, month)
    summary = {"usecase": uc.name, "run_id": run_id, "drift": drift, "outcomes": outcomes, "retraining_reasons": reasons,
               "not_requested": held_back, "alerts": found}  # fmt: skip
    _write_json(folder / "summary.json", summary)
    history = update_history(uc, row)
    _write_atomic(monitoring_dir(uc) / "trends.png", lambda tmp: plot_trends(uc, history, tmp))
    write_index(uc, history)
    metrics = {
        k: float(v) for k, v in row.items() if isinstance(v, int | float | np.floating) and not isinstance(v, bool)
    }
    mlflow_run = registry.log_monitoring(uc, month, metrics, {"model_version": drift["model_version"],
                                         "alerts": row["alerts"] or "none", "airflow_run_id": run_id}, folder)  # fmt: skip
    return {
        "usecase": uc.name,
        "month": month,
        "model_version": drift["model_version"],
        "drift_share": drift["drift_share"],
        "auc": None if math.isnan(row["auc"]) else row["auc"],
        "alerts": found,
        "retraining_reasons": reasons,
        "not_requested": held_back,
        "report": str(folder / "drift.html"),
        "history": str(monitoring_dir(uc) / "history.csv"),
        "mlflow_run_id": mlflow_run,
    }
