"""The BentoML service for real: `bentoml serve` of the packaged champion in a subprocess, real HTTP, the Feast
online store and the decision log (SQLite) it writes."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest

from fairway import registry
from fairway.data import read_month
from fairway.records import DecisionLog, decision_log_url, input_fingerprint, pseudonym
from tests.bento.serving import served, served_champion

APPLICANT = {"income": 2500.0, "debt_ratio": 0.35, "credit_amount": 8000.0, "loan_duration_months": 48,
             "late_payments_12m": 1, "savings_balance": 1200.0, "tenure_months": 30,
             "employment_type": "permanent", "housing": "rent", "residential_area": "east"}  # fmt: skip


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> dict:
    """1,500 customers over 5 months, the last two materialized online, a champion packaged and served."""
    with served_champion(tmp_path_factory, "service-home") as world:
        snapshot, _ = read_month(world["uc"], world["months"][-1])
        yield {**world, "last_month": world["months"][-1], "log": DecisionLog(decision_log_url(world["uc"])),
               "customer": str(snapshot["customer_id"].iloc[0])}  # fmt: skip


def _post(service: dict, path: str, body: object, **kwargs) -> httpx.Response:
    return httpx.post(f"{service['url']}{path}", json=body, timeout=20, **kwargs)


def _rows(service: dict) -> int:
    return len(service["log"].read())


def test_predict_scores_a_customer_with_online_features_and_records_it(service) -> None:
    uc = service["uc"]
    snapshot, _ = read_month(uc, service["last_month"])
    customer = snapshot.iloc[7]
    answer = _post(service, "/predict", {"customer_id": customer["customer_id"]}, headers={"x-request-id": "req-7"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    champion = registry.version_by_alias(uc, registry.CHAMPION)
    assert body["model_version"] == str(champion.version) == service["version"]
    assert body["request_id"] == "req-7"
    assert pd.Timestamp(body["features_event_time"]) == customer["snapshot_ts"].floor("s")
    assert body["features_stale"] is True  # synthetic 2024 data, TTL 95 days: flagged, not refused
    model = mlflow.sklearn.load_model(f"models:/{uc.model_name}/{service['version']}")
    expected = float(model.predict_proba(snapshot.iloc[[7]][uc.model_inputs])[0, 1])
    assert body["score"] == pytest.approx(expected, abs=1e-9)
    assert body["decision"] == ("approve" if expected < uc.gate.decision_threshold else "decline")
    row = service["log"].read().set_index("request_id").loc["req-7"]
    assert row["subject"] == pseudonym(customer["customer_id"]) and row["endpoint"] == "predict"
    assert row["input_fingerprint"] == input_fingerprint([customer[c] for c in uc.model_inputs])
    assert row["score"] == pytest.approx(body["score"]) and row["model_version"] == service["version"]
    # reason codes: recorded as answered, each the score minus the score with that input at the reference value
    assert json.loads(row["reasons"]) == body["reasons"] and 1 <= len(body["reasons"]) <= 3
    reference = mlflow.artifacts.load_dict(f"runs:/{champion.run_id}/evaluation/reference.json")
    for reason in body["reasons"]:
        swapped = snapshot.iloc[[7]][uc.model_inputs].assign(**{reason["feature"]: reference[reason["feature"]]})
        assert reason["reference"] == reference[reason["feature"]]
        assert reason["effect"] == pytest.approx(expected - float(model.predict_proba(swapped)[0, 1]), abs=1e-6)
    effects = [r["effect"] for r in body["reasons"]]
    assert effects == sorted(effects, reverse=True) and effects[-1] > 0


def test_predict_features_scores_explicit_inputs(service) -> None:
    uc = service["uc"]
    answer = _post(service, "/predict_features", {"applicant": APPLICANT})
    assert answer.status_code == 200, answer.text
    model = mlflow.sklearn.load_model(f"models:/{uc.model_name}/{service['version']}")
    expected = float(model.predict_proba(pd.DataFrame([APPLICANT])[uc.model_inputs])[0, 1])
    assert answer.json()["score"] == pytest.approx(expected, abs=1e-9)
    assert answer.json()["features_event_time"] is None
    row = service["log"].read().set_index("request_id").loc[answer.json()["request_id"]]
    assert row["subject"] is None and row["endpoint"] == "predict_features"


BAD = [
    ("missing field", "/predict_features", {"applicant": {k: v for k, v in APPLICANT.items() if k != "income"}}, 400, "income"),
    ("wrong type", "/predict_features", {"applicant": {**APPLICANT, "tenure_months": "thirty"}}, 400, "tenure_months"),
    ("unknown category", "/predict_features", {"applicant": {**APPLICANT, "housing": "castle"}}, 400, "housing"),
    ("negative amount", "/predict_features", {"applicant": {**APPLICANT, "credit_amount": -10.0}}, 400, "credit_amount"),
    ("out of range", "/predict_features", {"applicant": {**APPLICANT, "debt_ratio": 7.5}}, 400, "debt_ratio"),
    ("protected attribute, applicant", "/predict_features", {"applicant": {**APPLICANT, "citizenship": "foreign"}}, 400, "citizenship"),
    ("protected attribute, top level", "/predict", {"customer_id": "C0000001", "sex": "female"}, 400, "sex"),
    ("unknown field", "/predict", {"customer_id": "C0000001", "limit": 3}, 400, "limit"),
    ("unknown customer", "/predict", {"customer_id": "C9999999"}, 404, "C9999999"),
    ("customer id of the wrong type", "/predict", {"customer_id": 42}, 400, "customer_id"),
    ("not an object", "/predict", [1, 2], 400, "object"),
    ("amount past its bound", "/predict_features", {"applicant": {**APPLICANT, "credit_amount": 1e12}}, 400, "credit_amount"),
    ("largest double", "/predict_features", {"applicant": {**APPLICANT, "income": 1e308}}, 400, "income"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "path", "body", "status", "named"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_with_a_message_and_no_decision(service, case, path, body, status, named) -> None:
    before = _rows(service)
    answer = _post(service, path, body)
    assert answer.status_code == status, (case, answer.text)
    assert isinstance(answer.json(), dict) and named in answer.json()["error"], answer.text  # one shape for errors
    assert _rows(service) == before


def test_oversized_pickled_and_malformed_requests_are_refused(service) -> None:
    url, before = service["url"], _rows(service)
    huge = httpx.post(f"{url}/predict", json={"customer_id": "C" * 100_000}, timeout=20)
    assert huge.status_code == 413 and "larger than" in huge.text
    pickled = httpx.post(f"{url}/predict", content=b"\x80\x04K\x01.",
                         headers={"content-type": "application/vnd.bentoml+pickle"}, timeout=20)  # fmt: skip
    assert pickled.status_code == 415 and "application/json" in pickled.text
    broken = httpx.post(f"{url}/predict", content=b'{"customer_id": ', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "JSON" in broken.text
    wrong_method = httpx.get(f"{url}/predict", timeout=20)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "use POST /predict"
    assert wrong_method.headers["allow"] == "POST"  # RFC 9110: a 405 names the methods that are allowed
    assert _rows(service) == before


def _raw(service: dict, path: str, body: bytes, headers: list[tuple[str, str]] | None = None) -> httpx.Response:
    headers = headers if headers is not None else [("content-type", "application/json")]
    return httpx.post(f"{service['url']}{path}", content=body, headers=headers, timeout=20)


def test_numbers_that_are_not_finite_and_deep_json_are_refused(service) -> None:
    before = _rows(service)
    applicant = json.dumps({"applicant": {**APPLICANT, "income": 12345.5}})
    for text in ("Infinity", "-Infinity", "NaN", "1e400"):
        answer = _raw(service, "/predict_features", applicant.replace("12345.5", text).encode())
        assert answer.status_code == 400 and "finite numbers only" in answer.json()["error"], (text, answer.text)
    deep = b'{"customer_id": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    answer = _raw(service, "/predict", deep)  # was a 500 after the 10-s timeout: RecursionError is not a ValueError
    assert answer.status_code == 400 and "nested deeper" in answer.json()["error"]
    assert _rows(service) == before


def test_a_repeated_content_type_cannot_smuggle_a_protected_attribute(service) -> None:
    before = _rows(service)
    body = json.dumps({"customer_id": service["customer"], "sex": "female"}).encode()
    for first, last in (("application/x-www-form-urlencoded", "application/json"),
                        ("application/json", "application/x-www-form-urlencoded")):  # fmt: skip
        answer = _raw(service, "/predict", body, [("content-type", first), ("content-type", last)])
        assert answer.status_code == 400 and "given more than once" in answer.json()["error"], answer.text
    twice = _raw(service, "/predict", json.dumps({"customer_id": service["customer"]}).encode(),
                 [("content-type", "application/json"), ("x-request-id", "a-1"), ("x-request-id", "a-2")])  # fmt: skip
    assert twice.status_code == 400 and "x-request-id" in twice.json()["error"]
    assert _rows(service) == before


def test_a_reused_request_id_is_a_conflict_naming_the_earlier_decision(service) -> None:
    before = _rows(service)
    request_id = "client-" + "7" * 57  # 64 characters: kept as it is
    first = _post(service, "/predict", {"customer_id": service["customer"]}, headers={"x-request-id": request_id})
    assert first.status_code == 200 and first.json()["request_id"] == request_id
    again = _post(service, "/predict_features", {"applicant": APPLICANT}, headers={"x-request-id": request_id})
    assert again.status_code == 409, again.text
    conflict = again.json()
    assert conflict["request_id"] == request_id and "already names a decision" in conflict["error"]
    assert conflict["earlier"]["endpoint"] == "predict" and conflict["earlier"]["decision"] == first.json()["decision"]
    assert conflict["earlier"]["model_version"] == service["version"] and "score" not in conflict["earlier"]
    longer = _post(service, "/predict", {"customer_id": service["customer"]}, headers={"x-request-id": request_id + "8"})
    assert longer.status_code == 400 and "longer than 64" in longer.json()["error"]
    odd = _post(service, "/predict", {"customer_id": service["customer"]}, headers={"x-request-id": "../../etc"})
    assert odd.status_code == 400
    log = service["log"].read()
    assert _rows(service) == before + 1 and (log["request_id"] == request_id).sum() == 1
    assert _post(service, "/predict_features", {"applicant": APPLICANT}).status_code == 200  # the service goes on


def test_the_openapi_document_names_the_model_and_every_answer(service) -> None:
    spec = httpx.get(f"{service['url']}/docs.json", timeout=20).json()
    assert f"version {service['version']}" in spec["info"]["title"] and "approved by tester" in spec["info"]["description"]
    assert set(spec["paths"]["/predict"]["post"]["responses"]) == {"200", "400", "401", "404", "405", "409", "413",
                                                                   "415", "500", "503"}  # fmt: skip
    assert "404" not in spec["paths"]["/predict_features"]["post"]["responses"]
    assert "401" in spec["paths"]["/model"]["get"]["responses"]
    assert spec["components"]["schemas"]["FairwayError"]["required"] == ["error"]
    answer = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["properties"]["features_event_time"]["nullable"] is True  # null for /predict_features
    headers = {p["name"]: p for p in spec["paths"]["/predict"]["post"]["parameters"]}
    assert headers["X-Request-Id"]["schema"]["maxLength"] == 64
    for path in ("/predict", "/predict_features"):  # a body is required and takes only its own fields
        body = spec["paths"][path]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
        assert body["required"] is True and schema["additionalProperties"] is False, (path, schema)


def test_model_endpoint_names_the_champion_its_approval_and_fairness(service) -> None:
    info = httpx.get(f"{service['url']}/model", timeout=20).json()
    assert info["mlflow_version"] == service["version"] and info["gate_decision"] == "pass"
    assert info["approval"]["approver"] == "tester" and info["approval"]["decision"] == "approved"
    assert 0.5 < info["fairness"]["model"]["auc"] <= 1
    assert set(info["fairness"]) >= {"citizenship.foreign", "sex.female", "age.under_30"}
    assert "disparate_impact" in info["fairness"]["citizenship.foreign"]
    posted = httpx.post(f"{service['url']}/model", json={}, timeout=20)
    assert posted.status_code == 405 and posted.headers["allow"] == "GET"


def test_concurrent_clients_get_one_record_per_answer(service) -> None:
    uc = service["uc"]
    snapshot, _ = read_month(uc, service["last_month"])
    ids = list(snapshot["customer_id"].iloc[:40])
    before = service["log"].read()

    def call(i: int) -> httpx.Response:
        if i % 2:
            return _post(service, "/predict", {"customer_id": ids[i % len(ids)]})
        return _post(service, "/predict_features", {"applicant": {**APPLICANT, "tenure_months": i}})

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(call, range(160)))
    assert [a.status_code for a in answers] == [200] * 160
    after = service["log"].read()
    new = after[~after["request_id"].isin(before["request_id"])]
    assert len(new) == 160 and new["request_id"].is_unique
    assert set(new["request_id"]) == {a.json()["request_id"] for a in answers}


def test_metrics_and_every_dashboard_query_against_a_real_scrape(service) -> None:
    """Decisions by endpoint and outcome, the score histogram, stale features (the fixture's online features are
    older than the TTL), the decision-log write latency and the version answering; then every query of the
    provisioned Grafana dashboard finds its series in this scrape (tests/dashboards.py)."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.conftest import PROJECT
    from tests.dashboards import problems, queries, series

    assert _post(service, "/predict_features", {"applicant": APPLICANT}).status_code == 200
    risky = {**APPLICANT, "income": 600.0, "debt_ratio": 2.5, "late_payments_12m": 9, "savings_balance": 0.0,
             "credit_amount": 60000.0, "tenure_months": 1}  # fmt: skip
    declined = _post(service, "/predict_features", {"applicant": risky})
    assert declined.status_code == 200 and declined.json()["decision"] == "decline", declined.text
    assert _post(service, "/predict", {"customer_id": service["customer"]}).json()["features_stale"] is True
    text = httpx.get(f"{service['url']}/metrics", timeout=20).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip

    def value(name: str, **labels: str) -> float:
        return sum(v for (n, found), v in samples.items() if n == name and set(labels.items()) <= set(found))

    assert value("fairway_decisions_total", endpoint="predict_features") >= 1
    assert value("fairway_decisions_total", endpoint="predict") >= 1
    assert value("fairway_score_count", endpoint="predict") >= 1 and value("fairway_score_bucket", le="1.0") >= 2
    assert value("fairway_stale_features_total", endpoint="predict") >= 1
    assert value("fairway_stale_features_total", endpoint="predict_features") == 0
    assert value("fairway_decision_log_write_seconds_count") >= 2
    assert 0 < value("fairway_decision_log_write_seconds_sum") < value("fairway_decision_log_write_seconds_count")
    assert value("fairway_model_info", model_version=service["version"], model_name="credit-risk") == 1
    dashboards = sorted((PROJECT / "docker" / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    scraped = series(text)
    for dashboard in dashboards:
        found = queries(dashboard)
        assert len(found) >= 8, dashboard
        unanswered = {(title, expr): problems(expr, scraped) for title, expr in found}  # a panel may have several
        assert {query: missing for query, missing in unanswered.items() if missing} == {}


@pytest.mark.parametrize("path", ["/predict", "/predict_features"])
def test_schemathesis_with_every_check_finds_nothing(service, path, tmp_path) -> None:
    """`st run --checks all` against the service's own OpenAPI document: at least 1,000 generated cases for the
    endpoint (its coverage and fuzzing phases, valid and invalid bodies, headers, other methods), and not one
    breaks a check (no 5xx; status, headers, content type and body as declared; what the schema allows is
    accepted, what it forbids refused; 405s name the allowed method). A fixed seed: a failure reproduces. Run in
    a temporary directory, where `st` keeps its cache."""
    st = str(Path(sys.executable).parent / "st")
    run = subprocess.run([st, "run", f"{service['url']}/docs.json", "--checks", "all", "--max-examples", "1000",
                          "--include-path", path, "--suppress-health-check", "all", "--seed", "20261203",
                          "--no-color"], capture_output=True, text=True, timeout=900, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    counted = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counted, run.stdout[-3000:]
    generated, passed = int(counted[1]), int(counted[2])
    assert generated >= 1000 and passed == generated, run.stdout[-3000:]


def test_the_bento_runs_from_a_fresh_environment_of_its_own_requirements(service, tmp_path) -> None:
    """The bento carries the `fairway` package, the feature repo and the use-case config: a new virtual environment
    made from the bento's requirements file alone (no `fairway` distribution in it, no checkout on its path)
    serves it from another directory, with only the stores' locations in its environment, and /predict answers
    from the online store and records the decision."""
    import bentoml

    path = Path(bentoml.get(service["bento"]).path)
    assert {"service.py", "fairway", "feature_repo", "usecases"} <= {p.name for p in (path / "src").iterdir()}
    assert (path / "src" / "usecases" / "credit_risk.yaml").is_file()
    assert (path / "src" / "feature_repo" / "feature_store.production.yaml").is_file()
    requirements = path / "env" / "python" / "requirements.txt"
    pins = requirements.read_text().split()
    assert all("==" in p for p in pins) and f"bentoml=={bentoml.__version__}" in pins
    assert not [p for p in pins if p.startswith(("apache-airflow", "holisticai", "fairway"))]
    venv, uv = tmp_path / "bento-venv", str(Path(sys.executable).parent / "uv")
    python = str(venv / "bin" / "python")
    subprocess.run([uv, "venv", "--quiet", "--python", sys._base_executable, str(venv)], check=True, timeout=120)
    installed = subprocess.run([uv, "pip", "install", "--quiet", "--python", python, "-r", str(requirements)],
                               capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert subprocess.run([uv, "pip", "show", "--python", python, "fairway"], capture_output=True).returncode != 0
    stores = ("FAIRWAY_HOME", "BENTOML_HOME", "MLFLOW_TRACKING_URI", "FAIRWAY_PSEUDONYM_KEY")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), **{k: os.environ[k] for k in stores}}
    before = _rows(service)
    with served(service["bento"], timeout=180, bentoml=str(venv / "bin" / "bentoml"), env=env, cwd=tmp_path) as url:
        answer = httpx.post(f"{url}/predict", json={"customer_id": service["customer"]}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == service["version"]
        title = httpx.get(f"{url}/docs.json", timeout=20).json()["info"]["title"]
        assert f"version {service['version']}" in title
    assert _rows(service) == before + 1


def test_with_an_api_key_only_requests_that_carry_it_are_answered(service, monkeypatch) -> None:
    monkeypatch.setenv("FAIRWAY_SERVICE_API_KEY", "s3cret-key")
    before = _rows(service)
    with served(service["bento"]) as url:
        refused = httpx.post(f"{url}/predict_features", json={"applicant": APPLICANT}, timeout=20)
        wrong = httpx.get(f"{url}/model", headers={"x-api-key": "guess"}, timeout=20)
        assert refused.status_code == 401 and wrong.status_code == 401 and "X-API-Key" in refused.text
        assert _rows(service) == before
        answered = httpx.post(f"{url}/predict_features", json={"applicant": APPLICANT},
                              headers={"x-api-key": "s3cret-key"}, timeout=20)  # fmt: skip
        assert answered.status_code == 200 and _rows(service) == before + 1
        assert httpx.get(f"{url}/readyz", timeout=20).status_code == 200  # probes need no key


def test_a_decision_that_cannot_be_recorded_is_not_returned(service) -> None:
    """Runs last: the decision table disappears, the service answers 503 and reports no decision."""
    import sqlalchemy as sa

    log = service["log"]
    with log.engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE fairway_decisions RENAME TO fairway_decisions_away"))
    try:
        answer = _post(service, "/predict_features", {"applicant": APPLICANT})
        assert answer.status_code == 503 and "could not be recorded" in answer.text
        assert "score" not in answer.text
    finally:
        with log.engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE fairway_decisions_away RENAME TO fairway_decisions"))
    assert _post(service, "/predict_features", {"applicant": APPLICANT}).status_code == 200


def test_a_stop_answers_503_with_the_reason_within_seconds_and_a_rollback_resumes(service) -> None:
    """Next to last in this module: the running service follows the promotion ledger without a restart."""
    import time

    from fairway import promotion

    uc, applicant = service["uc"], {"applicant": APPLICANT}
    assert _post(service, "/predict_features", applicant).status_code == 200
    rows = _rows(service)
    promotion.stop(uc, "complaints about declines in the east", "airflow:ops")
    stopped = time.monotonic()
    deadline, answer, answered = stopped + 15, None, 0
    while time.monotonic() < deadline:
        answer = _post(service, "/predict_features", applicant)
        if answer.status_code == 503:
            break
        answered += answer.status_code == 200  # decided before the check came round (off the request path, every 1 s)
        time.sleep(0.5)
    assert answer is not None and answer.status_code == 503, answer.text if answer else None
    assert time.monotonic() - stopped < 5  # within seconds: the refresher re-reads the ledger every second
    assert answer.json()["error"].startswith("model stopped by airflow:ops at ")
    assert answer.json()["error"].endswith(": complaints about declines in the east")
    assert httpx.get(f"{service['url']}/readyz", timeout=10).status_code == 503
    assert httpx.get(f"{service['url']}/model", timeout=10).json()["serving"] is False
    assert answered <= 6 and _rows(service) == rows + answered  # a refused request is no decision
    request = promotion.rollback_request(uc, None, "the data feed is fixed")
    approval = promotion.approval_from_response(
        {"chosen_options": ["Approve"], "params_input": {}, "responded_at": "2031-03-01T00:00:00+00:00",
         "responded_by_user": {"id": "o", "name": "olga"}}, request)  # fmt: skip
    promotion.rollback(uc, request, approval)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and answer.status_code != 200:
        time.sleep(0.5)
        answer = _post(service, "/predict_features", applicant)
    assert answer.status_code == 200 and answer.json()["model_version"] == service["version"]


def test_the_running_service_follows_a_new_champion_once_it_is_packaged(service) -> None:
    """After the stop and rollback above: a newly approved version is refused (503, naming it) until the package
    step has run, then answered by the same process without a restart, every answer and record naming it."""
    import time

    from fairway.packaging import package
    from tests.champion import make_champion

    uc, applicant = service["uc"], {"applicant": APPLICANT}
    before = httpx.get(f"{service['url']}/model", timeout=10).json()
    newer = make_champion(uc, service["months"][-2], 2)
    assert newer != service["version"]
    deadline, answer = time.monotonic() + 15, _post(service, "/predict_features", applicant)
    while time.monotonic() < deadline and answer.status_code != 503:
        time.sleep(0.5)
        answer = _post(service, "/predict_features", applicant)
    assert answer.status_code == 503 and f"champion is v{newer}" in answer.json()["error"], answer.text
    package(uc, newer)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and answer.status_code != 200:
        time.sleep(0.5)
        answer = _post(service, "/predict_features", applicant)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == newer
    customer = _post(service, "/predict", {"customer_id": service["customer"]})
    assert customer.status_code == 200 and customer.json()["model_version"] == newer
    model = httpx.get(f"{service['url']}/model", timeout=10).json()
    assert model["mlflow_version"] == newer and model["serving"] is True and before["mlflow_version"] != newer
    spec = httpx.get(f"{service['url']}/docs.json", timeout=20).json()
    assert f"version {newer}" in spec["info"]["title"]
    with service["log"].engine.connect() as connection:
        import sqlalchemy as sa

        versions = connection.execute(sa.text("SELECT model_version FROM fairway_decisions WHERE request_id IN "
                                              "(:a, :b)"), {"a": answer.json()["request_id"],
                                                           "b": customer.json()["request_id"]}).scalars().all()  # fmt: skip
    assert versions == [newer, newer]
    # what the switch loads is checked as at start: packaged files changed after the approval are refused
    import bentoml

    from fairway.serving import load_followed, packaged_model

    tag = packaged_model(uc, newer)
    assert tag is not None
    intact = load_followed(uc, tag)
    assert not isinstance(intact, str) and intact.scorer.model_version == newer, intact
    weights = next(p for p in sorted(Path(bentoml.models.get(tag).path_of("mlflow_model")).rglob("*")) if p.is_file()
                   and p.suffix in (".pkl", ".skops", ".joblib", ".cloudpickle"))  # fmt: skip
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert load_followed(uc, tag) == f"credit-risk v{newer}: the packaged model files are not the ones the ledger approved"
