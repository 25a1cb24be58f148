-- jobd schema version 5: least privilege for jobs' own database work.
--
-- A section's `dbuser` runs the job's work and marks the job COMPLETED in
-- the same transaction (SPEC §1's exactly-once effect). It needs no
-- privilege on jobd.job for that: this function runs as the schema's
-- owner and marks one job COMPLETED only while it is RUNNING under the
-- given attempt and lease owner, which the job's role cannot read. Grant a
-- dbuser USAGE on schema jobd and EXECUTE on this function, plus what its
-- own statements need, and nothing on jobd's tables (README, "Roles").
CREATE FUNCTION jobd.complete_in_job_transaction(job_id bigint, attempt integer, owner text)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH updated AS (
        UPDATE jobd.job
           SET status = 2, date_finished = now(), lease_expires = NULL
         WHERE id = job_id AND status + 0 = 1 AND attempt_count = attempt
           AND lease_owner = owner
        RETURNING 1
    )
    SELECT count(*) = 1 FROM updated
$$;
REVOKE ALL ON FUNCTION jobd.complete_in_job_transaction(bigint, integer, text) FROM PUBLIC;
