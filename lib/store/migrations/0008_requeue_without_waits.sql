-- jobd schema version 8: an acquired job going back to WAITING never waits
-- for a caller of jobd.acquire.
--
-- Version 7's trigger took jobd.acquire's advisory lock, which a caller
-- holds until its own transaction ends (a web request's): the daemon's
-- outcome batch or rescue waited that long for every job behind it, and a
-- caller acquiring two targets could deadlock with a batch requeuing both.
-- Now the two sides are settled without the daemon ever waiting for a
-- caller:
--  - a job going back to WAITING yields to a WAITING job of its type and
--    target that it can see (one that a committed acquire made). Requeues
--    serialise among themselves on a lock of their own, which only short
--    transactions take (outcome batches, the rescue, operators' commands),
--    so that two jobs returning at once cannot both miss each other;
--  - a job that acquire makes is checked again when its caller commits (a
--    deferred constraint trigger): that check waits for any transaction
--    turning a job of the same type and target back to WAITING (it locks
--    the RUNNING and SUSPENDED ones, briefly, at COMMIT) and makes such a
--    job yield, since the new one, made later, covers it.
--
-- Locks: DROP TRIGGER takes ACCESS EXCLUSIVE on jobd.job and CREATE
-- CONSTRAINT TRIGGER SHARE ROW EXCLUSIVE, each for the rest of this
-- migration's transaction (milliseconds once granted). Both wait for every
-- transaction using jobd.job, and every enqueue and claim queues behind
-- them while they wait: lock_timeout (5 s) bounds that, and the migration
-- is tried again (docs/schema.md, "Migrations").

CREATE OR REPLACE FUNCTION jobd.requeue_acquired() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    twin bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended('jobd.requeue ' || NEW.job_type || ' ' || NEW.target, 0));
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

CREATE OR REPLACE FUNCTION jobd.acquired_at_commit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Wait for whoever is turning a job of this type and target back to
    -- WAITING; the statement after this one sees what it committed.
    PERFORM 1
       FROM jobd.job AS j
      WHERE j.target = NEW.target AND j.job_type = NEW.job_type AND j.id <> NEW.id
        AND j.status IN (1, 4)
        FOR UPDATE;
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

DROP TRIGGER IF EXISTS job_acquired_at_commit ON jobd.job;
CREATE CONSTRAINT TRIGGER job_acquired_at_commit
    AFTER INSERT ON jobd.job
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.acquired AND NEW.target IS NOT NULL)
    EXECUTE FUNCTION jobd.acquired_at_commit();
