-- Integrations: a provider configured in one environment under a unique_key.
-- OAuth client secrets and webhook secrets are sealed with AES-256-GCM (common/crypto.c):
-- the blob carries the id of the key that sealed it, and the row's identity is the
-- associated data, so a blob copied to another row does not open.
CREATE TABLE integrations (
    id                    bigserial PRIMARY KEY,
    environment_id        bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    unique_key            text NOT NULL,
    provider              text NOT NULL,
    display_name          text,
    credentials_type      text,
    client_id             text,
    client_secret_sealed  text,
    scopes                text,
    webhook_secret_sealed text,
    forward_webhooks      boolean NOT NULL DEFAULT true,
    integration_config    jsonb NOT NULL DEFAULT '{}'::jsonb,
    custom                jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (environment_id, unique_key)
);

-- Providers an environment defines itself, with the same fields as a catalog entry.
CREATE TABLE custom_providers (
    id             bigserial PRIMARY KEY,
    environment_id bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           text NOT NULL,
    definition     jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (environment_id, name)
);
