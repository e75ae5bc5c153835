"""What the online service checks in a request before any model or store sees it: headers given once, a usable
request id, and a JSON body of bounded depth holding finite numbers only.

Each check answers None (fine) or the message of a 400. Python's `json` reads `NaN`, `Infinity` and `1e400` (as
inf) and recurses once per nesting level; a request is refused for any of them instead, quickly, before the
service's own validation runs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

# the headers whose meaning a second copy would change: which one a framework reads is its own choice (Starlette
# the last content type, this guard the first), so a request that names one twice is refused
SINGLE_HEADERS = (b"content-type", b"content-length", b"transfer-encoding", b"x-request-id", b"x-api-key",
                  b"authorization", b"host")  # fmt: skip
MAX_REQUEST_ID = 64  # the decision log's column: a longer id is refused, never cut (two ids would become one)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]+")
MAX_DEPTH = 8  # objects and arrays inside each other: the deepest request body the service takes is 2


class BadRequest(ValueError):
    """A request the service refuses with 400 and this message."""


def repeated_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The message for a request naming one of SINGLE_HEADERS more than once (None: each at most once)."""
    seen: set[bytes] = set()
    for name, _ in headers:
        name = name.lower()
        if name in SINGLE_HEADERS:
            if name in seen:
                return f"header {name.decode()!r} given more than once: send it once"
            seen.add(name)
    return None


def request_id_problem(given: bytes | None) -> str | None:
    """Why a client's X-Request-Id cannot name its decision (None: absent, or usable as it is)."""
    if given is None:
        return None
    text = given.decode("latin-1")
    if len(text) > MAX_REQUEST_ID:
        return f"X-Request-Id is longer than {MAX_REQUEST_ID} characters"
    if not REQUEST_ID.fullmatch(text):
        return "X-Request-Id may hold only letters, digits and . _ : -"
    return None


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number: send finite numbers only")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"{text[:40]} is beyond the range of a double: send finite numbers only")
    return value


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of a parsed JSON value (a number or string: 0), counting no further than limit + 1."""
    if not isinstance(value, dict | list) or limit < 0:
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def parse_json(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The body as JSON, or BadRequest: not UTF-8 JSON, NaN/Infinity or a number beyond a double, nested deeper
    than `max_depth`."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an int of too many digits
        raise BadRequest(f"the body is not valid JSON: {str(error)[:200]}") from None
    if _depth(value, max_depth) > max_depth:
        raise BadRequest(f"JSON nested deeper than {max_depth} levels")
    return value


# --- what the service answers, as its OpenAPI document says ---------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, naming the field or header"},
        "detail": {"type": "array", "items": {"type": "object"},
                   "description": "a validation error's fields: location, message, type"},
        "request_id": {"type": "string", "description": "409: the request id that already names a decision"},
        "earlier": {"type": "object", "description": "409: that decision's endpoint, decision, version, time"},
    },
}  # fmt: skip
ERRORS = {
    400: "bad input: a field's type, range or category, an unknown or protected field, JSON that is not finite "
         "or nested too deep, a header given twice, a request id that is too long or holds other characters",
    401: "the X-API-Key header is missing or wrong (when the service has a key)",
    404: "the customer has no features in the online store",
    405: "another method than POST",
    409: "the X-Request-Id already names a decision: nothing new is decided or recorded",
    413: "the body is larger than 16 KiB",
    415: "a content type other than application/json",
    500: "an unexpected failure: no decision is returned",
    503: "the model is stopped or no longer the champion, or the decision could not be recorded",
}  # fmt: skip
HEADERS = [
    {"name": "X-Request-Id", "in": "header", "required": False,
     "schema": {"type": "string", "maxLength": MAX_REQUEST_ID, "pattern": f"^{REQUEST_ID.pattern}$"},
     "description": "names the decision in the answer and the decision log; a reused id is a 409"},
    {"name": "X-API-Key", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "required when the service runs with FAIRWAY_SERVICE_API_KEY"},
]  # fmt: skip


def documented_openapi(spec: dict[str, Any], meta: dict[str, Any], apis: dict[str, set[int]]) -> dict[str, Any]:
    """BentoML's OpenAPI document of the service with what it does not say: which model answers (title and
    description from the model's metadata), every status each API in `apis` can answer (path -> statuses besides
    200) with this service's error object, the request headers, GET /model, and nullable fields as OpenAPI 3.0
    writes them (`nullable: true`, not an `anyOf` with null)."""
    spec = json.loads(json.dumps(spec))  # a copy, with the status keys as strings
    approval = meta.get("approval") or {}
    spec["info"] = {
        **spec.get("info", {}),
        "title": f"Fairway {meta.get('usecase', '')}: {meta.get('mlflow_model_name', '')} "
                 f"version {meta.get('mlflow_version', '')}",
        "version": str(meta.get("mlflow_version", "")),
        "description": (
            f"Scores with MLflow model '{meta.get('mlflow_model_name', '')}' version {meta.get('mlflow_version', '')}"
            f" (run {meta.get('mlflow_run_id', '')}), which passed the fairness gate "
            f"({meta.get('gate_decision', 'unknown')}) and was {approval.get('decision', 'approved')} by "
            f"{approval.get('approver', 'unknown')} at {approval.get('decided_at', '')}."
            " Every answer is recorded in the decision log before it is sent. GET /model gives the version's"
            " evidence: approval, gate summary, fairness per group, documentation."
        ),
    }  # fmt: skip
    spec.setdefault("components", {}).setdefault("schemas", {})["FairwayError"] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/FairwayError"}}}
    for path, statuses in apis.items():
        operation = spec["paths"][path]["post"]
        if "requestBody" in operation:
            operation["requestBody"]["required"] = True  # no body: 400, as for any body that is not JSON
        for media in operation.get("requestBody", {}).get("content", {}).values():
            _closed(media.get("schema", {}), spec["components"]["schemas"])
        operation["responses"] = {"200": operation["responses"]["200"],
                                  **{str(s): {"description": ERRORS[s], "content": error} for s in sorted(statuses)}}
        operation["parameters"] = [*operation.get("parameters", []), *HEADERS]  # fmt: skip
    spec["paths"]["/model"] = {"get": {
        "tags": ["Service APIs"], "operationId": "fairway__model", "parameters": HEADERS[1:],
        "description": "Which model answers and its evidence: name, version, run, approval, gate decision and "
                       "summary, fairness per group, documentation, whether it is serving now",
        "responses": {"200": {"description": "the serving version's evidence",
                              "content": {"application/json": {"schema": {"type": "object"}}}},
                      "401": {"description": ERRORS[401], "content": error}},
    }}  # fmt: skip
    return _nullable(spec)


def _closed(node: Any, schemas: dict[str, Any], seen: set[str] | None = None) -> None:
    """What the service refuses, declared: every object of a request body (and the component schemas it refers
    to) takes no other properties than its own (`additionalProperties: false`)."""
    seen = set() if seen is None else seen
    if isinstance(node, list):
        for item in node:
            _closed(item, schemas, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name not in seen and name in schemas:
            seen.add(name)
            _closed(schemas[name], schemas, seen)
        return
    if node.get("type") == "object" and "properties" in node:
        node["additionalProperties"] = False
    for value in node.values():
        _closed(value, schemas, seen)


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's form of an optional value: `anyOf: [X, {type: null}]` becomes X with `nullable: true`, and a
    field whose default is null (BentoML writes `Optional[str] = None` as a plain string with that default) is
    marked `nullable: true`: the answers hold null there."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        node.pop("anyOf")
        node.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        node["nullable"] = True
    if "default" in node and node["default"] is None and "type" in node:
        node["nullable"] = True
    return node
