-- Environments are the tenant boundary: every row of every other table belongs to one.
-- The secret key is stored only as a SHA-256 hash; requests are matched on the hash.
-- uuid is the public identifier (provider webhook URLs carry it); id stays internal.
CREATE TABLE environments (
    id              bigserial PRIMARY KEY,
    uuid            uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    secret_key_hash text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
