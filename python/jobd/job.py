"""Writing jobs in Python: what a ``runner = python`` section runs.

A section of ``jobd.conf`` with ``runner = python`` and ``module =
app.jobs`` starts long-lived Python workers (``python3 -m jobd.worker``)
that import ``app.jobs`` once and, for each job, call its ``make_job``
(the section's ``callable``) with a :class:`JobContext`. That returns the
job object, whose ``run()`` does the work, Launchpad's ``IRunnableJob``::

    from jobd.job import BaseRunnableJob, SuspendJob

    class RecordKarmaJob(BaseRunnableJob):
        user_error_types = (NegativeKarma,)
        retry_error_types = (TransientError,)
        max_retries = 3

        def run(self):
            cursor = self.context.connection.cursor()
            cursor.execute("INSERT INTO karma_event (person, points) VALUES (%s, %s)",
                           (self.context.data["person"], self.context.data["points"]))

    def make_job(context):
        return RecordKarmaJob(context)

What ``run()`` does decides the job's outcome (SPEC §5): returning
completes it; an exception of ``user_error_types`` fails it as a user
error; one of ``retry_error_types`` retries it; :class:`SuspendJob`
suspends it; anything else fails it with an OOPS. Work done on
``context.connection`` commits with the job's COMPLETED mark, in the same
transaction, and is rolled back on every other outcome.

Nothing here imports a database driver: ``context.connection`` does, when
a job first asks for it.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any, Callable, Mapping

__all__ = [
    "BaseRunnableJob",
    "ConnectFailed",
    "JobCancelled",
    "JobContext",
    "JobTimedOut",
    "JsonValueError",
    "RateLimited",
    "SuspendJob",
    "SuspendJobException",
]

#: The longest progress message kept, in characters (jobd.job_progress).
MAX_PROGRESS_MESSAGE = 200
#: The deepest nesting of a checkpoint or result jobd accepts (the
#: daemon's parser checks the same bound).
MAX_JSON_DEPTH = 64
# The largest checkpoint or result when the job's frame names no bound.
_DEFAULT_MAX_PAYLOAD = 1 << 20

# A \u0000 escape that json.dumps wrote for a NUL character (preceded by an
# even number of backslashes, so not the text "\\u0000" of a string).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# A lone surrogate, which UTF-8 (and so PostgreSQL's text) cannot hold.
_SURROGATE = re.compile("[\ud800-\udfff]")


class SuspendJob(Exception):
    """Raised by a job's ``run()`` to have the job SUSPENDED.

    Launchpad's ``SuspendJobException``. The job's database work is rolled
    back, and it waits, SUSPENDED, until an operator resumes it
    (``jobd resume``).
    """


#: Launchpad's name for :class:`SuspendJob`.
SuspendJobException = SuspendJob


class RateLimited(Exception):
    """Raised by a job's ``run()`` when a remote said "too many requests,
    retry after N seconds" (an HTTP 429 with ``Retry-After``).

    The job's database work is rolled back and it goes back to WAITING for
    ``retry_after`` seconds without spending an attempt; if its section has
    a limit by key (``limit_key``), the job's key starts no job before
    then, on any daemon.
    """

    def __init__(self, retry_after: float | datetime.timedelta, message: str = "") -> None:
        if isinstance(retry_after, datetime.timedelta):
            retry_after = retry_after.total_seconds()
        if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool) \
                or not 0 <= retry_after <= 30 * 86400:
            raise ValueError(f"retry_after must be 0 to 30 days in seconds, not {retry_after!r}")
        super().__init__(message or f"rate limited; retry after {retry_after:g} s")
        self.retry_after = float(retry_after)


class JobCancelled(BaseException):
    """jobd stopped the job: its timeout passed, its lease was lost, an
    operator cancelled it, or the daemon is draining.

    The worker raises it in the job's thread (the main thread) and sets
    :attr:`JobContext.cancelled`. It is a :class:`BaseException`, so that a
    job's ``except Exception`` does not swallow it; a job that catches it
    anyway is killed after the section's ``kill_grace``. The job's
    transaction is rolled back and the worker exits; the daemon records
    the outcome (timeout, or the attempt given back).
    """


class JobTimedOut(BaseException):
    """The job ran past its class's ``lease_duration`` (Launchpad's
    per-job time limit), which the worker enforces when it is shorter than
    the section's ``timeout``. The outcome is jobd's ``TimeoutError`` "Job
    ran too long.". A :class:`BaseException`, like :class:`JobCancelled`.
    """


class ConnectFailed(BaseException):
    """``JobContext.connection`` could not open the job's database
    connection (the database is down, the section's ``dbuser`` cannot log
    in). No fault of the job: the worker gives the job back, to run again
    a few seconds later without spending an attempt, whatever ``run()``
    does with this exception.
    """


class JsonValueError(ValueError):
    """A checkpoint or result jobd cannot store. ``reason`` says why, as
    the last part of jobd's error type: ``NotJson`` (not JSON, NaN, a
    cycle, nested too deep), ``NotStorable`` (U+0000 or a lone surrogate,
    which jsonb refuses) or ``TooLarge`` (over ``max_payload``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _json_text(value: Any, what: str, limit: int) -> str:
    """``value`` as compact JSON text that jsonb can store, at most
    ``limit`` bytes. Raises :class:`JsonValueError` (a ValueError: a
    :class:`TypeError` of ``json.dumps`` becomes one too) saying why not."""
    if _too_deep(value, MAX_JSON_DEPTH):
        raise JsonValueError(f"jobd: the {what} is nested deeper than {MAX_JSON_DEPTH} levels",
                             "NotJson")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        # "Object of type set is not JSON serializable", "Out of range float
        # values are not JSON compliant", "Circular reference detected".
        raise JsonValueError(f"jobd: the {what} is not JSON: {e}", "NotJson") from e
    if _NUL_ESCAPE.search(text):
        raise JsonValueError(f"jobd: the {what} holds a string with the character U+0000, "
                             "which PostgreSQL's jsonb cannot store", "NotStorable")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise JsonValueError(f"jobd: the {what} holds a string that is not valid Unicode (a "
                             f"lone surrogate, {text[e.start]!r}); jsonb cannot store it",
                             "NotStorable") from e
    if size > limit:
        raise JsonValueError(f"jobd: the {what} is {size} bytes, over max_payload ({limit} "
                             "bytes)", "TooLarge")
    return text


def _too_deep(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` in ``value``
    (iteratively: a deep value must not exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth > limit:
                return True
            if id(item) in seen:
                continue  # a cycle: json.dumps says so
            seen.add(id(item))
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def storable_text(text: str) -> str:
    """``text`` with what PostgreSQL's text cannot hold (U+0000, lone
    surrogates) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))


class JobContext:
    """One job, as the worker hands it to the section's callable.

    The job's row: :attr:`id`, :attr:`job_type`, :attr:`section`,
    :attr:`attempt` (1 for the first run), :attr:`max_retries` (the row's),
    :attr:`priority`, :attr:`target`, :attr:`data` (``json_data``, parsed)
    and :attr:`checkpoint` (what an earlier attempt saved with
    :meth:`save_checkpoint`, parsed, or ``None``).

    What the job gives back: :attr:`result` (any JSON value: the job's
    result, ``jobd.wait`` returns it), :meth:`report_progress`,
    :meth:`save_checkpoint`; and its database work, on :attr:`connection`.

    Made by the worker; a job's own unit tests may make one by hand, with
    ``connect`` returning a connection of their test database.
    """

    def __init__(self, id: int, job_type: str, data: Any = None, *, section: str = "",
                 attempt: int = 1, max_retries: int = 0, priority: int = 0,
                 target: str | None = None, checkpoint: Any = None,
                 max_payload: int = _DEFAULT_MAX_PAYLOAD,
                 connect: Callable[[], Any] | None = None,
                 progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        """``connect``: called (each time the job reads :attr:`connection`)
        for the job's connection; ``progress``: called with each checked
        report, a dict of ``percent``, ``message`` and ``checkpoint`` (JSON
        text), each key only when reported."""
        self.id = id
        self.job_type = job_type
        self.section = section
        self.attempt = attempt
        self.max_retries = max_retries
        self.priority = priority
        self.target = target
        self.data = {} if data is None else data
        self.checkpoint = checkpoint
        self.max_payload = max_payload
        self._connect = connect
        self._progress = progress
        self._result: Any = None
        self._cancelled = False  # a plain bool: set from a signal handler too
        self._over = False
        self._connection_used = False
        self._connect_failed: ConnectFailed | None = None
        # The worker's: json_data as the daemon sent it, parsed into data
        # when the job starts (so that data that is not JSON is the job's OOPS).
        self._json_data: str | None = None

    def __repr__(self) -> str:
        return f"<JobContext id={self.id} job_type={self.job_type!r} attempt={self.attempt}>"

    @property
    def cancelled(self) -> bool:
        """Whether jobd has stopped the job (:class:`JobCancelled`): a job
        that loops may look at it and return early; its work is not
        committed either way."""
        return self._cancelled

    @property
    def result(self) -> Any:
        """The job's result: any value ``json.dumps`` writes, at most
        ``max_payload`` bytes as JSON; ``None`` (the default) for none.
        Checked when ``run()`` returns: a value that is not JSON fails the
        job with an OOPS (``ResultNotJson``, ``ResultTooLarge``,
        ``ResultNotStorable``)."""
        return self._result

    @result.setter
    def result(self, value: Any) -> None:
        self._result = value

    @property
    def connection(self) -> Any:
        """The job's own database connection: a DB-API 2 connection of
        psycopg 3 (or psycopg2 when psycopg 3 is not installed) to the
        daemon's database as the section's ``dbuser``, inside a transaction
        begun for this job.

        Opened at the first use and kept for the worker's later jobs. The
        worker commits the transaction together with the job's COMPLETED
        mark when ``run()`` returns, and rolls it back on any other
        outcome: never commit, roll back, close it or set autocommit on it
        yourself (a commit of your own would commit work without the job
        being marked done). Raises :class:`ConnectFailed` when it cannot
        be opened.
        """
        if self._over:
            raise RuntimeError(f"jobd: job {self.id} is over; its connection is gone")
        if self._connect is None:
            raise RuntimeError("jobd: this JobContext was made without a connection "
                               "(JobContext(..., connect=...))")
        try:
            conn = self._connect()
        except ConnectFailed as e:
            self._connect_failed = e
            raise
        self._connection_used = True
        return conn

    def report_progress(self, percent: float | None = None, message: str | None = None) -> None:
        """Report how far the job is: ``percent`` (a finite number, clamped
        to 0..100) and/or ``message`` (text, cut to 200 characters). Cheap
        to call often: at most one report a second reaches the database,
        the latest, and the last one before the outcome. Raises
        :class:`ValueError` (NaN, infinity) or :class:`TypeError`."""
        update: dict[str, Any] = {}
        if percent is not None:
            if isinstance(percent, bool) or not isinstance(percent, (int, float)):
                raise TypeError(f"jobd: percent must be a number, got {type(percent).__name__}")
            try:
                value = float(percent)
            except OverflowError:  # an int past float's range
                value = math.inf if percent > 0 else -math.inf
            if not math.isfinite(value):
                raise ValueError(f"jobd: percent must be a finite number, got {percent!r}")
            update["percent"] = min(100.0, max(0.0, value))
        if message is not None:
            if not isinstance(message, str):
                raise TypeError(f"jobd: message must be a str, got {type(message).__name__}")
            update["message"] = storable_text(message)[:MAX_PROGRESS_MESSAGE]
        if update:
            self._report(update)

    def save_checkpoint(self, value: Any) -> None:
        """Save where the job is, for a later attempt of it to read as
        :attr:`checkpoint` (a retried or rescued job resumes from there):
        any JSON value but ``None``, at most ``max_payload`` bytes as JSON.
        Throttled like :meth:`report_progress`; the last one saved before
        the outcome is kept. Raises :class:`ValueError` for a value that is
        not JSON or that jsonb cannot store."""
        if value is None:
            raise ValueError("jobd: a checkpoint cannot be None (save {} to clear one)")
        self._report({"checkpoint": _json_text(value, "checkpoint", self.max_payload)})

    def _report(self, update: dict[str, Any]) -> None:
        if self._over:
            raise RuntimeError(f"jobd: job {self.id} is over; it can report no more")
        if self._progress is not None:
            self._progress(update)

    def _result_text(self) -> str | None:
        """The result as compact JSON text, or None for no result; raises
        JsonValueError for one jobd cannot store."""
        if self._result is None:
            return None
        return _json_text(self._result, "result", self.max_payload)


def _default_operation(context: JobContext) -> str:
    return f"running a {context.job_type} job"


class BaseRunnableJob:
    """A base for job classes, with Launchpad's defaults.

    Optional: the worker takes any object with ``run()`` (duck typing), and
    reads each of the attributes below only if the object has it. Here:

    - ``user_error_types = ()``, ``retry_error_types = ()``: exception
      classes ``run()`` may raise that mean a user error, or a retry.
    - ``max_retries``: how many times a retry error requeues the job; set,
      it replaces the row's ``max_retries`` (Launchpad: the class wins),
      and the section's ``max_retries`` key still wins over it. ``None``
      (the default here): the section's or the row's.
    - ``retry_delay``: the wait before a retry (a ``timedelta`` or seconds;
      the section's ``retry_backoff`` still applies); ``None`` (the
      default): the section's ``retry_delay`` (10 minutes, Launchpad's).
    - ``lease_duration``: how long one run may take (Launchpad's lease is
      its time limit); the worker stops ``run()`` at it when it is shorter
      than the section's ``timeout``. ``None`` (the default): the section's
      ``timeout`` only (5 minutes, Launchpad's lease).
    - :meth:`getOperationDescription`, :meth:`getOopsVars`,
      :meth:`getErrorRecipients`: what the OOPS and the notices say.
    - :meth:`notifyUserError`, :meth:`notifyOops`: a subclass that defines
      them sends its own notices, and jobd sends none; these defaults do
      nothing and leave the notices to jobd (SPEC §5).

    ``retry_delay`` and ``lease_duration`` may be a ``timedelta`` or a
    number of seconds, and any of these may be a property.
    """

    user_error_types: tuple[type[BaseException], ...] = ()
    retry_error_types: tuple[type[BaseException], ...] = ()
    max_retries: int | None = None
    retry_delay: datetime.timedelta | float | None = None
    lease_duration: datetime.timedelta | float | None = None

    def __init__(self, context: JobContext) -> None:
        self.context = context

    def __repr__(self) -> str:
        return f"<{type(self).__name__} job {self.context.id}>"

    def run(self) -> None:
        """Do the job. Subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")

    def getOperationDescription(self) -> str:
        """What the job does, for notices: ``running a <job_type> job``."""
        return _default_operation(self.context)

    def getOopsVars(self) -> list[tuple[str, Any]] | Mapping[str, Any]:
        """Variables recorded with an OOPS of this job (pairs or a dict)."""
        return [("job_id", self.context.id), ("job_type", self.context.job_type)]

    def getErrorRecipients(self) -> list[str]:
        """Addresses that get this job's notices, besides those in the
        job's ``json_data.notify`` and the section's ``error_recipients``."""
        return []

    def notifyUserError(self, error: BaseException) -> None:
        """Tell someone about a user error. This default does nothing, and
        jobd sends its own notice; override it to send your own instead."""

    def notifyOops(self, oops: Mapping[str, str]) -> None:
        """Tell someone about an OOPS (``oops["id"]``, ``"type"``,
        ``"value"``, ``"traceback"``). This default does nothing, and jobd
        sends its own notice; override it to send your own instead."""
