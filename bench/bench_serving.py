"""Benchmark: online serving latency and throughput, Fairway's BentoML service vs `mlflow models serve`.

Same run, same champion version: 5,000 customers x 4 months, the last month materialized into the online store,
a Reweighing model gated, approved by policy and packaged. Three endpoints, each with 1 and 8 concurrent clients
(threads with keep-alive connections), after a warm-up:

- Fairway `POST /predict` (customer id: Feast online lookup + score + decision record committed),
- Fairway `POST /predict_features` (explicit inputs: validation + score + decision record committed),
- the baseline: `mlflow models serve` of the same version, `POST /invocations` with the same explicit inputs
  (`dataframe_records`), which validates against the signature, scores and records nothing.

Both servers run one worker on this machine. Reported: p50 and p99 latency (ms) and requests per second.

    make bench              # or: .venv/bin/python bench/bench_serving.py --requests 300
Results: bench/results/serving.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
from local_stack import terminate_tree, wait_healthy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent


def prepare(home: Path) -> dict[str, str]:
    """Data, features online, a champion packaged (once, outside the timings); returns what to serve."""
    os.environ["FAIRWAY_APPROVAL_MODE"] = "auto"
    from fairway import promotion
    from fairway.config import load_usecase
    from fairway.data import available_months, generate, read_month
    from fairway.features.store import apply_repo, materialize_month, write_offline_partition
    from fairway.packaging import package
    from fairway.training import build_training_frame, register_best, train_candidate

    uc = load_usecase("credit_risk")
    generate(uc, 5000, 4, seed=2024, drift_month=None)
    apply_repo(uc)
    months = available_months(uc)
    for month in months:
        write_offline_partition(uc, month)
    materialize_month(uc, months[-1])
    registered = register_best(uc, [train_candidate(uc, build_training_frame(uc, months[-1], 3), "reweighing")])
    gated = promotion.gate_candidate(uc, registered["version"])
    if gated["decision"] != "pass":
        sys.exit(f"the benchmark's candidate did not pass the gate: {gated['reasons']}")
    promotion.promote(uc, gated, promotion.auto_approval(uc, gated))
    bento = package(uc, registered["version"])["bento"]
    snapshot, _ = read_month(uc, months[-1])
    return {"bento": bento, "version": registered["version"], "model": uc.model_name,
            "customers": json.dumps(list(snapshot["customer_id"].iloc[:500])),
            "applicants": snapshot[uc.model_inputs].iloc[:500].to_json(orient="records")}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(command: list[str], ready: str, log: Path) -> Iterator[None]:
    """A server in its own process group, until `ready` answers 200; stopped with all its children."""
    with open(log, "w") as out:
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # mlflow execs uvicorn
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        try:
            try:
                wait_healthy(process, ready, 180, log)
            except (RuntimeError, TimeoutError) as error:
                sys.exit(str(error))
            yield
        finally:
            left = terminate_tree(process.pid)
            process.wait()
            if left:
                print(f"{command[:3]} left processes behind: {left}", flush=True)


def load(url: str, bodies: list[dict], requests: int, clients: int) -> dict[str, float]:
    """`requests` POSTs spread over `clients` threads, each with its own keep-alive connection."""

    def worker(share: int, offset: int) -> list[float]:
        timings = []
        with httpx.Client(timeout=30) as client:
            for i in range(share):
                body = bodies[(offset + i) % len(bodies)]
                started = time.perf_counter()
                response = client.post(url, json=body)
                timings.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
        return timings

    load_share = requests // clients
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        parts = list(pool.map(worker, [load_share] * clients, [i * 997 for i in range(clients)]))
    wall = time.perf_counter() - started
    timings = sorted(t for part in parts for t in part)
    return {"p50_ms": 1000 * statistics.median(timings), "p99_ms": 1000 * timings[int(0.99 * (len(timings) - 1))],
            "rps": len(timings) / wall, "requests": len(timings)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800, help="per endpoint and concurrency level")
    args = parser.parse_args()
    home = Path(os.environ.get("FAIRWAY_HOME", ".fairway")).resolve() / "bench" / "serving"
    os.environ["FAIRWAY_HOME"] = str(home)
    os.environ["BENTOML_HOME"] = str(home / "bentoml")
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    print(f"preparing a packaged champion under {home}", flush=True)
    served = prepare(home)
    from fairway import registry

    os.environ["MLFLOW_TRACKING_URI"] = registry.tracking_uri()
    customers = [{"customer_id": c} for c in json.loads(served["customers"])]
    applicants = json.loads(served["applicants"])
    bento_port, mlflow_port = free_port(), free_port()
    results: dict[str, dict] = {}
    plans = {
        "fairway": (
            [str(BIN / "bentoml"), "serve", served["bento"], "--host", "127.0.0.1", "--port", str(bento_port)],
            f"http://127.0.0.1:{bento_port}/readyz",
            [("Fairway POST /predict (Feast lookup)", f"http://127.0.0.1:{bento_port}/predict", customers),
             ("Fairway POST /predict_features", f"http://127.0.0.1:{bento_port}/predict_features",
              [{"applicant": a} for a in applicants])],
        ),
        "mlflow": (
            [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{served['model']}/{served['version']}",
             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
            f"http://127.0.0.1:{mlflow_port}/ping",
            [("mlflow models serve POST /invocations (baseline)", f"http://127.0.0.1:{mlflow_port}/invocations",
              [{"dataframe_records": [a]} for a in applicants])],
        ),
    }  # fmt: skip
    for server, (command, ready, endpoints) in plans.items():
        with running(command, ready, home / f"{server}.log"):
            for name, url, bodies in endpoints:
                load(url, bodies, 100, 2)  # warm-up
                for clients in (1, 8):
                    results[f"{name} | {clients}"] = measured = load(url, bodies, args.requests, clients)
                    print(f"  {name}, {clients} client(s): p50 {measured['p50_ms']:.1f} ms, p99 "
                          f"{measured['p99_ms']:.1f} ms, {measured['rps']:.0f} req/s", flush=True)  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    summary = {"baseline": "mlflow models serve (same version, explicit inputs), same run", "cpus": os.cpu_count(),
               "results": results}  # fmt: skip
    (RESULTS / "serving.json").write_text(json.dumps(summary, indent=2))
    baseline = {c: results[f"mlflow models serve POST /invocations (baseline) | {c}"] for c in (1, 8)}
    print("\n| endpoint | clients | p50 ms | p99 ms | req/s | p50 vs baseline | req/s vs baseline |")
    print("|---|---|---|---|---|---|---|")
    for key, r in results.items():
        name, clients = key.rsplit(" | ", 1)
        b = baseline[int(clients)]
        print(f"| {name} | {clients} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps']:.0f} | "
              f"{r['p50_ms'] / b['p50_ms']:.2f}x | {r['rps'] / b['rps']:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
