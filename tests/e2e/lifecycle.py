"""The lifecycle on a running `make up` stack, driven as a person drives it: `fairway` and `airflow` on the command
line with `FAIRWAY_HOME/run/stack.env`, everything else through Airflow's REST API; the real scheduler runs every
DAG (no dag.test(), no Airflow in this process). Used by tests/e2e/test_lifecycle.py and bench/bench_lifecycle.py.

The months end at the latest complete month, as live data would: a monthly DAG with catchup=False schedules
exactly that interval when it is unpaused, so each monthly backfill reaches up to it, and unpausing creates no
run of its own (its interval already has the backfill's run) and no run for a month without data.

1. `fairway data generate` (the scenario's customers and seed; the drift episode starts in the last month) and
   `fairway features apply`;
2. `airflow backfill create` of `feature_pipeline` over every month (one run at a time, as the DAG declares),
   then the DAG unpaused;
3. as soon as the months of the first training window are ingested (while the backfill goes on): `training`
   triggered through POST /api/v2/dags/training/dagRuns (window of `train_months` months, Reweighing);
4. the asset-triggered `fairness_gate`: the human approval answered through PATCH .../hitlDetails once the task
   is awaiting input (each try answered once), unless the stack approves by policy;
5. `batch_inference` for the last two months through POST /api/v2/backfills, then unpaused; each month's
   `fairway_predictions` event triggers `monitoring`; the last month drifts and requests retraining;
6. the asset-triggered `training` (window ending at the drifted month) and its asset-triggered `fairness_gate`,
   approved like the first.

Every wait fails as soon as a run fails, with the failed task's log tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STACK = [sys.executable, str(PROJECT / "include" / "local_stack.py")]
sys.path.insert(0, str(PROJECT / "include"))
import local_stack  # noqa: E402

USECASE = "credit_risk"
COMMENT = "e2e: fairness table and gate report reviewed"


@dataclass(frozen=True)
class Scenario:
    """The data and the windows. With `train_months` = 2 and 6 months: v1 learns from month 1 and holds out
    month 2 (labels known by the end of month 3); months 5 and 6 are scored; month 6 drifts (the generator's
    drift episode) and, its scoring version's window having ended 3 months before (more than the 2 months of
    cooldown), requests retraining."""

    customers: int = 1500
    months: int = 6
    seed: int = 1
    train_months: int = 2
    scored_months: int = 2
    candidates: tuple[str, ...] = ("reweighing",)

    def month_list(self, now: datetime | None = None) -> list[str]:
        """`months` months ending at the latest complete month (the interval a monthly DAG schedules now)."""
        last = pd.Period(now or datetime.now(UTC), freq="M") - 1
        return [str(last - i) for i in range(self.months - 1, -1, -1)]

    def window_end(self, months: list[str]) -> str:
        return months[self.train_months]

    def scored(self, months: list[str]) -> list[str]:
        return months[-self.scored_months :]


class RunFailed(AssertionError):
    pass


@dataclass
class Stack:
    """A running stack, reached through its stack.env."""

    env: dict[str, str]
    api: httpx.Client = field(init=False)
    waiting_champion: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        token = local_stack.airflow_token(self.env)
        self.api = httpx.Client(base_url=f"{self.env['AIRFLOW_URL']}/api/v2", timeout=60,
                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    @classmethod
    def from_home(cls, home: Path, base: dict[str, str]) -> Stack:
        settings = local_stack.read_stack_env(home / "run" / "stack.env")
        assert settings, f"no {home / 'run' / 'stack.env'}: is the stack up?"
        return cls({**base, **settings, "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}"})

    # --- command line, as `source stack.env` then the command ---------------------------------------------

    def cli(self, *command: str, timeout: float = 300, retries: int = 0) -> str:
        for attempt in range(retries + 1):
            done = subprocess.run(list(command), env=self.env, capture_output=True, text=True, timeout=timeout,
                                  cwd=self.env["FAIRWAY_HOME"])  # fmt: skip
            if done.returncode == 0:
                return done.stdout
            if attempt < retries and "database is locked" in (done.stdout + done.stderr):
                time.sleep(2)  # SQLite under concurrent access (local stack)
                continue
            raise AssertionError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
        raise AssertionError("unreachable")

    def fairway(self, *args: str, timeout: float = 300) -> str:
        return self.cli(str(BIN / "fairway"), "--usecase", USECASE, *args, timeout=timeout)

    def airflow(self, *args: str, timeout: float = 300) -> str:
        return self.cli(str(BIN / "airflow"), *args, timeout=timeout, retries=5)

    # --- REST -------------------------------------------------------------------------------------------

    def call(self, method: str, path: str, retries: int = 5, **kwargs: Any) -> Any:
        """One REST call; retried on 503 (SQLite's 'database is locked' under concurrent access)."""
        for attempt in range(retries + 1):
            answer = self.api.request(method, path, **kwargs)
            if answer.status_code == 503 and attempt < retries:
                time.sleep(2)
                continue
            assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text[:1000]}"
            return answer.json()
        raise AssertionError("unreachable")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "run_after", "limit": 100})["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        entry = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
                          params={"deserialize": True})  # fmt: skip
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value

    def failure(self, dag_id: str, run_id: str) -> str:
        """The failed tasks of a run with the tail of each one's log."""
        lines = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] in ("failed", "upstream_failed"):
                lines.append(f"--- {ti['task_id']} [{ti['map_index']}] {ti['state']} try {ti['try_number']}")
                if ti["state"] == "failed":
                    with contextlib.suppress(AssertionError, httpx.HTTPError):
                        log = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
                                               f"{ti['try_number']}", params={"map_index": ti["map_index"]})  # fmt: skip
                        content = log.get("content", [])
                        events = [e.get("event", "") if isinstance(e, dict) else str(e) for e in content]
                        lines.extend(events[-40:])
        return "\n".join(lines)

    def check(self, dag_id: str, run: dict[str, Any]) -> bool:
        """True when the run succeeded, False while it runs; RunFailed with the failed tasks' logs."""
        if run["state"] == "failed":
            raise RunFailed(f"{dag_id} {run['dag_run_id']} failed:\n{self.failure(dag_id, run['dag_run_id'])}")
        return run["state"] == "success"

    def wait_runs(
        self, dag_id: str, count: int, timeout: float, after: str | None = None, every: float = 2
    ) -> list[dict[str, Any]]:
        """Wait until `count` runs of `dag_id` (created after the ISO time `after`, if given) have succeeded."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [r for r in self.runs(dag_id) if after is None or _later(r["queued_at"], after)]
            done = [r for r in runs if self.check(dag_id, r)]
            if len(done) >= count:
                return done
            if time.monotonic() > deadline:
                states = [(r["dag_run_id"], r["state"]) for r in runs]
                raise TimeoutError(f"{dag_id}: {len(done)} of {count} runs succeeded after {timeout:.0f} s: {states}")
            time.sleep(every)

    def wait_run(self, dag_id: str, run_id: str, timeout: float, every: float = 2) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if self.check(dag_id, run):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f} s")
            time.sleep(every)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})["dag_run_id"]

    def unpause(self, dag_id: str) -> None:
        assert self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})["is_paused"] is False

    def backfill(self, dag_id: str, first: str, last: str) -> dict[str, Any]:
        """POST /api/v2/backfills for the months first..last (logical dates: their first days), one at a time."""
        return self.call("POST", "/backfills", json={"dag_id": dag_id, "from_date": f"{first}-01T00:00:00Z",
                                                     "to_date": f"{last}-01T00:00:00Z", "max_active_runs": 1})  # fmt: skip

    def next_run(self, dag_id: str, after: str, run_type: str, timeout: float) -> dict[str, Any]:
        """The first run of `run_type` queued after the ISO time `after`."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.runs(dag_id) if r["run_type"] == run_type and _later(r["queued_at"], after)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {run_type} run of {dag_id} after {after} within {timeout:.0f} s")
            time.sleep(1)

    def champion(self) -> str | None:
        """The version with alias `champion` in the stack's MLflow registry, if any."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        uri = self.env["MLFLOW_TRACKING_URI"]
        try:
            version = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
                "credit-risk", "champion"
            )
        except MlflowException:
            return None
        return str(version.version)

    def approve(self, run_id: str, timeout: float) -> dict[str, Any]:
        """Answer the gate's human approval through REST once the task awaits input (each try once, a few seconds
        after it started waiting: an answer within about a second of the pause races the scheduler's handling of
        it), until the run has finished. Records the champion while the approval waits (`waiting_champion`)."""
        task = f"/dags/fairness_gate/dagRuns/{run_id}/taskInstances/human_approval"
        answered: set[int] = set()
        deadline = time.monotonic() + timeout
        while True:
            run = self.run("fairness_gate", run_id)
            if self.check("fairness_gate", run):
                assert answered, "the gate finished without asking for approval"
                return run
            instance = self.call("GET", task)
            if instance.get("state") == "awaiting_input" and instance["try_number"] not in answered:
                time.sleep(3)
                self.waiting_champion[run_id] = self.champion()  # nothing moves before a person answers
                self.call("PATCH", f"{task}/-1/hitlDetails",
                          json={"chosen_options": ["Approve"], "params_input": {"comment": COMMENT}})  # fmt: skip
                answered.add(instance["try_number"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"fairness_gate {run_id} still {run['state']} after {timeout:.0f} s")
            time.sleep(1)

    def gate(self, run_id: str, timeout: float) -> dict[str, Any]:
        if self.env.get("FAIRWAY_APPROVAL_MODE") == "auto":
            return self.wait_run("fairness_gate", run_id, timeout)
        return self.approve(run_id, timeout)


def _later(moment: str | None, than: str) -> bool:
    return moment is not None and pd.Timestamp(moment) > pd.Timestamp(than)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def run_lifecycle(stack: Stack, scenario: Scenario, log: Any = print) -> dict[str, Any]:
    """Run the scenario on the stack; returns the months, the ids of the runs and the wall time of each phase."""
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str, since: float) -> float:
        phases[name] = round(time.monotonic() - since, 1)
        log(f"  {name}: {phases[name]:.1f} s (at {time.monotonic() - started:.0f} s)")
        return time.monotonic()

    months = scenario.month_list()
    window_end, scored = scenario.window_end(months), scenario.scored(months)
    t = time.monotonic()
    stack.fairway("data", "generate", "--customers", str(scenario.customers), "--months", str(scenario.months),
                  "--seed", str(scenario.seed), "--drift-month", str(scenario.months), "--start", months[0])  # fmt: skip
    stack.fairway("features", "apply")
    t = phase("data generated, Feast repo applied", t)

    begin = now_iso()
    stack.airflow("backfill", "create", "--dag-id", "feature_pipeline", "--from-date", f"{months[0]}-01",
                  "--to-date", f"{months[-1]}-01", "--max-active-runs", "1")  # fmt: skip
    stack.unpause("feature_pipeline")
    # the first training window's months (and the month its labels arrive in) first; the rest continues meanwhile
    stack.wait_runs("feature_pipeline", scenario.train_months + 1, timeout=600)
    t = phase(f"feature_pipeline {months[0]}..{window_end}", t)

    training_1 = stack.trigger("training", {"usecase": USECASE, "window_end": window_end,
                                            "window_months": scenario.train_months,
                                            "candidates": list(scenario.candidates)})  # fmt: skip
    stack.wait_run("training", training_1, timeout=600)
    t = phase("training (REST trigger)", t)
    gate_1 = stack.next_run("fairness_gate", begin, "asset_triggered", timeout=120)["dag_run_id"]
    stack.gate(gate_1, timeout=600)
    approved = "approved by policy" if stack.env.get("FAIRWAY_APPROVAL_MODE") == "auto" else "approved through REST"
    t = phase(f"fairness_gate v1 ({approved})", t)
    # the service of v1, started once: it follows the retrained champion below without a restart
    started_service = subprocess.run([*STACK, "restart-service"], env=stack.env, capture_output=True, text=True,
                                     timeout=300)  # fmt: skip
    assert started_service.returncode == 0, started_service.stdout + started_service.stderr
    t = phase("service started (v1)", t)

    stack.wait_runs("feature_pipeline", len(months), timeout=900)
    t = phase("feature_pipeline: every month", t)

    before_scoring = now_iso()
    stack.backfill("batch_inference", scored[0], scored[-1])
    stack.unpause("batch_inference")
    stack.wait_runs("batch_inference", len(scored), timeout=600)
    t = phase(f"batch_inference {', '.join(scored)}", t)
    stack.wait_runs("monitoring", len(scored), timeout=600, after=before_scoring)
    t = phase("monitoring (asset-triggered)", t)

    training_2 = stack.next_run("training", before_scoring, "asset_triggered", timeout=120)["dag_run_id"]
    stack.wait_run("training", training_2, timeout=900)
    t = phase("training (asset-triggered by the retraining request)", t)
    gate_2 = stack.next_run("fairness_gate", before_scoring, "asset_triggered", timeout=120)["dag_run_id"]
    stack.gate(gate_2, timeout=600)
    phase(f"fairness_gate v2 ({approved})", t)
    phases["lifecycle"] = round(time.monotonic() - started, 1)
    return {"months": months, "window_end": window_end, "scored": scored, "phases": phases,
            "runs": {"training": [training_1, training_2], "fairness_gate": [gate_1, gate_2]}}  # fmt: skip


def task_overheads(stack: Stack, dag_ids: list[str]) -> list[dict[str, Any]]:
    """Every task instance that ran, of every run of the DAGs: Airflow's overhead (queued_when -> start_date: the
    executor taking the task and its process starting; scheduled_when -> queued_when: waiting for a free slot
    under [core] parallelism) and the task's duration (its process, imports included)."""
    rows = []
    for dag_id in dag_ids:
        for run in stack.runs(dag_id):
            for ti in stack.task_instances(dag_id, run["dag_run_id"]):
                if not (ti.get("queued_when") and ti.get("start_date")):
                    continue  # skipped tasks never queue
                scheduled, queued = (
                    pd.Timestamp(ti["scheduled_when"] or ti["queued_when"]),
                    pd.Timestamp(ti["queued_when"]),
                )
                rows.append({"dag_id": dag_id, "run_id": run["dag_run_id"], "task_id": ti["task_id"],
                             "map_index": ti["map_index"], "state": ti["state"], "try_number": ti["try_number"],
                             "scheduled_to_queued_s": (queued - scheduled).total_seconds(),
                             "queued_to_start_s": (pd.Timestamp(ti["start_date"]) - queued).total_seconds(),
                             "duration_s": ti.get("duration"), "start": ti["start_date"], "end": ti["end_date"]})  # fmt: skip
    return rows


def run_idle(stack: Stack, dag_ids: list[str], rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per DAG, the seconds its runs were running with none of their tasks executing (the scheduler's loop,
    waits for a slot, the task processes' start before Airflow marks them running), summed over its runs."""
    idle: dict[str, float] = {}
    for dag_id in dag_ids:
        total = 0.0
        for run in stack.runs(dag_id):
            if not (run.get("start_date") and run.get("end_date")):
                continue
            spans = sorted((pd.Timestamp(r["start"]), pd.Timestamp(r["end"])) for r in rows
                           if r["dag_id"] == dag_id and r["run_id"] == run["dag_run_id"] and r["end"])  # fmt: skip
            busy, cursor = 0.0, None
            for start, end in spans:
                start = max(start, cursor) if cursor is not None else start
                if cursor is None or end > cursor:
                    busy += max(0.0, (end - start).total_seconds())
                    cursor = end
            wall = (pd.Timestamp(run["end_date"]) - pd.Timestamp(run["start_date"])).total_seconds()
            total += max(0.0, wall - busy)
        idle[dag_id] = round(total, 1)
    return idle


def up(env: dict[str, str], executor: str, timeout: float = 900) -> float:
    started = time.monotonic()
    done = subprocess.run([*STACK, "up", "--executor", executor], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"make up failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return time.monotonic() - started


def down(env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run([*STACK, "down"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return time.monotonic() - started, done.stdout
