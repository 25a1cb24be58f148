"""`runner = python` end to end: the built jobd daemon, its long-lived
Python workers (python -m jobd.worker) and a real PostgreSQL (issue 20).

Each test serves job types of its own from one test module of job classes
(written to a temporary directory and put on the workers' path with the
section's `pythonpath`), and reads what became of its jobs in the database
and the daemon's log.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import textwrap
import time
from typing import Any, Iterator

import pytest

from conftest import REPOSITORY, Database
from daemon import Daemon, until, worker_pids

JOBS = textwrap.dedent('''
    """Job classes of the runner tests: json_data["do"] says what run() does."""
    import ctypes
    import os
    import time

    from jobd.job import BaseRunnableJob, RateLimited, SuspendJob

    HOARD = []


    class BadInput(Exception):
        pass


    class Transient(Exception):
        pass


    class TestJob(BaseRunnableJob):
        user_error_types = (BadInput,)
        retry_error_types = (Transient,)
        retry_delay = 0.2

        @property
        def max_retries(self):
            return self.context.data.get("max_retries", 0)

        def getOopsVars(self):
            return [("person", "mark"), ("job_id", self.context.id)]

        def getOperationDescription(self):
            return "testing " + self.context.data["do"]

        def getErrorRecipients(self):
            return self.context.data.get("recipients", [])

        def run(self):
            data = self.context.data
            do = data["do"]
            self.context.result = {"pid": os.getpid(), "attempt": self.context.attempt}
            if do == "complete":
                return
            if do == "insert":
                cursor = self.context.connection.cursor()
                cursor.execute("INSERT INTO effect (job_id, attempt, pid) VALUES (%s, %s, %s)",
                               (self.context.id, self.context.attempt, os.getpid()))
                if self.context.attempt == 1:
                    time.sleep(data.get("sleep_first", 0))
                if data.get("fail_after_insert"):
                    raise Transient("after the insert")
                return
            if do == "user":
                raise BadInput("the name is taken")
            if do == "retry":
                raise Transient("try again later")
            if do == "suspend":
                raise SuspendJob("waiting for review")
            if do == "rate_limited":
                left = data["until"] - time.time()
                if left > 0:
                    raise RateLimited(left)
                return
            if do == "oops":
                raise KeyError("no such branch")
            if do == "segfault":
                ctypes.string_at(0)
            if do == "ignore_cancel":
                while True:
                    try:
                        while True:
                            pass
                    except BaseException:
                        pass
            if do == "leak":
                HOARD.append(bytearray(data["mb"] << 20))
                for chunk in HOARD:  # touch it: resident, not just reserved
                    for i in range(0, len(chunk), 4096):
                        chunk[i] = 1
                return
            if do == "sleep":
                time.sleep(data["seconds"])
                return
            raise AssertionError("unknown do " + do)


    class OwnNoticeJob(TestJob):
        """Sends its own user-error notice: jobd sends none."""

        def notifyUserError(self, error):
            with open(self.context.data["notified_file"], "w") as out:
                out.write(str(error))


    def make_job(context):
        if "notified_file" in context.data:
            return OwnNoticeJob(context)
        return TestJob(context)
''')


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A directory holding the module `runnerjobs`."""
    directory = tmp_path_factory.mktemp("runnerapp")
    (directory / "runnerjobs.py").write_text(JOBS)
    return directory


@pytest.fixture
def fresh(db: Database) -> Iterator[Database]:
    """The test database with no jobs, and an empty table `effect` that
    jobs write to through their own transaction."""
    db.transaction(("CREATE TABLE IF NOT EXISTS effect (job_id bigint, attempt int, pid int)", ()),
                   ("TRUNCATE effect, jobd.job CASCADE", ()),
                   ("TRUNCATE jobd.oops", ()))
    yield db


def section(name: str, app: pathlib.Path, **keys: Any) -> str:
    lines = [f"[{name}]", "runner: python", "module: runnerjobs",
             f"pythonpath: {REPOSITORY / 'python'}:{app}"]
    lines += [f"{key}: {value}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


def config(*sections: str, **daemon_keys: Any) -> str:
    keys = {"poll_interval": "1s", "rescue_interval": "1s", **daemon_keys}
    head = "[jobd]\n" + "".join(f"{k}: {v}\n" for k, v in keys.items())
    return head + "".join(sections)


def enqueue(db: Database, job_type: str, data: dict, max_retries: int = 0) -> int:
    return db.value("SELECT jobd.enqueue(%s, %s::jsonb, max_retries => %s)", job_type,
                    json.dumps(data), max_retries)


def finished(db: Database, job_id: int, timeout: float = 30.0) -> tuple:
    """(status, log, attempt_count) once the job is no longer WAITING or RUNNING."""
    return until(lambda: next(iter(db.rows(
        "SELECT status, log, attempt_count FROM jobd.job WHERE id = %s AND status NOT IN (0, 1)",
        job_id)), None), timeout, f"job {job_id} to finish")


def result(db: Database, job_id: int) -> Any:
    return json.loads(db.value("SELECT result::text FROM jobd.job_result WHERE job_id = %s",
                               job_id))


@pytest.fixture
def daemons(tmp_path: pathlib.Path) -> Iterator[list]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def serve(daemons: list, db: Database, text: str, tmp_path: pathlib.Path) -> Daemon:
    daemon = Daemon(db, text, tmp_path, f"jobd{len(daemons)}")
    daemons.append(daemon)
    daemon.wait_ready()
    return daemon


def test_each_exception_class_becomes_its_outcome(fresh, app, tmp_path, daemons):
    """run() returns, raises a user error, a retry error (with and without
    attempts left), asks to suspend, or raises anything else: SPEC §5's
    outcomes, with the class's operation, OOPS vars, max_retries and
    retry_delay; one worker serves them all."""
    daemon = serve(daemons, fresh, config(section("py", app, concurrency=1)), tmp_path)
    ids = {do: enqueue(fresh, "py", {"do": do}) for do in
           ("complete", "user", "retry", "suspend", "oops")}
    retried = enqueue(fresh, "py", {"do": "retry", "max_retries": 2})

    assert finished(fresh, ids["complete"])[0] == 2
    assert result(fresh, ids["complete"])["attempt"] == 1

    status, log, _ = finished(fresh, ids["user"])
    assert (status, log) == (3, "the name is taken")
    assert fresh.rows("SELECT outcome, error_type FROM jobd.job_attempt WHERE job_id = %s",
                      ids["user"]) == [("user_error", "BadInput")]
    assert fresh.value("SELECT count(*) FROM jobd.oops WHERE job_id = %s", ids["user"]) == 0

    # No attempts left (the class's max_retries is 0): FAILED with an OOPS.
    status, log, _ = finished(fresh, ids["retry"])
    assert (status, log) == (3, "Transient: try again later")

    # The class's max_retries (2) replaces the row's (0), and its
    # retry_delay (0.2 s) the section's 10 minutes.
    status, log, attempts = finished(fresh, retried)
    assert (status, attempts) == (3, 3)
    assert fresh.value("SELECT string_agg(outcome, ',' ORDER BY attempt) FROM jobd.job_attempt "
                       "WHERE job_id = %s", retried) == "retry,retry,failed"
    assert daemon.wait_for_log("Scheduling retry due to Transient: try again later.")

    assert finished(fresh, ids["suspend"])[0] == 4

    status, log, _ = finished(fresh, ids["oops"])
    assert (status, log) == (3, "KeyError: 'no such branch'")
    oops_type, value, traceback, variables = fresh.rows(
        "SELECT type, value, traceback, vars FROM jobd.oops WHERE job_id = %s", ids["oops"])[0]
    assert (oops_type, value) == ("KeyError", "'no such branch'")
    assert 'raise KeyError("no such branch")' in traceback
    assert "Traceback (most recent call last)" in traceback
    assert variables["person"] == "mark"
    assert variables["job_id"] == str(ids["oops"])

    # One long-lived interpreter ran every attempt: nothing above replaced it.
    pids = {result(fresh, ids["complete"])["pid"]}
    assert worker_pids(daemon) == pids
    assert daemon.stop() == 0


def test_a_rate_limited_job_keeps_its_attempt_and_blocks_its_key(fresh, app, tmp_path, daemons):
    """run() raises RateLimited(retry_after) (a remote's 429): the job
    waits that long without spending an attempt, and its key under the
    section's limit starts nothing meanwhile; other keys run."""
    serve(daemons, fresh, config(section("py", app, concurrency=2, limit_key="data:host",
                                         limit_concurrency=5)), tmp_path)
    until_at = time.time() + 1.5
    limited = enqueue(fresh, "py", {"do": "rate_limited", "until": until_at, "host": "a"})
    assert until(lambda: fresh.value(
        "SELECT count(*) FROM jobd.job_attempt WHERE job_id = %s AND outcome = 'rate_limited'",
        limited) >= 1, 10, "the rate-limited attempt")
    same_key = enqueue(fresh, "py", {"do": "complete", "host": "a"})
    other_key = enqueue(fresh, "py", {"do": "complete", "host": "b"})
    assert finished(fresh, other_key)[0] == 2
    assert finished(fresh, same_key)[0] == 2
    status, log, attempts = finished(fresh, limited)
    assert (status, attempts) == (2, 1)
    started = dict(fresh.rows("SELECT id, extract(epoch FROM date_started)::float FROM jobd.job"))
    # The key was blocked until the retry_after had passed, on the job's
    # first refusal (the job itself may have been refused again).
    assert started[same_key] >= until_at - 0.2
    assert started[other_key] < until_at - 0.5
    assert fresh.rows("SELECT DISTINCT outcome, error_type FROM jobd.job_attempt "
                      "WHERE job_id = %s", limited) == [("rate_limited", "RateLimited")]


def test_notices_use_the_classs_words_and_recipients(fresh, app, tmp_path, daemons):
    """SPEC §5's notices for Python jobs, through a real SMTP server: the
    class's getOperationDescription() in Launchpad's words, its
    getErrorRecipients() beside json_data.notify and error_recipients; a
    class with its own notifyUserError gets no notice from jobd."""
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outbox = tmp_path / "mail"
    outbox.mkdir()
    smtp = subprocess.Popen(["/usr/bin/python3", str(REPOSITORY / "tests/support/smtp_server.py"),
                             str(port), str(outbox)], stdout=subprocess.PIPE, text=True)
    try:
        assert smtp.stdout is not None and smtp.stdout.readline().strip() == "ready"
        text = config(section("mailing", app, error_recipients="ops@example.com")) + (
            f"[mail]\nsmtp_url: smtp://127.0.0.1:{port}\nfrom_address: jobs@example.com\n"
            "product_name: Launchpad\n")
        daemon = serve(daemons, fresh, text, tmp_path)
        user = enqueue(fresh, "mailing", {"do": "user", "recipients": ["owner@example.com"]})
        assert finished(fresh, user)[0] == 3
        oops = enqueue(fresh, "mailing", {"do": "oops", "recipients": ["owner@example.com"]})
        assert finished(fresh, oops)[0] == 3
        notified = tmp_path / "notified"
        own = enqueue(fresh, "mailing", {"do": "user", "notified_file": str(notified),
                                          "notify": ["someone@example.com"]})
        assert finished(fresh, own)[0] == 3
        assert notified.read_text() == "the name is taken"

        def mails() -> list[dict]:
            return [json.loads(p.read_text()) for p in sorted(outbox.glob("*.json"))]

        until(lambda: len(mails()) >= 2, what="two notices")
        time.sleep(1)  # a third (there must be none) would have come by now
        sent = mails()
        assert len(sent) == 2, sent
        first, second = sent
        assert first["rcpt"] == ["owner@example.com"]
        assert "Subject: Launchpad error while testing user" in first["data"]
        assert ("Launchpad encountered an error during the following operation: testing user."
                "  the name is taken") in " ".join(first["data"].split("\n"))
        assert sorted(second["rcpt"]) == ["ops@example.com", "owner@example.com"]
        oops_id = fresh.value("SELECT id FROM jobd.oops WHERE job_id = %s", oops)
        body = " ".join(second["data"].replace("\r", "").split("\n"))
        assert "Subject: Launchpad internal error" in second["data"]
        assert "during the following operation: testing oops." in body, body
        assert f"It was logged with id {oops_id}." in body, body
        assert daemon.stop() == 0
    finally:
        smtp.kill()
        smtp.wait()


def test_a_job_that_ignores_the_cancel_request_is_killed_at_its_timeout(
        fresh, app, tmp_path, daemons):
    """A loop that swallows JobCancelled and the SIGTERM that follows is
    SIGKILLed after kill_grace: FAILED with the OOPS TimeoutError, and a
    new worker takes the next job."""
    daemon = serve(daemons, fresh, config(section("spin", app, timeout="2s", kill_grace="1s")),
                   tmp_path)
    job = enqueue(fresh, "spin", {"do": "ignore_cancel"})
    started = time.monotonic()
    status, log, _ = finished(fresh, job)
    took = time.monotonic() - started
    assert (status, log) == (3, "TimeoutError: Job ran too long.")
    assert 2.5 <= took < 15, took
    assert fresh.rows("SELECT outcome FROM jobd.job_attempt WHERE job_id = %s", job) == [
        ("timeout",)]
    assert fresh.value("SELECT value FROM jobd.oops WHERE job_id = %s", job) == "Job ran too long."
    after = enqueue(fresh, "spin", {"do": "complete"})
    assert finished(fresh, after)[0] == 2
    # A job blocked in C (time.sleep) is stopped by the SIGTERM after the
    # cancel; the OOPS's traceback says where it was.
    asleep = enqueue(fresh, "spin", {"do": "sleep", "seconds": 30})
    assert finished(fresh, asleep)[1] == "TimeoutError: Job ran too long."
    traceback = fresh.value("SELECT traceback FROM jobd.oops WHERE job_id = %s", asleep)
    assert 'time.sleep(data["seconds"])' in (traceback or ""), daemon.log()
    assert daemon.stop() == 0


def test_a_module_that_does_not_import_costs_no_job_an_attempt(fresh, app, tmp_path, daemons):
    """A deployment mistake (module = a typo): the worker says why and
    exits before it is ready; the job is given back, WAITING with its
    attempt kept, to be claimed again in 30 s."""
    text = config(section("typo", app).replace("module: runnerjobs", "module: runnerjobz"))
    daemon = serve(daemons, fresh, text, tmp_path)
    job = enqueue(fresh, "typo", {"do": "complete"})
    assert daemon.wait_for_log(f"WORKER_START_FAILED"), daemon.log()
    assert daemon.wait_for_log("cannot start: ModuleNotFoundError: No module named 'runnerjobz'")
    until(lambda: fresh.rows("SELECT status, attempt_count, scheduled_start > now() + "
                             "interval '20 s' FROM jobd.job WHERE id = %s", job) == [(0, 0, True)])
    assert fresh.rows("SELECT outcome, error_type FROM jobd.job_attempt WHERE job_id = %s",
                      job) == [("released", "WorkerStartError")]
    assert fresh.value("SELECT count(*) FROM jobd.oops") == 0
    assert daemon.stop() == 0


def test_a_worker_that_leaks_memory_is_replaced_at_its_bound(fresh, app, tmp_path, daemons):
    """max_worker_rss: after the job that took the worker over the bound,
    the worker is replaced; the job itself completes."""
    daemon = serve(daemons, fresh, config(section("leak", app, max_worker_rss="100M")), tmp_path)
    first = enqueue(fresh, "leak", {"do": "leak", "mb": 40})
    assert finished(fresh, first)[0] == 2
    second = enqueue(fresh, "leak", {"do": "leak", "mb": 80})
    assert finished(fresh, second)[0] == 2
    third = enqueue(fresh, "leak", {"do": "complete"})
    assert finished(fresh, third)[0] == 2
    pids = [result(fresh, j)["pid"] for j in (first, second, third)]
    assert pids[0] == pids[1] != pids[2]
    assert daemon.wait_for_log(f"WORKER_RECYCLED pid={pids[1]} section=leak: resident memory")
    assert daemon.stop() == 0


def test_max_jobs_per_worker_replaces_workers(fresh, app, tmp_path, daemons):
    daemon = serve(daemons, fresh, config(section("few", app, max_jobs_per_worker=3)), tmp_path)
    jobs = [enqueue(fresh, "few", {"do": "complete"}) for _ in range(7)]
    for job in jobs:
        assert finished(fresh, job)[0] == 2
    pids = [result(fresh, j)["pid"] for j in sorted(jobs)]
    assert pids[0] == pids[1] == pids[2] != pids[3]
    assert pids[3] == pids[4] == pids[5] != pids[6]
    assert daemon.wait_for_log("ran 3 jobs (max_jobs_per_worker)", count=2)
    assert daemon.stop() == 0


def test_max_jobs_per_worker_replaces_jobd_process_runners_too(fresh, tmp_path, daemons):
    daemon = serve(daemons, fresh, config("[noop]\nrunner: process\nmax_jobs_per_worker: 2\n"),
                   tmp_path)
    jobs = [enqueue(fresh, "noop", {}) for _ in range(5)]
    for job in jobs:
        assert finished(fresh, job)[0] == 2
    assert daemon.wait_for_log("section=noop: ran 2 jobs (max_jobs_per_worker)", count=2)
    assert daemon.stop() == 0


def test_a_worker_that_segfaults_gives_a_crashed_attempt_and_an_oops(
        fresh, app, tmp_path, daemons):
    daemon = serve(daemons, fresh, config(section("crash", app)), tmp_path)
    job = enqueue(fresh, "crash", {"do": "segfault"})
    status, log, _ = finished(fresh, job)
    assert status == 3
    assert log.startswith("Signal11: process runner "), log
    assert fresh.rows("SELECT outcome, error_type FROM jobd.job_attempt WHERE job_id = %s",
                      job) == [("crashed", "Signal11")]
    traceback = fresh.value("SELECT traceback FROM jobd.oops WHERE job_id = %s", job)
    assert "Fatal Python error: Segmentation fault" in traceback, traceback
    after = enqueue(fresh, "crash", {"do": "complete"})
    assert finished(fresh, after)[0] == 2
    assert daemon.stop() == 0


def test_database_work_commits_with_the_completed_mark_and_only_then(
        fresh, app, tmp_path, daemons):
    """Exactly-once effects: the job's insert on context.connection commits
    in one transaction with COMPLETED (and its result); a retried attempt's
    insert is rolled back."""
    daemon = serve(daemons, fresh, config(section("db", app)), tmp_path)
    done = enqueue(fresh, "db", {"do": "insert"})
    again = enqueue(fresh, "db", {"do": "insert", "fail_after_insert": True, "max_retries": 1})
    assert finished(fresh, done)[0] == 2
    assert finished(fresh, again)[0] == 3
    assert fresh.rows("SELECT job_id, attempt FROM effect ORDER BY job_id") == [(done, 1)]
    assert result(fresh, done)["attempt"] == 1
    assert daemon.stop() == 0


def test_a_sigstopped_daemons_late_completion_is_refused_and_rolled_back(
        fresh, app, tmp_path, daemons):
    """The daemon stops (SIGSTOP) while its Python job runs, past the
    lease; another daemon rescues the job and runs it; after SIGCONT the
    first worker's COMPLETED is refused and its insert rolled back: the
    effect happens once."""
    text = config(section("paused", app, lease_duration="2s"))
    paused = serve(daemons, fresh, text, tmp_path)
    job = enqueue(fresh, "paused", {"do": "insert", "sleep_first": 1.5}, max_retries=2)
    # Stopped once the worker's insert is in its open transaction, so that
    # what is refused is that transaction's late COMPLETED.
    until(lambda: fresh.value("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                              "'jobd job' AND state = 'idle in transaction'") == 1)
    paused.signal(signal.SIGSTOP)
    try:
        other = serve(daemons, fresh, text, tmp_path)
        assert finished(fresh, job)[0] == 2
    finally:
        paused.signal(signal.SIGCONT)
    assert paused.wait_for_log(f"JOB_LEASE_LOST id={job}"), paused.log()
    assert fresh.rows("SELECT attempt FROM effect") == [(2,)]
    assert fresh.value("SELECT string_agg(outcome, ',') FROM jobd.job_attempt "
                       "WHERE job_id = %s", job) == "lease_expired"
    assert paused.stop() == 0
    assert other.stop() == 0


def test_a_drain_lets_a_running_python_job_finish_and_cancel_stops_one(
        fresh, app, tmp_path, daemons):
    """SIGTERM drains: the Python job running then completes before the
    daemon exits 0. `jobd cancel` of a running Python job stops it (the
    cancel frame, then SIGTERM) and it ends FAILED with the reason."""
    text = config(section("long", app, concurrency=2))
    daemon = serve(daemons, fresh, text, tmp_path)
    cancelled = enqueue(fresh, "long", {"do": "sleep", "seconds": 60})
    until(lambda: fresh.value("SELECT status FROM jobd.job WHERE id = %s", cancelled) == 1)
    import subprocess
    from conftest import _jobd_binary
    subprocess.run([str(_jobd_binary()), "--database", fresh.conninfo, "--config", "/dev/null",
                    "cancel", str(cancelled), "--reason", "not needed"], check=True,
                   capture_output=True)
    status, log, _ = finished(fresh, cancelled, timeout=20)
    assert (status, log) == (3, "not needed")

    draining = enqueue(fresh, "long", {"do": "sleep", "seconds": 1.5})
    until(lambda: fresh.value("SELECT status FROM jobd.job WHERE id = %s", draining) == 1)
    assert daemon.stop() == 0
    assert fresh.rows("SELECT status FROM jobd.job WHERE id = %s", draining) == [(2,)]


def test_workers_recycled_and_killed_lose_no_job(fresh, app, tmp_path, daemons):
    """A small reliability drill: 200 jobs through two workers replaced
    every 7 jobs, while the test SIGKILLs a worker now and then; every job
    ends COMPLETED (a killed worker's attempt is requeued)."""
    # All enqueued first, so that the kills come spread over the drain.
    jobs = [enqueue(fresh, "drill", {"do": "sleep", "seconds": 0.05}, max_retries=5)
            for _ in range(200)]
    daemon = serve(daemons, fresh, config(section("drill", app, concurrency=2,
                                                  max_jobs_per_worker=7)), tmp_path)
    kills = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = fresh.value("SELECT count(*) FROM jobd.job WHERE status IN (0, 1)")
        if left == 0:
            break
        if kills < 5 and left < 200 - 30 * (kills + 1):
            # Only a worker that has run a job: one killed while it starts
            # looks like a worker that cannot start, and its job is given
            # back 30 s later (test_a_module_that_does_not_import_...).
            ran = set(re.findall(r"runner_pid=(\d+)", daemon.log()))
            pids = [pid for pid in worker_pids(daemon) if str(pid) in ran]
            if pids:
                os.kill(min(pids), signal.SIGKILL)
                kills += 1
        time.sleep(0.05)
    assert kills == 5
    assert fresh.value("SELECT count(*) FROM jobd.job WHERE status = 2") == len(jobs)
    # A kill between two jobs costs no attempt; one during a job, one.
    crashed = fresh.value("SELECT count(*) FROM jobd.job_attempt WHERE outcome = 'crashed'")
    assert crashed <= 5
    assert daemon.wait_for_log("WORKER_RECYCLED", count=3)
    assert daemon.stop() == 0


def test_the_example_applications_two_jobs_end_to_end(fresh, tmp_path, daemons):
    """examples/launchpad_app as a user runs it: its schema, its jobd.conf
    (with a short poll), `jobd serve` from the repository's top directory;
    a karma event is recorded with its job, a negative one is a user error,
    and the webhook job posts to a real HTTP server, a 404 being a user
    error (test_notices_use_the_classs_words_and_recipients checks the
    notices themselves)."""
    import http.server
    import threading

    example = REPOSITORY / "examples" / "launchpad_app"
    fresh.transaction(("DROP TABLE IF EXISTS karma_event", ()),
                      ((example / "schema.sql").read_text(), ()))
    posted: list[bytes] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200 if self.path == "/ok" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        text = (example / "jobd.conf").read_text().replace(
            "[jobd]\n", "[jobd]\npoll_interval = 1s\n", 1)
        # As a user runs it: the example's pythonpath alone finds jobd.
        daemon = Daemon(fresh, text, tmp_path, "example", env={"PYTHONPATH": None})
        daemons.append(daemon)
        daemon.wait_ready()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        karma = enqueue(fresh, "record_karma", {"person": "mark", "points": 10})
        negative = enqueue(fresh, "record_karma", {"person": "mark", "points": -1})
        hook = enqueue(fresh, "notify_webhook", {"url": url + "/ok", "payload": {"a": 1}})
        gone = enqueue(fresh, "notify_webhook",
                       {"url": url + "/gone", "owner_email": "owner@example.com"})
        assert finished(fresh, karma)[0] == 2
        assert fresh.rows("SELECT person, points FROM karma_event") == [("mark", 10)]
        assert result(fresh, karma)["person"] == "mark"
        status, log, _ = finished(fresh, negative)
        assert (status, log) == (3, "karma for mark cannot be negative (-1)")
        assert finished(fresh, hook)[0] == 2
        assert result(fresh, hook) == {"status": 200}
        status, log, _ = finished(fresh, gone)
        assert status == 3 and "refused the notification: HTTP 404" in log, log
        assert {"a": 1} in [json.loads(body) for body in posted]  # the two ran side by side
        assert daemon.stop() == 0
    finally:
        server.shutdown()
