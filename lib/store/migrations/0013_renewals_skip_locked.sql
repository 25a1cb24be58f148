-- jobd schema version 13: a lease renewal never waits for a row lock.
--
-- jobd.renew_leases (version 3) renews every lease of a daemon in one
-- UPDATE. A row that another transaction holds locked made it wait: a
-- `sql` job whose connection stalled after its fenced COMPLETED mark and
-- before its COMMIT keeps its own row locked until the server ends that
-- session (the job's idle_in_transaction_session_timeout, timeout +
-- kill_grace + 5 s), and an operator's command holds rows for the length
-- of its transaction. The renewal then ran into its deadline, every lease
-- of the daemon went unrenewed, the daemon stopped claiming, and leases
-- of jobs that were running well expired and were rescued: one stalled
-- job made others run twice.
--
-- jobd.renew_held_leases locks the rows it renews with SKIP LOCKED and
-- renews only those. For each id it did not renew it says why: `lost`
-- (the row is gone, or no longer RUNNING under this owner and attempt),
-- or not lost (the row was locked by another transaction: neither
-- renewed nor known to be lost; the daemon does not extend that job's
-- local lease deadline and asks again at the next renewal). As in
-- version 3, rows are found by primary key (`id = ANY (...)`), with no
-- join whose order statistics could choose; the answer's lookups in the
-- CTEs are hashed subplans, not scans of an array per id.
--
-- jobd.renew_leases stays for the daemons of version 12 that still run
-- while this one is applied; nothing of version 13 calls it.
CREATE FUNCTION jobd.renew_held_leases(ids bigint[], attempts integer[], lease_us bigint[],
                                       owner text)
RETURNS TABLE (id bigint, lost boolean)
LANGUAGE sql AS $$
    WITH unlocked AS MATERIALIZED (
        SELECT j.id FROM jobd.job AS j
         WHERE j.id = ANY (ids)
           FOR NO KEY UPDATE SKIP LOCKED
    ), renewed AS (
        UPDATE jobd.job AS j
           SET lease_expires = now() + lease_us[array_position(ids, j.id)] * interval '1 microsecond'
         WHERE j.id = ANY (ARRAY(SELECT u.id FROM unlocked AS u))
           AND j.status + 0 = 1 AND j.lease_owner = owner
           AND j.attempt_count = attempts[array_position(ids, j.id)]
        RETURNING j.id
    )
    SELECT d.id,
           d.id IN (SELECT u.id FROM unlocked AS u)
           OR NOT EXISTS (SELECT 1 FROM jobd.job AS x WHERE x.id = d.id)
      FROM unnest(ids) AS d(id)
     WHERE d.id NOT IN (SELECT r.id FROM renewed AS r)
$$;
