"""jobd's Python client: enqueue jobs from an application, and wait for them.

jobd runs background jobs stored in PostgreSQL (the ``jobd`` daemon in
this repository). An application enqueues a job with one statement in its
own transaction, and the job exists once that transaction commits::

    import jobd

    job_id = jobd.enqueue(conn, "email", {"to": ["a@example.com"], "subject": "Hi"})
    conn.commit()                 # the caller commits, never jobd
    result = jobd.wait("dbname=app", job_id, timeout=30)

- :func:`enqueue`, :func:`acquire`: on any DB-API 2 connection, in the
  caller's transaction (``jobd.enqueue`` and ``jobd.acquire`` in SQL).
- :func:`wait`: block until a job is COMPLETED or FAILED, woken by a
  notification (``jobd.watch`` in SQL), and return its :class:`Result`.
- :mod:`jobd.errors`: :class:`JobdError` and its subclasses.
- :mod:`jobd.job`: writing the jobs themselves, for a ``runner = python``
  section (run by :mod:`jobd.worker`): :class:`JobContext`,
  :class:`BaseRunnableJob`, :class:`SuspendJob`, :class:`JobCancelled`.

The standard library is all it needs; :func:`wait` and a job's
``context.connection`` also need psycopg 3 or psycopg2.
"""

from .client import acquire, close_batch, create_batch, enqueue, payload_json
from .errors import JobdError, JobFailed, JobNotFound, PayloadError, WaitTimeout
from .job import (
    BaseRunnableJob,
    ConnectFailed,
    JobCancelled,
    JobContext,
    JobTimedOut,
    RateLimited,
    SuspendJob,
    SuspendJobException,
)
from .waiting import STATUS_NAMES, Result, wait

__version__ = "0.1.0"

__all__ = [
    "BaseRunnableJob",
    "ConnectFailed",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobNotFound",
    "JobTimedOut",
    "JobdError",
    "PayloadError",
    "RateLimited",
    "Result",
    "STATUS_NAMES",
    "SuspendJob",
    "SuspendJobException",
    "WaitTimeout",
    "acquire",
    "close_batch",
    "create_batch",
    "enqueue",
    "payload_json",
    "wait",
]
