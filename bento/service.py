"""BentoML service of the approved (champion) model.

The model is the MLflow version the fairness gate promoted, imported into the BentoML model store by the
packaging step; its tag is pinned as a bento argument (`model_tag`), so a bento always serves the version it
was built for. The input schema (model inputs, types, allowed values, ranges) travels in the model's
metadata: requests are validated strictly against it, and protected attributes are not accepted.

- POST /predict           {"customer_id": "C0000001"}: model inputs from the Feast online store
- POST /predict_features  {"applicant": {...model inputs...}}: explicit inputs (new applicants, what-if)
- GET  /model             name, version, approval record, gate decision, fairness metrics, documentation

Missing values: an applicant names every model input. An input the use case declares `nullable` takes JSON null
(the value is unknown; the model's pipeline imputes it, as in training); it is still required, so a forgotten or
misspelt field is a 400, not a silent missing value. Null for an input that is not nullable is a 400 naming it.
/predict scores a customer whose nullable inputs are null in the online store the same way; a customer lacking
an input that is not nullable is a 404. A reason about a missing input reports its value as null.

Before validation, fairway.guard refuses with 400 (a JSON object with `error`, as every error here): numbers that
are not finite (NaN, Infinity, 1e400), JSON nested deeper than 8 levels, a header that matters given twice, an
X-Request-Id longer than 64 characters or with other characters than letters, digits and . _ : -. A request id
that already names a decision is a 409 naming the earlier decision. /docs.json names the model, its approval and
every status each API answers.

Only the promotion ledger's serving champion answers (fairway.serving.ChampionWatch): the packaged model files
must hash to the ledger's record, and a stop (model_control, `fairway stop`) answers every /predict* and /readyz
with 503 and the reason within seconds, without a restart. The ledger is read at start and then every second by
a background thread, never on the request path (a request reads it itself only if that answer is over 5 s old).
When the ledger names another champion (an approval, a rollback), the service follows it without a restart: once
that version is packaged in the BentoML store the service reads (BENTOML_HOME), the thread loads and checks it as
at start and swaps it in (FairwayModel.follow); meanwhile it answers 503. Every answer names its model_version.

Latency (bench/bench_serving.py): the APIs are `async def`. With local stores (SQLite decision log and online
store) they do their short synchronous work inline on the event loop (one worker: a threadpool hop per request
only added GIL hand-offs, about half the throughput); with a network database or Redis the work runs in a worker
thread, so that one slow write does not hold every request. The
objects the libraries leave after loading, and again those the first FREEZE_AFTER requests leave, are frozen out
of the garbage collector (`gc.freeze()`), whose full collections otherwise stopped every request for 100-400 ms.

Every decision answers with its reason codes: the (up to) three model inputs that raise the score most compared
with the version's reference applicant (fairway.explanations).
- BentoML's own /livez, /readyz, /metrics (Prometheus; Fairway's own metrics: ServiceMetrics)

Every answer is a committed row in the decision log (fairway.records.DecisionLog); when the row cannot be
written the request fails with 503 and no decision is returned.

Logs hold no request values and no customer id: a refused or failed request is logged by its request id
(X-Request-Id, else a new one) and the error's type (`RequestIdOnly`).
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import os
import threading
import time
import uuid
from contextvars import ContextVar
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import bentoml
from pydantic import BaseModel, Field

# in a bento, `fairway` is the package it carries (src/fairway), which finds the carried feature repo and use-case
# config beside it (fairway.config, fairway.packaging.build_context)
from fairway.guard import BadRequest, documented_openapi, parse_json, repeated_header, request_id_problem
from fairway.serving import applicant_model

MAX_BODY_BYTES = 16 * 1024
# when set, /predict, /predict_features and /model require the header `X-API-Key: <key>` (health and metrics do not)
API_KEY = os.environ.get("FAIRWAY_SERVICE_API_KEY", "")
FIELDS = {"/predict": {"customer_id"}, "/predict_features": {"applicant"}}
# the answer that replaces BentoML's for a failed request, as (status, body): BentoML answers every 5xx with a
# generic text and has no 409; the guard sends this instead
FAILURE: ContextVar[dict[str, Any] | None] = ContextVar("fairway_failure", default=None)
# the request id of the request being answered (the X-Request-Id header, else a new one): what the logs name
REQUEST_ID: ContextVar[str | None] = ContextVar("fairway_request_id", default=None)


class RequestIdOnly(logging.Filter):
    """BentoML logs a refused or failed request with its traceback (`log_exception`), whose text carries the
    request's values: pydantic's `input_value`, the customer id in an error message. This keeps the log's own
    message (path and method), the request id and the error's type, and drops the rest. Its access log names
    only the client address, method, path, status, content type and length and the latency (never the body)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            error = record.exc_info[1] if record.exc_info else None
            kind = type(error).__name__ if error is not None else "error"
            record.msg = f"{record.getMessage()} (request {REQUEST_ID.get() or '-'}): {kind}"
            record.args = None
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


# the loggers that log a request's exception: BentoML's API wrapper, its new-style app, the ASGI server
for _name in ("bentoml._internal.server.http_app", "_bentoml_impl.server.app", "uvicorn.error"):
    logging.getLogger(_name).addFilter(RequestIdOnly())


class ServiceArgs(BaseModel):
    model_tag: str


args = bentoml.use_arguments(ServiceArgs)
MODEL = bentoml.models.BentoModel(args.model_tag)
_STORED = MODEL.stored
if _STORED is None:
    raise RuntimeError(f"model {args.model_tag} is not in the BentoML store: the fairness_gate DAG packages it")
META: dict[str, Any] = dict(_STORED.info.metadata)
INPUTS = META["inputs"]


# strict: every model input with its type, range and allowed values, null only for a nullable one
Applicant = applicant_model(INPUTS)


class Reason(BaseModel):
    feature: str
    value: int | float | str | bool | None = Field(description="the person's value (null: missing)")
    reference: int | float | str | bool = Field(description="the reference applicant's value")
    effect: float = Field(description="score minus the score with this input at the reference value")


class Decision(BaseModel):
    request_id: str
    score: float
    decision: Literal["approve", "decline"]
    threshold: float
    model_name: str
    model_version: str
    features_event_time: str | None = Field(None, description="event time of the oldest online feature used")
    features_stale: bool | None = Field(None, description="true when that time is older than the view's TTL")
    reasons: list[Reason] = Field(
        default_factory=list, description="reason codes: the inputs that raise the score most, largest first"
    )


_WATCH: list[Any] = []  # this worker's fairway.serving.ChampionWatch, made at start (or on the first request)
_FOLLOW: list[Any] = []  # this worker's FairwayModel.follow, which the refresher calls while the worker is refused
# the ledger is read off the request path: a thread refreshes the answer every REFRESH_SECONDS; a request uses it
# while it is at most STALE_SECONDS old, else (the thread stopped or stuck) checks the ledger itself
REFRESH_SECONDS, STALE_SECONDS = 1.0, 5.0
# the garbage collector's second freeze, after this many answers: the objects the first requests leave (lazily
# imported modules, caches) made each later full collection a pause of every request of 70-300 ms
FREEZE_AFTER = 200
# a champion whose packaged evidence did not check out is loaded again at most this often (seconds)
RETRY_REFUSED = 60.0
_REFUSAL: list[tuple[float, str | None]] = []  # [(time.monotonic() of the check, its answer)]


def _watch() -> Any:
    if not _WATCH:
        from fairway.serving import ChampionWatch

        # every=0: each call reads the ledger (the refresher paces the calls)
        folder = Path(_STORED.path_of("mlflow_model"))
        _WATCH.append(ChampionWatch(META["usecase"], META["mlflow_version"], folder, every=0.0))
    return _WATCH[0]


def _refresh_refusal() -> str | None:
    checked = time.monotonic()
    answer = _watch().refusal()
    _REFUSAL[:] = [(checked, answer)]
    return answer


def _refresher(every: float) -> None:
    while True:
        try:
            if _refresh_refusal() is not None and _FOLLOW:
                _FOLLOW[0]()  # another champion: switch to it when it is packaged
        except Exception:  # ChampionWatch already turns a failed read into a refusal; keep the thread alive
            logging.getLogger(__name__).exception("refreshing the serving refusal failed")
        time.sleep(every)


def start_refresher(every: float = REFRESH_SECONDS) -> None:
    """Check the ledger now (hashing the packaged model files) and then every `every` seconds in a daemon
    thread, so that no request waits for the ledger."""
    _refresh_refusal()
    threading.Thread(target=_refresher, args=(every,), name="fairway-refusal", daemon=True).start()


def refusal() -> str | None:
    """Why this worker must not decide now: the version is stopped, no longer the promotion ledger's champion,
    or its files are not the approved ones (checked at start, then every REFRESH_SECONDS off the request path;
    a request checks the ledger itself when the last check is older than STALE_SECONDS)."""
    if _REFUSAL:
        checked, answer = _REFUSAL[0]
        if time.monotonic() - checked <= STALE_SECONDS:
            return answer
    return _refresh_refusal()


def model_info() -> dict[str, Any]:
    """What GET /model answers: which model, who approved it, the gate's decision and numbers."""
    keys = ("mlflow_model_name", "mlflow_version", "mlflow_run_id", "usecase", "approval", "gate_decision",
            "gate_summary", "gate_report_sha256", "fairness", "documentation", "decision_threshold")  # fmt: skip
    refused = refusal()
    return {**{key: META[key] for key in keys if key in META}, "serving": refused is None, "refused": refused}


_OPENAPI: list[dict[str, Any]] = []
# the statuses each API can answer besides 200 (declared in the OpenAPI document)
STATUSES = {"/predict": {400, 401, 404, 405, 409, 413, 415, 500, 503},
            "/predict_features": {400, 401, 405, 409, 413, 415, 500, 503}}  # fmt: skip


def openapi() -> dict[str, Any]:
    """The service's OpenAPI document (/docs.json, which the page at / shows): BentoML's, with the model that
    answers, every status and GET /model (fairway.guard.documented_openapi); made once."""
    if not _OPENAPI:
        _OPENAPI.append(documented_openapi(FairwayModel.openapi_spec.asdict(), META, STATUSES))
    return _OPENAPI[0]


def _unknown_fields(data: Any, allowed: set[str]) -> str | None:
    """The reason to refuse a JSON object with fields the endpoint does not take (None: nothing unknown, or not
    an object, which the API's own validation answers)."""
    if not isinstance(data, dict) or not set(data) - allowed:
        return None
    unknown = sorted(set(data) - allowed)
    protected = [f for f in unknown if f in META.get("protected_attributes", [])]
    if protected:
        return f"protected attribute(s) {protected} are neither needed nor accepted (data minimisation)"
    return f"unknown field(s) {unknown}: this endpoint takes {sorted(allowed)}"


def error_body(status: int, raw: bytes) -> dict[str, Any]:
    """BentoML's error answer as this service's one shape, a JSON object whose `error` says what is wrong: its
    404 is a list of one object, its validation error names no field (the fields are in `detail`, here as
    location, message and type)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return {"error": raw.decode(errors="replace")[:500] or HTTPStatus(status).phrase}
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        return {"error": str(data)[:500]}
    detail = data.get("detail")
    if isinstance(detail, list) and detail and all(isinstance(d, dict) for d in detail):
        kept = [{k: d[k] for k in ("loc", "msg", "type") if k in d} for d in detail]
        named = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}" for d in kept)
        return {"error": named, "detail": kept}
    return {"error": str(data.get("error") or HTTPStatus(status).phrase)}


class Conflict(bentoml.exceptions.BentoMLException):
    """A request id that already names a decision (409)."""

    error_code = HTTPStatus.CONFLICT


def _replace_answer(status: int, body: dict[str, Any]) -> None:
    failure = FAILURE.get()
    if failure is not None:
        failure["answer"] = (status, body)


async def _respond(send: Any, status: int, body: dict[str, Any], allow: str | None = None) -> None:
    """A JSON answer; `allow`: the methods a 405 names in its Allow header (RFC 9110)."""
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class RequestGuard:
    """ASGI middleware in front of the APIs: the API key (401), GET /model, JSON only (415), bodies up to
    MAX_BODY_BYTES (413), then fairway.guard's checks (400): headers that matter given once, a request id of at
    most 64 safe characters (refused, never cut), JSON of bounded depth with finite numbers only."""

    def __init__(self, app: Any, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        repeated = repeated_header(scope["headers"])
        given_id = dict(scope["headers"]).get(b"x-request-id")
        bad_id = request_id_problem(given_id)
        REQUEST_ID.set(given_id.decode("latin-1") if given_id and not bad_id else uuid.uuid4().hex)
        if repeated or (bad_id and path in FIELDS):
            return await _respond(send, 400, {"error": repeated or bad_id})
        if API_KEY and (path == "/model" or path in FIELDS):
            given = dict(scope["headers"]).get(b"x-api-key", b"")
            if not hmac.compare_digest(given, API_KEY.encode()):
                return await _respond(send, 401, {"error": "missing or wrong X-API-Key"})
        if path in FIELDS or path == "/readyz":
            refused = refusal()
            if refused:
                return await _respond(send, 503, {"error": refused})
        if path == "/docs.json" and method == "GET":
            return await _respond(send, 200, openapi())
        if path == "/model":
            if method != "GET":
                return await _respond(send, 405, {"error": "use GET /model"}, allow="GET")
            return await _respond(send, 200, model_info())
        if path not in FIELDS:
            return await self.app(scope, receive, send)
        if method != "POST":
            return await _respond(send, 405, {"error": f"use POST {path}"}, allow="POST")
        headers = dict(scope["headers"])
        media = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if media != b"application/json":
            return await _respond(send, 415, {"error": f"content type {media.decode(errors='replace')!r} is not "
                                              "accepted: send application/json"})  # fmt: skip
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await _respond(send, 413, {"error": f"request body larger than {self.max_body} bytes"})
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return await _respond(send, 413, {"error": f"request body larger than {self.max_body} bytes"})
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            data = parse_json(body)
        except BadRequest as error:
            return await _respond(send, 400, {"error": str(error)})
        unknown = _unknown_fields(data, FIELDS[path])
        if unknown:
            return await _respond(send, 400, {"error": unknown})
        replayed = False
        failure: dict[str, Any] = {}
        FAILURE.set(failure)

        async def send_with_reason(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                if failure.get("answer"):
                    failure["replaced"] = True
                    return await _respond(send, *failure["answer"])
                failure["status"], failure["body"] = message["status"], b""  # BentoML's error: made one shape
                return None
            if failure.get("replaced"):
                return None  # BentoML's own body, already replaced
            if "status" in failure and message["type"] == "http.response.body":
                failure["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    return await _respond(send, failure["status"], error_body(failure["status"], failure["body"]))
                return None
            return await send(message)

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send_with_reason)


SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
WRITE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """The service's Prometheus metrics (on /metrics beside BentoML's): decisions by endpoint and outcome, the
    score distribution, answers made with stale features, the decision-log write latency, and which model
    version answers (an info gauge, 1 for the version serving, 0 for one it served before)."""

    def __init__(self) -> None:
        metrics = bentoml.metrics
        self.decisions = metrics.Counter(name="fairway_decisions", labelnames=["endpoint", "decision"],
                                         documentation="Decisions answered, by endpoint and outcome")  # fmt: skip
        self.scores = metrics.Histogram(name="fairway_score", labelnames=["endpoint"], buckets=SCORE_BUCKETS,
                                        documentation="Scores of the decisions answered")  # fmt: skip
        self.stale = metrics.Counter(name="fairway_stale_features", labelnames=["endpoint"],
                                     documentation="Decisions made with online features older than their TTL")  # fmt: skip
        self.write = metrics.Histogram(name="fairway_decision_log_write_seconds", buckets=WRITE_BUCKETS,
                                       documentation="Seconds to commit a decision's record")  # fmt: skip
        self.model = metrics.Gauge(name="fairway_model_info", labelnames=["usecase", "model_name", "model_version"],
                                   documentation="1 for the model version that answers", multiprocess_mode="livemax")  # fmt: skip

    def serving(self, meta: dict[str, Any], before: str | None = None) -> None:
        labels = {"usecase": str(meta["usecase"]), "model_name": str(meta["mlflow_model_name"])}
        if before is not None:
            self.model.labels(**labels, model_version=before).set(0)
        self.model.labels(**labels, model_version=str(meta["mlflow_version"])).set(1)

    def observe(self, endpoint: str, answer: dict[str, Any], write_seconds: float) -> None:
        self.write.observe(write_seconds)
        self.scores.labels(endpoint=endpoint).observe(float(answer["score"]))
        if answer.get("features_stale"):
            self.stale.labels(endpoint=endpoint).inc()


@bentoml.service(name=f"fairway_{META['usecase']}", traffic={"timeout": 10})
class FairwayModel:
    """Scores customers and applicants with the champion model; one instance per worker."""

    bento_model = MODEL

    def __init__(self) -> None:
        import mlflow.sklearn

        from fairway.serving import OnlineScorer

        classifier = mlflow.sklearn.load_model(self.bento_model.path_of("mlflow_model"))
        self.scorer = OnlineScorer(META["usecase"], classifier, META)
        # a decision's work runs inline on the event loop when the decision log and the online store are local
        # files (tens of microseconds: a thread hop would cost more); with a network database or Redis it runs in
        # a worker thread, so that one slow write or lookup does not hold every other request and /livez
        online_store = str(getattr(self.scorer.store.config.online_store, "type", ""))
        self.inline = self.scorer.log.url.startswith("sqlite") and online_store.endswith(
            ("sqlite", "SqliteOnlineStore")
        )
        # created here, once per worker (importing the module, as `bentoml build` does, must not register them)
        self.metrics = ServiceMetrics()
        self.metrics.serving(META)
        self.scorer.observe = self.metrics.observe
        self.waiting, self.refused_at = "", dict[str, float]()
        _FOLLOW[:] = [self.follow]
        start_refresher()
        # the loaded libraries (MLflow, Feast, scikit-learn, SciPy) leave ~10^6 long-lived objects: a full
        # collection walking them stalled every request for 200-400 ms; frozen, collections see only new objects
        gc.collect()
        gc.freeze()
        self.answered = 0

    def follow(self) -> None:
        """Switch to the promotion ledger's serving champion when it is another version packaged in this BentoML
        store with the same inputs (fairway.serving.champion_to_follow): loaded and checked in the refresher's
        thread, as at start, then swapped in at once; until then the refusal stands (503 with its reason)."""
        global META
        from fairway.serving import champion_to_follow, load_followed

        log = logging.getLogger(__name__)
        tag, why = champion_to_follow(META["usecase"], META["mlflow_version"], INPUTS)
        if tag is None or time.monotonic() - self.refused_at.get(tag, -RETRY_REFUSED) < RETRY_REFUSED:
            if why != self.waiting:
                log.info("not switching: %s", why)
                self.waiting = why
            return
        loaded = load_followed(META["usecase"], tag)
        if isinstance(loaded, str):  # its files or gate report are not the approved ones (or the ledger unread)
            log.error("not switching to %s: %s (tried again in %.0f s)", tag, loaded, RETRY_REFUSED)
            self.refused_at[tag] = time.monotonic()
            return
        held = META["mlflow_version"]
        loaded.scorer.observe = self.metrics.observe
        self.scorer = loaded.scorer
        _WATCH[:] = [loaded.watch]
        META = loaded.metadata
        _OPENAPI.clear()
        _REFUSAL[:] = [(time.monotonic(), None)]
        self.metrics.serving(META, held)
        log.info("now serving %s v%s (%s), was v%s", META["mlflow_model_name"], META["mlflow_version"], tag, held)

    async def _answer(self, endpoint: str, ctx: bentoml.Context, call: Any) -> Decision:
        from fairway.serving import DecisionNotRecorded, RequestIdReused, UnknownCustomer

        request_id = REQUEST_ID.get() or uuid.uuid4().hex  # the guard checked a client's id
        try:
            answer = call(request_id) if self.inline else await asyncio.to_thread(call, request_id)
        except UnknownCustomer as error:
            raise bentoml.exceptions.NotFound(str(error)) from None
        except RequestIdReused as error:
            _replace_answer(409, {"error": str(error), "request_id": error.request_id, "earlier": error.earlier})
            raise Conflict(str(error)) from None
        except DecisionNotRecorded as error:
            reason = f"{error}: no decision was made, retry later"
            _replace_answer(503, {"error": reason})
            raise bentoml.exceptions.ServiceUnavailable(reason) from None
        self.metrics.decisions.labels(endpoint=endpoint, decision=answer["decision"]).inc()
        self.answered += 1
        if self.answered == FREEZE_AFTER:
            gc.freeze()  # what the first requests built (lazy imports, caches, schemas) also leaves the collector
        event_time = answer["features_event_time"]
        return Decision(**{**answer, "features_event_time": event_time.isoformat() if event_time else None})

    @bentoml.api
    async def predict(
        self, ctx: bentoml.Context, customer_id: str = Field(..., min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    ) -> Decision:
        """Score an existing customer with the model inputs held in the Feast online store (404 if unknown)."""
        return await self._answer("predict", ctx, lambda rid: self.scorer.predict_customer(customer_id, rid))

    @bentoml.api
    async def predict_features(self, ctx: bentoml.Context, applicant: Applicant) -> Decision:  # type: ignore[valid-type]
        """Score explicit model inputs (a new applicant, or a what-if); protected attributes are refused."""
        values = applicant.model_dump()  # type: ignore[attr-defined]
        return await self._answer("predict_features", ctx, lambda rid: self.scorer.predict_features(values, rid))


FairwayModel.add_asgi_middleware(RequestGuard)
