"""docker-compose.yaml (and its Celery variant) against the Compose specification, the way `docker compose config`
reads it: YAML anchors and merges resolved, variables interpolated from .env.example, then validated with the
compose-spec bindings (no Docker engine here). Plus the rules of this stack: healthchecks, no secrets in files,
the pinned versions, and its security defaults: ports on 127.0.0.1, MLflow behind its basic-auth app (run here for
real), and the placeholder check (docker/check-secrets.sh, run here for real) in front of every service that takes a
secret."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from compose_spec import PyCompose

from tests.bento.serving import stop_process
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
                             "airflow-dag-processor", "airflow-triggerer", "service", "evidently", "prometheus",
                             "grafana"}  # fmt: skip
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


# --- security defaults ---------------------------------------------------------------------------------------------

CHECK = "fairway-check-secrets"
SCRIPT = PROJECT / "docker" / "check-secrets.sh"
LOCAL = {"127.0.0.1", "[::1]"}
# the entrypoints of the upstream images the placeholder check wraps
UPSTREAM_ENTRYPOINTS = {"postgres": "docker-entrypoint.sh", "redis": "docker-entrypoint.sh", "grafana/grafana": "/run.sh"}
SECRET_NAMES = sorted(k for k in env_example() if re.search(r"PASSWORD|SECRET|_KEY", k))


def merge(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge of a service defined twice (later file, or `extends`): mappings merge, ports and volumes
    add up, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: merge(base[k], v, k) if k in base else v for k, v in override.items()}}
    if key in ("ports", "volumes", "expose") and isinstance(base, list) and isinstance(override, list):
        return base + override
    return override


def services(*names: str, raw: bool = False, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The services of `docker compose -f NAME...` as Compose merges them (with `extends` of the base file),
    interpolated from `env` (default .env.example), or `raw` (anchors resolved, variables left as written)."""

    def read(name: str) -> dict[str, Any]:
        data = yaml.safe_load((PROJECT / name).read_text())
        return data if raw else interpolate(data, env_example() if env is None else env, set())

    files = {name: read(name) for name in ("docker-compose.yaml", *names)}
    merged: dict[str, dict[str, Any]] = {}
    for data in files.values():
        for name, service in data["services"].items():
            if "extends" in service:
                extends = service["extends"]
                base = files[extends.get("file", "docker-compose.yaml")]["services"][extends["service"]]
                service = merge(base, {k: v for k, v in service.items() if k != "extends"})
            merged[name] = merge(merged[name], service) if name in merged else service
    return merged


def published_addresses(service: dict[str, Any]) -> list[str]:
    """The host address each published port binds ("" = every interface, Docker's default)."""
    addresses = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):  # long syntax
            addresses.append(str(entry.get("host_ip", "")))
            continue
        spec = str(entry).split("/")[0]
        host, _, rest = spec.rpartition("]") if spec.startswith("[") else ("", "", spec)
        parts = rest.lstrip(":").split(":")
        addresses.append(f"{host}]" if host else (parts[0] if len(parts) == 3 else ""))
    return addresses


def test_the_port_check_sees_ports_open_to_every_interface() -> None:
    """The detector itself: Docker publishes on 0.0.0.0 unless an address is given."""
    for entry, address in (("5000:5000", ""), ("5000", ""), ("0.0.0.0:5000:5000", "0.0.0.0"),
                           ("127.0.0.1:5000:5000/tcp", "127.0.0.1"), ("[::1]:5000:5000", "[::1]"),
                           ({"target": 5000, "published": 5000}, ""),
                           ({"target": 5000, "published": 5000, "host_ip": "127.0.0.1"}, "127.0.0.1")):  # fmt: skip
        assert published_addresses({"ports": [entry]}) == [address], entry
    everywhere = services("docker-compose.celery.yaml", env={**env_example(), "FAIRWAY_BIND_ADDRESS": "0.0.0.0"})
    assert {a for s in everywhere.values() for a in published_addresses(s)} == {"0.0.0.0"}


@pytest.mark.parametrize("overlay", [(), ("docker-compose.celery.yaml",)])
def test_every_published_port_binds_localhost_by_default(overlay) -> None:
    merged = services(*overlay)
    assert "FAIRWAY_BIND_ADDRESS" not in env_example()  # the default applies
    published = {name: published_addresses(s) for name, s in merged.items() if s.get("ports")}
    assert set(published) == {"mlflow", "airflow-apiserver", "service", "evidently", "grafana"}  # Prometheus: internal
    for name, addresses in published.items():
        assert set(addresses) <= LOCAL, (name, addresses)
    assert not any(s.get("network_mode") == "host" for s in merged.values())


def test_mlflow_is_not_published_without_authentication() -> None:
    merged, raw = services("docker-compose.celery.yaml"), services("docker-compose.celery.yaml", raw=True)
    mlflow = merged["mlflow"]
    if mlflow.get("ports"):
        command = mlflow["command"]
        assert command[:2] == ["mlflow", "server"] and command[command.index("--app-name") + 1] == "basic-auth"
        assert "--disable-security-middleware" not in command
        assert "*" not in command[command.index("--allowed-hosts") + 1].split(",")
        env = raw["mlflow"]["environment"]
        assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")  # required, from .env
        assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_FLASK_SECRET_KEY:?")
        ini = PROJECT / env["MLFLOW_AUTH_CONFIG_PATH"].removeprefix("/opt/fairway/")
        assert f"COPY --chown=airflow:root docker/{ini.name} {env['MLFLOW_AUTH_CONFIG_PATH']}" in (
            PROJECT / "Dockerfile").read_text()  # fmt: skip
        auth = configparser.ConfigParser()
        auth.read(ini)
        assert auth["mlflow"]["authorization_function"] == "mlflow.server.auth:authenticate_request_basic_auth"
        assert "admin_password" not in auth["mlflow"]  # the password comes from .env only
    for name, service in merged.items():  # every Fairway container logs in to it
        if "MLFLOW_TRACKING_URI" in service.get("environment", {}):
            env = raw[name]["environment"]
            assert env["MLFLOW_TRACKING_PASSWORD"] == env.get("MLFLOW_AUTH_ADMIN_PASSWORD",
                                                              "${MLFLOW_ADMIN_PASSWORD:?set MLFLOW_ADMIN_PASSWORD in .env}")  # fmt: skip
            assert env["MLFLOW_TRACKING_USERNAME"] == "${MLFLOW_ADMIN_USER:-admin}", name


def test_the_image_installs_what_the_mlflow_auth_app_needs() -> None:
    dockerfile = (PROJECT / "Dockerfile").read_text()
    pins = {line.split("==")[0].lower(): line.split("==")[1] for line in (PROJECT / "requirements.txt").read_text()
            .splitlines() if "==" in line and not line.startswith("#")}  # fmt: skip
    for package in ("flask-wtf", "wtforms"):
        pinned = re.search(rf"{package}==([0-9.]+)", dockerfile)
        assert pinned or package in pins, f"the image does not install {package} (mlflow[auth])"
        if pinned and package in pins:
            assert pinned.group(1) == pins[package], package


def test_the_placeholder_check_wraps_every_service_that_takes_a_secret() -> None:
    dockerfile = (PROJECT / "Dockerfile").read_text()
    assert f"COPY --chmod=0755 docker/check-secrets.sh /usr/local/bin/{CHECK}" in dockerfile
    assert SCRIPT.stat().st_mode & 0o111
    for overlay in ((), ("docker-compose.celery.yaml",)):
        merged, raw = services(*overlay), services(*overlay, raw=True)
        taking = {name for name, service in raw.items()
                  if any(f"${{{secret}" in json.dumps([service.get("environment"), service.get("command")])
                         for secret in SECRET_NAMES)}  # fmt: skip
        # every service takes one but Prometheus (it scrapes the service's unauthenticated /metrics internally)
        assert taking == set(merged) - {"prometheus"}, set(merged) - taking
        for name in taking:
            service = merged[name]
            entrypoint = service.get("entrypoint")
            assert isinstance(entrypoint, list) and CHECK in entrypoint, (name, entrypoint)
            assert entrypoint[: entrypoint.index(CHECK)] in ([], ["/usr/bin/dumb-init", "--"]), (name, entrypoint)
            assert entrypoint[-1] != CHECK or service.get("command"), name  # something to exec
            if service.get("image") == "fairway:latest":
                assert "build" in service, name  # the image the Dockerfile builds, with the script inside
            else:  # an upstream image: the script mounted, then the image's own entrypoint and command
                assert f"./docker/check-secrets.sh:/usr/local/bin/{CHECK}:ro" in service["volumes"], name
                image = service["image"].split(":")[0]
                assert entrypoint[-1] == UPSTREAM_ENTRYPOINTS[image], name  # the image's own entrypoint
                assert image == "grafana/grafana" or service["command"], name  # its command (Grafana's: none)


def run_check(shell: str, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shell, str(SCRIPT), *command], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=30)  # fmt: skip


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_the_check_refuses_placeholders_and_execs_the_command_otherwise(shell, tmp_path) -> None:
    marker = tmp_path / "started"
    start = ["touch", str(marker)]
    for env, command, named in (
        ({"POSTGRES_PASSWORD": "CHANGE-ME", "REDIS_PASSWORD": "a-real-one"}, start, ["POSTGRES_PASSWORD"]),
        ({"DB_URL": "postgresql://fairway:CHANGE-ME@postgres/airflow"}, start, ["DB_URL"]),
        ({"MULTI": "first line\nCHANGE-ME", "A_KEY": "CHANGE-ME"}, start, ["MULTI", "A_KEY"]),
        ({}, [*start, "--requirepass", "CHANGE-ME"], ["an argument of the command"]),
    ):
        done = run_check(shell, command, env)
        assert done.returncode == 78, (env, done)
        assert "refusing to start 'touch'" in done.stderr and "placeholder CHANGE-ME" in done.stderr
        assert all(name in done.stderr for name in named), done.stderr
        assert "fairway@postgres" not in done.stderr  # names, never values
        assert not marker.exists()
    done = run_check(shell, start, {"POSTGRES_PASSWORD": "8f0c2a", "URL": "redis://:s3cret@redis:6379/1"})
    assert done.returncode == 0 and marker.exists() and done.stderr == ""
    process = subprocess.Popen([shell, str(SCRIPT), "sh", "-c", "echo $$; exit 3"], stdout=subprocess.PIPE, text=True,
                               env={"PATH": os.environ["PATH"], "POSTGRES_PASSWORD": "8f0c2a"})  # fmt: skip
    out, _ = process.communicate(timeout=30)
    assert int(out) == process.pid and process.returncode == 3  # exec: the command is the same process
    assert run_check(shell, [], {}).returncode == 64


def test_the_compose_mlflow_command_refuses_the_placeholders_of_env_example() -> None:
    mlflow = services()["mlflow"]  # interpolated from .env.example as it is
    done = run_check("sh", mlflow["command"], {k: str(v) for k, v in mlflow["environment"].items()})
    assert done.returncode == 78 and "refusing to start 'mlflow'" in done.stderr
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_BACKEND_STORE_URI", "AIRFLOW__API_AUTH__JWT_SECRET", "FAIRWAY_PSEUDONYM_KEY"):  # fmt: skip
        assert name in done.stderr, name


def test_the_compose_mlflow_server_refuses_requests_without_a_login(tmp_path) -> None:
    """The mlflow service's own entrypoint, command and environment with real secrets, run here on 127.0.0.1
    (SQLite for PostgreSQL, a temporary folder for the volume)."""
    from tests.bento.serving import free_port

    secrets_env = {k: (secrets.token_hex(16) if v == "CHANGE-ME" else v) for k, v in env_example().items()}
    mlflow = services(env=secrets_env)["mlflow"]
    port, home = free_port(), tmp_path / "fairway"
    ini = tmp_path / "basic_auth.ini"
    shipped = PROJECT / mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"].removeprefix("/opt/fairway/")
    ini.write_text(shipped.read_text().replace("////fairway/", f"///{home}/"))
    home.mkdir()
    env = {k: str(v) for k, v in mlflow["environment"].items()} | {
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "HOME": str(tmp_path), "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    command = [str(v).replace("/fairway/", f"{home}/") for v in mlflow["command"]]
    command[command.index("--host") + 1], command[command.index("--port") + 1] = "127.0.0.1", str(port)
    assert mlflow["entrypoint"][-1] == CHECK
    log = open(tmp_path / "mlflow.log", "w")  # noqa: SIM115
    server = subprocess.Popen(["sh", str(SCRIPT), *command], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    url, admin = f"http://127.0.0.1:{port}", (secrets_env["MLFLOW_ADMIN_USER"], secrets_env["MLFLOW_ADMIN_PASSWORD"])
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:  # the healthcheck needs no login
                    break
            assert server.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server not healthy after 180 s"
            time.sleep(0.5)
        assert httpx.get(search, timeout=10).status_code == 401
        ui = httpx.get(f"{url}/", timeout=10)  # the UI too: the browser asks for the user and password
        assert ui.status_code == 401 and ui.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(search, auth=(admin[0], "wrong-password-123"), timeout=10).status_code == 401
        assert httpx.get(search, auth=admin, timeout=10).status_code == 200
        created = httpx.post(
            f"{url}/api/2.0/mlflow/experiments/create",
            json={"name": "compose"},
            auth=admin,
            headers={"Host": "mlflow:5000"},
            timeout=10,
        )  # as the other containers call it
        assert created.status_code == 200, created.text
        assert httpx.get(search, auth=admin, headers={"Host": "evil.example"}, timeout=10).status_code == 403
    finally:
        stop_process(server)
        log.close()


@pytest.mark.parametrize("files", [(), ("docker-compose.celery.yaml",)])
def test_the_pseudonym_key_comes_from_the_deployment_and_no_key_file_is_made(files, tmp_path, monkeypatch) -> None:
    """Every container that runs Fairway code requires FAIRWAY_PSEUDONYM_KEY from .env (`:?`) and names it in
    FAIRWAY_REQUIRED_SECRETS, so a process without it refuses to pseudonymise instead of creating a key file."""
    from fairway import settings

    raw, interpolated = services(*files, raw=True), services(*files)
    # the image's Evidently UI runs no Fairway code: it gets its own secret and none of Fairway's
    fairway = [name for name, service in interpolated.items()
               if service.get("image") == "fairway:latest" and service["command"][0] != "evidently"]  # fmt: skip
    assert {"airflow-scheduler", "service"} <= set(fairway), fairway
    assert set(interpolated["evidently"]["environment"]) == {"EVIDENTLY_SECRET", "DO_NOT_TRACK"}
    for name in fairway:
        environment = interpolated[name]["environment"]
        assert raw[name]["environment"]["FAIRWAY_PSEUDONYM_KEY"].startswith("${FAIRWAY_PSEUDONYM_KEY:?"), name
        assert "pseudonym" in environment["FAIRWAY_REQUIRED_SECRETS"].split(","), name
        assert environment["FAIRWAY_AIRFLOW_DB_URL"] == environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
    # what such a process does: with the key it uses it, without it it refuses and writes nothing
    monkeypatch.setenv("FAIRWAY_HOME", str(tmp_path))
    monkeypatch.setenv("FAIRWAY_REQUIRED_SECRETS", interpolated["service"]["environment"]["FAIRWAY_REQUIRED_SECRETS"])
    monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", "from-the-deployment")
    assert settings.secret("pseudonym") == b"from-the-deployment"
    monkeypatch.delenv("FAIRWAY_PSEUDONYM_KEY")
    with pytest.raises(settings.SettingsError, match="FAIRWAY_PSEUDONYM_KEY is not set"):
        settings.secret("pseudonym")
    assert not any(tmp_path.rglob("*")), "no key file was created"
