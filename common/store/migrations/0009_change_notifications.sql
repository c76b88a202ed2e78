-- Every process keeps what a provider call needs in memory (connections with their
-- credentials, integrations, custom providers, environments). A change to any of them,
-- by any process or by hand, is announced on the channel junction_invalidate when its
-- transaction commits, as "<table>:<environment id>:<row id>", and every process drops
-- what it holds. Triggers make this hold for every write path. Only the columns a
-- provider call reads count for connections, so bookkeeping (last_fetched_at, refresh
-- leases) makes no noise.
CREATE FUNCTION junction_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    IF TG_TABLE_NAME = 'environments' THEN
        PERFORM pg_notify('junction_invalidate', 'environments:' || r.id || ':' || r.id);
    ELSE
        PERFORM pg_notify('junction_invalidate',
                          TG_TABLE_NAME || ':' || r.environment_id || ':' || r.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER connections_changed
    AFTER UPDATE OF connection_id, integration_id, credentials_type, credentials_sealed,
                    expires_at, connection_config
    OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION junction_notify_change();

CREATE TRIGGER integrations_changed
    AFTER UPDATE OR DELETE ON integrations
    FOR EACH ROW EXECUTE FUNCTION junction_notify_change();

CREATE TRIGGER custom_providers_changed
    AFTER INSERT OR UPDATE OR DELETE ON custom_providers
    FOR EACH ROW EXECUTE FUNCTION junction_notify_change();

CREATE TRIGGER environments_changed
    AFTER INSERT OR UPDATE OR DELETE ON environments
    FOR EACH ROW EXECUTE FUNCTION junction_notify_change();
