-- jobd schema version 15: durable schedules without a leader (issue 19,
-- "Live control").
--
-- A schedule makes one job per tick of a cron expression or of a fixed
-- interval, in a time zone of its own. Every daemon runs the same pass
-- (runtime/scheduler.hpp): it locks the due schedules it can
-- (FOR UPDATE SKIP LOCKED), computes their ticks in C++ (the cron parser
-- and the time zones are there), and calls jobd.fire_schedule for each.
-- No daemon leads: the one that locked a schedule fires it, and the
-- primary key of jobd.schedule_tick, (schedule, fire_time), makes one job
-- per tick across the fleet whatever the daemons do. docs/schema.md,
-- "Schedules (version 15)", gives the rules.

CREATE TABLE jobd.schedule (
    name            text PRIMARY KEY CHECK (name <> '' AND length(name) <= 200),
    job_type        text NOT NULL CHECK (job_type <> ''),
    -- A cron expression ("*/5 * * * *", six fields with seconds, "@daily")
    -- or "every DURATION" ("every 30s"); checked by the CLI, the
    -- configuration, and every daemon (a bad one is set aside in `problem`).
    spec            text NOT NULL,
    time_zone       text NOT NULL DEFAULT 'UTC',
    json_data       jsonb NOT NULL DEFAULT '{}',
    priority        smallint NOT NULL DEFAULT 0,
    target          text,
    max_retries     integer NOT NULL DEFAULT 0 CHECK (max_retries >= 0),
    -- Ticks that came due while no daemon could make them: skip them,
    -- make the last one, or make all of them up to catch_up_limit.
    catch_up        text NOT NULL DEFAULT 'last' CHECK (catch_up IN ('skip', 'last', 'all')),
    catch_up_limit  integer NOT NULL DEFAULT 100 CHECK (catch_up_limit BETWEEN 1 AND 1000),
    -- A tick while the last job is WAITING or RUNNING: make a job anyway,
    -- skip the tick, or queue the job behind (target 'schedule:<name>'
    -- unless the schedule has a target of its own).
    overlap         text NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip', 'queue')),
    -- Made from a section's `schedule` key; each reload of a daemon's
    -- configuration writes it again, and removes it when the key is gone.
    from_config     boolean NOT NULL DEFAULT false,
    paused          boolean NOT NULL DEFAULT false,
    created         timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL DEFAULT session_user,
    -- Every tick up to here has been made (or skipped); the next pass
    -- looks after it.
    fired_through   timestamptz NOT NULL DEFAULT now() CHECK (isfinite(fired_through)),
    -- The next tick, as the last pass computed it (NULL: not yet computed,
    -- 'infinity': never again).
    next_fire       timestamptz,
    last_fire       timestamptz,
    last_job        bigint,
    -- Ticks the catch-up policy or the overlap policy left without a job.
    missed          bigint NOT NULL DEFAULT 0,
    skipped         bigint NOT NULL DEFAULT 0,
    -- Why no daemon can run it (a spec or time zone that does not parse).
    problem         text
);

-- One row per tick made: the unique key that makes exactly one job per
-- tick. job_id is NULL for a tick skipped by overlap = 'skip'. A manual
-- tick (`jobd schedule run-now`) has a key of its own, so that it never
-- takes a real tick's. Ticks older than a day before the newest are
-- deleted as new ones are made.
CREATE TABLE jobd.schedule_tick (
    schedule   text NOT NULL REFERENCES jobd.schedule (name) ON DELETE CASCADE,
    fire_time  timestamptz NOT NULL,
    manual     boolean NOT NULL DEFAULT false,
    job_id     bigint,
    made_by    text NOT NULL DEFAULT session_user,
    made_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule, fire_time, manual)
);

-- The passes read the due schedules by next_fire.
CREATE INDEX schedule_next_fire_idx ON jobd.schedule (next_fire) WHERE NOT paused;

-- Makes the job of one tick of a schedule, once: returns the job's id and
-- 'made'; NULL and 'duplicate' when that tick was made before (by another
-- daemon, or an earlier call); NULL and 'skipped' when overlap = 'skip' and
-- the schedule's last job is WAITING or RUNNING. Locks the schedule's row
-- until the caller commits, so two calls for one schedule serialise. The
-- job's requester names the schedule and the tick, in UTC ("schedule
-- nightly tick 2026-12-06T02:30:00Z", "... run-now ..." for a manual one).
CREATE FUNCTION jobd.fire_schedule(schedule_name text, fire_time timestamptz,
                                   made_by text DEFAULT session_user,
                                   manual boolean DEFAULT false)
RETURNS TABLE (job_id bigint, outcome text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    s jobd.schedule;
    made bigint;
    fresh integer;
BEGIN
    SELECT * INTO s FROM jobd.schedule AS t WHERE t.name = fire_schedule.schedule_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'jobd.fire_schedule: no schedule named %', fire_schedule.schedule_name
            USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO jobd.schedule_tick (schedule, fire_time, manual, made_by)
    VALUES (s.name, fire_schedule.fire_time, COALESCE(fire_schedule.manual, false),
            COALESCE(fire_schedule.made_by, session_user))
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS fresh = ROW_COUNT;
    IF fresh = 0 THEN
        RETURN QUERY SELECT NULL::bigint, 'duplicate'::text;
        RETURN;
    END IF;
    IF s.overlap = 'skip' AND s.last_job IS NOT NULL
       AND EXISTS (SELECT 1 FROM jobd.job AS j WHERE j.id = s.last_job AND j.status IN (0, 1)) THEN
        UPDATE jobd.schedule AS t SET skipped = t.skipped + 1 WHERE t.name = s.name;
        RETURN QUERY SELECT NULL::bigint, 'skipped'::text;
        RETURN;
    END IF;
    made := jobd.enqueue(s.job_type, s.json_data, NULL, s.priority,
                         CASE WHEN s.overlap = 'queue' THEN COALESCE(s.target, 'schedule:' || s.name)
                              ELSE s.target END,
                         s.max_retries,
                         'schedule ' || s.name
                         || CASE WHEN fire_schedule.manual THEN ' run-now ' ELSE ' tick ' END
                         || to_char(fire_schedule.fire_time AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    UPDATE jobd.schedule_tick AS k SET job_id = made
     WHERE k.schedule = s.name AND k.fire_time = fire_schedule.fire_time
       AND k.manual = COALESCE(fire_schedule.manual, false);
    UPDATE jobd.schedule AS t SET last_fire = fire_schedule.fire_time, last_job = made
     WHERE t.name = s.name;
    DELETE FROM jobd.schedule_tick AS k
     WHERE k.schedule = s.name AND k.fire_time < fire_schedule.fire_time - interval '1 day';
    RETURN QUERY SELECT made, 'made'::text;
END
$$;

-- A schedule whose spec or time zone changes, or that is resumed, starts
-- again from now: the daemons compute its next tick afresh (ticks missed
-- while it was paused are not made).
CREATE FUNCTION jobd.schedule_redefined() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.spec IS DISTINCT FROM OLD.spec OR NEW.time_zone IS DISTINCT FROM OLD.time_zone
       OR (OLD.paused AND NOT NEW.paused) THEN
        NEW.fired_through := GREATEST(OLD.fired_through, now());
        NEW.next_fire := NULL;
        NEW.problem := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER schedule_redefined BEFORE UPDATE OF spec, time_zone, paused ON jobd.schedule
    FOR EACH ROW EXECUTE FUNCTION jobd.schedule_redefined();

-- Every daemon's pass wakes when a schedule is added, changed, paused,
-- resumed or removed (payload 'jobd.schedule' on channel jobd, which no job
-- type can be confused with: the daemons route it first). The daemons' own
-- writes (fired_through, next_fire, last_*) send nothing.
CREATE FUNCTION jobd.schedule_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobd', 'jobd.schedule');
    RETURN NULL;
END
$$;
CREATE TRIGGER schedule_changed
    AFTER INSERT OR DELETE OR UPDATE OF job_type, spec, time_zone, json_data, priority, target,
        max_retries, catch_up, catch_up_limit, overlap, paused
    ON jobd.schedule FOR EACH ROW EXECUTE FUNCTION jobd.schedule_changed();
