-- jobd schema version 12: a job queued behind another of its type and
-- target leaves the claim's index until its turn comes.
--
-- Jobs of one target run one at a time (SPEC §4.4). Before, every WAITING
-- job of a held target stayed in job_ready_idx, and every claim walked
-- past all of them and probed the RUNNING job's index for each: 4 ms a
-- claim at 20,000 such jobs, 35-40 ms at 200,000, for every daemon of the
-- type. A claim also took several jobs of one free target and kept one,
-- leaving slots idle until the next claim.
--
-- Now, per job type and target, the unscheduled WAITING jobs form a queue:
-- at most one of them (the head; more only after a race, which costs a
-- probe and nothing else) is claimable, the others are `behind` and sit in
-- a separate part of the claim's index. A job is behind when, at its
-- enqueue (jobd.enqueue or jobd.acquire; a row inserted directly is a
-- head), a RUNNING job or a head of its type and target exists that comes
-- before it in claim order (so SPEC §4.4's order, priority then id,
-- holds: a job better than every head is a head itself). When a
-- RUNNING job or a head stops being one (it ends, is retried for later,
-- suspended or cancelled by an operator, or deleted), the best job behind
-- it (priority, then id) becomes a head unless a head before it is left. The liveness rule: a
-- job behind has a RUNNING job or a head of its type and target in front
-- of it. Two sides could break it by missing each other's uncommitted
-- rows, so:
--  - a promotion holds the advisory lock "jobd.target <type> <target>"
--    until its transaction ends (an outcome batch, the rescue, an
--    operator's command: short transactions) and looks with a snapshot
--    taken after it got the lock;
--  - a job inserted behind is looked at again at its caller's COMMIT (a
--    deferred constraint trigger): with the lock, a new look that still
--    finds a job in front keeps it behind (a promotion after this commit
--    will see it); without the lock (a promotion is in flight) or with
--    nothing in front, it becomes a head. Under REPEATABLE READ or
--    SERIALIZABLE a snapshot cannot see a promotion that committed after
--    it began, so such an insert is always a head;
--  - neither side waits for the other's lock for long (a promotion tries
--    it for about 50 ms): a web request's COMMIT may wait on a lock that
--    the daemon's transaction holds, and waiting both ways would deadlock;
--  - a transaction takes at most 256 such locks (a bulk enqueue's jobs
--    beyond that become heads): each is an entry of PostgreSQL's shared
--    lock table until the COMMIT ends;
--  - what a race still leaves (a promotion that gave up, a promotion in a
--    REPEATABLE READ transaction, a rolled-back jobd.acquire) the sweep
--    of every rescue pass repairs (jobd.promote_stranded).
-- An extra head is harmless (it is probed, as every job was before).
-- Scheduled jobs (retries among them) are never behind: the claim reads
-- them through job_scheduled_idx in a window of bounded size.
--
-- Locks on jobd.job: ALTER TABLE ADD COLUMN (a constant default, no
-- rewrite) takes ACCESS EXCLUSIVE and CREATE TRIGGER SHARE ROW EXCLUSIVE,
-- for milliseconds once granted, under lock_timeout. The indexes are
-- built CONCURRENTLY after this transaction, and job_ready_idx and
-- job_waiting_target_idx, whose places job_unscheduled_idx and
-- job_target_queue_idx take, are dropped CONCURRENTLY. Jobs WAITING
-- at the upgrade are all heads: nothing is stranded, and the first runs of
-- each queue put the new ones behind.

ALTER TABLE jobd.job ADD COLUMN IF NOT EXISTS behind boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION jobd.target_key(job_type text, target text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT hashtextextended('jobd.target ' || $1 || ' ' || $2, 0) $$;

-- Is a job of this type and target, of the given priority and id, behind
-- another? PL/pgSQL with its own settings, like jobd.claim_ready: a plan
-- made while jobd.job was empty (a bulk enqueue into a new table plans
-- once for all its rows) would read the table for each probe, and 50,000
-- enqueues took 32 s instead of 1.4 s; only the indexes can serve these
-- probes now. It is when a RUNNING job of its type and target exists, or a
-- head that the claim takes before it (SPEC §4.4: priority, then id). A
-- job better than every head is a head itself, and the claim, which keeps
-- one job per target, starts it first.
CREATE OR REPLACE FUNCTION jobd.in_front(job_type text, target text, priority integer, id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM jobd.job AS r
                    WHERE r.status = 1 AND r.target = $2 AND r.job_type = $1)
        OR EXISTS (SELECT 1 FROM jobd.job AS h
                    WHERE h.status = 0 AND h.scheduled_start IS NULL AND h.target = $2
                      AND h.job_type = $1 AND NOT h.behind AND (h.priority, h.id) < ($3, $4));
END
$$;

-- jobd.enqueue is PL/pgSQL from this version: a SQL function's body is
-- parsed and planned again at every call from a new statement, which
-- each web request's enqueue is; PL/pgSQL keeps its plan for the session.
--
-- Does a new job start behind? Asked by jobd.enqueue and jobd.acquire,
-- not by a trigger: a row trigger with a WHEN clause costs every INSERT
-- statement on jobd.job, with a target or not, its setup (3% of the web
-- enqueue's commits/s, measured). A job inserted into jobd.job directly is
-- a head, which is always safe. A new job's id is the highest, so a head
-- of as good a priority is in front of it. Under REPEATABLE READ or
-- SERIALIZABLE the caller's snapshot cannot see a promotion that commits
-- after it began, so such a job is a head too.
CREATE OR REPLACE FUNCTION jobd.starts_behind(job_type text, target text,
                                              scheduled_start timestamptz, priority integer)
RETURNS boolean
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF $2 IS NULL OR $3 IS NOT NULL
       OR current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN false;
    END IF;
    RETURN jobd.in_front($1, $2, $4, 9223372036854775807);
END
$$;

CREATE OR REPLACE FUNCTION jobd.enqueue(
    job_type        text,
    json_data       jsonb DEFAULT '{}',
    scheduled_start timestamptz DEFAULT NULL,
    priority        integer DEFAULT 0,
    target          text DEFAULT NULL,
    max_retries     integer DEFAULT 0,
    requester       text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    made bigint;
BEGIN
    INSERT INTO jobd.job (job_type, json_data, scheduled_start, priority, target, max_retries,
                          requester, behind)
    VALUES ($1, COALESCE($2, '{}'), $3, COALESCE($4, 0), $5, COALESCE($6, 0), $7,
            $5 IS NOT NULL AND jobd.starts_behind($1, $5, $3, COALESCE($4, 0)))
    RETURNING id INTO made;
    RETURN made;
END
$$;

-- A job with nothing in front any more becomes a head without a lock.
-- Otherwise the lock is tried, and the look at what is in front is a
-- statement of its own, so that its snapshot is taken after the lock is
-- held (READ COMMITTED): a promotion that released the lock has committed
-- what it did by then. Each lock takes an entry of PostgreSQL's shared
-- lock table until the COMMIT ends, so a transaction locks at most 256
-- queues (jobd.queue_locks counts them, the same queue twice in a row
-- once); the jobs of a bulk enqueue beyond that become heads.
CREATE OR REPLACE FUNCTION jobd.behind_at_commit() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    key bigint := jobd.target_key(NEW.job_type, NEW.target);
    taken integer := COALESCE(NULLIF(current_setting('jobd.queue_locks', true), ''), '0')::integer;
BEGIN
    IF NOT jobd.in_front(NEW.job_type, NEW.target, NEW.priority, NEW.id) THEN
        UPDATE jobd.job SET behind = false WHERE id = NEW.id AND behind;
        RETURN NULL;
    END IF;
    IF current_setting('jobd.queue_lock_last', true) IS DISTINCT FROM key::text THEN
        IF taken >= 256 THEN
            UPDATE jobd.job SET behind = false WHERE id = NEW.id AND behind;
            RETURN NULL;
        END IF;
        PERFORM set_config('jobd.queue_locks', (taken + 1)::text, true);
        PERFORM set_config('jobd.queue_lock_last', key::text, true);
    END IF;
    IF NOT pg_try_advisory_xact_lock(key) THEN
        UPDATE jobd.job SET behind = false WHERE id = NEW.id AND behind;
        RETURN NULL;
    END IF;
    IF NOT jobd.in_front(NEW.job_type, NEW.target, NEW.priority, NEW.id) THEN
        UPDATE jobd.job SET behind = false WHERE id = NEW.id AND behind;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS job_behind_at_commit ON jobd.job;
CREATE CONSTRAINT TRIGGER job_behind_at_commit
    AFTER INSERT ON jobd.job
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.behind)
    EXECUTE FUNCTION jobd.behind_at_commit();

-- `behind` counts only while a job is WAITING and unscheduled: every
-- reader says status = 0 AND scheduled_start IS NULL with it. No trigger
-- clears it when a job behind changes (a row trigger on UPDATE costs
-- every claim and every outcome batch its setup, 6-12% of a claim of 8,
-- measured); the operators' commands clear it themselves, so a job they
-- suspend and resume, or retry, comes back as a head, and a job that SQL
-- brings back while still behind, with nothing in front, is the sweep's.

-- The best job behind a type and target becomes a head when nothing is in
-- front of it; the caller holds the target's lock. A job behind that
-- another transaction holds is passed over, never waited for: jobd.acquire's
-- caller holds the WAITING job it got back until it commits (and makes it
-- a head), an operator's command holds one for a moment.
CREATE OR REPLACE FUNCTION jobd.promote_next(job_type text, target text) RETURNS boolean
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
DECLARE
    best record;
BEGIN
    SELECT b.id, b.priority INTO best
      FROM jobd.job AS b
     WHERE b.status = 0 AND b.scheduled_start IS NULL AND b.behind
       AND b.job_type = $1 AND b.target = $2
     ORDER BY b.priority, b.id
     LIMIT 1
       FOR UPDATE SKIP LOCKED;
    IF best.id IS NULL OR jobd.in_front($1, $2, best.priority, best.id) THEN
        RETURN false;
    END IF;
    UPDATE jobd.job AS j SET behind = false WHERE j.id = best.id;
    RETURN true;
END
$$;

-- A RUNNING job or a head of this type and target stopped being one: the
-- best job behind it becomes a head, unless something is still in front,
-- and a daemon asleep on the type hears of it. Returns whether it did.
-- The lock is tried, not waited for: the commit that holds it (an insert's
-- check) may itself wait on a lock that this transaction holds
-- (jobd.acquire's requeue lock), so a wait could deadlock with a web
-- request. It is tried for up to about 50 ms, longer than such a commit
-- takes; a promotion that gives up is left to the sweep
-- (jobd.promote_stranded). So is one in a REPEATABLE READ or SERIALIZABLE
-- transaction (a sql job's own, when its dbuser defaults to one): its
-- snapshot cannot see a job that joined the queue after it began, and
-- locking a job changed since would fail the job's transaction with a
-- serialization error.
CREATE OR REPLACE FUNCTION jobd.promote_now(job_type text, target text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN false;
    END IF;
    FOR attempt IN 1..50 LOOP
        IF pg_try_advisory_xact_lock(jobd.target_key($1, $2)) THEN
            IF jobd.promote_next($1, $2) THEN
                PERFORM pg_notify('jobd', $1);
                RETURN true;
            END IF;
            RETURN false;
        END IF;
        PERFORM pg_sleep(0.001);
    END LOOP;
    RETURN false;
END
$$;

-- Version 6's trigger on the end of a RUNNING job with a target (its WHEN
-- clause unchanged, so claims and outcome batches run no more triggers
-- than before) promotes the best job behind it, then wakes the daemons of
-- every type waiting on the target, reading one index entry per type (a
-- loose index scan of job_target_queue_idx) where it read every job
-- waiting on the target. A head that leaves WAITING without running is
-- promoted past by the operators' commands (jobd.promote_now), by the
-- trigger below when it is deleted, and otherwise by the sweep.
CREATE OR REPLACE FUNCTION jobd.notify_target_freed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM jobd.promote_now(OLD.job_type, OLD.target);
    PERFORM pg_notify('jobd', w.job_type)
       FROM (WITH RECURSIVE types AS (
               (SELECT j.job_type FROM jobd.job AS j
                 WHERE j.status = 0 AND j.target = OLD.target AND j.id <> OLD.id
                 ORDER BY j.job_type LIMIT 1)
               UNION ALL
               SELECT (SELECT j.job_type FROM jobd.job AS j
                        WHERE j.status = 0 AND j.target = OLD.target AND j.id <> OLD.id
                          AND j.job_type > t.job_type
                        ORDER BY j.job_type LIMIT 1)
                 FROM types AS t WHERE t.job_type IS NOT NULL)
             SELECT job_type FROM types WHERE job_type IS NOT NULL) AS w;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION jobd.promote_behind() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM jobd.promote_now(OLD.job_type, OLD.target);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS job_promote_behind_deleted ON jobd.job;
CREATE TRIGGER job_promote_behind_deleted
    AFTER DELETE ON jobd.job
    FOR EACH ROW WHEN (OLD.target IS NOT NULL
                       AND (OLD.status = 1 OR (OLD.status = 0 AND OLD.scheduled_start IS NULL
                                               AND NOT OLD.behind)))
    EXECUTE FUNCTION jobd.promote_behind();

-- The sweep, in every daemon's rescue pass (rescue_interval): each queue
-- whose best job behind has nothing in front of it gets its head. That
-- happens only after a race the triggers leave to it: a promotion that
-- gave up on the lock, a caller of jobd.acquire that rolled back after a
-- promotion passed over its job, a promotion in a REPEATABLE READ or
-- SERIALIZABLE transaction. It looks at each queue that has jobs behind
-- (a loose index scan of job_behind_idx, one probe each) without a lock,
-- and locks only the queues that look stranded, at most 100 a pass, so a
-- healthy queue's promotions and inserts never meet its locks. Returns the
-- number of heads made.
CREATE OR REPLACE FUNCTION jobd.promote_stranded() RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
    q record;
    promoted integer := 0;
BEGIN
    FOR q IN
        WITH RECURSIVE queues AS (
            (SELECT b.job_type, b.target FROM jobd.job AS b
              WHERE b.status = 0 AND b.scheduled_start IS NULL AND b.behind
              ORDER BY b.job_type, b.target
              LIMIT 1)
            UNION ALL
            SELECT n.job_type, n.target
              FROM queues AS p
             CROSS JOIN LATERAL (
                 SELECT b.job_type, b.target FROM jobd.job AS b
                  WHERE b.status = 0 AND b.scheduled_start IS NULL AND b.behind
                    AND (b.job_type, b.target) > (p.job_type, p.target)
                  ORDER BY b.job_type, b.target
                  LIMIT 1) AS n
        )
        SELECT s.job_type, s.target
          FROM queues AS s
         CROSS JOIN LATERAL (
             SELECT b.priority, b.id FROM jobd.job AS b
              WHERE b.status = 0 AND b.scheduled_start IS NULL AND b.behind
                AND b.job_type = s.job_type AND b.target = s.target
              ORDER BY b.priority, b.id
              LIMIT 1) AS best
         WHERE NOT jobd.in_front(s.job_type, s.target, best.priority, best.id)
         LIMIT 100
    LOOP
        IF pg_try_advisory_xact_lock(jobd.target_key(q.job_type, q.target)) THEN
            IF jobd.promote_next(q.job_type, q.target) THEN
                promoted := promoted + 1;
                PERFORM pg_notify('jobd', q.job_type);
            END IF;
        END IF;
    END LOOP;
    RETURN promoted;
END
$$;

-- jobd.acquire locks the WAITING job it hands back until its caller
-- commits. Such a job is made a head, so that no promotion (which skips
-- locked rows) can leave it behind with nothing in front.
CREATE OR REPLACE FUNCTION jobd.acquire(
    job_type        text,
    target          text,
    json_data       jsonb DEFAULT '{}',
    scheduled_start timestamptz DEFAULT NULL,
    priority        integer DEFAULT 0,
    max_retries     integer DEFAULT 0,
    requester       text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    found_id bigint;
BEGIN
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'jobd.acquire needs a target' USING ERRCODE = '22004';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('jobd.acquire ' || $1 || ' ' || $2, 0));
    SELECT j.id INTO found_id
      FROM jobd.job AS j
     WHERE j.status = 0 AND j.target = $2 AND j.job_type = $1
     ORDER BY j.id
     LIMIT 1
       FOR UPDATE;
    IF found_id IS NOT NULL THEN
        UPDATE jobd.job AS j SET behind = false WHERE j.id = found_id AND j.behind;
        RETURN found_id;
    END IF;
    INSERT INTO jobd.job (job_type, json_data, scheduled_start, priority, target, max_retries,
                          requester, acquired, behind)
    VALUES ($1, COALESCE($3, '{}'), $4, COALESCE($5, 0), $2, COALESCE($6, 0), $7, true,
            jobd.starts_behind($1, $2, $4, COALESCE($5, 0)))
    RETURNING id INTO found_id;
    RETURN found_id;
END
$$;


-- The claim (version 11's function): the unscheduled branch reads the
-- heads only (NOT behind); the due window keeps one job per target before
-- it locks and limits, so that a claim is not filled with one target's
-- jobs of which it can start one. And the lookup of a due job by id says
-- `status + 0 = 0`: with `status = 0`, job_scheduled_idx's predicate held,
-- and a plan made while no job was scheduled (its statistics make that
-- index look cheaper than the primary key) looked each job of the window
-- up by walking the whole due range of that index, filtering on the id:
-- a thousand walks of a backlog per claim once one came.
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

-- jobd:outside-transaction

-- The claim's index of unscheduled WAITING jobs, heads (behind = false)
-- first within a type: the claim reads the first N heads in claim order,
-- the counts read both parts. It takes the place of job_ready_idx.
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_unscheduled_idx ON jobd.job (job_type, behind, priority, id) WHERE status = 0 AND scheduled_start IS NULL;
-- The WAITING jobs of each target and type, heads first (the probe for a
-- head in front, at an insert and before a promotion), in claim order: it
-- takes the place of job_waiting_target_idx (target, job_type), whose
-- readers (jobd.acquire, the requeue checks, the freed target's wake-up)
-- it serves as well, so that an enqueue writes no more index entries than
-- before. Each index costs every INSERT statement on jobd.job a little,
-- with or without a target.
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_target_queue_idx ON jobd.job (target, job_type, behind, priority, id) WHERE status = 0 AND target IS NOT NULL;
-- The jobs behind: the best of a queue, at a promotion; the queues that
-- have any, for the sweep.
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_behind_idx ON jobd.job (job_type, target, priority, id) WHERE status = 0 AND scheduled_start IS NULL AND behind;
DROP INDEX CONCURRENTLY IF EXISTS jobd.job_ready_idx;
DROP INDEX CONCURRENTLY IF EXISTS jobd.job_waiting_target_idx;
