"""Benchmark: monthly batch inference, Fairway vs the pandas, polars and DuckDB floors.

Same run, same data, same model version: N customers x 3 months in the offline store, a champion (trained,
registered, gated, approved by the automatic policy and promoted in the ledger, FAIRWAY_APPROVAL_MODE=auto) pinned
as inference.pin_champion pins it. Each method scores the last month in its own process (so peak memory is its
own; library imports happen before the clock starts), rounds alternating the methods:

- **Fairway**: `fairway.inference.score_month`: the month's customers, point-in-time features as of the month's
  end through Feast (DuckDB offline store), the model's predict, decisions, pseudonymised subject keys, input
  fingerprints, reason codes (one transform, the final estimator once more per input), the atomic write of the
  month's prediction records.
- **pandas floor**: pandas reads the view's partitions, `merge_asof` as of the month's end, the same model's
  predict, `DataFrame.to_parquet` of customer id, score and decision.
- **polars floor**: polars reads the view's partitions, `join_asof` (backward, by customer id, the view's TTL as
  tolerance) as of the month's end, the same model's predict on the frame's `to_pandas()`, `write_parquet` of
  customer id, score and decision.
- **DuckDB floor**: one SQL `ASOF JOIN` over `read_parquet` of the partitions, the same predict, the same parquet.

The floors do no pseudonymisation, fingerprints, reason codes or atomic write.

    make bench              # or: .venv/bin/python bench/bench_batch_inference.py --sizes 10000,100000 --rounds 2
    .venv/bin/python bench/bench_batch_inference.py --sizes 1000000     # 1M customers
Generating and preparing the data (once per size, outside the timings) took 12 s for 10,000 customers, 19 s for
100,000 and 4.3 min for 1,000,000 (two cores). Results: bench/results/batch_inference.json (by size; a run replaces
the sizes it ran and keeps the others) and a Markdown table on stdout (min/median/max seconds of the rounds, peak
RSS, ratios to the polars floor). `--reuse` scores the data an earlier run prepared under the same home;
`--only fairway` runs Fairway and the polars floor only. Imports and CodeCarbon's CPU lookup happen in every
method's process before its clock starts (paid once per process).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from peak import peak_rss_mb

RESULTS = Path(__file__).resolve().parent / "results"
MONTHS = 3
METHODS = ("polars", "duckdb", "pandas", "fairway")
LABELS = {
    "polars": "polars floor: join_asof + predict + write_parquet",
    "duckdb": "DuckDB floor: ASOF JOIN + predict + parquet",
    "pandas": "pandas floor: merge_asof + predict + to_parquet",
    "fairway": "Fairway score_month: Feast + predict + reasons + records",
}


def prepare(customers: int) -> dict[str, str]:
    """Data, offline partitions and an approved, promoted champion (once, outside the timings); returns the
    pinned champion (inference.pin_champion) and the month to score."""
    os.environ["FAIRWAY_APPROVAL_MODE"] = "auto"
    from fairway import promotion
    from fairway.config import load_usecase
    from fairway.data import available_months, generate
    from fairway.features.store import apply_repo, write_offline_partition
    from fairway.inference import pin_champion
    from fairway.training import build_training_frame, register_best, train_candidate

    uc = load_usecase("credit_risk")
    generate(uc, customers, MONTHS, seed=2024, drift_month=None, progress=lambda line: print("  ", line, flush=True))
    apply_repo(uc)
    months = available_months(uc)
    for month in months:
        write_offline_partition(uc, month)
    registered = register_best(uc, [train_candidate(uc, build_training_frame(uc, months[-1], 2), "reweighing")])
    gated = promotion.gate_candidate(uc, registered["version"])
    if gated["decision"] != "pass":
        sys.exit(f"the benchmark's candidate did not pass the gate: {gated['reasons']}")
    promotion.promote(uc, gated, promotion.auto_approval(uc, gated))
    return {**pin_champion(uc), "month": months[-1]}


def floor_predict(uc: Any, pinned: dict[str, str], frame: pd.DataFrame, home: Path) -> int:
    """The floors' common tail: the pinned version's predict, decisions, id/score/decision parquet."""
    from fairway.training import predict_scores
    from fairway.verification import load_scoring_model

    model = load_scoring_model(uc, pinned)
    scores = predict_scores(model, frame[uc.model_inputs])
    out = pd.DataFrame({uc.entity.join_key: frame[uc.entity.join_key].to_numpy(), "score": scores,
                        "decision": np.where(scores < uc.gate.decision_threshold, "approve", "decline")})  # fmt: skip
    out.to_parquet(home / "bench_floor_predictions.parquet", index=False)
    return len(out)


def pandas_floor(uc: Any, pinned: dict[str, str], home: Path) -> int:
    from fairway.data import month_bounds
    from fairway.features.retrieval import merge_asof_frame
    from fairway.features.store import offline_partition

    view = uc.feature(uc.model_inputs[0]).view
    keys = pd.read_parquet(offline_partition(uc, view, pinned["month"]), columns=[uc.entity.join_key])
    as_of = month_bounds(pinned["month"])[1] - timedelta(microseconds=1)
    entity = pd.DataFrame({uc.entity.join_key: keys[uc.entity.join_key].unique(), uc.event_timestamp: as_of})
    features = pd.read_parquet(home / "data/offline" / uc.name / view)
    ttl = timedelta(days=uc.view(view).ttl_days)
    frame = merge_asof_frame(entity, features, uc.entity.join_key, uc.event_timestamp, uc.model_inputs, ttl)
    return floor_predict(uc, pinned, frame, home)


def polars_floor(uc: Any, pinned: dict[str, str], home: Path) -> int:
    import polars as pl

    from fairway.data import month_bounds
    from fairway.features.store import offline_partition

    key, ts = uc.entity.join_key, uc.event_timestamp
    view = uc.feature(uc.model_inputs[0]).view
    as_of = month_bounds(pinned["month"])[1] - timedelta(microseconds=1)
    keys = pl.read_parquet(offline_partition(uc, view, pinned["month"]), columns=[key])[key].unique().sort()
    entity = pl.DataFrame({key: keys}).with_columns(pl.lit(as_of).cast(pl.Datetime("us", "UTC")).alias(ts))
    features = (
        pl.read_parquet(str(home / "data/offline" / uc.name / view / "*.parquet"))
        .select(key, ts, *uc.model_inputs)
        .with_columns(pl.col(ts).cast(pl.Datetime("us", "UTC")))
        .sort(ts)
    )
    ttl = timedelta(days=uc.view(view).ttl_days)
    # both sides sorted by time above (polars cannot check that within `by` groups)
    frame = entity.join_asof(features, on=ts, by=key, strategy="backward", tolerance=ttl, check_sortedness=False)
    return floor_predict(uc, pinned, frame.to_pandas(), home)


def duckdb_floor(uc: Any, pinned: dict[str, str], home: Path) -> int:
    import duckdb

    from fairway.data import month_bounds
    from fairway.features.store import offline_partition

    key, ts = uc.entity.join_key, uc.event_timestamp
    view = uc.feature(uc.model_inputs[0]).view
    as_of = month_bounds(pinned["month"])[1] - timedelta(microseconds=1)
    ttl = timedelta(days=uc.view(view).ttl_days)
    # no older than the TTL, as merge_asof's tolerance: an older row is no row (NULL inputs)
    columns = ", ".join(f'CASE WHEN f."{ts}" >= e.as_of - $ttl::INTERVAL THEN f."{c}" END AS "{c}"'
                        for c in uc.model_inputs)  # fmt: skip
    sql = f"""
        WITH e AS (SELECT DISTINCT "{key}", $as_of::TIMESTAMPTZ AS as_of FROM read_parquet($month_file))
        SELECT e."{key}", {columns}
        FROM e ASOF LEFT JOIN read_parquet($all_files) f
          ON e."{key}" = f."{key}" AND e.as_of >= f."{ts}"
        ORDER BY e."{key}"
    """  # names from the use case's YAML
    parameters = {"as_of": as_of, "month_file": str(offline_partition(uc, view, pinned["month"])),
                  "all_files": str(home / "data/offline" / uc.name / view / "*.parquet"), "ttl": ttl}  # fmt: skip
    frame = duckdb.connect().execute(sql, parameters).df()
    return floor_predict(uc, pinned, frame, home)


def run_method(method: str, home: Path, pinned: dict[str, str]) -> dict[str, float | int]:
    """One timed scoring of the month in this process."""
    from fairway import registry
    from fairway.config import load_usecase
    from fairway.inference import score_month

    uc = load_usecase("credit_risk")
    registry.client()
    # imports are paid once per process by every method alike: outside the timing
    import duckdb  # noqa: F401
    import feast.infra.data_sources.mlflow  # noqa: F401 - what Feast imports on its first retrieval (~0.5 s)
    import feast.infra.offline_stores.duckdb  # noqa: F401
    import ibis.backends.duckdb  # noqa: F401
    import polars  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    from codecarbon.core import cpu, hardware_cache

    hardware_cache.get_cached_tdp(cpu)  # CodeCarbon's CPU lookup (~1.2 s), done once per process as an import is

    floors = {"pandas": pandas_floor, "polars": polars_floor, "duckdb": duckdb_floor}
    started = time.perf_counter()
    if method == "fairway":
        rows = score_month(uc, pinned["month"], pinned, "bench")["rows"]
    else:
        rows = floors[method](uc, pinned, home)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def prepared_home(customers: int, base: Path, reuse: bool) -> tuple[Path, dict[str, str], float]:
    """The size's home with its data and champion: prepared afresh (one champion, version 1), or with `reuse` the
    one an earlier run prepared (its pinned champion is in pinned.json)."""
    home = base / f"{customers}"
    os.environ["FAIRWAY_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    marker = home / "pinned.json"
    if reuse and marker.is_file():
        print(f"reusing {customers:,} customers x {MONTHS} months under {home}", flush=True)
        return home, json.loads(marker.read_text()), 0.0
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    print(f"preparing {customers:,} customers x {MONTHS} months under {home}", flush=True)
    started = time.perf_counter()
    pinned = prepare(customers)
    marker.write_text(json.dumps(pinned))
    return home, pinned, time.perf_counter() - started


def bench_size(customers: int, base: Path, rounds: int, reuse: bool = False,
               methods_run: tuple[str, ...] = METHODS) -> dict[str, Any]:  # fmt: skip
    home, pinned, prepare_seconds = prepared_home(customers, base, reuse)
    runs: dict[str, list[dict]] = {method: [] for method in methods_run}
    for attempt in range(rounds):
        order = methods_run if attempt % 2 == 0 else methods_run[::-1]
        for method in order:
            out = subprocess.run([sys.executable, __file__, "--child", method, "--pinned", json.dumps(pinned)],
                                 capture_output=True, text=True, env=os.environ)  # fmt: skip
            if out.returncode != 0:
                sys.exit(f"{method} failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[method].append(result)
            print(f"  round {attempt + 1} {method:>7}: {result['rows']:,} rows in {result['seconds']:.2f} s, "
                  f"peak {result['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
    methods = {}
    for method, results in runs.items():
        seconds = [r["seconds"] for r in results]
        methods[method] = {"label": LABELS[method], "rows": results[-1]["rows"], "seconds_min": min(seconds),
                           "seconds_median": statistics.median(seconds), "seconds_max": max(seconds),
                           "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "rounds": results}  # fmt: skip
    polars_floor_ = methods["polars"]
    for entry in methods.values():
        entry["time_ratio_to_polars"] = entry["seconds_median"] / polars_floor_["seconds_median"]
        entry["rss_ratio_to_polars"] = entry["peak_rss_mb"] / polars_floor_["peak_rss_mb"]
    return {"customers": customers, "month": pinned["month"], "model_version": pinned["version"],
            "prepare_seconds": prepare_seconds, "methods": methods}  # fmt: skip


def markdown(sizes: list[dict[str, Any]], rounds: int) -> str:
    lines = [f"{rounds} rounds per method, alternating order, {os.cpu_count()} cores (shared: times are noisy)", "",
             "| customers | method | min s | median s | max s | peak RSS MB | time / polars | RSS / polars |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for size in sizes:
        for entry in size["methods"].values():
            lines.append(
                f"| {size['customers']:,} | {entry['label']} | {entry['seconds_min']:.2f} | "
                f"{entry['seconds_median']:.2f} | {entry['seconds_max']:.2f} | {entry['peak_rss_mb']:.0f} | "
                f"{entry['time_ratio_to_polars']:.2f}x | {entry['rss_ratio_to_polars']:.2f}x |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="customers per run, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--home", type=Path, help="where the data goes (default: $FAIRWAY_HOME/bench/batch_inference)")
    parser.add_argument("--reuse", action="store_true", help="score the data an earlier run prepared, if present")
    parser.add_argument("--only", help="methods to run besides the polars floor, comma-separated (default: all)")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--pinned", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_method(args.child, Path(os.environ["FAIRWAY_HOME"]), json.loads(args.pinned))))
        return 0
    base = (args.home or Path(os.environ.get("FAIRWAY_HOME", ".fairway")) / "bench" / "batch_inference").resolve()
    os.environ.pop("FAIRWAY_LEDGER_URL", None)  # the ledger beside the benchmark's own registry
    os.environ.pop("FAIRWAY_DECISION_LOG_URL", None)
    unknown = set((args.only or "").split(",")) - set(METHODS) - {""}
    if unknown:
        parser.error(f"--only: unknown methods {sorted(unknown)} (choose from {', '.join(METHODS)})")
    chosen = METHODS if not args.only else ("polars", *[m for m in args.only.split(",") if m in METHODS and m != "polars"])
    sizes = [bench_size(int(size), base, args.rounds, args.reuse, chosen) for size in args.sizes.split(",")]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "batch_inference.json"
    earlier = json.loads(path.read_text()).get("sizes", {}) if path.is_file() else {}
    by_size = {**earlier, **{str(size["customers"]): {**size, "rounds_run": args.rounds} for size in sizes}}
    path.write_text(json.dumps({"cpus": os.cpu_count(), "sizes": by_size}, indent=2))  # other sizes' runs kept
    print("\n" + markdown(sizes, args.rounds))
    consistent = all(len({m["rows"] for m in size["methods"].values()}) == 1 for size in sizes)
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
