"""casework as it runs in production, in processes: gunicorn (``casework serve``) and ``casework worker`` over a
PostgreSQL database and a Redis of the test's own, so a test may stop, restart or kill any of them without touching
the session's servers.

    stack = Stack(env).prepare()        # casework init (schema, units, data key) in a fresh instance folder
    stack.start_web(); stack.start_worker()
    requests.get(stack.url + "/healthz")
    stack.kill_worker()                 # SIGKILL to the worker and the job it is running
    stack.stop()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.services import ServiceUnavailable, free_port

CASEWORK = Path(sys.executable).with_name("casework")


def casework_env(database_url: str, instance: Path, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """A CASEWORK_* environment like the test apps' (testing settings, cheap password hashing, loose sign-in limit)."""
    env = {
        "CASEWORK_CONFIG": "testing",
        "CASEWORK_INSTANCE": str(instance),
        "CASEWORK_SECRET_KEY": "test-secret-key-" + "x" * 32,
        "CASEWORK_LOGIN_RATE_LIMIT": "100000 per minute",
        "CASEWORK_LOG_LEVEL": "WARNING",
        "CASEWORK_DATABASE_URL": database_url,
    }
    if redis_url:
        env["CASEWORK_REDIS_URL"] = redis_url
    env.update(extra)
    return env


def descendants(pid: int) -> list[int]:
    """Every process that ``pid`` started, and their children in turn (read from Linux's /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (2nd field) may hold spaces and parentheses: the parent's id follows its last ')'.
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


class Stack:
    """The web server and the worker of one casework instance, as child processes."""

    def __init__(self, env: dict[str, str], *, log_dir: Path | None = None) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir or Path(env["CASEWORK_INSTANCE"])
        self.web: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None

    def _process_env(self) -> dict[str, str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
        full.update(self.env)
        return full

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CASEWORK), *args],
            env=self._process_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def prepare(self) -> Stack:
        Path(self.env["CASEWORK_INSTANCE"]).mkdir(parents=True, exist_ok=True)
        result = self.cli("init")
        if result.returncode:
            raise ServiceUnavailable(f"casework init failed: {result.stderr[-2000:]}")
        return self

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child process keeps it open
        # A session of its own, so that a kill reaches every process the command started (gunicorn's workers,
        # the rq work horse).
        return subprocess.Popen(
            [str(CASEWORK), *args],
            env=self._process_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web(self, *, workers: int = 2, threads: int = 4, timeout: float = 60) -> Stack:
        self.web = self._spawn(
            "web", "serve", "--port", str(self.port), "--workers", str(workers), "--threads", str(threads)
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.web.poll() is not None:
                raise ServiceUnavailable(f"casework serve exited ({self.web.returncode}): {self.log('web')[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):  # noqa: S310 - our own server
                    return self
            except urllib.error.HTTPError:
                return self  # it answers (503 while a dependency is down is still an answer)
            except OSError:
                if time.monotonic() > deadline:
                    raise ServiceUnavailable("casework serve did not answer within {timeout:.0f}s") from None
                time.sleep(0.2)

    def start_worker(self) -> Stack:
        self.worker = self._spawn("worker", "worker")
        return self

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @staticmethod
    def _signal(proc: subprocess.Popen | None, sig: int, wait: float = 20) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=wait)

    def kill_worker(self) -> None:
        """SIGKILL the worker and everything it started, as a machine losing power would."""
        # rq's work horse (the process running the job) has a process group of its own, which the worker's session
        # signal does not reach: stop the whole tree first, so that no process sees another die, then kill it.
        stray = descendants(self.worker.pid) if self.worker is not None and self.worker.poll() is None else []
        for pid in stray:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        self._signal(self.worker, signal.SIGKILL)
        for pid in stray:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.worker = None

    def stop_worker(self) -> None:
        self._signal(self.worker, signal.SIGTERM)
        self.worker = None

    def stop_web(self) -> None:
        self._signal(self.web, signal.SIGTERM)
        self.web = None

    def stop(self) -> None:
        self.stop_worker()
        self.stop_web()
