/*
 * records.c - writing records: validation and canonical hashing in C, then one fenced
 * transaction per batch that writes only what changed.
 *
 * A batch's transaction: (1) the fence and the scope lock in one statement (the job row
 * FOR SHARE, so a new claim of the job waits for this commit and a stale worker finds no
 * row; the scope row locked by a no-op upsert, which also returns last_seq and the batch's
 * time stamp); (2) one lookup of the batch's ids (a primary-key probe each) that tells in
 * C, for every record, new / deleted before / changed / unchanged; (3) the new records
 * with one binary COPY straight into records; the changed ones (and pruned payloads to
 * restore) staged with a binary COPY and applied with one UPDATE; unchanged records of a
 * tracking full sync stamped seen; (4) one statement for the outbox row, the scope's
 * counters and the run's counts; (5) COMMIT. The scope lock makes the lookup's answer hold
 * until the commit: writers of one scope take turns, and nothing else changes a record's
 * content. Unchanged records cost their lookup and nothing else.
 *
 * The outbox gets one row per batch: the changes as a JSON array in commit order (each
 * with its event id, record id, action, seq, cursor and payload), so a payload is written
 * twice in all (the record and its event) and a relay claims a thousand changes per row.
 */
#include "store/records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/canonical_json.h"
#include "store/pg.h"

#define HASH_LEN 16 /* bytes of SHA-256 kept: collisions stay out of reach at 2^64 records */
#define PG_EPOCH_US 946684800000000LL /* 2000-01-01 in unix microseconds */

/* $1 job, $2 lease token, $3 environment, $4 connection row, $5 model, $6 integration key,
 * $7 connection key. No row: the fence failed. */
static const char *const LOCK_SQL =
    "WITH fence AS (SELECT j.id FROM jobs j WHERE j.id = $1::uuid AND j.lease_token = $2 "
    " AND j.state = 'running' AND j.environment_id = $3 AND j.connection_id = $4 FOR SHARE), "
    "s AS (INSERT INTO record_scopes AS s (environment_id, connection_id, model, integration, "
    " connection, provider, environment_name) SELECT $3, $4, $5, $6, $7, "
    " (SELECT i.provider FROM integrations i WHERE i.environment_id = $3 AND i.unique_key = $6), "
    " (SELECT e.name FROM environments e WHERE e.id = $3) FROM fence "
    " ON CONFLICT (connection_id, model) DO UPDATE SET last_seq = s.last_seq "
    " RETURNING s.id, s.last_seq, greatest(clock_timestamp(), s.last_modified_at) AS ts) "
    "SELECT id, last_seq, ts::text, (extract(epoch FROM ts) * 1000000)::bigint, "
    " (SELECT p FROM generate_series(0, 63) p "
    "  WHERE satisfies_hash_partition('records'::regclass, 64, p, s.id)) FROM s";

/* The outbox row of a batch, the scope's counters and the run's counts: $1 scope, $2 the
 * greatest seq written (or the scope's last), $3 batch time, $4 live count change, $5 job,
 * $6 model, $7 added, $8 updated, $9 deleted, $10 environment, $11 integration key,
 * $12 connection key, $13 changes (JSON array, NULL for none), $14 first seq, $15 sealed,
 * $16 the longest payload written (bytes). The row names the provider and environment as
 * the scope recorded them, and carries the batch time (the events' changed_at). */
static const char *const FINISH_SQL =
    "WITH ob AS (INSERT INTO record_outbox (shard, environment_id, integration, connection, "
    " model, scope_id, job_id, change_count, first_seq, last_seq, changes, sealed, provider, "
    " environment_name, changed_at) "
    " SELECT ($1::bigint % 64)::smallint, $10, $11, $12, $6, $1, $5::uuid, "
    "  $7::int + $8::int + $9::int, $14, $2, $13, $15::bool, s.provider, s.environment_name, "
    "  $3::timestamptz FROM record_scopes s WHERE s.id = $1 AND $13::text IS NOT NULL), "
    "sc AS (UPDATE record_scopes SET last_seq = greatest(last_seq, $2::bigint), "
    " live_count = live_count + $4::bigint, max_payload = greatest(max_payload, $16::int), "
    " last_modified_at = greatest(last_modified_at, $3::timestamptz) WHERE id = $1) "
    "INSERT INTO sync_run_counts AS c (job_id, model, added, updated, deleted) "
    "SELECT $5::uuid, $6, $7, $8, $9 WHERE $7::int + $8::int + $9::int > 0 "
    "ON CONFLICT (job_id, model) DO UPDATE SET added = c.added + EXCLUDED.added, "
    " updated = c.updated + EXCLUDED.updated, deleted = c.deleted + EXCLUDED.deleted";

/* Applies the staged changes to existing records: 'A' a deleted record comes back (ADDED,
 * first seen anew), 'U' a changed record, 'R' an unchanged record whose pruned payload
 * returns (not a change: no new seq or time stamp). $1 scope, $2 batch time, $3 job,
 * $4 generation. Every UPDATE here reaches its rows by a primary-key probe per id and then
 * their ctid (see BY_IDS), never by a join the planner could turn into a scan. */
static const char *const APPLY_SQL =
    "UPDATE records r SET "
    " seq = CASE WHEN s.kind = 'R' THEN r.seq ELSE s.seq END, hash = s.hash, "
    " payload = s.payload, sealed = s.sealed, "
    " last_action = CASE WHEN s.kind = 'R' THEN r.last_action ELSE s.kind END, "
    " first_seen_at = CASE WHEN s.kind = 'A' THEN $2::timestamptz ELSE r.first_seen_at END, "
    " updated_at = CASE WHEN s.kind = 'R' THEN r.updated_at ELSE $2::timestamptz END, "
    " deleted_at = NULL, pruned_at = NULL, seen_gen = greatest(r.seen_gen, $4::bigint), "
    " job_id = CASE WHEN s.kind = 'R' THEN r.job_id ELSE $3::uuid END "
    "FROM (SELECT t.tid, s.* FROM jn_record_stage s, LATERAL (SELECT x.ctid AS tid FROM records x "
    " WHERE x.scope_id = $1 AND x.external_id = s.external_id LIMIT 1) t) s "
    "WHERE r.scope_id = $1 AND r.ctid = s.tid";

#define STAGE_TABLE                                                                                \
    "CREATE TEMP TABLE IF NOT EXISTS jn_record_stage (external_id text NOT NULL, seq bigint, "     \
    "hash bytea, payload text, sealed boolean NOT NULL DEFAULT false, kind \"char\") "             \
    "ON COMMIT DELETE ROWS"

/* ---- a batch prepared in memory ---- */

typedef enum {
    CH_NONE,     /* unchanged */
    CH_ADD,      /* new: ADDED */
    CH_UNDELETE, /* deleted before: ADDED again */
    CH_UPDATE,   /* another content: UPDATED */
    CH_DELETE,   /* live: DELETED */
    CH_RESTORE,  /* unchanged, its pruned payload comes back */
    CH_STAMP,    /* unchanged, stamped seen by a tracking full sync */
} change_t;

typedef struct {
    char *id;            /* the record id as text (owned) */
    size_t index;        /* position in the caller's array */
    json_object *record; /* the record (a reference; normalized for an update), NULL for a
                            delete */
    size_t off, len;     /* its canonical text in batch_t.text */
    unsigned char hash[HASH_LEN];
    bool superseded; /* a later item has the same id: it alone counts */
    bool skip;       /* update: no live stored record to merge into */
    /* what the lookup found */
    bool found, deleted, pruned;
    long long seen_gen;
    unsigned char old_hash[HASH_LEN];
    /* what is written */
    change_t change;
    long long seq;
    char *blob; /* the sealed payload, when the writer encrypts (owned) */
} item_t;

typedef struct {
    item_t *items;
    size_t n;
    jn_buf_t text; /* canonical texts back to back */
} batch_t;

static void batch_cleanup(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].id);
        free(b->items[i].blob);
        json_object_put(b->items[i].record);
    }
    free(b->items);
    jn_buf_cleanup(&b->text);
    memset(b, 0, sizeof *b);
}

/* The record id of value v as text into out; false when it is not a non-empty string of
 * at most JN_RECORDS_MAX_ID bytes (valid UTF-8, no NUL) or an integer. */
static bool id_text(json_object *v, char out[JN_RECORDS_MAX_ID + 1])
{
    if (json_object_is_type(v, json_type_string)) {
        size_t n = (size_t)json_object_get_string_len(v);
        const char *s = json_object_get_string(v);
        if (n == 0 || n > JN_RECORDS_MAX_ID || jn_json_has_nul(s, n) || !jn_utf8_valid(s, n))
            return false;
        memcpy(out, s, n + 1);
        return true;
    }
    if (json_object_is_type(v, json_type_int)) {
        char num[32];
        if (jn_canonical_number(v, num) != JN_OK)
            return false;
        snprintf(out, JN_RECORDS_MAX_ID + 1, "%s", num);
        return true;
    }
    return false;
}

/* Reads item i's id (an object with "id", or for deletes a bare id). */
static jn_err_t read_id(json_object *item, size_t i, bool bare_ok, char id[JN_RECORDS_MAX_ID + 1],
                        jn_field_error_t *e)
{
    char path[64];
    json_object *v = NULL;
    if (json_object_is_type(item, json_type_object)) {
        snprintf(path, sizeof path, "records[%zu].id", i);
        if (!json_object_object_get_ex(item, "id", &v) || !v)
            return jn_field_error(e, path, "is required");
    } else if (bare_ok && (json_object_is_type(item, json_type_string) ||
                           json_object_is_type(item, json_type_int))) {
        snprintf(path, sizeof path, "records[%zu]", i);
        v = item;
    } else {
        snprintf(path, sizeof path, "records[%zu]", i);
        return jn_field_error(
            e, path, bare_ok ? "must be an object with an id, or an id" : "must be an object");
    }
    if (!id_text(v, id))
        return jn_field_error(e, path,
                              "must be a non-empty string of at most %d bytes or an integer",
                              JN_RECORDS_MAX_ID);
    return JN_OK;
}

/* A copy of record that shares its values: "_nango_metadata" dropped, "id" as text. */
static json_object *normalized(json_object *record, const char *id)
{
    json_object *o = json_object_new_object();
    json_object_object_foreach(record, key, val)
    {
        if (strcmp(key, "_nango_metadata") == 0 || strcmp(key, "id") == 0)
            continue;
        json_object_object_add(o, key, json_object_get(val));
    }
    json_object_object_add(o, "id", json_object_new_string(id));
    return o;
}

/* Appends the canonical text of item->record (without "_nango_metadata", with "id" as a
 * string) to b->text and hashes it. */
static jn_err_t canonicalize(batch_t *b, item_t *it, jn_field_error_t *e)
{
    size_t before = b->text.len;
    jn_field_error_t inner;
    json_object *id = json_object_new_string(it->id);
    jn_err_t err =
        jn_canonical_json_object(it->record, "_nango_metadata", "id", id, &b->text, &inner);
    json_object_put(id);
    char path[64];
    snprintf(path, sizeof path, "records[%zu]", it->index);
    if (err == JN_ERR_TOO_LARGE) {
        jn_field_error(e, path, "the batch is larger than %ld bytes", JN_RECORDS_MAX_BATCH_BYTES);
        return JN_ERR_TOO_LARGE;
    }
    if (err) {
        *e = inner;
        jn_field_error_nest(e, path);
        return err;
    }
    it->off = before;
    it->len = b->text.len - before;
    if (it->len > JN_RECORDS_MAX_RECORD_BYTES) {
        jn_field_error(e, path, "larger than %d bytes", JN_RECORDS_MAX_RECORD_BYTES);
        return JN_ERR_TOO_LARGE;
    }
    unsigned char full[32];
    jn_crypto_sha256(b->text.data + it->off, it->len, full);
    memcpy(it->hash, full, HASH_LEN);
    return JN_OK;
}

static int item_order(const void *pa, const void *pb)
{
    const item_t *a = pa, *b = pb;
    int c = strcmp(a->id, b->id);
    if (c)
        return c;
    return a->index < b->index ? -1 : a->index > b->index;
}

typedef enum { OP_SAVE, OP_UPDATE, OP_DELETE } op_t;

/* Validates the caller's array and builds the batch: ids and normalized records, sorted by
 * id with duplicates marked (canonical texts come later, canonicalize_all). */
static jn_err_t prepare(json_object *records, op_t op, batch_t *b, jn_field_error_t *e)
{
    memset(b, 0, sizeof *b);
    jn_buf_init(&b->text, (size_t)JN_RECORDS_MAX_BATCH_BYTES);
    if (!json_object_is_type(records, json_type_array))
        return jn_field_error(e, "records", "must be an array");
    size_t n = json_object_array_length(records);
    if (n > JN_RECORDS_MAX_BATCH) {
        jn_field_error(e, "records", "at most %d records per call", JN_RECORDS_MAX_BATCH);
        return JN_ERR_TOO_LARGE;
    }
    b->items = calloc(n ? n : 1, sizeof *b->items);
    if (!b->items)
        abort();
    /* Room for records of a kilobyte: the buffer grows once for the usual batch (pages
     * not written to are not used). */
    if (op != OP_DELETE)
        jn_buf_reserve(&b->text, n * 1024 < (size_t)JN_RECORDS_MAX_BATCH_BYTES
                                     ? n * 1024
                                     : (size_t)JN_RECORDS_MAX_BATCH_BYTES);
    for (size_t i = 0; i < n; i++) {
        json_object *rec = json_object_array_get_idx(records, i);
        char id[JN_RECORDS_MAX_ID + 1];
        jn_err_t err = read_id(rec, i, op == OP_DELETE, id, e);
        if (err)
            return err;
        item_t *it = &b->items[b->n++];
        it->index = i;
        it->id = strdup(id);
        if (!it->id)
            abort();
        if (op == OP_DELETE)
            continue;
        /* A save's record is read as it is; an update's is merged, so it gets a copy. */
        it->record = op == OP_UPDATE ? normalized(rec, id) : json_object_get(rec);
    }
    qsort(b->items, b->n, sizeof *b->items, item_order);
    for (size_t i = 0; i + 1 < b->n; i++)
        b->items[i].superseded = strcmp(b->items[i].id, b->items[i + 1].id) == 0;
    return JN_OK;
}

/* The canonical texts and hashes of a save's records (duplicates too: every record given
 * must be valid), in the caller's order, so that the first bad record is the one named. */
static jn_err_t canonicalize_all(batch_t *b, jn_field_error_t *e)
{
    size_t *order = malloc((b->n ? b->n : 1) * sizeof *order);
    if (!order)
        abort();
    for (size_t i = 0; i < b->n; i++)
        order[b->items[i].index] = i;
    jn_err_t err = JN_OK;
    for (size_t k = 0; k < b->n && !err; k++)
        err = canonicalize(b, &b->items[order[k]], e);
    free(order);
    return err;
}

/* The item of id (the last of its duplicates, the one that counts), or NULL. */
static item_t *find_item(batch_t *b, const char *id)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(b->items[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == b->n || strcmp(b->items[lo].id, id) != 0)
        return NULL;
    while (b->items[lo].superseded)
        lo++;
    return &b->items[lo];
}

/* ---- the transaction ---- */

typedef struct {
    char scope[24], last_seq[24], ts[64];
    long long scope_id, next_seq; /* next_seq: the last seq given so far */
    long long ts_us;              /* the batch time, unix microseconds */
    int partition;                /* records_pNN holds the scope */
} locked_t;

/* BEGIN, the fence and the scope lock. JN_ERR_CONFLICT (rolled back) when the lease is
 * not held. */
static jn_err_t begin_batch(PGconn *conn, const jn_records_writer_t *w, const char *model,
                            locked_t *l)
{
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN; " JN_RECORDS_PLAN_SETTINGS
                                           "SET LOCAL enable_sort TO off; " STAGE_TABLE);
    if (err)
        return err;
    char token[24], env[24], cid[24];
    snprintf(token, sizeof token, "%lld", w->lease_token);
    snprintf(env, sizeof env, "%lld", w->environment_id);
    snprintf(cid, sizeof cid, "%lld", w->connection_id);
    const char *params[] = {w->job_id,        token, env, cid, model, w->integration_key,
                            w->connection_key};
    PGresult *r = NULL;
    err = jn_pg_exec(conn, LOCK_SQL, 7, params, &r);
    if (!err && PQntuples(r) != 1)
        err = JN_ERR_CONFLICT;
    if (err) {
        PQclear(r);
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    snprintf(l->scope, sizeof l->scope, "%s", PQgetvalue(r, 0, 0));
    snprintf(l->last_seq, sizeof l->last_seq, "%s", PQgetvalue(r, 0, 1));
    snprintf(l->ts, sizeof l->ts, "%s", PQgetvalue(r, 0, 2));
    l->ts_us = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    l->partition = (int)strtol(PQgetvalue(r, 0, 4), NULL, 10);
    l->scope_id = strtoll(l->scope, NULL, 10);
    l->next_seq = strtoll(l->last_seq, NULL, 10);
    PQclear(r);
    return JN_OK;
}

/* Ends the transaction: COMMIT after success, else ROLLBACK; returns err or COMMIT's. */
static jn_err_t end_batch(PGconn *conn, jn_err_t err)
{
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    return jn_pg_exec_script(conn, "COMMIT");
}

/* The associated data that binds a sealed payload to its record. */
static void record_aad(long long scope, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "record:%lld:%s", scope, id);
}

jn_err_t jn_records_open_payload(const jn_crypto_keyring_t *ring, long long scope,
                                 const char *record_id, const char *stored, bool sealed,
                                 char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    if (!sealed) {
        *len = strlen(stored);
        *text = strdup(stored);
        if (!*text)
            abort();
        return JN_OK;
    }
    char aad[JN_RECORDS_MAX_ID + 64];
    record_aad(scope, record_id, aad, sizeof aad);
    if (jn_crypto_open(ring, stored, aad, strlen(aad), text, len) != JN_OK)
        return JN_ERR_INTERNAL;
    return JN_OK;
}

/* The text[] literal of the ids of the items that pass keep (NULL: all live items). */
static char *ids_array(const batch_t *b, bool (*keep)(const item_t *))
{
    const char **ids = malloc((b->n ? b->n : 1) * sizeof *ids);
    if (!ids)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        const item_t *it = &b->items[i];
        if (!it->superseded && (keep ? keep(it) : true))
            ids[n++] = it->id;
    }
    char *array = jn_pg_text_array(ids, n);
    free(ids);
    return array;
}

/* A primary-key probe per id, whatever the statistics say: the LATERAL subquery with its
 * LIMIT is planned alone, with the id as a parameter, so it can only be that probe; a plain
 * join may be planned as a scan of the whole scope per id while the partition has no
 * statistics yet. */
#define BY_IDS(COLUMNS)                                                                            \
    "SELECT r.* FROM unnest($2::text[]) u(id), LATERAL (SELECT " COLUMNS " FROM records x "        \
    "WHERE x.scope_id = $1 AND x.external_id = u.id LIMIT 1) r"
static const char *const LOOKUP_SQL =
    BY_IDS("x.external_id, x.hash, x.deleted_at IS NOT NULL, x.pruned_at IS NOT NULL, x.seen_gen");
static const char *const LOOKUP_PAYLOADS_SQL =
    BY_IDS("x.external_id, x.hash, x.deleted_at IS NOT NULL, x.pruned_at IS NOT NULL, "
           "x.seen_gen, x.payload, x.sealed");

/* Asks what the store holds of the batch's ids (one primary-key probe each), without
 * waiting: lookup_receive collects the answer. */
static jn_err_t lookup_send(PGconn *conn, const locked_t *l, const batch_t *b, bool payloads)
{
    char *array = ids_array(b, NULL);
    const char *params[] = {l->scope, array};
    jn_err_t err = jn_pg_send(conn, payloads ? LOOKUP_PAYLOADS_SQL : LOOKUP_SQL, 2, params);
    free(array);
    return err;
}

/* Collects the lookup into the items. With payloads (an update), *stored is a new object
 * id -> parsed live payload. */
static jn_err_t lookup_receive(PGconn *conn, const jn_crypto_keyring_t *ring, const locked_t *l,
                               batch_t *b, json_object **stored)
{
    PGresult *r = NULL;
    jn_err_t err = jn_pg_receive(conn, stored ? LOOKUP_PAYLOADS_SQL : LOOKUP_SQL, &r);
    if (err)
        return err;
    if (stored)
        *stored = json_object_new_object();
    for (int i = 0; i < PQntuples(r) && !err; i++) {
        const char *id = PQgetvalue(r, i, 0);
        item_t *it = find_item(b, id);
        if (!it)
            continue;
        it->found = true;
        it->deleted = PQgetvalue(r, i, 2)[0] == 't';
        it->pruned = PQgetvalue(r, i, 3)[0] == 't';
        it->seen_gen = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        size_t hash_len = 0;
        unsigned char *hash =
            PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 1), &hash_len);
        if (hash && hash_len == HASH_LEN)
            memcpy(it->old_hash, hash, HASH_LEN);
        PQfreemem(hash);
        if (!stored || it->deleted || PQgetisnull(r, i, 5))
            continue;
        char *text = NULL;
        size_t len = 0;
        err = jn_records_open_payload(ring, l->scope_id, id, PQgetvalue(r, i, 5),
                                      PQgetvalue(r, i, 6)[0] == 't', &text, &len);
        json_object *rec = err ? NULL : json_tokener_parse(text);
        if (text) {
            jn_secure_wipe(text, len);
            free(text);
        }
        if (!err && !rec)
            err = JN_ERR_INTERNAL;
        if (rec)
            json_object_object_add(*stored, id, rec);
    }
    PQclear(r);
    if (err && stored) {
        json_object_put(*stored);
        *stored = NULL;
    }
    return err;
}

/* Deep merge of patch into base (base is changed): objects key by key, anything else
 * replaced by a copy of patch's value. */
static void deep_merge(json_object *base, json_object *patch)
{
    json_object_object_foreach(patch, key, val)
    {
        json_object *cur = NULL;
        if (json_object_is_type(val, json_type_object) &&
            json_object_object_get_ex(base, key, &cur) &&
            json_object_is_type(cur, json_type_object)) {
            deep_merge(cur, val);
            continue;
        }
        json_object *copy = NULL;
        if (val)
            json_object_deep_copy(val, &copy, NULL);
        json_object_object_add(base, key, copy);
    }
}

/* Merges each id's partial updates, in the caller's order, into its stored live record
 * (stored: id -> payload); the last item of an id carries the result (canonicalized).
 * Items of ids without a live, unpruned stored record are skipped. */
static jn_err_t merge_updates(batch_t *b, json_object *stored, jn_records_counts_t *counts,
                              jn_field_error_t *e)
{
    json_object *merged = NULL;
    jn_err_t err = JN_OK;
    for (size_t i = 0; i < b->n && !err; i++) {
        item_t *it = &b->items[i];
        if (!merged) {
            json_object *base = NULL;
            if (!json_object_object_get_ex(stored, it->id, &base)) {
                it->skip = true;
                counts->skipped++;
                continue;
            }
            merged = json_object_get(base);
        }
        deep_merge(merged, it->record);
        if (it->superseded)
            continue;
        json_object_put(it->record);
        it->record = merged;
        merged = NULL;
        err = canonicalize(b, it, e);
    }
    json_object_put(merged);
    return err;
}

/* Decides each live item's change and numbers the changes in id order. */
static void classify(const jn_records_writer_t *w, locked_t *l, batch_t *b, op_t op)
{
    for (size_t i = 0; i < b->n; i++) {
        item_t *it = &b->items[i];
        if (it->superseded || it->skip)
            continue;
        if (op == OP_DELETE)
            it->change = it->found && !it->deleted ? CH_DELETE : CH_NONE;
        else if (!it->found)
            it->change = CH_ADD;
        else if (it->deleted)
            it->change = CH_UNDELETE;
        else if (memcmp(it->hash, it->old_hash, HASH_LEN) != 0)
            it->change = CH_UPDATE;
        else if (it->pruned)
            it->change = CH_RESTORE;
        else if (w->mark_seen && it->seen_gen < w->generation)
            it->change = CH_STAMP;
        if (it->change == CH_ADD || it->change == CH_UNDELETE || it->change == CH_UPDATE ||
            it->change == CH_DELETE)
            it->seq = ++l->next_seq;
    }
}

/* A binary COPY field: its length, then its bytes. */
static jn_err_t copy_field(jn_buf_t *c, const void *p, size_t n)
{
    jn_err_t err = jn_buf_be32(c, (uint32_t)n);
    return err ? err : jn_buf_append(c, p, n);
}

static jn_err_t copy_int8(jn_buf_t *c, long long v)
{
    jn_err_t err = jn_buf_be32(c, 8);
    return err ? err : jn_buf_be64(c, (uint64_t)v);
}

static jn_err_t copy_null(jn_buf_t *c)
{
    return jn_buf_be32(c, 0xffffffffu);
}

/* The 16 bytes of a textual UUID. */
static void uuid_bytes(const char *text, unsigned char out[16])
{
    size_t k = 0;
    for (const char *p = text; *p && k < 32; p++) {
        int v = *p >= '0' && *p <= '9'   ? *p - '0'
                : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10
                                         : -1;
        if (v < 0)
            continue;
        if (k % 2 == 0)
            out[k / 2] = (unsigned char)(v << 4);
        else
            out[k / 2] |= (unsigned char)v;
        k++;
    }
}

/* Seals the payloads the batch writes (a record and its event share one blob). */
static jn_err_t seal_payloads(const jn_crypto_keyring_t *ring, const locked_t *l, batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        item_t *it = &b->items[i];
        if (it->superseded || it->skip ||
            (it->change != CH_ADD && it->change != CH_UNDELETE && it->change != CH_UPDATE &&
             it->change != CH_RESTORE))
            continue;
        char aad[JN_RECORDS_MAX_ID + 64];
        record_aad(l->scope_id, it->id, aad, sizeof aad);
        jn_err_t err =
            jn_crypto_seal(ring, b->text.data + it->off, it->len, aad, strlen(aad), &it->blob);
        if (err)
            return err;
    }
    return JN_OK;
}

/* The stored form of an item's payload: its sealed blob, or its canonical text. */
static const char *stored_payload(const batch_t *b, const item_t *it, size_t *len)
{
    if (it->blob) {
        *len = strlen(it->blob);
        return it->blob;
    }
    *len = it->len;
    return b->text.data + it->off;
}

/* An item's id, seq, hash, stored payload and sealed flag as COPY fields: what a new
 * record's row and a staged change share. */
static jn_err_t copy_content(jn_buf_t *c, const batch_t *b, const item_t *it)
{
    size_t len;
    const char *payload = stored_payload(b, it, &len);
    jn_err_t err = copy_field(c, it->id, strlen(it->id));
    if (!err)
        err = copy_int8(c, it->seq);
    if (!err)
        err = copy_field(c, it->hash, HASH_LEN);
    if (!err)
        err = copy_field(c, payload, len);
    return err ? err : copy_field(c, it->blob ? "\1" : "\0", 1);
}

/* A binary COPY stream for about bytes of data. */
static void copy_begin(jn_buf_t *c, size_t bytes)
{
    jn_buf_init(c, (size_t)JN_RECORDS_MAX_BATCH_BYTES * 2 + 1024L * 1024);
    jn_buf_reserve(c, bytes);
    jn_buf_append(c, "PGCOPY\n\377\r\n", 11);
    jn_buf_be32(c, 0); /* flags */
    jn_buf_be32(c, 0); /* header extension */
}

/* Straight into the scope's partition: no routing row by row. */
// clang-format off
#define COPY_RECORDS_SQL                                                                           \
    "COPY records_p%02d (scope_id, external_id, seq, hash, payload, sealed, last_action, "         \
    "first_seen_at, updated_at, deleted_at, pruned_at, seen_gen, job_id) FROM STDIN WITH "         \
    "(FORMAT binary)"
// clang-format on

/* Sends the new records with one binary COPY straight into records, without waiting for
 * PostgreSQL to apply it (jn_pg_receive collects the outcome). */
static jn_err_t insert_new_send(PGconn *conn, const jn_records_writer_t *w, const locked_t *l,
                                const batch_t *b)
{
    jn_buf_t c;
    copy_begin(&c, b->text.len + b->n * 160 + 64);
    unsigned char job[16];
    uuid_bytes(w->job_id, job);
    long long ts = l->ts_us - PG_EPOCH_US;
    jn_err_t err = JN_OK;
    for (size_t i = 0; i < b->n && !err; i++) {
        const item_t *it = &b->items[i];
        if (it->superseded || it->skip || it->change != CH_ADD)
            continue;
        err = jn_buf_be16(&c, 13);
        if (!err)
            err = copy_int8(&c, l->scope_id);
        if (!err)
            err = copy_content(&c, b, it);
        if (!err)
            err = copy_field(&c, "A", 1);
        if (!err)
            err = copy_int8(&c, ts); /* first_seen_at */
        if (!err)
            err = copy_int8(&c, ts); /* updated_at */
        if (!err)
            err = copy_null(&c); /* deleted_at */
        if (!err)
            err = copy_null(&c); /* pruned_at */
        if (!err)
            err = copy_int8(&c, w->generation);
        if (!err)
            err = copy_field(&c, job, 16);
    }
    if (!err)
        err = jn_buf_be16(&c, 0xffff); /* the trailer: -1 */
    char sql[512];
    snprintf(sql, sizeof sql, COPY_RECORDS_SQL, l->partition);
    if (!err)
        err = jn_pg_copy_send(conn, sql, c.data, c.len);
    jn_buf_cleanup(&c);
    return err;
}

/* The changes to existing records (come back, changed, payload restored): staged with one
 * binary COPY, applied with one UPDATE. */
static jn_err_t apply_existing(PGconn *conn, const jn_records_writer_t *w, const locked_t *l,
                               const batch_t *b)
{
    jn_buf_t c;
    copy_begin(&c, b->text.len + b->n * 160 + 64);
    size_t rows = 0;
    jn_err_t err = JN_OK;
    for (size_t i = 0; i < b->n && !err; i++) {
        const item_t *it = &b->items[i];
        if (it->superseded || it->skip ||
            (it->change != CH_UNDELETE && it->change != CH_UPDATE && it->change != CH_RESTORE))
            continue;
        err = jn_buf_be16(&c, 6);
        if (!err)
            err = copy_content(&c, b, it);
        if (!err)
            err = copy_field(&c,
                             it->change == CH_UNDELETE ? "A"
                             : it->change == CH_UPDATE ? "U"
                                                       : "R",
                             1);
        rows++;
    }
    if (!err)
        err = jn_buf_be16(&c, 0xffff);
    if (!err && rows)
        err = jn_pg_copy_in(conn,
                            "COPY jn_record_stage (external_id, seq, hash, payload, sealed, kind) "
                            "FROM STDIN WITH (FORMAT binary)",
                            c.data, c.len, NULL);
    jn_buf_cleanup(&c);
    if (err || !rows)
        return err;
    char gen[24];
    snprintf(gen, sizeof gen, "%lld", w->generation);
    const char *params[] = {l->scope, l->ts, w->job_id, gen};
    return jn_pg_exec(conn, APPLY_SQL, 4, params, NULL);
}

static bool is_stamp(const item_t *it)
{
    return it->change == CH_STAMP;
}

static bool is_delete(const item_t *it)
{
    return it->change == CH_DELETE;
}

/* Unchanged records that a tracking full sync has now seen. */
static jn_err_t stamp_seen(PGconn *conn, const jn_records_writer_t *w, const locked_t *l,
                           const batch_t *b)
{
    char *array = ids_array(b, is_stamp);
    char gen[24];
    snprintf(gen, sizeof gen, "%lld", w->generation);
    const char *params[] = {l->scope, array, gen};
    jn_err_t err = jn_pg_exec(conn,
                              "UPDATE records r SET seen_gen = $3::bigint "
                              "FROM (SELECT t.tid FROM unnest($2::text[]) u(id), LATERAL "
                              " (SELECT x.ctid AS tid FROM records x WHERE x.scope_id = $1 "
                              "  AND x.external_id = u.id LIMIT 1) t) s "
                              "WHERE r.scope_id = $1 AND r.ctid = s.tid "
                              "AND r.seen_gen < $3::bigint",
                              3, params, NULL);
    free(array);
    return err;
}

/* Live records become DELETED: each its own seq; payloads stay. */
static jn_err_t delete_live(PGconn *conn, const jn_records_writer_t *w, const locked_t *l,
                            const batch_t *b)
{
    char *ids = ids_array(b, is_delete);
    jn_buf_t seqs;
    jn_buf_init(&seqs, b->n * 24 + 8);
    jn_buf_append(&seqs, "{", 1);
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->items[i].superseded && b->items[i].change == CH_DELETE)
            jn_buf_printf(&seqs, "%s%lld", n++ ? "," : "", b->items[i].seq);
    }
    jn_buf_append(&seqs, "}", 1);
    const char *params[] = {l->scope, ids, seqs.data, l->ts, w->job_id};
    jn_err_t err = jn_pg_exec(
        conn,
        "UPDATE records r SET seq = s.seq, last_action = 'D', deleted_at = $4::timestamptz, "
        "updated_at = $4::timestamptz, job_id = $5::uuid "
        "FROM (SELECT t.tid, u.seq FROM unnest($2::text[], $3::bigint[]) AS u(id, seq), LATERAL "
        " (SELECT x.ctid AS tid FROM records x WHERE x.scope_id = $1 AND x.external_id = u.id "
        "  LIMIT 1) t) s "
        "WHERE r.scope_id = $1 AND r.ctid = s.tid",
        5, params, NULL);
    free(ids);
    jn_buf_cleanup(&seqs);
    return err;
}

/* The event id of change seq of scope: the first 16 bytes of SHA-256("record:scope:seq")
 * as a UUID (records_event_id() in SQL). */
static void event_id(long long scope, long long seq, char out[37])
{
    char key[64], hex[33];
    int n = snprintf(key, sizeof key, "record:%lld:%lld", scope, seq);
    unsigned char h[32];
    jn_crypto_sha256(key, (size_t)n, h);
    jn_hex_encode(h, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* A JSON string literal of s. */
static jn_err_t json_string(jn_buf_t *out, const char *s, size_t n)
{
    json_object *v = json_object_new_string_len(s, (int)n);
    jn_field_error_t e;
    jn_err_t err = jn_canonical_json(v, out, &e);
    json_object_put(v);
    return err;
}

/* The batch's changes as the outbox's JSON array, in seq order (id order). */
static jn_err_t changes_json(const locked_t *l, const batch_t *b, jn_buf_t *out, long long *first)
{
    jn_err_t err = jn_buf_append(out, "[", 1);
    size_t n = 0;
    *first = 0;
    for (size_t i = 0; i < b->n && !err; i++) {
        const item_t *it = &b->items[i];
        if (it->superseded || it->skip || !it->seq)
            continue;
        if (!*first)
            *first = it->seq;
        char id[37], cursor[64];
        event_id(l->scope_id, it->seq, id);
        jn_records_cursor_encode(l->scope_id, it->seq, cursor);
        const char *action = it->change == CH_DELETE   ? "DELETED"
                             : it->change == CH_UPDATE ? "UPDATED"
                                                       : "ADDED";
        err = jn_buf_printf(out, "%s{\"event_id\":\"%s\",\"record_id\":", n++ ? "," : "", id);
        if (!err)
            err = json_string(out, it->id, strlen(it->id));
        if (!err)
            err = jn_buf_printf(
                out, ",\"action\":\"%s\",\"seq\":%lld,\"cursor\":\"%s\",\"payload\":", action,
                it->seq, cursor);
        if (!err && it->change == CH_DELETE) {
            err = jn_buf_append(out, "null", 4);
        } else if (!err) {
            size_t len;
            const char *payload = stored_payload(b, it, &len);
            err = it->blob ? json_string(out, payload, len) : jn_buf_append(out, payload, len);
        }
        if (!err)
            err = jn_buf_append(out, "}", 1);
    }
    return err ? err : jn_buf_append(out, "]", 1);
}

/* The outbox row (changes: the JSON array, NULL when none), the scope's counters and the
 * run's counts. */
static jn_err_t finish(PGconn *conn, const jn_records_writer_t *w, const char *model,
                       const locked_t *l, const jn_records_counts_t *c, const char *changes,
                       long long first, size_t max_payload)
{
    char seq[24], live[24], added[24], updated[24], deleted[24], env[24], first_seq[24], max[24];
    snprintf(max, sizeof max, "%zu", max_payload);
    snprintf(seq, sizeof seq, "%lld", l->next_seq);
    snprintf(live, sizeof live, "%lld", c->added - c->deleted);
    snprintf(added, sizeof added, "%lld", c->added);
    snprintf(updated, sizeof updated, "%lld", c->updated);
    snprintf(deleted, sizeof deleted, "%lld", c->deleted);
    snprintf(env, sizeof env, "%lld", w->environment_id);
    snprintf(first_seq, sizeof first_seq, "%lld", first);
    const char *params[] = {l->scope,
                            seq,
                            l->ts,
                            live,
                            w->job_id,
                            model,
                            added,
                            updated,
                            deleted,
                            env,
                            w->integration_key,
                            w->connection_key,
                            changes,
                            first_seq,
                            w->encrypt ? "t" : "f",
                            max};
    return jn_pg_exec(conn, FINISH_SQL, 16, params, NULL);
}

jn_err_t jn_records_model_name(const char *model, const char *variant, char *out, size_t cap)
{
    if (!model || !*model || strlen(model) > JN_RECORDS_MAX_MODEL || strstr(model, "::"))
        return JN_ERR_INVALID;
    for (const char *p = model; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return JN_ERR_INVALID;
    }
    int n = (!variant || !*variant || strcmp(variant, "base") == 0)
                ? snprintf(out, cap, "%s", model)
                : snprintf(out, cap, "%s::%s", model, variant);
    return n < 0 || (size_t)n >= cap ? JN_ERR_INVALID : JN_OK;
}

static jn_err_t model_of(const jn_records_writer_t *w, const char *model, char *out, size_t cap,
                         jn_field_error_t *e)
{
    if (jn_records_model_name(model, w->variant, out, cap) != JN_OK)
        return jn_field_error(e, "model",
                              "must be a name of 1 to %d printable bytes without \"::\"",
                              JN_RECORDS_MAX_MODEL);
    return JN_OK;
}

/* Counts the batch's outcome. */
static void tally(const batch_t *b, op_t op, jn_records_counts_t *c)
{
    for (size_t i = 0; i < b->n; i++) {
        const item_t *it = &b->items[i];
        if (it->superseded) {
            c->skipped += op != OP_UPDATE; /* updates of one id all apply, merged */
            continue;
        }
        if (it->skip)
            continue; /* counted by merge_updates */
        switch (it->change) {
        case CH_ADD:
        case CH_UNDELETE: c->added++; break;
        case CH_UPDATE: c->updated++; break;
        case CH_DELETE: c->deleted++; break;
        case CH_NONE:
            if (op == OP_DELETE)
                c->skipped++;
            else
                c->unchanged++;
            break;
        case CH_RESTORE:
        case CH_STAMP: c->unchanged++; break;
        }
    }
}

/* Does the writes of a prepared, classified batch inside the locked transaction; *wrote
 * tells whether there was anything to write. PostgreSQL applies the COPY of new records
 * while the outbox's JSON is built here. */
static jn_err_t write_changes(PGconn *conn, const jn_records_writer_t *w, const char *model,
                              const locked_t *l, const batch_t *b, const jn_records_counts_t *c,
                              bool *wrote)
{
    bool any[CH_STAMP + 1] = {false};
    for (size_t i = 0; i < b->n; i++) {
        if (!b->items[i].superseded && !b->items[i].skip)
            any[b->items[i].change] = true;
    }
    *wrote = false;
    for (int k = CH_NONE + 1; k <= CH_STAMP; k++)
        *wrote = *wrote || any[k];
    bool changed = c->added || c->updated || c->deleted;
    size_t max_payload = 0; /* the longest payload stored by this batch */
    for (size_t i = 0; i < b->n; i++) {
        const item_t *it = &b->items[i];
        if (!it->superseded && !it->skip &&
            (it->change == CH_ADD || it->change == CH_UNDELETE || it->change == CH_UPDATE ||
             it->change == CH_RESTORE)) {
            size_t len;
            stored_payload(b, it, &len);
            max_payload = len > max_payload ? len : max_payload;
        }
    }
    jn_err_t err = any[CH_ADD] ? insert_new_send(conn, w, l, b) : JN_OK;
    jn_buf_t changes;
    jn_buf_init(&changes, (size_t)JN_RECORDS_MAX_BATCH_BYTES * 2 + 1024L * 1024);
    if (changed)
        jn_buf_reserve(&changes, b->text.len + b->n * 200 + 64);
    long long first = 0;
    jn_err_t json_err = changed ? changes_json(l, b, &changes, &first) : JN_OK;
    if (!err && any[CH_ADD])
        err = jn_pg_receive(conn, "COPY records", NULL);
    if (!err)
        err = json_err;
    if (!err && (any[CH_UNDELETE] || any[CH_UPDATE] || any[CH_RESTORE]))
        err = apply_existing(conn, w, l, b);
    if (!err && any[CH_STAMP])
        err = stamp_seen(conn, w, l, b);
    if (!err && any[CH_DELETE])
        err = delete_live(conn, w, l, b);
    if (!err && (changed || any[CH_RESTORE]))
        err = finish(conn, w, model, l, c, changes.data, first, max_payload);
    jn_buf_cleanup(&changes);
    return err;
}

/* One call of save, update or delete: validate and prepare in memory, then the fenced
 * transaction. PostgreSQL looks the ids up while the records are canonicalized here. */
static jn_err_t write_batch(PGconn *conn, const jn_crypto_keyring_t *ring,
                            const jn_records_writer_t *w, const char *model, json_object *records,
                            op_t op, jn_records_counts_t *counts, jn_field_error_t *e)
{
    memset(counts, 0, sizeof *counts);
    char full[JN_RECORDS_MAX_MODEL * 2 + 8];
    batch_t b;
    jn_err_t err = model_of(w, model, full, sizeof full, e);
    if (err)
        return err;
    if ((err = prepare(records, op, &b, e))) {
        batch_cleanup(&b);
        return err;
    }
    locked_t l;
    if ((err = begin_batch(conn, w, full, &l))) {
        batch_cleanup(&b);
        return err;
    }
    jn_records_counts_t c = {0};
    json_object *stored = NULL;
    bool wrote = false;
    err = lookup_send(conn, &l, &b, op == OP_UPDATE);
    jn_err_t bad = !err && op == OP_SAVE ? canonicalize_all(&b, e) : JN_OK;
    if (!err)
        err = lookup_receive(conn, ring, &l, &b, op == OP_UPDATE ? &stored : NULL);
    if (!err)
        err = bad;
    if (!err && op == OP_UPDATE)
        err = merge_updates(&b, stored, &c, e);
    json_object_put(stored);
    if (!err) {
        classify(w, &l, &b, op);
        tally(&b, op, &c);
        err = w->encrypt ? seal_payloads(ring, &l, &b) : JN_OK;
    }
    if (!err)
        err = write_changes(conn, w, full, &l, &b, &c, &wrote);
    /* A batch that changed nothing rolls back its scope lock: no commit to flush. */
    err = !err && !wrote ? jn_pg_exec_script(conn, "ROLLBACK") : end_batch(conn, err);
    if (!err)
        *counts = c;
    batch_cleanup(&b);
    return err;
}

jn_err_t jn_records_save(PGconn *conn, const jn_crypto_keyring_t *ring,
                         const jn_records_writer_t *w, const char *model, json_object *records,
                         jn_records_counts_t *counts, jn_field_error_t *e)
{
    return write_batch(conn, ring, w, model, records, OP_SAVE, counts, e);
}

jn_err_t jn_records_update(PGconn *conn, const jn_crypto_keyring_t *ring,
                           const jn_records_writer_t *w, const char *model, json_object *records,
                           jn_records_counts_t *counts, jn_field_error_t *e)
{
    return write_batch(conn, ring, w, model, records, OP_UPDATE, counts, e);
}

jn_err_t jn_records_delete(PGconn *conn, const jn_crypto_keyring_t *ring,
                           const jn_records_writer_t *w, const char *model, json_object *records,
                           jn_records_counts_t *counts, jn_field_error_t *e)
{
    return write_batch(conn, ring, w, model, records, OP_DELETE, counts, e);
}

/* Marks DELETED, batch by batch in id order, the live records of model that sql selects
 * ($1 scope, $2 after this id, $3 batch size, then extra). */
static jn_err_t delete_scan(PGconn *conn, const jn_records_writer_t *w, const char *model,
                            const char *sql, const char *extra, int batch, long long *deleted)
{
    *deleted = 0;
    char full[JN_RECORDS_MAX_MODEL * 2 + 8], after[JN_RECORDS_MAX_ID + 1] = "", size[16];
    if (jn_records_model_name(model, w->variant, full, sizeof full) != JN_OK)
        return JN_ERR_INVALID;
    batch = batch < 1 ? 1 : batch > JN_RECORDS_MAX_BATCH ? JN_RECORDS_MAX_BATCH : batch;
    snprintf(size, sizeof size, "%d", batch);
    for (;;) {
        locked_t l;
        jn_err_t err = begin_batch(conn, w, full, &l);
        if (err)
            return err;
        const char *params[] = {l.scope, after, size, extra};
        PGresult *r = NULL;
        err = jn_pg_exec(conn, sql, extra ? 4 : 3, params, &r);
        int rows = err ? 0 : PQntuples(r);
        batch_t b = {0};
        jn_buf_init(&b.text, 0);
        b.items = calloc(rows ? (size_t)rows : 1, sizeof *b.items);
        if (!b.items)
            abort();
        for (int i = 0; i < rows; i++) {
            item_t *it = &b.items[b.n++];
            it->id = strdup(PQgetvalue(r, i, 0));
            if (!it->id)
                abort();
            it->found = true; /* selected live */
        }
        if (rows)
            snprintf(after, sizeof after, "%s", PQgetvalue(r, rows - 1, 0));
        PQclear(r);
        /* The rows come in the index's order; changes are numbered in strcmp's. */
        qsort(b.items, b.n, sizeof *b.items, item_order);
        jn_records_counts_t c = {0};
        bool wrote = false;
        if (!err) {
            classify(w, &l, &b, OP_DELETE);
            tally(&b, OP_DELETE, &c);
            err = write_changes(conn, w, full, &l, &b, &c, &wrote);
        }
        batch_cleanup(&b);
        if ((err = end_batch(conn, err)))
            return err;
        *deleted += c.deleted;
        if (rows < batch)
            return JN_OK;
    }
}

jn_err_t jn_records_delete_unseen(PGconn *conn, const jn_records_writer_t *w, const char *model,
                                  long long since_gen, int batch, long long *deleted)
{
    char since[24];
    snprintf(since, sizeof since, "%lld", since_gen);
    return delete_scan(conn, w, model,
                       "SELECT external_id FROM records WHERE scope_id = $1 AND external_id > $2 "
                       "AND deleted_at IS NULL AND seen_gen < $4::bigint ORDER BY external_id "
                       "LIMIT $3::int",
                       since, batch, deleted);
}

jn_err_t jn_records_delete_all(PGconn *conn, const jn_records_writer_t *w, const char *model,
                               int batch, long long *deleted)
{
    return delete_scan(conn, w, model,
                       "SELECT external_id FROM records WHERE scope_id = $1 AND external_id > $2 "
                       "AND deleted_at IS NULL ORDER BY external_id LIMIT $3::int",
                       NULL, batch, deleted);
}

jn_err_t jn_records_writer_begin(PGconn *conn, long long env_id, const char *job_id,
                                 long long lease_token, const char *variant,
                                 jn_records_writer_t *out)
{
    memset(out, 0, sizeof *out);
    char token[24], env[24];
    snprintf(token, sizeof token, "%lld", lease_token);
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {job_id, token, env};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(
        conn,
        "SELECT coalesce(j.connection_id, 0), i.unique_key, c.connection_id, e.encrypt_records, "
        " nextval('sync_generations') "
        "FROM jobs j JOIN environments e ON e.id = j.environment_id "
        "LEFT JOIN connections c ON c.id = j.connection_id "
        "LEFT JOIN integrations i ON i.id = c.integration_id "
        "WHERE j.id = $1::uuid AND j.lease_token = $2 AND j.state = 'running' "
        "AND j.environment_id = $3",
        3, params, &r);
    if (err)
        return err;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return JN_ERR_CONFLICT;
    }
    if (PQgetisnull(r, 0, 1)) {
        PQclear(r);
        return JN_ERR_INVALID;
    }
    out->environment_id = env_id;
    out->connection_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(out->integration_key, sizeof out->integration_key, "%s", PQgetvalue(r, 0, 1));
    snprintf(out->connection_key, sizeof out->connection_key, "%s", PQgetvalue(r, 0, 2));
    out->encrypt = PQgetvalue(r, 0, 3)[0] == 't';
    out->generation = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    snprintf(out->variant, sizeof out->variant, "%s", variant && *variant ? variant : "base");
    snprintf(out->job_id, sizeof out->job_id, "%s", job_id);
    out->lease_token = lease_token;
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_records_set_encryption(PGconn *conn, long long env_id, bool encrypt)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, encrypt ? "t" : "f"};
    return jn_pg_exec_found(
        conn,
        "UPDATE environments SET encrypt_records = $2::bool, updated_at = now() "
        "WHERE id = $1 RETURNING 1",
        2, params);
}

jn_err_t jn_records_get_encryption(PGconn *conn, long long env_id, bool *encrypt)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn, "SELECT encrypt_records FROM environments WHERE id = $1", 1, params, &r);
    if (err)
        return err;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    *encrypt = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return JN_OK;
}
