"""Benchmark: online serving latency and throughput of Fairway's BentoML service against its floors.

Same run, same champion version: 5,000 customers x 4 months, the last month materialized into the online store,
a Reweighing model gated, approved by policy and packaged. Each endpoint is measured in cells of `--seconds`
(default 30) with 1 and 8 concurrent clients, in `--rounds` (default 2) alternating rounds (every server runs for
the whole benchmark; the rounds go endpoint by endpoint, so a noisy minute does not hit one endpoint only):

- Fairway `POST /predict` (customer id: Feast online lookup + score + reason codes + decision record committed),
- Fairway `POST /predict_features` (explicit inputs: validation + score + reason codes + decision record),
- floor `feast serve` of the same feature repo and online store, `POST /get-online-features` with the model's
  feature service and the same rotating customer ids (the lookup alone, no score, no record; its access log off
  and `--max-requests 0`: by default its gunicorn worker restarts every ~1,000 requests, mid-cell),
- floor `mlflow models serve` of the same version, `POST /invocations` with the same explicit inputs
  (`dataframe_records`: signature validation + sklearn scoring, nothing recorded),
- floor FastAPI/uvicorn echo: one process, `POST /echo` parses the JSON body and answers it (the ASGI server
  and JSON alone: what any Python HTTP service pays).

Every server runs one worker on this machine. The load generator is one process per client (stdlib
`http.client`, a keep-alive connection each, no thread pool and no async loop in the client), so it shares the
cores with the server but does not serialise behind a GIL of its own. Reported per cell: p50, p99, max latency
(ms) and requests per second; per endpoint and clients the min/median/max over rounds; and the 10 slowest
requests of each cell with their time since the cell's start, so stalls can be correlated with periodic work.

    make bench              # or: .venv/bin/python bench/bench_serving.py --seconds 30 --rounds 2
Results: bench/results/serving.json and Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
from local_stack import terminate_tree, wait_healthy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parents[1]


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
            "feature_service": uc.service("model_input").name, "join_key": uc.entity.join_key,
            "customers": json.dumps(list(snapshot["customer_id"].iloc[:500])),
            "applicants": snapshot[uc.model_inputs].iloc[:500].to_json(orient="records")}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(command: list[str], ready: str, log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """A server in its own process group, until `ready` answers 200; stopped with all its children."""
    with open(log, "w") as out:
        path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow execs uvicorn
        full_env = {**os.environ, "PATH": path, **(env or {})}
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=full_env)  # fmt: skip
        try:
            try:
                wait_healthy(process, ready, 180, log)
            except (RuntimeError, TimeoutError) as error:
                sys.exit(str(error))
            yield process.pid
        finally:
            left = terminate_tree(process.pid)
            process.wait()
            if left:
                print(f"{command[:3]} left processes behind: {left}", flush=True)


def client(url: str, bodies: list[bytes], offset: int, start: float, stop: float, out: multiprocessing.Queue) -> None:
    """One keep-alive connection posting the rotating bodies from `start` to `stop` (time.time()); puts
    [(seconds since start, latency seconds)] on `out`."""
    _, _, hostport, path = url.split("/", 3)
    host, port = hostport.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    samples: list[tuple[float, float]] = []
    failure = ""
    while time.time() < start:
        time.sleep(0.001)
    i = offset
    while (now := time.time()) < stop:
        began = time.perf_counter()
        try:
            connection.request("POST", "/" + path, body=bodies[i % len(bodies)], headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError as error:  # a server closing the connection fails the cell, it does not hang it
            failure = f"{url}: {type(error).__name__} {error}"
            break
        samples.append((now - start, time.perf_counter() - began))
        if response.status != 200:
            failure = f"{url}: {response.status} {payload[:300]!r}"
            break
        i += 1
    out.put((samples, failure))


def cell(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """`clients` processes for `seconds`: p50/p99/max latency, req/s and the 10 slowest requests."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    start = time.time() + 0.5
    workers = [context.Process(target=client, args=(url, bodies, n * 997, start, start + seconds, queue))
               for n in range(clients)]  # fmt: skip
    for worker in workers:
        worker.start()
    parts = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    failures = [failure for _, failure in parts if failure]
    if failures:
        raise RuntimeError(failures[0])
    samples = [s for part, _ in parts for s in part]
    latencies = sorted(latency for _, latency in samples)
    slowest = sorted(samples, key=lambda s: -s[1])[:10]
    return {"p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
            "max_ms": 1000 * latencies[-1], "rps": len(latencies) / seconds, "requests": len(latencies),
            "slowest": [{"at_s": round(at, 3), "ms": round(1000 * latency, 1)} for at, latency in sorted(slowest)]}  # fmt: skip


def floor_app(port: int) -> None:
    """The FastAPI/uvicorn floor: one process, POST /echo answers the parsed JSON body, GET /ping."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    async def ping(_: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def echo(request: Any) -> JSONResponse:
        return JSONResponse(await request.json())

    app.add_route("/ping", ping, methods=["GET"])
    app.add_route("/echo", echo, methods=["POST"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def plans(served: dict[str, str], home: Path) -> dict[str, tuple[list[str], str, dict[str, str], list]]:
    """server -> (command, readiness URL, environment, [(endpoint name, URL, bodies)])."""
    customers = json.loads(served["customers"])
    applicants = json.loads(served["applicants"])
    ports = {name: free_port() for name in ("fairway", "feast", "mlflow", "floor")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    feast_env = {"FAIRWAY_USECASE": "credit_risk", "PYTHONPATH": str(PROJECT / "include")}
    return {
        "fairway": (
            [str(BIN / "bentoml"), "serve", served["bento"], "--host", "127.0.0.1", "--port", str(ports["fairway"])],
            f"{url['fairway']}/readyz", {},
            [("Fairway POST /predict", f"{url['fairway']}/predict", [{"customer_id": c} for c in customers]),
             ("Fairway POST /predict_features", f"{url['fairway']}/predict_features",
              [{"applicant": a} for a in applicants])],
        ),
        "feast": (
            [str(BIN / "feast"), "-c", str(PROJECT / "feature_repo"), "-f", str(PROJECT / "feature_repo" /
             "feature_store.yaml"), "serve", "-h", "127.0.0.1", "-p", str(ports["feast"]), "--no-access-log",
             "--max-requests", "0"],
            f"{url['feast']}/health", feast_env,
            [("floor: feast serve POST /get-online-features", f"{url['feast']}/get-online-features",
              [{"feature_service": served["feature_service"], "entities": {served["join_key"]: [c]}}
               for c in customers])],
        ),
        "mlflow": (
            [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{served['model']}/{served['version']}",
             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(ports["mlflow"]), "--workers", "1"],
            f"{url['mlflow']}/ping", {},
            [("floor: mlflow models serve POST /invocations", f"{url['mlflow']}/invocations",
              [{"dataframe_records": [a]} for a in applicants])],
        ),
        "floor": (
            [sys.executable, __file__, "--floor-app", str(ports["floor"])], f"{url['floor']}/ping", {},
            [("floor: FastAPI/uvicorn echo", f"{url['floor']}/echo", [{"customer_id": c} for c in customers])],
        ),
    }  # fmt: skip


def summarise(results: dict[str, list[dict]]) -> None:
    print("\n| endpoint | clients | p50 ms | p99 ms | max ms | req/s | p99/p50 |  (min / median / max over rounds)")
    print("|---|---|---|---|---|---|---|")
    for key, cells in results.items():
        name, clients = key.rsplit(" | ", 1)
        spread = {m: sorted(c[m] for c in cells) for m in ("p50_ms", "p99_ms", "max_ms", "rps")}
        ratio = sorted(c["p99_ms"] / c["p50_ms"] for c in cells)
        cols = [" / ".join(f"{v:.1f}" if m != "rps" else f"{v:.0f}" for v in (s[0], statistics.median(s), s[-1]))
                for m, s in spread.items()]  # fmt: skip
        cols.append(" / ".join(f"{v:.1f}" for v in (ratio[0], statistics.median(ratio), ratio[-1])))
        print(f"| {name} | {clients} | " + " | ".join(cols) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of each cell (endpoint x clients)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds over all cells")
    parser.add_argument("--clients", default="1,8", help="concurrency levels, comma-separated")
    parser.add_argument("--only", default="", help="comma-separated servers: fairway,feast,mlflow,floor")
    parser.add_argument("--home", default="", help="FAIRWAY_HOME to prepare in (default $FAIRWAY_HOME/bench/serving)")
    parser.add_argument("--floor-app", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_app:
        floor_app(args.floor_app)
        return 0
    base = Path(args.home or os.environ.get("FAIRWAY_HOME", ".fairway")).resolve()
    home = base if args.home else base / "bench" / "serving"
    os.environ["FAIRWAY_HOME"] = str(home)
    os.environ["BENTOML_HOME"] = str(home / "bentoml")
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    print(f"preparing a packaged champion under {home}", flush=True)
    served = prepare(home)
    from fairway import registry

    os.environ["MLFLOW_TRACKING_URI"] = registry.tracking_uri()
    chosen = {s for s in args.only.split(",") if s}
    levels = [int(c) for c in args.clients.split(",")]
    servers = {name: plan for name, plan in plans(served, home).items() if not chosen or name in chosen}
    results: dict[str, list[dict]] = {}
    with contextlib.ExitStack() as stack:
        for server, (command, ready, env, _) in servers.items():
            stack.enter_context(running(command, ready, home / f"{server}.log", env))
        endpoints = [(name, url, [json.dumps(b).encode() for b in bodies])
                     for _, _, _, listed in servers.values() for name, url, bodies in listed]  # fmt: skip
        for _name, url, bodies in endpoints:
            cell(url, bodies, 2, 3)  # warm-up
        for round_no in range(1, args.rounds + 1):
            for name, url, bodies in endpoints:
                for clients in levels:
                    measured = cell(url, bodies, clients, args.seconds)
                    results.setdefault(f"{name} | {clients}", []).append(measured)
                    slow = ", ".join(f"{s['ms']:.0f}@{s['at_s']:.1f}s" for s in measured["slowest"][:10])
                    print(f"  round {round_no} {name}, {clients} client(s): p50 {measured['p50_ms']:.1f} ms, p99 "
                          f"{measured['p99_ms']:.1f} ms, max {measured['max_ms']:.0f} ms, {measured['rps']:.0f} "
                          f"req/s; slowest {slow}", flush=True)  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    summary = {"load": "one process per client, stdlib http.client keep-alive", "seconds": args.seconds,
               "rounds": args.rounds, "cpus": os.cpu_count(), "results": results}  # fmt: skip
    (RESULTS / "serving.json").write_text(json.dumps(summary, indent=2))
    summarise(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
