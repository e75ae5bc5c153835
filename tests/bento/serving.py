"""Run `bentoml serve` for a bento in a subprocess on a free loopback port, and stop it with all its workers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "include"))
from local_stack import terminate_tree, wait_healthy  # noqa: E402


def stop_process(process: subprocess.Popen) -> None:
    """Stop a process started in its own session: its group and every descendant, SIGKILL after a grace period
    (local_stack.terminate_tree), then reap it."""
    terminate_tree(process.pid)
    process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served(bento: str, timeout: float = 90, bentoml: str | None = None, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> Iterator[str]:  # fmt: skip
    """Yield the base URL of `bentoml serve <bento>` once /readyz answers 200; kill the process group after.
    `bentoml`: another environment's command; `env`: the service's whole environment (default: this one's)."""
    port = free_port()
    bentoml = bentoml or str(Path(sys.executable).parent / "bentoml")
    logs = Path(os.environ.get("BENTOML_HOME", ".")) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / f"serve-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [bentoml, "serve", bento, "--host", "127.0.0.1", "--port", str(port)], cwd=cwd,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**(os.environ if env is None else env), "BENTOML_DO_NOT_TRACK": "true"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, f"{url}/readyz", timeout, log.name)
        yield url
    finally:
        left = terminate_tree(process.pid)
        process.wait()
        log.close()
        assert not left, f"bentoml serve left processes behind: {left}"


@contextlib.contextmanager
def served_champion(
    tmp_path_factory: object, name: str, env: dict[str, str] | None = None
) -> Iterator[dict[str, object]]:
    """1,500 customers over 5 months in an isolated home, the last two materialized online, a champion trained on
    the three months before the last, packaged and served (with `env` set for the service; `{home}` in a value is the home): its URL, use case,
    home, version, months and bento."""
    from fairway.config import load_usecase
    from fairway.packaging import package
    from tests.champion import feature_store, isolated_home, make_champion

    with isolated_home(tmp_path_factory, name) as home:
        uc = load_usecase("credit_risk")
        months = feature_store(uc, customers=1500, months=5, seed=11, online_months=2)
        version = make_champion(uc, months[-2], 3)
        bento = package(uc, version)["bento"]
        with pytest.MonkeyPatch.context() as mp:
            for key, value in (env or {}).items():
                mp.setenv(key, value.format(home=home))
            with served(bento) as url:
                yield {"url": url, "uc": uc, "home": home, "version": version, "months": months, "bento": bento}
