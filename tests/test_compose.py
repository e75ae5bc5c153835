"""docker-compose.yaml (and its Celery variant) against the Compose specification, the way `docker compose config`
reads it: YAML anchors and merges resolved, variables interpolated from .env.example, then validated with the
compose-spec bindings (no Docker engine here). Plus the rules of this stack: healthchecks, no secrets in files,
the pinned versions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

from tests.conftest import PROJECT

FILES = ["docker-compose.yaml", "docker-compose.celery.yaml"]
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


def env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (PROJECT / ".env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]  # fmt: skip
    return {k.strip(): v.strip() for k, v in pairs}


def interpolate(value: Any, env: dict[str, str], missing: set[str]) -> Any:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op in (":-", "-"):
            return arg or ""
        missing.add(name)
        return ""

    return VARIABLE.sub(one, value)


def load(name: str) -> tuple[dict[str, Any], set[str]]:
    raw = yaml.safe_load((PROJECT / name).read_text())
    missing: set[str] = set()
    return interpolate(raw, env_example(), missing), missing


@pytest.mark.parametrize("name", FILES)
def test_compose_file_is_valid_against_the_specification(name) -> None:
    data, missing = load(name)
    assert missing == set(), f"variables without a value or default in .env.example: {missing}"
    compose = PyCompose.from_json(json.dumps({k: v for k, v in data.items() if not k.startswith("x-")}))
    assert compose.service_names()


def test_the_validation_catches_mistakes() -> None:
    data, _ = load("docker-compose.yaml")
    broken = {k: v for k, v in data.items() if not k.startswith("x-")}
    broken["services"]["postgres"]["healthcheck"]["retries"] = "many"
    with pytest.raises(ValueError, match='invalid type: string "many"'):
        PyCompose.from_json(json.dumps(broken))


def test_the_stack_has_its_services_with_healthchecks() -> None:
    services = load("docker-compose.yaml")[0]["services"]
    assert set(services) == {"postgres", "redis", "mlflow", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                             "airflow-dag-processor", "airflow-triggerer", "service"}  # fmt: skip
    for name, service in services.items():
        if name != "airflow-init":  # one-shot
            assert "healthcheck" in service, name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] in ("service_healthy", "service_completed_successfully"), (name, dependency)
    assert services["airflow-apiserver"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    celery = load("docker-compose.celery.yaml")[0]["services"]
    assert celery["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "airflow-worker" in celery


def test_no_secret_is_written_in_a_file() -> None:
    """Every credential in the compose files is a variable, and .env.example only holds placeholders."""
    text = "\n".join((PROJECT / name).read_text() for name in FILES)
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|_KEY)\s*:", line) and "${" not in line:
            pytest.fail(f"a credential with a literal value: {line.strip()}")
        assert not re.search(r"://[^$/\s]+:[^$@\s]+@", line), f"credentials in a URL: {line.strip()}"
    secrets = {k: v for k, v in env_example().items() if re.search(r"PASSWORD|SECRET|_KEY", k)}
    assert secrets and set(secrets.values()) == {"CHANGE-ME"}
    assert ".env" in (PROJECT / ".gitignore").read_text().split()


def test_images_follow_the_pinned_versions() -> None:
    pins = dict(line.split("==", 1) for line in (PROJECT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))  # fmt: skip
    dockerfile = (PROJECT / "Dockerfile").read_text()
    airflow = re.search(r"apache/airflow:([0-9.]+)-python(3\.\d+)", dockerfile)
    assert airflow and airflow.group(1) == pins["apache-airflow"] and airflow.group(2) == "3.11"
    assert "-r /opt/fairway/requirements.txt" in dockerfile  # the same pins inside the image


def test_the_production_feature_store_reads_its_services_from_the_environment() -> None:
    config = yaml.safe_load((PROJECT / "feature_repo" / "feature_store.production.yaml").read_text())
    assert config["online_store"] == {"type": "redis", "connection_string": "${FAIRWAY_REDIS_CONNECTION}"}
    assert (
        config["registry"]["registry_type"] == "sql" and config["registry"]["path"] == "${FAIRWAY_FEAST_REGISTRY_URL}"
    )
    env = load("docker-compose.yaml")[0]["x-fairway-env"]
    assert env["FAIRWAY_FEAST_CONFIG"] == "production"
    assert Path(PROJECT / "docker" / "create-databases.sh").stat().st_mode & 0o111
