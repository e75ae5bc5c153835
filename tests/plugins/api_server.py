"""A real `airflow api-server` with plugins/ loaded and the simple auth manager with real accounts (no all-admins
shortcut), on a free port, for the tests of the "Fairway" view."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.bento.serving import free_port, stop_process
from tests.conftest import PROJECT


@contextlib.contextmanager
def api_server(home: Path, users: dict[str, str]) -> Iterator[dict[str, Any]]:
    """`users` maps a name to its role; yields the URL, each user's password and access token, and the JWT secret.
    The server's output is in `home/api-server.log`."""
    passwords = {name: secrets.token_urlsafe(16) for name in users}
    jwt_secret = secrets.token_urlsafe(64)
    (home / "passwords.json").write_text(json.dumps(passwords))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"}
    env |= {"AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in users.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret}  # fmt: skip
    log = open(home / "api-server.log", "w")  # noqa: SIM115
    process = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "api-server", "--port", str(port),
                                "--host", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            assert process.poll() is None, (home / "api-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "api-server not healthy after 120 s"
            time.sleep(0.5)
        tokens = {}
        for name, password in passwords.items():
            login = httpx.post(f"{url}/auth/token", json={"username": name, "password": password}, timeout=30)
            assert login.status_code == 201, login.text
            tokens[name] = login.json()["access_token"]
        yield {"url": url, "passwords": passwords, "tokens": tokens, "jwt_secret": jwt_secret}
    finally:
        stop_process(process)
        log.close()
