-- jobd schema version 11: the claim is a function with a plan of its own.
--
-- The daemon planned its claim anew at every run (plan_cache_mode =
-- force_custom_plan on its connections, since a generic plan made by the
-- default setting from an empty queue's statistics read jobd.job by
-- sequential scans and took 630 ms a claim once a backlog came). Planning
-- took as long as the execution: 0.4 ms of the 1.1 ms between an enqueue's
-- commit and its handler on an idle daemon, and most of a small claim.
--
-- jobd.claim_ready runs the same statement under settings of its own,
-- which apply while it runs and to nothing else on the connection: one
-- generic plan, cached for the session, with sequential scans, bitmap
-- scans, hash joins and merge joins ruled out, so the plan it makes is the
-- same whatever the statistics were when it was made: each branch reads its
-- own partial index in order, the probe for a held target reads the
-- RUNNING rows' indexes, every other lookup of a row is by primary key, and
-- the UPDATE finds its rows through id = ANY (ARRAY(...)), which only the
-- primary key serves. jit is off for the same reason (a generic plan
-- guesses a tenth of the table for LIMIT $2, which can pass
-- jit_above_cost). The search_path is the caller's, not pinned: triggers
-- on jobd.job fire inside the claim and resolve their own names with it.
-- Only a function is added: no lock on jobd.job.
--
-- Parameters and result as the daemon's claim (JobRepository::claim):
-- job type, limit, lease, lease owner, max_payload; id, attempt_count,
-- max_retries, priority, target, the payload's size, the payload as text
-- when it fits, and the seconds the job waited.

CREATE OR REPLACE FUNCTION jobd.claim_ready(text, integer, interval, text, bigint)
RETURNS TABLE (id bigint, attempt_count integer, max_retries integer, priority smallint,
               target text, payload_size integer, payload text, waited double precision)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH unscheduled AS MATERIALIZED (
      SELECT j.id, j.priority, j.target
        FROM jobd.job AS j
       WHERE j.status = 0 AND j.job_type = $1 AND j.scheduled_start IS NULL
         AND (j.lease_expires IS NULL OR j.lease_expires <= now())
         AND (j.target IS NULL OR NOT EXISTS (
               SELECT 1 FROM jobd.job AS r WHERE r.status = 1 AND r.target = j.target))
       ORDER BY j.priority, j.id
       LIMIT $2
       FOR UPDATE SKIP LOCKED
    ), due_window AS MATERIALIZED (
      SELECT j.id, j.priority
        FROM jobd.job AS j
       WHERE j.status = 0 AND j.job_type = $1 AND j.scheduled_start IS NOT NULL
         AND j.scheduled_start <= now()
         AND (j.lease_expires IS NULL OR j.lease_expires <= now())
         AND (j.target IS NULL OR NOT EXISTS (
               SELECT 1 FROM jobd.job AS r WHERE r.status = 1 AND r.target = j.target))
       ORDER BY j.scheduled_start
       LIMIT 1000 + $2
    ), due AS MATERIALIZED (
      SELECT j.id, j.priority, j.target
        FROM (SELECT w.id, w.priority FROM due_window AS w ORDER BY w.priority, w.id) AS w
       CROSS JOIN LATERAL (
         SELECT r.id, r.priority, r.target
           FROM jobd.job AS r
          WHERE r.id = w.id AND r.status = 0 AND r.job_type = $1 AND r.scheduled_start IS NOT NULL
            AND r.scheduled_start <= now()
            AND (r.lease_expires IS NULL OR r.lease_expires <= now())
          LIMIT 1
          FOR UPDATE SKIP LOCKED
       ) AS j
       ORDER BY w.priority, w.id
       LIMIT $2
    ), picked AS (
      SELECT id FROM (
        SELECT DISTINCT ON (c.target IS NULL, COALESCE(c.target, c.id::text)) c.id, c.priority
          FROM (SELECT * FROM unscheduled UNION ALL SELECT * FROM due) AS c
         ORDER BY c.target IS NULL, COALESCE(c.target, c.id::text), c.priority, c.id
      ) AS one_per_target
      ORDER BY priority, id
      LIMIT $2
    ), claimed AS (
      UPDATE jobd.job AS j
         SET status = 1, attempt_count = j.attempt_count + 1, date_started = now(),
             date_finished = NULL, lease_expires = now() + $3::interval, lease_owner = $4
       WHERE j.id = ANY (ARRAY(SELECT id FROM picked))
      RETURNING j.id, j.job_type, j.attempt_count, j.max_retries, j.priority, j.target, j.json_data,
                date_part('epoch', now() - GREATEST(j.date_created, j.scheduled_start)) AS waited
    )
    SELECT c.id, c.attempt_count, c.max_retries, c.priority, c.target, octet_length(t.text),
           CASE WHEN octet_length(t.text) <= $5 THEN t.text END, c.waited
      FROM claimed AS c CROSS JOIN LATERAL (SELECT c.json_data::text AS text) AS t
     ORDER BY c.priority, c.id;
END
$fn$;
