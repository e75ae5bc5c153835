"""Packaging of an approved version: import it into the BentoML model store and build the bento from bento/.

The BentoML model is tagged `<usecase>:mlflow-v<version>-<run id prefix>` (unique even if the MLflow registry
is recreated while the BentoML store is kept) and carries, as metadata, what the service needs to
validate and answer on its own: the model inputs with their types and rules, the reference applicant of the
reason codes (fairway.explanations), the decision threshold, the MLflow
name and version, the approval record and the gate decision. The bento pins that tag as its `model_tag`
argument and carries the MLflow version in its labels. The build is offline (`lock_packages: false`).

What this writes under BENTOML_HOME: the model (`models/<usecase>/<version>/`: `model.yaml` with the metadata
above, and `mlflow_model/`, a copy of the MLflow model folder with its input examples) and the bento
(`bentos/fairway_<usecase>/mlflow-v<version>-<random>/`, which holds its own copy of the model and of bento/). None of it holds
personal data: the input examples are the synthetic reference applicant (fairway.training.synthetic_example), the
reference is made of medians and most frequent values. The erasure searches every file there anyway and says so
in its receipt (fairway.privacy).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from fairway import settings
from fairway.config import PROJECT_DIR, UseCase, resolve

BENTO_DIR = PROJECT_DIR / "bento"


def bentoml_environment() -> None:
    """BentoML's store lives under FAIRWAY_HOME (BENTOML_HOME unless set); no usage tracking."""
    settings.configure_bentoml()


def input_schema(uc: UseCase) -> list[dict[str, Any]]:
    """The model inputs with their rules, as BentoML metadata (which holds no None: unset rules are left out).
    `nullable: true` marks an input that may be missing (the service takes null for it); it is left out otherwise,
    as in the metadata of versions packaged before inputs could be missing."""
    schema = []
    for feature in (uc.feature(name) for name in uc.model_inputs):
        entry = {"name": feature.name, "dtype": feature.dtype, "description": feature.description,
                 "allowed": feature.allowed, "min": feature.min, "max": feature.max,
                 "nullable": True if feature.nullable else None}  # fmt: skip
        schema.append({key: value for key, value in entry.items() if value is not None})
    return schema


def fairness_summary(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """Holdout AUC and the fairness metrics per protected group, from the version's run (`<attr>.<group>.<metric>`)."""
    summary: dict[str, dict[str, float]] = {"model": {k: metrics[k] for k in ("auc", "accuracy") if k in metrics}}
    for key, value in metrics.items():
        parts = key.split(".")
        if len(parts) == 3 and value == value:  # NaN cannot be metadata
            summary.setdefault(f"{parts[0]}.{parts[1]}", {})[parts[2]] = value
    return summary


def package(usecase: UseCase | str | None, version: str) -> dict[str, str]:
    """Import the approved MLflow version into BentoML and build its bento; idempotent for a version."""
    import bentoml

    from fairway import ledger, registry
    from fairway.training import load_reference

    uc = resolve(usecase)
    bentoml_environment()
    if str(version) not in ledger.state(uc.model_name).approved_versions:
        raise RuntimeError(f"{uc.model_name} v{version} is not an approved champion in the promotion ledger: only "
                           "the champion path packages a model")  # fmt: skip
    mv = registry.get_version(uc, version)
    approval = registry.approval_of(mv)
    registry.client()  # sets the tracking and registry URIs that import_model resolves against
    tag = f"{uc.name}:mlflow-v{version}-{str(mv.run_id)[:12]}"
    labels = {"mlflow_model_name": uc.model_name, "mlflow_version": str(version), "usecase": uc.name}
    metadata = {
        "inputs": input_schema(uc),
        "reference": load_reference(str(mv.run_id)),  # the reference applicant of the reason codes
        "decision_threshold": uc.gate.decision_threshold,
        "mlflow_model_name": uc.model_name,
        "mlflow_version": str(version),
        "mlflow_run_id": str(mv.run_id),
        "usecase": uc.name,
        "protected_attributes": uc.protected_features,
        "approval": approval,
        "gate_decision": mv.tags.get("fairway.gate_decision", ""),
        "gate_summary": mv.tags.get("fairway.gate_reasons", ""),
        "gate_report_sha256": mv.tags.get("fairway.gate_report_sha256", ""),
        "fairness": fairness_summary(registry.client().get_run(str(mv.run_id)).data.metrics),
        "documentation": mv.tags.get("fairway.documentation", ""),
    }
    try:
        existing = bentoml.models.get(tag)
        if dict(existing.info.metadata) != metadata:  # evidence changed (e.g. documentation): import afresh
            bentoml.models.delete(tag)
            raise bentoml.exceptions.NotFound(tag)
    except bentoml.exceptions.NotFound:
        bentoml.mlflow.import_model(tag, f"models:/{uc.model_name}/{version}", labels=labels, metadata=metadata)
    model = bentoml.models.get(tag)
    bento = bentoml.bentos.build_bentofile(
        str(BENTO_DIR / "bentofile.yaml"),
        build_ctx=str(BENTO_DIR),
        version=f"mlflow-v{version}-{uuid.uuid4().hex[:10]}",  # `bentoml list` shows which MLflow version
        labels={**labels, "bento_model": str(model.tag)},
        args={"model_tag": str(model.tag)},
        reload=True,
    )
    registry.client().set_model_version_tag(uc.model_name, version, "fairway.bento", str(bento.tag))
    return {"bento": str(bento.tag), "bento_model": str(model.tag), "bentoml_home": os.environ["BENTOML_HOME"]}
