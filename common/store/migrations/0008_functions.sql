-- Functions: the Lua scripts deployed to an integration (docs/scripts.md). A deployment
-- replaces an integration's whole set in one transaction. Each function keeps its
-- current version and the one before it; checksum is the SHA-256 of the source, so a
-- deployment that sends the same source again changes nothing.
-- The pair (environment_id, integration_id) must name an integration of that same
-- environment, so no row can tie one tenant's function to another's integration.
ALTER TABLE integrations ADD CONSTRAINT integrations_environment_id_id UNIQUE (environment_id, id);

CREATE TABLE functions (
    id                   bigserial PRIMARY KEY,
    environment_id       bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    integration_id       bigint NOT NULL,
    name                 text NOT NULL CHECK (name ~ '^[A-Za-z][A-Za-z0-9_-]{0,47}$'),
    type                 text NOT NULL CHECK (type IN ('action', 'sync')),
    source               text NOT NULL,
    declaration          jsonb NOT NULL,
    checksum             text NOT NULL,
    deployed_at          timestamptz NOT NULL DEFAULT now(),
    previous_source      text,
    previous_declaration jsonb,
    previous_checksum    text,
    previous_deployed_at timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (integration_id, name),
    FOREIGN KEY (environment_id, integration_id)
        REFERENCES integrations (environment_id, id) ON DELETE CASCADE
);
CREATE INDEX functions_environment ON functions (environment_id, integration_id);
