-- jobd schema version 9: an enqueue sends its NOTIFY only when some daemon
-- sleeps on the job's type.
--
-- PostgreSQL serialises the commits of all transactions that sent a NOTIFY
-- (a cluster-wide lock from PreCommit_Notify to the end of the commit, WAL
-- flush included): with the NOTIFY in every enqueue, 64 web requests
-- committed at a third of their rate without it (BENCHMARKS.md). A daemon
-- that is busy, or that polls, needs no NOTIFY; only one that sleeps does.
--
-- Two advisory locks per job type, neither on a row:
--  - "enqueue": every enqueuing transaction holds it shared, from its
--    insert to its end;
--  - "asleep": a daemon sleeping on the type holds it shared, at session
--    level.
-- An enqueue sends the NOTIFY when it cannot take "asleep" exclusively (a
-- daemon sleeps, or another enqueue is probing at that instant). A daemon
-- falls asleep (jobd.sleep_on) only when it can take "enqueue" exclusively,
-- that is when no enqueue of the type is in flight; it takes "asleep" under
-- that lock and then claims once more. So an enqueue either committed
-- before the daemon fell asleep (the daemon's next claim sees it) or probes
-- "asleep" after, and notifies. While enqueues are always in flight, the
-- daemon cannot fall asleep: it polls, and the enqueues send nothing.
-- Locks are not MVCC: this holds whatever the enqueuer's isolation level.

CREATE OR REPLACE FUNCTION jobd.wake_key(job_type text, lock text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('jobd ' || lock || ' ' || job_type, 0)
$$;

CREATE OR REPLACE FUNCTION jobd.notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT DISTINCT job_type FROM inserted WHERE status = 0 LOOP
        PERFORM pg_advisory_xact_lock_shared(jobd.wake_key(t, 'enqueue'));
        IF pg_try_advisory_lock(jobd.wake_key(t, 'asleep')) THEN
            PERFORM pg_advisory_unlock(jobd.wake_key(t, 'asleep'));
        ELSE
            PERFORM pg_notify('jobd', t);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Called by a daemon (on a session of its own) after a claim of the type
-- came back short. asleep: whether this session holds "asleep" already.
-- Returns whether the session holds it now: true when no enqueue of the
-- type is in flight (a daemon that was not asleep then claims once more,
-- for the enqueues that committed since its claim), false when one is (the
-- daemon lets go of "asleep" and polls).
CREATE OR REPLACE FUNCTION jobd.sleep_on(job_type text, asleep boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_try_advisory_xact_lock(jobd.wake_key($1, 'enqueue')) THEN
        IF NOT $2 THEN
            PERFORM pg_advisory_lock_shared(jobd.wake_key($1, 'asleep'));
        END IF;
        RETURN true;
    END IF;
    IF $2 THEN
        PERFORM pg_advisory_unlock_shared(jobd.wake_key($1, 'asleep'));
    END IF;
    RETURN false;
END
$$;

-- A daemon that is busy again (its claim came back full) lets go.
CREATE OR REPLACE FUNCTION jobd.wake_from(job_type text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_unlock_shared(jobd.wake_key($1, 'asleep'))
$$;
