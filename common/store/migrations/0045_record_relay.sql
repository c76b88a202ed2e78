-- The outbox relay (worker/relay.c, docs/record-change-topics.md): what a change event
-- needs that the outbox did not carry, and the relays' membership.
--
-- An event names its provider and its environment by name, and carries the time of its
-- change. The scope keeps the provider and the environment's name as they were when it was
-- created, so that the DELETED events of a purge still name them once the integration or
-- the environment is gone; every outbox row carries them and its batch's time stamp (the
-- records' updated_at, their _nango_metadata.last_modified_at).
ALTER TABLE record_scopes ADD COLUMN provider text;
ALTER TABLE record_scopes ADD COLUMN environment_name text;
UPDATE record_scopes s SET provider = i.provider
FROM integrations i WHERE i.environment_id = s.environment_id AND i.unique_key = s.integration;
UPDATE record_scopes s SET environment_name = e.name
FROM environments e WHERE e.id = s.environment_id;

ALTER TABLE record_outbox ADD COLUMN provider text;
ALTER TABLE record_outbox ADD COLUMN environment_name text;
ALTER TABLE record_outbox ADD COLUMN changed_at timestamptz;
UPDATE record_outbox o SET provider = s.provider, environment_name = s.environment_name
FROM record_scopes s WHERE s.id = o.scope_id;
UPDATE record_outbox SET changed_at = created_at WHERE changed_at IS NULL;
ALTER TABLE record_outbox ALTER COLUMN changed_at SET DEFAULT now();

-- The relays alive: each refreshes its row while it runs (and deletes it when it stops),
-- so that each can take its fair share of the 64 shards, ceil(64 / relays alive), and give
-- back what it holds beyond it. A row not refreshed for a minute is removed by the others.
CREATE TABLE record_relays (
    owner      text PRIMARY KEY,
    seen_until timestamptz NOT NULL
);
