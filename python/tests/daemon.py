"""The built `jobd serve`, driven as an operator would: a real process with a
configuration file, its log read line by line, stopped with real signals.

Used by the tests of ``runner = python`` (test_runner.py), which need the
daemon, its Python workers and a real PostgreSQL together.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import threading
import time
from typing import Any, Callable

from conftest import REPOSITORY, Database, _jobd_binary


class Daemon:
    """One `jobd serve` on `db` with the configuration `config_text`."""

    def __init__(self, db: Database, config_text: str, directory: pathlib.Path,
                 name: str = "jobd", env: dict[str, str | None] | None = None) -> None:
        """env: variables to set, or (None) to remove, in the daemon's."""
        self.config_path = directory / f"{name}.conf"
        self.config_path.write_text(config_text)
        self.lines: list[str] = []
        self._lock = threading.Condition()
        environment = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        env = environment
        # As scripts/test.sh runs them: libpqxx 6.4's known leak is not ours.
        env.setdefault("LSAN_OPTIONS", f"suppressions={REPOSITORY}/tests/lsan.supp:"
                                       "print_suppressions=0")
        self.process = subprocess.Popen(
            [str(_jobd_binary()), "--config", str(self.config_path), "--database", db.conninfo,
             "serve"],
            cwd=REPOSITORY, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
                self._lock.notify_all()

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 20.0,
                     count: int = 1) -> bool:
        """Whether `count` lines holding `text` appear within `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while sum(text in line for line in self.lines) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def wait_ready(self) -> None:
        if not self.wait_for_log("DAEMON_READY", 60):
            raise AssertionError(f"the daemon did not become ready:\n{self.log()}")

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a drain), and the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)


def until(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """check()'s first true value, polled every 20 ms for `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {what or check}")
        time.sleep(0.02)


def worker_pids(daemon: Daemon) -> set[int]:
    """The daemon's child processes that are Python workers."""
    pids = set()
    children = pathlib.Path(f"/proc/{daemon.process.pid}/task/{daemon.process.pid}/children")
    for pid in children.read_text().split():
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"jobd.worker" in cmdline:
            pids.add(int(pid))
    return pids
