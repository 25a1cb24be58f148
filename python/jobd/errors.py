"""The exceptions jobd's Python client raises.

Every one of them is a :class:`JobdError`, so ``except jobd.JobdError``
catches whatever this package itself decided to raise. Errors of the
database driver (a lost connection, a failed statement) are the driver's
own exceptions and pass through unchanged: inside a web request they mean
the caller's transaction is in trouble, which is the caller's to handle.
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:  # pragma: no cover
    from .waiting import Result


class JobdError(Exception):
    """The base of every exception raised by the jobd package."""


class PayloadError(JobdError, ValueError):
    """A job's data cannot be stored as JSON in ``jobd.job.json_data``.

    Raised by :func:`jobd.enqueue` and :func:`jobd.acquire` before anything
    is sent to the database, so the caller's transaction is untouched:
    the data holds a value ``json.dumps`` cannot write (a set, a datetime,
    bytes), a float that is not a number (NaN, infinity: not JSON), a
    cycle, or a string holding U+0000, which PostgreSQL's jsonb cannot
    store. It is also a :class:`ValueError`.
    """


class JobNotFound(JobdError):
    """There is no job with that id, or it was deleted while being waited for.

    ``job_id`` is the id that was asked about.
    """

    def __init__(self, job_id: int, message: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message or f"no job with id {job_id} (or it was deleted)")

    def __reduce__(self) -> tuple:
        # Exception's own would call JobNotFound(message): the constructor's
        # arguments instead, so that a copy survives pickling (a worker
        # process's exception sent back to its parent).
        return type(self), (self.job_id, self.args[0] if self.args else None), self.__dict__


class JobFailed(JobdError):
    """The job that :func:`jobd.wait` waited for ended FAILED.

    ``result`` is the :class:`jobd.Result` read at the end (its ``status``
    is ``"FAILED"`` and its ``log`` the job's log); the message carries
    the log's last line, as ``jobd wait`` prints it.
    """

    def __init__(self, result: "Result") -> None:
        self.result = result
        line = result.last_log_line
        super().__init__(f"job {result.job_id} FAILED" + (f": {line}" if line else ""))

    def __reduce__(self) -> tuple:
        return type(self), (self.result,), self.__dict__

    @property
    def job_id(self) -> int:
        """The id of the job that failed."""
        return self.result.job_id


class WaitTimeout(JobdError):
    """The job had not finished when :func:`jobd.wait`'s timeout passed.

    ``job_id``, ``timeout`` (seconds, as given) and ``status`` (the job's
    status when the wait gave up, such as ``"RUNNING"``, or ``None`` when
    its row stayed locked throughout and could not be read) say what was
    seen. The job itself is untouched: wait again to go on waiting.
    """

    def __init__(self, job_id: int, timeout: float, status: str | None) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.status = status
        if status is None:
            what = "was still locked"
        else:
            what = f"is still {status}"
        super().__init__(f"job {job_id} {what} after {timeout:g} s")

    def __reduce__(self) -> tuple:
        return type(self), (self.job_id, self.timeout, self.status), self.__dict__
