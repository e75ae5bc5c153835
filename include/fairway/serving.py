"""Online scoring behind the BentoML service: Feast online lookup, one-row scoring, decision records.

`OnlineScorer` is built once per service worker with the packaged model and its metadata. Per request it does
the least it can: one Feast online read through the model-input feature service (by customer id), one score,
the reason codes (one score per model input against the version's reference applicant, fairway.explanations),
and one committed row in the decision log.

Logs: a request is logged by its request id and the error's type, never with its values or the customer id
(bento/service.py keeps BentoML's own error log to the same rule).

Stale features: a customer's online features older than the view's TTL are *flagged*, not refused: the answer
and the decision record carry `features_event_time` and `features_stale: true`, so a deployer's policy can
decline to act on them; refusing would make the service useless between two materializations that are late.

Missing values: a model input declared `nullable` (its `nullable` in the model's metadata) may be None, online
(a null in the store for a customer the store knows) or given (JSON null); it is scored as missing, the model's
pipeline imputing it as in training and batch scoring. A missing input that is not nullable is refused
(UnknownCustomer) and never scored.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from fairway.config import resolve
from fairway.data import is_missing, missing_as_nan
from fairway.explanations import ReasonCodes, dumps

log = logging.getLogger(__name__)


class UnknownCustomer(LookupError):
    """The customer has no features in the online store."""


class DecisionNotRecorded(RuntimeError):
    """The decision log refused the record: the decision must not be reported as made."""


TYPES: dict[str, type] = {"float": float, "int": int, "string": str, "bool": bool}


def applicant_model(inputs: list[dict[str, Any]]) -> type[BaseModel]:
    """The strict request model of explicit model inputs, from the input schema in the model's metadata
    (fairway.packaging.input_schema): every input is required, with its type, range and allowed values, and
    nothing else is accepted. A `nullable` input also takes null (a missing value), but must still be named: a
    client says "unknown" explicitly, a forgotten or misspelt field is an error, never a silent missing value."""
    fields: dict[str, Any] = {}
    for spec in inputs:
        kind: Any = Literal[tuple(spec["allowed"])] if spec.get("allowed") else TYPES[spec["dtype"]]
        if spec.get("nullable"):
            kind = kind | None
        limits = {k: spec[k] for k in ("min", "max") if spec.get(k) is not None}
        fields[spec["name"]] = (
            kind,
            Field(..., ge=limits.get("min"), le=limits.get("max"), description=spec.get("description")),
        )
    model: type[BaseModel] = create_model("Applicant", __config__=ConfigDict(extra="forbid", strict=True), **fields)
    return model


def linear_scorer(model: Any, columns: list[str], probes: int = 64) -> Callable[[dict[str, Any]], float] | None:
    """The model as a plain function of one row, when it is Fairway's logistic pipeline (scaled numbers, one-hot
    categories, logistic regression), else None. Per request the sklearn pipeline costs ~2 ms of pandas and
    validation overhead for a dot product of 30 numbers; this computes the same sum directly. It is used only if
    it agrees with the pipeline's predict_proba to 1e-9 on `probes` generated rows (checked once, at start).

    A row with a missing value (None, NaN) is scored by the pipeline itself: the compiled form has no missing
    value to compute with (a model whose pipeline imputes is not the plain one, and never compiled)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    prep, clf = model.steps[0][1], model.steps[1][1]
    if not isinstance(prep, ColumnTransformer) or not isinstance(clf, LogisticRegression) or clf.coef_.shape[0] != 1:
        return None
    weights, offset = clf.coef_.ravel(), 0
    numeric: dict[str, tuple[float, float, float]] = {}
    categorical: dict[str, dict[Any, float]] = {}
    for _, transformer, cols in prep.transformers_:
        if transformer == "drop" or len(cols) == 0:
            continue
        if isinstance(transformer, StandardScaler):
            for i, col in enumerate(cols):
                scale = transformer.scale_[i] if transformer.scale_ is not None else 1.0
                mean = transformer.mean_[i] if transformer.mean_ is not None else 0.0
                numeric[col] = (float(mean), float(scale), float(weights[offset + i]))
            offset += len(cols)
        elif isinstance(transformer, OneHotEncoder) and transformer.drop is None:
            for col, categories in zip(cols, transformer.categories_, strict=True):
                categorical[col] = {c: float(weights[offset + j]) for j, c in enumerate(categories)}
                offset += len(categories)
        else:
            return None
    if offset != len(weights) or set(numeric) | set(categorical) != set(columns):
        return None
    intercept = float(clf.intercept_[0])
    numbers = list(numeric)

    def compiled(values: dict[str, Any]) -> float:
        z = intercept
        for col, (mean, scale, weight) in numeric.items():
            z += (values[col] - mean) / scale * weight
        for col, table in categorical.items():
            found = table.get(values[col])
            if found is None:  # a category the encoder ignores, or a missing value: NaN, left to the pipeline
                z += math.nan if is_missing(values[col]) else 0.0
            else:
                z += found
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    rows = []
    for i in range(probes):
        row: dict[str, Any] = {}
        for col, (mean, scale, _) in numeric.items():
            row[col] = mean + scale * ((i * 7919 + sum(map(ord, col))) % 41 - 20) / 10
        for col, table in categorical.items():
            options = list(table)
            row[col] = options[(i + len(col)) % len(options)]
        rows.append(row)
    expected = model.predict_proba(pd.DataFrame(rows, columns=columns))[:, 1]
    if max(abs(compiled(r) - e) for r, e in zip(rows, expected, strict=True)) > 1e-9:
        return None

    def score(values: dict[str, Any]) -> float:
        try:
            result = compiled(values)  # NaN from a NaN, TypeError from None or pd.NA
        except TypeError:
            result = math.nan
        if result != result:
            frame = missing_as_nan(pd.DataFrame({c: [values[c]] for c in columns}), numbers)
            return float(model.predict_proba(frame)[0, 1])
        return result

    return score


class OnlineScorer:
    """Scores customers (features from Feast) and applicants (features given) with one packaged model."""

    def __init__(self, usecase: str, model: Any, metadata: dict[str, Any]) -> None:
        from fairway.features.store import get_store
        from fairway.records import DecisionLog, decision_log_url, pseudonym_key

        self.uc = resolve(usecase)
        self.model = model
        self.columns = [spec["name"] for spec in metadata["inputs"]]
        self.nullable = {spec["name"] for spec in metadata["inputs"] if spec.get("nullable")}
        self.numeric = [spec["name"] for spec in metadata["inputs"] if spec["dtype"] in ("float", "int")]
        self.threshold = float(metadata["decision_threshold"])
        self.model_name = str(metadata["mlflow_model_name"])
        self.model_version = str(metadata["mlflow_version"])
        self.store = get_store(self.uc)
        self.service_name = self.uc.service("model_input").name
        self.feature_service = self.store.get_feature_service(self.service_name)
        view = self.uc.feature(self.columns[0]).view
        self.ttl = timedelta(days=self.uc.view(view).ttl_days)
        self.log = DecisionLog(decision_log_url(self.uc))
        self.key = pseudonym_key()  # read once, not per request
        self.fast = linear_scorer(model, self.columns)
        self.explain = ReasonCodes(self.columns, metadata["reference"], self.score_rows, self.fast)
        log.info("scoring with %s", "the compiled linear form" if self.fast else "the model's predict_proba")

    def online_features(self, customer_id: str) -> tuple[dict[str, Any], datetime | None]:
        """The customer's model inputs from the online store and the event time of the oldest of them.

        An input is found when the store has a row of its view for the customer (an event time); a found nullable
        input may be None. Refused (UnknownCustomer): a customer without any row, or lacking an input that is not
        nullable or whose view has no row for them."""
        key = self.uc.entity.join_key
        response = self.store.get_online_features(
            features=self.feature_service, entity_rows=[{key: customer_id}]
        ).to_dict(include_event_timestamps=True)
        values = {c: response[c][0] for c in self.columns}
        found = {c for c in self.columns if values[c] is not None or response.get(f"{c}__ts", [None])[0]}
        if not found:
            raise UnknownCustomer(f"customer '{customer_id}' has no features in the online store")
        missing = [c for c, v in values.items() if v is None and (c not in self.nullable or c not in found)]
        if missing:
            raise UnknownCustomer(f"customer '{customer_id}' lacks online features {missing}")
        seconds = [response[f"{c}__ts"][0] for c in self.columns if response.get(f"{c}__ts", [0])[0]]
        event_time = datetime.fromtimestamp(min(seconds), UTC) if seconds else None
        return values, event_time

    def score_rows(self, rows: pd.DataFrame) -> np.ndarray:
        from fairway.training import predict_scores

        return predict_scores(self.model, missing_as_nan(rows[self.columns], self.numeric))

    def score(self, values: dict[str, Any]) -> float:
        if self.fast is not None:
            return self.fast(values)  # a logistic function: already in [0, 1]
        return float(self.score_rows(pd.DataFrame({c: [values[c]] for c in self.columns}))[0])

    def decide(
        self,
        endpoint: str,
        values: dict[str, Any],
        subject: str | None,
        request_id: str | None = None,
        features_event_time: datetime | None = None,
    ) -> dict[str, Any]:
        """Score, decide and record; raises DecisionNotRecorded when the record cannot be committed."""
        from fairway.records import input_fingerprint

        score = self.score(values)
        reasons = self.explain.reasons(values, score)
        stale = None
        if features_event_time is not None:
            stale = datetime.now(UTC) - features_event_time > self.ttl
        answer = {
            "request_id": request_id or uuid.uuid4().hex,
            "score": score,
            "decision": "approve" if score < self.threshold else "decline",
            "threshold": self.threshold,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "features_event_time": features_event_time,
            "features_stale": stale,
            "reasons": reasons,
        }
        record = {**answer, "usecase": self.uc.name, "endpoint": endpoint, "subject": subject, "reasons": dumps(reasons),
                  "input_fingerprint": input_fingerprint([None if is_missing(values[c]) else values[c] for c in self.columns])}  # fmt: skip
        try:
            self.log.append(record)
        except Exception as error:  # any database failure: the decision was not recorded
            # the request id and the error's type only: a database error's text carries the row's values
            log.error("decision %s not recorded: %s", answer["request_id"], type(error).__name__)
            raise DecisionNotRecorded(f"the decision could not be recorded ({type(error).__name__})") from error
        return answer

    def predict_customer(self, customer_id: str, request_id: str | None = None) -> dict[str, Any]:
        from fairway.records import pseudonym

        values, event_time = self.online_features(customer_id)
        return self.decide("predict", values, pseudonym(customer_id, self.key), request_id, event_time)

    def predict_features(self, values: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        return self.decide("predict_features", values, None, request_id)


class ChampionWatch:
    """Whether this service's packaged version may answer, as the promotion ledger says: checked at start (with
    the packaged model files' SHA-256) and again at most every `every` seconds on later requests, so a stop
    takes effect within seconds without a restart, and a rollback to this version re-enables it."""

    def __init__(self, usecase: str, version: str, model_folder: Path | None, every: float = 2.0) -> None:
        from fairway.verification import serving_refusal

        self.usecase, self.version, self.every = usecase, str(version), every
        self._check = serving_refusal
        self.reason = self._safe(model_folder)
        # evidence that does not match (model files, gate report) stays refused until a restart with the right bento
        self.evidence = self.reason if self.reason != self._safe(None) else None
        self.checked = time.monotonic()

    def _safe(self, model_folder: Path | None) -> str | None:
        try:
            return self._check(self.usecase, self.version, model_folder)
        except Exception as error:  # the ledger's database unreachable: refuse rather than serve unchecked
            log.error("promotion ledger check failed: %s", error)
            return f"the promotion ledger cannot be read ({type(error).__name__}): no decision is made"

    def refusal(self) -> str | None:
        """Why no decision may be made now (None: the version is the ledger's serving champion)."""
        if self.evidence is not None:
            return self.evidence
        now = time.monotonic()
        if now - self.checked >= self.every:
            self.reason, self.checked = self._safe(None), now
        return self.reason
