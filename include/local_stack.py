"""`make up` / `make down`: Fairway's interactive stack on this machine, without Docker.

`make up` (EXECUTOR=local, the default):
- Airflow standalone (api-server, scheduler, dag-processor, triggerer; LocalExecutor on SQLite) with the
  Fairway plugin;
- the MLflow server (1 worker) over the same registry (SQLite under FAIRWAY_HOME/mlflow);
- Feast embedded (SQLite registry and online store under FAIRWAY_HOME/feast).

`make up EXECUTOR=celery`, the shape of a scaled-out deployment on one machine:
- PostgreSQL (a cluster under FAIRWAY_HOME/run/postgres, 127.0.0.1 only, password auth) with the databases
  `airflow` (Airflow's metadata and Celery's results), `mlflow`, `feast` (Feast's SQL registry) and `fairway`
  (decision log, promotion ledger);
- redis-server (FAIRWAY_HOME/run/redis): Celery's broker (db 1) and Feast's online store (db 0);
- the MLflow server on PostgreSQL, and every task uses the same PostgreSQL URL as MLFLOW_TRACKING_URI;
- Airflow's api-server, scheduler, dag-processor and triggerer as separate processes, and
  CELERY_WORKERS (2) `airflow celery worker` processes of concurrency CELERY_CONCURRENCY (1) each.

Both: the api-server on http://127.0.0.1:${AIRFLOW_PORT:-8080} (user `admin`, password in
$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated), MLflow on http://127.0.0.1:${MLFLOW_PORT:-5000},
the BentoML service of the champion (when there is one) on http://127.0.0.1:${SERVICE_PORT:-3000}, Evidently's
UI over the monitoring's workspace (FAIRWAY_HOME/reports/evidently) on http://127.0.0.1:${EVIDENTLY_PORT:-8000}; the
asset-scheduled DAGs (training, fairness_gate, monitoring) unpaused. FAIRWAY_HOME is shared by every process
(in a real deployment: shared storage). `FAIRWAY_HOME/run/stack.env` (mode 0600) holds the variables to
`source` to use the running stack with `airflow`, `fairway`, `feast` or `mlflow` on the command line.

Each process starts in its own session; its process-group id, command and log live under FAIRWAY_HOME/run.
`down` stops every process tree it started: the process group and every descendant (BentoML's workers start their
own sessions), SIGTERM then SIGKILL after a grace period (Airflow standalone leaves children behind on SIGTERM
alone), PostgreSQL with `pg_ctl stop`, and checks that none of their processes is left.

    python include/local_stack.py up [--executor local|celery] | down | status | restart-service
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_services import Postgres, Redis, ServiceUnavailable, port_in_use  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSET_SCHEDULED = ["training", "fairness_gate", "monitoring"]
MONTHLY = ["feature_pipeline", "batch_inference", "retention"]
DATABASES = ("airflow", "mlflow", "feast", "fairway")
EXECUTORS = ("local", "celery")
PROGRESS_EVERY = 15.0  # seconds of waiting for a component between two progress lines
# every component `up` may start, in start order; `down` stops them in reverse
AIRFLOW_CELERY = ["api-server", "scheduler", "dag-processor", "triggerer"]
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


def home() -> Path:
    return Path(os.environ.get("FAIRWAY_HOME", PROJECT / ".fairway")).resolve()


def run_dir() -> Path:
    folder = home() / "run"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stack_env_file() -> Path:
    return home() / "run" / "stack.env"


def ports() -> dict[str, int]:
    return {"airflow": int(os.environ.get("AIRFLOW_PORT", 8080)), "mlflow": int(os.environ.get("MLFLOW_PORT", 5000)),
            "service": int(os.environ.get("SERVICE_PORT", 3000)), "evidently": int(os.environ.get("EVIDENTLY_PORT", 8000)),
            "postgres": int(os.environ.get("POSTGRES_PORT", 5432)), "redis": int(os.environ.get("REDIS_PORT", 6379))}  # fmt: skip


def worker_count() -> int:
    return max(1, int(os.environ.get("CELERY_WORKERS", 2)))


def postgres() -> Postgres:
    return Postgres(home() / "run" / "postgres", ports()["postgres"])


def redis_server() -> Redis:
    return Redis(ports()["redis"], home() / "run" / "redis")


def _secrets() -> dict[str, str]:
    """Airflow's secrets for the separate components (the same JWT secret for the api-server, scheduler and
    workers; the Fernet key of the metadata DB's encrypted fields), generated once under run/ (0600)."""
    path = run_dir() / "airflow-secrets.json"
    if path.is_file():
        return json.loads(path.read_text())
    from cryptography.fernet import Fernet

    values = {"AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
              "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
              "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32)}  # fmt: skip
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def stack_settings(executor: str) -> dict[str, str]:
    """The variables of a stack of `executor`: what every process of it gets, and what `stack.env` exports."""
    fairway_home, p = home(), ports()
    settings = {
        "FAIRWAY_STACK_EXECUTOR": executor,
        "FAIRWAY_HOME": str(fairway_home),
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(fairway_home / "airflow")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "2"),  # 2 cores
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(p["airflow"]),
        "AIRFLOW__API__WORKERS": "1",
        # task supervisors reach the API server here (its default assumes port 8080)
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{p['airflow']}/execution/",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": os.environ.get("AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY", "30"),
        "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(fairway_home / "bentoml")),
        "BENTOML_DO_NOT_TRACK": "true",
        "AIRFLOW_PORT": str(p["airflow"]),
        "MLFLOW_PORT": str(p["mlflow"]),
        "SERVICE_PORT": str(p["service"]),
        "EVIDENTLY_PORT": str(p["evidently"]),
        "AIRFLOW_URL": f"http://127.0.0.1:{p['airflow']}",
        "MLFLOW_URL": f"http://127.0.0.1:{p['mlflow']}",
        "SERVICE_URL": f"http://127.0.0.1:{p['service']}",
        "EVIDENTLY_URL": f"http://127.0.0.1:{p['evidently']}",
    }
    if os.environ.get("FAIRWAY_USECASE"):
        settings["FAIRWAY_USECASE"] = os.environ["FAIRWAY_USECASE"]
    if executor == "local":
        # explicit, so that no process falls back to ./mlflow.db in its working directory
        settings["MLFLOW_TRACKING_URI"] = os.environ.get("MLFLOW_TRACKING_URI") or (
            f"sqlite:///{fairway_home / 'mlflow' / 'mlflow.db'}"
        )
        return settings
    pg, redis = postgres(), redis_server()
    url = {name: pg.url(name) for name in DATABASES}
    settings.update({
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url["airflow"],
        "FAIRWAY_AIRFLOW_DB_URL": url["airflow"],  # the erasure's (tasks see Airflow's own variable blocked)
        "AIRFLOW__CELERY__BROKER_URL": redis.address(db=1),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + url["airflow"],  # psycopg2 (SQLAlchemy 2.1 defaults to psycopg 3)
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": os.environ.get("CELERY_CONCURRENCY", "1"),
        **_secrets(),
        "MLFLOW_TRACKING_URI": url["mlflow"],
        "FAIRWAY_FEAST_CONFIG": "production",
        "FAIRWAY_FEAST_REGISTRY_URL": url["feast"],
        "FAIRWAY_REDIS_CONNECTION": redis.address(),
        "FAIRWAY_DECISION_LOG_URL": url["fairway"],
        "FAIRWAY_LEDGER_URL": url["fairway"],
        "POSTGRES_PORT": str(p["postgres"]),
        "REDIS_PORT": str(p["redis"]),
    })  # fmt: skip
    return settings


def write_stack_env(settings: dict[str, str]) -> Path:
    path = stack_env_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# The running Fairway stack ({settings['FAIRWAY_STACK_EXECUTOR']} executor), written by `make up`.",
             f"# source {path}   # then airflow, fairway, feast -c {PROJECT / 'feature_repo'}, mlflow use it",
             *(f"export {key}={shlex.quote(value)}" for key, value in sorted(settings.items()))]  # fmt: skip
    path.touch(mode=0o600)
    path.chmod(0o600)  # holds the database password
    path.write_text("\n".join(lines) + "\n")
    return path


def read_stack_env(path: Path | None = None) -> dict[str, str]:
    """The variables of `stack.env` (empty when there is none)."""
    from fairway.deployment import read_stack_env as read

    return read(path or stack_env_file())


def environment(settings: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the stack's processes: this process's, with the stack's settings over it."""
    settings = settings if settings is not None else (read_stack_env() or stack_settings("local"))
    env = {**os.environ, **settings, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
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


def http_ok(url: str) -> bool:
    with contextlib.suppress(OSError):
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    return False


def wait_ready(process: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float, log: object,
               every: float = 0.5) -> None:  # fmt: skip
    """Poll `ready()` until it is true, with a line every PROGRESS_EVERY s of waiting. RuntimeError if the process
    exits first, TimeoutError after `timeout` s; both name the log."""
    started = time.monotonic()
    deadline, note = started + timeout, started + PROGRESS_EVERY
    while True:
        if ready():
            return
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}; see {log}")
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s; see {log}")
        if now >= note:
            print(f"  ... waiting for {what}: {now - started:.0f} s of at most {timeout:.0f} (log {log})", flush=True)
            note += PROGRESS_EVERY
        time.sleep(every)


def wait_healthy(process: subprocess.Popen, url: str, timeout: float, log: object, every: float = 0.5) -> None:
    """Poll `url` until it answers 200 (see wait_ready)."""
    wait_ready(process, lambda: http_ok(url), url, timeout, log, every)


def spawn(name: str, command: list[str], where: str, env: dict[str, str], port: int | None = None) -> Any:
    """Start `command` in its own session, its output in run/<name>.log; None when it is already running."""
    record = _pidfile(name)
    if record.exists() and _alive(json.loads(record.read_text())["pgid"]):
        print(f"  {name:<14} already running", flush=True)
        return None
    if port is not None and port_in_use(port):
        sys.exit(f"{name}: port {port} on 127.0.0.1 is in use by another program: set another port (see `make help`)")
    log = run_dir() / f"{name}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                   cwd=run_dir())  # fmt: skip
    record.write_text(json.dumps({"pgid": process.pid, "command": command, "where": where, "log": str(log)}))
    process.started = time.monotonic()  # type: ignore[attr-defined]
    return process


def await_up(name: str, process: Any, ready: Callable[[], bool], where: str, timeout: float = 180) -> None:
    """Wait until `ready()`; print one line when up, or stop the component and exit naming its log."""
    if process is None:
        return
    log = run_dir() / f"{name}.log"
    before = ready()  # started alongside others, it may have been up for a while
    try:
        wait_ready(process, ready, f"{name} ({where})", timeout, log, every=0.5)
    except (RuntimeError, TimeoutError) as error:
        stop(name)
        sys.exit(f"{name}: {error}")
    took = f"{'up within' if before else 'up in'} {time.monotonic() - process.started:4.1f} s"
    print(f"  {name:<14} {took}  {where}  (log {log})", flush=True)


def start(name: str, command: list[str], ready: Callable[[], bool], where: str, env: dict[str, str],
          timeout: float = 180, port: int | None = None) -> None:  # fmt: skip
    """Start `command` (see spawn) and wait until `ready()` (see await_up)."""
    await_up(name, spawn(name, command, where, env, port), ready, where, timeout)


def start_together(specs: list[tuple[str, list[str], Callable[[], bool], str]], env: dict[str, str],
                   timeout: float = 180) -> None:  # fmt: skip
    """Start several components at once (name, command, ready, where), then wait for each."""
    spawned = [(name, spawn(name, command, where, env), ready, where) for name, command, ready, where in specs]
    for name, process, ready, where in spawned:
        await_up(name, process, ready, where, timeout)


def stop(name: str, grace: float = 20) -> bool:
    """Stop the process group of `name`; True when nothing of it is left."""
    record = _pidfile(name)
    if not record.exists():
        return True
    info, started = json.loads(record.read_text()), time.monotonic()
    if info.get("kind") == "postgres":
        server = Postgres(Path(info["folder"]), int(info["port"]))
        down = server.stop()
        left = set() if down else {server.pid()}
    else:
        left = terminate_tree(info["pgid"], grace)
    if left:
        print(f"  {name:<14} processes left: {left}", flush=True)
        return False
    record.unlink()
    print(f"  {name:<14} stopped in {time.monotonic() - started:4.1f} s", flush=True)
    return True


def champion_bento(env: dict[str, str]) -> str | None:
    """The bento of the current champion, read with the stack's settings."""
    os.environ.update({k: v for k, v in env.items() if k.startswith(("FAIRWAY_", "MLFLOW_", "BENTOML_"))})
    from fairway import registry
    from fairway.config import load_usecase

    champion = registry.version_by_alias(load_usecase(), registry.CHAMPION)
    return None if champion is None else champion.tags.get("fairway.bento")


def start_service(env: dict[str, str]) -> None:
    if champion_bento(env) is None:
        print("  service        not started: no packaged champion yet (run training and approve it in fairness_gate)")
        return
    port = int(env["SERVICE_PORT"])
    start("service", [str(BIN / "fairway"), "serve", "--host", "127.0.0.1", "--port", str(port)],
          lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), f"http://127.0.0.1:{port}", env, port=port)  # fmt: skip


# --- Airflow's REST API, for what `up` does once the API server answers ------------------------------------


def airflow_token(env: dict[str, str]) -> str:
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password = json.loads(passwords.read_text())["admin"]
    answer = rest(env, "POST", "/auth/token", {"username": "admin", "password": password})
    return str(answer["access_token"])


def rest(env: dict[str, str], method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """One call of Airflow's REST API; the decoded JSON answer (HTTPError on a 4xx/5xx)."""
    request = urllib.request.Request(f"{env['AIRFLOW_URL']}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def health(env: dict[str, str]) -> dict[str, Any]:
    try:
        return rest(env, "GET", "/api/v2/monitor/health")
    except (OSError, ValueError):
        return {}


def unpause(dag_ids: list[str], env: dict[str, str], timeout: float = 240) -> None:
    """Unpause DAGs once the dag-processor has written them (PATCH of a DAG not yet parsed is a 404: wait)."""
    token, deadline, waiting = airflow_token(env), time.monotonic() + timeout, list(dag_ids)
    while waiting:
        for dag_id in list(waiting):
            with contextlib.suppress(urllib.error.HTTPError):
                if rest(env, "PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, token)["is_paused"] is False:
                    waiting.remove(dag_id)
        if waiting and time.monotonic() > deadline:
            sys.exit(f"could not unpause {waiting} within {timeout:.0f} s (not parsed yet? see the dag-processor log)")
        if waiting:
            time.sleep(1)
    print(f"  unpaused (asset-scheduled): {', '.join(dag_ids)}", flush=True)


# --- the two modes -----------------------------------------------------------------------------------------


def running_executor() -> str | None:
    """The executor of the stack whose processes are running, if any."""
    if not any(_component_alive(name) for name in components()):
        return None
    return read_stack_env().get("FAIRWAY_STACK_EXECUTOR", "local")


def components() -> list[str]:
    """Every component name `up` may have started (and any other record under run/), in start order."""
    names = ["postgres", "redis", "mlflow", "evidently", "airflow", *AIRFLOW_CELERY]
    names += sorted((p.stem for p in run_dir().glob("worker-*.json")), key=lambda n: int(n.split("-")[1]))
    names += ["service"]
    return names + sorted(
        p.stem for p in run_dir().glob("*.json") if p.stem not in names and p.stem != "airflow-secrets"
    )


def _component_alive(name: str) -> bool:
    record = _pidfile(name)
    if not record.exists():
        return False
    info = json.loads(record.read_text())
    if info.get("kind") == "postgres":
        return Postgres(Path(info["folder"]), int(info["port"])).pid() is not None
    return bool(_alive(info["pgid"]))


def start_postgres() -> None:
    server, started = postgres(), time.monotonic()
    record = _pidfile("postgres")
    try:
        fresh = not server.initialised()
        server.init()
        if server.pid() is None:
            server.start()
        record.write_text(json.dumps({"kind": "postgres", "folder": str(server.folder), "port": server.port,
                                      "pgid": server.pid(), "where": f"127.0.0.1:{server.port}",
                                      "log": str(server.log)}))  # fmt: skip
        created = server.create_databases(DATABASES)
    except ServiceUnavailable as error:
        sys.exit(f"postgres: {error}")
    print(f"  {'postgres':<14} up in {time.monotonic() - started:4.1f} s  127.0.0.1:{server.port}"
          f"{' (new cluster)' if fresh else ''}, databases {', '.join(DATABASES)}"
          f"{' (created ' + ', '.join(created) + ')' if created else ''}  (log {server.log})", flush=True)  # fmt: skip


def celery_ping(env: dict[str, str], hostname: str) -> bool:
    from celery import Celery

    app = Celery(broker=env["AIRFLOW__CELERY__BROKER_URL"])
    try:
        return bool(app.control.ping(destination=[hostname], timeout=1.0))
    except Exception:  # noqa: BLE001 - not reachable yet
        return False
    finally:
        app.close()


def component_healthy(env: dict[str, str], key: str) -> bool:
    return (health(env).get(key) or {}).get("status") == "healthy"


def up_airflow_celery(env: dict[str, str]) -> None:
    airflow, p = str(BIN / "airflow"), ports()
    if not any(_component_alive(name) for name in AIRFLOW_CELERY):
        started = time.monotonic()
        log = run_dir() / "airflow-db-migrate.log"
        with open(log, "ab") as out:
            migrated = subprocess.run([airflow, "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                      cwd=run_dir())  # fmt: skip
        if migrated.returncode != 0:
            sys.exit(f"airflow db migrate failed; see {log}")
        print(f"  {'airflow db':<14} migrated in {time.monotonic() - started:4.1f} s  (PostgreSQL database airflow)")
    url = env["AIRFLOW_URL"]
    start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(p["airflow"])],
          lambda: http_ok(f"{url}/api/v2/monitor/health"), url, env, port=p["airflow"])  # fmt: skip
    specs = [(name, [airflow, name], lambda key=HEALTH_KEYS[name]: component_healthy(env, key),
              "heartbeat in /api/v2/monitor/health") for name in ("scheduler", "dag-processor", "triggerer")]  # fmt: skip
    host, concurrency = socket.gethostname(), env["AIRFLOW__CELERY__WORKER_CONCURRENCY"]
    for index in range(1, worker_count() + 1):
        hostname = f"worker-{index}@{host}"
        specs.append((f"worker-{index}", [airflow, "celery", "worker", "--celery-hostname", hostname,
                                          "--concurrency", concurrency, "--skip-serve-logs"],
                      lambda h=hostname: celery_ping(env, h), f"celery {hostname}, concurrency {concurrency}"))  # fmt: skip
    start_together(specs, env)


def up(executor: str) -> None:
    already = running_executor()
    if already and already != executor:
        sys.exit(f"a {already} stack is running under {home()}: `make down` first")
    print(f"Fairway stack, {executor} executor, FAIRWAY_HOME={home()}", flush=True)
    if executor == "celery":
        start_postgres()  # first: the stack's settings hold its URLs (and password)
    settings = stack_settings(executor)
    env = environment(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    p = ports()
    stack_env = write_stack_env(settings)
    if executor == "celery":
        redis = redis_server()
        try:
            command = redis.command()
        except ServiceUnavailable as error:
            sys.exit(f"redis: {error}")
        start("redis", command, redis.ping,
              f"127.0.0.1:{p['redis']} (Celery broker db 1, Feast online store db 0)", env, port=p["redis"])  # fmt: skip
    # MLflow starts while Airflow does (each takes 15-25 s here, mostly imports)
    # the backend store from the environment, not the command line: `ps` would show the database password
    mlflow_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                  "MLFLOW_BACKEND_STORE_URI": settings["MLFLOW_TRACKING_URI"]}  # fmt: skip
    mlflow_where = env["MLFLOW_URL"]
    mlflow = spawn("mlflow", [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(p["mlflow"]),
                              "--workers", "1", "--artifacts-destination", str(home() / "mlflow" / "artifacts")],
                   mlflow_where, mlflow_env, port=p["mlflow"])  # fmt: skip
    # Evidently's UI over the workspace monitoring writes into (its folder watcher picks up every new snapshot)
    workspace = home() / "reports" / "evidently"
    workspace.mkdir(parents=True, exist_ok=True)
    evidently = spawn("evidently", [str(BIN / "evidently"), "ui", "--workspace", str(workspace), "--host", "127.0.0.1",
                                    "--port", str(p["evidently"])],
                      f"{env['EVIDENTLY_URL']} (workspace {workspace})", {**env, "DO_NOT_TRACK": "1"},
                      port=p["evidently"])  # fmt: skip
    if executor == "celery":
        up_airflow_celery(env)
    else:
        start("airflow", [str(BIN / "airflow"), "standalone"],
              lambda: http_ok(f"{env['AIRFLOW_URL']}/api/v2/monitor/health"),
              f"{env['AIRFLOW_URL']} (standalone: LocalExecutor on SQLite)", env, port=p["airflow"])  # fmt: skip
    await_up("mlflow", mlflow, lambda: http_ok(f"http://127.0.0.1:{p['mlflow']}/health"), mlflow_where)
    await_up("evidently", evidently, lambda: http_ok(f"{env['EVIDENTLY_URL']}/api/version"),
             f"{env['EVIDENTLY_URL']} (workspace {workspace})")  # fmt: skip
    unpause(ASSET_SCHEDULED, env)
    print(f"  paused (monthly): {', '.join(MONTHLY)}: backfill, then `airflow dags unpause <dag>` "
          "(unpaused now, each would run the latest month before its data is there)", flush=True)
    start_service(env)
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    print(f"Airflow UI {env['AIRFLOW_URL']} (user admin, password in {passwords}); Fairway view at /plugin/fairway; "
          f"MLflow UI {env['MLFLOW_URL']}; Evidently UI {env['EVIDENTLY_URL']}.\nUse it from a shell: source {stack_env}\n`make down` stops everything.")  # fmt: skip


def down() -> int:
    """Stop the service and every Airflow and MLflow process at once, then Redis and PostgreSQL (which they use)."""
    from concurrent.futures import ThreadPoolExecutor

    names = list(reversed(components()))
    first = [name for name in names if name not in ("redis", "postgres")]
    with ThreadPoolExecutor(max_workers=max(1, len(first))) as pool:
        results = list(pool.map(stop, first))
    results += [stop(name) for name in names if name not in first]
    if all(results):
        stack_env_file().unlink(missing_ok=True)
        return 0
    return 1


def status() -> None:
    settings = read_stack_env()
    print(f"stack: {settings.get('FAIRWAY_STACK_EXECUTOR', 'none')} executor, FAIRWAY_HOME={home()}")
    for name in components():
        record = _pidfile(name)
        if not record.exists():
            continue
        info = json.loads(record.read_text())
        state = "running" if _component_alive(name) else "dead"
        print(f"  {name:<14} {state:<8} {info.get('where', '')} (log {info['log']})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "restart-service"])
    parser.add_argument("--executor", choices=EXECUTORS, default=os.environ.get("EXECUTOR", "local"))
    args = parser.parse_args()
    if args.action == "up":
        up(args.executor)
    elif args.action == "down":
        return down()
    elif args.action == "restart-service":
        env = environment()
        stop("service")
        start_service(env)
    else:
        status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
