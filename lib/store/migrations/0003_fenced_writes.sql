-- jobd schema version 3: the daemon's batched fenced writes (completions
-- and lease renewals) as functions whose plan cannot depend on statistics.
--
-- The earlier form joined unnest(ids, attempts) to jobd.job and let the
-- planner choose the join order from statistics; statistics taken while
-- the queue was idle say that no job is RUNNING and no row has a
-- lease_owner. The fences then looked like they kept one row, the planner
-- put jobd.job on the outer side of a nested loop, and a batch of 1,000
-- completions compared every RUNNING row with every id: seconds per batch
-- in the drain benchmark (docs/architecture.md, "Outcomes"). Here there is
-- no join: `id = ANY (ids)` is a primary-key lookup, each row's attempt is
-- looked up by its position in the array, and `status + 0 = 1` keeps the
-- planner off the partial indexes on RUNNING rows, which the same
-- statistics make look free.

-- Marks each (id, attempt) COMPLETED if this owner still holds it; returns
-- the ids it did not hold (their lease was lost, nothing was written).
CREATE FUNCTION jobd.complete_jobs(ids bigint[], attempts integer[], owner text)
RETURNS SETOF bigint
LANGUAGE sql AS $$
    WITH updated AS (
        UPDATE jobd.job AS j
           SET status = 2, date_finished = now(), lease_expires = NULL
         WHERE j.id = ANY (ids) AND j.status + 0 = 1 AND j.lease_owner = owner
           AND j.attempt_count = attempts[array_position(ids, j.id)]
        RETURNING j.id
    )
    SELECT d.id FROM unnest(ids) AS d(id) WHERE d.id NOT IN (SELECT id FROM updated)
$$;

-- Extends each lease by its own duration if this owner still holds the job;
-- returns the ids it did not hold.
CREATE FUNCTION jobd.renew_leases(ids bigint[], attempts integer[], lease_us bigint[],
                                  owner text)
RETURNS SETOF bigint
LANGUAGE sql AS $$
    WITH renewed AS (
        UPDATE jobd.job AS j
           SET lease_expires = now() + lease_us[array_position(ids, j.id)] * interval '1 microsecond'
         WHERE j.id = ANY (ids) AND j.status + 0 = 1 AND j.lease_owner = owner
           AND j.attempt_count = attempts[array_position(ids, j.id)]
        RETURNING j.id
    )
    SELECT d.id FROM unnest(ids) AS d(id) WHERE d.id NOT IN (SELECT id FROM renewed)
$$;
