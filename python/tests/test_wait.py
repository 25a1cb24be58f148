"""jobd.wait: woken by NOTIFY jobd_finished at the commit that finishes the
job (finished here by SQL from another connection, so that the commit's
moment is the test's), on a conninfo string or on a caller's connection."""

from __future__ import annotations

import concurrent.futures
import math
import sys
import threading
import time

import pytest

import jobd
from conftest import DRIVERS
from jobd import _drivers

# Slack for the time bounds below: a loaded 2-core machine (a CI build
# beside the tests) may take seconds to connect or to schedule a thread.
SLACK = 3.0

# How the waiter reaches the database: its own connection from a conninfo
# (psycopg 3 first; "conninfo-psycopg2" hides psycopg 3 to use psycopg2),
# or a caller's autocommit connection of each driver.
HOWS = ["conninfo"] + (["conninfo-psycopg2"] if "psycopg" in DRIVERS and "psycopg2" in DRIVERS
                       else []) + [f"{d}-connection" for d in DRIVERS]


@pytest.fixture(params=HOWS)
def through(request, db, connections, monkeypatch):
    """What to pass to wait(): a conninfo string or an autocommit connection."""
    how = request.param
    if how == "conninfo-psycopg2":
        monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails
    if how.startswith("conninfo"):
        return db.conninfo
    return connections(how.removesuffix("-connection"), autocommit=True)


@pytest.fixture
def pool():
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


def new_job(db) -> int:
    return db.value("SELECT jobd.enqueue('noop')")


def finish(db, job_id: int, status: int, result: str | None = None, log: str | None = None):
    """Mark the job COMPLETED (2) or FAILED (3), with its result, in one commit."""
    statements = [("UPDATE jobd.job SET status = %s, date_finished = now(), log = %s "
                   "WHERE id = %s", (status, log, job_id))]
    if result is not None:
        statements.append(("INSERT INTO jobd.job_result (job_id, result) VALUES (%s, %s)",
                           (job_id, result)))
    db.transaction(*statements)


def watched(db, job_id: int) -> None:
    """Until the waiter's jobd.watch has committed (the job is `waited`)."""
    db.waits_for("SELECT waited FROM jobd.job WHERE id = %s", job_id)


def test_wait_wakes_at_the_commit_that_completes_the_job(db, through, pool):
    """The result comes back soon after the COMPLETED commit, without polling
    (the wait's timeout is 30 s)."""
    job_id = new_job(db)
    waiting = pool.submit(jobd.wait, through, job_id, 30)
    watched(db, job_id)
    assert not waiting.done()
    finish(db, job_id, 2, result='{"ok": true, "n": 12345678901234567890123, "f": 1.5}')
    committed = time.monotonic()
    result = waiting.result(timeout=10)
    woke = time.monotonic() - committed
    print(f"jobd.wait returned {woke * 1e6:.0f} us after the COMPLETED commit")
    assert woke < SLACK, f"woke {woke:.3f} s after the commit"
    assert result == jobd.Result(job_id, "COMPLETED",
                                 {"ok": True, "n": 12345678901234567890123, "f": 1.5}, None)


def test_a_finished_job_returns_at_once(db, through):
    """A job COMPLETED already: its Result, no waiting; no result row is None."""
    job_id = new_job(db)
    finish(db, job_id, 2, log="done\n")
    started = time.monotonic()
    assert jobd.wait(through, job_id) == jobd.Result(job_id, "COMPLETED", None, "done\n")
    assert time.monotonic() - started < SLACK  # connecting included


def test_a_job_that_fails_while_waited_for_raises_job_failed(db, through, pool):
    """FAILED: JobFailed carrying the Result, its message the log's last line."""
    job_id = new_job(db)
    waiting = pool.submit(jobd.wait, through, job_id, 30)
    watched(db, job_id)
    finish(db, job_id, 3, log="Scheduling retry due to X: once.\nboom: it broke\n")
    with pytest.raises(jobd.JobFailed) as raised:
        waiting.result(timeout=10)
    assert str(raised.value) == f"job {job_id} FAILED: boom: it broke"
    assert raised.value.job_id == job_id
    assert raised.value.result == jobd.Result(
        job_id, "FAILED", None, "Scheduling retry due to X: once.\nboom: it broke\n")


def test_a_failed_job_raises_job_failed_at_once(db, through):
    job_id = new_job(db)
    finish(db, job_id, 3)
    with pytest.raises(jobd.JobFailed, match=f"^job {job_id} FAILED$"):
        jobd.wait(through, job_id, timeout=5)


def test_no_such_job_raises_job_not_found(db, through):
    with pytest.raises(jobd.JobNotFound, match="no job with id 987654321") as raised:
        jobd.wait(through, 987654321, timeout=5)
    assert raised.value.job_id == 987654321


def test_a_job_deleted_while_waited_for_raises_job_not_found(db, through, pool):
    job_id = new_job(db)
    waiting = pool.submit(jobd.wait, through, job_id, 30)
    watched(db, job_id)
    db.rows("DELETE FROM jobd.job WHERE id = %s", job_id)
    with pytest.raises(jobd.JobNotFound):
        waiting.result(timeout=10)


@pytest.mark.parametrize("timeout", [0, 0.5])
def test_the_timeout_raises_wait_timeout(db, through, timeout):
    """WaitTimeout, with the job's status, not before the timeout (nor long
    after it, connecting included)."""
    job_id = new_job(db)
    started = time.monotonic()
    with pytest.raises(jobd.WaitTimeout) as raised:
        jobd.wait(through, job_id, timeout=timeout)
    took = time.monotonic() - started
    assert timeout <= took < timeout + SLACK, f"took {took:.3f} s"
    assert (raised.value.job_id, raised.value.status) == (job_id, "WAITING")
    assert str(raised.value) == f"job {job_id} is still WAITING after {timeout:g} s"


def test_a_suspended_job_is_waited_for_until_it_finishes(db, through, pool):
    job_id = new_job(db)
    db.rows("UPDATE jobd.job SET status = 4 WHERE id = %s", job_id)
    waiting = pool.submit(jobd.wait, through, job_id, 30)
    watched(db, job_id)
    finish(db, job_id, 2, result="[1]")
    assert waiting.result(timeout=10).result == [1]


def watch_starts(monitor, count: int, timeout: float = 10.0) -> list:
    """The start times of the first `count` jobd.watch statements that one
    backend ran blocked on a row lock, as pg_stat_activity shows them
    (read every 10 ms on `monitor`, an autocommit connection)."""
    cursor = monitor.cursor()
    seen: dict = {}
    deadline = time.monotonic() + timeout
    while True:
        cursor.execute("SELECT pid, query_start FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                       "AND state = 'active' AND wait_event_type = 'Lock' "
                       "AND position('SELECT jobd.watch(' in query) = 1")
        for pid, start in cursor.fetchall():
            starts = seen.setdefault(pid, [])
            if start not in starts:
                starts.append(start)
            if len(starts) >= count:
                return starts
        if time.monotonic() > deadline:
            raise AssertionError(f"no backend ran {count} blocked jobd.watch in {timeout} s: "
                                 f"{seen}")
        time.sleep(0.01)


def test_a_locked_row_is_watched_again_until_it_is_free(db, through, pool):
    """A transaction holding the job's row (a job's own, committing) makes
    the watch give up after its one-second lock_timeout and run again (a
    new jobd.watch statement of the same backend, blocked too); the commit
    that frees the row is seen."""
    job_id = new_job(db)
    holder = db.connect()
    monitor = db.connect(autocommit=True)
    try:
        holder.cursor().execute("UPDATE jobd.job SET status = 2 WHERE id = %s", (job_id,))
        waiting = pool.submit(jobd.wait, through, job_id, 30)
        first, second = watch_starts(monitor, 2)
        assert (second - first).total_seconds() >= 0.9, (first, second)  # the lock_timeout
        assert not waiting.done()
        holder.commit()
    finally:
        holder.close()
        monitor.close()
    assert waiting.result(timeout=10).status == "COMPLETED"


def test_a_retry_between_watch_and_read_is_watched_again(db, through, pool, monkeypatch):
    """The job is COMPLETED when watched (which marks no finished job
    `waited`), and an operator's retry commits before its ending is read:
    the wait watches it again, so that its next finish notifies."""
    job_id = new_job(db)
    finish(db, job_id, 2)
    real_ending = _drivers.Session.ending
    retried = threading.Event()

    def ending(session, asked):
        if not retried.is_set():
            retried.set()
            db.rows("UPDATE jobd.job SET status = 0, date_finished = NULL WHERE id = %s", asked)
        return real_ending(session, asked)

    monkeypatch.setattr(_drivers.Session, "ending", ending)
    waiting = pool.submit(jobd.wait, through, job_id, 30)
    watched(db, job_id)
    assert retried.is_set()
    assert not waiting.done()
    finish(db, job_id, 2, result="[2]")
    assert waiting.result(timeout=10) == jobd.Result(job_id, "COMPLETED", [2], None)


def test_a_row_locked_past_the_timeout_raises_wait_timeout(db, through):
    job_id = new_job(db)
    holder = db.connect()
    try:
        holder.cursor().execute("SELECT 1 FROM jobd.job WHERE id = %s FOR UPDATE", (job_id,))
        started = time.monotonic()
        with pytest.raises(jobd.WaitTimeout, match="was still locked after 0.4 s") as raised:
            jobd.wait(through, job_id, timeout=0.4)
        assert time.monotonic() - started < 0.4 + SLACK
        assert raised.value.status is None
    finally:
        holder.close()


def test_the_callers_connection_is_left_as_it_was(db, connections, driver):
    """No LISTEN is left behind, unless the caller had one of its own."""
    conn = connections(driver, autocommit=True)
    done = new_job(db)
    finish(db, done, 2)
    jobd.wait(conn, done)
    listening = "SELECT count(*) FROM pg_listening_channels()"
    cursor = conn.cursor()
    cursor.execute(listening)
    assert cursor.fetchone()[0] == 0
    cursor.execute("LISTEN jobd_finished")
    jobd.wait(conn, done)
    cursor.execute(listening)
    assert cursor.fetchone()[0] == 1
    assert not conn.closed


def test_other_notifications_are_left_to_the_caller(db, connections, driver, pool):
    """A notification on another channel reaches the caller's own handling
    (psycopg 3's notify handlers see every notification, the job's too);
    psycopg2's conn.notifies keeps no jobd_finished one (another job's
    included) when the wait made the LISTEN."""
    conn = connections(driver, autocommit=True)
    heard = []
    if driver == "psycopg":
        conn.add_notify_handler(lambda n: heard.append((n.channel, n.payload)))
    conn.cursor().execute("LISTEN app_channel")
    job_id = new_job(db)
    other = new_job(db)
    waiting = pool.submit(jobd.wait, conn, job_id, 30)
    watched(db, job_id)
    db.rows("SELECT pg_notify('app_channel', 'hello')")
    db.rows("SELECT jobd.watch(%s)", other)  # someone else waits for it
    finish(db, other, 2)
    finish(db, job_id, 2)
    assert waiting.result(timeout=10).status == "COMPLETED"
    if driver == "psycopg2":
        heard = [(n.channel, n.payload) for n in conn.notifies]
        assert heard == [("app_channel", "hello")]
    else:
        assert heard == [("app_channel", "hello"), ("jobd_finished", str(other)),
                         ("jobd_finished", str(job_id))]


def test_a_connection_in_a_transaction_is_refused(db, connections, driver):
    """LISTEN must commit by itself: autocommit, outside a transaction."""
    conn = connections(driver)
    with pytest.raises(jobd.JobdError, match="autocommit"):
        jobd.wait(conn, 1)
    conn = connections(driver, autocommit=True)
    conn.cursor().execute("BEGIN")
    with pytest.raises(jobd.JobdError, match="not inside a transaction"):
        jobd.wait(conn, 1)


@pytest.mark.parametrize("timeout, error", [
    (-1, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (10**400, ValueError),
    ("5", TypeError),
    (True, TypeError),
])
def test_a_bad_timeout_is_refused_before_connecting(timeout, error):
    """Refused before anything is sent: the database named does not exist."""
    with pytest.raises(error, match="timeout must be"):
        jobd.wait("dbname=jobd_no_such_database", 1, timeout=timeout)


@pytest.mark.parametrize("hide_psycopg", [False, True] if len(DRIVERS) == 2 else [False])
@pytest.mark.parametrize("conninfo_suffix, timeout, expected", [
    ("", 30, "30"),
    ("", 0.2, "2"),  # libpq's least that is safe
    ("", 7.3, "8"),
    (" connect_timeout=11", 5, "11"),  # the conninfo's own
    ("", None, None),  # no limit: libpq's default
])
def test_connecting_is_bounded_by_the_timeout(db, monkeypatch, hide_psycopg, conninfo_suffix,
                                             timeout, expected):
    """A conninfo without connect_timeout gets the time left, rounded up,
    at least 2 s; one with it keeps it; no timeout adds none."""
    if hide_psycopg:
        monkeypatch.setitem(sys.modules, "psycopg", None)
    seen = []
    real_owning = _drivers._owning

    def owning(kind, conn):
        if kind is _drivers.Psycopg2Session:
            parameters = conn.get_dsn_parameters()
        else:
            parameters = conn.info.get_parameters()
        seen.append(parameters.get("connect_timeout"))
        return real_owning(kind, conn)

    monkeypatch.setattr(_drivers, "_owning", owning)
    job_id = new_job(db)
    finish(db, job_id, 2)
    assert jobd.wait(db.conninfo + conninfo_suffix, job_id, timeout=timeout).status == "COMPLETED"
    assert seen == [expected]


def test_something_that_is_not_psycopg_is_refused():
    with pytest.raises(TypeError, match="psycopg 3 or psycopg2 connection"):
        jobd.wait(object(), 1)


def test_a_database_without_jobd_says_so(db):
    """A database jobd migrate never set up: a JobdError naming the fix."""
    with pytest.raises(jobd.JobdError, match="jobd migrate"):
        jobd.wait("dbname=postgres", 1, timeout=5)
