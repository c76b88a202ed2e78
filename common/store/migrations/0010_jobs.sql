-- Jobs: one execution each (a sync run, an action call, a provider webhook handed to a
-- script). PostgreSQL is the source of truth; Kafka carries a message per job that tells a
-- worker to run it. A worker claims a job by taking its lease: lease_token grows with every
-- claim, and every write the run makes (its outcome, records, checkpoints) is checked
-- against the token it holds, so a worker that lost its lease (it stalled, another took
-- over) cannot commit over its successor. A queued job whose message never reached Kafka,
-- and a running job whose lease expired, are found by the scheduler and sent again.
CREATE TABLE jobs (
    id             uuid PRIMARY KEY,
    environment_id bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('action', 'sync', 'webhook')),
    connection_id  bigint REFERENCES connections (id) ON DELETE CASCADE,
    function_name  text,
    state          text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts       integer NOT NULL DEFAULT 0,
    max_attempts   integer NOT NULL DEFAULT 1 CHECK (max_attempts BETWEEN 1 AND 10),
    lease_owner    text,
    lease_token    bigint NOT NULL DEFAULT 0,
    lease_until    timestamptz,
    retry_at       timestamptz,
    input          jsonb,
    output         jsonb,
    error          jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- The scheduler's recovery scans: queued jobs not yet run, running jobs past their lease.
CREATE INDEX jobs_pending ON jobs (created_at) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_retry ON jobs (retry_at) WHERE retry_at IS NOT NULL AND state = 'queued';
CREATE INDEX jobs_connection ON jobs (connection_id, created_at);
-- Finished jobs are kept for their results; old ones are deleted by the scheduler.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
