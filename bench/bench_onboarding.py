"""Benchmark: bring your own dataset, from the CSV to the lifecycle, on a generated 50,000-row, 15-column file.

The file is census-income-like (tests/datasets.py: ids, `?` markers, empty cells, a 41-valued category, six race
groups, a sex gap in the recorded outcome; `--gap` scales it), imported with the four smallest race groups merged.
Same run, same file:

1. `fairway usecase init`, step by step (InitResult.seconds), as a ratio to reading the file at all: DuckDB's
   `read_csv` (the strongest floor here) and pandas' `read_csv` of every cell as text (what init starts with);
2. `make demo USECASE=...` (include/demo.py in a fresh FAIRWAY_HOME): seconds per DAG (demo_seconds.json), and each
   candidate's share of the training DAG's train_candidate time (Airflow's task durations; the candidate's fit
   time recorded in its MLflow run).

    .venv/bin/python bench/bench_onboarding.py [--rows 50000] [--gap 0.3] [--skip-demo]
Results: bench/results/onboarding.json and Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
# the race groups of fewer than ~200 rows a month, merged as the import's notes suggest: a group of 40 holdout rows
# passes gate.min_group_rows (30) but its disparate impact swings by +-0.4 (its interval shows it), and the gate
# judges the point estimate
SMALL_RACES = ["Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Pacific-Islander"]
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(PROJECT))


def timed(function, repeat: int = 3) -> float:  # noqa: ANN001
    """Median wall seconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bench_init(csv: Path, home: Path) -> dict:
    import duckdb
    import pandas as pd

    from fairway.config import Paths
    from fairway.onboarding import init_usecase

    floors = {
        "duckdb read_csv": timed(lambda: duckdb.read_csv(str(csv), all_varchar=True).arrow()),
        "pandas read_csv (text)": timed(lambda: pd.read_csv(csv, dtype=str)),
    }
    runs = []
    for attempt in range(3):
        out = Paths(home / f"init-{attempt}")
        started = time.perf_counter()
        result = init_usecase("bench", csv, "income", ["sex", "race"], entity="Person", positive="<=50K",
                              na_values=["?"], merge={"race": {"other": SMALL_RACES}}, out=out)  # fmt: skip
        runs.append({"total": time.perf_counter() - started, **result.seconds})
    steps = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return {"floors_s": floors, "steps_s": steps, "notes": len(result.notes), "months": len(result.months)}


def bench_demo(csv: Path, home: Path) -> dict:
    """make demo's lifecycle on the imported file in a fresh FAIRWAY_HOME; stage seconds and candidate shares."""
    env = {**os.environ, "FAIRWAY_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"), "FAIRWAY_USECASE": "bench",
           "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}  # fmt: skip
    python = str(PROJECT / ".venv" / "bin" / "python")
    fairway = str(PROJECT / ".venv" / "bin" / "fairway")
    subprocess.run([fairway, "usecase", "init", "--name", "bench", "--csv", str(csv), "--target", "income",
                    "--protected", "sex,race", "--entity", "Person", "--positive", "<=50K", "--na-values", "?",
                    "--merge", f"race={','.join(SMALL_RACES)}:other"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    subprocess.run([str(PROJECT / ".venv" / "bin" / "airflow"), "db", "migrate"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run([python, str(PROJECT / "include" / "demo.py"), "--usecase", "bench"], env=env,
                          capture_output=True, text=True)  # fmt: skip
    total = time.perf_counter() - started
    (home / "demo.log").write_text(done.stdout + done.stderr)
    seconds = home / "demo_seconds.json"  # what each DAG took, summed over its runs (include/demo.py)
    stages = json.loads(seconds.read_text()) if seconds.is_file() else {}
    return {"exit_code": done.returncode, "total_s": total, "stages_s": stages,
            "last_lines": done.stdout.strip().splitlines()[-3:] + done.stderr.strip().splitlines()[-3:],
            "candidates": candidate_shares(home)}  # fmt: skip


def candidate_shares(home: Path) -> dict:
    """Each train_candidate task's duration (Airflow metadata) and its candidate's fit seconds (MLflow params)."""
    db = home / "airflow" / "airflow.db"
    if not db.is_file():
        return {}
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT rendered_map_index, duration FROM task_instance WHERE dag_id = 'training' "
            "AND task_id = 'train_candidate' AND state = 'success' ORDER BY start_date"
        ).fetchall()
    first: dict[str, float] = {}
    for name, seconds in rows:
        first.setdefault(name, float(seconds or 0))  # the first training (a retraining repeats them)
    total = sum(first.values()) or 1.0
    fits = {}
    mlflow_db = home / "mlflow" / "mlflow.db"
    if mlflow_db.is_file():
        with sqlite3.connect(mlflow_db) as connection:
            for name, value in connection.execute(
                "SELECT t.value, p.value FROM tags t JOIN params p ON p.run_uuid = t.run_uuid "
                "JOIN runs r ON r.run_uuid = t.run_uuid "
                "WHERE t.key = 'fairway.candidate' AND p.key = 'fit_seconds' ORDER BY r.start_time"
            ):
                fits.setdefault(name, float(value))
    return {name: {"task_s": s, "share": s / total, "fit_s": fits.get(name)} for name, s in first.items()}


def tables(result: dict) -> str:
    init = result["init"]
    floor = init["floors_s"]["duckdb read_csv"]
    lines = [f"`usecase init` on {result['rows']:,} rows x {result['columns']} columns "
             f"({init['months']} months, {init['notes']} notes):", "",
             "| step | seconds | vs duckdb read_csv |", "|---|---|---|"]  # fmt: skip
    for name, seconds in init["floors_s"].items():
        lines.append(f"| floor: {name} | {seconds:.2f} | {seconds / floor:.1f}x |")
    for name, seconds in init["steps_s"].items():
        lines.append(f"| {name} | {seconds:.2f} | {seconds / floor:.1f}x |")
    demo = result.get("demo")
    if demo:
        lines += ["", f"`make demo USECASE=bench`: {demo['total_s']:.0f} s, exit code {demo['exit_code']}", "",
                  "| DAG (all its runs) | seconds | share |", "|---|---|---|"]  # fmt: skip
        staged = sum(demo["stages_s"].values()) or 1.0
        for name, seconds in demo["stages_s"].items():
            lines.append(f"| {name} | {seconds:.1f} | {seconds / staged:.0%} |")
        lines += ["", "| candidate | train_candidate task s | share of training | fit s |", "|---|---|---|---|"]
        for name, c in sorted(demo["candidates"].items(), key=lambda kv: -kv[1]["task_s"]):
            fit = "–" if c["fit_s"] is None else f"{c['fit_s']:.1f}"
            lines.append(f"| {name} | {c['task_s']:.1f} | {c['share']:.0%} | {fit} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--gap", type=float, default=0.3, help="the sex gap of the file (1: census-like)")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    from tests.datasets import write_census_like

    with tempfile.TemporaryDirectory(prefix="fairway-bench-onboarding-") as tmp:
        root = Path(tmp)
        os.environ["FAIRWAY_HOME"] = str(root / "home")
        csv = write_census_like(root / "bench.csv", rows=args.rows, seed=11, gap=args.gap, ids=True)
        columns = len(csv.open().readline().split(","))
        result: dict = {"rows": args.rows, "columns": columns, "gap": args.gap,
                        "init": bench_init(csv, root / "init")}  # fmt: skip
        if not args.skip_demo:
            result["demo"] = bench_demo(csv, root / "demo")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "onboarding.json").write_text(json.dumps(result, indent=2))
    print(tables(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
