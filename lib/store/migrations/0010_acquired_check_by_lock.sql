-- jobd schema version 10: the check of an acquired job at its caller's
-- COMMIT waits on the requeue lock instead of locking rows.
--
-- Version 8's check locked the RUNNING and SUSPENDED jobs of the type and
-- target to wait for a requeue in flight. That missed the requeues of
-- other rows (an operator's retry of a COMPLETED or FAILED job, committing
-- at the same instant, left two WAITING jobs), and its predicate
-- (status IN (1, 4)) matched no index, so every acquire that made a job
-- read the whole of jobd.job at COMMIT.
--
-- Every requeue of an acquired job (job_requeue_acquired) holds the
-- advisory lock "jobd.requeue <type> <target>" until its transaction ends.
-- The check now takes the same lock: it waits for any requeue in flight,
-- whatever the row's status was, and the statement after the lock sees
-- what that requeue committed (READ COMMITTED, as jobd.acquire requires).
-- A requeue that starts after the lock waits for this commit and then sees
-- the new job, and yields to it. The update reads job_waiting_target_idx
-- only. Only the function changes: no lock on jobd.job.

CREATE OR REPLACE FUNCTION jobd.acquired_at_commit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended('jobd.requeue ' || NEW.job_type || ' ' || NEW.target, 0));
    UPDATE jobd.job AS j
       SET status = 3,
           date_finished = now(),
           lease_expires = NULL,
           log = concat_ws(E'\n', j.log,
                           'superseded by job ' || NEW.id ||
                           ', WAITING for the same type and target')
     WHERE j.target = NEW.target AND j.job_type = NEW.job_type AND j.id <> NEW.id
       AND j.status = 0 AND j.acquired
       AND EXISTS (SELECT 1 FROM jobd.job AS mine WHERE mine.id = NEW.id AND mine.status = 0);
    RETURN NULL;
END
$$;
