"""`make up` / `make down`: Fairway's interactive stack on this machine, without Docker.

- Airflow standalone (api-server, scheduler, dag-processor, triggerer; LocalExecutor on SQLite) with the
  Fairway plugin, parallelism capped for a small machine: http://127.0.0.1:${AIRFLOW_PORT:-8080}
  (user `admin`, password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated);
- the MLflow server (1 worker) over the same registry: http://127.0.0.1:${MLFLOW_PORT:-5000};
- the BentoML service of the champion, when there is one: http://127.0.0.1:${SERVICE_PORT:-3000}.

Each process starts in its own session; its process-group id, command and log live under FAIRWAY_HOME/run.
`down` stops every process tree it started: the process group and every descendant (BentoML's workers start their
own sessions), SIGTERM then SIGKILL after a grace period (Airflow standalone leaves children behind on SIGTERM
alone), and checks that none of their processes is left.

    python include/local_stack.py up|down|status|restart-service
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSET_SCHEDULED = ["training", "fairness_gate", "monitoring"]


def home() -> Path:
    return Path(os.environ.get("FAIRWAY_HOME", PROJECT / ".fairway")).resolve()


def run_dir() -> Path:
    folder = home() / "run"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def ports() -> dict[str, int]:
    return {"airflow": int(os.environ.get("AIRFLOW_PORT", 8080)), "mlflow": int(os.environ.get("MLFLOW_PORT", 5000)),
            "service": int(os.environ.get("SERVICE_PORT", 3000))}  # fmt: skip


def environment() -> dict[str, str]:
    fairway_home = home()
    env = {
        **os.environ,
        "FAIRWAY_HOME": str(fairway_home),
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(fairway_home / "airflow")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "2"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API__PORT": str(ports()["airflow"]),
        # task supervisors reach the API server here (its default assumes port 8080)
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ports()['airflow']}/execution/",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": os.environ.get("AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY", "30"),
        "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(fairway_home / "bentoml")),
        "BENTOML_DO_NOT_TRACK": "true",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


def _pidfile(name: str) -> Path:
    return run_dir() / f"{name}.json"


def _alive(pgid: int) -> list[int]:
    """Processes still in the process group."""
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _descendants(pid: int) -> set[int]:
    """`pid`'s children, their children, ... (BentoML's workers start their own sessions, so a process group
    does not hold them all)."""
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout.split()
    children: dict[int, list[int]] = {}
    for child, parent in zip(table[::2], table[1::2], strict=True):
        children.setdefault(int(parent), []).append(int(child))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z":  # not a zombie
                left.add(pid)
    return left


def terminate_tree(pid: int, grace: float = 20) -> set[int]:
    """SIGTERM a process, its process group and all its descendants; SIGKILL what is left after `grace` s.
    Returns the processes still running (should be none)."""
    targets = {pid} | set(_alive(pid)) | _descendants(pid)
    for group_member in set(_alive(pid)):
        targets |= _descendants(group_member)
    for target in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _running(targets) and time.monotonic() < deadline:
        targets |= {d for t in _running(targets) for d in _descendants(t)}  # respawned workers
        time.sleep(0.3)
    for target in _running(targets):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)
    time.sleep(0.5)
    return _running(targets)


def wait_healthy(process: subprocess.Popen, url: str, timeout: float, log: object, every: float = 0.5) -> None:
    """Poll `url` until it answers 200. RuntimeError if the process exits first, TimeoutError after `timeout` s;
    both name the log."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not healthy after {timeout:.0f} s; see {log}")
        time.sleep(every)


def start(name: str, command: list[str], health: str, timeout: float = 180) -> None:
    record = _pidfile(name)
    if record.exists() and _alive(json.loads(record.read_text())["pgid"]):
        print(f"{name}: already running", flush=True)
        return
    log = run_dir() / f"{name}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment(),
                                   start_new_session=True, cwd=PROJECT)  # fmt: skip
    record.write_text(json.dumps({"pgid": process.pid, "command": command, "health": health, "log": str(log)}))
    try:
        wait_healthy(process, health, timeout, log, every=1)
    except RuntimeError as error:
        sys.exit(f"{name}: {error}")
    except TimeoutError as error:
        stop(name)
        sys.exit(f"{name}: {error}")
    print(f"{name}: up ({health.rsplit('/', 1)[0]}), log {log}", flush=True)


def stop(name: str, grace: float = 20) -> bool:
    """Stop the process group of `name`; True when nothing of it is left."""
    record = _pidfile(name)
    if not record.exists():
        return True
    pgid = json.loads(record.read_text())["pgid"]
    left = terminate_tree(pgid, grace)
    if left:
        print(f"{name}: processes left in group {pgid}: {left}", flush=True)
        return False
    record.unlink()
    print(f"{name}: stopped", flush=True)
    return True


def champion_bento() -> str | None:
    from fairway import registry
    from fairway.config import load_usecase

    champion = registry.version_by_alias(load_usecase(), registry.CHAMPION)
    return None if champion is None else champion.tags.get("fairway.bento")


def start_service() -> None:
    if champion_bento() is None:
        print("service: not started, no packaged champion yet (run training and approve it in fairness_gate)")
        return
    port = ports()["service"]
    start("service", [str(BIN / "fairway"), "serve", "--host", "127.0.0.1", "--port", str(port)],
          f"http://127.0.0.1:{port}/readyz")  # fmt: skip


def paused_states(env: dict[str, str]) -> dict[str, bool]:
    listed = subprocess.run([str(BIN / "airflow"), "dags", "list", "-o", "json"], env=env, capture_output=True,
                            text=True)  # fmt: skip
    for line in listed.stdout.splitlines():  # warnings may precede the JSON on stdout
        if line.startswith("[{"):
            return {d["dag_id"]: str(d["is_paused"]) == "True" for d in json.loads(line)}
    return {}


def unpause(dag_ids: list[str], env: dict[str, str], timeout: float = 180) -> None:
    """Unpause DAGs once the dag-processor has written them (`airflow dags unpause` of a DAG not yet in the DB
    succeeds and does nothing: check)."""
    deadline = time.monotonic() + timeout
    while True:
        states = paused_states(env)
        waiting = [d for d in dag_ids if states.get(d, True)]
        if not waiting:
            print(f"unpaused (asset-scheduled): {', '.join(dag_ids)}", flush=True)
            return
        if time.monotonic() > deadline:
            sys.exit(f"could not unpause {waiting} within {timeout:.0f} s (not parsed yet?)")
        for dag_id in waiting:
            if dag_id in states:
                subprocess.run([str(BIN / "airflow"), "dags", "unpause", dag_id], env=env, capture_output=True)
        time.sleep(2)


def up() -> None:
    from fairway import registry

    env = environment()
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ["FAIRWAY_HOME"] = env["FAIRWAY_HOME"]
    backend = registry.tracking_uri()
    p = ports()
    start("mlflow", [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(p["mlflow"]), "--workers",
                     "1", "--backend-store-uri", backend], f"http://127.0.0.1:{p['mlflow']}/health")  # fmt: skip
    start("airflow", [str(BIN / "airflow"), "standalone"], f"http://127.0.0.1:{p['airflow']}/api/v2/monitor/health")
    unpause(ASSET_SCHEDULED, env)
    start_service()
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    print(f"Airflow UI http://127.0.0.1:{p['airflow']} (user admin, password in {passwords}); Fairway view at "
          f"/plugin/fairway; MLflow UI http://127.0.0.1:{p['mlflow']}. `make down` stops everything.")  # fmt: skip


def down() -> int:
    results = [stop(name) for name in ("service", "airflow", "mlflow")]
    return 0 if all(results) else 1


def status() -> None:
    for name in ("mlflow", "airflow", "service"):
        record = _pidfile(name)
        if not record.exists():
            print(f"{name}: stopped")
            continue
        info = json.loads(record.read_text())
        print(f"{name}: {'running' if _alive(info['pgid']) else 'dead'} (group {info['pgid']}, log {info['log']})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "restart-service"])
    args = parser.parse_args()
    if args.action == "up":
        up()
    elif args.action == "down":
        return down()
    elif args.action == "restart-service":
        stop("service")
        start_service()
    else:
        status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
