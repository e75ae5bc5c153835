"""A real, throw-away PostgreSQL server for tests (include/local_services.py, as `make up EXECUTOR=celery` runs
it): initdb in a temporary folder, a free port on 127.0.0.1, password authentication; stopped and deleted
afterwards. As root the server runs as the `postgres` user. Tests that need it are skipped, with the reason, only
when PostgreSQL cannot be started here."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
from local_services import Postgres, ServiceUnavailable, free_port  # noqa: E402


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the SQLAlchemy URL of database `postgres` on a fresh server."""
    folder = Path(tempfile.mkdtemp(prefix="fairway-pg-"))
    server = Postgres(folder / "pg", free_port())
    folder.chmod(0o755)  # the postgres user (as root) reaches folder/pg
    try:
        try:
            server.init()
            server.start()
        except ServiceUnavailable as error:
            pytest.skip(f"PostgreSQL cannot be run here: {error}")
        yield server.url()
    finally:
        with contextlib.suppress(ServiceUnavailable):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
