"""PostgreSQL and Redis without Docker, for `make up EXECUTOR=celery` and the tests.

- `Postgres(folder, port)`: a cluster under `folder` (`data/`, `server.log`, `password`), created with `initdb`
  once, started and stopped with `pg_ctl`. It listens on 127.0.0.1 only (TCP, no Unix socket, so the length of
  `folder` does not matter), password authentication (scram-sha-256) for every connection; the superuser is
  `postgres`, its password is generated at `initdb` and kept in `folder/password` (mode 0600). initdb refuses
  to run as root: as root the cluster is created and run by the `postgres` user (`runuser`), which needs to
  reach `folder` (every parent directory must be searchable by it).
- `Redis(port, folder)`: the command line of a redis-server on 127.0.0.1, and a PING check; with `folder` it
  keeps an RDB snapshot there (saved on shutdown), without it nothing is persisted.

`ServiceUnavailable` says that the service cannot run on this machine (binaries missing, initdb refused): the
tests skip on it, `make up` stops with its message.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class ServiceUnavailable(RuntimeError):
    """The service cannot be run on this machine (a binary is missing, initdb or the server refused)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def postgres_binary(name: str) -> str | None:
    """A PostgreSQL program on PATH, else from Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class Postgres:
    folder: Path
    port: int
    user: str = "postgres"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def _password_file(self) -> Path:
        return self.folder / "password"

    @property
    def password(self) -> str:
        return self._password_file.read_text().strip()

    def _prefix(self) -> list[str]:
        """Run as the `postgres` user when root (initdb and postgres refuse root)."""
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _binary(self, name: str) -> str:
        found = postgres_binary(name)
        if found is None:
            raise ServiceUnavailable(f"PostgreSQL's {name} not found (on PATH or /usr/lib/postgresql/*/bin)")
        return found

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").is_file() and self._password_file.is_file()

    def init(self) -> None:
        """initdb once (a no-op when the cluster exists): superuser `postgres` with a generated password."""
        if self.initialised():
            return
        initdb = self._binary("initdb")
        if self.data.exists():  # a half-made cluster from an interrupted initdb
            shutil.rmtree(self.data)
        self.folder.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        pwfile = self.folder / "initdb.pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
            self.folder.chmod(0o700)
            reach = subprocess.run([*self._prefix(), "test", "-w", str(self.folder)], capture_output=True)
            if reach.returncode != 0:
                pwfile.unlink()
                raise ServiceUnavailable(
                    f"the postgres user cannot reach {self.folder}: every parent directory must be searchable by it "
                    f"(chmod o+x), or put FAIRWAY_HOME elsewhere"
                )
        try:
            init = subprocess.run(
                [*self._prefix(), initdb, "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
                 f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions"],
                capture_output=True, text=True,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if init.returncode != 0:
            raise ServiceUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        self._password_file.write_text(password + "\n")  # written by this user (root: root-owned, 0600)
        self._password_file.chmod(0o600)

    def pid(self) -> int | None:
        """The postmaster's pid when it is running."""
        with contextlib.suppress(FileNotFoundError, PermissionError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, 0)
            return pid
        return None

    def start(self, timeout: float = 60) -> None:
        """pg_ctl start, waiting until the server accepts connections; ServiceUnavailable with the log's tail
        when it does not start."""
        if self.pid() is not None:
            return
        if port_in_use(self.port):
            raise ServiceUnavailable(f"port {self.port} on 127.0.0.1 is taken (PostgreSQL's port): choose another")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                   f"-c max_connections=200")  # fmt: skip
        started = subprocess.run(
            [*self._prefix(), self._binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
             "-w", "-t", str(int(timeout)), "start"], capture_output=True, text=True,
        )  # fmt: skip
        if started.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError):
                tail = self.log.read_text()[-800:]
            raise ServiceUnavailable(f"PostgreSQL did not start: {started.stderr.strip()[-300:]} {tail}")
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(self.dsn("postgres"), connect_timeout=3).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, timeout: float = 60) -> bool:
        """pg_ctl stop (fast: disconnects clients, rolls back their transactions, shuts down cleanly); immediate
        when that does not finish. True when the server is down."""
        if self.pid() is None:
            return True
        pg_ctl = self._binary("pg_ctl")
        for mode in ("fast", "immediate"):
            subprocess.run([*self._prefix(), pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)),
                            "stop"], capture_output=True)  # fmt: skip
            if self.pid() is None:
                return True
        return False

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} password={self.password} dbname={database}"

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        """The SQLAlchemy URL of `database` (the password is URL-safe)."""
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_databases(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """Create the databases that do not exist yet; returns those created."""
        import psycopg2

        created = []
        connection = psycopg2.connect(self.dsn("postgres"))
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT datname FROM pg_database")
                existing = {row[0] for row in cursor.fetchall()}
                for name in names:
                    if name not in existing:
                        cursor.execute(f'CREATE DATABASE "{name}"')
                        created.append(name)
        finally:
            connection.close()
        return created


@dataclass
class Redis:
    port: int
    folder: Path | None = None

    @staticmethod
    def binary() -> str:
        found = shutil.which("redis-server")
        if found is None:
            raise ServiceUnavailable("redis-server not installed: `make stack-deps` installs Debian's redis-server")
        return found

    def command(self) -> list[str]:
        """redis-server on 127.0.0.1 in the foreground; an RDB snapshot in `folder` (saved on shutdown and every
        60 s after a write), or no persistence."""
        command = [self.binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no",
                   "--appendonly", "no"]  # fmt: skip
        if self.folder is None:
            return [*command, "--save", ""]
        self.folder.mkdir(parents=True, exist_ok=True)
        return [*command, "--save", "60 1", "--dir", str(self.folder), "--dbfilename", "dump.rdb"]

    def ping(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
        return False

    def address(self, db: int | None = None) -> str:
        """`host:port` (Feast's connection string), or with `db` the redis:// URL of that database (Celery)."""
        return f"127.0.0.1:{self.port}" if db is None else f"redis://127.0.0.1:{self.port}/{db}"

    @contextlib.contextmanager
    def running(self, timeout: float = 20) -> Iterator[Redis]:
        """Run the server for the duration of the block (tests)."""
        if port_in_use(self.port):
            raise ServiceUnavailable(f"port {self.port} on 127.0.0.1 is taken")
        process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not self.ping():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise ServiceUnavailable(f"redis-server did not start on port {self.port}")
                time.sleep(0.1)
            yield self
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
