-- jobd schema version 21: fairness among keys and priority ageing (issue
-- 21, item 2). docs/schema.md, "Fairness and ageing (version 21)".
--
-- jobd.claim_limited gains two arguments:
--  - p_fair: the type's keys (limit_key, version 20) take the slots in
--    turn. A key takes one job from the claim's windows; its other jobs
--    there are parked (as a limit parks them), so one key's long backlog
--    is set aside and stops standing in front of the other keys' jobs.
--    The slots left are then shared among the keys with parked jobs, one
--    job per key per round, the least recently served key first.
--  - p_age: a ready job that has waited this long (since its creation or
--    its scheduled start) is claimed before every job that has not, of
--    whatever priority; NULL: no ageing. The oldest jobs of each priority
--    are found by a skip scan of job_unscheduled_idx, one probe a priority.
-- Parking is now written a window at a time (one INSERT and one UPDATE),
-- and a fair claim parks up to 10,000 jobs.
-- The common claim (jobd.claim_with_checkpoints) does not change.

DROP FUNCTION jobd.claim_limited(text, integer, interval, text, bigint, text, text, integer,
                                 integer, interval, integer);

-- Starts the jobs a claim took and locked (jobd.claim_limited), as
-- jobd.claim_with_checkpoints returns them; parked jobs among them (at
-- 'infinity') get their own starts back.
CREATE FUNCTION jobd.start_claimed(ids bigint[], p_lease interval, p_owner text,
                                   p_max_payload bigint, unparked bigint[],
                                   unparked_starts timestamptz[])
RETURNS TABLE (id bigint, attempt_count integer, max_retries integer, priority smallint,
               target text, payload_size integer, payload text, waited double precision,
               checkpoint text)
LANGUAGE sql
SET enable_seqscan = off
AS $fn$
    WITH claimed AS (
      UPDATE jobd.job AS j
         SET status = 1, attempt_count = j.attempt_count + 1, date_started = now(),
             date_finished = NULL, lease_expires = now() + p_lease, lease_owner = p_owner,
             scheduled_start = CASE WHEN j.scheduled_start = 'infinity'
                                    THEN unparked_starts[array_position(unparked, j.id)]
                                    ELSE j.scheduled_start END
       WHERE j.id = ANY (ids)
      RETURNING j.id, j.attempt_count, j.max_retries, j.priority, j.target, j.json_data,
                date_part('epoch', now() - GREATEST(j.date_created, j.scheduled_start)) AS waited
    )
    SELECT c.id, c.attempt_count, c.max_retries, c.priority, c.target, octet_length(t.text),
           CASE WHEN octet_length(t.text) <= p_max_payload THEN t.text END, c.waited,
           (SELECT pr.checkpoint::text FROM jobd.job_progress AS pr WHERE pr.job_id = c.id)
      FROM claimed AS c CROSS JOIN LATERAL (SELECT c.json_data::text AS text) AS t
     ORDER BY c.priority, c.id;
$fn$;

-- The claim of a limited type: at most `want` ready jobs, as
-- jobd.claim_with_checkpoints returns them, none beyond its key's limit.
-- max_running 0: no cap on running jobs; rate 0: no token bucket; p_fair:
-- keys take turns; p_age: jobs that waited this long go first (NULL: no
-- ageing).
CREATE FUNCTION jobd.claim_limited(p_type text, p_want integer, p_lease interval, p_owner text,
                                   p_max_payload bigint, p_kind text, p_arg text,
                                   p_max_running integer, p_rate integer, p_per interval,
                                   p_burst integer, p_fair boolean, p_age interval)
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
    -- A fair claim takes this many from its windows and leaves the rest
    -- to the keys with parked jobs, taken in turn after the windows.
    window_cap integer := p_want;
    park_budget integer := CASE WHEN p_fair THEN 10000 ELSE 2000 END;
    aged_ids bigint[] := '{}';
    -- No cap on a key's room but the claim's (fairness or ageing alone).
    uncapped integer := CASE WHEN p_rate > 0 OR p_max_running > 0 THEN p_want ELSE 2147483647 END;
    -- When each key's last job was taken: the key served last waits longest
    -- for its next turn.
    served timestamptz[] := '{}';
    -- Parked jobs a fair claim starts, and their own starts.
    unparked bigint[] := '{}';
    unparked_starts timestamptz[] := '{}';
    park_ids bigint[] := '{}';
    park_keys text[] := '{}';
    capped boolean := false;
    later_keys integer := 0;
    per_key integer;
    read_n integer[] := '{}';
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

    IF p_age IS NOT NULL THEN
        -- The jobs that waited longer than p_age: the oldest of each
        -- priority (a skip scan of job_unscheduled_idx, a probe per
        -- priority), and for a type keyed by type the scheduled jobs due
        -- longest.
        WITH RECURSIVE levels (level) AS (
          (SELECT q.priority FROM jobd.job AS q
            WHERE q.status = 0 AND q.job_type = p_type AND NOT q.behind
              AND q.scheduled_start IS NULL
            ORDER BY q.priority LIMIT 1)
          UNION ALL
          SELECT (SELECT q.priority FROM jobd.job AS q
                   WHERE q.status = 0 AND q.job_type = p_type AND NOT q.behind
                     AND q.scheduled_start IS NULL AND q.priority > l.level
                   ORDER BY q.priority LIMIT 1)
            FROM levels AS l WHERE l.level IS NOT NULL
        )
        -- (A priority's oldest job first: when it has not waited that
        -- long, none of the priority has, and no more is read.)
        SELECT coalesce(array_agg(h.id), '{}') INTO aged_ids
          FROM levels AS l
         CROSS JOIN LATERAL (SELECT q.date_created FROM jobd.job AS q
                              WHERE q.status = 0 AND q.job_type = p_type AND NOT q.behind
                                AND q.scheduled_start IS NULL AND q.priority = l.level
                              ORDER BY q.job_type, q.behind, q.priority, q.id LIMIT 1) AS head
         CROSS JOIN LATERAL (SELECT q.id, q.date_created FROM jobd.job AS q
                              WHERE q.status = 0 AND q.job_type = p_type AND NOT q.behind
                                AND q.scheduled_start IS NULL AND q.priority = l.level
                              ORDER BY q.job_type, q.behind, q.priority, q.id LIMIT p_want) AS h
         WHERE l.level IS NOT NULL AND head.date_created <= now() - p_age
           AND h.date_created <= now() - p_age;
        IF p_kind = 'type' THEN
            -- (A keyed claim's window reads the due jobs oldest first.)
            SELECT aged_ids || coalesce(array_agg(q.id), '{}') INTO aged_ids
              FROM (SELECT q.id FROM jobd.job AS q
                     WHERE q.status = 0 AND q.job_type = p_type
                       AND q.scheduled_start IS NOT NULL AND q.scheduled_start <= now() - p_age
                     ORDER BY q.scheduled_start LIMIT p_want) AS q;
        END IF;
    END IF;

    IF p_kind = 'type' THEN
        -- One key: how many may start is known before the claim, which is
        -- then the common one (after the jobs past their ageing). Nothing
        -- is parked, and without a limit there is no bucket to lock.
        IF p_rate > 0 OR p_max_running > 0 THEN
            INSERT INTO jobd.limit_bucket (job_type, key, tokens)
            VALUES (p_type, p_type, p_burst)
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
        END IF;
        room := p_want;
        IF p_rate > 0 THEN
            room := least(room, floor(tok)::integer);
        END IF;
        IF p_max_running > 0 THEN
            room := least(room, p_max_running - (SELECT count(*) FROM jobd.job AS r
                                                  WHERE r.status = 1 AND r.job_type = p_type)::integer);
        END IF;
        IF room > 0 AND cardinality(aged_ids) > 0 THEN
            -- One job a target, as the common claim takes them.
            FOR r IN SELECT q.id, q.target FROM jobd.job AS q
                     WHERE q.id = ANY (aged_ids) AND q.status = 0 AND q.job_type = p_type
                       AND ((q.scheduled_start IS NULL AND NOT q.behind)
                            OR q.scheduled_start <= now() - p_age)
                       AND (q.lease_expires IS NULL OR q.lease_expires <= now())
                       AND (q.target IS NULL
                            OR (NOT EXISTS (SELECT 1 FROM jobd.job AS x
                                             WHERE x.status = 1 AND x.target = q.target)
                                AND NOT EXISTS (SELECT 1 FROM jobd.paused AS p
                                                 WHERE p.job_type = p_type
                                                   AND p.target = q.target
                                                   AND (p.until IS NULL OR p.until > now()))))
                     ORDER BY coalesce(q.scheduled_start, q.date_created), q.id
                     LIMIT room
                       FOR UPDATE SKIP LOCKED
            LOOP
                CONTINUE WHEN r.target IS NOT NULL AND r.target = ANY (take_targets);
                take := take || r.id;
                IF r.target IS NOT NULL THEN
                    take_targets := take_targets || r.target;
                END IF;
            END LOOP;
            IF cardinality(take) > 0 THEN
                RETURN QUERY SELECT * FROM jobd.start_claimed(take, p_lease, p_owner,
                                                              p_max_payload, '{}', '{}');
                got := cardinality(take);
            END IF;
        END IF;
        IF room - got > 0 THEN
            RETURN QUERY SELECT * FROM jobd.claim_with_checkpoints(p_type, room - got, p_lease,
                                                                  p_owner, p_max_payload);
            GET DIAGNOSTICS n = ROW_COUNT;
            got := got + n;
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
        WITH aged AS MATERIALIZED (
          SELECT q.id, q.priority, q.job_type, q.target, q.json_data, q.date_created AS since
            FROM jobd.job AS q
           WHERE q.id = ANY (aged_ids) AND q.status = 0 AND q.job_type = p_type AND NOT q.behind
             AND q.scheduled_start IS NULL
             AND (q.lease_expires IS NULL OR q.lease_expires <= now())
             AND q.id <> ALL (take) AND q.id <> ALL (seen)
             AND (q.target IS NULL
                  OR (NOT EXISTS (SELECT 1 FROM jobd.job AS x
                                   WHERE x.status = 1 AND x.target = q.target)
                      AND NOT EXISTS (SELECT 1 FROM jobd.paused AS p
                                       WHERE p.job_type = p_type AND p.target = q.target
                                         AND (p.until IS NULL OR p.until > now()))))
           FOR UPDATE SKIP LOCKED
        ), unscheduled AS MATERIALIZED (
          SELECT q.id, q.priority, q.job_type, q.target, q.json_data, q.date_created AS since
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
          SELECT q.id, q.priority, q.job_type, q.target, q.json_data, q.scheduled_start AS since
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
        -- In claim order: the jobs that waited longer than p_age first,
        -- the longest waiting first; then by priority.
        SELECT array_agg(j.id ORDER BY j.aged DESC, CASE WHEN j.aged THEN j.since END,
                                       j.priority, j.id),
               array_agg(jobd.limit_key(p_kind, p_arg, j.job_type, j.target, j.json_data)
                         ORDER BY j.aged DESC, CASE WHEN j.aged THEN j.since END,
                                  j.priority, j.id),
               array_agg(j.target ORDER BY j.aged DESC, CASE WHEN j.aged THEN j.since END,
                                           j.priority, j.id)
          INTO cand_ids, cand_keys, cand_targets
          FROM (SELECT DISTINCT ON (u.id) u.*,
                       coalesce(u.since <= now() - p_age, false) AS aged
                  FROM (SELECT * FROM aged UNION ALL SELECT * FROM unscheduled
                        UNION ALL SELECT * FROM due) AS u
                 ORDER BY u.id) AS j;
        aged_ids := '{}';

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
                    served := served || NULL::timestamptz;
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
                    room := uncapped;
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
                IF p_fair THEN
                    -- Up to half the slots are kept for the parked keys
                    -- that have room.
                    window_cap := p_want - least(
                        (SELECT count(*) FROM unnest(keys, caps, is_parked) AS s (key, cap, parked)
                          WHERE s.parked AND s.cap > 0 AND s.key = ANY (due_keys))::integer,
                        p_want / 2);
                END IF;
            END IF;

            -- Parked jobs first, key by key, in priority order within a key
            -- (a fair claim takes them in turn after the windows).
            FOREACH k IN ARRAY CASE WHEN p_fair THEN '{}' ELSE coalesce(due_keys, '{}') END LOOP
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
                          LIMIT least(caps[i], p_want) + 16
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
                    served[i] := clock_timestamp();
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
            IF k IS NOT NULL AND i IS NULL AND NOT (k = ANY (all_keys))
               AND later_keys < 48 THEN
                -- A key first seen in a later window: its bucket is taken
                -- only if that takes no waiting (20 ms at most). Each is a
                -- subtransaction: at most 48 a claim (PostgreSQL caches 64
                -- a backend); later ones wait for the next claim.
                all_keys := all_keys || k;
                later_keys := later_keys + 1;
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
                    served := served || NULL::timestamptz;
                    looked := looked || false;
                    room := uncapped;
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
                -- Another claim holds it (or this claim locked its 48 new
                -- keys): the next claim, which comes at once, looks at it.
                more_left := true;
                seen := seen || cand_ids[n];
            ELSIF cand_targets[n] IS NOT NULL AND cand_targets[n] = ANY (take_targets) THEN
                seen := seen || cand_ids[n];
            ELSIF k IS NULL THEN
                IF cardinality(take) < window_cap THEN
                    take := take || cand_ids[n];
                    IF cand_targets[n] IS NOT NULL THEN
                        take_targets := take_targets || cand_targets[n];
                    END IF;
                ELSE
                    seen := seen || cand_ids[n];
                    capped := true;
                END IF;
            ELSIF is_parked[i] OR caps[i] <= 0 OR (p_fair AND used[i] > 0) THEN
                -- Parked (written below, with the window's others). A fair
                -- claim parks a key's jobs after the first it takes.
                park_ids := park_ids || cand_ids[n];
                park_keys := park_keys || k;
                is_parked[i] := true;
                parked_now := parked_now + 1;
            ELSIF cardinality(take) < window_cap THEN
                take := take || cand_ids[n];
                IF cand_targets[n] IS NOT NULL THEN
                    take_targets := take_targets || cand_targets[n];
                END IF;
                caps[i] := caps[i] - 1;
                used[i] := used[i] + 1;
                served[i] := clock_timestamp();
            ELSE
                seen := seen || cand_ids[n];
                capped := true;
            END IF;
        END LOOP;
        IF cardinality(park_ids) > 0 THEN
            -- (A row may be left from an earlier parking that an
            -- operator's retry ended.)
            INSERT INTO jobd.job_throttled AS t (job_id, job_type, key, priority, scheduled_start)
            SELECT x.id, p_type, u.key, x.priority, x.scheduled_start
              FROM unnest(park_ids, park_keys) AS u (id, key) JOIN jobd.job AS x ON x.id = u.id
            ON CONFLICT (job_id) DO UPDATE
               SET job_type = EXCLUDED.job_type, key = EXCLUDED.key,
                   priority = EXCLUDED.priority, scheduled_start = EXCLUDED.scheduled_start,
                   parked = now();
            UPDATE jobd.job AS x SET scheduled_start = 'infinity' WHERE x.id = ANY (park_ids);
            park_ids := '{}';
            park_keys := '{}';
        END IF;
        -- Another window while this one only set jobs aside: a key's long
        -- backlog is parked in one claim, up to a budget (the daemon
        -- claims again at once when it is spent).
        EXIT WHEN cardinality(take) >= window_cap OR more_left;
        IF parked_now >= park_budget THEN
            more_left := true;
            EXIT;
        END IF;
        IF p_fair THEN
            window_size := greatest(window_size, 1000);
        END IF;
    END LOOP;

    IF p_fair AND cardinality(take) < p_want THEN
        -- The slots left go to the keys with parked jobs (those parked
        -- just now among them), one job a key a round: a key's next job
        -- comes after every other key's job of the same round, the keys
        -- least recently served first. Each key's queue is read only as
        -- far as its share of the slots (and a few more, for jobs that
        -- cannot start).
        per_key := least(p_want, p_want / greatest(
            (SELECT count(*) FROM unnest(caps, is_parked) AS s (cap, parked)
              WHERE s.parked AND s.cap > 0)::integer, 1) + 2);
        FOR r IN SELECT t.job_id, t.scheduled_start, x.target, s.ord,
                        (x.status = 0 AND x.scheduled_start = 'infinity') AS valid,
                        EXISTS (SELECT 1 FROM jobd.job_hold AS h WHERE h.job_id = x.id) AS held
                   FROM unnest(keys, caps, used, is_parked) WITH ORDINALITY
                        AS s (key, cap, used, parked, ord)
                  CROSS JOIN LATERAL (
                        SELECT t.job_id, t.scheduled_start,
                               row_number() OVER (ORDER BY t.priority, t.job_id) AS round
                          FROM jobd.job_throttled AS t
                         WHERE t.job_type = p_type AND t.key = s.key
                         ORDER BY t.priority, t.job_id
                         LIMIT least(s.cap, per_key)) AS t
                   JOIN jobd.job AS x ON x.id = t.job_id
                  WHERE s.parked AND s.cap > 0
                  ORDER BY s.used + t.round,
                           coalesce(array_position(due_keys, s.key), p_want + 8 + s.ord), t.round
                    FOR UPDATE OF x SKIP LOCKED
        LOOP
            EXIT WHEN cardinality(take) >= p_want;
            i := r.ord;
            looked[i] := true;
            read_n[i] := coalesce(read_n[i], 0) + 1;
            CONTINUE WHEN caps[i] <= 0;
            IF r.held THEN
                UPDATE jobd.job_hold AS h SET scheduled_start = r.scheduled_start
                 WHERE h.job_id = r.job_id AND h.scheduled_start = 'infinity';
                DELETE FROM jobd.job_throttled AS t WHERE t.job_id = r.job_id;
                CONTINUE;
            END IF;
            IF NOT r.valid THEN
                DELETE FROM jobd.job_throttled AS t WHERE t.job_id = r.job_id;
                CONTINUE;
            END IF;
            IF r.target IS NOT NULL
                AND (r.target = ANY (take_targets)
                     OR EXISTS (SELECT 1 FROM jobd.job AS x
                                 WHERE x.status = 1 AND x.target = r.target)
                     OR EXISTS (SELECT 1 FROM jobd.paused AS p
                                 WHERE p.job_type = p_type AND p.target = r.target
                                   AND (p.until IS NULL OR p.until > now()))) THEN
                read_n[i] := read_n[i] - 1;  -- (it waits for its target)
                CONTINUE;
            END IF;
            -- Its own start is given back by the claim's UPDATE below.
            unparked := unparked || r.job_id;
            unparked_starts := unparked_starts || r.scheduled_start;
            take := take || r.job_id;
            IF r.target IS NOT NULL THEN
                take_targets := take_targets || r.target;
            END IF;
            caps[i] := caps[i] - 1;
            used[i] := used[i] + 1;
            served[i] := clock_timestamp();
        END LOOP;
        DELETE FROM jobd.job_throttled AS t WHERE t.job_id = ANY (unparked);
        FOR i IN 1 .. coalesce(cardinality(keys), 0) LOOP
            -- A key whose queue was read to its share may have more: claim
            -- again at once if slots are left.
            IF cardinality(take) < p_want AND read_n[i] >= per_key THEN
                capped := true;
            END IF;
            -- Every parked key that was due takes its turn (its checked
            -- moves on, and a queue that an operator emptied is noticed),
            -- whether or not it had room.
            IF is_parked[i] AND keys[i] = ANY (due_keys) THEN
                looked[i] := true;
            END IF;
            IF looked[i] THEN
                is_parked[i] := EXISTS (SELECT 1 FROM jobd.job_throttled AS t
                                         WHERE t.job_type = p_type AND t.key = keys[i]);
            END IF;
        END LOOP;
        -- Ready jobs left for the slots kept for parked keys that went
        -- unused: claim again at once.
        IF capped AND cardinality(take) < p_want THEN
            more_left := true;
        END IF;
    END IF;

    IF keys IS NOT NULL THEN
        UPDATE jobd.limit_bucket AS b
           SET tokens = CASE WHEN p_rate > 0 THEN s.tok - s.used ELSE b.tokens END,
               refilled = now(),
               parked = s.parked,
               checked = CASE WHEN s.served IS NOT NULL THEN s.served
                              WHEN s.looked THEN now() ELSE b.checked END,
               next_due = CASE WHEN s.parked AND s.blocked > now() THEN s.blocked
                               WHEN s.parked AND p_rate > 0 AND s.tok - s.used < 1
                               THEN now() + make_interval(secs => (1 - (s.tok - s.used)) * per_s / p_rate)
                          END,
               blocked_until = CASE WHEN s.blocked > now() THEN s.blocked END
          FROM unnest(keys, toks, used, is_parked, looked, blocks, served)
               AS s(key, tok, used, parked, looked, blocked, served)
         WHERE b.job_type = p_type AND b.key = s.key;
    END IF;
    -- Last, after every bucket lock: whether the daemons should claim again
    -- at once (jobd.next_limited_due).
    UPDATE jobd.limit_definition AS d SET backlog = more_left
     WHERE d.job_type = p_type AND d.backlog IS DISTINCT FROM more_left;

    IF cardinality(take) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM jobd.start_claimed(take, p_lease, p_owner, p_max_payload,
                                                  unparked, unparked_starts);
END
$fn$;
