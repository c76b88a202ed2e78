/*
 * records.c - writing records: validation and canonical hashing in C, then one fenced
 * transaction per batch.
 *
 * A batch's transaction: (1) the fence and the scope lock in one statement (the job row
 * FOR SHARE, so a new claim of the job waits for this commit and a stale one finds no
 * row; the scope row locked by a no-op upsert, which also returns last_seq and the time
 * stamp of the batch); (2) the batch as a binary COPY into a session temp table, with no
 * escaping at all; (3) one statement that diffs the staged rows against the stored ones
 * and writes the changes, their outbox rows, the scope's counters and the run's counts;
 * (4) COMMIT. Joins against records are per-row index probes on purpose (hash and merge
 * joins are off for the transaction): a batch touches a thousand rows of a partition
 * that may hold millions, and the staging table has no statistics for the planner.
 */
#include "store/records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/canonical_json.h"
#include "store/pg.h"

#define HASH_LEN 16 /* bytes of SHA-256 kept: collisions stay out of reach at 2^64 records */

/* ---- the SQL ---- */

#define BEGIN_BATCH                                                                                \
    "BEGIN; SET LOCAL enable_hashjoin TO off; SET LOCAL enable_mergejoin TO off; "                 \
    "SET LOCAL jit TO off; "                                                                       \
    "CREATE TEMP TABLE IF NOT EXISTS jn_record_stage (external_id text NOT NULL, hash bytea, "     \
    "payload text, sealed boolean NOT NULL DEFAULT false) ON COMMIT DELETE ROWS"

/* $1 job, $2 lease token, $3 environment, $4 connection row, $5 model, $6 integration key,
 * $7 connection key. No row: the fence failed. */
static const char *const LOCK_SQL =
    "WITH fence AS (SELECT j.id FROM jobs j WHERE j.id = $1::uuid AND j.lease_token = $2 "
    " AND j.state = 'running' AND j.environment_id = $3 AND j.connection_id = $4 FOR SHARE) "
    "INSERT INTO record_scopes AS s (environment_id, connection_id, model, integration, "
    " connection) SELECT $3, $4, $5, $6, $7 FROM fence "
    "ON CONFLICT (connection_id, model) DO UPDATE SET last_seq = s.last_seq "
    "RETURNING s.id, s.last_seq, greatest(clock_timestamp(), s.last_modified_at)::text";

/* Every change statement: $1 scope, $2 last_seq, $3 batch time, $4 job, $5 environment,
 * $6 integration key, $7 connection key, $8 model; chg(external_id, seq, ...) holds the
 * changes. */
#define OUTBOX_INSERT(ACTION, PAYLOAD, SEALED)                                                     \
    "INSERT INTO record_outbox (shard, event_id, environment_id, integration, connection, "        \
    " model, record_id, action, payload, sealed, scope_id, seq, cursor, job_id) "                  \
    "SELECT (hashtextextended(external_id, $1::bigint) & 63)::smallint, "                          \
    " md5('record:' || $1 || ':' || seq)::uuid, $5::bigint, $6, $7, $8, external_id, " ACTION      \
    ", " PAYLOAD ", " SEALED ", $1::bigint, seq, records_cursor($1::bigint, seq), $4::uuid "       \
    "FROM chg"

#define SCOPE_BUMP(LIVE_DELTA)                                                                     \
    "UPDATE record_scopes SET last_seq = last_seq + (SELECT count(*) FROM chg), "                  \
    " live_count = live_count + (" LIVE_DELTA "), last_modified_at = $3::timestamptz "             \
    "WHERE id = $1"

#define RUN_COUNTS(ADDED, UPDATED, DELETED)                                                        \
    "INSERT INTO sync_run_counts AS c (job_id, model, added, updated, deleted) "                   \
    "SELECT $4::uuid, $8, " ADDED ", " UPDATED ", " DELETED " FROM chg HAVING count(*) > 0 "       \
    "ON CONFLICT (job_id, model) DO UPDATE SET added = c.added + EXCLUDED.added, "                 \
    " updated = c.updated + EXCLUDED.updated, deleted = c.deleted + EXCLUDED.deleted"

/* Save and update: $9 generation, $10 mark unchanged records seen. */
static const char *const SAVE_SQL =
    "WITH st AS MATERIALIZED ("
    " SELECT s.external_id, s.hash, s.payload, s.sealed, r.hash AS old_hash,"
    "  r.deleted_at AS old_deleted, r.pruned_at AS old_pruned, r.found IS NOT NULL AS existed"
    " FROM jn_record_stage s LEFT JOIN LATERAL (SELECT x.hash, x.deleted_at, x.pruned_at,"
    "  true AS found FROM records x WHERE x.scope_id = $1 AND x.external_id = s.external_id"
    "  LIMIT 1) r ON true),"
    "chg AS MATERIALIZED ("
    " SELECT external_id, hash, payload, sealed,"
    "  CASE WHEN existed AND old_deleted IS NULL THEN 'U' ELSE 'A' END::\"char\" AS act,"
    "  $2::bigint + row_number() OVER (ORDER BY external_id COLLATE \"C\") AS seq"
    " FROM st WHERE NOT existed OR old_deleted IS NOT NULL OR old_hash <> hash),"
    "up AS ("
    " INSERT INTO records AS r (scope_id, external_id, seq, hash, payload, sealed, last_action,"
    "  first_seen_at, updated_at, seen_gen, job_id)"
    " SELECT $1, external_id, seq, hash, payload, sealed, act, $3::timestamptz,"
    "  $3::timestamptz, $9::bigint, $4::uuid FROM chg"
    " ON CONFLICT (scope_id, external_id) DO UPDATE SET seq = EXCLUDED.seq,"
    "  hash = EXCLUDED.hash, payload = EXCLUDED.payload, sealed = EXCLUDED.sealed,"
    "  last_action = EXCLUDED.last_action,"
    "  first_seen_at = CASE WHEN r.deleted_at IS NULL THEN r.first_seen_at"
    "                  ELSE EXCLUDED.first_seen_at END,"
    "  updated_at = EXCLUDED.updated_at, deleted_at = NULL, pruned_at = NULL,"
    "  seen_gen = greatest(r.seen_gen, EXCLUDED.seen_gen), job_id = EXCLUDED.job_id),"
    /* Unchanged records: stamped seen for a tracking full sync; a pruned one gets its
     * payload back (not a change: its content is what it was). */
    "same AS ("
    " UPDATE records r SET"
    "  seen_gen = CASE WHEN $10::bool THEN greatest(r.seen_gen, $9::bigint) ELSE r.seen_gen END,"
    "  payload = CASE WHEN r.pruned_at IS NULL THEN r.payload"
    "            ELSE (SELECT st.payload FROM st WHERE st.external_id = r.external_id) END,"
    "  sealed = CASE WHEN r.pruned_at IS NULL THEN r.sealed"
    "           ELSE (SELECT st.sealed FROM st WHERE st.external_id = r.external_id) END,"
    "  pruned_at = NULL"
    " WHERE r.scope_id = $1 AND r.external_id = ANY (ARRAY(SELECT external_id FROM st"
    "   WHERE existed AND old_deleted IS NULL AND old_hash = hash"
    "   AND (old_pruned IS NOT NULL OR $10::bool)))"
    "  AND (r.pruned_at IS NOT NULL OR r.seen_gen < $9::bigint)),"
    "ob AS (" OUTBOX_INSERT(
        "CASE act WHEN 'A' THEN 'ADDED' ELSE 'UPDATED' END", "payload",
        "sealed") "),"
                  "sc AS (" SCOPE_BUMP(
                      "SELECT count(*) FROM chg WHERE act = 'A'") "),"
                                                                  "rc AS (" RUN_COUNTS(
                                                                      "count(*) FILTER (WHERE act "
                                                                      "= 'A')",
                                                                      "count(*) FILTER (WHERE act "
                                                                      "= 'U')",
                                                                      "0") ") "
                                                                           "SELECT count(*) FILTER "
                                                                           "(WHERE act = 'A'), "
                                                                           "count(*) FILTER (WHERE "
                                                                           "act = 'U'),"
                                                                           " (SELECT count(*) FROM "
                                                                           "st WHERE existed AND "
                                                                           "old_deleted IS NULL "
                                                                           "AND old_hash = hash) "
                                                                           "FROM chg";

/* Deletes: chg is given by SOURCE (external_id of live records). */
#define DELETE_SQL(SOURCE)                                                                         \
    "WITH chg AS MATERIALIZED ("                                                                   \
    " SELECT x.external_id, $2::bigint + row_number() OVER (ORDER BY x.external_id COLLATE "       \
    "  \"C\") AS seq FROM " SOURCE "),"                                                            \
    "up AS (UPDATE records r SET seq = chg.seq, last_action = 'D', deleted_at = $3::timestamptz,"  \
    " updated_at = $3::timestamptz, job_id = $4::uuid FROM chg"                                    \
    " WHERE r.scope_id = $1 AND r.external_id = chg.external_id),"                                 \
    "ob AS (" OUTBOX_INSERT(                                                                       \
        "'DELETED'", "NULL",                                                                       \
        "false") "),"                                                                              \
                 "sc AS (" SCOPE_BUMP(                                                             \
                     "-(SELECT count(*) FROM chg)") "),"                                           \
                                                    "rc AS (" RUN_COUNTS(                          \
                                                        "0", "0",                                  \
                                                        "count(*)") ") "                           \
                                                                    "SELECT count(*) FROM chg"

static const char *const DELETE_STAGED_SQL = DELETE_SQL(
    "jn_record_stage s JOIN LATERAL (SELECT y.external_id FROM records y WHERE y.scope_id = $1 "
    "AND y.external_id = s.external_id AND y.deleted_at IS NULL LIMIT 1) x ON true");

/* $9 since generation, $10 batch. */
static const char *const DELETE_UNSEEN_SQL =
    DELETE_SQL("(SELECT external_id FROM records WHERE scope_id = $1 AND deleted_at IS NULL "
               "AND seen_gen < $9::bigint ORDER BY external_id LIMIT $10::int) x");

/* $9 batch. */
static const char *const DELETE_ALL_SQL =
    DELETE_SQL("(SELECT external_id FROM records WHERE scope_id = $1 AND deleted_at IS NULL "
               "ORDER BY external_id LIMIT $9::int) x");

/* ---- a batch prepared in memory ---- */

typedef struct {
    char *id;            /* the record id as text (owned) */
    size_t index;        /* position in the caller's array */
    json_object *record; /* the normalized record (owned), NULL for a delete */
    size_t off, len;     /* its canonical text in batch_t.text */
    unsigned char hash[HASH_LEN];
    bool superseded; /* a later item has the same id */
    bool skip;       /* update: no live stored record to merge into */
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

/* Appends the canonical text of item->record to b->text and hashes it. */
static jn_err_t canonicalize(batch_t *b, item_t *it, jn_field_error_t *e)
{
    size_t before = b->text.len;
    jn_field_error_t inner;
    jn_err_t err = jn_canonical_json(it->record, &b->text, &inner);
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

/* Validates the caller's array and builds the batch: ids, normalized records (save and
 * update), canonical texts (save), sorted by id with duplicates marked. Nothing is written
 * on an error. */
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
        it->record = normalized(rec, id);
        if (op == OP_SAVE && (err = canonicalize(b, it, e)))
            return err;
    }
    qsort(b->items, b->n, sizeof *b->items, item_order);
    for (size_t i = 0; i + 1 < b->n; i++)
        b->items[i].superseded = strcmp(b->items[i].id, b->items[i + 1].id) == 0;
    return JN_OK;
}

/* ---- the transaction ---- */

typedef struct {
    char scope[24], last_seq[24], ts[64];
    long long scope_id;
} locked_t;

/* BEGIN, the fence and the scope lock. JN_ERR_CONFLICT (rolled back) when the lease is
 * not held. */
static jn_err_t begin_batch(PGconn *conn, const jn_records_writer_t *w, const char *model,
                            locked_t *l)
{
    jn_err_t err = jn_pg_exec_script(conn, BEGIN_BATCH);
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
    l->scope_id = strtoll(l->scope, NULL, 10);
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

/* A COPY field: its length, then its bytes. */
static jn_err_t copy_field(jn_buf_t *c, const void *p, size_t n)
{
    jn_err_t err = jn_buf_be32(c, (uint32_t)n);
    return err ? err : jn_buf_append(c, p, n);
}

/* Stages the batch's live items (not superseded or skipped) with one binary COPY:
 * (external_id, hash, payload, sealed), payloads sealed when the writer encrypts. */
static jn_err_t stage(PGconn *conn, const jn_crypto_keyring_t *ring, const jn_records_writer_t *w,
                      const locked_t *l, const batch_t *b, bool with_payload)
{
    static const char header[] = "PGCOPY\n\377\r\n";
    jn_buf_t c;
    jn_buf_init(&c, (size_t)JN_RECORDS_MAX_BATCH_BYTES * 2 + 1024);
    jn_err_t err = jn_buf_append(&c, header, 11);
    if (!err)
        err = jn_buf_be32(&c, 0); /* flags */
    if (!err)
        err = jn_buf_be32(&c, 0); /* header extension */
    for (size_t i = 0; i < b->n && !err; i++) {
        const item_t *it = &b->items[i];
        if (it->superseded || it->skip)
            continue;
        err = jn_buf_be16(&c, with_payload ? 4 : 1);
        if (!err)
            err = copy_field(&c, it->id, strlen(it->id));
        if (err || !with_payload)
            continue;
        err = copy_field(&c, it->hash, HASH_LEN);
        const char *text = b->text.data + it->off;
        if (!err && w->encrypt) {
            char aad[JN_RECORDS_MAX_ID + 64], *blob = NULL;
            record_aad(l->scope_id, it->id, aad, sizeof aad);
            err = jn_crypto_seal(ring, text, it->len, aad, strlen(aad), &blob);
            if (!err)
                err = copy_field(&c, blob, strlen(blob));
            free(blob);
        } else if (!err) {
            err = copy_field(&c, text, it->len);
        }
        if (!err)
            err = copy_field(&c, w->encrypt ? "\1" : "\0", 1);
    }
    if (!err)
        err = jn_buf_be16(&c, 0xffff); /* the trailer: -1 */
    if (!err)
        err = jn_pg_copy_in(conn,
                            with_payload ? "COPY jn_record_stage (external_id, hash, payload, "
                                           "sealed) FROM STDIN WITH (FORMAT binary)"
                                         : "COPY jn_record_stage (external_id) FROM STDIN WITH "
                                           "(FORMAT binary)",
                            c.data, c.len, NULL);
    jn_buf_cleanup(&c);
    return err;
}

/* Runs a change statement with the common parameters plus extra ones; the counts it
 * returns go to out[0..ncols). */
static jn_err_t run_change(PGconn *conn, const char *sql, const jn_records_writer_t *w,
                           const char *model, const locked_t *l, const char *const *extra,
                           int nextra, long long *out, int ncols)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", w->environment_id);
    const char *params[12] = {l->scope,           l->last_seq,       l->ts, w->job_id, env,
                              w->integration_key, w->connection_key, model};
    for (int i = 0; i < nextra; i++)
        params[8 + i] = extra[i];
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, sql, 8 + nextra, params, &r);
    if (err)
        return err;
    for (int i = 0; i < ncols; i++)
        out[i] = PQntuples(r) ? strtoll(PQgetvalue(r, 0, i), NULL, 10) : 0;
    PQclear(r);
    return JN_OK;
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

/* The rows of r (external_id, payload, sealed[, scope]) as a new object id -> parsed
 * record; a pruned row (NULL payload) as {"id": id}. scope is the rows' scope, or 0 when
 * column 3 holds each row's. */
static jn_err_t payload_map(const jn_crypto_keyring_t *ring, const PGresult *r, long long scope,
                            json_object **out)
{
    jn_err_t err = JN_OK;
    json_object *map = json_object_new_object();
    for (int i = 0; i < PQntuples(r) && !err; i++) {
        const char *id = PQgetvalue(r, i, 0);
        json_object *rec = NULL;
        if (PQgetisnull(r, i, 1)) {
            rec = json_object_new_object();
            json_object_object_add(rec, "id", json_object_new_string(id));
        } else {
            char *text = NULL;
            size_t len = 0;
            err = jn_records_open_payload(
                ring, scope ? scope : strtoll(PQgetvalue(r, i, 3), NULL, 10), id,
                PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)[0] == 't', &text, &len);
            if (!err && !(rec = json_tokener_parse(text)))
                err = JN_ERR_INTERNAL;
            if (text) {
                jn_secure_wipe(text, len);
                free(text);
            }
        }
        if (rec)
            json_object_object_add(map, id, rec);
    }
    if (err) {
        json_object_put(map);
        return err;
    }
    *out = map;
    return JN_OK;
}

/* The stored payloads of the batch's ids that are live and not pruned, parsed: a new
 * object id -> record. */
static jn_err_t load_live(PGconn *conn, const jn_crypto_keyring_t *ring, const locked_t *l,
                          const batch_t *b, json_object **out)
{
    const char **ids = malloc((b->n ? b->n : 1) * sizeof *ids);
    if (!ids)
        abort();
    for (size_t i = 0; i < b->n; i++)
        ids[i] = b->items[i].id;
    char *array = jn_pg_text_array(ids, b->n);
    free(ids);
    const char *params[] = {l->scope, array};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "SELECT external_id, payload, sealed FROM records WHERE scope_id = $1 "
                   "AND external_id = ANY ($2::text[]) AND deleted_at IS NULL "
                   "AND payload IS NOT NULL",
                   2, params, &r);
    free(array);
    if (err)
        return err;
    err = payload_map(ring, r, l->scope_id, out);
    PQclear(r);
    return err;
}

/* Merges each id's partial updates, in the caller's order, into its stored live record;
 * the last item of an id carries the result (canonicalized), the others are superseded.
 * Items of ids without a live stored record are skipped. */
static jn_err_t merge_updates(PGconn *conn, const jn_crypto_keyring_t *ring, const locked_t *l,
                              batch_t *b, jn_records_counts_t *counts, jn_field_error_t *e)
{
    json_object *stored = NULL, *merged = NULL;
    jn_err_t err = load_live(conn, ring, l, b, &stored);
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
    json_object_put(stored);
    return err;
}

/* One call of save, update or delete: validate and prepare in memory, then the fenced
 * transaction. */
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
    long long got[3] = {0};
    if (op == OP_UPDATE)
        err = merge_updates(conn, ring, &l, &b, counts, e);
    if (!err)
        err = stage(conn, ring, w, &l, &b, op != OP_DELETE);
    if (!err && op == OP_DELETE) {
        err = run_change(conn, DELETE_STAGED_SQL, w, full, &l, NULL, 0, got, 1);
    } else if (!err) {
        char gen[24];
        snprintf(gen, sizeof gen, "%lld", w->generation);
        const char *extra[] = {gen, w->mark_seen ? "t" : "f"};
        err = run_change(conn, SAVE_SQL, w, full, &l, extra, 2, got, 3);
    }
    if ((err = end_batch(conn, err))) {
        batch_cleanup(&b);
        return err;
    }
    if (op == OP_DELETE) {
        counts->deleted = got[0];
        counts->skipped = (long long)b.n - got[0];
    } else {
        counts->added = got[0];
        counts->updated = got[1];
        counts->unchanged = got[2];
        for (size_t i = 0; op == OP_SAVE && i < b.n; i++)
            counts->skipped += b.items[i].superseded;
    }
    batch_cleanup(&b);
    return JN_OK;
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

/* Runs one of the set-based delete statements batch by batch until a batch comes short. */
static jn_err_t delete_batches(PGconn *conn, const jn_records_writer_t *w, const char *model,
                               const char *sql, const char *const *extra, int nextra, int batch,
                               long long *deleted)
{
    *deleted = 0;
    char full[JN_RECORDS_MAX_MODEL * 2 + 8];
    if (jn_records_model_name(model, w->variant, full, sizeof full) != JN_OK)
        return JN_ERR_INVALID;
    for (;;) {
        locked_t l;
        jn_err_t err = begin_batch(conn, w, full, &l);
        if (err)
            return err;
        long long got = 0;
        err = run_change(conn, sql, w, full, &l, extra, nextra, &got, 1);
        if ((err = end_batch(conn, err)))
            return err;
        *deleted += got;
        if (got < batch)
            return JN_OK;
    }
}

jn_err_t jn_records_delete_unseen(PGconn *conn, const jn_records_writer_t *w, const char *model,
                                  long long since_gen, int batch, long long *deleted)
{
    char since[24], size[16];
    snprintf(since, sizeof since, "%lld", since_gen);
    snprintf(size, sizeof size, "%d", batch < 1 ? 1 : batch);
    const char *extra[] = {since, size};
    return delete_batches(conn, w, model, DELETE_UNSEEN_SQL, extra, 2, batch < 1 ? 1 : batch,
                          deleted);
}

jn_err_t jn_records_delete_all(PGconn *conn, const jn_records_writer_t *w, const char *model,
                               int batch, long long *deleted)
{
    char size[16];
    snprintf(size, sizeof size, "%d", batch < 1 ? 1 : batch);
    const char *extra[] = {size};
    return delete_batches(conn, w, model, DELETE_ALL_SQL, extra, 1, batch < 1 ? 1 : batch, deleted);
}

jn_err_t jn_records_get_by_ids(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                               long long connection_id, const char *model, json_object *ids,
                               json_object **out, jn_field_error_t *e)
{
    *out = NULL;
    if (!json_object_is_type(ids, json_type_array))
        return jn_field_error(e, "ids", "must be an array");
    size_t n = json_object_array_length(ids);
    if (n > JN_RECORDS_MAX_PAGE)
        return jn_field_error(e, "ids", "at most %d ids", JN_RECORDS_MAX_PAGE);
    char **texts = calloc(n ? n : 1, sizeof *texts);
    if (!texts)
        abort();
    jn_err_t err = JN_OK;
    for (size_t i = 0; i < n && !err; i++) {
        json_object *v = json_object_array_get_idx(ids, i);
        char num[32];
        if (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0 &&
            json_object_get_string_len(v) <= JN_RECORDS_MAX_ID &&
            !jn_json_has_nul(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
            texts[i] = strdup(json_object_get_string(v));
        else if (json_object_is_type(v, json_type_int) && jn_canonical_number(v, num) == JN_OK)
            texts[i] = strdup(num);
        else
            err = jn_field_error(e, "ids", "item %zu must be a non-empty string or an integer", i);
        if (!err && !texts[i])
            abort();
    }
    char *array = err ? NULL : jn_pg_text_array((const char *const *)texts, n);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    if (err)
        return err;
    char env[24], cid[24];
    snprintf(env, sizeof env, "%lld", env_id);
    snprintf(cid, sizeof cid, "%lld", connection_id);
    const char *params[] = {env, cid, model, array};
    PGresult *r = NULL;
    err = jn_pg_exec(conn,
                     "SELECT r.external_id, r.payload, r.sealed, s.id FROM record_scopes s "
                     "JOIN records r ON r.scope_id = s.id WHERE s.environment_id = $1 "
                     "AND s.connection_id = $2 AND s.model = $3 "
                     "AND r.external_id = ANY ($4::text[]) AND r.deleted_at IS NULL",
                     4, params, &r);
    free(array);
    if (err)
        return err;
    err = payload_map(ring, r, 0, out);
    PQclear(r);
    return err;
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

/* ---- purging the records of deleted connections ---- */

jn_err_t jn_records_purge_step(PGconn *conn, int batch, long long *purged, bool *more)
{
    *purged = 0;
    *more = false;
    char size[16];
    snprintf(size, sizeof size, "%d", batch < 1 ? 1 : batch);
    const char *params[] = {size};
    jn_err_t err =
        jn_pg_exec_script(conn, "BEGIN; SET LOCAL enable_hashjoin TO off; "
                                "SET LOCAL enable_mergejoin TO off; SET LOCAL jit TO off");
    if (err)
        return err;
    PGresult *r = NULL;
    /* One scope at a time, locked so that another scheduler takes another. The live
     * records leave with a DELETED event each, numbered after the scope's last change; the
     * scope goes with its last batch. */
    err = jn_pg_exec(
        conn,
        "WITH sc AS MATERIALIZED (SELECT id, environment_id, integration, connection, model,"
        "  last_seq FROM record_scopes WHERE purge_requested_at IS NOT NULL"
        "  ORDER BY purge_requested_at LIMIT 1 FOR UPDATE SKIP LOCKED),"
        "gone AS MATERIALIZED (DELETE FROM records r USING (SELECT x.scope_id, x.external_id"
        "  FROM sc, records x WHERE x.scope_id = sc.id LIMIT $1::int) d"
        "  WHERE r.scope_id = d.scope_id AND r.external_id = d.external_id"
        "  RETURNING r.external_id, r.deleted_at IS NULL AS live),"
        "chg AS MATERIALIZED (SELECT g.external_id, sc.last_seq + row_number() OVER"
        "  (ORDER BY g.external_id COLLATE \"C\") AS seq, sc.id, sc.environment_id,"
        "  sc.integration, sc.connection, sc.model FROM gone g, sc WHERE g.live),"
        "ob AS (INSERT INTO record_outbox (shard, event_id, environment_id, integration,"
        "  connection, model, record_id, action, scope_id, seq, cursor)"
        "  SELECT (hashtextextended(external_id, id) & 63)::smallint,"
        "  md5('record:' || id || ':' || seq)::uuid, environment_id, integration, connection,"
        "  model, external_id, 'DELETED', id, seq, records_cursor(id, seq) FROM chg),"
        "bump AS (UPDATE record_scopes s SET last_seq = s.last_seq + (SELECT count(*) FROM chg),"
        "  live_count = s.live_count - (SELECT count(*) FROM chg) FROM sc WHERE s.id = sc.id"
        "  AND (SELECT count(*) FROM gone) >= $1::int),"
        "drop_scope AS (DELETE FROM record_scopes s USING sc WHERE s.id = sc.id"
        "  AND (SELECT count(*) FROM gone) < $1::int)"
        "SELECT (SELECT count(*) FROM sc), (SELECT count(*) FROM gone)",
        1, params, &r);
    if (!err) {
        *more = strtoll(PQgetvalue(r, 0, 0), NULL, 10) > 0;
        *purged = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    return end_batch(conn, err);
}
