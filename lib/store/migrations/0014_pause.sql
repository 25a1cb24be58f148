-- jobd schema version 14: pause and resume a job type, or one target of
-- it, across every daemon (issue 19, "Live control").
--
-- jobd.paused holds one row per paused job type (target NULL) or per
-- paused (job type, target), with who paused it, why, and until when
-- (NULL: until jobd.unpause). The claim reads it in its own statement: a
-- claim that starts after the pause's COMMIT takes no job of a paused
-- type, and none of a paused target, on any daemon, with no poll and no
-- message to wait for. Jobs already RUNNING finish. A pause whose `until`
-- has passed is ignored where it is read, and dropped by the next pause
-- or unpause of its type; daemons wake at it by themselves (the time to
-- the type's next pause end counts as a scheduled start for them).
-- jobd.pause and jobd.unpause send the NOTIFY an enqueue would: sleeping
-- daemons claim at once, after an unpause to take the jobs, after a pause
-- to learn when it ends.
--
-- The claim's cost when nothing is paused: two lookups of jobd.paused by
-- key in each of the claim's two branches (uncorrelated subqueries:
-- InitPlans, run once per claim); the per-job lookup for a paused target
-- runs only while some target of the type is paused.

CREATE TABLE jobd.paused (
    job_type   text NOT NULL,
    target     text,
    paused_at  timestamptz NOT NULL DEFAULT now(),
    paused_by  text NOT NULL DEFAULT session_user,
    until      timestamptz,
    reason     text NOT NULL DEFAULT ''
);
-- One pause per job type, and one per (job type, target): the claim's
-- lookups, by key.
CREATE UNIQUE INDEX paused_type_idx ON jobd.paused (job_type) WHERE target IS NULL;
CREATE UNIQUE INDEX paused_target_idx ON jobd.paused (job_type, target) WHERE target IS NOT NULL;

-- Pauses job_type (or one of its targets) from this transaction's COMMIT
-- on, until `until` (NULL: until jobd.unpause). A second pause of the same
-- type and target replaces the first. Returns whether one was in place.
CREATE FUNCTION jobd.pause(job_type text, target text DEFAULT NULL,
                           until timestamptz DEFAULT NULL, reason text DEFAULT '',
                           paused_by text DEFAULT session_user)
RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    replaced boolean;
BEGIN
    IF pause.until IS NOT NULL AND pause.until <= now() THEN
        RAISE EXCEPTION 'jobd.pause: until (%) is not in the future', pause.until
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM jobd.paused AS p
     WHERE p.job_type = pause.job_type AND p.until IS NOT NULL AND p.until <= now();
    IF pause.target IS NULL THEN
        INSERT INTO jobd.paused (job_type, target, until, reason, paused_by)
        VALUES (pause.job_type, NULL, pause.until, COALESCE(pause.reason, ''),
                COALESCE(pause.paused_by, session_user))
        ON CONFLICT (job_type) WHERE target IS NULL DO UPDATE
           SET paused_at = now(), until = EXCLUDED.until, reason = EXCLUDED.reason,
               paused_by = EXCLUDED.paused_by
        RETURNING xmax::text <> '0' INTO replaced;
    ELSE
        INSERT INTO jobd.paused (job_type, target, until, reason, paused_by)
        VALUES (pause.job_type, pause.target, pause.until, COALESCE(pause.reason, ''),
                COALESCE(pause.paused_by, session_user))
        ON CONFLICT (job_type, target) WHERE target IS NOT NULL DO UPDATE
           SET paused_at = now(), until = EXCLUDED.until, reason = EXCLUDED.reason,
               paused_by = EXCLUDED.paused_by
        RETURNING xmax::text <> '0' INTO replaced;
    END IF;
    -- Daemons asleep on the type claim once, come up short and learn the
    -- pause's end (a pause that replaces one may bring it nearer).
    PERFORM pg_notify('jobd', pause.job_type);
    RETURN replaced;
END
$$;

-- Ends the pause of job_type (or of one of its targets): returns whether
-- one was in place. The NOTIFY wakes the daemons serving the type.
CREATE FUNCTION jobd.unpause(job_type text, target text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    ended integer;
BEGIN
    DELETE FROM jobd.paused AS p
     WHERE p.job_type = unpause.job_type AND p.target IS NOT DISTINCT FROM unpause.target
       AND (p.until IS NULL OR p.until > now());
    GET DIAGNOSTICS ended = ROW_COUNT;
    DELETE FROM jobd.paused AS p
     WHERE p.job_type = unpause.job_type AND p.until IS NOT NULL AND p.until <= now();
    PERFORM pg_notify('jobd', unpause.job_type);
    RETURN ended > 0;
END
$$;

-- The claim (version 12's function), with the pauses.
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
       WHERE j.status = 0 AND j.job_type = $1 AND NOT j.behind AND j.scheduled_start IS NULL
         AND (j.lease_expires IS NULL OR j.lease_expires <= now())
         AND (j.target IS NULL OR NOT EXISTS (
               SELECT 1 FROM jobd.job AS r WHERE r.status = 1 AND r.target = j.target))
         AND NOT (SELECT EXISTS (
               SELECT 1 FROM jobd.paused AS p
                WHERE p.job_type = $1 AND p.target IS NULL
                  AND (p.until IS NULL OR p.until > now())))
         AND (j.target IS NULL
              OR NOT (SELECT EXISTS (
                   SELECT 1 FROM jobd.paused AS p
                    WHERE p.job_type = $1 AND p.target IS NOT NULL
                      AND (p.until IS NULL OR p.until > now())))
              OR NOT EXISTS (
                   SELECT 1 FROM jobd.paused AS p
                    WHERE p.job_type = $1 AND p.target = j.target
                      AND (p.until IS NULL OR p.until > now())))
       ORDER BY j.priority, j.id
       LIMIT $2
       FOR UPDATE SKIP LOCKED
    ), due_window AS MATERIALIZED (
      SELECT j.id, j.priority, j.target
        FROM jobd.job AS j
       WHERE j.status = 0 AND j.job_type = $1 AND j.scheduled_start IS NOT NULL
         AND j.scheduled_start <= now()
         AND (j.lease_expires IS NULL OR j.lease_expires <= now())
         AND (j.target IS NULL OR NOT EXISTS (
               SELECT 1 FROM jobd.job AS r WHERE r.status = 1 AND r.target = j.target))
         AND NOT (SELECT EXISTS (
               SELECT 1 FROM jobd.paused AS p
                WHERE p.job_type = $1 AND p.target IS NULL
                  AND (p.until IS NULL OR p.until > now())))
         AND (j.target IS NULL
              OR NOT (SELECT EXISTS (
                   SELECT 1 FROM jobd.paused AS p
                    WHERE p.job_type = $1 AND p.target IS NOT NULL
                      AND (p.until IS NULL OR p.until > now())))
              OR NOT EXISTS (
                   SELECT 1 FROM jobd.paused AS p
                    WHERE p.job_type = $1 AND p.target = j.target
                      AND (p.until IS NULL OR p.until > now())))
       ORDER BY j.scheduled_start
       LIMIT 1000 + $2
    ), due AS MATERIALIZED (
      SELECT j.id, j.priority, j.target
        FROM (SELECT o.id, o.priority FROM (
                SELECT DISTINCT ON (w.target IS NULL, COALESCE(w.target, w.id::text)) w.id, w.priority
                  FROM due_window AS w
                 ORDER BY w.target IS NULL, COALESCE(w.target, w.id::text), w.priority, w.id
              ) AS o ORDER BY o.priority, o.id) AS w
       CROSS JOIN LATERAL (
         SELECT r.id, r.priority, r.target
           FROM jobd.job AS r
          WHERE r.id = w.id AND r.status + 0 = 0 AND r.job_type = $1 AND r.scheduled_start IS NOT NULL
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
