"""Benchmark: the lifecycle's wall time on `make up`'s stack (LocalExecutor; CeleryExecutor with two workers)
against the same DAG runs through dag.test() in one process, on the same data.

The lifecycle is tests/e2e/lifecycle.py's scenario (1,500 customers, 6 months ending at the latest complete
month, the drift in the last): feature_pipeline for every month (a backfill), training, fairness_gate,
batch_inference for two months, monitoring of each, the asset-triggered retraining and its gate. Approval by
policy (FAIRWAY_APPROVAL_MODE=auto) everywhere, so no person's reaction time is measured.

- **dag.test()** (the baseline): a fresh process, SQLite metadata DB, every run executed in that process with
  dag.test() in the scenario's order, the asset-triggered runs created by Airflow's scheduler code
  (include/local_runs.py). One import of each library for the whole lifecycle; nothing runs concurrently.
- **local**: `make up` (Airflow standalone: scheduler, LocalExecutor with parallelism 2, SQLite), the scenario
  through the CLI and REST. Every task is a fresh process.
- **celery**: `make up EXECUTOR=celery` (PostgreSQL, Redis, two Celery workers of concurrency 1).

Reported per setup: the lifecycle's wall time (data generation to the last gate; the stack's start and stop
are reported apart) and its ratio to dag.test(); the sum of the task durations; and Airflow's own overhead per
task: queued_when -> start_date of every task instance, from the REST API (the time a queued task waits for an
executor slot and its process to start), median, p90 and total.

    make bench      # or: .venv/bin/python bench/bench_lifecycle.py [--executors local,celery]
Results: bench/results/lifecycle.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "include"))

from local_services import free_port  # noqa: E402

from tests.e2e import lifecycle  # noqa: E402
from tests.e2e.lifecycle import USECASE, Scenario, Stack  # noqa: E402

PROGRESS = "@@"
DAGS = ["feature_pipeline", "training", "fairness_gate", "batch_inference", "monitoring"]
DROP = ("MLFLOW_TRACKING_URI", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR", "BENTOML_HOME",
        "FAIRWAY_DECISION_LOG_URL", "FAIRWAY_LEDGER_URL", "FAIRWAY_FEAST_CONFIG", "FAIRWAY_FEAST_REGISTRY_URL",
        "FAIRWAY_REDIS_CONNECTION", "FAIRWAY_USECASE", "FAIRWAY_USECASES_DIR", "AIRFLOW__CORE__UNIT_TEST_MODE",
        "AIRFLOW_HOME", "FAIRWAY_HOME")  # fmt: skip


def base_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env.update({"FAIRWAY_HOME": str(root / "home"), "AIRFLOW_HOME": str(root / "home" / "airflow"),
                "FAIRWAY_PSEUDONYM_KEY": "bench-key", "FAIRWAY_APPROVAL_MODE": "auto",
                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5"})  # fmt: skip
    return env


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def summarise_tasks(rows: list[dict]) -> dict:
    rows = [r for r in rows if r["state"] == "success"]
    overhead = [r["queued_to_start_s"] for r in rows]
    waiting = [r["scheduled_to_queued_s"] for r in rows]
    durations = [r["duration_s"] or 0.0 for r in rows]
    return {"tasks": len(rows), "overhead_median_s": round(percentile(overhead, 0.5), 2),
            "overhead_p90_s": round(percentile(overhead, 0.9), 2), "overhead_total_s": round(sum(overhead), 1),
            "slot_wait_total_s": round(sum(waiting), 1), "task_seconds_total": round(sum(durations), 1),
            "task_seconds_median": round(percentile(durations, 0.5), 1)}  # fmt: skip


def run_stack(executor: str, scenario: Scenario) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"fairway-bench-{executor}-"))
    root.chmod(0o755)  # the postgres user reaches FAIRWAY_HOME/run/postgres
    env = base_env(root)
    env.update({name: str(free_port()) for name in
                ("AIRFLOW_PORT", "MLFLOW_PORT", "SERVICE_PORT", "POSTGRES_PORT", "REDIS_PORT",
                 "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT")})  # fmt: skip
    try:
        print(f"\n{executor}: make up", flush=True)
        up_seconds = lifecycle.up(env, executor)
        print(f"  stack up: {up_seconds:.1f} s", flush=True)
        stack = Stack.from_home(root / "home", env)
        result = lifecycle.run_lifecycle(stack, scenario, log=lambda line: print(line, flush=True))
        rows = lifecycle.task_overheads(stack, DAGS)
        idle = lifecycle.run_idle(stack, DAGS, rows)
        per_dag = {}
        for dag_id in DAGS:
            per_dag[dag_id] = {
                **summarise_tasks([r for r in rows if r["dag_id"] == dag_id]),
                "run_idle_s": idle[dag_id],
            }
        down_seconds, _ = lifecycle.down(env)
        return {"executor": executor, "up_s": round(up_seconds, 1), "down_s": round(down_seconds, 1),
                "lifecycle_s": result["phases"]["lifecycle"], "phases": result["phases"],
                "tasks": summarise_tasks(rows), "per_dag": per_dag, "task_rows": rows}  # fmt: skip
    finally:
        subprocess.run([*lifecycle.STACK, "down"], env=env, capture_output=True, timeout=300)
        shutil.rmtree(root, ignore_errors=True)


def dagtest_inner(months: list[str], scenario: Scenario) -> dict:
    """In this (fresh) process: the same runs, each through dag.test(), in the scenario's order."""
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str, since: float) -> float:
        phases[name] = round(time.monotonic() - since, 1)
        print(f"{PROGRESS}  {name}: {phases[name]:.1f} s", flush=True)
        return time.monotonic()

    import local_runs

    from fairway.config import load_usecase
    from fairway.data import generate
    from fairway.features.store import apply_repo

    uc = load_usecase(USECASE)
    t = time.monotonic()
    generate(uc, scenario.customers, scenario.months, scenario.seed, scenario.months, start_month=months[0])
    apply_repo(uc)
    t = phase("data generated, Feast repo applied", t)

    def check(run) -> None:  # noqa: ANN001
        assert run.state == "success", f"{run.dag_id} {run.run_id}: {run.state}"

    window_end, scored = scenario.window_end(months), scenario.scored(months)
    for month in months:
        check(local_runs.run("feature_pipeline", {"usecase": USECASE, "month": month}))
    t = phase(f"feature_pipeline x {len(months)}", t)
    local_runs.unpause(["training", "fairness_gate", "monitoring"])
    check(local_runs.run("training", {"usecase": USECASE, "window_end": window_end,
                                      "window_months": scenario.train_months,
                                      "candidates": list(scenario.candidates)}))  # fmt: skip
    t = phase("training", t)
    triggered = local_runs.run_triggered()
    assert [r.dag_id for r in triggered] == ["fairness_gate"], [r.dag_id for r in triggered]
    for run in triggered:
        check(run)
    t = phase("fairness_gate v1", t)
    ran = []
    for month in scored:
        check(local_runs.run("batch_inference", {"usecase": USECASE, "month": month}))
        for run in local_runs.run_triggered():
            check(run)
            ran.append(run.dag_id)
    t = phase(f"batch_inference {', '.join(scored)} and what it triggered", t)
    assert ran == ["monitoring", "monitoring", "training", "fairness_gate"], ran
    lifecycle_s = round(time.monotonic() - started, 1)

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        durations = [ti.duration or 0.0 for ti in session.scalars(select(TaskInstance)) if ti.state == "success"]
    return {"executor": "dag.test()", "lifecycle_s": lifecycle_s, "phases": phases,
            "tasks": {"tasks": len(durations), "task_seconds_total": round(sum(durations), 1),
                      "task_seconds_median": round(percentile(durations, 0.5), 1)}}  # fmt: skip


def run_dagtest(months: list[str]) -> dict:
    root = Path(tempfile.mkdtemp(prefix="fairway-bench-dagtest-"))
    env = base_env(root)
    env.update({"AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "MLFLOW_LOGGING_LEVEL": "ERROR", "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"})  # fmt: skip
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True)
    try:
        print("\ndag.test(): airflow db migrate, then every run in one process", flush=True)
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, check=True, timeout=600)
        out = root / "dagtest.json"
        started = time.monotonic()
        log = root / "dagtest.log"
        with open(log, "w") as output:
            inner = subprocess.Popen([sys.executable, __file__, "--inner-dagtest", json.dumps(months), "--out", str(out)],
                                     env=env, stdout=subprocess.PIPE, stderr=output, text=True)  # fmt: skip
            for line in inner.stdout:  # the tasks print too: show the phases, keep the rest in the log
                if line.startswith(PROGRESS):
                    print(line.removeprefix(PROGRESS), end="", flush=True)
                else:
                    output.write(line)
        if inner.wait(timeout=3600) != 0:
            sys.exit(f"dag.test() lifecycle failed:\n{log.read_text()[-5000:]}")
        result = json.loads(out.read_text())
        result["process_s"] = round(time.monotonic() - started, 1)  # with the imports and Airflow's start
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def table(results: list[dict]) -> str:
    baseline = next(r for r in results if r["executor"] == "dag.test()")
    lines = ["| setup | lifecycle s | vs dag.test() | tasks | task s (sum) | task s (median) | queued -> start median / p90 s | queued -> start total s | scheduled -> queued total s | stack up / down s |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        t = r["tasks"]
        if "overhead_median_s" in t:
            overhead = f"{t['overhead_median_s']:.2f} / {t['overhead_p90_s']:.2f} | {t['overhead_total_s']:.0f} | {t['slot_wait_total_s']:.0f}"
        else:
            overhead = "– (in process) | – | –"
        updown = f"{r['up_s']:.0f} / {r['down_s']:.0f}" if "up_s" in r else "–"
        lines.append(f"| {r['executor']} | {r['lifecycle_s']:.0f} | {r['lifecycle_s'] / baseline['lifecycle_s']:.2f}x | "
                     f"{t['tasks']} | {t['task_seconds_total']:.0f} | {t['task_seconds_median']:.1f} | {overhead} | {updown} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", default="local,celery")
    parser.add_argument("--inner-dagtest", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scenario = Scenario()
    if args.inner_dagtest:
        result = dagtest_inner(json.loads(args.inner_dagtest), scenario)
        Path(args.out).write_text(json.dumps(result))
        return 0
    months = scenario.month_list()
    results = [run_dagtest(months)]
    for executor in [e for e in args.executors.split(",") if e]:
        results.append(run_stack(executor, scenario))
    RESULTS.mkdir(exist_ok=True)
    summary = {"scenario": {"customers": scenario.customers, "months": months, "seed": scenario.seed,
                            "train_months": scenario.train_months, "scored": scenario.scored(months)},
               "machine": {"cpus": os.cpu_count()}, "results": results}  # fmt: skip
    (RESULTS / "lifecycle.json").write_text(json.dumps(summary, indent=2))
    print("\n" + table(results))
    for r in results[1:]:
        print(f"\n{r['executor']} per DAG: " + "; ".join(
            f"{dag}: {s['tasks']} tasks, {s['task_seconds_total']} task s, queued -> start median "
            f"{s['overhead_median_s']} s, runs idle {s['run_idle_s']} s" for dag, s in r["per_dag"].items()))  # fmt: skip
    print(f"\nresults: {RESULTS / 'lifecycle.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
