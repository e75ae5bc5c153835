"""As a user: `make up`'s local stack (Airflow standalone with its scheduler, the MLflow server, the service),
`training` triggered through Airflow's REST API, the human approval answered through the REST API once the gate
awaits it, `champion` moved, the restarted service answering with the new version, then `make down` leaving no
process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fairway import registry
from fairway.config import load_usecase
from fairway.packaging import package
from tests.bento.serving import free_port
from tests.champion import feature_store, make_champion
from tests.conftest import PROJECT

pytestmark = pytest.mark.e2e
STACK = [sys.executable, str(PROJECT / "include" / "local_stack.py")]


def _wait(what: str, check, timeout: float = 420, every: float = 2):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


@pytest.fixture
def stack(tmp_path, monkeypatch):
    home = tmp_path / "home"
    for name in ("FAIRWAY_APPROVAL_MODE", "FAIRWAY_DECISION_LOG_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAIRWAY_HOME", str(home))
    # pinned, so that the value mlflow writes into os.environ is undone after the test
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", "e2e-key")
    uc = load_usecase("credit_risk")
    feature_store(uc, customers=1500, months=5, seed=11, online_months=1)
    first = make_champion(uc, "2024-04", 3)
    package(uc, first)  # what the gate's package step does: the service can start with v1
    ports = {"AIRFLOW_PORT": free_port(), "MLFLOW_PORT": free_port(), "SERVICE_PORT": free_port()}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "BENTOML_HOME": os.environ["BENTOML_HOME"]}  # the session's store (conftest), where package() built  # fmt: skip
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    try:
        up = subprocess.run([*STACK, "up"], env=env, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        yield {"uc": uc, "env": env, "first": first, "airflow": f"http://127.0.0.1:{ports['AIRFLOW_PORT']}",
               "service": f"http://127.0.0.1:{ports['SERVICE_PORT']}", "airflow_home": tmp_path / "airflow"}  # fmt: skip
    finally:
        down = subprocess.run([*STACK, "down"], env=env, capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "left" not in down.stdout, down.stdout
        left = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True).stdout.split()
        assert left == [], f"processes still using {home}: {left}"


def test_training_triggered_and_approved_through_the_rest_api_moves_the_champion(stack) -> None:
    airflow = stack["airflow"]
    passwords = json.loads(Path(stack["airflow_home"], "simple_auth_manager_passwords.json.generated").read_text())
    token = httpx.post(f"{airflow}/auth/token", json={"username": "admin", "password": passwords["admin"]}).json()
    api = httpx.Client(base_url=f"{airflow}/api/v2", headers={"Authorization": f"Bearer {token['access_token']}"},
                       timeout=30)  # fmt: skip
    conf = {"usecase": "credit_risk", "window_end": "2024-04", "window_months": 3, "candidates": ["reweighing"]}
    created = api.post("/dags/training/dagRuns", json={"logical_date": None, "conf": conf})
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]

    def finished(dag_id: str, run: str):  # noqa: ANN202
        state = api.get(f"/dags/{dag_id}/dagRuns/{run}").json()["state"]
        assert state != "failed", f"{dag_id} {run} failed"
        return state == "success"

    _wait("training", lambda: finished("training", run_id))
    gate_runs = _wait("the gate's asset-triggered run",
                      lambda: api.get("/dags/fairness_gate/dagRuns").json()["dag_runs"])  # fmt: skip
    gate_run = gate_runs[-1]["dag_run_id"]
    assert gate_runs[-1]["run_type"] == "asset_triggered"
    task = f"/dags/fairness_gate/dagRuns/{gate_run}/taskInstances/human_approval"
    _wait("the approval request", lambda: api.get(task).json().get("state") == "awaiting_input")
    champion = registry.version_by_alias(stack["uc"], registry.CHAMPION)
    assert str(champion.version) == stack["first"]  # nothing moves before a person answers
    # A person reads the request first. An answer within about a second of the task pausing can race the
    # scheduler's handling of that pause (the attempt is then retried and asks again): answer each request once.
    answered: set[int] = set()

    def approve_until_done():  # noqa: ANN202
        instance = api.get(task).json()
        if instance.get("state") == "awaiting_input" and instance["try_number"] not in answered:
            time.sleep(3)
            answer = api.patch(f"{task}/-1/hitlDetails",
                               json={"chosen_options": ["Approve"], "params_input": {"comment": "e2e: fine"}})  # fmt: skip
            assert answer.status_code == 200, answer.text
            answered.add(instance["try_number"])
        return finished("fairness_gate", gate_run)

    _wait("the approval and the gate", approve_until_done)

    champion = registry.version_by_alias(stack["uc"], registry.CHAMPION)
    assert str(champion.version) != stack["first"]
    assert champion.tags["fairway.approval.approver"] == "admin"
    assert champion.tags["fairway.approval.comment"] == "e2e: fine"
    restart = subprocess.run([*STACK, "restart-service"], env=stack["env"], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert httpx.get(f"{stack['service']}/model", timeout=30).json()["mlflow_version"] == str(champion.version)
    answer = httpx.post(f"{stack['service']}/predict", json={"customer_id": "C0000001"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["model_version"] == str(champion.version)
