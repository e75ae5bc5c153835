"""Everything that talks to MLflow: runs of candidates, the model registry, and the aliases.

Aliases: `candidate` points at the version the training DAG registered last; `champion` at the approved model
that serves. `promote` is the only function that moves `champion`, and it refuses a version whose gate
decision is not `pass` or whose approval does not cover the exact gate evidence (the report's SHA-256).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import subprocess
import tempfile
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from fairway import ledger, settings
from fairway.config import PROJECT_DIR, UseCase, paths
from fairway.gate import CandidateMetrics, GateDecision

log = logging.getLogger(__name__)

CANDIDATE = "candidate"
CHAMPION = "champion"
TAG = "fairway."
PIP_REQUIREMENTS = ["scikit-learn", "pandas", "numpy", "cloudpickle"]


class PromotionRefused(RuntimeError):
    """The version may not become champion: no passing gate decision, or no approval of that evidence."""


@dataclass(frozen=True)
class Approval:
    """Human oversight of one deployment decision (AI Act Art. 14)."""

    decision: str  # "approved" or "rejected"
    approver: str  # a user name, or "policy:auto"
    decided_at: str  # ISO 8601, UTC
    comment: str
    mode: str  # "human" or "auto"
    evidence_sha256: str  # SHA-256 of the gate report the approver saw

    def __post_init__(self) -> None:
        if self.decision not in ("approved", "rejected"):
            raise ValueError(f"approval decision must be 'approved' or 'rejected', not {self.decision!r}")
        if not self.approver.strip():
            raise ValueError("an approval needs an approver")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set (PostgreSQL, a server), else SQLite under FAIRWAY_HOME/mlflow."""
    return settings.mlflow_uri()


def client() -> MlflowClient:
    """A client of the deployment's MLflow; also points MLflow's fluent API there. Every function of this module
    starts with it, so none relies on an earlier call in the same process (a task is a fresh process)."""
    uri = settings.configure_mlflow()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# --- artifacts and models: every read of MLflow outside this module goes through these -------------------


def load_dict(run_id: str, path: str) -> dict[str, Any]:
    """A JSON artifact of a run."""
    client()
    return dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}"))


def load_text(run_id: str, path: str) -> str:
    client()
    return str(mlflow.artifacts.load_text(f"runs:/{run_id}/{path}"))


def download(run_id: str, path: str, folder: Path) -> Path:
    """Download a run's artifact (file or folder) into `folder`; returns the local path."""
    client()
    folder.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{path}", dst_path=str(folder)))


def model_files_sha256(folder: Path) -> str:
    """SHA-256 over a model folder: every file's relative path and bytes, in path order (the model artifact's
    identity in the promotion ledger; the same for MLflow's copy and BentoML's `mlflow_model` copy)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def model_sha256(uc: UseCase, version: str) -> str:
    """The SHA-256 of a registered version's model files as MLflow stores them."""
    with tempfile.TemporaryDirectory(prefix="fairway-model-") as tmp:
        return model_files_sha256(_download_model(uc, version, Path(tmp)))


def _download_model(uc: UseCase, version: str, folder: Path) -> Path:
    client()
    return Path(mlflow.artifacts.download_artifacts(f"models:/{uc.model_name}/{version}", dst_path=str(folder)))


class ModelTampered(RuntimeError):
    """A model's files are not the ones the promotion ledger recorded."""


def load_model(uc: UseCase, version: str, expected_sha256: str | None = None) -> Any:
    """A version's sklearn model. With `expected_sha256`, the files are downloaded, hashed and loaded from that
    very copy: what is verified is what scores."""
    if expected_sha256 is None:
        client()
        return mlflow.sklearn.load_model(f"models:/{uc.model_name}/{version}")
    with tempfile.TemporaryDirectory(prefix="fairway-model-") as tmp:
        folder = _download_model(uc, version, Path(tmp))
        found = model_files_sha256(folder)
        if found != expected_sha256:
            raise ModelTampered(
                f"{uc.model_name} v{version}: model files hash to {found[:16]}…, the ledger recorded "
                f"{expected_sha256[:16]}…: the model was changed after its promotion"
            )
        return mlflow.sklearn.load_model(str(folder))


def experiment_id(uc: UseCase, kind: str = "") -> str:
    """The use case's experiment (`fairway-<usecase>`, or `fairway-<usecase>-<kind>` such as `monitoring`),
    created with its artifacts under FAIRWAY_HOME."""
    mlc = client()
    name = f"fairway-{uc.name}" + (f"-{kind}" if kind else "")
    existing = mlc.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = (paths().mlflow / "artifacts" / (uc.name + (f"-{kind}" if kind else ""))).resolve().as_uri()
    return str(mlc.create_experiment(name, artifact_location=location, tags={"fairway.usecase": uc.name}))


def code_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_DIR), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_DIR), "status", "--porcelain"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("+local-changes" if dirty.stdout.strip() else "")


def flat_metrics(metrics: CandidateMetrics) -> dict[str, float]:
    flat = {"auc": metrics.auc, "accuracy": metrics.accuracy, "brier": metrics.brier}
    if metrics.champion_auc is not None:
        flat["champion_auc_same_holdout"] = metrics.champion_auc
    for g in metrics.fairness:
        prefix = f"{g.attribute}.{g.group}"
        flat[f"{prefix}.disparate_impact"] = g.disparate_impact
        flat[f"{prefix}.statistical_parity"] = g.statistical_parity
        flat[f"{prefix}.equal_opportunity"] = g.equal_opportunity
        flat[f"{prefix}.selection_rate"] = g.selection_rate_group
        for name in ("disparate_impact", "statistical_parity", "equal_opportunity"):
            low, high = getattr(g, f"{name}_ci")
            flat[f"{prefix}.{name}_ci_low"], flat[f"{prefix}.{name}_ci_high"] = low, high
    return flat


def candidate_tags(uc: UseCase, candidate: str, frame_summary: dict[str, Any]) -> dict[str, str]:
    """The lineage tags of a candidate's run (trained or failed)."""
    return {
        f"{TAG}usecase": uc.name,
        f"{TAG}candidate": candidate,
        f"{TAG}window_end": frame_summary["window_end"],
        f"{TAG}window_months": ",".join(frame_summary["window_months"]),
        f"{TAG}holdout_month": frame_summary["holdout_month"],
        f"{TAG}feature_service": frame_summary["model_feature_service"],
        f"{TAG}audit_feature_service": frame_summary["audit_feature_service"],
        f"{TAG}dataset_fingerprint": frame_summary["fingerprint"],
        f"{TAG}rows": str(frame_summary["rows"]),
        f"{TAG}code_revision": code_revision(),
        f"{TAG}trigger": " | ".join(frame_summary.get("trigger", ["manual"]))[:5000],
    }


def log_failed_candidate(
    uc: UseCase, candidate: str, frame_summary: dict[str, Any], params: dict[str, Any], error: str, trace: str
) -> str:
    """A candidate that raised: an MLflow run in status FAILED with its reason (tag `fairway.failure`) and the
    traceback (`evaluation/failure.txt`), so the comparison shows it; returns the run id."""
    tags = {**candidate_tags(uc, candidate, frame_summary), f"{TAG}candidate_status": "failed",
            f"{TAG}failure": error[:5000], f"{TAG}fairness_passed": "false", f"{TAG}gate_precheck": "failed"}  # fmt: skip
    with mlflow.start_run(experiment_id=experiment_id(uc), run_name=f"{candidate}-{frame_summary['window_end']}",
                          tags=tags) as run:  # fmt: skip
        mlflow.log_params(params)
        mlflow.log_text(trace, "evaluation/failure.txt")
        run_id = str(run.info.run_id)
    client().set_terminated(run_id, status="FAILED")
    return run_id


def log_candidate(
    uc: UseCase,
    candidate: str,
    model: Any,
    metrics: CandidateMetrics,
    frame_summary: dict[str, Any],
    params: dict[str, Any],
    artifacts: list[Path],
    input_example: Any,
    choice: dict[str, Any],
) -> dict[str, str]:
    """One MLflow run per candidate: params, metrics, fairness table, plots, lineage and the model itself.
    `input_example` is logged with the model (input_example.json, serving_input_example.json) and signs its
    signature: it must be synthetic (fairway.training.synthetic_example), never a person's row."""
    from mlflow.models import infer_signature

    exp = experiment_id(uc)
    tags = {
        **candidate_tags(uc, candidate, frame_summary),
        f"{TAG}candidate_status": "trained",
        f"{TAG}fairness_passed": str(choice["fairness_passed"]).lower(),
        f"{TAG}gate_precheck": choice["gate_precheck"],
    }
    with mlflow.start_run(experiment_id=exp, run_name=f"{candidate}-{frame_summary['window_end']}", tags=tags) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(flat_metrics(metrics))
        mlflow.log_dict(metrics.as_dict(), "evaluation/metrics.json")
        mlflow.log_dict(choice, "evaluation/gate_precheck.json")
        mlflow.log_dict({**frame_summary, "code_revision": tags[f"{TAG}code_revision"]}, "lineage/training_frame.json")
        for path in artifacts:
            mlflow.log_artifact(str(path), "evaluation")
        prediction = model.predict_proba(input_example)[:, 1]
        with warnings.catch_warnings():  # integer inputs: the model is loaded as sklearn, not schema-enforced
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            signature = infer_signature(input_example, prediction)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=PIP_REQUIREMENTS,
            signature=signature,
            input_example=input_example,
        )
        mlflow.set_tag(f"{TAG}model_uri", info.model_uri)
        return {"run_id": run.info.run_id, "model_uri": info.model_uri}


def log_energy(run_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
    """The energy of a run's work (fairway.energy): metrics `energy_kwh`, `emissions_kg_co2eq` and the tags that
    say how they were obtained (`fairway.energy_*`); nothing when both are empty (tracking disabled)."""
    mlc = client()
    for key, number in metrics.items():
        mlc.log_metric(run_id, key, number)
    for key, text in tags.items():
        mlc.set_tag(run_id, f"{TAG}{key}", text)


def sibling_candidates(run_id: str) -> list[dict[str, Any]]:
    """Every candidate trained on the same frame (dataset fingerprint) as run `run_id`, failed ones included, in
    start order: candidate, status, AUC, accuracy, Brier, within the fairness thresholds, failure reason, run id."""
    mlc = client()
    run = mlc.get_run(run_id)
    fingerprint = run.data.tags[f"{TAG}dataset_fingerprint"]
    runs = mlc.search_runs([run.info.experiment_id], order_by=["attributes.start_time ASC"],
                           filter_string=f"tags.`{TAG}dataset_fingerprint` = '{fingerprint}'")  # fmt: skip
    return [{"candidate": r.data.tags.get(f"{TAG}candidate"),
             "status": r.data.tags.get(f"{TAG}candidate_status", "trained"),
             "auc": r.data.metrics.get("auc"), "accuracy": r.data.metrics.get("accuracy"),
             "brier": r.data.metrics.get("brier"), "fairness_passed": r.data.tags.get(f"{TAG}fairness_passed"),
             "failure": r.data.tags.get(f"{TAG}failure"), "run_id": r.info.run_id} for r in runs]  # fmt: skip


def run_metrics(run_id: str) -> CandidateMetrics:
    return CandidateMetrics.from_dict(load_dict(run_id, "evaluation/metrics.json"))


def register_candidate(uc: UseCase, run_id: str) -> str:
    """Register a candidate run's model as a new version of the use case's model and point `candidate` at it."""
    mlc = client()
    run = mlc.get_run(run_id)
    model_uri = run.data.tags[f"{TAG}model_uri"]
    version = mlflow.register_model(
        model_uri,
        uc.model_name,
        tags={
            f"{TAG}run_id": run_id,
            f"{TAG}candidate": run.data.tags[f"{TAG}candidate"],
            f"{TAG}dataset_fingerprint": run.data.tags[f"{TAG}dataset_fingerprint"],
            f"{TAG}gate_decision": "pending",
            f"{TAG}status": "candidate",
        },
    )
    mlc.update_model_version(uc.model_name, version.version, description=f"Candidate '{run.data.tags[f'{TAG}candidate']}' "
                             f"trained on {run.data.tags[f'{TAG}window_months']} (run {run_id}).")  # fmt: skip
    mlc.set_registered_model_alias(uc.model_name, CANDIDATE, version.version)
    return str(version.version)


def training_lineage(uc: UseCase, version: str) -> dict[str, Any]:
    """What a version was trained on: the training frame's summary logged with its run (path, fingerprint, window)."""
    return load_dict(str(get_version(uc, version).run_id), "lineage/training_frame.json")


def log_monitoring(uc: UseCase, month: str, metrics: dict[str, float], tags: dict[str, str], folder: Path) -> str:
    """One MLflow run per monitored month in `fairway-<usecase>-monitoring`: metrics, tags and the month's reports."""
    exp = experiment_id(uc, "monitoring")
    run_tags = {f"{TAG}usecase": uc.name, f"{TAG}month": month, **{f"{TAG}{k}": v for k, v in tags.items()}}
    with mlflow.start_run(experiment_id=exp, run_name=f"monitoring-{month}", tags=run_tags) as run:
        finite = {k: v for k, v in metrics.items() if v is not None and v == v}  # NaN != NaN
        mlflow.log_metrics(finite)
        mlflow.log_artifacts(str(folder), "reports")
        return str(run.info.run_id)


def log_batch_month(uc: UseCase, month: str, metrics: dict[str, float], tags: dict[str, str]) -> str:
    """One MLflow run per batch-scored month in `fairway-<usecase>-batch` (its counts and energy); returns its id."""
    exp = experiment_id(uc, "batch")
    run_tags = {f"{TAG}usecase": uc.name, f"{TAG}month": month, **{f"{TAG}{k}": v for k, v in tags.items()}}
    with mlflow.start_run(experiment_id=exp, run_name=f"batch-{month}", tags=run_tags) as run:
        mlflow.log_metrics(metrics)
        return str(run.info.run_id)


def version_by_alias(uc: UseCase, alias: str) -> ModelVersion | None:
    try:
        return client().get_model_version_by_alias(uc.model_name, alias)
    except MlflowException:
        return None


def get_version(uc: UseCase, version: str) -> ModelVersion:
    return client().get_model_version(uc.model_name, version)


def gate_report_path(evidence_sha256: str) -> str:
    """Where a gate report is kept for good in the version's run: one folder per report, named by its SHA-256
    (`gate/gate_report.json` is the latest; a re-gate never overwrites an earlier report's evidence)."""
    return f"gate/history/{evidence_sha256}/gate_report.json"


def record_gate(
    uc: UseCase, version: str, decision: GateDecision, report_files: list[Path], evidence_sha256: str
) -> None:
    """Attach the gate report to the version's run (the latest, and a copy under its SHA-256) and mirror its
    decision on the version's tags (the ledger holds the decision itself)."""
    mlc = client()
    mv = mlc.get_model_version(uc.model_name, version)
    for path in report_files:
        mlc.log_artifact(mv.run_id, str(path), "gate")
    mlc.log_artifact(mv.run_id, str(report_files[0]), gate_report_path(evidence_sha256).rsplit("/", 1)[0])
    mlc.set_model_version_tag(uc.model_name, version, f"{TAG}gate_decision", decision.decision)
    mlc.set_model_version_tag(uc.model_name, version, f"{TAG}gate_report_sha256", evidence_sha256)
    mlc.set_model_version_tag(
        uc.model_name, version, f"{TAG}gate_reasons", "; ".join(decision.reasons)[:4900] or "all rules hold"
    )


def artifact_sha256(run_id: str, path: str) -> str | None:
    """SHA-256 of a run's artifact file as stored now; None when it is missing."""
    with tempfile.TemporaryDirectory(prefix="fairway-artifact-") as tmp:
        try:
            local = download(run_id, path, Path(tmp))
        except (MlflowException, OSError):
            return None
        return hashlib.sha256(local.read_bytes()).hexdigest() if local.is_file() else None


def _approval_tags(approval: Approval) -> dict[str, str]:
    return {f"{TAG}approval.{k}": str(v)[:4900] for k, v in asdict(approval).items()}


def set_status(uc: UseCase, version: str, status: str) -> None:
    client().set_model_version_tag(uc.model_name, version, f"{TAG}status", status)


def record_rejection(uc: UseCase, version: str, approval: Approval) -> None:
    """A person declined a version that passed the gate: mirrored on the version, `champion` untouched."""
    mlc = client()
    for key, value in _approval_tags(approval).items():
        mlc.set_model_version_tag(uc.model_name, version, key, value)
    mlc.set_model_version_tag(uc.model_name, version, f"{TAG}status", "rejected")


def mirror_champion(uc: UseCase, version: str, approval: Approval | None, previous: str | None, how: str) -> None:
    """Make MLflow show what the ledger decided: `champion` on `version`, its approval (unless it has one from
    its first promotion: a record is never overwritten), the previous champion superseded. Only
    fairway.promotion calls this, after the ledger entry is committed."""
    mlc = client()
    mv = mlc.get_model_version(uc.model_name, version)
    if approval is not None and not approval_of(mv):
        for key, value in _approval_tags(approval).items():
            mlc.set_model_version_tag(uc.model_name, version, key, value)
    mlc.set_model_version_tag(uc.model_name, version, f"{TAG}{how}_at", datetime.now(UTC).isoformat())
    mlc.set_model_version_tag(uc.model_name, version, f"{TAG}previous_champion", previous or "none")
    mlc.set_model_version_tag(uc.model_name, version, f"{TAG}status", "champion")
    mlc.set_registered_model_alias(uc.model_name, CHAMPION, version)
    if previous is not None and previous != version:
        mlc.set_model_version_tag(uc.model_name, previous, f"{TAG}status", "superseded")
        mlc.set_model_version_tag(uc.model_name, previous, f"{TAG}superseded_by", version)
    log.info("%s v%s is champion (%s; was %s)", uc.model_name, version, how, previous)


def mirror_stop(uc: UseCase, version: str, reason: str) -> None:
    """A stopped model has no `champion` alias; its version says why."""
    mlc = client()
    with contextlib.suppress(MlflowException):
        mlc.delete_registered_model_alias(uc.model_name, CHAMPION)
    mlc.set_model_version_tag(uc.model_name, version, f"{TAG}status", "stopped")
    mlc.set_model_version_tag(uc.model_name, version, f"{TAG}stopped", reason[:4900])


def approval_of(mv: ModelVersion) -> dict[str, str]:
    prefix = f"{TAG}approval."
    return {k[len(prefix) :]: v for k, v in mv.tags.items() if k.startswith(prefix)}


def status(uc: UseCase) -> dict[str, Any]:
    """The champion as the promotion ledger says (with its approval record, or who stopped it and why), the
    MLflow alias beside it, every version with its gate decision, the latest metrics."""
    mlc = client()
    try:
        problem, state = "", ledger.state(uc.model_name)
    except ledger.LedgerError as error:
        problem, state = str(error), ledger.replay(uc.model_name, ledger.entries(uc.model_name))
    alias = version_by_alias(uc, CHAMPION)
    champion = None
    if state.version is not None:
        champion = {"version": state.version, "approval": approval_of(get_version(uc, state.version)),
                    "since": state.since.recorded_at if state.since else None,
                    "stopped": state.stop_reason() or None}  # fmt: skip
    candidate = version_by_alias(uc, CANDIDATE)
    versions: list[ModelVersion] = []
    try:
        versions = list(mlc.search_model_versions(f"name = '{uc.model_name}'", order_by=["version_number DESC"]))
    except MlflowException:
        pass
    rows = []
    for mv in versions:
        run = mlc.get_run(str(mv.run_id))
        rows.append({
            "version": str(mv.version),
            "candidate": mv.tags.get(f"{TAG}candidate"),
            "status": mv.tags.get(f"{TAG}status"),
            "gate_decision": mv.tags.get(f"{TAG}gate_decision"),
            "gate_reasons": mv.tags.get(f"{TAG}gate_reasons"),
            "approval": approval_of(mv),
            "window": run.data.tags.get(f"{TAG}window_months"),
            "metrics": {k: round(v, 4) for k, v in run.data.metrics.items()},
            "run_id": mv.run_id,
        })  # fmt: skip
    return {
        "usecase": uc.name,
        "model": uc.model_name,
        "tracking_uri": tracking_uri(),
        "champion": champion,
        "alias_champion": None if alias is None else str(alias.version),
        "ledger_problem": problem,
        "candidate": None if candidate is None else str(candidate.version),
        "versions": rows,
    }


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)
