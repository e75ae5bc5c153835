"""BentoML service of the approved (champion) model.

The model is the MLflow version the fairness gate promoted, imported into the BentoML model store by the
packaging step; its tag is pinned as a bento argument (`model_tag`), so a bento always serves the version it
was built for. The input schema (model inputs, types, allowed values, ranges) travels in the model's
metadata: requests are validated strictly against it, and protected attributes are not accepted.
"""

from __future__ import annotations

from typing import Any, Literal

import bentoml
from pydantic import BaseModel, ConfigDict, Field, create_model


class ServiceArgs(BaseModel):
    model_tag: str


args = bentoml.use_arguments(ServiceArgs)
MODEL = bentoml.models.BentoModel(args.model_tag)
TYPES: dict[str, Any] = {"float": float, "int": int, "string": str, "bool": bool}


def _field(spec: dict[str, Any]) -> tuple[Any, Any]:
    kind: Any = Literal[tuple(spec["allowed"])] if spec.get("allowed") else TYPES[spec["dtype"]]
    limits = {k: spec[k] for k in ("min", "max") if spec.get(k) is not None}
    return kind, Field(..., ge=limits.get("min"), le=limits.get("max"), description=spec.get("description"))


_STORED = MODEL.stored
if _STORED is None:
    raise RuntimeError(f"model {args.model_tag} is not in the BentoML store: the fairness_gate DAG packages it")
INPUTS = _STORED.info.metadata["inputs"]
Applicant = create_model(  # type: ignore[call-overload]
    "Applicant",
    __config__=ConfigDict(extra="forbid", strict=True),
    **{spec["name"]: _field(spec) for spec in INPUTS},
)


class Decision(BaseModel):
    score: float
    decision: Literal["approve", "decline"]
    threshold: float
    model_name: str
    model_version: str


@bentoml.service(name="fairway_credit_risk", traffic={"timeout": 10})
class FairwayModel:
    """Scores applicants with the champion model; one class, loaded once per worker."""

    bento_model = MODEL

    def __init__(self) -> None:
        import mlflow.sklearn

        self.classifier = mlflow.sklearn.load_model(self.bento_model.path_of("mlflow_model"))
        self.meta = self.bento_model.info.metadata
        self.columns = [spec["name"] for spec in INPUTS]

    @bentoml.api
    def predict_features(self, applicant: Applicant) -> Decision:  # type: ignore[valid-type]
        """Score explicit model inputs (a new applicant, or a what-if)."""
        import pandas as pd

        frame = pd.DataFrame([applicant.model_dump()], columns=self.columns)  # type: ignore[attr-defined]
        score = float(self.classifier.predict_proba(frame)[0, 1])
        threshold = float(self.meta["decision_threshold"])
        return Decision(
            score=score,
            decision="approve" if score < threshold else "decline",
            threshold=threshold,
            model_name=self.meta["mlflow_model_name"],
            model_version=self.meta["mlflow_version"],
        )

    @bentoml.api(route="/model")
    def model_info(self) -> dict[str, Any]:
        """Which model answers: name, version, approval record and gate summary."""
        return {
            key: self.meta[key]
            for key in ("mlflow_model_name", "mlflow_version", "approval", "gate_decision", "documentation")
        }
