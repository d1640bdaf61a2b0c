"""Real PostgreSQL 15 and Redis servers for the test session, started from Debian's packages on free ports.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user (created by the Debian
package) and runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ServiceUnavailable(RuntimeError):
    """A server could not be started; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ServiceUnavailable(f"{what} did not listen on port {port} within {timeout:.0f}s")


class PostgresServer:
    """A throw-away PostgreSQL 15 cluster in a temporary folder."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="casework-pg-"))
        self.data = self.base / "data"
        self.proc: subprocess.Popen | None = None
        self.run_as: list[str] = []

    def _as_owner(self, *cmd: str) -> list[str]:
        return [*self.run_as, *cmd]

    def start(self) -> PostgresServer:
        if not (PG_BIN / "initdb").exists():
            raise ServiceUnavailable(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing)")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceUnavailable("running as root and there is no 'postgres' user to run PostgreSQL") from None
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            os.chmod(self.base, 0o700)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        init = subprocess.run(
            self._as_owner(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode:
            raise ServiceUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        return self._run()

    def _run(self) -> PostgresServer:
        """Start the postmaster on the cluster's folder and port, and wait until it accepts connections."""
        self.proc = subprocess.Popen(
            self._as_owner(
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.base}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "log_min_messages=fatal",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.proc, "postgres")
        # The port answers a little before connections are accepted.
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True, check=False
            )
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ServiceUnavailable("postgres did not become ready")
            time.sleep(0.1)
        return self

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        subprocess.run(
            [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def pause(self) -> None:
        """Shut the server down as an operator's restart does (a "fast" shutdown: sessions are cut, open
        transactions roll back, committed ones are written out), keeping the cluster's data for :meth:`resume`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        # pg_ctl signals the postmaster itself: as root, self.proc is runuser, which does not pass a SIGINT on.
        stopped = subprocess.run(
            self._as_owner(str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60"),
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if stopped.returncode:
            raise ServiceUnavailable(f"pg_ctl stop failed: {stopped.stderr.strip()[-500:]}")

    def resume(self) -> PostgresServer:
        """Start the cluster :meth:`pause` stopped, on the same port, with its data."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        return self._run()


class RedisServer:
    """A throw-away Redis server without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.proc, "redis-server")
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
