"""jobd.wait: woken by NOTIFY jobd_finished at the commit that finishes the
job (finished here by SQL from another connection, so that the commit's
moment is the test's), on a conninfo string or on a caller's connection."""

from __future__ import annotations

import concurrent.futures
import sys
import time

import pytest

import jobd
from conftest import DRIVERS

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
    """The result comes back well under a second after the COMPLETED commit."""
    job_id = new_job(db)
    waiting = pool.submit(jobd.wait, through, job_id, 30)
    watched(db, job_id)
    assert not waiting.done()
    finish(db, job_id, 2, result='{"ok": true, "n": 12345678901234567890123, "f": 1.5}')
    committed = time.monotonic()
    result = waiting.result(timeout=10)
    woke = time.monotonic() - committed
    print(f"jobd.wait returned {woke * 1e6:.0f} us after the COMPLETED commit")
    assert woke < 1.0, f"woke {woke:.3f} s after the commit"
    assert result == jobd.Result(job_id, "COMPLETED",
                                 {"ok": True, "n": 12345678901234567890123, "f": 1.5}, None)


def test_a_finished_job_returns_at_once(db, through):
    """A job COMPLETED already: its Result, no waiting; no result row is None."""
    job_id = new_job(db)
    finish(db, job_id, 2, log="done\n")
    started = time.monotonic()
    assert jobd.wait(through, job_id) == jobd.Result(job_id, "COMPLETED", None, "done\n")
    assert time.monotonic() - started < 1.0


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
    """WaitTimeout, with the job's status, within half a second of the timeout."""
    job_id = new_job(db)
    started = time.monotonic()
    with pytest.raises(jobd.WaitTimeout) as raised:
        jobd.wait(through, job_id, timeout=timeout)
    took = time.monotonic() - started
    assert timeout <= took < timeout + 0.5, f"took {took:.3f} s"
    assert (raised.value.job_id, raised.value.status) == (job_id, "WAITING")
    assert str(raised.value) == f"job {job_id} is still WAITING after {timeout:g} s"


def test_a_suspended_job_is_waited_for_until_it_finishes(db, through, pool):
    job_id = new_job(db)
    db.rows("UPDATE jobd.job SET status = 4 WHERE id = %s", job_id)
    waiting = pool.submit(jobd.wait, through, job_id, 30)
    watched(db, job_id)
    finish(db, job_id, 2, result="[1]")
    assert waiting.result(timeout=10).result == [1]


def test_a_locked_row_is_watched_again_until_it_is_free(db, through, pool):
    """A transaction holding the job's row (a job's own, committing) makes
    the watch time out after a second and try again; its commit is seen."""
    job_id = new_job(db)
    holder = db.connect()
    try:
        holder.cursor().execute("UPDATE jobd.job SET status = 2 WHERE id = %s", (job_id,))
        waiting = pool.submit(jobd.wait, through, job_id, 30)
        time.sleep(1.5)  # past the watch's one-second lock_timeout: it has tried again
        assert not waiting.done()
        holder.commit()
    finally:
        holder.close()
    assert waiting.result(timeout=10).status == "COMPLETED"


def test_a_row_locked_past_the_timeout_raises_wait_timeout(db, through):
    job_id = new_job(db)
    holder = db.connect()
    try:
        holder.cursor().execute("SELECT 1 FROM jobd.job WHERE id = %s FOR UPDATE", (job_id,))
        started = time.monotonic()
        with pytest.raises(jobd.WaitTimeout, match="was still locked after 0.4 s") as raised:
            jobd.wait(through, job_id, timeout=0.4)
        assert time.monotonic() - started < 0.9
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
    (psycopg 3's notify handlers see every notification, the job's too)."""
    conn = connections(driver, autocommit=True)
    heard = []
    if driver == "psycopg":
        conn.add_notify_handler(lambda n: heard.append((n.channel, n.payload)))
    conn.cursor().execute("LISTEN app_channel")
    job_id = new_job(db)
    waiting = pool.submit(jobd.wait, conn, job_id, 30)
    watched(db, job_id)
    db.rows("SELECT pg_notify('app_channel', 'hello')")
    finish(db, job_id, 2)
    assert waiting.result(timeout=10).status == "COMPLETED"
    if driver == "psycopg2":
        heard = [(n.channel, n.payload) for n in conn.notifies]
        assert heard == [("app_channel", "hello")]
    else:
        assert heard == [("app_channel", "hello"), ("jobd_finished", str(job_id))]


def test_a_connection_in_a_transaction_is_refused(db, connections, driver):
    """LISTEN must commit by itself: autocommit, outside a transaction."""
    conn = connections(driver)
    with pytest.raises(jobd.JobdError, match="autocommit"):
        jobd.wait(conn, 1)
    conn = connections(driver, autocommit=True)
    conn.cursor().execute("BEGIN")
    with pytest.raises(jobd.JobdError, match="not inside a transaction"):
        jobd.wait(conn, 1)


def test_something_that_is_not_psycopg_is_refused():
    with pytest.raises(TypeError, match="psycopg 3 or psycopg2 connection"):
        jobd.wait(object(), 1)


def test_a_database_without_jobd_says_so(db):
    """A database jobd migrate never set up: a JobdError naming the fix."""
    with pytest.raises(jobd.JobdError, match="jobd migrate"):
        jobd.wait("dbname=postgres", 1, timeout=5)
