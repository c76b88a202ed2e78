-- Webhooks to the customer's application (docs/webhooks.md).
--
-- Per environment: where webhooks go (a primary and a secondary URL, each optional), which
-- events send one (Nango's switches), how many times a delivery is attempted, and the key
-- that signs them. The signing key is separate from the secret key, stored sealed
-- (AES-256-GCM under the process's encryption key, associated data naming the
-- environment), generated when first needed and replaced by a rotation. A row is made on
-- the first write; an environment without one has the defaults below.
CREATE TABLE environment_webhooks (
    environment_id             bigint PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
    primary_url                text NOT NULL DEFAULT '',
    secondary_url              text NOT NULL DEFAULT '',
    on_auth_creation           boolean NOT NULL DEFAULT true,
    on_auth_refresh_error      boolean NOT NULL DEFAULT true,
    on_sync_completion_always  boolean NOT NULL DEFAULT false,
    on_sync_error              boolean NOT NULL DEFAULT true,
    on_async_action_completion boolean NOT NULL DEFAULT false,
    delivery_attempts          integer NOT NULL DEFAULT 3 CHECK (delivery_attempts BETWEEN 1 AND 10),
    signing_key_sealed         text,
    signing_key_rotated_at     timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);

-- A delivery is a job of its own kind, one per destination URL; its lease, attempts,
-- retry time and outcome live in jobs like any other job's. What jobs cannot hold is here:
-- the exact text to send (jsonb would reorder and respace it, and the signature covers
-- its bytes), the URL, what the webhook is about, and how the last attempt went. A
-- delivery whose attempts ran out is a failed job: the dead-letter store is those rows,
-- listed and replayed by the API, never deleted by a failure.
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('action', 'sync', 'webhook', 'delivery'));
-- An action called with X-Async: its final outcome sends an async_action webhook.
ALTER TABLE jobs ADD COLUMN async boolean NOT NULL DEFAULT false;

CREATE TABLE deliveries (
    job_id              uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    environment_id      bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    type                text NOT NULL CHECK (type IN ('auth', 'sync', 'async_action', 'forward')),
    url                 text NOT NULL,
    body                text NOT NULL,
    -- The connection it is about, by name: a delivery outlives a deleted connection.
    provider_config_key text,
    connection_id       text,
    last_status         integer,
    last_error          text,
    last_attempt_at     timestamptz,
    replays             integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_environment ON deliveries (environment_id, type, created_at);
-- The dead-letter listing: failed deliveries of one environment, newest failure first.
CREATE INDEX jobs_dead_deliveries ON jobs (environment_id, finished_at DESC, id)
    WHERE kind = 'delivery' AND state = 'failed';
