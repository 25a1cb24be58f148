"""The Python worker of a ``runner = python`` section: ``python3 -m jobd.worker``.

The daemon starts one per slot of the section and keeps it for many jobs.
It gives the worker /dev/null as stdin and stdout, a pipe as stderr (each
line is logged, and the last 16 KiB are a crashed job's traceback), and
descriptor 3: a Unix stream socket over which both sides send frames, a
4-byte big-endian length and a UTF-8 JSON object (at most 1 GiB)::

    daemon -> worker  {"op":"hello", "section":{...}, "conninfo", "job_conninfo", "pooled",
                       "owner", "log_level", "daemon_pid", "mail":{...}}      once, first
    daemon -> worker  {"op":"job", "job":{...}}                       one job at a time
    worker -> daemon  {"op":"progress", "report":{"percent", "message", "checkpoint"}}
    worker -> daemon  {"op":"may_commit"}      before the job's own transaction commits
    daemon -> worker  {"op":"may_commit", "ok":bool}
    daemon -> worker  {"op":"cancel", "job_id":int}     any time while the job runs
    worker -> daemon  {"op":"outcome", "outcome":{...}}

The worker imports the section's ``module`` once and, per job, calls its
``callable`` (default ``make_job``) with a :class:`jobd.job.JobContext`,
runs the object's ``run()``, and maps what happens to an outcome (SPEC §5,
after Launchpad's ``JobRunner.runJob``). A cancel stops the job
(:class:`jobd.job.JobCancelled` in its thread), rolls its transaction back,
and ends the worker without an outcome: the daemon, which sent the
cancel, records one. The worker ends when the socket closes, after the job
it is running.

python/README.md, "Running jobs in Python", describes the frames in full.
"""

from __future__ import annotations

import ctypes
import datetime
import faulthandler
import fcntl
import functools
import importlib
import json
import math
import os
import queue
import resource
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, NoReturn

from ._jobconn import JobConnection
from .client import check_max_retries
from .job import (
    BaseRunnableJob,
    JobCancelled,
    JobContext,
    JobTimedOut,
    JsonValueError,
    RateLimited,
    SuspendJob,
)

#: The daemon's socket.
SOCKET_FD = 3
#: The largest frame either side accepts (runtime/worker_protocol.hpp).
MAX_FRAME = 1 << 30
#: How long a job whose own connection could not be opened waits before it
#: is claimed again (runtime/job_outcome.hpp's kReleaseDelay).
RELEASE_DELAY_MS = 5000
#: Progress goes to the daemon at most this often (seconds).
PROGRESS_INTERVAL = 1.0

_MAX_DELAY_SECONDS = 100 * 365.25 * 86400
_PR_SET_PDEATHSIG = 1

# The fenced COMPLETED mark, with the result, in the job's own transaction
# (migration 0016).
_MARK = ("SELECT jobd.complete_in_job_transaction(%s::bigint, %s::integer, %s::text, "
         "%s::jsonb)")


class ProtocolError(Exception):
    """A frame that breaks the protocol: its length, its JSON, its fields."""


# -- frames ------------------------------------------------------------------

def encode_frame(message: dict[str, Any]) -> bytes:
    """The frame of ``message``: 4-byte big-endian length, UTF-8 JSON.

    Text that UTF-8 cannot hold (a lone surrogate in an exception's
    message) is replaced, as the daemon's own encoder does.
    """
    body = json.dumps(message, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8", "replace")
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"a message of {len(body)} bytes is too large for a frame")
    return len(body).to_bytes(4, "big") + body


class Channel:
    """The daemon's socket: frames out from any thread (one at a time),
    frames in from one thread."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._write_lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        """Send one frame; OSError when the daemon has gone."""
        frame = encode_frame(message)
        with self._write_lock:
            self._sock.sendall(frame)

    def read(self) -> dict[str, Any] | None:
        """The next frame's object, or None at end of file between frames."""
        prefix = self._read_exactly(4, at_start=True)
        if prefix is None:
            return None
        length = int.from_bytes(prefix, "big")
        if length > MAX_FRAME:
            raise ProtocolError(f"a frame of {length} bytes is too large")
        body = self._read_exactly(length, at_start=False) if length else b""
        try:
            message = json.loads(body)
        except ValueError as e:  # UnicodeDecodeError is a ValueError too
            raise ProtocolError(f"a frame that is not JSON: {e}") from e
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            raise ProtocolError("a frame that is not a JSON object with an \"op\"")
        return message

    def _read_exactly(self, size: int, at_start: bool) -> bytes | None:
        buffer = bytearray(size)
        view = memoryview(buffer)
        done = 0
        while done < size:
            got = self._sock.recv_into(view[done:])
            if got == 0:
                if done == 0 and at_start:
                    return None
                raise ProtocolError("end of file inside a frame")
            done += got
        return bytes(buffer)


# -- logging -----------------------------------------------------------------

class _Log:
    """One line per event on stderr, which the daemon logs line by line.
    Errors always; the start and end of jobs only at log_level debug. A
    job's payload is never written."""

    def __init__(self) -> None:
        self.debug_enabled = False

    def error(self, text: str) -> None:
        self._write(text)

    def debug(self, text: str) -> None:
        if self.debug_enabled:
            self._write(text)

    @staticmethod
    def _write(text: str) -> None:
        line = " ".join(text.split("\n"))
        try:
            sys.stderr.write(f"jobd.worker[{os.getpid()}]: {line}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr is gone: nowhere left to say anything


_log = _Log()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _traceback_of(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _flush_and_exit(code: int) -> NoReturn:
    """End the process at once: threads a job started (a pool, a timer) do
    not hold it up, and nothing of the job runs after the daemon's word."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


# -- the main thread, from other threads ----------------------------------

def _async_raise_in_main(exc_type: type[BaseException] | None) -> None:
    """Raise ``exc_type`` in the main thread at its next bytecode (None:
    forget one that is pending)."""
    ident = threading.main_thread().ident
    if ident is None:
        return
    # No argtypes: None passes as NULL, which clears a pending exception.
    target = ctypes.py_object(exc_type) if exc_type is not None else None
    changed = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), target)
    if changed > 1:  # cannot happen for one ident; undo rather than hit others
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)


def _leave_signals_to_the_main_thread() -> None:
    """Block, in the calling (non-main) thread, the signals meant for the
    job: the kernel then delivers SIGTERM and SIGALRM to the main thread,
    where they interrupt a blocking call (time.sleep, a socket read) and
    run their handlers at once, instead of waiting for that call to end."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM, signal.SIGINT})


def _die_with_parent() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL): end with the daemon (Linux only;
    elsewhere the closed socket ends the worker)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


# -- progress ------------------------------------------------------------------

class ProgressThrottle:
    """A job's reports, to the daemon at most once per interval.

    The first report of a job goes at once (on the reporting thread);
    later ones are merged (a later percent, message or checkpoint replaces
    an earlier one) and sent an interval after the last send. :meth:`take`
    gives back what is left when the job ends, to be sent before its
    outcome. As runtime/progress.hpp's ProgressThrottle.
    """

    def __init__(self, send: Callable[[dict[str, Any]], None],
                 interval: float = PROGRESS_INTERVAL) -> None:
        self._send = send
        self._interval = interval
        self._cond = threading.Condition()
        self._pending: dict[str, Any] = {}
        self._dirty = False
        self._due = 0.0
        self._flushed: float | None = None
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        """A new job: its first report goes at once."""
        with self._cond:
            self._pending = {}
            self._dirty = False
            self._flushed = None

    def report(self, update: dict[str, Any]) -> None:
        """A checked report (JobContext's sink); any thread. Sent at once,
        on the caller's thread, when nothing was sent for an interval;
        else kept for the throttle's thread to send when it is due."""
        with self._cond:
            self._pending.update(update)
            if self._dirty:
                return  # a send is due already
            now = time.monotonic()
            if self._flushed is None or now >= self._flushed + self._interval:
                update, self._pending = self._pending, {}
                self._flushed = now
                self._deliver(update)
                return
            self._dirty = True
            self._due = self._flushed + self._interval
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="jobd-progress",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def take(self) -> dict[str, Any] | None:
        """What was reported and not sent yet; waits for a send in progress."""
        with self._cond:
            if not self._dirty:
                return None
            left, self._pending, self._dirty = self._pending, {}, False
            self._flushed = time.monotonic()
            return left

    def _run(self) -> None:
        _leave_signals_to_the_main_thread()
        with self._cond:
            while True:
                if not self._dirty:
                    self._cond.wait()
                    continue
                wait = self._due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                update, self._pending, self._dirty = self._pending, {}, False
                self._flushed = time.monotonic()
                self._deliver(update)

    def _deliver(self, update: dict[str, Any]) -> None:
        # Under the lock, so that take() never overtakes a send.
        try:
            self._send(update)
        except (OSError, ProtocolError) as e:
            # The daemon has gone: the reader sees the end of file.
            _log.debug(f"cannot send a progress report: {_first_line(e)}")


def progress_frame(update: dict[str, Any]) -> dict[str, Any]:
    """The progress frame of a checked report. The checkpoint goes as the
    JSON value itself (runtime/progress.cpp's progressFromJson)."""
    report: dict[str, Any] = {}
    if "percent" in update:
        report["percent"] = update["percent"]
    if "message" in update:
        report["message"] = update["message"]
    if "checkpoint" in update:
        report["checkpoint"] = json.loads(update["checkpoint"])
    return {"op": "progress", "report": report}


# -- the job object ------------------------------------------------------------

_MISSING = object()


def _error_types(obj: Any, name: str) -> tuple[type[BaseException], ...]:
    value = getattr(obj, name, _MISSING)
    if value is _MISSING or value is None:
        return ()
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"{type(obj).__name__}.{name} must be an exception class or a "
                            f"tuple of them, got {value!r}")
    return tuple(items)


def _seconds(obj: Any, name: str, positive: bool) -> float | None:
    value = getattr(obj, name, _MISSING)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    else:
        raise TypeError(f"{type(obj).__name__}.{name} must be a timedelta or a number of "
                        f"seconds, got {type(value).__name__}")
    low_ok = seconds > 0 if positive else seconds >= 0
    if not math.isfinite(seconds) or not low_ok or seconds > _MAX_DELAY_SECONDS:
        bound = "greater than 0" if positive else "at least 0"
        raise ValueError(f"{type(obj).__name__}.{name} must be {bound} and at most 100 years, "
                         f"got {value!r}")
    return seconds


def _max_retries(obj: Any) -> int | None:
    value = getattr(obj, "max_retries", _MISSING)
    if value is _MISSING or value is None:
        return None
    return check_max_retries(value, f"{type(obj).__name__}.max_retries")


def _own_hook(obj: Any, name: str) -> Callable[..., Any] | None:
    """The object's ``notifyUserError`` or ``notifyOops``, unless it is
    BaseRunnableJob's default (which leaves the notice to jobd)."""
    hook = getattr(obj, name, None)
    if hook is None or not callable(hook):
        return None
    if isinstance(obj, BaseRunnableJob):
        inherited = getattr(type(obj), name, None) is getattr(BaseRunnableJob, name)
        if inherited and name not in getattr(obj, "__dict__", {}):
            return None
    return hook


class JobObject:
    """What the worker reads off a job object (duck typed: each attribute
    is optional). The settings are read and checked before ``run()``: a
    class that sets one wrongly fails its jobs with an OOPS saying which."""

    def __init__(self, obj: Any, context: JobContext) -> None:
        run = getattr(obj, "run", None)
        if run is None or not callable(run):
            raise TypeError(f"the job object {obj!r} has no run() method")
        self.obj = obj
        self.run = run
        self.user_error_types = _error_types(obj, "user_error_types")
        self.retry_error_types = _error_types(obj, "retry_error_types")
        self.max_retries = _max_retries(obj)
        delay = _seconds(obj, "retry_delay", positive=False)
        self.retry_delay_ms = None if delay is None else round(delay * 1000)
        self.lease_seconds = _seconds(obj, "lease_duration", positive=True)
        describe = getattr(obj, "getOperationDescription", None)
        self.operation = (str(describe()) if callable(describe)
                          else f"running a {context.job_type} job")

    def oops_vars(self) -> dict[str, str]:
        """getOopsVars() as str -> str (a dict or pairs), or {}."""
        method = getattr(self.obj, "getOopsVars", None)
        if not callable(method):
            return {}
        try:
            value = method()
            pairs = value.items() if hasattr(value, "items") else value
            return {str(key): str(item) for key, item in pairs}
        except (Exception, KeyboardInterrupt) as e:  # not JobCancelled, SystemExit
            _log.error(f"{type(self.obj).__name__}.getOopsVars() failed, the OOPS has no "
                       f"variables: {type(e).__name__}: {_first_line(e)}")
            return {}

    def recipients(self) -> list[str] | None:
        """getErrorRecipients() as a list of str, or None without it."""
        method = getattr(self.obj, "getErrorRecipients", None)
        if not callable(method):
            return None
        try:
            value = method()
            items = [value] if isinstance(value, str) else list(value or ())
            return [address for address in (str(item).strip() for item in items) if address]
        except (Exception, KeyboardInterrupt) as e:  # not JobCancelled, SystemExit
            _log.error(f"{type(self.obj).__name__}.getErrorRecipients() failed, its notice "
                       f"goes to jobd's recipients only: {type(e).__name__}: {_first_line(e)}")
            return None


def base_outcome(operation: str) -> dict[str, Any]:
    """An outcome with every required key (runtime/worker_protocol.cpp's
    outcomeFromJson), kind completed."""
    return {"kind": "completed", "error_type": "", "message": "", "traceback": "",
            "oops_vars": {}, "operation": operation, "duration_us": 0,
            "release_delay_ms": 0, "committed": False, "lease_lost": False,
            "in_doubt": False, "result": None, "notified": False, "recycle": False}


def new_oops_id() -> str:
    """An OOPS id for a job's own notifyOops: OOPS- and 16 hex digits."""
    return "OOPS-" + secrets.token_hex(8)


# -- the worker ----------------------------------------------------------------

class Worker:
    """One worker process: the hello's settings, the section's callable,
    the job connection, and the threads that read frames and send progress."""

    def __init__(self, hello: dict[str, Any], channel: Channel) -> None:
        section = hello["section"]
        options = section.get("handler_options") or {}
        self.channel = channel
        self.owner = str(hello["owner"])
        self.section_name = str(section.get("name", ""))
        self.timeout_ms = int(section["timeout_ms"])
        # The section's max_retries wins over the class's and the row's, as
        # in the daemon's outcome recorder (None: not set).
        self.section_max_retries = section.get("max_retries")
        self.module_name = str(options.get("module", ""))
        self.callable_name = str(options.get("callable") or "make_job")
        idle_limit = self.timeout_ms + int(section.get("kill_grace_ms", 0)) + 5000
        self.db = JobConnection(str(hello.get("job_conninfo", hello.get("conninfo", ""))),
                                bool(hello.get("pooled", False)), idle_limit, _log.error)
        self.factory: Callable[[JobContext], Any] | None = None
        self.factory_error: BaseException | None = None
        self.throttle = ProgressThrottle(self._send_progress)
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.replies: queue.Queue[bool | None] = queue.Queue()
        self.exit_code = 0
        self._state = threading.Lock()
        self._current: JobContext | None = None
        self._timer_live = False
        self._timed_out = False
        self._previous_alarm: Any = None
        self._stopping = False  # stop_cancelled has begun
        self._cancel_trace = ""  # where a cancelled job was stopped

    # -- start-up --------------------------------------------------------
    def load(self) -> None:
        """Import the section's module and find its callable. A failure is
        kept: every job is then an OOPS saying why, and the worker asks
        to be replaced."""
        try:
            if not self.module_name:
                raise ImportError("the section has no module (runner = python needs "
                                  "`module = package.module`)")
            module = importlib.import_module(self.module_name)
            factory = functools.reduce(getattr, self.callable_name.split("."), module)
            if not callable(factory):
                raise TypeError(f"{self.module_name}.{self.callable_name} is not callable "
                                f"(it is {type(factory).__name__})")
            self.factory = factory
        except Exception as e:
            self.factory_error = e
            _log.error(f"cannot import {self.module_name}: {type(e).__name__}: "
                       f"{_first_line(e)}; every job will fail with an OOPS saying so")

    def start_reader(self) -> None:
        threading.Thread(target=self._read_frames, name="jobd-reader", daemon=True).start()

    # -- the reader thread ---------------------------------------------------
    def _read_frames(self) -> None:
        _leave_signals_to_the_main_thread()
        try:
            while (message := self.channel.read()) is not None:
                op = message["op"]
                if op == "job":
                    if not isinstance(message.get("job"), dict):
                        raise ProtocolError("a job frame without a job object")
                    self.jobs.put(message["job"])
                elif op == "may_commit":
                    self.replies.put(message.get("ok") is True)
                elif op == "cancel":
                    self._cancel(message.get("job_id"))
                else:
                    raise ProtocolError(f"an unexpected frame \"{op}\"")
            _log.debug("the daemon closed the socket; stopping after the current job")
        except (ProtocolError, OSError) as e:
            _log.error(f"worker protocol: {_first_line(e)}; stopping after the current job")
            self.exit_code = 1
        finally:
            self.jobs.put(None)
            self.replies.put(None)

    def _cancel(self, job_id: Any) -> None:
        """The daemon stopped a job: JobCancelled in the job's thread."""
        with self._state:
            context = self._current
            if context is None or context.id != job_id or context._cancelled:
                _log.debug(f"cancel of job {job_id}, which is not running here: ignored")
                return
            context._cancelled = True
            # At the main thread's next bytecode. A call blocked in the
            # kernel (time.sleep, a socket read) runs no bytecode until it
            # returns: the daemon's SIGTERM, a second later, interrupts it
            # (on_sigterm).
            _async_raise_in_main(JobCancelled)
        _log.debug(f"job {job_id}: cancelled by the daemon")
        self.replies.put(None)  # wakes a wait for may_commit
        self.db.cancel_query()  # ends a query the job is waiting for

    # -- signals ---------------------------------------------------------------
    def on_sigterm(self, signum: int, frame: Any) -> None:
        """The daemon's SIGTERM (a second after a cancel, or at its
        shutdown): stop the job as for a cancel, also inside a call blocked
        in the kernel. A second SIGTERM kills (the default action)."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if self._stopping:
            return  # JobCancelled is being handled already
        _async_raise_in_main(None)  # this one replaces a cancel's pending one
        context = self._current
        if context is not None:
            context._cancelled = True
        raise JobCancelled("stopped by SIGTERM")

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self._timer_live:
            self._timer_live = False
            self._timed_out = True  # a job that swallows this still times out
            raise JobTimedOut("the job ran past its lease_duration")

    # -- the main loop ---------------------------------------------------------
    def serve(self) -> int:
        """Run jobs until the socket closes; returns the exit status. A
        cancelled job ends the process here (no return)."""
        try:
            while (job := self.jobs.get()) is not None:
                if not self._run_one(job):
                    break
            return self.exit_code
        except JobCancelled:
            self.stop_cancelled()
        except SystemExit as e:
            self._stop_exited(e)
        except ProtocolError as e:  # a job frame it cannot read: nothing to answer
            _log.error(f"worker protocol: {_first_line(e)}; stopping")
            return 1

    def stop_cancelled(self) -> NoReturn:
        """The end of a cancelled job: roll its transaction back and exit,
        sending no outcome (the daemon records one)."""
        self._stopping = True
        for _ in range(3):
            try:
                _async_raise_in_main(None)  # one still pending would hit the rollback
                self._disarm_timer()
                context = self._current
                if context is not None:
                    context._over = True
                    _log.debug(f"job {context.id}: stopped; rolling back and exiting")
                    # Where the job was: the daemon keeps this stderr's tail
                    # as the traceback of its TimeoutError OOPS.
                    if self._cancel_trace:
                        sys.stderr.write(self._cancel_trace)
                self.db.rollback()
                self.db.close()
                break
            except JobCancelled:
                continue
        _flush_and_exit(0)

    def _stop_exited(self, exit: SystemExit) -> NoReturn:
        code = exit.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        context = self._current
        where = f"job {context.id}" if context is not None else "the worker"
        _log.error(f"{where} called sys.exit({code!r}); rolling back and exiting")
        self._disarm_timer()
        self.db.rollback()
        self.db.close()
        _flush_and_exit(status)

    def _run_one(self, job: dict[str, Any]) -> bool:
        """Run one job and send its outcome; False when the daemon has gone."""
        context = self._context_for(job)
        with self._state:
            self._current = context
        self.throttle.begin()
        _log.debug(f"job {context.id} ({context.job_type}) attempt {context.attempt}: started")
        outcome = self._execute(context)
        context._over = True
        left = self.throttle.take()
        with self._state:
            if context._cancelled:
                raise JobCancelled()
            self._current = None
        try:
            if left:
                self._send_progress(left)
            outcome.pop("_described", None)
            self.channel.send({"op": "outcome", "outcome": outcome})
        except (OSError, ProtocolError) as e:
            _log.error(f"job {context.id}: cannot send its outcome ({_first_line(e)}); "
                       "stopping")
            self.exit_code = 1
            return False
        _log.debug(f"job {context.id}: {outcome['kind']} after "
                   f"{outcome['duration_us'] / 1e6:.3f} s")
        return True

    def _context_for(self, job: dict[str, Any]) -> JobContext:
        try:
            checkpoint = None
            if job.get("checkpoint") is not None:
                try:
                    checkpoint = json.loads(job["checkpoint"])
                except ValueError as e:
                    _log.error(f"job {job['id']}: its checkpoint is not JSON ({e}); "
                               "starting without it")
            context = JobContext(int(job["id"]), str(job["job_type"]), None,
                                 section=str(job.get("section", self.section_name)),
                                 attempt=int(job["attempt"]),
                                 max_retries=int(job["max_retries"]),
                                 priority=int(job.get("priority", 0)), target=job.get("target"),
                                 checkpoint=checkpoint, max_payload=int(job["max_result"]),
                                 connect=self.db.get, progress=self.throttle.report)
            # Parsed when the job starts: data that is not JSON is its OOPS.
            context._json_data = str(job.get("json_data") or "{}")
            return context
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"a job frame without a valid {e}") from e

    def _send_progress(self, update: dict[str, Any]) -> None:
        self.channel.send(progress_frame(update))

    # -- one job -----------------------------------------------------------------
    def _execute(self, context: JobContext) -> dict[str, Any]:
        """Run the job and say what became of it. Raises JobCancelled
        (stopped) and SystemExit (the job called sys.exit); every other
        failure is the outcome."""
        outcome = base_outcome(f"running a {context.job_type} job")
        if self.factory is None:
            error = self.factory_error or ImportError("no callable")
            outcome.update(kind="oops", error_type=type(error).__name__,
                           message=f"cannot import {self.module_name}: {error}",
                           traceback=_traceback_of(error), recycle=True)
            return outcome
        job_object: JobObject | None = None
        started = time.monotonic()
        error: BaseException | None = None
        try:
            if context._json_data is not None:
                context.data = json.loads(context._json_data)
            job_object = JobObject(self.factory(context), context)
            outcome["operation"] = job_object.operation
            started = time.monotonic()
            self._arm_timer(job_object.lease_seconds)
            try:
                job_object.run()
            finally:
                self._disarm_timer()
        except BaseException as e:
            error = e
        outcome["duration_us"] = int((time.monotonic() - started) * 1e6)
        if self._timed_out and not isinstance(error, JobTimedOut):
            # run() caught JobTimedOut and went on: it still ran too long,
            # and its work never commits.
            error = JobTimedOut("the job ran past its lease_duration")
        self._timed_out = False
        if context._cancelled or isinstance(error, JobCancelled):
            if error is not None:
                try:
                    self._cancel_trace = _traceback_of(error)
                except BaseException:  # a second cancel while formatting
                    pass
            raise JobCancelled() from error
        if isinstance(error, SystemExit):
            raise error
        if context._connect_failed is not None:
            return self._released(context, outcome, context._connect_failed)
        if error is None:
            try:
                result = context._result_text()
            except JsonValueError as e:
                return self._failed(context, job_object, outcome, "oops",
                                    "Result" + e.reason, str(e), "", None)
            # A completion needs none of what _describe reads (OOPS vars,
            # recipients, retry settings): the common path skips the calls.
            return self._complete(context, job_object, outcome, result)
        return self._classify(context, job_object, outcome, error)

    def _describe(self, outcome: dict[str, Any], job_object: JobObject) -> None:
        """What every outcome but a completion carries from the job object
        (_failed calls it; once per outcome)."""
        if outcome.get("_described"):
            return
        outcome["_described"] = True
        outcome["oops_vars"] = job_object.oops_vars()
        recipients = job_object.recipients()
        if recipients is not None:
            outcome["recipients"] = recipients
        if job_object.max_retries is not None:
            outcome["max_retries"] = job_object.max_retries
        if job_object.retry_delay_ms is not None:
            outcome["retry_delay_ms"] = job_object.retry_delay_ms

    def _classify(self, context: JobContext, job_object: JobObject | None,
                  outcome: dict[str, Any], error: BaseException) -> dict[str, Any]:
        """Launchpad's mapping of what run() raised (SPEC §5)."""
        name = type(error).__name__
        if isinstance(error, JobTimedOut):
            outcome["recycle"] = True  # stopped at any bytecode: its state is suspect
            return self._failed(context, job_object, outcome, "timeout", "TimeoutError",
                                "Job ran too long.", _traceback_of(error), error)
        if isinstance(error, SuspendJob):
            return self._failed(context, job_object, outcome, "suspended", name, str(error),
                                "", error)
        if isinstance(error, RateLimited):
            outcome["release_delay_ms"] = round(error.retry_after * 1000)
            return self._failed(context, job_object, outcome, "rate_limited", name, str(error),
                                "", error)
        if job_object is not None and job_object.retry_error_types and \
                isinstance(error, job_object.retry_error_types):
            return self._failed(context, job_object, outcome, "retry", name, str(error),
                                _traceback_of(error), error)
        if job_object is not None and job_object.user_error_types and \
                isinstance(error, job_object.user_error_types):
            return self._failed(context, job_object, outcome, "user_error", name, str(error),
                                "", error)
        return self._failed(context, job_object, outcome, "oops", name, str(error),
                            _traceback_of(error), error)

    def _failed(self, context: JobContext, job_object: JobObject | None,
                outcome: dict[str, Any], kind: str, error_type: str, message: str,
                trace: str, error: BaseException | None) -> dict[str, Any]:
        """An outcome other than completed: the work is rolled back, and the
        job's own notifyUserError or notifyOops, if it has one, is told."""
        self.db.rollback()
        outcome.update(kind=kind, error_type=error_type, message=message, traceback=trace,
                       result=None)
        if job_object is not None:
            self._describe(outcome, job_object)
            if kind == "user_error" and error is not None:
                self._notify_user_error(context, job_object, outcome, error)
            elif kind in ("oops", "timeout") or (kind == "retry" and
                                                 not self._attempts_remain(context, outcome)):
                self._notify_oops(context, job_object, outcome)
            if self.db.in_transaction:  # a hook used the connection
                self.db.rollback()
        return outcome

    def _attempts_remain(self, context: JobContext, outcome: dict[str, Any]) -> bool:
        """Whether a retry requeues the job (core/retry_policy.hpp), with the
        class's max_retries over the row's."""
        if self.section_max_retries is not None:
            return context.attempt <= int(self.section_max_retries)
        return context.attempt <= outcome.get("max_retries", context.max_retries)

    def _notify_user_error(self, context: JobContext, job_object: JobObject,
                           outcome: dict[str, Any], error: BaseException) -> None:
        hook = _own_hook(job_object.obj, "notifyUserError")
        if hook is None:
            return
        try:
            hook(error)
            outcome["notified"] = True
        except (Exception, KeyboardInterrupt) as e:  # not JobCancelled, SystemExit
            _log.error(f"job {context.id}: notifyUserError failed, jobd sends its own notice: "
                       f"{type(e).__name__}: {_first_line(e)}")

    def _notify_oops(self, context: JobContext, job_object: JobObject,
                     outcome: dict[str, Any]) -> None:
        hook = _own_hook(job_object.obj, "notifyOops")
        if hook is None:
            return
        oops_id = new_oops_id()
        outcome["oops_id"] = oops_id  # the OOPS keeps the id the job was told
        try:
            hook({"id": oops_id, "type": outcome["error_type"], "value": outcome["message"],
                  "traceback": outcome["traceback"]})
            outcome["notified"] = True
        except (Exception, KeyboardInterrupt) as e:  # not JobCancelled, SystemExit
            _log.error(f"job {context.id}: notifyOops failed, jobd sends its own notice: "
                       f"{type(e).__name__}: {_first_line(e)}")

    def _released(self, context: JobContext, outcome: dict[str, Any],
                  error: BaseException) -> dict[str, Any]:
        """The job's connection could not be opened: give the job back."""
        self.db.rollback()
        _log.error(f"job {context.id}: {_first_line(error)}; releasing the job")
        outcome.update(kind="released", error_type="ConnectFailed", message=_first_line(error),
                       traceback="", release_delay_ms=RELEASE_DELAY_MS, result=None)
        return outcome

    def _complete(self, context: JobContext, job_object: JobObject | None,
                  outcome: dict[str, Any], result: str | None) -> dict[str, Any]:
        """run() returned. Without database work the daemon writes the
        COMPLETED mark; with it, the mark is written in the job's own
        transaction, which commits only while the daemon holds the lease."""
        outcome["result"] = result
        if not context._connection_used:
            return outcome
        if not self.db.in_transaction or self.db.broken():
            self.db.close()
            return self._failed(context, job_object, outcome, "retry", "ConnectionLost",
                                "lost the job's database connection", "", None)
        self.channel.send({"op": "may_commit"})
        ok = self.replies.get()
        if context._cancelled:
            raise JobCancelled()
        if ok is not True:
            # The lease is gone (or the daemon is): nothing may be written.
            self.db.rollback()
            outcome["lease_lost"] = True
            return outcome
        driver = self.db.driver
        assert driver is not None
        try:
            cursor = driver.cursor(self.db.conn)
            cursor.execute(_MARK, (context.id, context.attempt, self.owner, result))
            marked = bool(cursor.fetchone()[0])
            cursor.close()
        except Exception as e:
            return self._commit_failed(context, job_object, outcome, e, at_commit=False)
        if not marked:
            self.db.rollback()
            outcome["lease_lost"] = True
            return outcome
        try:
            self.db.conn.commit()
        except Exception as e:
            return self._commit_failed(context, job_object, outcome, e, at_commit=True)
        self.db.job_ended()
        outcome["committed"] = True
        return outcome

    def _commit_failed(self, context: JobContext, job_object: JobObject | None,
                       outcome: dict[str, Any], error: Exception,
                       at_commit: bool) -> dict[str, Any]:
        """The COMPLETED mark or the COMMIT failed. A lost connection at
        COMMIT leaves the outcome unknown (in doubt: nothing may be
        written, the lease decides); an error the server sent means the
        work was rolled back, and its SQLSTATE chooses the outcome."""
        driver = self.db.driver
        state = driver.sqlstate(error) if driver is not None else None
        lost = (state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
                or self.db.broken())
        if lost:
            self.db.close()
            if at_commit:
                _log.error(f"job {context.id}: the connection was lost during COMMIT "
                           f"({_first_line(error)}); its outcome is in doubt")
                outcome.update(in_doubt=True)
                return outcome
            return self._failed(context, job_object, outcome, "retry", "ConnectionLost",
                                f"lost the job's database connection: {_first_line(error)}",
                                "", None)
        kind = "retry" if state.startswith("40") else "oops"
        return self._failed(context, job_object, outcome, kind, f"SqlState{state}",
                            _first_line(error), _traceback_of(error), None)

    # -- lease_duration --------------------------------------------------------
    def _arm_timer(self, seconds: float | None) -> None:
        """Launchpad's per-job limit, when shorter than the section's timeout."""
        if seconds is None or seconds * 1000 >= self.timeout_ms:
            return
        previous = signal.signal(signal.SIGALRM, self._on_alarm)
        # SIG_DFL is 0: keep "nothing to restore" (None) apart from it.
        self._previous_alarm = signal.SIG_DFL if previous is None else previous
        self._timer_live = True
        signal.setitimer(signal.ITIMER_REAL, seconds)

    def _disarm_timer(self) -> None:
        if self._previous_alarm is None:
            return
        self._timer_live = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        previous, self._previous_alarm = self._previous_alarm, None
        signal.signal(signal.SIGALRM, previous)


# -- start-up ------------------------------------------------------------------

def _apply_memory_limit(limit: Any) -> None:
    if limit is None:
        return
    resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


def main() -> int:
    """The worker process; its exit status."""
    _die_with_parent()
    # A crash (SIGSEGV in an extension, SIGABRT) leaves the Python stacks on
    # stderr, whose tail the daemon keeps as the crashed job's traceback.
    faulthandler.enable(file=sys.stderr, all_threads=True)
    try:
        sock = socket.socket(fileno=SOCKET_FD)
    except OSError as e:
        _log.error(f"descriptor {SOCKET_FD} is not a socket ({e}): jobd.worker is started by "
                   "`jobd serve` for a runner = python section, not by hand")
        return 2
    channel = Channel(sock)
    try:
        hello = channel.read()
    except (ProtocolError, OSError) as e:
        _log.error(f"worker protocol: {_first_line(e)}")
        return 1
    if hello is None:
        return 0  # the daemon went before it said hello
    if hello.get("op") != "hello":
        _log.error(f"worker protocol: the first frame is \"{hello.get('op')}\", not hello")
        return 1
    try:
        daemon_pid = int(hello["daemon_pid"])
        _log.debug_enabled = hello.get("log_level") in ("trace", "debug")
        if os.getppid() != daemon_pid:
            return 1  # the daemon died before PR_SET_PDEATHSIG took effect
        memory_limit = hello["section"].get("memory_limit")
        worker = Worker(hello, channel)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        _log.error(f"worker protocol: a hello frame without a valid {e}")
        return 1
    try:
        _apply_memory_limit(memory_limit)
    except (OSError, ValueError, TypeError) as e:
        _log.error(f"cannot set memory_limit ({memory_limit!r} bytes): {e}")
        return 1
    # Keep the socket from the programs jobs run.
    fcntl.fcntl(SOCKET_FD, fcntl.F_SETFD, fcntl.fcntl(SOCKET_FD, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
    _log.debug(f"started for section {worker.section_name} ({worker.module_name}."
               f"{worker.callable_name})")
    worker.load()
    if worker.factory is None:
        # The daemon gives the job it sent back (released, attempt kept)
        # and logs this stderr: a deployment mistake fails no job.
        error = worker.factory_error
        _log.error(f"cannot start: {type(error).__name__}: {error}; traceback: "
                   f"{_traceback_of(error) if error is not None else ''}")
        _flush_and_exit(3)
    try:
        channel.send({"op": "ready"})
    except (OSError, ProtocolError):
        return 1
    signal.signal(signal.SIGTERM, worker.on_sigterm)
    worker.start_reader()
    try:
        code = worker.serve()
    except JobCancelled:  # a SIGTERM at the very end of a job
        worker.stop_cancelled()
    _log.debug("stopping")
    _flush_and_exit(code)


if __name__ == "__main__":
    sys.exit(main())
