-- Syncs: a deployed sync script enabled for one connection, one row per (connection,
-- script, variant). The row is the sync's schedule, its in-flight run and its history.
--
-- Scheduling (junction-scheduler, common/store/syncs.c): a sync is due when next_due_at
-- has come. Any number of schedulers claim due rows with FOR UPDATE SKIP LOCKED and, in
-- the same transaction, create the run's job and move next_due_at to the next slot, so a
-- slot fires exactly once however many schedulers run. Slots are spread over the
-- interval by a phase derived from the sync's id (sync_next_slot), so 100,000 syncs on one
-- frequency do not start in the same second. current_job_id is the run in flight: while
-- it is queued or running, a due slot is skipped (never queued). next_due_at is NULL when
-- nothing is to fire (paused, stopped), which keeps the scheduler's index small.

-- What a deployment of an integration's scripts declares about each sync; a new
-- connection gets a sync per row (trigger below), a deployment reconciles every
-- connection's syncs with it.
CREATE TABLE sync_configs (
    integration_id bigint NOT NULL,
    environment_id bigint NOT NULL,
    name           text NOT NULL,
    sync_type      text NOT NULL CHECK (sync_type IN ('incremental', 'full')),
    track_deletes  boolean NOT NULL DEFAULT false,
    auto_start     boolean NOT NULL DEFAULT true,
    frequency_s    integer NOT NULL CHECK (frequency_s BETWEEN 30 AND 2678400),
    models         text[] NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, name),
    FOREIGN KEY (integration_id, environment_id)
        REFERENCES integrations (id, environment_id) ON DELETE CASCADE
);

-- Every run takes a generation number; records stamped with one at least the full pass's
-- first generation count as seen by that pass (track_deletes).
CREATE SEQUENCE sync_generations;

CREATE TABLE syncs (
    id                     bigserial PRIMARY KEY,
    uuid                   uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    environment_id         bigint NOT NULL,
    integration_id         bigint NOT NULL,
    connection_id          bigint NOT NULL,
    name                   text NOT NULL,
    variant                text NOT NULL DEFAULT 'base',
    sync_type              text NOT NULL CHECK (sync_type IN ('incremental', 'full')),
    track_deletes          boolean NOT NULL DEFAULT false,
    auto_start             boolean NOT NULL DEFAULT true,
    frequency_s            integer NOT NULL CHECK (frequency_s BETWEEN 30 AND 2678400),
    frequency_override_s   integer CHECK (frequency_override_s BETWEEN 30 AND 2678400),
    models                 text[] NOT NULL,
    -- running: scheduled; paused: not scheduled (a trigger still runs it once); stopped:
    -- its script was removed or its variant deleted (records kept; redeploying revives it).
    state                  text NOT NULL CHECK (state IN ('running', 'paused', 'stopped')),
    next_due_at            timestamptz,
    -- A run asked for by the API and not yet started: incremental, full (reset) or
    -- full_empty (reset and emptyCache).
    requested_mode         text CHECK (requested_mode IN ('incremental', 'full', 'full_empty')),
    current_job_id         uuid,
    current_run_started_at timestamptz,
    current_generation     bigint,
    -- The generation at which the current full pass began: records not seen since then
    -- are deleted when a run of the pass succeeds (track_deletes). A failed run keeps it,
    -- so the next run continues the pass instead of judging it on what it alone saw.
    pass_generation        bigint,
    checkpoint             jsonb,
    last_sync_date         timestamptz,
    last_job_id            uuid,
    last_status            text CHECK (last_status IN ('success', 'error', 'stopped')),
    last_result            jsonb,
    last_error             jsonb,
    last_started_at        timestamptz,
    last_finished_at       timestamptz,
    skipped_slots          bigint NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    stopped_at             timestamptz,
    UNIQUE (connection_id, name, variant),
    FOREIGN KEY (connection_id) REFERENCES connections (id) ON DELETE CASCADE,
    FOREIGN KEY (integration_id, environment_id)
        REFERENCES integrations (id, environment_id) ON DELETE CASCADE
);
-- The scheduler's scan: only syncs with something to fire are in it.
CREATE INDEX syncs_due ON syncs (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE INDEX syncs_integration ON syncs (integration_id, name);

-- Per-run record changes by model, summed batch by batch in the batches' transactions and
-- folded into syncs.last_result when the run ends.
CREATE TABLE sync_run_counts (
    job_id  uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    model   text NOT NULL,
    added   bigint NOT NULL DEFAULT 0,
    updated bigint NOT NULL DEFAULT 0,
    deleted bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, model)
);

-- The first slot of sync_id strictly after "after": slots are frequency_s apart and
-- offset by a phase that hashes the sync's id over the interval (milliseconds).
CREATE FUNCTION sync_next_slot(sync_id bigint, frequency_s integer, after timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(((floor((extract(epoch FROM after) * 1000 - p) / f) + 1) * f + p) / 1000.0)
    FROM (SELECT frequency_s * 1000.0 AS f,
                 mod(hashint8(sync_id)::bigint + 2147483648, frequency_s * 1000::bigint) AS p) x
$$;

-- A new connection gets the syncs its integration declares; an auto_start sync runs at
-- once (its first, initial run), later runs follow its slots.
CREATE FUNCTION syncs_for_new_connection() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO syncs (environment_id, integration_id, connection_id, name, sync_type,
                       track_deletes, auto_start, frequency_s, models, state, next_due_at)
    SELECT NEW.environment_id, NEW.integration_id, NEW.id, c.name, c.sync_type,
           c.track_deletes, c.auto_start, c.frequency_s, c.models,
           CASE WHEN c.auto_start THEN 'running' ELSE 'paused' END,
           CASE WHEN c.auto_start THEN now() END
    FROM sync_configs c WHERE c.integration_id = NEW.integration_id
    ON CONFLICT (connection_id, name, variant) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER connections_syncs AFTER INSERT ON connections
    FOR EACH ROW EXECUTE FUNCTION syncs_for_new_connection();
