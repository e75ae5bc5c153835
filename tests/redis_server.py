"""A real, throw-away Redis server for tests (Debian's redis-server, which `make stack-deps` installs; see
include/local_services.py): a free port on 127.0.0.1, no persistence; stopped afterwards. Skipped, with the
reason, only when it cannot start."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
from local_services import Redis, ServiceUnavailable, free_port  # noqa: E402


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Yield `host:port` of a fresh Redis server."""
    server = Redis(free_port())
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(server.running())
        except ServiceUnavailable as error:
            pytest.skip(f"Redis cannot be run here: {error}")
        yield server.address()
