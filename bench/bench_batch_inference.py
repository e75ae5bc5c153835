"""Benchmark: monthly batch inference for 100,000 customers, Fairway vs the pandas floor.

Same run, same data, same model version: 100,000 customers x 3 months in the offline store, a baseline
logistic model registered in MLflow. Each method scores the last month in its own process (so peak memory is
its own; library imports happen before the clock starts), repeated:

- **Fairway**: `fairway.inference.score_month`: the month's customers, point-in-time features as of the month's
  end through Feast (DuckDB offline store), the model's predict, decisions, pseudonymised subject keys, input
  fingerprints, reason codes (one more predict per model input), the atomic write of the month's prediction
  records.
- **floor**: pandas reads the view's partitions, `merge_asof` as of the month's end, the same model's predict,
  `DataFrame.to_parquet` of customer id, score and decision. No pseudonymisation, fingerprints or atomic write.

    make bench              # or: .venv/bin/python bench/bench_batch_inference.py --customers 20000
Results: bench/results/batch_inference.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from peak import peak_rss_mb

RESULTS = Path(__file__).resolve().parent / "results"
MONTHS = 3


def prepare(home: Path, customers: int) -> dict[str, str]:
    """Data, offline partitions and a registered model version (once, outside the timings)."""
    import mlflow

    from fairway import registry
    from fairway.config import load_usecase
    from fairway.data import available_months, generate
    from fairway.explanations import reference_point
    from fairway.features.store import apply_repo, write_offline_partition
    from fairway.training import build_training_frame, fit_candidate, load_frame

    uc = load_usecase("credit_risk")
    generate(uc, customers, MONTHS, seed=2024, drift_month=None, progress=lambda line: print("  ", line, flush=True))
    apply_repo(uc)
    months = available_months(uc)
    for month in months:
        write_offline_partition(uc, month)
    train, _ = load_frame(build_training_frame(uc, months[-1], 2))
    model, _ = fit_candidate(uc, "baseline", train)
    registry.client()
    with mlflow.start_run(experiment_id=registry.experiment_id(uc, "bench")):
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                        pip_requirements=registry.PIP_REQUIREMENTS)  # fmt: skip
        # the reference applicant of the reason codes, as training logs it
        mlflow.log_dict(reference_point(train, uc.model_inputs), "evaluation/reference.json")
    version = mlflow.register_model(info.model_uri, uc.model_name)
    return {"model": uc.model_name, "version": str(version.version), "run_id": str(version.run_id),
            "month": months[-1]}  # fmt: skip


def run_method(method: str, home: Path, pinned: dict[str, str]) -> dict[str, float | int]:
    """One timed scoring of the month in this process."""
    import mlflow

    from fairway import registry
    from fairway.config import load_usecase
    from fairway.data import month_bounds
    from fairway.features.retrieval import merge_asof_frame
    from fairway.features.store import offline_partition
    from fairway.inference import score_month
    from fairway.training import predict_scores

    uc = load_usecase("credit_risk")
    month = pinned["month"]
    registry.client()
    # imports are paid once per process by both methods alike: outside the timing
    import feast.infra.offline_stores.duckdb  # noqa: F401
    import ibis.backends.duckdb  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    started = time.perf_counter()
    if method == "fairway":
        rows = score_month(uc, month, pinned, "bench")["rows"]
    else:
        view = uc.feature(uc.model_inputs[0]).view
        keys = pd.read_parquet(offline_partition(uc, view, month), columns=[uc.entity.join_key])
        as_of = month_bounds(month)[1] - timedelta(microseconds=1)
        entity = pd.DataFrame({uc.entity.join_key: keys[uc.entity.join_key].unique(), uc.event_timestamp: as_of})
        features = pd.read_parquet(home / "data/offline/credit_risk" / view)
        ttl = timedelta(days=uc.view(view).ttl_days)
        frame = merge_asof_frame(entity, features, uc.entity.join_key, uc.event_timestamp, uc.model_inputs, ttl)
        model = mlflow.sklearn.load_model(f"models:/{pinned['model']}/{pinned['version']}")
        scores = predict_scores(model, frame[uc.model_inputs])
        out = pd.DataFrame({uc.entity.join_key: frame[uc.entity.join_key], "score": scores,
                            "decision": np.where(scores < uc.gate.decision_threshold, "approve", "decline")})  # fmt: skip
        out.to_parquet(home / "bench_floor_predictions.parquet", index=False)
        rows = len(out)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["fairway", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--pinned", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_method(args.child, Path(os.environ["FAIRWAY_HOME"]), json.loads(args.pinned))))
        return 0
    home = Path(os.environ.get("FAIRWAY_HOME", ".fairway")).resolve() / "bench" / "batch_inference"
    os.environ["FAIRWAY_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    print(f"preparing {args.customers:,} customers x {MONTHS} months under {home}", flush=True)
    pinned = prepare(home, args.customers)
    runs: dict[str, list[dict]] = {"floor": [], "fairway": []}
    for attempt in range(args.repeat):
        for method in ("floor", "fairway"):
            out = subprocess.run([sys.executable, __file__, "--child", method, "--pinned", json.dumps(pinned)],
                                 capture_output=True, text=True, env=os.environ)  # fmt: skip
            if out.returncode != 0:
                sys.exit(f"{method} failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[method].append(result)
            print(f"  run {attempt + 1} {method:>7}: {result['rows']:,} rows in {result['seconds']:.2f} s, "
                  f"peak {result['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip

    summary = {
        "customers_scored": runs["fairway"][-1]["rows"],
        "baseline": "pandas read partitions + merge_asof + the same model's predict + to_parquet, same run",
        "floor_seconds": statistics.median(r["seconds"] for r in runs["floor"]),
        "fairway_seconds": statistics.median(r["seconds"] for r in runs["fairway"]),
        "floor_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["floor"]),
        "fairway_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["fairway"]),
        "floor_rows": runs["floor"][-1]["rows"],
        "cpus": os.cpu_count(),
    }
    summary["ratio_fairway_to_floor"] = summary["fairway_seconds"] / summary["floor_seconds"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "batch_inference.json").write_text(json.dumps(summary, indent=2))
    print("\n| method | median s | peak RSS MB | rows |")
    print("|---|---|---|---|")
    print(f"| pandas floor: merge_asof + predict + to_parquet | {summary['floor_seconds']:.2f} | "
          f"{summary['floor_peak_rss_mb']:.0f} | {summary['floor_rows']:,} |")  # fmt: skip
    print(f"| Fairway score_month: Feast + predict + records | {summary['fairway_seconds']:.2f} | "
          f"{summary['fairway_peak_rss_mb']:.0f} | {summary['customers_scored']:,} |")  # fmt: skip
    print(f"\nratio Fairway / floor: {summary['ratio_fairway_to_floor']:.2f}x ({summary['cpus']} cores)")
    return 0 if summary["floor_rows"] == summary["customers_scored"] else 1


if __name__ == "__main__":
    sys.exit(main())
