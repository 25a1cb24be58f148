-- jobd schema version 16: a job's result, and waiting for a job to finish
-- (issue 19, "Results").
--
-- A job may return a JSON result, written with its COMPLETED mark, in the
-- same transaction, into jobd.job_result (apart from the hot jobd.job
-- row), and deleted with its job. `jobd wait ID` (or an application) asks
-- to hear when a job finishes: jobd.watch(id) sets the job's `waited` flag,
-- and the trigger below sends NOTIFY jobd_finished, '<id>' when such a job
-- becomes COMPLETED or FAILED, or is deleted, in the transaction that does
-- it, so the waiter wakes at its COMMIT. Jobs nobody waits for send
-- nothing: the trigger's WHEN clause is false for them, and jobd.job has
-- row triggers on UPDATE OF status already, so the claim and the outcome
-- batches pay one more boolean test per row.

ALTER TABLE jobd.job ADD COLUMN waited boolean NOT NULL DEFAULT false;

CREATE TABLE jobd.job_result (
    job_id   bigint PRIMARY KEY REFERENCES jobd.job (id) ON DELETE CASCADE,
    result   jsonb NOT NULL,
    written  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION jobd.notify_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('jobd_finished', OLD.id::text);
    ELSE
        PERFORM pg_notify('jobd_finished', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER job_notify_finished
    AFTER UPDATE OF status ON jobd.job
    FOR EACH ROW WHEN (NEW.waited AND NEW.status IN (2, 3) AND OLD.status <> NEW.status)
    EXECUTE FUNCTION jobd.notify_finished();
-- A waited job deleted before it finished (the cleaner deletes finished
-- ones, whose waiters have heard already).
CREATE TRIGGER job_notify_deleted
    AFTER DELETE ON jobd.job
    FOR EACH ROW WHEN (OLD.waited AND OLD.status NOT IN (2, 3))
    EXECUTE FUNCTION jobd.notify_finished();

-- A COMPLETED job that runs again (`jobd retry`, an application's
-- requeue) loses its result: the next run's, or none, is its result.
CREATE FUNCTION jobd.forget_result() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM jobd.job_result WHERE job_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER job_forget_result
    AFTER UPDATE OF status ON jobd.job
    FOR EACH ROW WHEN (OLD.status = 2 AND NEW.status <> 2)
    EXECUTE FUNCTION jobd.forget_result();

-- Asks for NOTIFY jobd_finished, '<job_id>' when the job finishes: call it
-- after LISTEN jobd_finished has committed, and wait when it returns a
-- status other than COMPLETED (2) or FAILED (3). Returns the job's status,
-- or NULL when there is no such job. A job that finishes while this waits
-- for its row lock is seen finished (READ COMMITTED reads the row again).
-- SECURITY DEFINER: a role that may wait needs EXECUTE on it, not UPDATE
-- on jobd.job.
CREATE FUNCTION jobd.watch(job_id bigint) RETURNS smallint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    now_status smallint;
BEGIN
    UPDATE jobd.job AS j SET waited = true
     WHERE j.id = watch.job_id AND j.status NOT IN (2, 3) AND NOT j.waited
    RETURNING j.status INTO now_status;
    IF now_status IS NULL THEN
        SELECT j.status INTO now_status FROM jobd.job AS j WHERE j.id = watch.job_id;
    END IF;
    RETURN now_status;
END
$$;

-- The COMPLETED mark a database handler's own transaction writes, with the
-- job's result (version 5's function, which stays for jobs without one).
CREATE FUNCTION jobd.complete_in_job_transaction(job_id bigint, attempt integer, owner text,
                                                 result jsonb)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    marked boolean;
BEGIN
    marked := jobd.complete_in_job_transaction($1, $2, $3);
    IF marked AND $4 IS NOT NULL THEN
        INSERT INTO jobd.job_result (job_id, result) VALUES ($1, $4)
        ON CONFLICT (job_id) DO UPDATE SET result = EXCLUDED.result, written = now();
    END IF;
    RETURN marked;
END
$$;
REVOKE ALL ON FUNCTION jobd.complete_in_job_transaction(bigint, integer, text, jsonb) FROM PUBLIC;

-- Every role that may call the three-argument function (a section's
-- dbuser) may call this one.
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT pg_get_userbyid(a.grantee)
          FROM pg_proc AS p, aclexplode(p.proacl) AS a
         WHERE p.oid = 'jobd.complete_in_job_transaction(bigint, integer, text)'::regprocedure
           AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION '
                       'jobd.complete_in_job_transaction(bigint, integer, text, jsonb) TO %I',
                       grantee);
    END LOOP;
END
$$;
