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
    -- The attempt that wrote percent and message last.
    attempt integer NOT NULL,
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
-- RUNNING under this owner and attempt. The job's row is locked FOR SHARE
-- until the write commits, so a rescue or a claim cannot give the job to
-- another attempt in between, whose checkpoint this one would overwrite.
-- percent and message NULL: not reported by this write (kept from earlier
-- in the same attempt, cleared at a new attempt); with_checkpoint false:
-- the checkpoint is kept.
CREATE FUNCTION jobd.save_progress(job_id bigint, attempt integer, owner text,
                                   percent double precision, message text,
                                   with_checkpoint boolean, checkpoint jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM jobd.job AS j
      WHERE j.id = save_progress.job_id AND j.status + 0 = 1
        AND j.lease_owner = save_progress.owner AND j.attempt_count = save_progress.attempt
        FOR SHARE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO jobd.job_progress AS p
           (job_id, attempt, percent, message, reported, checkpoint, checkpoint_attempt,
            checkpointed)
    VALUES ($1, $2, $4, $5, now(), CASE WHEN $6 THEN $7 END, CASE WHEN $6 THEN $2 END,
            CASE WHEN $6 THEN now() END)
    ON CONFLICT (job_id) DO UPDATE
       SET attempt = EXCLUDED.attempt,
           percent = CASE WHEN EXCLUDED.percent IS NOT NULL OR p.attempt <> EXCLUDED.attempt
                          THEN EXCLUDED.percent ELSE p.percent END,
           message = CASE WHEN EXCLUDED.message IS NOT NULL OR p.attempt <> EXCLUDED.attempt
                          THEN EXCLUDED.message ELSE p.message END,
           reported = now(),
           checkpoint = CASE WHEN $6 THEN $7 ELSE p.checkpoint END,
           checkpoint_attempt = CASE WHEN $6 THEN $2 ELSE p.checkpoint_attempt END,
           checkpointed = CASE WHEN $6 THEN now() ELSE p.checkpointed END;
    RETURN true;
END
$$;

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
