"""Online scoring behind the BentoML service: Feast online lookup, one-row scoring, decision records.

`OnlineScorer` is built once per service worker with the packaged model and its metadata. Per request it does
the least it can: one online-store read per feature view of the model-input feature service (by customer id;
the views are resolved from the Feast registry once, at start), one score, the reason codes (one score per model
input against the version's reference applicant, fairway.explanations), and one committed row in the decision
log (an INSERT compiled once). The score is computed by a compiled form of the model verified against its
pipeline at start (`linear_scorer`, else `row_scorer`), so one row costs microseconds to a few hundred, not the
milliseconds of a pipeline's predict_proba on a one-row DataFrame.

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
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from fairway.config import UseCase, resolve
from fairway.data import is_missing, missing_as_nan
from fairway.explanations import ReasonCodes, dumps

log = logging.getLogger(__name__)


class UnknownCustomer(LookupError):
    """The customer has no features in the online store."""


class DecisionNotRecorded(RuntimeError):
    """The decision log refused the record: the decision must not be reported as made."""


class RequestIdReused(ValueError):
    """The request id already names a recorded decision (`earlier`: its endpoint, decision, version and time):
    this request made no new one."""

    def __init__(self, request_id: str, earlier: dict[str, Any]) -> None:
        super().__init__(f"request id {request_id!r} already names a decision: send a new id for a new request")
        self.request_id, self.earlier = request_id, earlier


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
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # finite numbers only
    model: type[BaseModel] = create_model("Applicant", __config__=config, **fields)
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


Vector = Callable[[dict[str, Any]], list[float]]


def _numeric_step(transformer: Any, cols: list[str]) -> Vector | None:
    """A numeric transformer as a function of one row: a StandardScaler, or a numeric SimpleImputer (with its
    missing-value indicator columns) followed by a StandardScaler, as fairway.training.preprocessor builds them."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    imputer = steps.pop(0) if isinstance(steps[0], SimpleImputer) else None
    if len(steps) != 1 or not isinstance(steps[0], StandardScaler):
        return None
    scaler = steps[0]
    fill: list[float] | None = None
    flagged: list[int] = []
    if imputer is not None:
        if imputer.strategy not in ("mean", "median", "constant") or not _is_nan(imputer.missing_values):
            return None
        fill = [float(v) for v in imputer.statistics_]
        flagged = [int(i) for i in imputer.indicator_.features_] if imputer.indicator_ is not None else []
    width = len(cols) + len(flagged)
    mean = [float(v) for v in scaler.mean_] if scaler.mean_ is not None else [0.0] * width
    scale = [float(v) for v in scaler.scale_] if scaler.scale_ is not None else [1.0] * width
    if len(mean) != width:
        return None

    def vector(values: dict[str, Any]) -> list[float]:
        raw = [values[c] for c in cols]
        gaps = [is_missing(v) for v in raw]
        if fill is None:
            numbers = [math.nan if gap else float(v) for v, gap in zip(raw, gaps, strict=True)]
        else:
            numbers = [fill[i] if gap else float(v) for i, (v, gap) in enumerate(zip(raw, gaps, strict=True))]
            numbers += [1.0 if gaps[i] else 0.0 for i in flagged]
        return [(v - m) / d for v, m, d in zip(numbers, mean, scale, strict=True)]

    return vector


def _category_step(transformer: Any, cols: list[str]) -> Vector | None:
    """A categorical transformer (a OneHotEncoder, or imputers of the missing category followed by one) as a table
    per column: each known category's output, the output of a missing value and of an unseen category, all taken
    from the fitted transformer itself (so rare-category grouping and the "missing" category are as in training)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    encoder = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
    if not isinstance(encoder, OneHotEncoder) or len(encoder.categories_) != len(cols):
        return None
    widths = list(getattr(encoder, "_n_features_outs", []))
    if len(widths) != len(cols):
        return None
    starts = np.cumsum([0, *widths])
    first = {c: encoder.categories_[i][0] for i, c in enumerate(cols)}

    def output(col: str, value: Any) -> tuple[float, ...] | None:
        i = cols.index(col)
        row = pd.DataFrame({c: [value if c == col else first[c]] for c in cols}, dtype=object)
        try:
            out = np.asarray(transformer.transform(row), dtype=float)[0]
        except (ValueError, TypeError):
            return None
        return tuple(float(v) for v in out[starts[i] : starts[i + 1]])

    tables: dict[str, dict[Any, tuple[float, ...]]] = {}
    missing: dict[str, tuple[float, ...] | None] = {}
    unseen: dict[str, tuple[float, ...] | None] = {}
    for i, col in enumerate(cols):
        table = {}
        for category in encoder.categories_[i]:
            found = output(col, category)
            if found is None:
                return None
            table[category] = found
        tables[col] = table
        missing[col] = output(col, np.nan)
        unseen[col] = output(col, "\x00fairway-unseen-category")

    def vector(values: dict[str, Any]) -> list[float]:
        out: list[float] = []
        for col in cols:
            value = values[col]
            found = missing[col] if is_missing(value) else tables[col].get(value, unseen[col])
            if found is None:  # the transformer refuses this value: so does the compiled form
                raise ValueError(f"'{col}' cannot be encoded")
            out.extend(found)
        return out

    return vector


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _prepared(prep: Any, columns: list[str]) -> Vector | None:
    """A fitted ColumnTransformer of Fairway's preprocessor as a function of one row (a dict) giving the dense
    row it transforms it to; None when a part is not one of the known transformers."""
    from sklearn.compose import ColumnTransformer

    if not isinstance(prep, ColumnTransformer) or getattr(prep, "sparse_output_", False):
        return None
    parts: list[Vector] = []
    for _, transformer, cols in prep.transformers_:
        if isinstance(transformer, str) and transformer == "drop" or len(cols) == 0:
            continue
        if isinstance(transformer, str):  # passthrough
            return None
        cols = list(cols)
        part = _numeric_step(transformer, cols) or _category_step(transformer, cols)
        if part is None:
            return None
        parts.append(part)
    used = {c for _, t, cols in prep.transformers_ if not isinstance(t, str) for c in cols}
    if not used <= set(columns):
        return None

    def prepared(values: dict[str, Any]) -> list[float]:
        out: list[float] = []
        for part in parts:
            out.extend(part(values))
        return out

    return prepared


def _final_scorer(estimator: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """The pipeline's final estimator on prepared rows (a k x n numpy array, k small): the probability of class 1.
    - logistic regression: its sigmoid, computed directly;
    - histogram gradient boosting: its raw prediction on one thread (predict_proba starts the OpenMP pool, ~1.5
      ms for a row), through the logistic link;
    - holisticai's ExponentiatedGradientReduction: its weighted mixture of its classifiers' 0/1 predictions,
      computed on the numpy row (its own predict_proba assembles a DataFrame per call, ~3.6 ms)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if isinstance(estimator, LogisticRegression) and estimator.coef_.shape[0] == 1:
        weights, intercept = estimator.coef_.ravel().astype(float), float(estimator.intercept_[0])
        return lambda rows: _expit(rows @ weights + intercept)
    if isinstance(estimator, HistGradientBoostingClassifier) and len(estimator.classes_) == 2:
        raw_predict = getattr(estimator, "_raw_predict", None)
        if raw_predict is None:
            return None
        return lambda rows: _expit(raw_predict(rows, n_threads=1).ravel())
    mixture = getattr(getattr(estimator, "model_", None), "weights_", None)
    hypotheses = getattr(getattr(estimator, "model_", None), "_hs", None)
    if type(estimator).__name__ == "ExponentiatedGradientReduction" and mixture is not None and hypotheses is not None:
        terms = [(float(w), hypotheses[t]) for t, w in mixture.items() if w != 0]
        return lambda rows: np.clip(sum(w * np.asarray(h(rows), dtype=float) for w, h in terms), 0.0, 1.0)
    return None


def _expit(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return np.asarray(expit(z), dtype=float)


class RowScorer:
    """A compiled pipeline (see `row_scorer`): `row(values)` scores one row, `many(rows)` a few rows in one call
    of the estimator (the reason codes' swaps); a row it cannot compute is scored by the pipeline."""

    def __init__(self, prepare: Vector, final: Callable[[np.ndarray], np.ndarray],
                 pipeline: Callable[[list[dict[str, Any]]], np.ndarray]) -> None:  # fmt: skip
        self.prepare, self.final, self.pipeline = prepare, final, pipeline

    def compiled(self, rows: list[dict[str, Any]]) -> np.ndarray:
        scores = self.final(np.array([self.prepare(values) for values in rows], dtype=float))
        if np.isnan(scores).any():
            raise ValueError("a missing value the model does not impute")
        return scores

    def many(self, rows: list[dict[str, Any]]) -> list[float]:
        try:
            return [float(v) for v in self.compiled(rows)]
        except (ValueError, TypeError):
            return [float(v) for v in self.pipeline(rows)]

    def __call__(self, values: dict[str, Any]) -> float:
        return self.many([values])[0]


def _categories(prep: Any) -> dict[str, list[Any]]:
    """Each categorical input's categories, from the one-hot encoders of a fitted ColumnTransformer."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    found: dict[str, list[Any]] = {}
    for _, transformer, cols in prep.transformers_:
        encoder = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
        if isinstance(encoder, OneHotEncoder):
            found.update({c: list(cats) for c, cats in zip(cols, encoder.categories_, strict=True)})
    return found


def _probe_rows(reference: dict[str, Any], categories: dict[str, list[Any]], columns: list[str],
                probes: int) -> list[dict[str, Any]]:  # fmt: skip
    """Rows to check a compiled form against the pipeline: the reference applicant with every number moved over
    [0, 3] times its reference (ints stay ints) and every category cycled through its encoder's categories."""
    rows = []
    for i in range(probes):
        row: dict[str, Any] = {}
        for col in columns:
            value = reference[col]
            if col in categories:
                options = categories[col]
                row[col] = options[(i + len(col)) % len(options)]
            elif isinstance(value, int | float) and not isinstance(value, bool):
                factor = ((i * 7919 + sum(map(ord, col))) % 31) / 10
                moved = value * factor + (i % 5) - 2
                row[col] = int(round(moved)) if isinstance(value, int) else float(moved)
            else:
                row[col] = value
        rows.append(row)
    return rows


def _agrees(scorer: RowScorer, expected: Callable[[list[dict[str, Any]]], np.ndarray],
            rows: list[dict[str, Any]]) -> bool:  # fmt: skip
    """Whether the compiled form gives the pipeline's scores to 1e-9 on `rows` (a batch the pipeline refuses,
    e.g. an unseen category of an encoder that errors on one, must be refused by the compiled form too)."""
    try:
        scores = expected(rows)
    except (ValueError, TypeError):
        for row in rows:
            try:
                scorer.compiled([row])
            except (ValueError, TypeError):
                continue
            return False
        return True
    one_by_one = [float(scorer.compiled([r])[0]) for r in rows]
    together = scorer.compiled(rows)
    return bool(np.abs(np.array(one_by_one) - scores).max() <= 1e-9 and np.abs(together - scores).max() <= 1e-9)


def row_scorer(model: Any, columns: list[str], numeric: list[str], nullable: Collection[str],
               reference: dict[str, Any], probes: int = 64) -> RowScorer | None:  # fmt: skip
    """Any of Fairway's candidate pipelines (its preprocessor, then logistic regression, gradient boosting or
    ExponentiatedGradient) as a plain function of one row, for models without the compiled linear form (an
    imputing preprocessor, a non-linear or mitigated estimator): the ColumnTransformer becomes arithmetic and
    table look-ups on the row's values, the estimator is called on the 1 x n numpy row (`_final_scorer`).
    predict_proba of such a pipeline on a one-row DataFrame costs ~2-10 ms; this well under 1 ms.

    Used only if it agrees with `predict_scores` (the pipeline's predict_proba, clipped) to 1e-9 on probe rows
    around the reference applicant (`_probe_rows`), the same rows with each `nullable` input missing and with
    each category unseen in training; checked once, at start. A row it cannot compute (a missing value of an
    input that is not nullable: NaN) is scored by the pipeline, as today."""
    from sklearn.pipeline import Pipeline

    from fairway.training import predict_scores

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    prep = model.steps[0][1]
    prepare, final = _prepared(prep, columns), _final_scorer(model.steps[1][1])
    if prepare is None or final is None:
        return None

    def expected(rows: list[dict[str, Any]]) -> np.ndarray:
        return predict_scores(model, missing_as_nan(pd.DataFrame(rows, columns=columns), numeric))

    scorer = RowScorer(prepare, final, expected)
    categories = _categories(prep)
    rows = _probe_rows(reference, categories, columns, probes)
    checks = [rows, *([{**r, c: None} for r in rows[:8]] for c in columns if c in nullable),
              *([{**r, c: "\x00never-seen"} for r in rows[:8]] for c in categories)]  # fmt: skip
    try:
        if not all(_agrees(scorer, expected, batch) for batch in checks):
            return None
    except (ValueError, TypeError, KeyError):
        return None
    return scorer


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
        self.reads = self._direct_reads()
        view = self.uc.feature(self.columns[0]).view
        self.ttl = timedelta(days=self.uc.view(view).ttl_days)
        self.log = DecisionLog(decision_log_url(self.uc))
        self.key = pseudonym_key()  # read once, not per request
        self.fast = linear_scorer(model, self.columns)
        # a model without the linear form: its one-row compiled form (fairway.serving.row_scorer), if it agrees
        self.compiled = self.fast or row_scorer(model, self.columns, self.numeric, self.nullable, metadata["reference"])
        self.explain = ReasonCodes(self.columns, metadata["reference"], self.score_rows, self.compiled,
                                   score_one_missing=self.fast is None and self.compiled is not None)  # fmt: skip
        form = "the compiled linear form" if self.fast else "the one-row compiled form" if self.compiled else None
        log.info("scoring with %s", form or "the model's predict_proba")
        # called after each committed record with (endpoint, answer, seconds the decision-log write took): metrics
        self.observe: Callable[[str, dict[str, Any], float], None] | None = None

    def _direct_reads(self) -> list[tuple[Any, list[str]]] | None:
        """The feature views of the model-input feature service and the features read from each, resolved once
        from the registry, so that a request reads the online store directly (the provider's `online_read`, what
        `get_online_features` calls after resolving the service, converting and validating the request: ~0.2 ms
        a call, plus a synchronous registry reload once its cache_ttl_seconds expire). None (the request then goes
        through `get_online_features`) when the service has a projection this does not reproduce (an alias, a
        view that is not a plain feature view) or the entity key is not one string join key."""
        from feast import FeatureView
        from feast.value_type import ValueType

        key = self.uc.entity.join_key
        reads = []
        for projection in self.feature_service.feature_view_projections:
            try:
                view = self.store.get_feature_view(projection.name)
            except Exception:  # an on-demand or stream view: left to get_online_features
                return None
            if type(view) is not FeatureView or projection.name_alias or projection.join_key_map:
                return None
            if view.join_keys != [key] or view.entity_columns[0].dtype.to_value_type() != ValueType.STRING:
                return None
            reads.append((view, [f.name for f in projection.features]))
        served = [name for _, names in reads for name in names]
        return reads if set(self.columns) <= set(served) and len(served) == len(set(served)) else None

    def _online_response(self, customer_id: str) -> dict[str, list[Any]]:
        """What `get_online_features(...).to_dict(include_event_timestamps=True)` gives for one customer: each
        feature's value (None when absent or null) and, as `<feature>__ts`, its row's event time in whole seconds
        (0 when the view has no row for the customer)."""
        key = self.uc.entity.join_key
        if self.reads is None:
            return dict(
                self.store.get_online_features(features=self.feature_service, entity_rows=[{key: customer_id}])
                .to_dict(include_event_timestamps=True)
            )  # fmt: skip
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
        from feast.protos.feast.types.Value_pb2 import Value as ValueProto
        from feast.type_map import feast_value_type_to_python_type
        from google.protobuf.timestamp_pb2 import Timestamp

        entity = EntityKeyProto(join_keys=[key], entity_values=[ValueProto(string_val=str(customer_id))])
        provider = self.store._get_provider()
        response: dict[str, list[Any]] = {key: [customer_id]}
        for view, names in self.reads:
            [(event_ts, data)] = provider.online_read(self.store.config, view, [entity], names)
            seconds = 0
            if event_ts is not None:
                stamp = Timestamp()
                stamp.FromDatetime(event_ts)
                seconds = stamp.seconds
            for name in names:
                found = data.get(name) if data is not None else None
                response[name] = [None if found is None else feast_value_type_to_python_type(found)]
                response[f"{name}__ts"] = [seconds]
        return response

    def online_features(self, customer_id: str) -> tuple[dict[str, Any], datetime | None]:
        """The customer's model inputs from the online store and the event time of the oldest of them.

        An input is found when the store has a row of its view for the customer (an event time); a found nullable
        input may be None. Refused (UnknownCustomer): a customer without any row, or lacking an input that is not
        nullable or whose view has no row for them."""
        response = self._online_response(customer_id)
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
        if self.compiled is not None:
            return self.compiled(values)  # in [0, 1], as predict_scores
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
        started = time.perf_counter()
        try:
            self.log.append(record)
        except Exception as error:  # any database failure: the decision was not recorded
            earlier = self._earlier(str(answer["request_id"]), error)
            if earlier is not None:
                raise RequestIdReused(str(answer["request_id"]), earlier) from None
            # the request id and the error's type only: a database error's text carries the row's values
            log.error("decision %s not recorded: %s", answer["request_id"], type(error).__name__)
            raise DecisionNotRecorded(f"the decision could not be recorded ({type(error).__name__})") from error
        if self.observe is not None:
            self.observe(endpoint, answer, time.perf_counter() - started)
        return answer

    def _earlier(self, request_id: str, error: Exception) -> dict[str, Any] | None:
        """The recorded decision a failed append collided with (a duplicate request id), else None."""
        import sqlalchemy as sa

        if not isinstance(error, sa.exc.IntegrityError):
            return None
        try:
            return self.log.earlier(request_id)
        except Exception:  # the log cannot be read either: the append's failure is what is reported
            return None

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

    def __init__(self, usecase: UseCase | str, version: str, model_folder: Path | None, every: float = 2.0) -> None:
        from fairway.verification import serving_refusal

        # resolved once: given by name, every check parsed the use case's YAML again (~45 of its ~48 ms)
        self.usecase, self.version, self.every = resolve(usecase), str(version), every
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


# --- following the champion: a running service switches to the version the ledger names -------------------


def packaged_model(uc: UseCase, version: str) -> str | None:
    """The BentoML model tag packaging imported for `version` (the newest, if packaged again), None if none."""
    import bentoml

    found = [m for m in bentoml.models.list(uc.name) if str(m.info.metadata.get("mlflow_version")) == str(version)]
    return str(max(found, key=lambda m: m.creation_time).tag) if found else None


def champion_to_follow(usecase: UseCase | str, holding: str, inputs: list[dict[str, Any]]) -> tuple[str | None, str]:
    """Whether a service holding version `holding` (request schema `inputs`) can switch to the promotion ledger's
    serving champion: (the BentoML model tag to load, why) or (None, why not). A stopped or unchanged champion is
    not followed (the refusal stands); a champion not packaged yet is followed once the package step has run."""
    from fairway import ledger

    uc = resolve(usecase)
    state = ledger.state(uc.model_name)
    if state.serving is None or state.serving == str(holding) or state.stopped is not None:
        return None, "nothing to follow"
    tag = packaged_model(uc, state.serving)
    if tag is None:
        return None, (f"{uc.model_name} v{state.serving} is the promotion ledger's champion and not packaged yet: this "
                      "service switches to it once fairness_gate's package step has run")  # fmt: skip
    import bentoml

    if bentoml.models.get(tag).info.metadata["inputs"] != list(inputs):
        return None, (f"{uc.model_name} v{state.serving} takes other inputs than the request schema this service "
                      f"started with: restart the service with its bento")  # fmt: skip
    return tag, f"switching from v{holding} to v{state.serving} ({tag})"


@dataclass
class Followed:
    """A champion loaded for a running service: what it swaps in at once."""

    tag: str
    metadata: dict[str, Any]
    scorer: OnlineScorer
    watch: ChampionWatch


def load_followed(usecase: UseCase | str, tag: str) -> Followed | str:
    """Load the packaged model `tag` as the service loads it at start (its files hashed against the ledger and its
    gate report checked); the refusal's reason instead when its evidence does not hold."""
    import bentoml
    import mlflow.sklearn

    stored = bentoml.models.get(tag)
    metadata = dict(stored.info.metadata)
    folder = Path(stored.path_of("mlflow_model"))
    watch = ChampionWatch(usecase, str(metadata["mlflow_version"]), folder, every=0.0)
    if watch.reason is not None:
        return watch.reason
    return Followed(tag, metadata, OnlineScorer(str(metadata["usecase"]), mlflow.sklearn.load_model(str(folder)),
                                                metadata), watch)  # fmt: skip
