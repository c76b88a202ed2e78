-- The journal of a running job's provider calls that change something (every method but
-- GET, HEAD and OPTIONS), with the answers: when a worker dies in the middle of an action
-- and another takes the job over, the new run is answered from here for the calls the
-- first run already made, in the same order, so the provider sees each side effect once.
-- Rows are written fenced by the run's lease token and deleted when the job's attempt
-- finishes (a retry after a failure calls the provider again).
CREATE TABLE job_calls (
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq          integer NOT NULL CHECK (seq >= 1),
    request_hash text NOT NULL,
    status       integer NOT NULL,
    headers      jsonb NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, seq)
);
