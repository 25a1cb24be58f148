-- jobd schema version 18: progress and checkpoints (issue 19).
--
-- A running job reports how far it has got (a percentage and a short text)
-- and saves a checkpoint (a JSON value) to start again from. Both live in
-- jobd.job_progress, one row per job, apart from the hot jobd.job row, so
-- that a job reporting every second adds nothing to the claim's table and
-- its indexes. The daemon writes a job's row at most once a second, however
-- often the job reports, and writes what is left when the job ends, before
-- its outcome.
--
-- The checkpoint outlives the attempt that saved it: a job retried,
-- released by a draining daemon, released by a pause, or rescued after its
-- daemon died is claimed with its last checkpoint (the claim reads the row
-- by primary key), so a long job starts again from there rather than from
-- zero. A COMPLETED job that runs again (`jobd retry`) starts from nothing:
-- its row goes with its result (jobd.forget_result). The row is deleted
-- with its job.
CREATE TABLE jobd.job_progress (
    job_id bigint PRIMARY KEY REFERENCES jobd.job (id) ON DELETE CASCADE,
    -- The attempt that wrote percent and message last, and when it was
    -- claimed (a drain's release gives the attempt number back, so the
    -- number alone does not tell two runs apart).
    attempt integer NOT NULL,
    attempt_started timestamptz NOT NULL,
    percent double precision CHECK (percent BETWEEN 0 AND 100),
    message text CHECK (length(message) <= 200),
    reported timestamptz NOT NULL DEFAULT now(),
    checkpoint jsonb,
    -- The attempt that saved the checkpoint, and when.
    checkpoint_attempt integer,
    checkpointed timestamptz
);

-- Writes one job's progress, fenced on its attempt like every other write
-- of the daemon's: nothing is written, and false returned, unless the job is
-- RUNNING under this owner and attempt. No lock is taken on the job's row
-- (which stays as it is: no lock-only version, no WAL for it): a run is
-- known by its claim's date_started, which a later claim of the job always
-- passes, and a write never replaces one of a later run. So a write whose
-- check saw its run still RUNNING just before a rescue and a new claim
-- cannot overwrite what the new run saved.
-- percent and message NULL: not reported by this write (kept from earlier
-- in the same run, cleared by a new run); with_checkpoint false: the
-- checkpoint is kept.
CREATE FUNCTION jobd.save_progress(job_id bigint, attempt integer, owner text,
                                   percent double precision, message text,
                                   with_checkpoint boolean, checkpoint jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    started timestamptz;
BEGIN
    SELECT j.date_started INTO started FROM jobd.job AS j
     WHERE j.id = save_progress.job_id AND j.status + 0 = 1
       AND j.lease_owner = save_progress.owner AND j.attempt_count = save_progress.attempt;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO jobd.job_progress AS p
           (job_id, attempt, attempt_started, percent, message, reported, checkpoint,
            checkpoint_attempt, checkpointed)
    VALUES ($1, $2, started, $4, $5, now(), CASE WHEN $6 THEN $7 END, CASE WHEN $6 THEN $2 END,
            CASE WHEN $6 THEN now() END)
    ON CONFLICT (job_id) DO UPDATE
       SET attempt = EXCLUDED.attempt,
           attempt_started = EXCLUDED.attempt_started,
           percent = CASE WHEN EXCLUDED.percent IS NOT NULL
                            OR p.attempt_started <> EXCLUDED.attempt_started
                          THEN EXCLUDED.percent ELSE p.percent END,
           message = CASE WHEN EXCLUDED.message IS NOT NULL
                            OR p.attempt_started <> EXCLUDED.attempt_started
                          THEN EXCLUDED.message ELSE p.message END,
           reported = now(),
           checkpoint = CASE WHEN $6 THEN $7 ELSE p.checkpoint END,
           checkpoint_attempt = CASE WHEN $6 THEN $2 ELSE p.checkpoint_attempt END,
           checkpointed = CASE WHEN $6 THEN now() ELSE p.checkpointed END
     WHERE p.attempt_started <= EXCLUDED.attempt_started;
    RETURN FOUND;
END
$$;

-- A claimed job, as jobd.claim_ready returns it.
CREATE TYPE jobd.claimed_job AS (id bigint, attempt_count integer, max_retries integer,
                                 priority smallint, target text, payload_size integer,
                                 payload text, waited double precision);

-- The claim with each claimed job's last checkpoint, read by primary key.
-- A function, like jobd.claim_ready, so that its statements are planned
-- once per session: the daemon's connections plan every statement of their
-- own anew (plan_cache_mode = force_custom_plan), and planning a subquery
-- at every claim cost 13% of the drain at 128 workers (A/B of 2026-12-06).
-- Two statements: the checkpoints are read with a snapshot taken after
-- the claim's, so a checkpoint committed before whatever made the job
-- claimable (a drain writes the last one just before its release) is
-- always seen.
CREATE FUNCTION jobd.claim_with_checkpoints(text, integer, interval, text, bigint)
RETURNS TABLE (id bigint, attempt_count integer, max_retries integer, priority smallint,
               target text, payload_size integer, payload text, waited double precision,
               checkpoint text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $fn$
#variable_conflict use_column
DECLARE
    claimed jobd.claimed_job[];
BEGIN
    SELECT array_agg(ROW(c.id, c.attempt_count, c.max_retries, c.priority, c.target,
                         c.payload_size, c.payload, c.waited)::jobd.claimed_job
                     ORDER BY c.priority, c.id)
      INTO claimed
      FROM jobd.claim_ready($1, $2, $3, $4, $5) AS c;
    IF claimed IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT c.id, c.attempt_count, c.max_retries, c.priority, c.target, c.payload_size,
           c.payload, c.waited,
           (SELECT p.checkpoint::text FROM jobd.job_progress AS p WHERE p.job_id = c.id)
      FROM unnest(claimed) WITH ORDINALITY AS c
     ORDER BY c.ordinality;
END
$fn$;

-- A `sql` job's report: its statement calls this, and the notice it raises
-- reaches the daemon on the job's own connection while the statement runs
-- (a row written in the job's transaction would only be seen at its
-- commit, and lost with its rollback). The daemon takes it as a C++
-- handler's report: at most one write a second. Outside a jobd job it does
-- nothing but raise the notice.
CREATE FUNCTION jobd.report_progress(job_id bigint, percent double precision,
                                     message text DEFAULT NULL, checkpoint jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'jobd_progress %', json_build_object(
        'job_id', job_id, 'percent', percent, 'message', message, 'checkpoint', checkpoint);
END
$$;

-- A COMPLETED job that runs again starts from nothing (version 16's
-- function, which also forgets the progress now).
CREATE OR REPLACE FUNCTION jobd.forget_result() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM jobd.job_result WHERE job_id = NEW.id;
    DELETE FROM jobd.job_progress WHERE job_id = NEW.id;
    RETURN NULL;
END
$$;
