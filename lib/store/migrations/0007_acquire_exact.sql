-- jobd schema version 7: jobd.acquire made exact against claims and
-- requeues (SPEC §4.2: never two WAITING jobs of one type and target), and
-- job_failed_idx built without blocking writes.
--
-- This migration has a part outside its transaction (CREATE INDEX
-- CONCURRENTLY): its transactional part is idempotent, since a run that
-- stops between the two parts runs both again.

-- The jobs that jobd.acquire (and `jobd enqueue --unique`) made: only they
-- promise one WAITING job per type and target. A constant default: no
-- table rewrite, a brief ACCESS EXCLUSIVE lock (under lock_timeout).
ALTER TABLE jobd.job ADD COLUMN IF NOT EXISTS acquired boolean NOT NULL DEFAULT false;

-- The WAITING job is looked up FOR UPDATE, after the advisory lock:
--  - a claim that holds the row (SKIP LOCKED, then RUNNING) is waited
--    for; READ COMMITTED then reads the row again, finds it RUNNING and
--    makes a new job, so the caller's change is never left to a job that
--    had already started;
--  - the row stays locked until the caller commits, so no claim takes the
--    job before the caller's change is visible.
CREATE OR REPLACE FUNCTION jobd.acquire(
    job_type        text,
    target          text,
    json_data       jsonb DEFAULT '{}',
    scheduled_start timestamptz DEFAULT NULL,
    priority        integer DEFAULT 0,
    max_retries     integer DEFAULT 0,
    requester       text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    found_id bigint;
BEGIN
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'jobd.acquire needs a target' USING ERRCODE = '22004';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('jobd.acquire ' || $1 || ' ' || $2, 0));
    SELECT j.id INTO found_id
      FROM jobd.job AS j
     WHERE j.status = 0 AND j.target = $2 AND j.job_type = $1
     ORDER BY j.id
     LIMIT 1
       FOR UPDATE;
    IF found_id IS NOT NULL THEN
        RETURN found_id;
    END IF;
    INSERT INTO jobd.job (job_type, json_data, scheduled_start, priority, target, max_retries,
                          requester, acquired)
    VALUES ($1, COALESCE($3, '{}'), $4, COALESCE($5, 0), $2, COALESCE($6, 0), $7, true)
    RETURNING id INTO found_id;
    RETURN found_id;
END
$$;

-- An acquired job that goes back to WAITING (a retry, a release, a rescue,
-- an operator's resume or retry) while jobd.acquire has made another
-- WAITING job of its type and target meanwhile would be a second WAITING
-- job. It yields instead: the waiting one was made later, so its run
-- covers everything the returning one would have done. The returning job
-- ends FAILED, its log naming the job it yielded to; no OOPS, no notice.
-- Under the same advisory lock as jobd.acquire, so that the two cannot
-- both miss each other.
CREATE OR REPLACE FUNCTION jobd.requeue_acquired() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    twin bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended('jobd.acquire ' || NEW.job_type || ' ' || NEW.target, 0));
    SELECT j.id INTO twin
      FROM jobd.job AS j
     WHERE j.status = 0 AND j.target = NEW.target AND j.job_type = NEW.job_type
       AND j.id <> NEW.id
     ORDER BY j.id
     LIMIT 1;
    IF twin IS NOT NULL THEN
        NEW.status := 3;
        NEW.date_finished := now();
        NEW.lease_expires := NULL;
        NEW.log := concat_ws(E'\n', NEW.log,
                             'superseded by job ' || twin ||
                             ', WAITING for the same type and target');
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS job_requeue_acquired ON jobd.job;
CREATE TRIGGER job_requeue_acquired
    BEFORE UPDATE OF status ON jobd.job
    FOR EACH ROW WHEN (NEW.status = 0 AND OLD.status <> 0 AND NEW.acquired AND NEW.target IS NOT NULL)
    EXECUTE FUNCTION jobd.requeue_acquired();

-- jobd:outside-transaction

-- FAILED jobs by type and time: "failed in the last hour" and "the latest
-- failures" read a few index entries even when millions of COMPLETED rows
-- share job_finished_idx with them.
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_failed_idx ON jobd.job (job_type, date_finished) WHERE status = 3;
