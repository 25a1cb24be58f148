"""Dependencies and batches (schema 19) from the Python client: enqueue's
depends_on, on_parent_failure and batch, create_batch and close_batch, on
psycopg 3 and psycopg2 connections, against a real PostgreSQL."""

from __future__ import annotations

import pytest

import jobd


def status(db, job_id: int) -> tuple:
    return db.rows("SELECT status, scheduled_start::text, log FROM jobd.job WHERE id = %s",
                   job_id)[0]


def end(db, job_id: int, new_status: int) -> None:
    """Ends a job as a daemon's outcome would (the trigger does the rest)."""
    db.rows("UPDATE jobd.job SET status = %s, date_finished = now() WHERE id = %s "
            "RETURNING id", new_status, job_id)


def test_a_graph_enqueued_in_one_transaction_waits_for_its_parents(db, connections, driver):
    conn = connections(driver)
    a = jobd.enqueue(conn, f"graph_{driver}")
    b = jobd.enqueue(conn, f"graph_{driver}", depends_on=[a])
    c = jobd.enqueue(conn, f"graph_{driver}", depends_on=[a], on_parent_failure="run")
    d = jobd.enqueue(conn, f"graph_{driver}", depends_on=(b, c))
    conn.commit()
    assert status(db, a) == (0, None, None)
    for held in (b, c, d):
        assert status(db, held)[:2] == (0, "infinity")
    end(db, a, 3)  # a fails: b fails with it, c runs anyway, d fails after b
    assert status(db, b) == (3, None, f"ParentFailed: parent job {a} failed")
    # c is free: due from its release (not held at 'infinity' any more).
    assert status(db, c)[0] == 0 and status(db, c)[1] not in (None, "infinity")
    assert db.value("SELECT scheduled_start <= now() FROM jobd.job WHERE id = %s", c) is True
    assert status(db, d) == (3, None, f"ParentFailed: parent job {b} failed")


def test_a_rolled_back_enqueue_leaves_no_edge_and_no_hold(db, connections, driver):
    conn = connections(driver)
    a = jobd.enqueue(conn, f"rollback_{driver}")
    conn.commit()
    jobd.enqueue(conn, f"rollback_{driver}", depends_on=[a])
    conn.rollback()
    assert db.value("SELECT count(*) FROM jobd.job_dependency WHERE parent_id = %s", a) == 0
    assert db.value("SELECT linked FROM jobd.job WHERE id = %s", a) is False


def test_a_cycle_and_a_missing_parent_are_refused(db, connections, driver):
    conn = connections(driver)
    a = jobd.enqueue(conn, f"cycle_{driver}")
    b = jobd.enqueue(conn, f"cycle_{driver}", depends_on=[a])
    conn.commit()
    with conn.cursor() as cur:
        with pytest.raises(Exception, match="a cycle"):
            cur.execute(f"SELECT jobd.add_dependencies({a}, ARRAY[{b}]::bigint[])")
    conn.rollback()
    with pytest.raises(Exception, match="no parent job 999999999"):
        jobd.enqueue(conn, f"cycle_{driver}", depends_on=[999999999])
    conn.rollback()


def test_arguments_are_checked_before_anything_is_sent(db, connections, driver):
    conn = connections(driver)
    with pytest.raises(TypeError, match="depends_on"):
        jobd.enqueue(conn, "x", depends_on=5)
    with pytest.raises(TypeError, match="depends_on"):
        jobd.enqueue(conn, "x", depends_on=["5"])
    with pytest.raises(ValueError, match="depends_on"):
        jobd.enqueue(conn, "x", depends_on=[0])
    with pytest.raises(ValueError, match="on_parent_failure"):
        jobd.enqueue(conn, "x", depends_on=[1], on_parent_failure="ignore")
    with pytest.raises(ValueError, match="fire_on"):
        jobd.create_batch(conn, "cb", fire_on="sometimes")
    with pytest.raises(TypeError, match="dict"):
        jobd.create_batch(conn, "cb", [1])


def test_a_batch_fires_its_callback_once_with_the_counts(db, connections, driver):
    conn = connections(driver)
    batch = jobd.create_batch(conn, f"done_{driver}", {"report": 7})
    jobs = [jobd.enqueue(conn, f"member_{driver}", batch=batch) for _ in range(3)]
    conn.commit()
    # Joined in a later transaction, together with a dependency.
    late = jobd.enqueue(conn, f"member_{driver}", batch=batch, depends_on=[jobs[0]])
    assert jobd.close_batch(conn, batch) is None
    conn.commit()
    with pytest.raises(Exception, match="is closed"):
        jobd.enqueue(conn, f"member_{driver}", batch=batch)
    conn.rollback()
    for job_id, ending in zip(jobs + [late], (2, 2, 3, 2)):
        assert db.value("SELECT count(*) FROM jobd.job WHERE job_type = %s",
                        f"done_{driver}") == 0
        end(db, job_id, ending)
    rows = db.rows("SELECT id, json_data FROM jobd.job WHERE job_type = %s", f"done_{driver}")
    assert len(rows) == 1
    assert rows[0][1] == {"report": 7,
                          "batch": {"id": batch, "total": 4, "completed": 3, "failed": 1}}
    assert db.value("SELECT callback_job FROM jobd.batch WHERE id = %s", batch) == rows[0][0]


def test_a_closed_batch_whose_jobs_have_ended_fires_at_the_close(db, connections, driver):
    conn = connections(driver)
    batch = jobd.create_batch(conn, f"early_{driver}", fire_on="success")
    job_id = jobd.enqueue(conn, f"member_{driver}", batch=batch)
    conn.commit()
    end(db, job_id, 2)
    callback = jobd.close_batch(conn, batch)
    conn.commit()
    assert callback == db.value("SELECT id FROM jobd.job WHERE job_type = %s", f"early_{driver}")
    assert jobd.close_batch(conn, batch) is None  # closing again changes nothing
    conn.commit()
