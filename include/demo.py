"""The demo behind `make demo`: the lifecycle on embedded defaults (SQLite, DuckDB, local files).

1. generate the seeded synthetic snapshots of the use case (its `synthetic:` settings),
2. apply the Feast repo and check the data catalogue,
3. run the `feature_pipeline` DAG (a real Airflow DagRun via `dag.test()`) for every month,
4. run `training` on the first months (labels known at the end of --train-until) and `fairness_gate`,
   approved by policy (FAIRWAY_APPROVAL_MODE=auto, recorded as approver `policy:auto`), which promotes,
   documents and packages the chosen candidate,
5. run `batch_inference` for every month after the training window,
6. print the catalogue, the rows per month and feature view, the candidates with their gate decisions and the
   months scored.

Everything is written under FAIRWAY_HOME; Airflow's metadata DB is under FAIRWAY_HOME/airflow.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run_dag(dag_id: str, conf: dict[str, object]) -> float:
    """Run one DAG to completion in this process; exit with the failed task named when it fails."""
    from airflow.dag_processing.dagbag import BundleDagBag

    dag = BundleDagBag(dag_folder=str(PROJECT / "dags"), bundle_path=PROJECT / "dags").get_dag(dag_id)
    started = time.perf_counter()
    run = dag.test(run_conf=conf)
    if run.state != "success":
        failed = [ti.task_id for ti in run.get_task_instances() if ti.state == "failed"]
        log_dir = Path(os.environ["AIRFLOW_HOME"]) / "logs"
        sys.exit(f"{dag_id} {conf} failed in {failed}; the reason is in the task log above and under {log_dir}")
    return time.perf_counter() - started


def print_candidates(uc) -> None:  # noqa: ANN001
    """Every candidate of the latest training with its metrics and gate (pre-)decision, then the registry."""
    import mlflow

    from fairway import registry
    from fairway.cli import status_table

    mlc = registry.client()
    runs = mlc.search_runs([registry.experiment_id(uc)], order_by=["attributes.start_time DESC"], max_results=20)
    latest = runs[0].data.tags.get("fairway.dataset_fingerprint") if runs else None
    print(f"\n    {'candidate':<24} {'AUC':>6} {'accuracy':>8}  {'gate':<7} failed rules")
    for run in reversed([r for r in runs if r.data.tags.get("fairway.dataset_fingerprint") == latest]):
        reasons = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/evaluation/gate_precheck.json")
        m = run.data.metrics
        print(f"    {run.data.tags['fairway.candidate']:<24} {m['auc']:>6.3f} {m['accuracy']:>8.3f}  "
              f"{run.data.tags['fairway.gate_precheck']:<7} {'; '.join(reasons['reasons']) or '-'}")  # fmt: skip
    print()
    print(status_table(registry.status(uc)))
    champion = registry.version_by_alias(uc, registry.CHAMPION)
    if champion is not None:
        print(f"\n    documentation: {champion.tags.get('fairway.documentation')}")
        print(f"    bento: {champion.tags.get('fairway.bento')} (BENTOML_HOME={os.environ.get('BENTOML_HOME')})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usecase", default=os.environ.get("FAIRWAY_USECASE", "credit_risk"))
    parser.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    parser.add_argument(
        "--train-until", type=int, default=6, help="train on labels known at the end of this month (1-based)"
    )
    args = parser.parse_args()
    # a failing task retries twice (the DAGs' policy); in the demo without Airflow's default 300 s wait
    os.environ.setdefault("AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY", "2")
    if not args.verbose:
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        logging.getLogger("feast").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", category=DeprecationWarning)

    from fairway.config import load_usecase, paths
    from fairway.data import available_months, generate
    from fairway.features.catalogue import check
    from fairway.features.store import apply_repo, get_store, offline_row_counts

    uc = load_usecase(args.usecase)
    home = paths().home
    print(f"Fairway demo: use case '{uc.name}', FAIRWAY_HOME={home}")

    if uc.synthetic is None:
        sys.exit(f"use case '{uc.name}' has no synthetic settings; import its data first")
    s = uc.synthetic
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

    months = available_months(uc)
    _step(f"run feature_pipeline for {len(months)} months")
    for index, month in enumerate(months, start=1):
        seconds = run_dag("feature_pipeline", {"usecase": uc.name, "month": month})
        print(f"    [{index:>2}/{len(months)}] {month}: success in {seconds:.1f} s", flush=True)

    _step("rows per month in the offline store (customer_labels: outcomes delivered that month)")
    print(offline_row_counts(uc).to_string())

    window_end = months[min(args.train_until, len(months)) - 1]
    _step(f"run training: candidates on snapshots before {window_end}, labels known at its end")
    seconds = run_dag("training", {"usecase": uc.name, "window_end": window_end, "window_months": 6,
                                   "candidates": ["baseline", "reweighing", "exponentiated_gradient"]})  # fmt: skip
    print(f"    training: success in {seconds:.1f} s")
    os.environ["FAIRWAY_APPROVAL_MODE"] = "auto"
    _step("run fairness_gate (approval by policy for the demo: FAIRWAY_APPROVAL_MODE=auto)")
    seconds = run_dag("fairness_gate", {"usecase": uc.name, "version": None})
    print(f"    fairness_gate: success in {seconds:.1f} s")
    print_candidates(uc)

    later = months[months.index(window_end) + 1 :]
    _step(f"run batch_inference for {len(later)} months with the champion")
    import pandas as pd

    from fairway.records import prediction_partition

    for month in later:
        seconds = run_dag("batch_inference", {"usecase": uc.name, "month": month})
        records = pd.read_parquet(prediction_partition(uc, month))
        print(f"    {month}: {len(records):,} customers scored with v{records['model_version'].iloc[0]}, "
              f"{(records['decision'] == 'decline').mean():.1%} declined ({seconds:.1f} s)")  # fmt: skip
    print(f"    records: {prediction_partition(uc, later[0]).parent if later else '-'}")
    print(f"\nDone. Data, Feast registry and online store, Airflow DB: {home}")
    print(
        f"Feast CLI:   export FAIRWAY_HOME={home} FAIRWAY_USECASE={uc.name}; feast -c feature_repo feature-views list"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
