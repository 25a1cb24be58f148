"""The example application's background jobs, in Launchpad's style.

jobd's ``runner = python`` sections (``jobd.conf`` beside this package)
import this module once per worker and call :func:`make_job` for each job
they claim. Each class is a ``jobd.job.BaseRunnableJob``: ``run()`` does the
work, and the class attributes say which exceptions are the user's fault
(``user_error_types``: the job FAILS, and the user is told why) and which
are worth another try (``retry_error_types``: the job is retried after
``retry_delay``, at most ``max_retries`` times). Anything else is a bug:
the job FAILS with an OOPS that the operators are told about.

Work done on ``self.context.connection`` commits together with the job's
COMPLETED mark, in one transaction, or not at all: a karma event is
recorded exactly once, however often the job is retried or rescued.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from typing import Any

from jobd.job import BaseRunnableJob, JobContext

# SQLSTATEs after which the same transaction may well succeed if tried
# again: serialization_failure and deadlock_detected.
TRANSIENT_SQLSTATES = ("40001", "40P01")
# HTTP statuses that mean "not now" rather than "never".
TRANSIENT_HTTP = (408, 425, 429)


class NegativeKarma(Exception):
    """A user error: karma events add points, they never take them away."""


class TransientError(Exception):
    """A retry error: the database or a remote service said "not now"."""


class WebhookRejected(Exception):
    """A user error: the webhook's server refused the notification (HTTP
    4xx), which trying again will not change."""


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg 3 or psycopg2 error, or None."""
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


class RecordKarmaJob(BaseRunnableJob):
    """Record a karma event: ``{"person": "mark", "points": 10}``.

    Writes through ``context.connection``, so the event and the job's
    COMPLETED mark commit together.
    """

    user_error_types = (NegativeKarma,)
    retry_error_types = (TransientError,)
    max_retries = 5
    retry_delay = timedelta(seconds=10)
    lease_duration = timedelta(minutes=1)

    def __init__(self, context: JobContext) -> None:
        super().__init__(context)
        self.person = str(context.data["person"])
        self.points = int(context.data["points"])

    def run(self) -> None:
        if self.points < 0:
            raise NegativeKarma(f"karma for {self.person} cannot be negative ({self.points})")
        cursor = self.context.connection.cursor()
        try:
            cursor.execute("INSERT INTO karma_event (person, points) VALUES (%s, %s) "
                           "RETURNING id", (self.person, self.points))
            (event_id,) = cursor.fetchone()
        except Exception as e:
            if _sqlstate(e) in TRANSIENT_SQLSTATES:
                raise TransientError(f"recording karma for {self.person}: {e}") from e
            raise
        finally:
            cursor.close()
        self.context.result = {"event": event_id, "person": self.person, "points": self.points}

    def getOperationDescription(self) -> str:
        return f"recording {self.points} karma for {self.person}"

    def getOopsVars(self) -> list[tuple[str, Any]]:
        return [*super().getOopsVars(), ("person", self.person), ("points", self.points)]


class NotifyWebhookJob(BaseRunnableJob):
    """POST ``json_data["payload"]`` as JSON to ``json_data["url"]``.

    A 4xx answer is a user error (the owner, ``json_data["owner_email"]``,
    is told); no answer, or a 5xx one, is retried every 30 seconds, three
    times. No database work: jobd writes the COMPLETED mark itself.
    """

    user_error_types = (WebhookRejected,)
    retry_error_types = (TransientError,)
    max_retries = 3
    retry_delay = timedelta(seconds=30)
    lease_duration = timedelta(seconds=60)
    #: Seconds to wait for the webhook's server.
    http_timeout = 20.0

    def __init__(self, context: JobContext) -> None:
        super().__init__(context)
        self.url = str(context.data["url"])

    def run(self) -> None:
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise WebhookRejected(f"{self.url} is not an http or https URL")
        body = json.dumps(self.context.data.get("payload", {})).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.http_timeout) as response:
                self.context.result = {"status": response.status}
        except urllib.error.HTTPError as e:  # before URLError: it is one
            if 400 <= e.code < 500 and e.code not in TRANSIENT_HTTP:
                raise WebhookRejected(f"{self.url} refused the notification: HTTP {e.code} "
                                      f"{e.reason}") from e
            raise TransientError(f"{self.url} answered HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise TransientError(f"cannot reach {self.url}: {e.reason}") from e
        except TimeoutError as e:
            raise TransientError(f"{self.url} did not answer within "
                                 f"{self.http_timeout:g} s") from e

    def getOperationDescription(self) -> str:
        return f"notifying {self.url}"

    def getErrorRecipients(self) -> list[str]:
        owner = self.context.data.get("owner_email")
        return [owner] if owner else []


#: The job classes by the job type they run (the jobd.conf sections').
JOB_CLASSES: dict[str, type[BaseRunnableJob]] = {
    "record_karma": RecordKarmaJob,
    "notify_webhook": NotifyWebhookJob,
}


def make_job(context: JobContext) -> BaseRunnableJob:
    """The section's callable: the job object for one claimed job."""
    try:
        job_class = JOB_CLASSES[context.job_type]
    except KeyError:
        raise LookupError(f"app.jobs has no job class for job type {context.job_type!r} "
                          f"(it knows {', '.join(sorted(JOB_CLASSES))})") from None
    return job_class(context)
