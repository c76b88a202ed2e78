-- Environment variables: name/value pairs a developer sets for an environment, read back
-- by GET /environment-variables and by scripts (ctx:get_environment_variables). Values
-- are secrets: value_sealed holds the value sealed with AES-256-GCM, bound to the
-- environment and the name ("environment:<id>:variable:<name>"), so a sealed value copied
-- to another row or tenant does not open. Names are checked by the gateway; the CHECK
-- repeats the rule so no other writer can store a name the API would refuse.
CREATE TABLE environment_variables (
    environment_id bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,255}$'),
    value_sealed   text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, name)
);
