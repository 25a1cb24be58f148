-- jobd schema version 3: the daemon's batched fenced writes (completions
-- and lease renewals) as functions that find each job by its id.
--
-- The set-based form (UPDATE ... FROM unnest(ids, attempts)) let the
-- planner choose the join order from statistics, and statistics taken while
-- the queue was idle say that no job is RUNNING and no row has a
-- lease_owner. The fences then looked like they kept one row, the planner
-- put jobd.job on the outer side of a nested loop, and a batch of 1,000
-- completions compared every RUNNING row with every id: seconds per batch
-- in the drain benchmark (docs/schema.md). Here each job is one UPDATE by
-- id, whose only sensible plan is the primary key; `status + 0 = 1` keeps
-- the planner off the partial indexes on RUNNING rows, which the same
-- statistics make look free.

-- Marks each (id, attempt) COMPLETED if this owner still holds it; returns
-- the ids it did not hold (their lease was lost, nothing was written).
CREATE FUNCTION jobd.complete_jobs(ids bigint[], attempts integer[], owner text)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        UPDATE jobd.job
           SET status = 2, date_finished = now(), lease_expires = NULL
         WHERE id = ids[i] AND status + 0 = 1 AND attempt_count = attempts[i]
           AND lease_owner = owner;
        IF NOT FOUND THEN
            RETURN NEXT ids[i];
        END IF;
    END LOOP;
END
$$;

-- Extends each lease by its own duration if this owner still holds the job;
-- returns the ids it did not hold.
CREATE FUNCTION jobd.renew_leases(ids bigint[], attempts integer[], lease_us bigint[],
                                  owner text)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        UPDATE jobd.job
           SET lease_expires = now() + lease_us[i] * interval '1 microsecond'
         WHERE id = ids[i] AND status + 0 = 1 AND attempt_count = attempts[i]
           AND lease_owner = owner;
        IF NOT FOUND THEN
            RETURN NEXT ids[i];
        END IF;
    END LOOP;
END
$$;
