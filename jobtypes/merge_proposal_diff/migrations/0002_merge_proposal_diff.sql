-- The merge_proposal_diff handler's results (jobtypes/merge_proposal_diff):
-- the latest diff of each merge proposal, written in the job's own
-- transaction with its COMPLETED mark.
CREATE TABLE jobd.merge_proposal_diff (
    merge_proposal  bigint PRIMARY KEY,
    repository      text NOT NULL,
    source_ref      text NOT NULL,
    target_ref      text NOT NULL,
    source_commit   text NOT NULL,
    target_commit   text NOT NULL,
    merge_base      text NOT NULL,
    diff            text NOT NULL,
    diff_bytes      bigint NOT NULL,       -- before any truncation
    truncated       boolean NOT NULL,
    files_changed   integer NOT NULL,
    lines_added     integer NOT NULL,
    lines_removed   integer NOT NULL,
    job_id          bigint NOT NULL,
    generated_at    timestamptz NOT NULL DEFAULT now()
);
