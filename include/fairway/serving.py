"""Online scoring behind the BentoML service: Feast online lookup, one-row scoring, decision records.

`OnlineScorer` is built once per service worker with the packaged model and its metadata. Per request it does
the least it can: one Feast online read through the model-input feature service (by customer id), a one-row
frame for the model, and one committed row in the decision log.

Stale features: a customer's online features older than the view's TTL are *flagged*, not refused: the answer
and the decision record carry `features_event_time` and `features_stale: true`, so a deployer's policy can
decline to act on them; refusing would make the service useless between two materializations that are late.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from fairway.config import resolve

log = logging.getLogger(__name__)


class UnknownCustomer(LookupError):
    """The customer has no features in the online store."""


class DecisionNotRecorded(RuntimeError):
    """The decision log refused the record: the decision must not be reported as made."""


class OnlineScorer:
    """Scores customers (features from Feast) and applicants (features given) with one packaged model."""

    def __init__(self, usecase: str, model: Any, metadata: dict[str, Any]) -> None:
        from fairway.features.store import get_store
        from fairway.records import DecisionLog, decision_log_url

        self.uc = resolve(usecase)
        self.model = model
        self.columns = [spec["name"] for spec in metadata["inputs"]]
        self.threshold = float(metadata["decision_threshold"])
        self.model_name = str(metadata["mlflow_model_name"])
        self.model_version = str(metadata["mlflow_version"])
        self.store = get_store(self.uc)
        self.service_name = self.uc.service("model_input").name
        self.feature_service = self.store.get_feature_service(self.service_name)
        view = self.uc.feature(self.columns[0]).view
        self.ttl = timedelta(days=self.uc.view(view).ttl_days)
        self.log = DecisionLog(decision_log_url(self.uc))

    def online_features(self, customer_id: str) -> tuple[dict[str, Any], datetime | None]:
        """The customer's model inputs from the online store and the event time of the oldest of them."""
        key = self.uc.entity.join_key
        response = self.store.get_online_features(
            features=self.feature_service, entity_rows=[{key: customer_id}]
        ).to_dict(include_event_timestamps=True)
        values = {c: response[c][0] for c in self.columns}
        missing = [c for c, v in values.items() if v is None]
        if len(missing) == len(values):
            raise UnknownCustomer(f"customer '{customer_id}' has no features in the online store")
        if missing:
            raise UnknownCustomer(f"customer '{customer_id}' lacks online features {missing}")
        seconds = [response[f"{c}__ts"][0] for c in self.columns if response.get(f"{c}__ts", [0])[0]]
        event_time = datetime.fromtimestamp(min(seconds), UTC) if seconds else None
        return values, event_time

    def score(self, values: dict[str, Any]) -> float:
        frame = pd.DataFrame({c: [values[c]] for c in self.columns})
        return float(min(max(self.model.predict_proba(frame)[0, 1], 0.0), 1.0))

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
        }
        record = {**answer, "usecase": self.uc.name, "endpoint": endpoint, "subject": subject,
                  "input_fingerprint": input_fingerprint([values[c] for c in self.columns])}  # fmt: skip
        try:
            self.log.append(record)
        except Exception as error:  # any database failure: the decision was not recorded
            log.error("decision %s not recorded: %s", answer["request_id"], error)
            raise DecisionNotRecorded(f"the decision could not be recorded ({type(error).__name__})") from error
        return answer

    def predict_customer(self, customer_id: str, request_id: str | None = None) -> dict[str, Any]:
        from fairway.records import pseudonym

        values, event_time = self.online_features(customer_id)
        return self.decide("predict", values, pseudonym(customer_id), request_id, event_time)

    def predict_features(self, values: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        return self.decide("predict_features", values, None, request_id)
