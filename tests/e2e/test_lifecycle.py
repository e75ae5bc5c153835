"""As a user, on `make up`'s stack (LocalExecutor on SQLite; CeleryExecutor with two workers on PostgreSQL and
Redis): the whole lifecycle through the real scheduler, the command line and Airflow's REST API (see
tests/e2e/lifecycle.py), then what it left: the runs and their states, the registry with its approvals, the
prediction records, the monitoring reports, the service answering with the new champion after a restart, no file
in the repository checkout, and no process after `make down`.

One stack per executor, shared by the tests of this module (module-scoped, parametrized)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.bento.serving import free_port
from tests.e2e import lifecycle
from tests.e2e.lifecycle import COMMENT, STACK, USECASE, Scenario, Stack

# the first test of each executor runs the lifecycle: about 10 minutes here, twice that on a loaded machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2700)]
PROJECT = lifecycle.PROJECT
SCENARIO = Scenario()
# what the stack's settings decide; a value inherited from the test session would override them
INHERITED = ("MLFLOW_TRACKING_URI", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR", "BENTOML_HOME",
             "FAIRWAY_APPROVAL_MODE", "FAIRWAY_DECISION_LOG_URL", "FAIRWAY_LEDGER_URL", "FAIRWAY_FEAST_CONFIG",
             "FAIRWAY_FEAST_REGISTRY_URL", "FAIRWAY_REDIS_CONNECTION", "FAIRWAY_USECASE", "FAIRWAY_USECASES_DIR",
             "AIRFLOW__CORE__UNIT_TEST_MODE")  # fmt: skip
CACHES = ("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis")
STRAY = ("mlflow.db", "mlruns", "mlartifacts", "airflow.cfg", "airflow.db", "logs", "webserver_config.py", "bentoml")


def checkout_state() -> set[str]:
    """`git status --porcelain --ignored` of the checkout, without the caches and the venv."""
    status = subprocess.run(["git", "-C", str(PROJECT), "status", "--porcelain", "--ignored"], capture_output=True,
                            text=True, check=True).stdout.splitlines()  # fmt: skip
    return {line for line in status if not any(part in line for part in (*CACHES, ".venv"))}


def new_in_checkout(before: set[str], after: set[str]) -> list[str]:
    """Entries that appeared. Work on the sources goes on while the stack runs (people edit, tests write their
    caches): edits of tracked files and new Python or Markdown files in source folders are not the stack's."""
    sources = ("include/", "dags/", "plugins/", "tests/", "bench/", "bento/", "docker/", "feature_repo/")
    found = []
    for line in sorted(after - before):
        status, path = line[:2], line[3:]
        if status.strip() in ("M", "MM", "AM", "A", "D", "R"):
            continue
        if path.startswith(sources) and path.endswith((".py", ".md", ".yaml", ".yml", ".json")):
            continue
        found.append(line)
    return found


def stray_files(since: float) -> list[str]:
    """Files with the names an Airflow, MLflow or BentoML process writes into its working directory, made in the
    checkout (outside .git, .venv and .fairway) since `since`."""
    found = []
    for root, dirs, files in os.walk(PROJECT):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", ".fairway", *CACHES)]
        for name in [*files, *dirs]:
            path = Path(root) / name
            if name in STRAY and path.stat().st_mtime >= since:
                found.append(str(path.relative_to(PROJECT)))
    return found


@pytest.fixture(scope="module", params=["local", "celery"])
def run(request):  # noqa: ANN201
    executor = request.param
    # the postgres user (the cluster's owner when tests run as root) must reach FAIRWAY_HOME/run/postgres
    root = Path(tempfile.mkdtemp(prefix=f"fairway-e2e-{executor}-"))
    root.chmod(0o755)
    home = root / "home"
    ports = {name: free_port() for name in
             ("AIRFLOW_PORT", "MLFLOW_PORT", "SERVICE_PORT", "EVIDENTLY_PORT", "POSTGRES_PORT", "REDIS_PORT")}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    # the log servers too (fixed ports by default: 8793, 8794), so that a stack already running here is no obstacle
    ports.update({"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": free_port(),
                  "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": free_port()})  # fmt: skip
    env.update({**{k: str(v) for k, v in ports.items()}, "FAIRWAY_HOME": str(home),
                "AIRFLOW_HOME": str(home / "airflow"), "FAIRWAY_PSEUDONYM_KEY": "e2e-key"})  # fmt: skip
    before, since = checkout_state(), time.time()
    try:
        up_seconds = lifecycle.up(env, executor)
        stack = Stack.from_home(home, env)
        print(f"\n{executor}: stack up in {up_seconds:.0f} s")
        result = lifecycle.run_lifecycle(stack, SCENARIO)
        result["followed"] = followed_champion(stack)
        started = time.monotonic()
        restart = subprocess.run([*STACK, "restart-service"], env=env, capture_output=True, text=True, timeout=300)
        assert restart.returncode == 0, restart.stdout + restart.stderr
        result["phases"]["service restarted"] = round(time.monotonic() - started, 1)
        yield {"executor": executor, "env": env, "home": home, "stack": stack, "before": before, "since": since,
               "up_seconds": up_seconds, **result}  # fmt: skip
    finally:
        subprocess.run([*STACK, "down"], env=env, capture_output=True, text=True, timeout=300)
        shutil.rmtree(root, ignore_errors=True)


def followed_champion(stack: Stack, timeout: float = 60) -> dict[str, Any]:
    """What the service started with the first champion answers after the retraining's approval and packaging,
    without a restart: its /model, once it names the registry's champion (or the last answer at the timeout)."""
    from mlflow import MlflowClient

    uri = stack.env["MLFLOW_TRACKING_URI"]
    version = str(MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias("credit-risk",
                                                                                              "champion").version)
    deadline, model = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        model = httpx.get(f"{stack.env['SERVICE_URL']}/model", timeout=30).json()
        if model.get("mlflow_version") == version and model.get("serving"):
            break
        time.sleep(1)
    answer = httpx.post(f"{stack.env['SERVICE_URL']}/predict", json={"customer_id": "C0000001"}, timeout=30)
    return {"champion": version, "model": model, "status": answer.status_code, "answer": answer.json()}


def champion(run: dict[str, Any]) -> Any:
    from mlflow import MlflowClient

    uri = run["stack"].env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return client, client.get_model_version_by_alias("credit-risk", "champion")


def test_every_run_succeeded_through_the_scheduler(run) -> None:
    stack, months, scored = run["stack"], run["months"], run["scored"]
    features = stack.runs("feature_pipeline")
    # one backfill run per month and none of its own: unpausing scheduled no interval without data
    assert sorted(r["logical_date"][:7] for r in features) == months
    assert {r["run_type"] for r in features} == {"backfill"}
    batch = stack.runs("batch_inference")
    assert sorted(r["logical_date"][:7] for r in batch) == scored and {r["run_type"] for r in batch} == {"backfill"}
    training = stack.runs("training")
    assert [r["run_type"] for r in training] == ["manual", "asset_triggered"]
    assert [r["run_type"] for r in stack.runs("fairness_gate")] == ["asset_triggered"] * 2
    assert [r["run_type"] for r in stack.runs("monitoring")] == ["asset_triggered"] * len(scored)
    for dag_id in ("feature_pipeline", "training", "fairness_gate", "batch_inference", "monitoring"):
        assert {r["state"] for r in stack.runs(dag_id)} == {"success"}, dag_id
    # the retraining ran on the request of the drifted month: its window ends there, its lineage names the drift
    frame = stack.xcom("training", run["runs"]["training"][1], "build_training_frame")
    assert frame["window_end"] == scored[-1]
    assert any(reason.startswith(f"data drift in {scored[-1]}") for reason in frame["trigger"]), frame["trigger"]
    # both gates waited for a person and were answered through the REST API; while they waited, nothing moved
    assert stack.waiting_champion == dict(zip(run["runs"]["fairness_gate"], [None, "1"], strict=True))
    for gate in run["runs"]["fairness_gate"]:
        states = {t["task_id"]: t["state"] for t in stack.task_instances("fairness_gate", gate)}
        assert states["human_approval"] == states["promote"] == states["package"] == "success", states
        assert states["auto_approval"] == states["reject_candidate"] == "skipped", states


def test_the_registry_holds_the_approved_retrained_champion(run) -> None:
    client, current = champion(run)
    assert str(current.version) == "2"
    first = client.get_model_version("credit-risk", "1")
    for version in (first, current):
        tags = version.tags
        assert tags["fairway.gate_decision"] == "pass", tags
        assert tags["fairway.approval.decision"] == "approved"
        assert tags["fairway.approval.approver"] == "admin"  # the user whose token answered
        assert tags["fairway.approval.comment"] == COMMENT
        assert tags["fairway.approval.mode"] == "human"
        assert len(tags["fairway.gate_report_sha256"]) == 64
        assert tags["fairway.approval.evidence_sha256"] == tags["fairway.gate_report_sha256"]
        assert tags["fairway.bento"].startswith("fairway_credit_risk:")
        assert tags["fairway.documentation"].endswith("model_documentation.html")
        written = run["home"] / "reports" / USECASE / "documentation" / f"credit-risk-v{version.version}"
        assert (written / "model_documentation.html").stat().st_size > 10_000
    assert current.tags["fairway.previous_champion"] == "1"


def test_prediction_records_of_the_scored_months(run) -> None:
    home = run["home"]
    for month in run["scored"]:
        records = pd.read_parquet(home / "records" / USECASE / "predictions" / f"{month}.parquet")
        snapshot = pd.read_parquet(home / "data" / "raw" / USECASE / month / "snapshot.parquet")
        assert len(records) == len(snapshot) > 1000
        assert set(records["model_version"]) == {"1"}  # scored before the retraining
        assert records["subject"].is_unique and not records["subject"].isin(snapshot["customer_id"]).any()


def test_monitoring_reports_and_the_retraining_request(run) -> None:
    folder = run["home"] / "reports" / USECASE / "monitoring"
    history = pd.read_csv(folder / "history.csv", dtype={"month": str, "judged_month": str})
    assert list(history["month"]) == run["scored"]
    quiet, drifted = history.iloc[0], history.iloc[-1]
    assert not quiet["retraining_requested"]
    assert drifted["retraining_requested"] and drifted["drift_share"] >= 0.3
    assert "data drift" in drifted["reasons"]
    assert drifted["judged_month"] == run["scored"][0]  # the first scored month's decisions met their outcomes
    for month in run["scored"]:
        assert (folder / month / "drift.html").stat().st_size > 10_000
    assert (folder / "index.html").is_file()


def test_the_stacks_evidently_ui_shows_every_monitored_month(run) -> None:
    """`make up`'s Evidently UI was running while the monitoring tasks wrote their snapshots: its own watcher took
    them in (nothing reloaded by hand), and the dashboard's drift-share line has a point per scored month equal to
    the history's."""
    from fairway.config import load_usecase
    from fairway.evidently_workspace import project_id
    from tests.evidently_ui import dashboard, panel_series, projects

    url = run["stack"].env["EVIDENTLY_URL"]
    history = pd.read_csv(run["home"] / "reports" / USECASE / "monitoring" / "history.csv", dtype={"month": str})
    pid = str(project_id(load_usecase(USECASE)))
    assert [p["id"] for p in projects(url)] == [pid]
    panels = {p["title"]: p for p in dashboard(url, pid)["panels"]}
    share = panel_series(url, pid, panels["Share of drifted model inputs"])["drift share"]
    assert share == pytest.approx(dict(zip(history["month"], history["drift_share"], strict=True)))
    by_sex = panel_series(url, pid, panels["Decline rate by sex"])
    assert set(by_sex) == {"female", "male"} and all(set(v) == set(run["scored"]) for v in by_sex.values())


def test_the_service_followed_the_retrained_champion_without_a_restart(run) -> None:
    followed = run["followed"]
    _, current = champion(run)
    assert followed["champion"] == str(current.version) and followed["model"]["mlflow_version"] == followed["champion"]
    assert followed["status"] == 200 and followed["answer"]["model_version"] == followed["champion"], followed


def test_the_restarted_service_answers_with_the_new_champion(run) -> None:
    _, current = champion(run)
    service = run["stack"].env["SERVICE_URL"]
    model = httpx.get(f"{service}/model", timeout=30)
    assert model.status_code == 200 and model.json()["mlflow_version"] == str(current.version)
    answer = httpx.post(f"{service}/predict", json={"customer_id": "C0000001"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == str(current.version)
    # the decision is recorded in the stack's decision log (PostgreSQL with Celery, SQLite locally)
    url = run["stack"].env.get("FAIRWAY_DECISION_LOG_URL") or (
        f"sqlite:///{run['home'] / 'records' / USECASE / 'decisions.db'}"
    )
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT model_version FROM fairway_decisions WHERE request_id = :r"),
                                  {"r": answer.json()["request_id"]}).all()  # fmt: skip
    engine.dispose()
    assert [tuple(r) for r in rows] == [(str(current.version),)]


def test_the_stack_kept_its_state_where_its_settings_say(run) -> None:
    """Celery: the tasks spread over both workers; Airflow's runs and Celery's results in PostgreSQL, Feast's
    registry in PostgreSQL and its online store in Redis. Local: Airflow standalone on SQLite, Feast embedded."""
    import redis

    env, home = run["stack"].env, run["home"]
    expected_runs = len(run["months"]) + 2 + 2 + 2 * len(run["scored"])
    if run["executor"] == "local":
        assert "AIRFLOW__CORE__EXECUTOR" not in env and "FAIRWAY_FEAST_CONFIG" not in env
        airflow_db = f"sqlite:///{home / 'airflow' / 'airflow.db'}"
        registry_db = f"sqlite:///{home / 'feast' / USECASE / 'registry.db'}"
        assert (home / "feast" / USECASE / "online.db").stat().st_size > 100_000
        assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    else:
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        logs = home / "run"
        received = {
            name: (logs / f"{name}.log").read_text().count("execute_workload") for name in ("worker-1", "worker-2")
        }
        assert all(count > 0 for count in received.values()), received  # both workers ran tasks
        airflow_db, registry_db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], env["FAIRWAY_FEAST_REGISTRY_URL"]
        assert airflow_db.startswith("postgresql") and registry_db.startswith("postgresql")
        assert env["MLFLOW_TRACKING_URI"].startswith("postgresql") and env["FAIRWAY_LEDGER_URL"].startswith(
            "postgresql"
        )
        engine = sa.create_engine(airflow_db)
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM celery_taskmeta")).scalar() > 0  # results
        engine.dispose()
        host, port = env["FAIRWAY_REDIS_CONNECTION"].split(":")
        assert redis.Redis(host=host, port=int(port), db=0).dbsize() > 1000  # one key per customer online
        password = (home / "run" / "postgres" / "password").read_text().strip()
        commands = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert password not in commands  # the database password is in no command line (`ps` shows them to all)
    engine = sa.create_engine(airflow_db)
    with engine.connect() as connection:
        succeeded = connection.execute(sa.text("SELECT count(*) FROM dag_run WHERE state = 'success'")).scalar()
    engine.dispose()
    assert succeeded == expected_runs
    engine = sa.create_engine(registry_db)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM feature_views")).scalar() == 3
    engine.dispose()


def json_output(text: str) -> Any:
    """The JSON a CLI printed, after whatever log lines it printed before it on stdout (a graphviz notice)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("[", "{")) and not line.startswith("[py."))
    return json.loads("\n".join(lines[start:]))


def test_the_ecosystem_clis_see_the_running_stack_through_fairway_env(run) -> None:
    """A user's shell in the checkout, FAIRWAY_HOME only: `eval "$(fairway env)"` takes stack.env, and Airflow's,
    Feast's, MLflow's and BentoML's own CLIs read the stack's stores (PostgreSQL and Redis with Celery)."""
    bin_dir = PROJECT / ".venv" / "bin"
    bin_dir = bin_dir if bin_dir.is_dir() else Path(os.sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRWAY_", "AIRFLOW", "MLFLOW_", "BENTOML_"))}
    script = f"""eval "$({bin_dir}/fairway env)"
{bin_dir}/airflow dags list -o json > "$OUT/dags.json"
{bin_dir}/feast feature-views list > "$OUT/views.txt"
{bin_dir}/mlflow experiments search > "$OUT/experiments.txt"
{bin_dir}/bentoml list -o json > "$OUT/bentos.json"
"""
    out = run["home"].parent / "cli"
    out.mkdir(exist_ok=True)
    env.update({"FAIRWAY_HOME": str(run["home"]), "OUT": str(out)})
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=PROJECT, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    paused = {d["dag_id"]: d["is_paused"] for d in json_output((out / "dags.json").read_text())}
    assert {"training", "fairness_gate", "monitoring", "feature_pipeline", "batch_inference"} <= set(paused)
    assert not any(str(paused[d]).lower() == "true" for d in ("training", "fairness_gate", "monitoring")), paused
    views = (out / "views.txt").read_text()
    assert all(name in views for name in ("customer_financials", "customer_demographics", "customer_labels"))
    assert f"fairway-{USECASE}" in (out / "experiments.txt").read_text()
    _, current = champion(run)
    assert any(b["tag"].startswith(f"fairway_{USECASE}:") for b in json_output((out / "bentos.json").read_text()))
    assert current.tags.get("fairway.bento", "").startswith(f"fairway_{USECASE}:")


def test_nothing_was_written_into_the_checkout(run) -> None:
    assert new_in_checkout(run["before"], checkout_state()) == []
    assert stray_files(run["since"]) == []


def test_down_stops_every_process(run) -> None:
    seconds, output = lifecycle.down(run["env"])
    assert "left" not in output, output
    left = subprocess.run(["pgrep", "-f", str(run["home"])], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes still using {run['home']}: {left}"
    print(f"\n{run['executor']}: up {run['up_seconds']:.0f} s, phases {run['phases']}, down {seconds:.0f} s")
