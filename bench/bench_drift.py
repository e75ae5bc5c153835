"""Benchmark: drift check time against the month's size (10k, 100k, 1M rows), sampled vs unsampled.

Same run, same frames: a reference frame (pre-drift months) and a drifted current month of the default use case,
resampled with replacement to each size. For each size, `fairway.monitoring.drift_report` (Evidently
DataDriftPreset over the model inputs + the score's ValueDrift, HTML and JSON written) runs in its own process on

- **sampled**: both sides sampled down to the use case's `drift.sample_rows` (what the monitoring DAG does),
- **unsampled** (the baseline): both sides whole.

The report gives seconds, peak RSS, the ratio sampled / unsampled, both drift shares and the columns only one
of them flags (columns near the 0.1 distance threshold can flip; the month's verdict must not: exit 1 if it does).

    make bench              # or: .venv/bin/python bench/bench_drift.py --sizes 10000,100000
Results: bench/results/drift.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from peak import peak_rss_mb

RESULTS = Path(__file__).resolve().parent / "results"
SEED_CUSTOMERS = 20_000


def prepare(home: Path) -> None:
    """Ten months of 20,000 customers (drift from month 9): months 1-5 as the reference pool, month 9 as current."""
    from fairway.config import load_usecase
    from fairway.data import available_months, generate, read_month

    uc = load_usecase("credit_risk")
    generate(uc, SEED_CUSTOMERS, 10, seed=2024, drift_month=9, progress=lambda line: print("  ", line, flush=True))
    months = available_months(uc)
    reference = pd.concat([read_month(uc, m)[0] for m in months[:5]], ignore_index=True)
    current = read_month(uc, months[8])[0]
    for name, frame in (("reference", reference), ("current", current)):
        frame = frame[uc.model_inputs].copy()
        frame["score"] = 0.0  # filled per size below from a fixed rule, the same on both sides
        frame.to_parquet(home / f"drift_{name}_pool.parquet", index=False)


def frames(home: Path, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    pools = [pd.read_parquet(home / f"drift_{name}_pool.parquet") for name in ("reference", "current")]
    out = []
    for i, pool in enumerate(pools):
        frame = pool.sample(n=rows, replace=True, random_state=10 + i).reset_index(drop=True)
        frame["score"] = (frame["debt_ratio"] / 5).clip(0, 1)  # a stand-in score: a function of the inputs
        out.append(frame)
    return out[0], out[1]


def run_method(method: str, home: Path, rows: int) -> dict:
    from fairway import monitoring
    from fairway.config import load_usecase

    uc = load_usecase("credit_risk")
    reference, current = frames(home, rows)
    import evidently.presets  # noqa: F401  (imports outside the timing)

    started = time.perf_counter()
    if method == "sampled":
        reference = monitoring.sample(reference, uc.drift.sample_rows)
        current = monitoring.sample(current, uc.drift.sample_rows)
    result = monitoring.drift_report(uc, reference, current, home / f"report_{method}_{rows}")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(),
            "drifted_columns": result["drifted_columns"], "drift_share": result["drift_share"],
            "dataset_drift": result["dataset_drift"], "rows_compared": result["current_rows"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--child", choices=["sampled", "unsampled"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_method(args.child, Path(os.environ["FAIRWAY_HOME"]), args.rows)))
        return 0
    home = Path(os.environ.get("FAIRWAY_HOME", ".fairway")).resolve() / "bench" / "drift"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["FAIRWAY_HOME"] = str(home)
    from fairway.config import load_usecase

    sample_rows = load_usecase("credit_risk").drift.sample_rows
    print(f"preparing the reference and current pools under {home} (sample_rows = {sample_rows:,})", flush=True)
    prepare(home)
    table = []
    for rows in [int(s) for s in args.sizes.split(",")]:
        entry: dict = {"rows": rows}
        for method in ("unsampled", "sampled"):
            out = subprocess.run([sys.executable, __file__, "--child", method, "--rows", str(rows)],
                                 capture_output=True, text=True, env=os.environ)  # fmt: skip
            if out.returncode != 0:
                sys.exit(f"{method} {rows} failed:\n{out.stderr[-3000:]}")
            entry[method] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {rows:>9,} rows {method:>9}: {entry[method]['seconds']:.1f} s, "
                  f"peak {entry[method]['peak_rss_mb']:.0f} MB, drifted {entry[method]['drifted_columns']}", flush=True)  # fmt: skip
        entry["ratio_sampled_to_unsampled"] = entry["sampled"]["seconds"] / entry["unsampled"]["seconds"]
        entry["same_verdict"] = entry["sampled"]["dataset_drift"] == entry["unsampled"]["dataset_drift"]
        entry["columns_flagged_by_one_only"] = sorted(
            set(entry["sampled"]["drifted_columns"]) ^ set(entry["unsampled"]["drifted_columns"])
        )
        table.append(entry)
    summary = {"baseline": "Evidently on the whole frames (unsampled), same run", "sample_rows": sample_rows,
               "cpus": os.cpu_count(), "sizes": table}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drift.json").write_text(json.dumps(summary, indent=2))
    print(
        "\n| rows per side | unsampled s | sampled s | sampled / unsampled | peak MB unsampled / sampled | drift share unsampled / sampled | columns flagged by one only |"
    )
    print("|---|---|---|---|---|---|---|")
    for e in table:
        print(f"| {e['rows']:,} | {e['unsampled']['seconds']:.1f} | {e['sampled']['seconds']:.1f} | "
              f"{e['ratio_sampled_to_unsampled']:.2f}x | {e['unsampled']['peak_rss_mb']:.0f} / {e['sampled']['peak_rss_mb']:.0f} | "
              f"{e['unsampled']['drift_share']:.1f} / {e['sampled']['drift_share']:.1f} | "
              f"{', '.join(e['columns_flagged_by_one_only']) or '-'} |")  # fmt: skip
    return 0 if all(e["same_verdict"] for e in table) else 1


if __name__ == "__main__":
    sys.exit(main())
