-- jobd schema version 23: the dashboard's trends, a row per job type and
-- minute (docs/schema.md, "Trends").
--
-- The dashboard draws, per job type, for the last hour (6 h, 24 h): jobs
-- completed and failed per minute, the ready queue's depth, and the queue
-- latency (ready to started, p50 and p95). A page must not scan jobd.job
-- for that, so the daemons roll finished jobs up into jobd.job_minute:
--  - jobd.roll_up_minutes(), which each daemon calls every 10 s (one at a
--    time: the others find its lock taken and return at once), counts each
--    type's jobs that finished (COMPLETED or FAILED, by date_finished) in
--    each whole minute that ended at least 5 s before, and their latency,
--    from job_finished_idx; a minute is rolled up once, whole, and
--    jobd.job_minute_rolled says how far each type is. A type seen for the
--    first time is rolled up from an hour back, an hour of minutes a call,
--    so that an upgrade reads nothing old at once.
--  - each call also samples each type's ready jobs (WAITING, unscheduled
--    or due; at most 100,000 counted) into the current minute: the most it
--    saw in the minute; a type with none gets no row, unless it had one in
--    the last hour (so that a type gone quiet stops adding rows).
-- A job that a database handler completes in its own transaction had
-- date_finished = now(), its transaction's start: a job longer than the
-- roll-up's 5 s would end in a minute rolled up before it committed. It is
-- the time it finished from now on (clock_timestamp()).
-- Nothing of the claim's or the outcomes' path changes otherwise. The
-- cleaner prunes a type's rows with its keep_finished.

CREATE TABLE jobd.job_minute (
    job_type    text NOT NULL,
    minute      timestamptz NOT NULL,
    completed   integer NOT NULL DEFAULT 0,
    failed      integer NOT NULL DEFAULT 0,
    -- Seconds from ready (created, or scheduled_start when later) to
    -- started, of the last attempt of the jobs that finished in the
    -- minute; NULL when none did.
    latency_p50 double precision,
    latency_p95 double precision,
    -- The most ready jobs a sample counted in the minute; NULL: no sample.
    ready       integer,
    PRIMARY KEY (job_type, minute)
);

CREATE TABLE jobd.job_minute_rolled (
    job_type text PRIMARY KEY,
    -- Every minute from `since` (the first rolled up) to before `through`
    -- is rolled up: a minute there without a row had no finished job.
    since    timestamptz NOT NULL,
    through  timestamptz NOT NULL
);

CREATE FUNCTION jobd.roll_up_minutes() RETURNS integer
LANGUAGE plpgsql
SET jit = off
AS $fn$
DECLARE
    upto timestamptz := date_trunc('minute', now() - interval '5 s');
    this_minute timestamptz := date_trunc('minute', now());
    since timestamptz;
    till timestamptz;
    t text;
    minutes integer := 0;
    n integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('jobd.roll_up_minutes', 0)) THEN
        RETURN NULL;
    END IF;
    -- The types with finished or waiting jobs, each found by a loose index
    -- scan (one probe a type).
    FOR t IN
        WITH RECURSIVE finished AS (
            (SELECT j.job_type FROM jobd.job AS j WHERE j.status IN (2, 3)
              ORDER BY j.job_type LIMIT 1)
            UNION ALL
            SELECT (SELECT j.job_type FROM jobd.job AS j
                     WHERE j.status IN (2, 3) AND j.job_type > f.job_type
                     ORDER BY j.job_type LIMIT 1)
              FROM finished AS f WHERE f.job_type IS NOT NULL
        ), waiting AS (
            (SELECT j.job_type FROM jobd.job AS j WHERE j.status = 0 AND j.scheduled_start IS NULL
              ORDER BY j.job_type LIMIT 1)
            UNION ALL
            SELECT (SELECT j.job_type FROM jobd.job AS j
                     WHERE j.status = 0 AND j.scheduled_start IS NULL AND j.job_type > w.job_type
                     ORDER BY j.job_type LIMIT 1)
              FROM waiting AS w WHERE w.job_type IS NOT NULL
        ), scheduled AS (
            (SELECT j.job_type FROM jobd.job AS j
              WHERE j.status = 0 AND j.scheduled_start IS NOT NULL
              ORDER BY j.job_type LIMIT 1)
            UNION ALL
            SELECT (SELECT j.job_type FROM jobd.job AS j
                     WHERE j.status = 0 AND j.scheduled_start IS NOT NULL
                       AND j.job_type > s.job_type
                     ORDER BY j.job_type LIMIT 1)
              FROM scheduled AS s WHERE s.job_type IS NOT NULL
        )
        SELECT f.job_type FROM finished AS f WHERE f.job_type IS NOT NULL
        UNION SELECT w.job_type FROM waiting AS w WHERE w.job_type IS NOT NULL
        UNION SELECT s.job_type FROM scheduled AS s WHERE s.job_type IS NOT NULL
    LOOP
        SELECT r.through INTO since FROM jobd.job_minute_rolled AS r WHERE r.job_type = t;
        since := COALESCE(since, upto - interval '1 hour');
        -- Ten minutes a call at most: a catch-up (after an outage, or an
        -- upgrade) is a few short statements, not one long one.
        till := LEAST(upto, since + interval '10 minutes');
        IF till > since THEN
            INSERT INTO jobd.job_minute AS m (job_type, minute, completed, failed, latency_p50,
                                              latency_p95)
            SELECT t, date_trunc('minute', j.date_finished),
                   count(*) FILTER (WHERE j.status = 2), count(*) FILTER (WHERE j.status = 3),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
                       j.date_started - GREATEST(j.date_created, j.scheduled_start))),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM
                       j.date_started - GREATEST(j.date_created, j.scheduled_start)))
              FROM jobd.job AS j
             WHERE j.job_type = t AND j.status IN (2, 3)
               AND j.date_finished >= since AND j.date_finished < till
             GROUP BY 2
            ON CONFLICT (job_type, minute) DO UPDATE
               SET completed = EXCLUDED.completed, failed = EXCLUDED.failed,
                   latency_p50 = EXCLUDED.latency_p50, latency_p95 = EXCLUDED.latency_p95;
            GET DIAGNOSTICS n = ROW_COUNT;
            minutes := minutes + n;
            INSERT INTO jobd.job_minute_rolled AS r (job_type, since, through)
            VALUES (t, since, till)
            ON CONFLICT (job_type) DO UPDATE SET through = EXCLUDED.through;
        END IF;
        INSERT INTO jobd.job_minute AS m (job_type, minute, ready)
        SELECT t, this_minute, sample.ready_now
          FROM (SELECT LEAST(100000,
                  (SELECT count(*) FROM (SELECT 1 FROM jobd.job AS j
                                          WHERE j.job_type = t AND j.status = 0
                                            AND j.scheduled_start IS NULL
                                          LIMIT 100000) AS u)
                  + (SELECT count(*) FROM (SELECT 1 FROM jobd.job AS j
                                            WHERE j.job_type = t AND j.status = 0
                                              AND j.scheduled_start IS NOT NULL
                                              AND j.scheduled_start <= now()
                                            LIMIT 100000) AS d))::integer AS ready_now) AS sample
         WHERE sample.ready_now > 0
            OR EXISTS (SELECT 1 FROM jobd.job_minute AS q
                        WHERE q.job_type = t AND q.minute >= this_minute - interval '1 hour')
        ON CONFLICT (job_type, minute) DO UPDATE
           SET ready = GREATEST(m.ready, EXCLUDED.ready);
    END LOOP;
    RETURN minutes;
END
$fn$;

-- Version 5's COMPLETED mark in a database handler's own transaction, at
-- the time the job finished rather than when its transaction began (the
-- roll-up above counts a minute once, 5 s after it ends). The privileges
-- granted on it stay (CREATE OR REPLACE).
CREATE OR REPLACE FUNCTION jobd.complete_in_job_transaction(job_id bigint, attempt integer,
                                                            owner text)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH updated AS (
        UPDATE jobd.job
           SET status = 2, date_finished = clock_timestamp(), lease_expires = NULL
         WHERE id = job_id AND status + 0 = 1 AND attempt_count = attempt
           AND lease_owner = owner
        RETURNING 1
    )
    SELECT count(*) = 1 FROM updated
$$;
