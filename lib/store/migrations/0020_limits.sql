-- jobd schema version 20: fleet-wide limits by key (issue 21, item 1).
-- docs/schema.md, "Limits (version 20)".
--
-- A section may limit its jobs by a key taken from each job: its type, its
-- target, the part of its target before a separator, or a field of its
-- json_data (jobd.limit_key). Per key, across every daemon of the
-- database, at most `max_running` jobs run at once, and jobs start no
-- faster than a token bucket allows (`rate` per `per`, at most `burst` at
-- once). The limits are the daemons' configuration: each claim passes them
-- (all daemons serving a type should agree); the database keeps only the
-- state they share:
--  - jobd.limit_bucket: one row per (type, key) seen: its tokens, and
--    whether jobs of the key are parked. Its row lock orders every claim
--    that looks at the key, so counting the key's RUNNING jobs and taking
--    its tokens is never a check-then-write race.
--  - jobd.job_throttled: a job held back by its key's limit is parked: it
--    stays WAITING, spends no attempt and gets no log; it waits with
--    scheduled_start = 'infinity' (out of the claim's way, as a job held
--    for its parents, version 19) and its own start is kept here. A later
--    claim starts it, in priority order within its key, once the key has
--    room. So a key with a long backlog does not stand in front of the
--    other keys' jobs: its jobs are each looked at once and set aside.
--  - jobd.limit_definition: the key each type is limited by. A claim with
--    another key (a reload changed it) gives every parked job of the type
--    back to the claim first; jobd.release_throttled does so when a type
--    is no longer limited.
-- The common claim (jobd.claim_with_checkpoints) does not change: only
-- sections with a limit call jobd.claim_limited.

-- A job that its remote rate limited ("retry after N") is given back with
-- an attempt row `rate_limited`. The rows there satisfy the old check, so
-- the new one need not read them (NOT VALID: only new rows are checked); a
-- moment's ACCESS EXCLUSIVE lock on jobd.job_attempt, none on jobd.job.
ALTER TABLE jobd.job_attempt DROP CONSTRAINT job_attempt_outcome_check;
ALTER TABLE jobd.job_attempt ADD CONSTRAINT job_attempt_outcome_check
    CHECK (outcome IN ('retry', 'failed', 'user_error', 'suspended', 'timeout', 'lease_expired',
                       'released', 'crashed', 'rate_limited')) NOT VALID;

CREATE TABLE jobd.limit_definition (
    job_type text PRIMARY KEY,
    key_kind text NOT NULL CHECK (key_kind IN ('type', 'target', 'target_prefix', 'data')),
    key_arg  text NOT NULL DEFAULT '',
    -- The last claim left ready jobs unsorted (its parking budget was
    -- spent, or it met a key it had not locked): claim again at once.
    backlog  boolean NOT NULL DEFAULT false
);

CREATE TABLE jobd.limit_bucket (
    job_type text NOT NULL,
    key      text NOT NULL,
    -- Tokens at `refilled` (jobs that may start without waiting).
    tokens   double precision NOT NULL,
    refilled timestamptz NOT NULL DEFAULT now(),
    -- Jobs of the key are parked in jobd.job_throttled.
    parked   boolean NOT NULL DEFAULT false,
    -- While parked and out of tokens: when the next token is due (a daemon
    -- sleeps until then). NULL while parked: room comes when one of the
    -- key's running jobs ends.
    next_due timestamptz,
    -- When a claim last looked at the key's parked jobs: the least recently
    -- looked at come first, in turn.
    checked  timestamptz NOT NULL DEFAULT now(),
    -- A job of the key was rate limited by its remote ("retry after N",
    -- jobd.limit_block): the key starts nothing before this.
    blocked_until timestamptz,
    PRIMARY KEY (job_type, key)
);
CREATE INDEX limit_bucket_parked_idx ON jobd.limit_bucket (job_type, checked) WHERE parked;
CREATE INDEX limit_bucket_due_idx ON jobd.limit_bucket (job_type, next_due)
    WHERE next_due IS NOT NULL;

CREATE TABLE jobd.job_throttled (
    job_id          bigint PRIMARY KEY REFERENCES jobd.job (id) ON DELETE CASCADE,
    job_type        text NOT NULL,
    key             text NOT NULL,
    priority        smallint NOT NULL,
    -- The job's own scheduled_start, given back when it starts.
    scheduled_start timestamptz,
    parked          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_throttled_key_idx ON jobd.job_throttled (job_type, key, priority, job_id);

-- A job's key under a limit: NULL (the job is not limited) when it has no
-- target, or its json_data no such field.
CREATE FUNCTION jobd.limit_key(kind text, arg text, job_type text, target text, data jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE kind
             WHEN 'type' THEN job_type
             WHEN 'target' THEN target
             WHEN 'target_prefix' THEN split_part(target, arg, 1)
             WHEN 'data' THEN data ->> arg
           END
$$;

-- Gives every parked job of a type back to the claim, with its own
-- scheduled_start, and forgets the type's buckets and key. The caller
-- holds the type's limit lock exclusively.
CREATE FUNCTION jobd.release_throttled_locked(jt text) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    released integer;
BEGIN
    -- A parked job made to wait for parents since keeps waiting for them,
    -- with its own start in its hold.
    UPDATE jobd.job_hold AS h SET scheduled_start = t.scheduled_start
      FROM jobd.job_throttled AS t
     WHERE t.job_type = jt AND h.job_id = t.job_id AND h.scheduled_start = 'infinity';
    WITH gone AS (
      DELETE FROM jobd.job_throttled AS t WHERE t.job_type = jt
      RETURNING t.job_id, t.scheduled_start
    )
    UPDATE jobd.job AS j SET scheduled_start = g.scheduled_start
      FROM gone AS g
     WHERE j.id = g.job_id AND j.status = 0 AND j.scheduled_start = 'infinity'
       AND NOT EXISTS (SELECT 1 FROM jobd.job_hold AS h WHERE h.job_id = j.id);
    GET DIAGNOSTICS released = ROW_COUNT;
    DELETE FROM jobd.limit_bucket AS b WHERE b.job_type = jt;
    DELETE FROM jobd.limit_definition AS d WHERE d.job_type = jt;
    IF released > 0 THEN
        PERFORM pg_notify('jobd', jt);
    END IF;
    RETURN released;
END
$$;

-- A type no longer limited (a daemon serves it without a limit): its
-- parked jobs go back to the claim. Returns how many.
CREATE FUNCTION jobd.release_throttled(jt text) RETURNS integer
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM jobd.limit_definition AS d WHERE d.job_type = jt) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('jobd.limit'), hashtext(jt));
    RETURN jobd.release_throttled_locked(jt);
END
$$;

-- The claim of a limited type: at most `want` ready jobs, as
-- jobd.claim_with_checkpoints returns them, none beyond its key's limit.
-- max_running 0: no cap on running jobs; rate 0: no token bucket.
CREATE FUNCTION jobd.claim_limited(p_type text, p_want integer, p_lease interval, p_owner text,
                                   p_max_payload bigint, p_kind text, p_arg text,
                                   p_max_running integer, p_rate integer, p_per interval,
                                   p_burst integer)
RETURNS TABLE (id bigint, attempt_count integer, max_retries integer, priority smallint,
               target text, payload_size integer, payload text, waited double precision,
               checkpoint text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $fn$
#variable_conflict use_column
DECLARE
    per_s double precision := extract(epoch FROM p_per);
    window_size integer := 2 * p_want + 64;
    def_kind text;
    def_arg text;
    tok double precision;
    blocked timestamptz;
    blocks timestamptz[] := '{}';
    room integer;
    got integer := 0;
    due_keys text[];
    cand_ids bigint[];
    cand_keys text[];
    cand_targets text[];
    keys text[];
    toks double precision[] := '{}';
    caps integer[] := '{}';
    used integer[] := '{}';
    is_parked boolean[] := '{}';
    looked boolean[] := '{}';
    take bigint[] := '{}';
    take_targets text[] := '{}';
    running_n integer[];
    seen bigint[] := '{}';
    all_keys text[] := '{}';
    first_window boolean := true;
    more_left boolean := false;
    lock_wait text := current_setting('lock_timeout');
    parked_now integer := 0;
    k text;
    i integer;
    n integer;
    r record;
BEGIN
    IF p_want <= 0 THEN
        RETURN;
    END IF;
    -- The type's key: a new one gives the old keys' parked jobs back first.
    SELECT d.key_kind, d.key_arg INTO def_kind, def_arg
      FROM jobd.limit_definition AS d WHERE d.job_type = p_type;
    IF def_kind IS DISTINCT FROM p_kind OR def_arg IS DISTINCT FROM p_arg THEN
        PERFORM pg_advisory_xact_lock(hashtext('jobd.limit'), hashtext(p_type));
        SELECT d.key_kind, d.key_arg INTO def_kind, def_arg
          FROM jobd.limit_definition AS d WHERE d.job_type = p_type;
        IF def_kind IS DISTINCT FROM p_kind OR def_arg IS DISTINCT FROM p_arg THEN
            PERFORM jobd.release_throttled_locked(p_type);
            INSERT INTO jobd.limit_definition (job_type, key_kind, key_arg)
            VALUES (p_type, p_kind, p_arg);
        END IF;
    ELSE
        PERFORM pg_advisory_xact_lock_shared(hashtext('jobd.limit'), hashtext(p_type));
        IF NOT EXISTS (SELECT 1 FROM jobd.limit_definition AS d
                        WHERE d.job_type = p_type AND d.key_kind = p_kind AND d.key_arg = p_arg)
        THEN
            RAISE EXCEPTION 'the limit of job type % changed during the claim', p_type
                USING ERRCODE = '40001';
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM jobd.paused AS p
                WHERE p.job_type = p_type AND p.target IS NULL
                  AND (p.until IS NULL OR p.until > now())) THEN
        RETURN;
    END IF;

    IF p_kind = 'type' THEN
        -- One key: how many may start is known before the claim, which is
        -- then the common one.
        INSERT INTO jobd.limit_bucket (job_type, key, tokens) VALUES (p_type, p_type, p_burst)
        ON CONFLICT DO NOTHING;
        SELECT CASE WHEN p_rate > 0
                    THEN least(p_burst::double precision,
                               b.tokens + extract(epoch FROM now() - b.refilled) * p_rate / per_s)
               END, b.blocked_until
          INTO tok, blocked
          FROM jobd.limit_bucket AS b WHERE b.job_type = p_type AND b.key = p_type FOR UPDATE;
        IF blocked > now() THEN
            UPDATE jobd.limit_bucket AS b SET next_due = blocked
             WHERE b.job_type = p_type AND b.key = p_type;
            RETURN;
        END IF;
        room := p_want;
        IF p_rate > 0 THEN
            room := least(room, floor(tok)::integer);
        END IF;
        IF p_max_running > 0 THEN
            room := least(room, p_max_running - (SELECT count(*) FROM jobd.job AS r
                                                  WHERE r.status = 1 AND r.job_type = p_type)::integer);
        END IF;
        IF room > 0 THEN
            RETURN QUERY SELECT * FROM jobd.claim_with_checkpoints(p_type, room, p_lease, p_owner,
                                                                  p_max_payload);
            GET DIAGNOSTICS got = ROW_COUNT;
        END IF;
        IF p_rate > 0 THEN
            tok := tok - got;
            UPDATE jobd.limit_bucket AS b
               SET tokens = tok, refilled = now(), checked = now(),
                   next_due = CASE WHEN tok < 1
                                   THEN now() + make_interval(secs => (1 - tok) * per_s / p_rate)
                              END
             WHERE b.job_type = p_type AND b.key = p_type;
        END IF;
        RETURN;
    END IF;

    -- Keys with parked jobs that may have room (a token due, or waiting for
    -- a running job to end), the least recently looked at first.
    SELECT array_agg(b.key ORDER BY b.checked) INTO due_keys
      FROM (SELECT b.key, b.checked FROM jobd.limit_bucket AS b
             WHERE b.job_type = p_type AND b.parked
               AND (b.next_due IS NULL OR b.next_due <= now())
             ORDER BY b.checked LIMIT p_want + 8) AS b;
    LOOP
        -- A window of ready jobs in claim order (as jobd.claim_ready reads
        -- them, none whose target runs or is paused), locked, skipping the
        -- rows another claim holds and the ones this claim has seen.
        WITH unscheduled AS MATERIALIZED (
          SELECT q.id, q.priority, q.job_type, q.target, q.json_data
            FROM jobd.job AS q
           WHERE q.status = 0 AND q.job_type = p_type AND NOT q.behind
             AND q.scheduled_start IS NULL
             AND (q.lease_expires IS NULL OR q.lease_expires <= now())
             AND q.id <> ALL (take) AND q.id <> ALL (seen)
             AND (q.target IS NULL
                  OR (NOT EXISTS (SELECT 1 FROM jobd.job AS x
                                   WHERE x.status = 1 AND x.target = q.target)
                      AND NOT EXISTS (SELECT 1 FROM jobd.paused AS p
                                       WHERE p.job_type = p_type AND p.target = q.target
                                         AND (p.until IS NULL OR p.until > now()))))
           ORDER BY q.priority, q.id
           LIMIT window_size
           FOR UPDATE SKIP LOCKED
        ), due AS MATERIALIZED (
          SELECT q.id, q.priority, q.job_type, q.target, q.json_data
            FROM jobd.job AS q
           WHERE q.status = 0 AND q.job_type = p_type AND q.scheduled_start IS NOT NULL
             AND q.scheduled_start <= now()
             AND (q.lease_expires IS NULL OR q.lease_expires <= now())
             AND q.id <> ALL (take) AND q.id <> ALL (seen)
             AND (q.target IS NULL
                  OR (NOT EXISTS (SELECT 1 FROM jobd.job AS x
                                   WHERE x.status = 1 AND x.target = q.target)
                      AND NOT EXISTS (SELECT 1 FROM jobd.paused AS p
                                       WHERE p.job_type = p_type AND p.target = q.target
                                         AND (p.until IS NULL OR p.until > now()))))
           ORDER BY q.scheduled_start
           LIMIT window_size
           FOR UPDATE SKIP LOCKED
        )
        SELECT array_agg(j.id ORDER BY j.priority, j.id),
               array_agg(jobd.limit_key(p_kind, p_arg, j.job_type, j.target, j.json_data)
                         ORDER BY j.priority, j.id),
               array_agg(j.target ORDER BY j.priority, j.id)
          INTO cand_ids, cand_keys, cand_targets
          FROM (SELECT * FROM unscheduled UNION ALL SELECT * FROM due) AS j;

        IF first_window THEN
            first_window := false;
            SELECT array_agg(DISTINCT x ORDER BY x) INTO keys
              FROM unnest(coalesce(due_keys, '{}') || coalesce(cand_keys, '{}')) AS x
             WHERE x IS NOT NULL;
            IF keys IS NOT NULL THEN
                -- The keys' buckets, locked without waiting: a key whose
                -- bucket another claim holds is left to the next claim,
                -- which comes at once (claims never wait for each other).
                -- New keys get their buckets; a key that another claim is
                -- giving one at this moment is left to the next claim.
                BEGIN
                    PERFORM set_config('lock_timeout', '20ms', true);
                    INSERT INTO jobd.limit_bucket (job_type, key, tokens)
                    SELECT p_type, x, p_burst FROM unnest(keys) AS x
                     WHERE NOT EXISTS (SELECT 1 FROM jobd.limit_bucket AS b
                                        WHERE b.job_type = p_type AND b.key = x)
                     ORDER BY x
                    ON CONFLICT DO NOTHING;
                    PERFORM set_config('lock_timeout', lock_wait, true);
                EXCEPTION WHEN lock_not_available THEN
                    more_left := true;
                END;
                all_keys := keys;  -- keys looked for: locked, or another claim's
                keys := '{}';
                FOR r IN SELECT b.key, b.tokens, b.refilled, b.parked, b.blocked_until
                           FROM jobd.limit_bucket AS b
                          WHERE b.job_type = p_type AND b.key = ANY (all_keys) ORDER BY b.key
                            FOR UPDATE SKIP LOCKED
                LOOP
                    keys := keys || r.key;
                    blocks := blocks || r.blocked_until;
                    toks := toks || CASE WHEN p_rate > 0
                                         THEN least(p_burst::double precision,
                                                    r.tokens + extract(epoch FROM now() - r.refilled)
                                                               * p_rate / per_s)
                                         ELSE 0 END;
                    is_parked := is_parked || r.parked;
                    used := used || 0;
                    looked := looked || false;
                END LOOP;
                -- Counted after the locks: every claim of these keys that
                -- came before has committed, and its jobs are RUNNING.
                IF p_max_running > 0 THEN
                    SELECT array_agg(coalesce(c.n, 0)::integer ORDER BY u.ord) INTO running_n
                      FROM unnest(keys) WITH ORDINALITY AS u(key, ord)
                      LEFT JOIN (SELECT jobd.limit_key(p_kind, p_arg, x.job_type, x.target,
                                                       x.json_data) AS key, count(*) AS n
                                   FROM jobd.job AS x WHERE x.status = 1 AND x.job_type = p_type
                                  GROUP BY 1) AS c ON c.key = u.key;
                END IF;
                IF cardinality(keys) < cardinality(all_keys) THEN
                    more_left := true;
                END IF;
                FOR i IN 1 .. cardinality(keys) LOOP
                    room := p_want;
                    IF p_rate > 0 THEN
                        room := least(room, floor(toks[i])::integer);
                    END IF;
                    IF p_max_running > 0 THEN
                        room := least(room, p_max_running - running_n[i]);
                    END IF;
                    IF blocks[i] > now() THEN
                        room := 0;
                    END IF;
                    caps := caps || room;
                END LOOP;
            END IF;

            -- Parked jobs first, key by key, in priority order within a key.
            FOREACH k IN ARRAY coalesce(due_keys, '{}') LOOP
                EXIT WHEN cardinality(take) >= p_want;
                i := array_position(keys, k);
                CONTINUE WHEN i IS NULL;  -- another claim holds it
                looked[i] := true;
                CONTINUE WHEN caps[i] <= 0;
                FOR r IN SELECT t.job_id, t.scheduled_start, x.target,
                                (x.status = 0 AND x.scheduled_start = 'infinity') AS valid,
                                EXISTS (SELECT 1 FROM jobd.job_hold AS h WHERE h.job_id = x.id)
                                  AS held
                           FROM jobd.job_throttled AS t JOIN jobd.job AS x ON x.id = t.job_id
                          WHERE t.job_type = p_type AND t.key = k
                          ORDER BY t.priority, t.job_id
                          LIMIT caps[i] + 16
                          FOR UPDATE OF x SKIP LOCKED
                LOOP
                    EXIT WHEN caps[i] <= 0 OR cardinality(take) >= p_want;
                    IF r.held THEN
                        -- Made to wait for parents while parked: the hold
                        -- gets its own start, to free it at.
                        UPDATE jobd.job_hold AS h SET scheduled_start = r.scheduled_start
                         WHERE h.job_id = r.job_id AND h.scheduled_start = 'infinity';
                        DELETE FROM jobd.job_throttled AS t WHERE t.job_id = r.job_id;
                        CONTINUE;
                    END IF;
                    IF NOT r.valid THEN
                        -- Ended or started by hand since it was parked.
                        DELETE FROM jobd.job_throttled AS t WHERE t.job_id = r.job_id;
                        CONTINUE;
                    END IF;
                    CONTINUE WHEN r.target IS NOT NULL
                        AND (r.target = ANY (take_targets)
                             OR EXISTS (SELECT 1 FROM jobd.job AS x
                                         WHERE x.status = 1 AND x.target = r.target)
                             OR EXISTS (SELECT 1 FROM jobd.paused AS p
                                         WHERE p.job_type = p_type AND p.target = r.target
                                           AND (p.until IS NULL OR p.until > now())));
                    UPDATE jobd.job AS x SET scheduled_start = r.scheduled_start
                     WHERE x.id = r.job_id;
                    DELETE FROM jobd.job_throttled AS t WHERE t.job_id = r.job_id;
                    take := take || r.job_id;
                    IF r.target IS NOT NULL THEN
                        take_targets := take_targets || r.target;
                    END IF;
                    caps[i] := caps[i] - 1;
                    used[i] := used[i] + 1;
                END LOOP;
                is_parked[i] := EXISTS (SELECT 1 FROM jobd.job_throttled AS t
                                         WHERE t.job_type = p_type AND t.key = k);
            END LOOP;
        END IF;
        EXIT WHEN cand_ids IS NULL;

        -- Then the ready jobs: each starts if its key has room and no parked
        -- job of its key is ahead of it; else it is parked (it is looked at
        -- once, and no longer stands in front of other keys' jobs).
        FOR n IN 1 .. array_length(cand_ids, 1) LOOP
            k := cand_keys[n];
            i := array_position(keys, k);
            IF k IS NOT NULL AND i IS NULL AND NOT (k = ANY (all_keys)) THEN
                -- A key first seen in a later window: its bucket is taken
                -- only if that takes no waiting (20 ms at most).
                all_keys := all_keys || k;
                BEGIN
                    PERFORM set_config('lock_timeout', '20ms', true);
                    INSERT INTO jobd.limit_bucket (job_type, key, tokens)
                    SELECT p_type, k, p_burst
                     WHERE NOT EXISTS (SELECT 1 FROM jobd.limit_bucket AS b
                                        WHERE b.job_type = p_type AND b.key = k)
                    ON CONFLICT DO NOTHING;
                    SELECT b.tokens, b.refilled, b.parked, b.blocked_until INTO STRICT r
                      FROM jobd.limit_bucket AS b
                     WHERE b.job_type = p_type AND b.key = k FOR UPDATE NOWAIT;
                    PERFORM set_config('lock_timeout', lock_wait, true);
                    keys := coalesce(keys, '{}') || k;
                    i := cardinality(keys);
                    blocks := blocks || r.blocked_until;
                    toks := toks || CASE WHEN p_rate > 0
                                         THEN least(p_burst::double precision,
                                                    r.tokens + extract(epoch FROM now() - r.refilled)
                                                               * p_rate / per_s)
                                         ELSE 0 END;
                    is_parked := is_parked || r.parked;
                    used := used || 0;
                    looked := looked || false;
                    room := p_want;
                    IF p_rate > 0 THEN
                        room := least(room, floor(toks[i])::integer);
                    END IF;
                    IF p_max_running > 0 THEN
                        room := least(room, p_max_running - (
                            SELECT count(*) FROM jobd.job AS x
                             WHERE x.status = 1 AND x.job_type = p_type
                               AND jobd.limit_key(p_kind, p_arg, x.job_type, x.target,
                                                  x.json_data) = k)::integer);
                    END IF;
                    IF r.blocked_until > now() THEN
                        room := 0;
                    END IF;
                    caps := caps || room;
                EXCEPTION WHEN lock_not_available OR no_data_found THEN
                    i := NULL;  -- (the setting is rolled back with the block)
                END;
            END IF;
            IF k IS NOT NULL AND i IS NULL THEN
                -- Another claim holds it: the next claim, which comes at
                -- once, looks at it.
                more_left := true;
                seen := seen || cand_ids[n];
            ELSIF cand_targets[n] IS NOT NULL AND cand_targets[n] = ANY (take_targets) THEN
                seen := seen || cand_ids[n];
            ELSIF k IS NULL THEN
                IF cardinality(take) < p_want THEN
                    take := take || cand_ids[n];
                    IF cand_targets[n] IS NOT NULL THEN
                        take_targets := take_targets || cand_targets[n];
                    END IF;
                ELSE
                    seen := seen || cand_ids[n];
                END IF;
            ELSIF is_parked[i] OR caps[i] <= 0 THEN
                -- (A row may be left from an earlier parking that an
                -- operator's retry ended.)
                INSERT INTO jobd.job_throttled AS t (job_id, job_type, key, priority,
                                                     scheduled_start)
                SELECT x.id, p_type, k, x.priority, x.scheduled_start FROM jobd.job AS x
                 WHERE x.id = cand_ids[n]
                ON CONFLICT (job_id) DO UPDATE
                   SET job_type = EXCLUDED.job_type, key = EXCLUDED.key,
                       priority = EXCLUDED.priority, scheduled_start = EXCLUDED.scheduled_start,
                       parked = now();
                UPDATE jobd.job AS x SET scheduled_start = 'infinity' WHERE x.id = cand_ids[n];
                is_parked[i] := true;
                parked_now := parked_now + 1;
            ELSIF cardinality(take) < p_want THEN
                take := take || cand_ids[n];
                IF cand_targets[n] IS NOT NULL THEN
                    take_targets := take_targets || cand_targets[n];
                END IF;
                caps[i] := caps[i] - 1;
                used[i] := used[i] + 1;
            ELSE
                seen := seen || cand_ids[n];
            END IF;
        END LOOP;
        -- Another window while this one only set jobs aside: a key's long
        -- backlog is parked in one claim, up to a budget (the daemon
        -- claims again at once when it is spent).
        EXIT WHEN cardinality(take) >= p_want OR more_left;
        IF parked_now >= 2000 THEN
            more_left := true;
            EXIT;
        END IF;
    END LOOP;

    IF keys IS NOT NULL THEN
        UPDATE jobd.limit_bucket AS b
           SET tokens = CASE WHEN p_rate > 0 THEN s.tok - s.used ELSE b.tokens END,
               refilled = now(),
               parked = s.parked,
               checked = CASE WHEN s.looked THEN now() ELSE b.checked END,
               next_due = CASE WHEN s.parked AND s.blocked > now() THEN s.blocked
                               WHEN s.parked AND p_rate > 0 AND s.tok - s.used < 1
                               THEN now() + make_interval(secs => (1 - (s.tok - s.used)) * per_s / p_rate)
                          END,
               blocked_until = CASE WHEN s.blocked > now() THEN s.blocked END
          FROM unnest(keys, toks, used, is_parked, looked, blocks)
               AS s(key, tok, used, parked, looked, blocked)
         WHERE b.job_type = p_type AND b.key = s.key;
    END IF;
    -- Last, after every bucket lock: whether the daemons should claim again
    -- at once (jobd.next_limited_due).
    UPDATE jobd.limit_definition AS d SET backlog = more_left
     WHERE d.job_type = p_type AND d.backlog IS DISTINCT FROM more_left;

    IF cardinality(take) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH claimed AS (
      UPDATE jobd.job AS j
         SET status = 1, attempt_count = j.attempt_count + 1, date_started = now(),
             date_finished = NULL, lease_expires = now() + p_lease, lease_owner = p_owner
       WHERE j.id = ANY (take)
      RETURNING j.id, j.attempt_count, j.max_retries, j.priority, j.target, j.json_data,
                date_part('epoch', now() - GREATEST(j.date_created, j.scheduled_start)) AS waited
    )
    SELECT c.id, c.attempt_count, c.max_retries, c.priority, c.target, octet_length(t.text),
           CASE WHEN octet_length(t.text) <= p_max_payload THEN t.text END, c.waited,
           (SELECT pr.checkpoint::text FROM jobd.job_progress AS pr WHERE pr.job_id = c.id)
      FROM claimed AS c CROSS JOIN LATERAL (SELECT c.json_data::text AS text) AS t
     ORDER BY c.priority, c.id;
END
$fn$;

-- Jobs that their remote rate limited ("retry after", an HTTP 429): the key
-- each has under its type's limit starts nothing for its pause (its tokens
-- are spent, and claims park the key's jobs until then). The jobs
-- themselves go back to WAITING, their attempts given back, by the
-- outcomes that call this, in the same transaction. The buckets are taken
-- in key order, as claims take them. Returns how many keys were blocked
-- (jobs of types without a limit, or without a key, block nothing).
CREATE FUNCTION jobd.limit_block(jobs bigint[], pauses interval[]) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    r record;
    blocked integer := 0;
BEGIN
    FOR r IN SELECT b.job_type, b.key, max(b.pause) AS pause
               FROM (SELECT j.job_type, u.pause,
                            jobd.limit_key(d.key_kind, d.key_arg, j.job_type, j.target,
                                           j.json_data) AS key
                       FROM unnest(jobs, pauses) AS u(id, pause)
                       JOIN jobd.job AS j ON j.id = u.id
                       JOIN jobd.limit_definition AS d ON d.job_type = j.job_type) AS b
              WHERE b.key IS NOT NULL
              GROUP BY b.job_type, b.key
              ORDER BY b.job_type, b.key
    LOOP
        INSERT INTO jobd.limit_bucket AS b (job_type, key, tokens, blocked_until)
        VALUES (r.job_type, r.key, 0, now() + r.pause)
        ON CONFLICT (job_type, key) DO UPDATE
           SET tokens = 0, refilled = now(),
               blocked_until = GREATEST(b.blocked_until, EXCLUDED.blocked_until),
               next_due = CASE WHEN b.parked
                               THEN GREATEST(b.blocked_until, EXCLUDED.blocked_until)
                               ELSE b.next_due END;
        blocked := blocked + 1;
    END LOOP;
    RETURN blocked;
END
$$;

-- When a limited type's daemon should claim again by itself: the type's
-- next future scheduled_start or pause end (as for every type), or the
-- next token of a key whose jobs are parked.
CREATE FUNCTION jobd.next_limited_due(jt text) RETURNS double precision
LANGUAGE sql STABLE
AS $$
    SELECT extract(epoch FROM least(
        (SELECT min(scheduled_start) FROM jobd.job
          WHERE status = 0 AND job_type = jt AND scheduled_start IS NOT NULL
            AND scheduled_start > now() AND scheduled_start < 'infinity'),
        (SELECT min(until) FROM jobd.paused WHERE job_type = jt AND until > now()),
        (SELECT min(next_due) FROM jobd.limit_bucket
          WHERE job_type = jt AND next_due IS NOT NULL AND next_due > now()),
        (SELECT now() FROM jobd.limit_definition WHERE job_type = jt AND backlog)) - now())
$$;

-- What `jobd status` and the dashboard show: the keys whose jobs a limit
-- parked (at most max_keys of them, from the buckets marked parked, each
-- count read by index and capped at 10,000), and when each starts.
CREATE FUNCTION jobd.limit_state(max_keys integer)
RETURNS TABLE (job_type text, key text, limited_by text, parked bigint, since timestamptz,
               next_due timestamptz, blocked_until timestamptz)
LANGUAGE sql STABLE
AS $$
    SELECT * FROM (
      SELECT b.job_type, b.key,
             CASE WHEN d.key_arg = '' THEN d.key_kind ELSE d.key_kind || ':' || d.key_arg END,
             (SELECT count(*) FROM (SELECT 1 FROM jobd.job_throttled AS t
                                     WHERE t.job_type = b.job_type AND t.key = b.key
                                     LIMIT 10000) AS c),
             (SELECT t.parked FROM jobd.job_throttled AS t
               WHERE t.job_type = b.job_type AND t.key = b.key
               ORDER BY t.priority, t.job_id LIMIT 1),
             CASE WHEN b.next_due > now() THEN b.next_due END,
             CASE WHEN b.blocked_until > now() THEN b.blocked_until END
        FROM jobd.limit_bucket AS b
        LEFT JOIN jobd.limit_definition AS d ON d.job_type = b.job_type
       WHERE b.parked
       ORDER BY b.job_type, b.checked
       LIMIT max_keys) AS k (job_type, key, limited_by, parked, since, next_due, blocked_until)
     WHERE k.parked > 0
$$;
