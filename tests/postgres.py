"""A real, throw-away PostgreSQL server for tests: initdb in a temporary folder, a free port, trust auth on
127.0.0.1 only; stopped and deleted afterwards. As root, the server runs as the `postgres` user (initdb refuses
root). Tests that need it are skipped, with the reason, only when PostgreSQL cannot be started here."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bento.serving import free_port


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the SQLAlchemy URL of database `postgres` on a fresh server."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    folder = Path(tempfile.mkdtemp(prefix="fairway-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        init = subprocess.run([*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                              capture_output=True, text=True)  # fmt: skip
        if init.returncode != 0:
            pytest.skip(f"PostgreSQL cannot be initialised here: {init.stderr.strip()[-300:]}")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        start = subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-o", options,
                                "-w", "start"], capture_output=True, text=True)  # fmt: skip
        if start.returncode != 0:
            pytest.skip(f"PostgreSQL cannot be started here: {start.stderr.strip()[-300:]}")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
