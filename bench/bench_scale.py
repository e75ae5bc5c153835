"""Benchmark: the two stores a bigger deployment swaps, measured on this machine.

- **Decision log**: `fairway.records.DecisionLog.append` (one committed row per decision, as the service writes
  it) from 1, 2 and 4 writer processes at once (as service replicas would), into the embedded SQLite file (WAL)
  and into PostgreSQL (a throw-away local server, `include/local_services.py`). Reported: committed rows per
  second over all writers and the p50/p99 of one append.
- **Online store**: one customer's features of the model's feature service through Feast's
  `get_online_features` (as `/predict` looks them up), from the embedded SQLite online store and from Redis
  (Debian's redis-server, which `make stack-deps` installs), the same materialized month in both.

Each cell runs `--rounds` times (default 3); min/median/max are reported. The baseline of each table is its
embedded store in the same run.

    make bench              # or: .venv/bin/python bench/bench_scale.py --rows 2000
Results: bench/results/scale.json and Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT))


def _record(i: int) -> dict:
    return {
        "request_id": uuid.uuid4().hex, "recorded_at": datetime.now(UTC), "usecase": "credit_risk",
        "endpoint": "predict", "subject": f"{i:032x}", "input_fingerprint": f"{i:032x}", "score": 0.25,
        "decision": "approve", "threshold": 0.5, "model_name": "bench", "model_version": "1",
        "features_event_time": datetime.now(UTC), "features_stale": False,
        "reasons": json.dumps([{"feature": "income", "value": 1.0, "reference": 2.0, "effect": 0.1}]),
    }  # fmt: skip


def _writer(url: str, rows: int, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue) -> None:
    from fairway.records import DecisionLog

    log = DecisionLog(url)
    log.append(_record(-1))  # connection and table made outside the timing
    start.wait()
    timings = []
    for i in range(rows):
        began = time.perf_counter()
        log.append(_record(i))
        timings.append(time.perf_counter() - began)
    out.put(timings)


def decision_log_cell(url: str, writers: int, rows: int) -> dict[str, float]:
    from fairway.records import DecisionLog

    DecisionLog(url).engine.dispose()  # the table exists before the writers start
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    processes = [context.Process(target=_writer, args=(url, rows, start, out)) for _ in range(writers)]
    for process in processes:
        process.start()
    time.sleep(3)  # every writer connected
    began = time.perf_counter()
    start.set()
    timings = sorted(t for _ in processes for t in out.get(timeout=600))
    wall = time.perf_counter() - began
    for process in processes:
        process.join()
    return {"rows_per_s": len(timings) / wall, "p50_ms": 1000 * statistics.median(timings),
            "p99_ms": 1000 * timings[int(0.99 * (len(timings) - 1))]}  # fmt: skip


def online_cell(customers: list[str], lookups: int) -> dict[str, float]:
    from fairway.config import load_usecase
    from fairway.features.store import get_store

    uc = load_usecase("credit_risk")
    store = get_store(uc)
    service = store.get_feature_service(uc.service("model_input").name)
    key = uc.entity.join_key
    for customer in customers[:50]:  # warm-up
        store.get_online_features(features=service, entity_rows=[{key: customer}]).to_dict()
    timings = []
    for i in range(lookups):
        began = time.perf_counter()
        store.get_online_features(features=service, entity_rows=[{key: customers[i % len(customers)]}]).to_dict()
        timings.append(time.perf_counter() - began)
    timings.sort()
    return {"p50_us": 1e6 * statistics.median(timings), "p99_us": 1e6 * timings[int(0.99 * (len(timings) - 1))],
            "lookups_per_s": len(timings) / sum(timings)}  # fmt: skip


def spread(values: list[float]) -> str:
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


def spread_ms(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def bench_decision_log(home: Path, rows: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    from tests.postgres import postgres_server

    results: dict[str, list[dict[str, float]]] = {}
    with postgres_server() as pg_url:
        for round_ in range(rounds):
            for writers in (1, 2, 4):
                for store, url in (("SQLite (WAL)", f"sqlite:///{home}/decisions-{round_}-{writers}.db"),
                                   ("PostgreSQL", pg_url)):  # fmt: skip
                    cell = decision_log_cell(url, writers, rows)
                    results.setdefault(f"{store} | {writers}", []).append(cell)
                    print(f"  decision log {store}, {writers} writer(s): {cell['rows_per_s']:.0f} rows/s, "
                          f"p99 {cell['p99_ms']:.2f} ms", flush=True)  # fmt: skip
    return results


def bench_online(home: Path, customers: int, lookups: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    from fairway.config import load_usecase
    from fairway.data import read_month
    from tests.champion import feature_store
    from tests.redis_server import redis_server

    results: dict[str, list[dict[str, float]]] = {}
    with redis_server() as address:
        stores = {
            "SQLite": {"FAIRWAY_HOME": str(home / "sqlite"), "FAIRWAY_FEAST_CONFIG": "embedded"},
            "Redis": {"FAIRWAY_HOME": str(home / "redis"), "FAIRWAY_FEAST_CONFIG": "production",
                      "FAIRWAY_FEAST_REGISTRY_URL": f"sqlite:///{home / 'redis-registry.db'}",
                      "FAIRWAY_REDIS_CONNECTION": address},
        }  # fmt: skip
        ids: list[str] = []
        for env in stores.values():
            os.environ.update(env)
            uc = load_usecase("credit_risk")
            months = feature_store(uc, customers, 2, 2024, online_months=1)
            ids = [str(c) for c in read_month(uc, months[-1])[0]["customer_id"].iloc[:500]]
        for _ in range(rounds):
            for name, env in stores.items():
                os.environ.update(env)
                cell = online_cell(ids, lookups)
                results.setdefault(name, []).append(cell)
                print(f"  online store {name}: p50 {cell['p50_us']:.0f} µs, p99 {cell['p99_us']:.0f} µs", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="decision-log rows per writer and cell")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="fairway-bench-scale-"))
    os.environ["FAIRWAY_HOME"] = str(home)
    os.environ.setdefault("FAIRWAY_PSEUDONYM_KEY", "bench-key-not-secret")
    print(f"decision log: {args.rows} appends per writer, {args.rounds} rounds", flush=True)
    log_results = bench_decision_log(home, args.rows, args.rounds)
    print(f"online store: {args.customers} customers materialized, {args.lookups} lookups", flush=True)
    online_results = bench_online(home, args.customers, args.lookups, args.rounds)
    RESULTS.mkdir(exist_ok=True)
    summary = {"baseline": "the embedded store of each table (SQLite), same run", "cpus": os.cpu_count(),
               "decision_log": log_results, "online_store": online_results}  # fmt: skip
    (RESULTS / "scale.json").write_text(json.dumps(summary, indent=2))
    print(
        "\n| decision log | writers | rows/s (min / median / max) | append p50 ms | append p99 ms | rows/s vs SQLite |"
    )
    print("|---|---|---|---|---|---|")
    for key, cells in log_results.items():
        store, writers = key.split(" | ")
        base = statistics.median(c["rows_per_s"] for c in log_results[f"SQLite (WAL) | {writers}"])
        rates = [c["rows_per_s"] for c in cells]
        print(f"| {store} | {writers} | {spread(rates)} | {spread_ms([c['p50_ms'] for c in cells])} | "
              f"{spread_ms([c['p99_ms'] for c in cells])} | {statistics.median(rates) / base:.2f}x |")  # fmt: skip
    print("\n| online store | lookup p50 µs (min / median / max) | lookup p99 µs | p50 vs SQLite |")
    print("|---|---|---|---|")
    base = statistics.median(c["p50_us"] for c in online_results["SQLite"])
    for name, cells in online_results.items():
        p50 = [c["p50_us"] for c in cells]
        print(f"| {name} | {spread(p50)} | {spread([c['p99_us'] for c in cells])} | "
              f"{statistics.median(p50) / base:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
