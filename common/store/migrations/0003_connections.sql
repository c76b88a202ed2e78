-- Connections: one end user's authorised link to an integration.
-- credentials_sealed holds the credentials JSON sealed with AES-256-GCM, bound to the row
-- ("connection:<id>:credentials"). expires_at is the access token's expiry, kept in clear
-- so the refresh sweep can find connections about to expire without decrypting anything.
-- credentials_refreshed_at and refresh_error_at let concurrent refreshers that waited on
-- the row lock see that another process already refreshed (or failed) while they waited.
CREATE TABLE connections (
    id                       bigserial PRIMARY KEY,
    environment_id           bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    integration_id           bigint NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    connection_id            text NOT NULL,
    credentials_type         text NOT NULL,
    credentials_sealed       text NOT NULL,
    expires_at               timestamptz,
    credentials_refreshed_at timestamptz,
    connection_config        jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    end_user                 jsonb,
    tags                     jsonb NOT NULL DEFAULT '{}'::jsonb,
    webhook_url_override     text,
    refresh_error            text,
    refresh_error_at         timestamptz,
    refresh_failures         integer NOT NULL DEFAULT 0,
    last_fetched_at          timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (integration_id, connection_id)
);
CREATE INDEX connections_environment ON connections (environment_id, created_at);
CREATE INDEX connections_expiring ON connections (expires_at) WHERE expires_at IS NOT NULL;

-- Connect sessions: short-lived tokens that let an end user's browser create or renew one
-- connection. Only the token's SHA-256 is stored.
CREATE TABLE connect_sessions (
    id                           bigserial PRIMARY KEY,
    environment_id               bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    token_hash                   text NOT NULL UNIQUE,
    end_user                     jsonb,
    organization                 jsonb,
    allowed_integrations         jsonb,
    integrations_config_defaults jsonb,
    tags                         jsonb,
    webhook_url_override         text,
    reconnect_connection_id      bigint REFERENCES connections (id) ON DELETE CASCADE,
    expires_at                   timestamptz NOT NULL,
    created_at                   timestamptz NOT NULL DEFAULT now()
);

-- OAuth authorisation attempts: the state sent to the provider (hashed), bound to a
-- session, and the PKCE verifier (sealed). A state is used at most once.
CREATE TABLE oauth_attempts (
    state_hash          text PRIMARY KEY,
    session_id          bigint NOT NULL REFERENCES connect_sessions (id) ON DELETE CASCADE,
    integration_id      bigint NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    connection_id       text NOT NULL,
    connection_config   jsonb NOT NULL DEFAULT '{}'::jsonb,
    code_verifier_sealed text,
    redirect_uri        text NOT NULL,
    expires_at          timestamptz NOT NULL,
    used_at             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);
