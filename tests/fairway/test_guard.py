"""fairway.guard: what the service refuses before validation (the served service is tested in tests/bento)."""

from __future__ import annotations

import pytest

from fairway.guard import MAX_DEPTH, BadRequest, parse_json, repeated_header, request_id_problem


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"x": Infinity}', "Infinity is not a JSON number"),
        (b'{"x": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"x": NaN}', "NaN is not a JSON number"),
        (b'{"x": 1e400}', "beyond the range of a double"),
        (b'{"x": -1e309}', "beyond the range of a double"),
        (b'{"x": 1', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"x": ' + b"9" * 5000 + b"}", "not valid JSON"),  # past Python's int-digits limit
    ],
)
def test_numbers_must_be_finite_and_the_body_json(body: bytes, named: str) -> None:
    with pytest.raises(BadRequest, match=named.replace("-", r"\-")):
        parse_json(body)


def test_finite_values_parse_as_json_does() -> None:
    assert parse_json(b'{"a": 1e308, "b": -0.0, "c": 5, "d": [1.5, null, "x"], "e": {"f": true}}') == {
        "a": 1e308, "b": -0.0, "c": 5, "d": [1.5, None, "x"], "e": {"f": True},
    }  # fmt: skip


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, 5000])
def test_deep_nesting_is_refused(levels: int) -> None:
    body = b'{"a": ' + b"[" * levels + b"]" * levels + b"}"
    with pytest.raises(BadRequest, match="nested deeper"):  # also past the recursion limit (RecursionError)
        parse_json(body)
    assert parse_json(b'{"a": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}") is not None


def test_a_header_that_matters_may_be_given_once() -> None:
    json_then_form = [(b"content-type", b"application/json"), (b"Content-Type", b"application/x-www-form-urlencoded")]
    assert "content-type" in (repeated_header(json_then_form) or "")
    assert "x-request-id" in (repeated_header([(b"x-request-id", b"a"), (b"x-request-id", b"a")]) or "")
    assert repeated_header([(b"accept", b"a"), (b"accept", b"b"), (b"content-type", b"application/json")]) is None


@pytest.mark.parametrize(
    ("given", "problem"),
    [(None, None), (b"req-1.A_b:2", None), (b"x" * 64, None), (b"x" * 65, "longer than 64"),
     (b"a b", "only letters"), (b"../etc", "only letters"), (b"", "only letters"), ("é".encode(), "only letters")],
)  # fmt: skip
def test_request_ids_are_refused_not_cut(given: bytes | None, problem: str | None) -> None:
    answer = request_id_problem(given)
    assert answer is None if problem is None else problem in (answer or "")


def test_the_openapi_document_declares_errors_the_model_and_nullable_fields() -> None:
    from fairway.guard import documented_openapi

    ok = {"description": "ok", "content": {"application/json": {"schema": {"properties": {
        "when": {"type": "string", "default": None}, "what": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "score": {"type": "number"}}}}}}  # fmt: skip
    spec = {"info": {"title": "svc"}, "paths": {"/p": {"post": {"responses": {200: ok, 500: {"description": "x"}}}}}}
    meta = {"usecase": "u", "mlflow_model_name": "m", "mlflow_version": "4", "gate_decision": "pass",
            "approval": {"decision": "approved", "approver": "ann", "decided_at": "2026-01-01T00:00:00Z"}}  # fmt: skip
    out = documented_openapi(spec, meta, {"/p": {400, 409}})
    assert out["info"]["title"] == "Fairway u: m version 4" and "approved by ann at 2026-01-01" in out["info"]["description"]
    assert set(out["paths"]["/p"]["post"]["responses"]) == {"200", "400", "409"} and "/model" in out["paths"]
    props = out["paths"]["/p"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert props["when"]["nullable"] and props["what"] == {"type": "integer", "nullable": True}
    assert "nullable" not in props["score"] and spec["info"]["title"] == "svc"  # the input is left as it was
