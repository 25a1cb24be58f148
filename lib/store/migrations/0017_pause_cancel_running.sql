-- jobd schema version 17: a pause that also stops the jobs of the type (or
-- target) that are running (`jobd pause --cancel-running`, issue 19).
--
-- The running jobs are released: WAITING again, with an attempt row
-- `released` and the error type `Paused`. Unlike a drain's release, the
-- attempt is not given back: the stopped run may still be finishing when
-- the pause ends, and the next claim's higher attempt number is what
-- fences its writes out (and what makes its daemon stop it, if it is the
-- same one). The daemons running them lose those leases:
-- NOTIFY jobd, 'jobd.leases' makes every daemon renew its leases at once,
-- and a renewal that finds a lease gone stops the job (its outcome is not
-- written; its work, in its own transaction, is rolled back). Jobs whose
-- work is outside the database may have done part of it: they run again
-- from the start when the pause ends.

CREATE FUNCTION jobd.pause(job_type text, target text, until timestamptz, reason text,
                           paused_by text, cancel_running boolean)
RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    replaced boolean;
    stopped integer;
BEGIN
    replaced := jobd.pause($1, $2, $3, $4, $5);
    IF $6 THEN
        -- Locked in id order, as outcome batches lock theirs: no deadlock.
        WITH running AS (
            SELECT j.id FROM jobd.job AS j
             WHERE j.status = 1 AND j.job_type = $1 AND ($2 IS NULL OR j.target = $2)
             ORDER BY j.id FOR UPDATE
        ), released AS (
            UPDATE jobd.job AS j
               SET status = 0, lease_expires = NULL, date_finished = now(),
                   scheduled_start = now()
              FROM running AS r
             WHERE j.id = r.id AND j.status = 1
            RETURNING j.id, j.attempt_count AS attempt, j.lease_owner, j.date_started
        )
        INSERT INTO jobd.job_attempt (job_id, attempt, daemon, date_started, outcome,
                                      error_type, error_message)
        SELECT r.id, r.attempt, r.lease_owner, r.date_started, 'released', 'Paused',
               'stopped by a pause with cancel_running'
               || CASE WHEN COALESCE($4, '') = '' THEN '' ELSE ': ' || $4 END
          FROM released AS r;
        GET DIAGNOSTICS stopped = ROW_COUNT;
        IF stopped > 0 THEN
            PERFORM pg_notify('jobd', 'jobd.leases');
        END IF;
    END IF;
    RETURN replaced;
END
$$;
