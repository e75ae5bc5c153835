"""The stack of docker-compose.yaml without Docker: a real PostgreSQL (Airflow's metadata DB, MLflow's backend
store, Feast's SQL registry, the decision log) and a real Redis (Feast's online store). The demo's lifecycle runs
against them in a subprocess (feature_pipeline, training, fairness_gate, batch_inference, monitoring as real
DagRuns), then the packaged champion is served and answers from Redis, recording in PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.bento.serving import served
from tests.conftest import PROJECT
from tests.postgres import postgres_server
from tests.redis_server import redis_server

pytestmark = pytest.mark.e2e
DATABASES = ("airflow", "mlflow", "feast", "fairway")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    with postgres_server() as pg, redis_server() as redis:
        server = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
        with server.connect() as connection:
            for name in DATABASES:
                connection.execute(sa.text(f"CREATE DATABASE {name}"))
        server.dispose()
        url = {name: pg.rsplit("/", 1)[0] + f"/{name}" for name in DATABASES}
        env = {
            **os.environ,
            "FAIRWAY_HOME": str(root / "home"),
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url["airflow"],
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "MLFLOW_TRACKING_URI": url["mlflow"],
            "FAIRWAY_FEAST_CONFIG": "production",
            "FAIRWAY_FEAST_REGISTRY_URL": url["feast"],
            "FAIRWAY_REDIS_CONNECTION": redis,
            "FAIRWAY_DECISION_LOG_URL": url["fairway"],
            "FAIRWAY_PSEUDONYM_KEY": "stack-test-key",
        }
        env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
        airflow = str(PROJECT / ".venv" / "bin" / "airflow") if (PROJECT / ".venv").exists() else "airflow"
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        demo = subprocess.run([sys.executable, str(PROJECT / "include" / "demo.py"), "--months", "7", "--train-until", "6"],
                              env=env, capture_output=True, text=True, timeout=1200)  # fmt: skip
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        yield {"url": url, "redis": redis, "env": env, "root": root, "demo": demo.stdout}


def test_airflow_ran_every_pipeline_on_postgres(stack) -> None:
    engine = sa.create_engine(stack["url"]["airflow"])
    with engine.connect() as connection:
        runs = pd.read_sql("SELECT dag_id, state FROM dag_run", connection)
    succeeded = runs[runs["state"] == "success"].groupby("dag_id").size().to_dict()
    assert succeeded.get("feature_pipeline", 0) == 7
    assert succeeded.get("training", 0) >= 1 and succeeded.get("fairness_gate", 0) >= 1
    assert succeeded.get("batch_inference", 0) == 1 and succeeded.get("monitoring", 0) == 1
    assert set(runs["state"]) == {"success"}
    # the demo printed a progress line per task of training and fairness_gate, the candidates by name
    for candidate in ("baseline", "reweighing", "exponentiated_gradient", "gradient_boosting"):
        assert f"      training.train_candidate [{candidate}]: done in " in stack["demo"], stack["demo"][-3000:]
    assert "      fairness_gate." in stack["demo"] and "      training.register_candidate: done in " in stack["demo"]


def test_mlflow_on_postgres_holds_the_approved_champion(stack) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack["url"]["mlflow"], registry_uri=stack["url"]["mlflow"])
    champion = client.get_model_version_by_alias("credit-risk", "champion")
    assert champion.tags["fairway.gate_decision"] == "pass"
    assert champion.tags["fairway.approval.approver"] == "policy:auto"
    assert champion.tags["fairway.bento"].startswith("fairway_credit_risk:")


def test_feast_registry_on_postgres_and_online_store_in_redis(stack) -> None:
    import redis

    engine = sa.create_engine(stack["url"]["feast"])
    with engine.connect() as connection:
        views = connection.execute(sa.text("SELECT count(*) FROM feature_views")).scalar()
    assert views == 3
    host, port = stack["redis"].split(":")
    assert redis.Redis(host=host, port=int(port)).dbsize() > 1000  # one key per customer online


def test_the_service_answers_from_redis_and_records_in_postgres(stack) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack["url"]["mlflow"], registry_uri=stack["url"]["mlflow"])
    champion = client.get_model_version_by_alias("credit-risk", "champion")
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in stack["env"].items() if k.startswith(("FAIRWAY_", "MLFLOW_"))})
    try:
        with served(champion.tags["fairway.bento"]) as url:
            answer = httpx.post(f"{url}/predict", json={"customer_id": "C0000001"}, timeout=20)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == str(champion.version)
    engine = sa.create_engine(stack["url"]["fairway"])
    with engine.connect() as connection:
        rows = pd.read_sql("SELECT request_id, endpoint, model_version FROM fairway_decisions", connection)
    assert rows.to_dict("records") == [
        {"request_id": answer.json()["request_id"], "endpoint": "predict", "model_version": str(champion.version)}
    ]
