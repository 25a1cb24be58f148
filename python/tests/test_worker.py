"""jobd.worker, the Python worker of a `runner = python` section, driven as
the daemon drives it: the real `python3 -m jobd.worker` process, a Unix
socket as its descriptor 3, frames of a 4-byte big-endian length and JSON.
The fake daemon here says hello, sends jobs, answers may_commit, cancels,
and reads what comes back; the database cases run against a real migrated
database (the `db` fixture)."""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
from typing import Any

import pytest

from conftest import DRIVERS, REPOSITORY
from jobd.job import BaseRunnableJob, JobContext, JsonValueError

PYTHON = "/usr/bin/python3"
PYTHON_DIR = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = REPOSITORY / "examples" / "launchpad_app"
OWNER = "owner-x"
# Slack for a loaded 2-core machine (a build beside the tests).
SLACK = 5.0

# The job module the workers import: one class per behaviour, chosen by
# job_type in make_job.
JOBS_MODULE = r'''
import fcntl
import json
import resource
import time

from jobd.job import BaseRunnableJob, SuspendJob


class Invalid(Exception):
    """A user error."""


class Transient(Exception):
    """A retry error."""


class Plain:
    """Duck typed: nothing but run()."""

    def __init__(self, context):
        self.context = context

    def run(self):
        data = self.context.data
        do = data.get("do")
        if do == "result":
            self.context.result = data["result"]
        elif do == "checkpoint":
            self.context.result = {"checkpoint": self.context.checkpoint,
                                   "attempt": self.context.attempt}
        elif do == "not_json":
            self.context.result = {1, 2}
        elif do == "oops":
            raise ValueError("plain went wrong")
        elif do == "interrupt":
            raise KeyboardInterrupt()
        elif do == "suspend":
            raise SuspendJob("waiting for the branch scan")
        elif do == "environment":
            self.context.result = {
                "rlimit_as": list(resource.getrlimit(resource.RLIMIT_AS)),
                "cloexec": bool(fcntl.fcntl(3, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)}


class Launchpad(BaseRunnableJob):
    """A Launchpad-style class that sets everything and notifies by itself."""

    user_error_types = (Invalid,)
    retry_error_types = (Transient,)
    max_retries = 2
    retry_delay = 30

    def run(self):
        error = self.context.data.get("raise")
        if error == "user":
            raise Invalid("points must not be negative")
        if error == "retry":
            raise Transient("deadlock detected")
        if error == "oops":
            raise RuntimeError("the branch is gone")
        self.context.result = "done"

    def getOperationDescription(self):
        return "recording karma"

    def getOopsVars(self):
        return {"person": 7, "job": self.context.id}

    def getErrorRecipients(self):
        return ["ops@example.com", "owner@example.com"]

    def notifyUserError(self, error):
        with open(self.context.data["notify_file"], "w") as f:
            json.dump({"user_error": str(error)}, f)

    def notifyOops(self, oops):
        with open(self.context.data["notify_file"], "w") as f:
            json.dump(dict(oops), f)


class Defaults(BaseRunnableJob):
    """BaseRunnableJob's defaults: its notify methods leave notices to jobd."""

    user_error_types = (Invalid,)

    def run(self):
        if self.context.data.get("raise") == "user":
            raise Invalid("bad input")
        raise RuntimeError("defaults went wrong")


class Insert(BaseRunnableJob):
    """Database work on context.connection."""

    max_retries = None
    retry_delay = None

    def run(self):
        cursor = self.context.connection.cursor()
        cursor.execute("INSERT INTO worker_rows (job_id, note) VALUES (%s, %s)",
                       (self.context.id, self.context.data.get("note", "")))
        then = self.context.data.get("then")
        if then == "oops":
            raise RuntimeError("after the insert")
        if then == "spin":
            self.context.report_progress(message="spinning")
            while True:
                pass
        self.context.result = {"inserted": self.context.id}


class Backend:
    """Which session and driver the job's connection is."""

    def __init__(self, context):
        self.context = context

    def run(self):
        conn = self.context.connection
        cursor = conn.cursor()
        cursor.execute("SELECT pg_backend_pid(), current_setting('application_name'), "
                       "current_setting('idle_in_transaction_session_timeout'), "
                       "current_setting('client_connection_check_interval')")
        pid, name, idle, check = cursor.fetchone()
        self.context.result = {"pid": pid, "application_name": name, "idle": idle,
                               "check": check, "driver": type(conn).__module__.split(".")[0],
                               # psycopg 3's server-side prepares (psycopg2 has none)
                               "prepare_threshold": getattr(conn, "prepare_threshold", None)}


class Spin:
    def __init__(self, context):
        self.context = context

    def run(self):
        self.context.report_progress(message="spinning")
        while True:
            pass


class Stubborn:
    def __init__(self, context):
        self.context = context

    def run(self):
        while True:
            try:
                # Inside the try: once the test has this report, a cancel
                # is swallowed.
                self.context.report_progress(message="ignoring cancels")
                time.sleep(1)
            except BaseException:
                pass


class Sleepy:
    def __init__(self, context):
        self.context = context

    def run(self):
        self.context.report_progress(message="sleeping")
        time.sleep(30)


class Slow(BaseRunnableJob):
    """Launchpad's lease_duration: its time limit."""

    lease_duration = 0.3

    def run(self):
        time.sleep(30)


class Swallow(BaseRunnableJob):
    """Catches its lease_duration's JobTimedOut and returns."""

    lease_duration = 0.2

    def run(self):
        try:
            time.sleep(30)
        except BaseException:
            pass


class Chatty:
    def __init__(self, context):
        self.context = context

    def run(self):
        for step in range(100):
            self.context.report_progress(step, f"step {step}")
        self.context.save_checkpoint({"step": 99})


def make_job(context):
    classes = {"plain": Plain, "launchpad": Launchpad, "defaults": Defaults,
               "insert": Insert, "backend": Backend, "spin": Spin, "stubborn": Stubborn,
               "sleepy": Sleepy, "slow": Slow, "chatty": Chatty,
               "swallow": Swallow}
    return classes[context.job_type](context)
'''


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory) -> pathlib.Path:
    """A directory with the job module (wjobs.py) and, under hide_psycopg/,
    a psycopg that cannot be imported (the worker then uses psycopg2)."""
    path = tmp_path_factory.mktemp("worker_jobs")
    (path / "wjobs.py").write_text(JOBS_MODULE)
    hidden = path / "hide_psycopg"
    hidden.mkdir()
    (hidden / "psycopg.py").write_text('raise ImportError("psycopg is hidden by the test")\n')
    return path


class FakeDaemon:
    """The daemon's end of one worker: its socket, its process, its stderr."""

    def __init__(self, jobs_dir: pathlib.Path, *, hide_psycopg: bool = False,
                 extra_path: tuple[pathlib.Path, ...] = ()) -> None:
        self.sock, child = socket.socketpair()
        child_fd = child.fileno()

        def place_socket() -> None:  # between fork and exec: descriptor 3, inherited
            os.dup2(child_fd, 3)
            os.set_inheritable(3, True)

        path = [str(p) for p in extra_path] + [str(jobs_dir), str(PYTHON_DIR)]
        if hide_psycopg:
            path.insert(0, str(jobs_dir / "hide_psycopg"))
        env = {key: value for key, value in os.environ.items()
               if not key.lower().endswith("_proxy")}  # the webhook test calls localhost
        env["PYTHONPATH"] = os.pathsep.join(path)
        self.proc = subprocess.Popen([PYTHON, "-m", "jobd.worker"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=place_socket, close_fds=False,
                                     start_new_session=True, env=env, cwd=str(jobs_dir))
        child.close()
        self.sock.settimeout(SLACK)
        self.stderr: list[str] = []
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace").rstrip("\n"))

    # -- frames -----------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.sock.sendall(len(body).to_bytes(4, "big") + body)

    def read(self, timeout: float = SLACK) -> dict[str, Any] | None:
        """The next frame, or None at end of file."""
        self.sock.settimeout(timeout)
        prefix = self._exactly(4)
        if prefix is None:
            return None
        body = self._exactly(int.from_bytes(prefix, "big"))
        assert body is not None, "end of file inside a frame"
        return json.loads(body)

    def _exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                assert not data, "end of file inside a frame"
                return None
            data += chunk
        return data

    def hello(self, *, module: str = "wjobs", conninfo: str = "dbname=jobd_py_unused",
              job_conninfo: str | None = None, pooled: bool = False, timeout_ms: int = 60000,
              memory_limit: int | None = None, log_level: str = "info",
              daemon_pid: int | None = None, max_retries: int | None = None,
              ready: bool = True, **options: str) -> None:
        """Say hello; with `ready`, read the worker's ready frame."""
        self.send({
            "op": "hello",
            "section": {"name": "py", "handler": "python", "job_type": "py", "dbuser": "",
                        "timeout_ms": timeout_ms, "kill_grace_ms": 1000,
                        "memory_limit": memory_limit, "max_retries": max_retries,
                        "handler_options": {"module": module, **options}},
            "mail": {"smtp_url": "smtp://localhost:25", "from_address": "",
                     "product_name": "jobd"},
            "conninfo": conninfo,
            "job_conninfo": job_conninfo if job_conninfo is not None else conninfo,
            "pooled": pooled,
            "owner": OWNER,
            "log_level": log_level,
            "daemon_pid": os.getpid() if daemon_pid is None else daemon_pid,
        })
        if ready:
            message = self.read()
            assert message == {"op": "ready"}, (message, self.stderr)

    def start(self, job_id: int, job_type: str, data: Any = None, *, attempt: int = 1,
              max_retries: int = 0, checkpoint: str | None = None,
              max_result: int = 1 << 20) -> None:
        json_data = json.dumps({} if data is None else data)
        self.send({"op": "job", "job": {
            "id": job_id, "job_type": job_type, "section": "py", "attempt": attempt,
            "max_retries": max_retries, "priority": 0, "target": None,
            "json_data": json_data, "payload_size": len(json_data), "max_result": max_result,
            "checkpoint": checkpoint, "claimed_at_ns": time.monotonic_ns()}})

    def finish(self, may_commit: bool = True,
               timeout: float = SLACK) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Read until the outcome, answering may_commit; (progress reports,
        outcome)."""
        reports: list[dict[str, Any]] = []
        while True:
            message = self.read(timeout)
            assert message is not None, f"the worker closed the socket; stderr: {self.stderr}"
            if message["op"] == "progress":
                reports.append(message["report"])
            elif message["op"] == "may_commit":
                self.send({"op": "may_commit", "ok": may_commit})
            else:
                assert message["op"] == "outcome", message
                return reports, message["outcome"]

    def run(self, job_id: int, job_type: str, data: Any = None, *, may_commit: bool = True,
            **job: Any) -> dict[str, Any]:
        """One job, start to outcome."""
        self.start(job_id, job_type, data, **job)
        return self.finish(may_commit)[1]

    def wait_for_progress(self) -> dict[str, Any]:
        message = self.read()
        assert message is not None and message["op"] == "progress", message
        return message["report"]

    def exit_status(self, timeout: float = SLACK) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(SLACK)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._stderr_thread.join(SLACK)


@pytest.fixture
def daemon(jobs_dir):
    """A factory of workers, each closed (and killed if need be) after the test."""
    made: list[FakeDaemon] = []

    def make(**kwargs: Any) -> FakeDaemon:
        worker = FakeDaemon(jobs_dir, **kwargs)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()


@pytest.fixture(scope="module")
def table(db):
    """The table the database jobs write."""
    db.rows("CREATE TABLE worker_rows (job_id bigint NOT NULL, note text NOT NULL)")
    return db


def running_job(db, owner: str = OWNER, attempt: int = 1) -> int:
    """A RUNNING job row leased to `owner`, as a claim leaves it."""
    return db.value("INSERT INTO jobd.job (job_type, status, attempt_count, lease_owner, "
                    "lease_expires, date_started) VALUES ('py', 1, %s, %s, "
                    "now() + interval '1 min', now()) RETURNING id", attempt, owner)


REQUIRED = {"kind", "error_type", "message", "traceback", "oops_vars", "operation",
            "duration_us", "release_delay_ms", "committed", "lease_lost", "in_doubt", "result"}


# -- outcomes without a database ------------------------------------------------

def test_a_returning_duck_typed_job_is_completed_with_its_result(daemon):
    worker = daemon()
    worker.hello()
    outcome = worker.run(1, "plain", {"do": "result", "result": {"n": 1, "s": "é"}})
    assert REQUIRED <= outcome.keys()
    assert outcome["kind"] == "completed"
    assert json.loads(outcome["result"]) == {"n": 1, "s": "é"}
    assert outcome["result"] == '{"n":1,"s":"é"}'  # compact
    assert not outcome["committed"] and not outcome["lease_lost"] and not outcome["in_doubt"]
    assert outcome["operation"] == "running a plain job"
    assert isinstance(outcome["duration_us"], int) and outcome["duration_us"] >= 0
    # A duck-typed object sets nothing: nothing is overridden.
    for key in ("max_retries", "retry_delay_ms", "recipients", "oops_id"):
        assert key not in outcome
    assert outcome["oops_vars"] == {} and outcome["notified"] is False
    # The worker is reused: a second job on the same process.
    assert worker.run(2, "plain", {"do": "result", "result": None})["result"] is None


def test_each_exception_class_maps_to_its_outcome(daemon, tmp_path):
    worker = daemon()
    worker.hello()
    notify = tmp_path / "notified.json"

    user = worker.run(1, "launchpad", {"raise": "user", "notify_file": str(notify)})
    assert user["kind"] == "user_error"
    assert (user["error_type"], user["message"]) == ("Invalid", "points must not be negative")
    assert user["notified"] is True  # its own notifyUserError sent the notice
    assert json.loads(notify.read_text()) == {"user_error": "points must not be negative"}
    # What the class sets rides on every outcome.
    assert user["operation"] == "recording karma"
    assert user["oops_vars"] == {"person": "7", "job": "1"}
    assert user["recipients"] == ["ops@example.com", "owner@example.com"]
    assert user["max_retries"] == 2 and user["retry_delay_ms"] == 30000

    notify.unlink()
    retry = worker.run(2, "launchpad", {"raise": "retry", "notify_file": str(notify)},
                       attempt=1)
    assert (retry["kind"], retry["error_type"], retry["message"]) == (
        "retry", "Transient", "deadlock detected")
    assert "raise Transient" in retry["traceback"]
    assert not notify.exists() and retry["notified"] is False  # attempts remain: no OOPS

    suspended = worker.run(3, "plain", {"do": "suspend"})
    assert (suspended["kind"], suspended["error_type"], suspended["message"]) == (
        "suspended", "SuspendJob", "waiting for the branch scan")

    oops = worker.run(4, "launchpad", {"raise": "oops", "notify_file": str(notify)})
    assert (oops["kind"], oops["error_type"], oops["message"]) == (
        "oops", "RuntimeError", "the branch is gone")
    assert "Traceback (most recent call last)" in oops["traceback"]
    assert 'raise RuntimeError("the branch is gone")' in oops["traceback"]
    assert oops["oops_vars"] == {"person": "7", "job": "4"}
    told = json.loads(notify.read_text())
    assert oops["notified"] is True and oops["oops_id"] == told["id"]
    assert len(told["id"]) == 21 and told["id"].startswith("OOPS-")
    assert int(told["id"][5:], 16) >= 0 and told["id"][5:] == told["id"][5:].lower()
    assert (told["type"], told["value"]) == ("RuntimeError", "the branch is gone")
    assert told["traceback"] == oops["traceback"]

    # A retry error with no attempts left is an OOPS for the daemon: the
    # job's notifyOops hears of it.
    notify.unlink()
    last = worker.run(5, "launchpad", {"raise": "retry", "notify_file": str(notify)},
                      attempt=3)
    assert last["kind"] == "retry" and last["notified"] is True
    assert json.loads(notify.read_text())["id"] == last["oops_id"]

    for outcome in (user, retry, suspended, oops, last):
        assert outcome["result"] is None and not outcome["committed"]


def test_base_runnable_job_defaults_leave_the_notices_to_jobd(daemon):
    worker = daemon()
    worker.hello()
    user = worker.run(7, "defaults", {"raise": "user"})
    assert (user["kind"], user["error_type"], user["notified"]) == ("user_error", "Invalid", False)
    oops = worker.run(8, "defaults")
    assert (oops["kind"], oops["notified"]) == ("oops", False)
    assert "oops_id" not in oops
    assert oops["operation"] == "running a defaults job"
    assert oops["oops_vars"] == {"job_id": "8", "job_type": "defaults"}
    # None: the section's (or the row's) max_retries and retry_delay.
    assert "max_retries" not in oops and "retry_delay_ms" not in oops
    assert oops["recipients"] == []


def test_anything_else_is_an_oops(daemon):
    worker = daemon()
    worker.hello()
    plain = worker.run(1, "plain", {"do": "oops"})
    assert (plain["kind"], plain["error_type"], plain["message"]) == (
        "oops", "ValueError", "plain went wrong")
    interrupted = worker.run(2, "plain", {"do": "interrupt"})
    assert (interrupted["kind"], interrupted["error_type"]) == ("oops", "KeyboardInterrupt")
    not_json = worker.run(3, "plain", {"do": "not_json"})
    assert (not_json["kind"], not_json["error_type"]) == ("oops", "ResultNotJson")
    assert "not JSON" in not_json["message"]
    too_large = worker.run(4, "plain", {"do": "result", "result": "x" * 100}, max_result=50)
    assert (too_large["kind"], too_large["error_type"]) == ("oops", "ResultTooLarge")
    unknown = worker.run(5, "no_such_type")  # make_job raises KeyError
    assert (unknown["kind"], unknown["error_type"]) == ("oops", "KeyError")
    assert "make_job" in unknown["traceback"]


def test_a_worker_that_cannot_import_its_module_exits_before_it_is_ready(daemon):
    """A deployment mistake is no job's fault: the worker says why on
    stderr and exits without `ready`, and the daemon gives the job back."""
    worker = daemon()
    worker.hello(module="no_such_module_for_jobd", ready=False)
    assert worker.read() is None  # no ready: the daemon gives its job back
    assert worker.exit_status() == 3
    said = _stderr_holding(worker, "cannot start: ")
    assert "cannot start: ModuleNotFoundError: No module named 'no_such_module_for_jobd'" in said

    missing = daemon()
    missing.hello(callable="no_such_callable", ready=False)
    assert missing.read() is None
    assert missing.exit_status() == 3
    assert "cannot start: AttributeError" in _stderr_holding(missing, "cannot start: ")


def _stderr_holding(worker, text: str) -> str:
    """The worker's stderr once a line holds `text` (its reader thread
    takes the last lines a moment after the exit)."""
    deadline = time.monotonic() + SLACK
    while not any(text in line for line in worker.stderr) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "\n".join(worker.stderr)


def test_the_sections_max_retries_decides_whether_notify_oops_runs(daemon, tmp_path):
    """As in the daemon's recorder: the section's max_retries wins over the
    class's (Launchpad: 2) and the row's; a retry that will be requeued is
    no OOPS, so the class's notifyOops is not told."""
    notify = tmp_path / "notified.json"
    strict = daemon()
    strict.hello(max_retries=0)
    outcome = strict.run(1, "launchpad", {"raise": "retry", "notify_file": str(notify)})
    assert outcome["kind"] == "retry" and outcome["notified"] is True  # no attempts left
    assert json.loads(notify.read_text())["id"] == outcome["oops_id"]
    notify.unlink()
    lenient = daemon()
    lenient.hello(max_retries=5)
    outcome = lenient.run(2, "launchpad", {"raise": "retry", "notify_file": str(notify)},
                          attempt=3)  # past the class's 2, within the section's 5
    assert outcome["kind"] == "retry" and outcome["notified"] is False
    assert not notify.exists()


def test_a_job_that_swallows_its_lease_duration_still_times_out(daemon):
    worker = daemon()
    worker.hello()
    outcome = worker.run(1, "swallow")
    assert (outcome["kind"], outcome["error_type"]) == ("timeout", "TimeoutError")
    assert outcome["committed"] is False


def test_lease_duration_stops_a_job_with_a_timeout(daemon):
    worker = daemon()
    worker.hello(timeout_ms=60000)
    started = time.monotonic()
    outcome = worker.run(1, "slow")
    assert time.monotonic() - started < 0.3 + SLACK
    assert (outcome["kind"], outcome["error_type"], outcome["message"]) == (
        "timeout", "TimeoutError", "Job ran too long.")
    assert "time.sleep(30)" in outcome["traceback"]
    assert outcome["recycle"] is True
    assert 250_000 <= outcome["duration_us"]
    # Not enforced when the section's timeout is shorter: the daemon's is.
    assert worker.run(2, "plain", {"do": "result", "result": 1})["kind"] == "completed"


def test_progress_is_throttled_to_a_report_a_second_and_the_last(daemon):
    worker = daemon()
    worker.hello()
    worker.start(1, "chatty")
    reports, outcome = worker.finish()
    assert outcome["kind"] == "completed"
    assert 1 <= len(reports) <= 3, reports  # the first at once, the rest merged
    assert reports[0]["percent"] == 0.0 and reports[0]["message"] == "step 0"
    # The last, sent just before the outcome, holds what was reported last;
    # the checkpoint is the JSON value itself (progressFromJson).
    assert reports[-1] == {"percent": 99.0, "message": "step 99", "checkpoint": {"step": 99}}


def test_a_checkpoint_is_handed_to_the_next_attempt(daemon):
    worker = daemon()
    worker.hello()
    outcome = worker.run(1, "plain", {"do": "checkpoint"}, attempt=2, checkpoint='{"step":41}')
    assert json.loads(outcome["result"]) == {"checkpoint": {"step": 41}, "attempt": 2}


def test_the_worker_sets_memory_limit_and_keeps_its_socket_from_children(daemon):
    worker = daemon()
    worker.hello(memory_limit=4 << 30)
    outcome = worker.run(1, "plain", {"do": "environment"})
    assert json.loads(outcome["result"]) == {"rlimit_as": [4 << 30, 4 << 30], "cloexec": True}


def test_debug_logs_start_and_end_of_jobs_but_never_the_payload(daemon):
    quiet = daemon()
    quiet.hello()
    quiet.run(1, "plain", {"do": "result", "result": "secret-payload"})
    quiet.close()
    assert quiet.stderr == []
    loud = daemon()
    loud.hello(log_level="debug")
    loud.run(1, "plain", {"do": "result", "result": "secret-payload"})
    loud.close()
    text = "\n".join(loud.stderr)
    assert "job 1 (plain) attempt 1: started" in text
    assert "job 1: completed" in text
    assert "secret-payload" not in text


# -- the worker's life ------------------------------------------------------------

def test_the_worker_exits_when_the_socket_closes(daemon):
    worker = daemon()
    worker.hello()
    assert worker.run(1, "plain")["kind"] == "completed"
    worker.sock.close()
    assert worker.exit_status() == 0


def test_the_worker_exits_at_end_of_file_before_hello_and_for_another_parent(daemon):
    early = daemon()
    early.sock.close()
    assert early.exit_status() == 0
    orphan = daemon()
    orphan.hello(daemon_pid=1, ready=False)  # not its parent: the daemon died meanwhile
    assert orphan.exit_status() == 1


def test_a_cancel_stops_a_busy_job_and_the_worker_without_an_outcome(daemon):
    worker = daemon()
    worker.hello()
    worker.start(1, "spin")
    assert worker.wait_for_progress()["message"] == "spinning"
    worker.send({"op": "cancel", "job_id": 2})  # not this job: ignored
    time.sleep(0.2)
    assert worker.proc.poll() is None
    worker.send({"op": "cancel", "job_id": 1})
    assert worker.exit_status() == 0
    assert worker.read() is None  # no outcome: the daemon decides it


def test_the_sigterm_after_a_cancel_stops_a_job_blocked_in_a_system_call(daemon):
    worker = daemon()
    worker.hello()
    worker.start(1, "sleepy")  # time.sleep(30): no bytecode runs until it returns
    assert worker.wait_for_progress()["message"] == "sleeping"
    started = time.monotonic()
    worker.send({"op": "cancel", "job_id": 1})
    time.sleep(1)  # as the daemon waits before its SIGTERM
    os.killpg(worker.proc.pid, signal.SIGTERM)
    assert worker.exit_status() == 0
    assert time.monotonic() - started < 1 + SLACK
    assert worker.read() is None


def test_a_job_that_ignores_the_cancel_runs_on_until_killed(daemon):
    worker = daemon()
    worker.hello()
    worker.start(1, "stubborn")
    assert worker.wait_for_progress()["message"] == "ignoring cancels"
    worker.send({"op": "cancel", "job_id": 1})
    time.sleep(2)
    assert worker.proc.poll() is None
    os.killpg(worker.proc.pid, signal.SIGKILL)  # kill_grace later, as the daemon does
    assert worker.exit_status() == -signal.SIGKILL


def test_a_job_that_swallows_the_cancel_and_the_sigterm_runs_until_sigkill(daemon):
    """The daemon's SIGTERM raises JobCancelled in the job once more (here
    in time.sleep, which only a signal interrupts); a job that swallows that
    too is killed kill_grace after the cancel."""
    worker = daemon()
    worker.hello()
    worker.start(1, "stubborn")
    assert worker.wait_for_progress()["message"] == "ignoring cancels"
    worker.send({"op": "cancel", "job_id": 1})
    time.sleep(0.3)
    os.killpg(worker.proc.pid, signal.SIGTERM)
    time.sleep(0.5)
    assert worker.proc.poll() is None
    os.killpg(worker.proc.pid, signal.SIGKILL)
    assert worker.exit_status() == -signal.SIGKILL


def test_sigterm_stops_the_job_and_the_worker(daemon):
    worker = daemon()
    worker.hello()
    worker.start(1, "sleepy")
    assert worker.wait_for_progress()["message"] == "sleeping"
    os.killpg(worker.proc.pid, signal.SIGTERM)
    assert worker.exit_status() == 0
    assert worker.read() is None


# -- the job's own transaction ------------------------------------------------------

@pytest.mark.parametrize("driver", DRIVERS)
def test_database_work_commits_with_the_completed_mark(daemon, table, driver):
    worker = daemon(hide_psycopg=driver == "psycopg2")
    worker.hello(conninfo=table.conninfo)
    job_id = running_job(table)
    outcome = worker.run(job_id, "insert", {"note": driver})
    assert outcome["kind"] == "completed", outcome
    assert outcome["committed"] is True and not outcome["lease_lost"]
    assert json.loads(outcome["result"]) == {"inserted": job_id}
    assert table.rows("SELECT note FROM worker_rows WHERE job_id = %s", job_id) == [(driver,)]
    assert table.value("SELECT status FROM jobd.job WHERE id = %s", job_id) == 2
    assert table.value("SELECT result::text FROM jobd.job_result WHERE job_id = %s",
                       job_id) == f'{{"inserted": {job_id}}}'
    # The same session serves the next job, through the same driver.
    first = json.loads(worker.run(running_job(table), "backend")["result"])
    second = json.loads(worker.run(running_job(table), "backend")["result"])
    assert first["pid"] == second["pid"]
    assert first["driver"] == driver and first["application_name"] == "jobd job"


def test_session_settings_and_a_connection_lost_between_jobs(daemon, table):
    """The session's limits (none but the transaction's through a pooler),
    and a cached connection whose session died is replaced, not the job's
    fault."""
    direct = daemon()
    direct.hello(conninfo=table.conninfo)
    first = json.loads(direct.run(running_job(table), "backend")["result"])
    assert (first["idle"], first["check"]) == ("66s", "1s")  # timeout + kill_grace + 5 s
    table.value("SELECT pg_terminate_backend(%s)", first["pid"])
    outcome = direct.run(running_job(table), "backend")
    assert outcome["kind"] == "completed" and outcome["committed"] is True, outcome
    assert json.loads(outcome["result"])["pid"] != first["pid"]

    pooled = daemon()
    pooled.hello(conninfo=table.conninfo, pooled=True)
    settings = json.loads(pooled.run(running_job(table), "backend")["result"])
    assert (settings["idle"], settings["check"]) == ("66s", "0")  # SET LOCAL only
    assert settings["application_name"] == "jobd job"
    # Through PgBouncer a prepared statement may be in another session.
    assert settings["prepare_threshold"] is None
    if first["driver"] == "psycopg":
        assert first["prepare_threshold"] == 5  # psycopg 3's default, directly


def test_database_work_rolls_back_when_the_lease_is_gone(daemon, table):
    worker = daemon()
    worker.hello(conninfo=table.conninfo)
    refused = running_job(table)
    outcome = worker.run(refused, "insert", may_commit=False)
    assert outcome["kind"] == "completed" and outcome["lease_lost"] is True
    assert outcome["committed"] is False
    # Someone else's lease: the fenced mark finds no row of this owner.
    taken = running_job(table, owner="someone-else")
    outcome = worker.run(taken, "insert")
    assert outcome["kind"] == "completed" and outcome["lease_lost"] is True
    # A failure after the insert rolls it back too.
    failed = running_job(table)
    outcome = worker.run(failed, "insert", {"then": "oops"})
    assert (outcome["kind"], outcome["message"]) == ("oops", "after the insert")
    for job_id in (refused, taken, failed):
        assert table.value("SELECT count(*) FROM worker_rows WHERE job_id = %s", job_id) == 0
        assert table.value("SELECT status FROM jobd.job WHERE id = %s", job_id) == 1
    # The connection is still good for the next job.
    ok = running_job(table)
    assert worker.run(ok, "insert")["committed"] is True


def test_a_cancel_rolls_back_the_jobs_transaction(daemon, table):
    worker = daemon()
    worker.hello(conninfo=table.conninfo)
    job_id = running_job(table)
    worker.start(job_id, "insert", {"then": "spin"})
    assert worker.wait_for_progress()["message"] == "spinning"
    worker.send({"op": "cancel", "job_id": job_id})
    assert worker.exit_status() == 0
    assert worker.read() is None
    assert table.value("SELECT count(*) FROM worker_rows WHERE job_id = %s", job_id) == 0
    assert table.value("SELECT status FROM jobd.job WHERE id = %s", job_id) == 1


def test_a_connection_that_cannot_be_opened_releases_the_job(daemon, table):
    worker = daemon()
    worker.hello(conninfo=table.conninfo, job_conninfo="dbname=jobd_py_no_such_database")
    outcome_id = running_job(table)
    outcome = worker.run(outcome_id, "insert")
    assert outcome["kind"] == "released" and outcome["error_type"] == "ConnectFailed"
    assert outcome["release_delay_ms"] == 5000
    assert "jobd_py_no_such_database" in outcome["message"]
    worker.close()
    assert any(f"job {outcome_id}: cannot open the job's database connection" in line
               and "releasing the job" in line for line in worker.stderr), worker.stderr


# -- the example application ----------------------------------------------------------

class _Hook(http.server.BaseHTTPRequestHandler):
    """Answers a POST to /<status> with that HTTP status."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(int(self.path.strip("/")))
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_example_applications_jobs(daemon, table, hook_url):
    """examples/launchpad_app: its schema, its classes, as jobd.conf runs them."""
    if not table.value("SELECT to_regclass('karma_event') IS NOT NULL"):
        table.rows((EXAMPLE / "schema.sql").read_text())
    worker = daemon(extra_path=(EXAMPLE,))
    worker.hello(conninfo=table.conninfo, module="app.jobs")

    recorded = running_job(table)
    outcome = worker.run(recorded, "record_karma", {"person": "mark", "points": 10})
    assert outcome["kind"] == "completed" and outcome["committed"] is True, outcome
    assert outcome["operation"] == "recording 10 karma for mark"
    event = json.loads(outcome["result"])["event"]
    assert table.rows("SELECT person, points FROM karma_event WHERE id = %s", event) == [
        ("mark", 10)]
    negative = worker.run(running_job(table), "record_karma", {"person": "mark", "points": -5})
    assert (negative["kind"], negative["error_type"]) == ("user_error", "NegativeKarma")
    assert negative["max_retries"] == 5 and negative["retry_delay_ms"] == 10000
    assert table.value("SELECT count(*) FROM karma_event") == 1

    data = {"url": f"{hook_url}/200", "owner_email": "owner@example.com"}
    sent = worker.run(1, "notify_webhook", data)
    assert (sent["kind"], sent["result"], sent["committed"]) == ("completed", '{"status":200}',
                                                                 False)
    refused = worker.run(2, "notify_webhook", {**data, "url": f"{hook_url}/404"})
    assert (refused["kind"], refused["error_type"]) == ("user_error", "WebhookRejected")
    assert refused["recipients"] == ["owner@example.com"]
    down = worker.run(3, "notify_webhook", {**data, "url": f"{hook_url}/503"})
    assert (down["kind"], down["error_type"]) == ("retry", "TransientError")
    assert down["max_retries"] == 3 and down["retry_delay_ms"] == 30000
    unknown = worker.run(4, "no_such_type")
    assert (unknown["kind"], unknown["error_type"]) == ("oops", "LookupError")


# -- JobContext in-process ------------------------------------------------------------

def test_reports_are_checked_where_the_job_runs():
    sent: list[dict[str, Any]] = []
    context = JobContext(1, "t", {}, progress=sent.append, max_payload=100)
    with pytest.raises(ValueError):
        context.report_progress(math.nan)
    with pytest.raises(ValueError):
        context.report_progress(math.inf)
    with pytest.raises(TypeError):
        context.report_progress("50")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        context.report_progress(message=5)  # type: ignore[arg-type]
    with pytest.raises(JsonValueError) as not_json:
        context.save_checkpoint({1, 2})
    assert not_json.value.reason == "NotJson"
    with pytest.raises(JsonValueError) as nul:
        context.save_checkpoint({"s": "a\x00b"})
    assert nul.value.reason == "NotStorable"
    with pytest.raises(JsonValueError) as large:
        context.save_checkpoint("x" * 200)
    assert large.value.reason == "TooLarge"
    with pytest.raises(ValueError):
        context.save_checkpoint(None)
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValueError):
        context.save_checkpoint(deep)
    assert sent == []
    context.report_progress(150, "m" * 300)
    context.report_progress(-1)
    context.save_checkpoint({"a": [1, 2]})
    assert sent == [{"percent": 100.0, "message": "m" * 200}, {"percent": 0.0},
                    {"checkpoint": '{"a":[1,2]}'}]


def test_a_job_class_can_be_unit_tested_with_a_context_made_by_hand():
    class Double(BaseRunnableJob):
        def run(self) -> None:
            self.context.result = self.context.data["n"] * 2

    context = JobContext(5, "double", {"n": 21})
    job = Double(context)
    job.run()
    assert context.result == 42
    assert job.getOperationDescription() == "running a double job"
    assert list(job.getOopsVars()) == [("job_id", 5), ("job_type", "double")]
    with pytest.raises(RuntimeError):
        context.connection  # made without connect=
