-- jobd schema version 22: what the dashboard's job lists and search read
-- (docs/schema.md, "Indexes").
--
-- The dashboard lists a job type's jobs by status, a page at a time by
-- keyset, and finds jobs by target. WAITING, RUNNING and finished jobs of
-- a type are served by the claim's, the rescue's and the cleaner's
-- indexes; two lists had none, and would have read the whole table at a
-- million finished jobs:
--  - the SUSPENDED jobs of a type (few, and written only when an operator
--    suspends one);
--  - the finished jobs of a target (only jobs with a target are in it: a
--    completion without one writes nothing more).
-- Nothing of the claim's path changes: no WAITING row enters either.
SELECT 1;

-- jobd:outside-transaction

CREATE INDEX CONCURRENTLY IF NOT EXISTS job_suspended_idx ON jobd.job (job_type, id) WHERE status = 4;
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_finished_target_idx ON jobd.job (target, date_finished) WHERE status IN (2, 3) AND target IS NOT NULL;
