"""The demo behind `make demo`: the lifecycle on embedded defaults (SQLite, DuckDB, local files).

1. generate the seeded synthetic snapshots of the use case (its `synthetic:` settings); a use case without them
   (`fairway usecase init`, bring your own dataset) uses the raw months it imported,
2. apply the Feast repo and check the data catalogue,
3. run the `feature_pipeline` DAG (a real Airflow DagRun via `dag.test()`) for the months up to --train-until,
4. run `training` on those months and `fairness_gate`, approved by policy (FAIRWAY_APPROVAL_MODE=auto, recorded
   as approver `policy:auto`), which promotes, documents and packages the chosen candidate,
5. then month by month, as time passes: `feature_pipeline`, `batch_inference`, and what their Assets trigger
   (`monitoring`; on drift or a fairness breach `training` and `fairness_gate`), created by Airflow's
   scheduler code from the queued asset events (include/local_runs.py),
6. print per month: rows scored, drift share, AUC and fairness of judged decisions, alerts and retraining;
   then the monitoring history, the champion history and where the reports are.

Everything is written under FAIRWAY_HOME; Airflow's metadata DB is under FAIRWAY_HOME/airflow; the seconds each DAG
took in total are in FAIRWAY_HOME/demo_seconds.json.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
# every candidate the training DAG offers
CANDIDATES = ["baseline", "reweighing", "exponentiated_gradient", "gradient_boosting", "gradient_boosting_reweighing"]


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


QUIET = True


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Without --verbose, what tasks print (Feast's progress, library notices, task logs) stays out of the demo's
    output; it is kept in the buffer yielded, so that a failed run can still print its exception."""
    buffer = io.StringIO()
    if not QUIET:
        yield buffer
        return
    with contextlib.redirect_stdout(buffer):
        yield buffer


# runs whose tasks take minutes: each finished task gets a line (the month loop has its own line per month)
PROGRESS_DAGS = ("training", "fairness_gate")


class TaskProgress:
    """An Airflow listener that prints a line when a task of a long run ends (mapped tasks by their rendered
    index, such as the candidate), to the terminal the demo started on: its task logs stay hidden."""

    def __init__(self, out: io.TextIOBase) -> None:
        self.out = out
        self.started: dict[tuple[str, str, int], float] = {}

    @staticmethod
    def _key(ti) -> tuple[str, str, int]:  # noqa: ANN001 - Airflow's RuntimeTaskInstance
        return ti.dag_id, ti.task_id, ti.map_index if ti.map_index is not None else -1

    def line(self, ti, outcome: str) -> None:  # noqa: ANN001
        if ti.dag_id not in PROGRESS_DAGS:
            return
        seconds = time.perf_counter() - self.started.pop(self._key(ti), time.perf_counter())
        index = getattr(ti, "rendered_map_index", None) or (ti.map_index if ti.map_index not in (None, -1) else None)
        name = f"{ti.task_id} [{index}]" if index is not None else ti.task_id
        print(f"      {ti.dag_id}.{name}: {outcome} in {seconds:.1f} s", file=self.out, flush=True)

    def start(self, ti) -> None:  # noqa: ANN001
        self.started[self._key(ti)] = time.perf_counter()


def show_task_progress(out: io.TextIOBase | None = None) -> object:
    """Register TaskProgress (to `out`, default the terminal) as a listener of the task runner that dag.test()
    uses in this process; the listener registered, for `get_listener_manager().pm.unregister`."""
    from airflow.listeners import hookimpl
    from airflow.sdk.listener import get_listener_manager

    progress = TaskProgress(out or sys.stdout)

    class Listener:
        @hookimpl
        def on_task_instance_running(self, previous_state, task_instance) -> None:  # noqa: ANN001
            progress.start(task_instance)

        @hookimpl
        def on_task_instance_success(self, previous_state, task_instance) -> None:  # noqa: ANN001
            progress.line(task_instance, "done")

        @hookimpl
        def on_task_instance_failed(self, previous_state, task_instance, error) -> None:  # noqa: ANN001
            progress.line(task_instance, f"failed (try {getattr(task_instance, 'try_number', '?')})")

    listener = Listener()
    get_listener_manager().add_listener(listener)
    return listener


LOG_LINE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")  # a task log line: where a printed traceback ends


def task_exception(output: str) -> str:
    """The last traceback a task printed, cut where the log lines resume: its innermost frames and the exception."""
    at = output.rfind("Traceback (most recent call last)")
    if at < 0:
        return ""
    lines = output[at:].splitlines()
    end = next((i for i, line in enumerate(lines[1:], start=1) if LOG_LINE.match(line)), len(lines))
    block = [line.strip() for line in lines[:end] if line.strip() and set(line.strip()) != {"^"}]
    return "\n".join(f"      {line}" for line in block[-12:])


def _check(run, what: str, output: str = "") -> None:  # noqa: ANN001
    if run.state != "success":
        failed = [ti.task_id for ti in run.get_task_instances() if ti.state == "failed"]
        log_dir = Path(os.environ["AIRFLOW_HOME"]) / "logs"
        reason = task_exception(output) or "      (the exception is in the task log above)"
        sys.exit(f"{what} failed in {failed}:\n{reason}\n(task logs under {log_dir}; --verbose shows every task's "
                 "output)")  # fmt: skip


# wall seconds per DAG, summed over its runs; written to FAIRWAY_HOME/demo_seconds.json when the demo ends
SECONDS: dict[str, float] = {}


def _record(dag_id: str, seconds: float) -> None:
    if not SECONDS:  # also when the demo exits on a failed run
        atexit.register(_write_seconds, Path(os.environ["FAIRWAY_HOME"]) / "demo_seconds.json")
    SECONDS[dag_id] = SECONDS.get(dag_id, 0.0) + seconds


def _write_seconds(path: Path) -> None:
    if path.parent.is_dir():
        path.write_text(json.dumps({k: round(v, 2) for k, v in SECONDS.items()}, indent=2))


def run_dag(dag_id: str, conf: dict[str, object]) -> float:
    """Run one DAG to completion in this process; exit with the failed task and its exception when it fails."""
    import local_runs

    started = time.perf_counter()
    with _quiet() as output:
        run = local_runs.run(dag_id, conf)
    seconds = time.perf_counter() - started
    _record(dag_id, seconds)
    _check(run, f"{dag_id} {conf}", output.getvalue())
    return seconds


def run_triggered() -> list[str]:
    """Run what the queued asset events trigger (as the scheduler would); the DAG ids that ran, in order."""
    import local_runs

    with _quiet() as output:
        runs = local_runs.run_triggered()
    for run in runs:
        if run.start_date and run.end_date:
            _record(run.dag_id, (run.end_date - run.start_date).total_seconds())
        _check(run, f"{run.dag_id} (triggered by an asset event)", output.getvalue())
    return [run.dag_id for run in runs]


def print_candidates(uc) -> None:  # noqa: ANN001
    """Every candidate of the latest training with its metrics and gate (pre-)decision, then the registry."""
    import mlflow

    from fairway import registry
    from fairway.cli import status_table

    mlc = registry.client()
    runs = mlc.search_runs([registry.experiment_id(uc)], order_by=["attributes.start_time DESC"], max_results=20)
    latest = runs[0].data.tags.get("fairway.dataset_fingerprint") if runs else None
    print(f"\n    {'candidate':<30} {'AUC':>6} {'accuracy':>8}  {'gate':<7} failed rules")
    for run in reversed([r for r in runs if r.data.tags.get("fairway.dataset_fingerprint") == latest]):
        if run.data.tags.get("fairway.candidate_status") == "failed":
            print(f"    {run.data.tags['fairway.candidate']:<30} {'-':>6} {'-':>8}  {'FAILED':<7} "
                  f"{run.data.tags.get('fairway.failure', '')}")  # fmt: skip
            continue
        reasons = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/evaluation/gate_precheck.json")
        m = run.data.metrics
        print(f"    {run.data.tags['fairway.candidate']:<30} {m['auc']:>6.3f} {m['accuracy']:>8.3f}  "
              f"{run.data.tags['fairway.gate_precheck']:<7} {'; '.join(reasons['reasons']) or '-'}")  # fmt: skip
    print()
    print(status_table(registry.status(uc)))
    champion = registry.version_by_alias(uc, registry.CHAMPION)
    if champion is not None:
        print(f"\n    documentation: {champion.tags.get('fairway.documentation')}")
        print(f"    bento: {champion.tags.get('fairway.bento')} (BENTOML_HOME={os.environ.get('BENTOML_HOME')})")


def month_line(uc, month: str, triggered: list[str], seconds: float) -> str:  # noqa: ANN001
    """One line of the monthly table, from the month's monitoring summary."""
    import json

    from fairway import registry
    from fairway.fairness import worst_disparate_impact
    from fairway.monitoring import month_dir

    summary = json.loads((month_dir(uc, month) / "summary.json").read_text())
    drift, outcomes = summary["drift"], summary["outcomes"]
    auc, worst = "-", "-"
    if outcomes["status"] == "judged":
        auc = f"{outcomes['metrics']['auc']:.3f}"
        found = worst_disparate_impact(g["disparate_impact"] for g in outcomes["metrics"]["fairness"])
        worst = "-" if found is None else f"{found:.3f}"
    champion = registry.version_by_alias(uc, registry.CHAMPION)
    then = " > ".join(d for d in triggered if d != "monitoring") or "-"
    if summary["retraining_reasons"]:
        then += f" (requested) > champion v{champion.version if champion else '-'}"
    elif summary["not_requested"]:
        then += " (drift: cooldown)"
    return (f"    {month:<8} {drift['rows_scored']:>6} {'v' + drift['model_version']:>4} {drift['drift_share']:>6.2f} "
            f"{outcomes['judged_month']:>8} {auc:>6} {worst:>8}  {','.join(summary['alerts']) or '-':<30} {then} "
            f"({seconds:.0f} s)")  # fmt: skip


def print_alerts(uc) -> None:  # noqa: ANN001
    """The escalation alerts the monitoring and the gate raised, and where they were sent."""
    from fairway.escalation import alerts

    _step("escalation alerts (risk-register entries; `fairway alerts` lists them, --accept records a decision)")
    found = alerts(uc)
    for alert in found:
        sent = ", ".join(alert["channels"]) or "no channel configured" if alert["notified_at"] else "not yet"
        print(f"    {alert['id']} (v{alert['model_version']}): {alert['summary']} [notified: {sent}]")
    if not found:
        print("    none")


def print_monitoring(uc) -> None:  # noqa: ANN001
    """Where the monitoring reports are, the retraining requests, and the champion history."""
    from fairway import registry
    from fairway.cli import status_table
    from fairway.monitoring import monitoring_dir, read_history

    history = read_history(uc)
    requested = history[history["retraining_requested"]]
    _step("retraining requests")
    for _, row in requested.iterrows():
        print(f"    {row['month']}: {row['reasons']}")
    if requested.empty:
        print("    none")
    print_alerts(uc)
    _step("models and the champion now")
    print(status_table(registry.status(uc)))
    folder = monitoring_dir(uc)
    print(f"\n    monitoring: {folder / 'index.html'} (trends.png, history.csv, <month>/drift.html)")
    print(f"    MLflow: experiments fairway-{uc.name} and fairway-{uc.name}-monitoring at {registry.tracking_uri()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usecase", default=os.environ.get("FAIRWAY_USECASE", "credit_risk"))
    parser.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    parser.add_argument("--customers", type=int, help="override the config's synthetic customers")
    parser.add_argument("--months", type=int, help="override the config's synthetic months")
    parser.add_argument(
        "--train-until",
        type=int,
        help="train on labels known at the end of this month (1-based; default: min(6, months - 2), at least 3)",
    )
    args = parser.parse_args()
    # a failing task retries twice (the DAGs' policy); in the demo without Airflow's default 300 s wait
    os.environ.setdefault("AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY", "2")
    global QUIET
    QUIET = not args.verbose
    if not args.verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # read by mlflow at import, in every task
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        logging.getLogger("feast").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", category=DeprecationWarning)

    from fairway.config import load_usecase, paths
    from fairway.data import available_months, generate
    from fairway.features.catalogue import check
    from fairway.features.store import apply_repo, get_store, offline_row_counts
    from fairway.onboarding import lifecycle

    show_task_progress()

    uc = load_usecase(args.usecase)
    home = paths().home
    print(f"Fairway demo: use case '{uc.name}', FAIRWAY_HOME={home}")

    if uc.synthetic is None:
        imported = available_months(uc)
        if not imported:
            sys.exit(
                f"use case '{uc.name}' has no synthetic settings and no imported data under {paths().raw / uc.name}: "
                f"run `fairway usecase init --name {uc.name} --csv FILE --target COLUMN --protected COLUMN` first"
            )
        _step(f"use the {len(imported)} imported months {imported[0]}..{imported[-1]} (no synthetic settings)")
    else:
        s = uc.synthetic.model_copy(
            update={k: v for k, v in (("customers", args.customers), ("months", args.months)) if v}
        )
        _step(
            f"generate {s.months} monthly snapshots of {s.customers:,} customers (seed {s.seed}, drift from month {s.drift_month})"
        )
        generate(
            uc, s.customers, s.months, s.seed, s.drift_month, s.monthly_churn, progress=lambda line: print("   ", line)
        )

    _step("apply the Feast repo (feature_repo/) and check the data catalogue")
    print("   ", apply_repo(uc))
    report = check(get_store(uc))
    print(report.table())
    print(f"    catalogue check passed: {len(report.model_inputs)} model inputs, protected attributes for audit only")

    plan = lifecycle(available_months(uc), args.train_until, uc.label.available_after_months)
    for note in plan.notes:
        print(f"    {note}")
    if not plan.runnable:
        sys.exit(f"use case '{uc.name}': the data cannot support the lifecycle (see above)")
    history, later = plan.history, plan.scored
    _step(f"run feature_pipeline for the first {len(history)} months")
    for index, month in enumerate(history, start=1):
        seconds = run_dag("feature_pipeline", {"usecase": uc.name, "month": month})
        print(f"    [{index:>2}/{len(history)}] {month}: success in {seconds:.1f} s", flush=True)

    _step(f"rows per month in the offline store ({uc.label_view}: outcomes delivered that month)")
    print(offline_row_counts(uc).to_string())

    window_end = history[-1]
    _step(f"run training: candidates on the snapshots whose outcomes were known at the end of {window_end}")
    seconds = run_dag(
        "training", {"usecase": uc.name, "window_end": window_end, "window_months": 6, "candidates": CANDIDATES}
    )
    print(f"    training: success in {seconds:.1f} s")
    os.environ["FAIRWAY_APPROVAL_MODE"] = "auto"
    _step("run fairness_gate (approval by policy for the demo: FAIRWAY_APPROVAL_MODE=auto)")
    seconds = run_dag("fairness_gate", {"usecase": uc.name, "version": None})
    print(f"    fairness_gate: success in {seconds:.1f} s")
    print_candidates(uc)
    from fairway import registry

    if registry.version_by_alias(uc, registry.CHAMPION) is None:
        sys.exit("no candidate passed the fairness gate: there is no champion to score with (see the reasons above)")

    import local_runs

    local_runs.unpause(["monitoring", "training", "fairness_gate"])
    _step(f"month by month: feature_pipeline, batch_inference, and what their Assets trigger ({len(later)} months)")
    print(f"    {'month':<8} {'scored':>6} {'ver':>4} {'drift':>6} {'judged':>8} {'AUC':>6} {'worst DI':>8}  "
          f"{'alerts':<30} then")  # fmt: skip
    for month in later:
        started = time.perf_counter()
        run_dag("feature_pipeline", {"usecase": uc.name, "month": month})
        run_dag("batch_inference", {"usecase": uc.name, "month": month})
        triggered = run_triggered()
        print(month_line(uc, month, triggered, time.perf_counter() - started), flush=True)

    print_monitoring(uc)
    print(f"\nDone. Data, Feast registry and online store, Airflow DB: {home}")
    make_serve = "make serve PORT=3000" + ("" if uc.name == "credit_risk" else f" USECASE={uc.name}")
    print(f"Serve the champion: {make_serve}, then http://localhost:3000/ (OpenAPI) and POST /predict")
    print(
        f'Feast CLI:   export FAIRWAY_HOME={home} FAIRWAY_USECASE={uc.name}; eval "$(.venv/bin/fairway env)"; '
        ".venv/bin/feast feature-views list"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
