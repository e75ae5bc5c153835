"""The README's commands for the ecosystem's own CLIs, typed as a user types them: a clean shell, another
directory, only `eval "$(.venv/bin/fairway env)"` between the user and the tools."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.sinks import free_port

BIN = Path(sys.executable).parent
ENV = 'eval "$(.venv/bin/fairway env)"'
FOREIGN = ("FAIRWAY_", "AIRFLOW", "MLFLOW_", "BENTOML_", "FEAST_", "FEATURE_REPO")


def _readme_block(command: str) -> list[str]:
    """The lines of the README's bash block that starts with `fairway env` and runs `command`, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", (PROJECT / "README.md").read_text(), flags=re.S)
    block = next(b for b in blocks if b.startswith(ENV) and command in b)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def _each(commands: list[str]) -> str:
    """A script that runs the commands one by one, each announced, so a failure or an output names its line."""
    return "\n".join(f"echo '>>> {c}'; {c}" for c in commands)


def _output_of(ran: subprocess.CompletedProcess, command: str) -> str:
    """What `command` printed (the script ran with .venv/bin/ spelled as this interpreter's bin)."""
    command = command.replace(".venv/bin/", f"{BIN}/")
    return next(part for part in ran.stdout.split(">>> ") if part.startswith(command))


def _clean_env(home: Path) -> dict[str, str]:
    """A user's shell: none of the variables this test session set, FAIRWAY_HOME only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    return {**env, "FAIRWAY_HOME": str(home)}


def _shell(script: str, home: Path, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    script = script.replace(".venv/bin/", f"{BIN}/")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                          env=_clean_env(home), cwd=cwd, timeout=timeout)  # fmt: skip


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - a local URL
        return answer.read()


@pytest.fixture(scope="module")
def month_ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FAIRWAY_HOME with December 2024 generated and in the offline store (what the README block materializes)."""
    tmp_path = tmp_path_factory.mktemp("readme")
    home = tmp_path / "user-home"
    steps = "fairway data generate --customers 150 --months 1 --start 2024-12 && fairway features apply && " \
            "fairway features ingest --month 2024-12"  # fmt: skip
    done = _shell(re.sub(r"\bfairway ", ".venv/bin/fairway ", steps), home, tmp_path)
    assert done.returncode == 0, done.stderr
    return home


def test_the_feast_block_runs_from_another_directory_in_a_clean_shell(month_ingested: Path, tmp_path: Path) -> None:
    lines = _readme_block("feast apply")
    assert lines[0] == ENV and any("feast ui " in line for line in lines)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = _shell(_each([line for line in lines if "feast ui " not in line]), month_ingested, elsewhere)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    assert "Traceback" not in ran.stderr
    protected = _output_of(ran, ".venv/bin/feast feature-views list --tags")
    assert "customer_demographics" in protected and "customer_financials" not in protected
    assert "customer_financials" in _output_of(ran, ".venv/bin/feast materialize")
    services = _output_of(ran, ".venv/bin/feast feature-services list")
    assert all(name in services for name in ("credit_model_v1", "fairness_audit_v1", "credit_labels_v1"))
    assert not (elsewhere / "data").exists() and not any(elsewhere.iterdir()), "the CLIs wrote into the cwd"
    assert (month_ingested / "feast" / "credit_risk" / "registry.db").is_file()


def test_feast_ui_serves_the_catalogue(month_ingested: Path, tmp_path: Path) -> None:
    ui = next(line for line in _readme_block("feast ui ") if "feast ui " in line)
    port = free_port()
    script = f'eval "$(.venv/bin/fairway env)"; exec {ui.replace("--port 8888", f"--port {port}")}'
    env = _clean_env(month_ingested)
    with subprocess.Popen(["bash", "-c", script.replace(".venv/bin/", f"{BIN}/")], env=env, cwd=tmp_path,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as server:  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, server.stderr.read() if server.stderr else "feast ui exited"
                try:
                    if _get(f"http://127.0.0.1:{port}/health") is not None:
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("feast ui did not answer /health within 120 s")
                    time.sleep(0.5)
            projects = json.loads(_get(f"http://127.0.0.1:{port}/projects-list.json"))
            assert [p["id"] for p in projects["projects"]] == ["credit_risk"]
            views = json.loads(_get(f"http://127.0.0.1:{port}/api/v1/feature_views?project=credit_risk"))
            names = {v["spec"]["name"] for v in views["featureViews"]}
            assert {"customer_financials", "customer_demographics", "customer_labels"} <= names
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_airflow_mlflow_and_bentoml_see_the_deployment_from_fairway_env(tmp_path: Path) -> None:
    home = tmp_path / "user-home"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lines = _readme_block("airflow dags list")
    assert lines[0] == ENV
    ran = _shell(_each([*lines, "env"]), home, elsewhere)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    dags = _output_of(ran, ".venv/bin/airflow dags list").splitlines()[1:]
    dag_ids = {line.split()[0] for line in dags if line.strip() and not line.startswith(("dag_id", "="))}
    assert {"feature_pipeline", "training", "fairness_gate", "batch_inference", "monitoring", "model_control",
            "retention", "erasure"} <= dag_ids, dags  # fmt: skip
    assert "example_bash_operator" not in dag_ids
    assert "Default" in _output_of(ran, ".venv/bin/mlflow experiments search")
    shell_env = dict(line.split("=", 1) for line in _output_of(ran, "env").splitlines()[1:] if "=" in line)
    assert shell_env["AIRFLOW_HOME"] == str(home / "airflow") and (home / "airflow" / "airflow.db").is_file()
    assert shell_env["MLFLOW_TRACKING_URI"] == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    assert shell_env["BENTOML_HOME"] == str(home / "bentoml")
    assert not any(elsewhere.iterdir()), "the CLIs wrote into the cwd"


def test_fairway_env_takes_the_running_stack_and_quotes_for_the_shell(tmp_path: Path) -> None:
    home = tmp_path / "user-home"
    (home / "run").mkdir(parents=True)
    odd = str(tmp_path / "a dir with 'quotes' and $dollars")
    (home / "run" / "stack.env").write_text(
        f"export AIRFLOW_HOME={shlex.quote(odd)}\n"
        "export MLFLOW_TRACKING_URI=postgresql+psycopg2://fairway@127.0.0.1:5433/mlflow\n"
        "export FAIRWAY_FEAST_CONFIG=production\n"
    )
    ran = _shell('eval "$(.venv/bin/fairway env)"; env', home, tmp_path)
    assert ran.returncode == 0, ran.stderr
    shell_env = dict(line.split("=", 1) for line in ran.stdout.splitlines() if "=" in line)
    assert shell_env["AIRFLOW_HOME"] == odd
    assert shell_env["MLFLOW_TRACKING_URI"] == "postgresql+psycopg2://fairway@127.0.0.1:5433/mlflow"
    assert shell_env["FEAST_FS_YAML_FILE_PATH"] == str(PROJECT / "feature_repo" / "feature_store.production.yaml")
    assert shell_env["FEATURE_REPO_DIR_ENV_VAR"] == str(PROJECT / "feature_repo")
    assert shell_env["FAIRWAY_USECASE"] == "credit_risk"
