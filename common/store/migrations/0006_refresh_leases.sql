-- Token refresh without holding a lock across the provider call (common/providers/
-- token_refresh.c). A refresh claims the row with a lease (refresh_lease, expiring at
-- refresh_lease_until by PostgreSQL's clock), asks the provider with nothing held, then
-- stores the outcome only if the lease is still its own. refresh_seq grows with every
-- stored credential (refresh, import, new OAuth flow): callers compare sequence numbers,
-- not clocks, to tell whether credentials newer than theirs exist. A finished attempt
-- keeps its lease id with refresh_lease_until NULL, so a caller that waited on it can tell
-- that this attempt failed.
-- reauth_required_at marks a dead grant (the provider answered invalid_grant or the like):
-- no refresh is tried again until the credentials are replaced. refresh_retry_at is when
-- a temporary failure may be retried (growing backoff).
ALTER TABLE connections
    ADD COLUMN refresh_seq         bigint NOT NULL DEFAULT 0,
    ADD COLUMN refresh_lease       uuid,
    ADD COLUMN refresh_lease_until timestamptz,
    ADD COLUMN refresh_retry_at    timestamptz,
    ADD COLUMN reauth_required_at  timestamptz;

-- What the refresh sweep scans: live OAuth connections by expiry.
CREATE INDEX connections_refresh_due ON connections (expires_at)
    WHERE credentials_type IN ('OAUTH2', 'OAUTH2_CC') AND reauth_required_at IS NULL;

-- A connection's environment is its integration's: enforced, not just assumed.
ALTER TABLE integrations ADD CONSTRAINT integrations_id_environment_key
    UNIQUE (id, environment_id);
ALTER TABLE connections DROP CONSTRAINT connections_integration_id_fkey;
ALTER TABLE connections ADD CONSTRAINT connections_integration_environment_fkey
    FOREIGN KEY (integration_id, environment_id)
    REFERENCES integrations (id, environment_id) ON DELETE CASCADE;
