-- jobd schema version 6: a freed target wakes the daemons of the jobs
-- waiting on it.
--
-- Jobs that share a target run one at a time, whatever their types
-- (SPEC §4.4). When the running one ends (completed, failed, requeued,
-- suspended, rescued), a WAITING job of another type on that target
-- becomes ready, but nothing told the daemons that serve that type: they
-- found it at their next poll. This trigger sends one NOTIFY per waiting
-- type on the freed target (read from job_waiting_target_idx), only for
-- jobs that have a target and only when some job waits on it, so the
-- commits of untargeted jobs pay nothing. PostgreSQL folds identical
-- notifications of one transaction into one.
CREATE FUNCTION jobd.notify_target_freed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobd', w.job_type)
       FROM (SELECT DISTINCT j.job_type FROM jobd.job AS j
              WHERE j.status = 0 AND j.target = OLD.target AND j.id <> OLD.id) AS w;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_notify_target_freed
    AFTER UPDATE OF status ON jobd.job
    FOR EACH ROW WHEN (OLD.status = 1 AND NEW.status <> 1 AND OLD.target IS NOT NULL)
    EXECUTE FUNCTION jobd.notify_target_freed();
