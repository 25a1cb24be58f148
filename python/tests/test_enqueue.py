"""jobd.enqueue and jobd.acquire on psycopg 3 and psycopg2 connections,
against a database that `jobd migrate` made."""

from __future__ import annotations

import datetime
import json

import pytest

import jobd
from conftest import DRIVERS
from jobd import _dbapi

UTC = datetime.timezone.utc

COLUMNS = ("job_type, json_data::text, target, priority, scheduled_start, max_retries, "
           "requester, status, acquired")


def job_row(db, job_id: int) -> dict:
    """The job's columns by name (json_data parsed)."""
    rows = db.rows(f"SELECT {COLUMNS} FROM jobd.job WHERE id = %s", job_id)
    assert len(rows) == 1, f"job {job_id}: {len(rows)} rows"
    names = [c.strip().split("::")[0] for c in COLUMNS.split(",")]
    row = dict(zip(names, rows[0]))
    row["json_data"] = json.loads(row["json_data"])
    return row


def count(db, job_type: str) -> int:
    return db.value("SELECT count(*) FROM jobd.job WHERE job_type = %s", job_type)


def test_a_rolled_back_enqueue_leaves_no_job(db, connections, driver):
    """The job is written in the caller's transaction: a rollback takes it away."""
    conn = connections(driver)
    job_id = jobd.enqueue(conn, f"rolled_back_{driver}", {"n": 1})
    assert isinstance(job_id, int)
    conn.rollback()
    assert count(db, f"rolled_back_{driver}") == 0
    assert db.value("SELECT count(*) FROM jobd.job WHERE id = %s", job_id) == 0


def test_enqueue_never_commits(db, connections, driver):
    """Nothing is visible to others until the caller commits."""
    conn = connections(driver)
    job_id = jobd.enqueue(conn, f"uncommitted_{driver}")
    assert count(db, f"uncommitted_{driver}") == 0
    conn.commit()
    assert db.value("SELECT id FROM jobd.job WHERE job_type = %s",
                    f"uncommitted_{driver}") == job_id


def test_a_committed_enqueue_writes_every_setting(db, connections, driver):
    """Each argument lands in its column of jobd.job."""
    conn = connections(driver)
    at = datetime.datetime(2031, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    data = {"to": ["a@example.com"], "subject": "Hi é", "n": 12345678901234567890, "x": None}
    job_id = jobd.enqueue(conn, f"every_{driver}", data, target="merge_proposal:7", at=at,
                          priority=-5, max_retries=3, requester="web request 42")
    conn.commit()
    assert job_row(db, job_id) == {
        "job_type": f"every_{driver}", "json_data": data, "target": "merge_proposal:7",
        "priority": -5, "scheduled_start": at, "max_retries": 3,
        "requester": "web request 42", "status": 0, "acquired": False,
    }


def test_defaults_are_the_sql_functions(db, connections, driver):
    """No data is {}, no max_retries is the SQL default (0), no start is now."""
    conn = connections(driver)
    job_id = jobd.enqueue(conn, f"defaults_{driver}")
    conn.commit()
    assert job_row(db, job_id) == {
        "job_type": f"defaults_{driver}", "json_data": {}, "target": None, "priority": 0,
        "scheduled_start": None, "max_retries": 0, "requester": None, "status": 0,
        "acquired": False,
    }


def test_at_in_another_time_zone_is_the_same_instant(db, connections, driver):
    """An aware datetime in any zone sets scheduled_start to that instant."""
    conn = connections(driver)
    zone = datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))
    at = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=zone)
    job_id = jobd.enqueue(conn, f"zone_{driver}", at=at)
    conn.commit()
    assert job_row(db, job_id)["scheduled_start"] == at
    assert job_row(db, job_id)["scheduled_start"] == datetime.datetime(2030, 6, 1, 17, 30,
                                                                       tzinfo=UTC)


@pytest.mark.parametrize("delay, expected", [
    (90, datetime.timedelta(seconds=90)),
    (2.5, datetime.timedelta(seconds=2.5)),
    (datetime.timedelta(hours=1, milliseconds=250), datetime.timedelta(hours=1, milliseconds=250)),
    (0, datetime.timedelta(0)),
])
def test_delay_counts_from_the_databases_now(db, connections, driver, delay, expected):
    """delay (seconds or a timedelta) starts the job that long after now()."""
    conn = connections(driver)
    job_id = jobd.enqueue(conn, f"delay_{driver}", delay=delay)
    conn.commit()
    # date_created is the same transaction's now().
    assert db.value("SELECT scheduled_start - date_created FROM jobd.job WHERE id = %s",
                    job_id) == expected


def test_unique_twice_gives_one_waiting_job(db, connections, driver):
    """unique=True (jobd.acquire) returns the WAITING job of the type and target."""
    conn = connections(driver)
    job_type = f"unique_{driver}"
    first = jobd.enqueue(conn, job_type, {"merge_proposal": 7}, target="mp:7", unique=True)
    same_transaction = jobd.enqueue(conn, job_type, {"merge_proposal": 7}, target="mp:7",
                                    unique=True)
    conn.commit()
    later = jobd.enqueue(conn, job_type, {"other": True}, target="mp:7", unique=True,
                         priority=3)
    conn.commit()
    assert first == same_transaction == later
    assert db.rows("SELECT id, status, acquired, json_data::text FROM jobd.job "
                   "WHERE job_type = %s", job_type) == [(first, 0, True, '{"merge_proposal": 7}')]
    # Another target is another job.
    other = jobd.acquire(conn, job_type, "mp:8", {"merge_proposal": 8})
    conn.commit()
    assert other != first
    assert job_row(db, other)["target"] == "mp:8"


def test_acquire_makes_a_job_with_every_setting(db, connections, driver):
    """acquire() passes its settings to the job it makes."""
    conn = connections(driver)
    job_id = jobd.acquire(conn, f"acquire_{driver}", "person:1", [1, 2], delay=60, priority=2,
                          max_retries=1, requester="me")
    conn.commit()
    row = job_row(db, job_id)
    assert (row["json_data"], row["target"], row["priority"], row["max_retries"],
            row["requester"], row["acquired"]) == ([1, 2], "person:1", 2, 1, "me", True)
    assert db.value("SELECT scheduled_start - date_created FROM jobd.job WHERE id = %s",
                    job_id) == datetime.timedelta(seconds=60)


@pytest.mark.parametrize("bad", [
    {"tags": {"a", "b"}},
    {"when": datetime.datetime(2024, 1, 1, tzinfo=UTC)},
    [float("nan")],
    {"text": "a\x00b"},
    b"bytes",
])
def test_data_that_is_not_json_raises_payload_error_and_sends_nothing(db, connections, driver,
                                                                      bad):
    """PayloadError before any statement: the caller's transaction goes on."""
    conn = connections(driver)
    job_type = f"payload_{driver}"
    with pytest.raises(jobd.PayloadError) as raised:
        jobd.enqueue(conn, job_type, bad)
    assert "jobd: the job's data" in str(raised.value)
    assert isinstance(raised.value, jobd.JobdError)
    # Had a statement failed, this one would raise "current transaction is aborted".
    jobd.enqueue(conn, job_type, {"fine": True})
    conn.commit()
    assert db.rows("SELECT json_data::text FROM jobd.job WHERE job_type = %s",
                   job_type) == [('{"fine": true}',)]
    db.rows("DELETE FROM jobd.job WHERE job_type = %s", job_type)


def test_a_set_says_what_is_wrong():
    """The message names the type json could not write."""
    with pytest.raises(jobd.PayloadError, match="Object of type set is not JSON serializable"):
        jobd.payload_json({1, 2})


def test_a_backslash_before_u0000_is_fine():
    """The text \\u0000 (not the character) is stored as it is."""
    assert jobd.payload_json("\\u0000") == '"\\\\u0000"'


@pytest.mark.parametrize("kwargs, error, message", [
    ({"at": datetime.datetime(2030, 1, 1, tzinfo=UTC), "delay": 5}, ValueError, "not both"),
    ({"at": datetime.datetime(2030, 1, 1)}, ValueError, "timezone-aware"),
    ({"at": "2030-01-01"}, TypeError, "at must be a datetime"),
    ({"delay": -1}, ValueError, "delay must be"),
    ({"delay": "5s"}, TypeError, "delay must be a timedelta"),
    ({"delay": 1e300}, ValueError, "delay must be"),  # PostgreSQL: interval out of range
    ({"delay": 10**400}, ValueError, "delay must be"),  # past float's range
    ({"delay": datetime.timedelta(days=999_999_999)}, ValueError, "delay must be"),
    ({"delay": 100 * 365.25 * 86400 + 1}, ValueError, "delay must be"),
    ({"unique": True}, ValueError, "needs a target"),
    ({"priority": 40000}, ValueError, "priority must be between"),
    ({"priority": 1.5}, TypeError, "priority must be an int"),
    ({"max_retries": -1}, ValueError, "max_retries must be between"),
    ({"target": 7}, TypeError, "target must be a str"),
    ({"target": "a\x00b"}, ValueError, "target holds the character U\\+0000"),
    ({"target": "a\ud800b"}, ValueError, "target is not valid Unicode"),
    ({"requester": "\x00"}, ValueError, "requester holds the character U\\+0000"),
    ({"requester": "\udfff"}, ValueError, "requester is not valid Unicode"),
])
def test_bad_arguments_are_refused_before_anything_is_sent(db, connections, driver, kwargs,
                                                           error, message):
    """Argument errors are Python exceptions, and the transaction is untouched."""
    conn = connections(driver)
    with pytest.raises(error, match=message):
        jobd.enqueue(conn, "noop", **kwargs)
    with pytest.raises((TypeError, ValueError)):
        jobd.enqueue(conn, "")
    conn.cursor().execute("SELECT 1")  # not aborted
    conn.rollback()


@pytest.mark.parametrize("job_type, message", [
    ("a\x00b", "job_type holds the character U\\+0000"),
    ("\ud83d", "job_type is not valid Unicode"),
])
def test_a_job_type_postgresql_cannot_store_is_refused(db, connections, driver, job_type,
                                                      message):
    """As the data's strings: a NUL or a lone surrogate is refused before
    anything is sent, and the transaction goes on."""
    conn = connections(driver)
    with pytest.raises(ValueError, match=message):
        jobd.enqueue(conn, job_type)
    with pytest.raises(ValueError, match=message.replace("job_type", "requester")):
        jobd.acquire(conn, "noop", "t", requester=job_type)
    job_id = jobd.enqueue(conn, f"after_bad_text_{driver}")
    conn.commit()
    assert job_row(db, job_id)["job_type"] == f"after_bad_text_{driver}"


def test_the_longest_delay_is_100_years(db, connections, driver):
    conn = connections(driver)
    job_id = jobd.enqueue(conn, f"long_delay_{driver}", delay=100 * 365.25 * 86400)
    conn.commit()
    assert db.value("SELECT scheduled_start - date_created FROM jobd.job WHERE id = %s",
                    job_id) == datetime.timedelta(days=36525)


def test_a_dict_row_connection_works(db, connections, driver):
    """Rows as dicts (psycopg's dict_row, psycopg2's RealDictCursor) are read too."""
    if driver == "psycopg":
        import psycopg.rows

        conn = connections(driver, row_factory=psycopg.rows.dict_row)
    else:
        import psycopg2.extras

        conn = connections(driver, cursor_factory=psycopg2.extras.RealDictCursor)
    job_id = jobd.enqueue(conn, f"dict_row_{driver}", {"k": 1})
    conn.commit()
    assert job_row(db, job_id)["json_data"] == {"k": 1}


def test_a_class_row_connection_works(db, connections):
    """psycopg 3's class_row (and any row_factory): jobd's cursor asks for
    tuples, on the connection itself or one a proxy keeps."""
    if "psycopg" not in DRIVERS:
        pytest.skip("psycopg 3 is not installed")
    import dataclasses

    import psycopg.rows

    @dataclasses.dataclass
    class Row:
        id: int

    conn = connections("psycopg", row_factory=psycopg.rows.class_row(Row))
    job_id = jobd.enqueue(conn, "class_row", {"k": 2})
    conn.commit()
    assert job_row(db, job_id)["json_data"] == {"k": 2}
    dict_conn = connections("psycopg", row_factory=psycopg.rows.dict_row)
    job_id = jobd.enqueue(StormConnection(dict_conn), "dict_row_proxied")
    dict_conn.commit()
    assert job_row(db, job_id)["job_type"] == "dict_row_proxied"


class StormConnection:
    """Storm's Connection: no cursor() of its own, the driver's connection
    kept as _raw_connection."""

    def __init__(self, raw):
        self._raw_connection = raw


def test_a_connection_kept_as_raw_connection_is_used(db, connections, driver):
    """cursor_of looks through the same proxies as paramstyle."""
    conn = connections(driver)
    job_id = jobd.enqueue(StormConnection(conn), f"storm_{driver}", target="s")
    conn.commit()
    assert job_row(db, job_id)["target"] == "s"


def test_a_subclassed_connection_keeps_its_drivers_paramstyle(db, connections, driver):
    """An application's subclass of the driver's connection is recognised."""
    if driver == "psycopg":
        import psycopg

        class AppConnection(psycopg.Connection):
            pass

        conn = AppConnection.connect(db.conninfo)
    else:
        import psycopg2
        import psycopg2.extensions

        class AppConnection(psycopg2.extensions.connection):
            pass

        conn = psycopg2.connect(db.conninfo, connection_factory=AppConnection)
    try:
        assert _dbapi.paramstyle(conn) == "pyformat"
        job_id = jobd.enqueue(conn, f"subclass_{driver}", target="t", requester="r")
        conn.commit()
    finally:
        conn.close()
    assert job_row(db, job_id)["requester"] == "r"
