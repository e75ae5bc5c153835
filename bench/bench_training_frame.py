"""Benchmark: point-in-time training-frame retrieval through Feast vs the pandas merge_asof floor.

Same run, same data: 100,000 customers x 10 months (~1M feature rows) in the offline store, 100,000 entity
rows at random times. Each method runs in its own process (so peak memory is its own) and is repeated;
the report gives median seconds, the ratio Feast / floor, peak RSS, and the rows Feast lost (must be 0) and
the values that differ from the floor (must be 0).

    make bench                 # or: .venv/bin/python bench/bench_training_frame.py --customers 20000
Results: bench/results/training_frame.json and a Markdown table on stdout.
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


def _entity_rows(raw_ids: np.ndarray, n: int, start: str, end: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    times = t0 + pd.to_timedelta(rng.uniform(0, (t1 - t0).total_seconds(), n), unit="s")
    return pd.DataFrame({"customer_id": rng.choice(raw_ids, n), "snapshot_ts": times.astype("datetime64[us, UTC]")})


def prepare(home: Path, customers: int, months: int, entity_rows: int) -> dict[str, int]:
    """Generate the data, write the offline partitions and the entity rows (once, outside the timings)."""
    from fairway.config import load_usecase
    from fairway.data import available_months, generate
    from fairway.features.store import apply_repo, write_offline_partition

    uc = load_usecase("credit_risk")
    generate(uc, customers, months, seed=2024, drift_month=None, progress=lambda line: print("  ", line, flush=True))
    apply_repo(uc)
    feature_rows = 0
    for month in available_months(uc):
        feature_rows += write_offline_partition(uc, month)["rows"]["customer_financials"]
    ids = pd.read_parquet(home / "data/offline/credit_risk/customer_financials", columns=["customer_id"])["customer_id"]
    rows = _entity_rows(ids.unique(), entity_rows, f"{uc.start_month}-01", "2025-01-15", seed=1)
    rows.to_parquet(home / "bench_entity_rows.parquet", index=False)
    return {"feature_rows": feature_rows, "entity_rows": len(rows)}


def run_method(method: str, home: Path) -> dict[str, float | int]:
    """One timed retrieval in this process; prints a JSON line with seconds, peak RSS and the frame's digest."""
    from fairway.config import load_usecase
    from fairway.features.retrieval import historical_features, merge_asof_frame
    from fairway.features.store import get_store

    uc = load_usecase("credit_risk")
    service = uc.service("model_input")
    columns = list(service.features)
    entity_rows = pd.read_parquet(home / "bench_entity_rows.parquet")
    store = get_store(uc) if method == "feast" else None
    started = time.perf_counter()
    join_seconds = 0.0
    if method == "feast":
        frame = historical_features(store, uc, entity_rows, service.name)
    else:
        features = pd.read_parquet(home / "data/offline/credit_risk/customer_financials")
        ttl = timedelta(days=uc.view("customer_financials").ttl_days)
        join_started = time.perf_counter()
        frame = merge_asof_frame(entity_rows, features, uc.entity.join_key, uc.event_timestamp, columns, ttl)
        join_seconds = time.perf_counter() - join_started
    seconds = time.perf_counter() - started
    frame[["customer_id", *columns]].to_parquet(home / f"bench_out_{method}.parquet", index=False)
    peak_mb = peak_rss_mb()
    return {"seconds": seconds, "join_seconds": join_seconds, "peak_rss_mb": peak_mb, "rows": len(frame)}


def differing_values(a: pd.DataFrame, b: pd.DataFrame) -> int:
    """Cells that differ between two frames of the same shape; numbers compared as floats, missing == missing."""
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return -1
    differing = 0
    for column in a.columns:
        left, right = a[column], b[column]
        if pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right):
            x, y = left.astype("float64").to_numpy(), right.astype("float64").to_numpy()
            same = (x == y) | (np.isnan(x) & np.isnan(y))
        else:
            same = (left.fillna("<missing>").astype(str) == right.fillna("<missing>").astype(str)).to_numpy()
        differing += int((~same).sum())
    return differing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=10)
    parser.add_argument("--entity-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["feast", "floor"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # FAIRWAY_HOME is already the benchmark's own folder
        print(json.dumps(run_method(args.child, Path(os.environ["FAIRWAY_HOME"]))))
        return 0
    home = Path(os.environ.get("FAIRWAY_HOME", ".fairway")).resolve() / "bench" / "training_frame"
    os.environ["FAIRWAY_HOME"] = str(home)

    print(f"preparing {args.customers:,} customers x {args.months} months under {home}", flush=True)
    sizes = prepare(home, args.customers, args.months, args.entity_rows)
    runs: dict[str, list[dict]] = {"floor": [], "feast": []}
    for attempt in range(args.repeat):
        for method in ("floor", "feast"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", method], capture_output=True, text=True, env=os.environ
            )
            if out.returncode != 0:
                sys.exit(f"{method} failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[method].append(result)
            print(
                f"  run {attempt + 1} {method:>5}: {result['seconds']:.2f} s, peak {result['peak_rss_mb']:.0f} MB",
                flush=True,
            )

    floor = pd.read_parquet(home / "bench_out_floor.parquet")
    feast = pd.read_parquet(home / "bench_out_feast.parquet")
    summary = {
        **sizes,
        "baseline": "pandas merge_asof (read partitions + join), same data, same machine, same run",
        "floor_seconds": statistics.median(r["seconds"] for r in runs["floor"]),
        "floor_join_only_seconds": statistics.median(r["join_seconds"] for r in runs["floor"]),
        "feast_seconds": statistics.median(r["seconds"] for r in runs["feast"]),
        "floor_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["floor"]),
        "feast_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["feast"]),
        "rows_lost": sizes["entity_rows"] - runs["feast"][-1]["rows"],
        "values_differing": differing_values(floor, feast),
        "cpus": os.cpu_count(),
    }
    summary["ratio_feast_to_floor"] = summary["feast_seconds"] / summary["floor_seconds"]
    summary["ratio_feast_to_join_only"] = summary["feast_seconds"] / summary["floor_join_only_seconds"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training_frame.json").write_text(json.dumps(summary, indent=2))
    print("\n| method | median s | peak RSS MB | rows lost | values differing |")
    print("|---|---|---|---|---|")
    print(
        f"| pandas: read partitions + merge_asof (floor) | {summary['floor_seconds']:.2f} | {summary['floor_peak_rss_mb']:.0f} | 0 | - |"
    )
    print(f"| pandas: merge_asof alone, data in memory | {summary['floor_join_only_seconds']:.2f} | - | 0 | - |")
    print(
        f"| Feast, DuckDB offline store | {summary['feast_seconds']:.2f} | {summary['feast_peak_rss_mb']:.0f} | "
        f"{summary['rows_lost']} | {summary['values_differing']} |"
    )
    print(f"\nratio Feast / floor: {summary['ratio_feast_to_floor']:.2f}x, Feast / merge_asof alone: "
          f"{summary['ratio_feast_to_join_only']:.2f}x ({sizes['feature_rows']:,} feature rows, "
          f"{sizes['entity_rows']:,} entity rows, {summary['cpus']} cores)")  # fmt: skip
    return 0 if summary["rows_lost"] == 0 and summary["values_differing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
