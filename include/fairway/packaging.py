"""Packaging of an approved version: import it into the BentoML model store and build the bento from bento/.

The BentoML model is tagged `<usecase>:mlflow-v<version>-<run id prefix>` (unique even if the MLflow registry
is recreated while the BentoML store is kept) and carries, as metadata, what the service needs to
validate and answer on its own: the model inputs with their types and rules, the reference applicant of the
reason codes (fairway.explanations), the decision threshold, the MLflow
name and version, the approval record and the gate decision. The bento pins that tag as its `model_tag`
argument and carries the MLflow version in its labels. The build is offline (`lock_packages: false`). The bento
is self-contained (build_context): it carries the `fairway` package, the feature repo and the use-case config, and
its requirements are all it needs; the stores (FAIRWAY_HOME, BENTOML_HOME, MLFLOW_TRACKING_URI, the production
Feast and decision-log variables) come from the environment it is served in.

What this writes under BENTOML_HOME: the model (`models/<usecase>/<version>/`: `model.yaml` with the metadata
above, and `mlflow_model/`, a copy of the MLflow model folder with its input examples) and the bento
(`bentos/fairway_<usecase>/mlflow-v<version>-<random>/`, which holds its own copy of the model and of bento/). None of it holds
personal data: the input examples are the synthetic reference applicant (fairway.training.synthetic_example), the
reference is made of medians and most frequent values. The erasure searches every file there anyway and says so
in its receipt (fairway.privacy).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml

from fairway import settings
from fairway.config import FEATURE_REPO_DIR, PACKAGE_DIR, PROJECT_DIR, UseCase, resolve, usecase_file

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


REQUIREMENTS = PROJECT_DIR / "requirements.txt"


def _normal(requirement: str) -> str:
    """The normalised distribution name of a requirement (`feast[duckdb]==0.67.0` -> `feast`)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>!~;\s]", requirement.strip(), maxsplit=1)[0]).lower()


def pinned_closure(requirements: Path, roots: list[str]) -> list[str]:
    """The pins of `roots` and of everything they need, read from a `uv pip compile` file (its `# via` comments
    give who needs whom): what the bento installs, so that a fresh environment gets this project's tested
    versions rather than whatever is newest. `roots` keep their extras; the file's own pins win."""
    pins: dict[str, str] = {}
    needed_by: dict[str, set[str]] = {}
    current = None
    for line in requirements.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if pinned:
            current = _normal(pinned[1])
            pins[current] = pinned[2]
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)\s*$", line)
        if via and current and not line.strip().startswith("# via -r") and via[1] != "via":
            needed_by.setdefault(_normal(via[1]), set()).add(current)
    extras = {_normal(r): r.split("==", 1)[0] for r in roots}
    missing = sorted(n for n in extras if n not in pins)
    if missing:
        raise RuntimeError(f"{requirements} pins none of {missing}: run `make lock`")
    differing = [r for r in roots if "==" in r and r.split("==", 1)[1] != pins[_normal(r)]]
    if differing:
        raise RuntimeError(f"bento/bentofile.yaml pins {differing}, {requirements} other versions: make them agree")
    todo, closure = list(extras), set()
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo.extend(needed_by.get(name, ()))
    return [f"{extras.get(n, n)}=={pins[n]}" for n in sorted(closure)]


def build_context(uc: UseCase, folder: Path) -> Path:
    """bento/ and everything the service reads, in `folder`: the `fairway` package itself (an included package:
    the bento's `src/fairway`), the feature repo (its definitions and both feature_store configs, whose stores
    come from the environment) and the use case's config (`usecases/<name>.yaml`). The carried package finds
    both beside itself (fairway.config: CARRIED_USECASES_DIR, FEATURE_REPO_DIR) unless the deployment names others
    (FAIRWAY_USECASES_DIR, FAIRWAY_FEATURE_REPO). The bento's packages are the pinned closure of bento/bentofile.yaml's
    in requirements.txt (pinned_closure)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*.egg-info")
    shutil.copy2(BENTO_DIR / "service.py", folder / "service.py")
    bentofile = yaml.safe_load((BENTO_DIR / "bentofile.yaml").read_text())
    if REQUIREMENTS.is_file():  # a checkout or the image: pin the whole closure (BentoML adds bentoml itself)
        python = bentofile["python"]
        python["packages"] = [p for p in pinned_closure(REQUIREMENTS, [*python["packages"], "bentoml"])
                              if _normal(p) != "bentoml"]  # fmt: skip
    (folder / "bentofile.yaml").write_text(yaml.safe_dump(bentofile, sort_keys=False))
    shutil.copytree(PACKAGE_DIR, folder / "fairway", ignore=skip)
    shutil.copytree(FEATURE_REPO_DIR, folder / "feature_repo", ignore=skip)
    (folder / "usecases").mkdir()
    shutil.copy2(usecase_file(uc.name), folder / "usecases" / f"{uc.name}.yaml")
    return folder


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
    with tempfile.TemporaryDirectory(prefix="fairway-bento-") as folder:
        context = build_context(uc, Path(folder))
        bento = bentoml.bentos.build_bentofile(
            str(context / "bentofile.yaml"),
            build_ctx=str(context),
            version=f"mlflow-v{version}-{uuid.uuid4().hex[:10]}",  # `bentoml list` shows which MLflow version
            labels={**labels, "bento_model": str(model.tag)},
            args={"model_tag": str(model.tag)},
            reload=True,
        )
    registry.client().set_model_version_tag(uc.model_name, version, "fairway.bento", str(bento.tag))
    return {"bento": str(bento.tag), "bento_model": str(model.tag), "bentoml_home": os.environ["BENTOML_HOME"]}
