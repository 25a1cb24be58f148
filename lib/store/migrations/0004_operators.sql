-- jobd schema version 4: what the operator's views need (SPEC §2 status,
-- §9 dashboard).

-- Live daemons. Each `jobd serve` upserts its row every few seconds and
-- deletes it at a clean stop; a row not seen for a while belongs to a
-- daemon that died, and `status` and the dashboard leave it out. An idle
-- daemon holds no lease, so the leases alone cannot tell who is up.
CREATE TABLE jobd.daemon (
    owner text PRIMARY KEY,                -- the lease_owner it writes
    hostname text NOT NULL,
    pid integer NOT NULL,
    version text NOT NULL,
    sections text[] NOT NULL,
    workers integer NOT NULL,
    running integer NOT NULL DEFAULT 0,
    draining boolean NOT NULL DEFAULT false,
    started timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now()
);

-- job_failed_idx, FAILED jobs by type and time, was created here until
-- version 7, which builds it CONCURRENTLY so that an upgrade never blocks
-- enqueues for the length of an index build (docs/schema.md, "Migrations").
