"""A real, throw-away Redis server for tests (Debian's redis-server, which `make stack-deps` installs): a free
port on 127.0.0.1, no persistence; stopped afterwards. Skipped, with the reason, only when it cannot start."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.bento.serving import free_port


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Yield `host:port` of a fresh Redis server."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed: `make stack-deps` installs Debian's redis-server")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"redis-server did not start on port {port}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
