-- Records: what syncs save, one row per (connection, model, record id), and the outbox of
-- their changes. docs/records.md explains the choices with the plans of the hot queries.
--
-- A scope is one (connection, model) — "Model" or "Model::variant" — and everything about
-- records is per scope: the cursor, the counts, the lock that orders writers. Writers of a
-- scope take its row lock (FOR UPDATE) for the length of their transaction and number the
-- changes they make from last_seq: seq is therefore assigned in commit order, and a reader
-- that has seen seq n has seen every change numbered below it. That is the records API's
-- cursor: (scope, seq), strictly increasing, never reused.
CREATE TABLE record_scopes (
    id                 bigserial PRIMARY KEY,
    environment_id     bigint NOT NULL,
    connection_id      bigint NOT NULL,
    model              text NOT NULL,
    -- The integration's unique_key and the connection's connection_id, for the change
    -- events of a purge, when the connection row is gone.
    integration        text NOT NULL,
    connection         text NOT NULL,
    last_seq           bigint NOT NULL DEFAULT 0,
    -- The time stamp of the scope's last change: every change's updated_at is at least
    -- this, so updated_at never decreases along seq (records_seq_at relies on it).
    last_modified_at   timestamptz NOT NULL DEFAULT '-infinity',
    live_count         bigint NOT NULL DEFAULT 0,
    -- The longest payload ever stored in the scope (bytes): while a page of them fits the
    -- page's byte budget, a read need not add up payload lengths row by row.
    max_payload        integer NOT NULL DEFAULT 0,
    -- Set when the connection was deleted: the scheduler deletes the scope's records in
    -- batches, then the scope.
    purge_requested_at timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, model)
);
CREATE INDEX record_scopes_purge ON record_scopes (purge_requested_at)
    WHERE purge_requested_at IS NOT NULL;

-- Hash-partitioned by scope: every hot query names one scope, so it touches one partition;
-- 64 partitions keep each near 1.5 million rows (2 GB) at 100 million records.
CREATE TABLE records (
    scope_id      bigint NOT NULL,
    external_id   text NOT NULL,
    seq           bigint NOT NULL,
    hash          bytea NOT NULL,
    payload       text,              -- canonical JSON, or sealed (AES-256-GCM); NULL once pruned
    sealed        boolean NOT NULL DEFAULT false,
    last_action   "char" NOT NULL CHECK (last_action IN ('A', 'U', 'D')),
    first_seen_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    deleted_at    timestamptz,
    pruned_at     timestamptz,
    seen_gen      bigint NOT NULL DEFAULT 0,
    job_id        uuid,
    PRIMARY KEY (scope_id, external_id)
) PARTITION BY HASH (scope_id);
CREATE UNIQUE INDEX records_cursor ON records (scope_id, seq);

DO $$
BEGIN
    FOR i IN 0..63 LOOP
        -- fillfactor 90: room on the page for the updates that change no indexed column
        -- (seen stamps, pruning), which PostgreSQL then makes without touching an index.
        EXECUTE format('CREATE TABLE records_p%s PARTITION OF records '
                       'FOR VALUES WITH (MODULUS 64, REMAINDER %s) WITH (fillfactor = 90)',
                       lpad(i::text, 2, '0'), i);
    END LOOP;
END
$$;

-- The cursor of (scope, seq) as the records API shows it: base64url of "r1:<scope>:<seq>"
-- without padding (common/store/records.c writes the same).
CREATE FUNCTION records_cursor(scope bigint, seq bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT translate(encode(convert_to('r1:' || scope || ':' || seq, 'UTF8'), 'base64'),
                     E'+/=\n', '-_')
$$;

-- A change's event id: the first 16 bytes of SHA-256("record:<scope>:<seq>") as a uuid,
-- the same for the same change however often it is published.
CREATE FUNCTION records_event_id(scope bigint, seq bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(substring(sha256(convert_to('record:' || scope || ':' || seq, 'UTF8'))
                            FROM 1 FOR 16), 'hex')::uuid
$$;

-- The smallest seq of scope from which on every record was modified at or after ts (a
-- binary search over the cursor index: updated_at never decreases along seq), so that
-- modified_after costs a few index probes instead of a scan of the scope.
CREATE FUNCTION records_seq_at(scope bigint, ts timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE
SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off AS $$
DECLARE
    lo bigint := 0;
    hi bigint;
    mid bigint;
    s bigint;
    t timestamptz;
BEGIN
    SELECT last_seq + 1 INTO hi FROM record_scopes WHERE id = scope;
    IF hi IS NULL THEN
        RETURN 0;
    END IF;
    WHILE lo < hi LOOP
        mid := lo + (hi - lo) / 2;
        s := NULL;
        SELECT r.seq, r.updated_at INTO s, t FROM records r
        WHERE r.scope_id = scope AND r.seq >= mid ORDER BY r.seq LIMIT 1;
        IF s IS NULL OR t >= ts THEN
            hi := mid;
        ELSE
            lo := s + 1;
        END IF;
    END LOOP;
    RETURN lo;
END
$$;

-- Deleting a connection (or its integration, or its environment) hands its records to the
-- scheduler's purge; the syncs and jobs went with the connection already.
CREATE FUNCTION records_purge_connection() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE record_scopes SET purge_requested_at = now()
    WHERE connection_id = OLD.id AND purge_requested_at IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER connections_records_purge AFTER DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION records_purge_connection();

-- Whether an environment's record payloads are sealed at rest (PATCH
-- /junction/environment/records). Existing records keep their form until rewritten.
ALTER TABLE environments ADD COLUMN encrypt_records boolean NOT NULL DEFAULT false;

-- The transactional outbox: every committed record change, written in the transaction
-- that makes it, for a relay to publish to <prefix>.records and then delete. One row per
-- committed batch of one scope: its changes as a JSON array in seq order, each
--   {"event_id","record_id","action":"ADDED|UPDATED|DELETED","seq","cursor","payload"}
-- (payload null for DELETED; a sealed blob, as a string, when sealed). So a payload is
-- written twice in all (the record and its event), and a relay claims and deletes a batch
-- of changes per row. Rows are spread over 64 shards by scope; a relay leases whole shards
-- (record_outbox_shards) and publishes each in id order, so one record's changes (one
-- scope's) are published in the order they were committed however many relays run.
CREATE TABLE record_outbox (
    shard          smallint NOT NULL CHECK (shard BETWEEN 0 AND 63),
    id             bigserial,
    environment_id bigint NOT NULL,
    integration    text NOT NULL,
    connection     text NOT NULL,
    model          text NOT NULL,
    scope_id       bigint NOT NULL,
    job_id         uuid,
    change_count   integer NOT NULL,
    first_seq      bigint NOT NULL,
    last_seq       bigint NOT NULL,
    -- Compressed with lz4 when large: a batch of JSON payloads shrinks several times.
    changes        text COMPRESSION lz4 NOT NULL,
    -- The payloads are sealed as the records' are (associated data
    -- "record:<scope_id>:<record_id>"); jn_records_open_payload opens them.
    sealed         boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, id)
);

CREATE TABLE record_outbox_shards (
    shard       smallint PRIMARY KEY,
    owner       text,
    lease_until timestamptz,
    lease_token bigint NOT NULL DEFAULT 0
);
INSERT INTO record_outbox_shards (shard) SELECT generate_series(0, 63);
