"""Waiting for a job to finish: the client side of ``jobd.watch``.

:func:`wait` does what ``jobd wait`` does (docs/schema.md, "Results and
waiting"): ``LISTEN jobd_finished``, committed; ``SELECT jobd.watch(id)``
in a transaction of its own with a ``lock_timeout`` of at most a second
(tried again within the timeout), so that it never holds the job's row
while it waits nor waits long behind a job's own transaction; then, unless
the job is COMPLETED or FAILED already, it sleeps on the connection's
socket until the notification whose payload is the job's id arrives, and
reads the job's status, log and result. Nothing polls: a job that
finishes wakes the waiter at the commit that finished it.

LISTEN needs a session of its own that is not inside a transaction, so
the connection is either one of psycopg2's or psycopg 3's in autocommit
mode, or is opened here from a conninfo string (psycopg 3 if installed,
else psycopg2) and closed at the end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any

from . import _drivers
from .errors import JobdError, JobFailed, JobNotFound, WaitTimeout

#: jobd.job.status values (SPEC §4.3), by number.
STATUS_NAMES = ("WAITING", "RUNNING", "COMPLETED", "FAILED", "SUSPENDED")
_FINISHED = ("COMPLETED", "FAILED")

# The longest a watch waits for the job's row lock before it is tried again.
_LOCK_WAIT = 1.0
_LOCK_NOT_AVAILABLE = "55P03"
_UNDEFINED_FUNCTION = "42883"
_UNDEFINED_SCHEMA = "3F000"


@dataclasses.dataclass(frozen=True)
class Result:
    """How a job ended, as :func:`jobd.wait` read it.

    - ``job_id``: the job's id.
    - ``status``: ``"COMPLETED"`` (or ``"FAILED"``, in
      :attr:`jobd.JobFailed.result`).
    - ``result``: the job's result from ``jobd.job_result``, parsed from
      JSON (dicts, lists, str, int, float, bool), or ``None`` when the job
      returned none.
    - ``log``: the job's log text (``jobd.job.log``), or ``None``.
    """

    job_id: int
    status: str
    result: Any
    log: str | None

    @property
    def last_log_line(self) -> str:
        """The last non-empty line of ``log`` (what ``jobd wait`` prints), or ``""``."""
        if not self.log:
            return ""
        return self.log.rstrip("\n").rpartition("\n")[2]


def wait(conn: Any, job_id: int, timeout: float | None = None) -> Result:
    """Block until job ``job_id`` is COMPLETED or FAILED, and say how it ended.

    ``conn`` is a psycopg2 or psycopg 3 connection in autocommit mode and
    not inside a transaction, or a conninfo string (``"dbname=app"``, a
    ``postgresql://`` URI, ``""`` for the ``PG*`` environment) from which
    a connection is opened and closed again. Use a session, not a
    transaction pooler such as PgBouncer: LISTEN needs one. On a
    connection passed in, a ``LISTEN jobd_finished`` that this call made is
    undone before it returns. Other notifications are left to the caller:
    psycopg2's ``conn.notifies`` keeps them (the job's own is taken off),
    and psycopg 3's notify handlers are called for every notification that
    comes meanwhile, the job's included.

    ``timeout`` is a finite number of seconds >= 0, counted from the call,
    so the time spent connecting counts: a connection opened from a
    conninfo string that sets no ``connect_timeout`` gets one of the time
    left, rounded up, at least 2 s (libpq's resolution). ``None`` waits as
    long as it takes (and leaves the conninfo as it is); ``0`` looks once.

    A SUSPENDED job is waited for until it finishes. Returns a
    :class:`Result` when the job is COMPLETED; raises
    :class:`jobd.JobFailed` (carrying the Result) when it is FAILED,
    :class:`jobd.JobNotFound` when there is no such job or it is deleted
    while waited for, :class:`jobd.WaitTimeout` when ``timeout`` passes
    first, and the driver's own exception when the connection is lost.
    """
    started = time.monotonic()
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise TypeError(f"jobd: job_id must be an int, got {type(job_id).__name__}")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"jobd: timeout must be a number of seconds or None, "
                            f"got {type(timeout).__name__}")
        try:
            finite = math.isfinite(timeout)
        except OverflowError:  # an int past float's range
            finite = False
        if not finite or timeout < 0:
            raise ValueError(f"jobd: timeout must be a finite number of seconds >= 0 "
                             f"(or None), got {timeout!r}")

    def left() -> float | None:
        return None if timeout is None else timeout - (time.monotonic() - started)

    if isinstance(conn, str):
        session = _drivers.open_session(conn, left())
    else:
        session = _drivers.session_for(conn)
    try:
        return _Waiter(session, job_id, timeout, left).run()
    finally:
        session.close()


class _Waiter:
    """One wait: the steps of :func:`wait` on a session."""

    def __init__(self, session: "_drivers.Session", job_id: int, timeout: float | None,
                 left: Any) -> None:
        self.session = session
        self.job_id = job_id
        self.timeout = timeout
        self.left = left

    def run(self) -> Result:
        # LISTEN before the job is asked about: a finish that commits
        # between the two is either seen by jobd.watch or heard.
        self.session.listen(str(self.job_id))
        status = self._watch()
        if status is None:
            raise JobNotFound(self.job_id)
        # jobd.watch sets the job's `waited` flag (so that the commit that
        # finishes it notifies) only when it finds the job unfinished; the
        # flag is never cleared.
        watched = status not in _FINISHED
        ending = None if watched else self._ending()
        while ending is None or ending.status not in _FINISHED:
            left = self.left()
            if left is not None and left <= 0:
                ending = self._ending()  # as it stands at the end
                if ending.status in _FINISHED:
                    break
                raise WaitTimeout(self.job_id, self.timeout, ending.status)
            if not watched:
                # Finished when watched, unfinished now (an operator's retry
                # committed in between): nothing notifies its next finish
                # unless jobd.watch marks it, so watch it again first.
                status = self._watch()
                if status is None:
                    raise JobNotFound(self.job_id)
                if status in _FINISHED:
                    ending = self._ending()
                else:
                    watched = True
                continue
            if self.session.await_notification(left):
                ending = self._ending()
        if ending.status == "FAILED":
            raise JobFailed(ending)
        return ending

    def _watch(self) -> str | None:
        """jobd.watch(id): the job's status name, or None for no such job."""
        while True:
            left = self.left()
            lock_wait = _LOCK_WAIT if left is None else max(0.001, min(left, _LOCK_WAIT))
            try:
                value = self.session.watch(self.job_id, lock_wait)
            except Exception as e:
                state = self.session.sqlstate(e)
                if state == _LOCK_NOT_AVAILABLE:
                    # The row stayed locked (a job's own transaction
                    # committing, an operator's command): once more,
                    # within the timeout.
                    left = self.left()
                    if left is not None and left <= 0:
                        raise WaitTimeout(self.job_id, self.timeout, None) from None
                    continue
                if state in (_UNDEFINED_FUNCTION, _UNDEFINED_SCHEMA):
                    raise JobdError(
                        "jobd: the database has no jobd.watch (jobd schema 16 or later; "
                        f"run `jobd migrate`): {str(e).strip()}") from e
                raise
            return None if value is None else STATUS_NAMES[value]

    def _ending(self) -> Result:
        """The job as it stands; JobNotFound if it is gone."""
        row = self.session.ending(self.job_id)
        if row is None:
            raise JobNotFound(self.job_id)
        status, log, result_text = row
        result = None if result_text is None else json.loads(result_text)
        return Result(self.job_id, STATUS_NAMES[status], result, log)

