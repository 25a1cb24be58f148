-- The example application's own table (examples/launchpad_app), beside
-- jobd's schema (jobd migrate) in the same database.
CREATE TABLE karma_event (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person   text NOT NULL,
    points   integer NOT NULL CHECK (points >= 0),
    recorded timestamptz NOT NULL DEFAULT now()
);

-- With `dbuser = app_jobs` in the [record_karma] section, the jobs run as a
-- role that may do what they need and nothing more (README.md, "Roles"):
--   CREATE ROLE app_jobs LOGIN;
--   GRANT INSERT ON karma_event TO app_jobs;
--   GRANT USAGE ON SCHEMA jobd TO app_jobs;
--   GRANT EXECUTE ON FUNCTION jobd.complete_in_job_transaction(bigint, integer, text, jsonb)
--       TO app_jobs;
