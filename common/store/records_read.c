/*
 * records_read.c - reading records: the records API's pages, reads by id, pruning, and
 * the cursor.
 *
 * A page is one index range scan of (scope_id, seq) from the cursor, so a page costs the
 * same at the start of a scope of ten million records as at its end. The JSON is written
 * straight from the stored canonical text: a payload is an object, so the metadata is
 * spliced in before its closing brace, and no payload is parsed on the way out.
 */
#include "store/records.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/canonical_json.h"
#include "store/pg.h"

/* ---- the cursor: base64url of "r1:<scope>:<seq>", without padding ---- */

void jn_records_cursor_encode(long long scope, long long seq, char out[64])
{
    char plain[64], b64[96];
    int n = snprintf(plain, sizeof plain, "r1:%lld:%lld", scope, seq);
    jn_base64_encode((const unsigned char *)plain, (size_t)n, b64);
    size_t k = 0;
    for (const char *p = b64; *p && *p != '=' && k < 63; p++)
        out[k++] = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    out[k] = '\0';
}

/* A decimal without sign or leading zeros (but "0"), into *out. */
static bool parse_count(const char *s, const char *end, long long *out)
{
    if (s == end || end - s > 18 || (*s == '0' && end - s > 1))
        return false;
    long long v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return true;
}

jn_err_t jn_records_cursor_decode(const char *cursor, long long *scope, long long *seq)
{
    size_t n = strlen(cursor);
    if (n == 0 || n > 88)
        return JN_ERR_INVALID;
    char b64[96];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = cursor[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return JN_ERR_INVALID;
        b64[k++] = c;
    }
    while (k % 4)
        b64[k++] = '=';
    b64[k] = '\0';
    unsigned char plain[72];
    size_t plain_len = 0;
    if (jn_base64_decode(b64, k, plain, sizeof plain - 1, &plain_len) != JN_OK)
        return JN_ERR_INVALID;
    plain[plain_len] = '\0';
    const char *p = (const char *)plain, *end = p + plain_len;
    if (plain_len < 6 || memcmp(p, "r1:", 3) != 0)
        return JN_ERR_INVALID;
    p += 3;
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!colon || !parse_count(p, colon, scope) || !parse_count(colon + 1, end, seq))
        return JN_ERR_INVALID;
    return JN_OK;
}

/* ---- lookups ---- */

/* The connection row of (pck, cid) in env and the scope of model (0 when it has none).
 * JN_ERR_NOT_FOUND without such a connection. */
static jn_err_t find_scope(PGconn *conn, long long env_id, const char *pck, const char *cid,
                           const char *model, long long *connection, long long *scope,
                           long long *max_payload)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, pck, cid, model};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "SELECT c.id, coalesce(s.id, 0), coalesce(s.max_payload, 0) FROM connections c "
                   "JOIN integrations i ON i.id = c.integration_id "
                   "LEFT JOIN record_scopes s ON s.connection_id = c.id AND s.model = $4 "
                   " AND s.purge_requested_at IS NULL "
                   "WHERE i.environment_id = $1 AND i.unique_key = $2 AND c.connection_id = $3",
                   4, params, &r);
    if (err)
        return err;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    *connection = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *scope = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    if (max_payload)
        *max_payload = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    return JN_OK;
}

/* The seq a cursor points at, checked against the scope being read. */
static jn_err_t cursor_seq(const char *cursor, long long scope, long long *seq, jn_field_error_t *e)
{
    long long cursor_scope = 0;
    if (strlen(cursor) > JN_RECORDS_MAX_CURSOR ||
        jn_records_cursor_decode(cursor, &cursor_scope, seq) != JN_OK)
        return jn_field_error(e, "cursor", "is not a cursor this API gave");
    if (scope && cursor_scope != scope)
        return jn_field_error(e, "cursor", "belongs to another connection or model");
    return JN_OK;
}

static void release_plain(char *text, size_t len)
{
    if (text) {
        jn_secure_wipe(text, len);
        free(text);
    }
}

/* A JSON string literal of s. */
static jn_err_t put_json_string(jn_buf_t *out, const char *s)
{
    json_object *v = json_object_new_string(s);
    jn_field_error_t e;
    jn_err_t err = jn_canonical_json(v, out, &e);
    json_object_put(v);
    return err;
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
                     "CROSS JOIN unnest($4::text[]) u(id) CROSS JOIN LATERAL (SELECT * FROM "
                     " records x WHERE x.scope_id = s.id AND x.external_id = u.id LIMIT 1) r "
                     "WHERE s.environment_id = $1 AND s.connection_id = $2 AND s.model = $3 "
                     "AND r.deleted_at IS NULL",
                     4, params, &r);
    free(array);
    if (err)
        return err;
    err = payload_map(ring, r, 0, out);
    PQclear(r);
    return err;
}

/* ---- pages ---- */

/* A time stamp as PostgreSQL writes it in UTC ("2026-01-02 03:04:05.678901+00", the
 * fraction trimmed of zeros or absent) as JavaScript writes it ("2026-01-02T03:04:05.678Z"),
 * or with microseconds ("...05.678901Z"), into out; returns its length, 0 when pg is not of
 * that form. Text in, text out: no date arithmetic on a path that runs four times a record
 * (the page's transaction sets TimeZone to UTC). */
static size_t iso_from_pg(const char *pg, bool micro, char out[40])
{
    size_t n = strlen(pg);
    if (n < 22 || pg[10] != ' ' || pg[4] != '-' || pg[13] != ':')
        return 0;
    memcpy(out, pg, 19);
    out[10] = 'T';
    size_t k = 19, digits = micro ? 6 : 3;
    out[k++] = '.';
    const char *f = pg + 19;
    if (*f == '.')
        f++;
    else
        f = "";
    for (size_t i = 0; i < digits; i++)
        out[k++] = *f >= '0' && *f <= '9' ? *f++ : '0';
    out[k++] = 'Z';
    out[k] = '\0';
    return k;
}

/* ,"name":"<time>" or ,"name":null */
static jn_err_t put_time(jn_buf_t *out, const char *name, const PGresult *r, int row, int col,
                         bool micro)
{
    char text[80];
    size_t n = (size_t)snprintf(text, sizeof text, ",\"%s\":", name);
    if (PQgetisnull(r, row, col)) {
        memcpy(text + n, "null", 4);
        n += 4;
    } else {
        text[n++] = '"';
        size_t k = iso_from_pg(PQgetvalue(r, row, col), micro, text + n);
        if (!k)
            return JN_ERR_INTERNAL;
        n += k;
        text[n++] = '"';
    }
    return jn_buf_append(out, text, n);
}

/* $1 scope, $2 after seq, $3 limit + 1, $4 actions ("char"[] or NULL), $5 modified after
 * (unix seconds or NULL), $6 page byte budget; with ids, $7 the ids (text[]). Rows come in
 * seq order; the last column says whether the row's payload is within the page's budget.
 * SOURCE ends in a WHERE clause's first conditions. */
// clang-format off
#define PAGE_WHERE                                                                                 \
    " r.seq > greatest($2::bigint, CASE WHEN $5::double precision IS NULL THEN 0 "                 \
    " ELSE records_seq_at($1, to_timestamp($5::double precision)) - 1 END)"                        \
    " AND ($4::\"char\"[] IS NULL OR r.last_action = ANY ($4::\"char\"[]))"                        \
    " AND ($5::double precision IS NULL OR r.updated_at >= to_timestamp($5::double precision))"
/* When a page of the scope's longest payload fits the budget (checked in the statement's
 * snapshot: max_payload grows in the transaction that stores the payload), every row is
 * within it; otherwise the statement returns nothing and the page is read by PAGE_SQL. */
#define PAGE_FITS_SQL(SOURCE)                                                                      \
    "SELECT external_id, seq, payload, sealed, last_action, first_seen_at, updated_at, "           \
    "deleted_at, pruned_at, true FROM " SOURCE PAGE_WHERE                                          \
    " AND (SELECT s.max_payload::bigint * $3::bigint FROM record_scopes s WHERE s.id = $1) "        \
    " <= $6::bigint ORDER BY r.seq LIMIT $3::int"
/* Each row with the payload bytes of the rows before it: past the budget, payloads are left
 * out and the page ends. */
#define PAGE_SQL(SOURCE)                                                                           \
    "SELECT external_id, seq, CASE WHEN before < $6::bigint THEN payload END, sealed, "            \
    "last_action, first_seen_at, updated_at, deleted_at, pruned_at, before < $6::bigint "          \
    "FROM (SELECT r.*, coalesce(sum(octet_length(r.payload)) OVER (ORDER BY r.seq ROWS "          \
    "UNBOUNDED PRECEDING), 0) - coalesce(octet_length(r.payload), 0) AS before FROM " SOURCE      \
    PAGE_WHERE " ORDER BY r.seq LIMIT $3::int) p ORDER BY seq"
#define PAGE_SCOPE "records r WHERE r.scope_id = $1 AND"
#define PAGE_IDS                                                                                   \
    "unnest($7::text[]) u(id), LATERAL (SELECT * FROM records x WHERE "                            \
    "x.scope_id = $1 AND x.external_id = u.id LIMIT 1) r WHERE"
// clang-format on

/* A range of the cursor index. */
static const char *const PAGE_SCOPE_SQL = PAGE_SQL(PAGE_SCOPE);
static const char *const PAGE_SCOPE_FITS_SQL = PAGE_FITS_SQL(PAGE_SCOPE);
/* A primary-key probe per id, then a sort of at most JN_RECORDS_MAX_PAGE rows. */
static const char *const PAGE_IDS_SQL = PAGE_SQL(PAGE_IDS);
static const char *const PAGE_IDS_FITS_SQL = PAGE_FITS_SQL(PAGE_IDS);

/* The "char"[] literal of a filter, or NULL for every action. */
static const char *filter_array(unsigned filter)
{
    static const char *const arrays[8] = {NULL,  "{A}",   "{U}",   "{A,U}",
                                          "{D}", "{A,D}", "{U,D}", NULL};
    return arrays[filter & 7];
}

/* Appends record row i of a page to out; cursor is the row's. */
static jn_err_t put_record(jn_buf_t *out, const jn_crypto_keyring_t *ring, long long scope,
                           const PGresult *r, int i, const char *cursor)
{
    const char *id = PQgetvalue(r, i, 0);
    jn_err_t err = JN_OK;
    if (PQgetisnull(r, i, 2)) { /* pruned: the id and the metadata */
        err = jn_buf_append_str(out, "{\"id\":");
        if (!err)
            err = put_json_string(out, id);
    } else {
        const char *stored = PQgetvalue(r, i, 2);
        bool sealed = PQgetvalue(r, i, 3)[0] == 't';
        char *plain = NULL;
        size_t n = (size_t)PQgetlength(r, i, 2);
        if (sealed)
            err = jn_records_open_payload(ring, scope, id, stored, true, &plain, &n);
        const char *text = sealed ? plain : stored;
        /* The canonical text is "{...}" with at least "id" inside: drop the brace. */
        if (!err)
            err = n >= 2 && text[n - 1] == '}' ? jn_buf_append(out, text, n - 1) : JN_ERR_INTERNAL;
        release_plain(plain, n);
    }
    if (!err)
        err = jn_buf_append_str(out, ",\"_nango_metadata\":{\"first_seen_at\":");
    if (!err) {
        char t[40];
        size_t n = iso_from_pg(PQgetvalue(r, i, 5), false, t);
        err = n ? jn_buf_append(out, "\"", 1) : JN_ERR_INTERNAL;
        if (!err)
            err = jn_buf_append(out, t, n);
        if (!err)
            err = jn_buf_append(out, "\"", 1);
    }
    if (!err)
        err = put_time(out, "last_modified_at", r, i, 6, true);
    if (!err) {
        char a = PQgetvalue(r, i, 4)[0];
        err = jn_buf_append_str(out, a == 'A'   ? ",\"last_action\":\"ADDED\""
                                     : a == 'U' ? ",\"last_action\":\"UPDATED\""
                                                : ",\"last_action\":\"DELETED\"");
    }
    if (!err)
        err = put_time(out, "deleted_at", r, i, 7, false);
    if (!err)
        err = put_time(out, "pruned_at", r, i, 8, false);
    if (!err)
        err = jn_buf_append_str(out, ",\"cursor\":\"");
    if (!err)
        err = jn_buf_append_str(out, cursor);
    if (!err)
        err = jn_buf_append(out, "\"}}", 3);
    return err;
}

jn_err_t jn_records_list_json(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                              const jn_records_query_t *q, char **body, size_t *body_len,
                              jn_field_error_t *e)
{
    *body = NULL;
    *body_len = 0;
    long long connection = 0, scope = 0, after = 0, max_payload = 0;
    jn_err_t err = find_scope(conn, env_id, q->provider_config_key, q->connection_id, q->model,
                              &connection, &scope, &max_payload);
    if (err)
        return err;
    if (q->cursor && (err = cursor_seq(q->cursor, scope, &after, e)))
        return err;
    jn_buf_t out;
    jn_buf_init(&out, (size_t)JN_RECORDS_PAGE_BYTES * 2 + 64L * 1024 * 1024);
    err = jn_buf_append_str(&out, "{\"records\":[");
    char last_cursor[64] = "";
    bool more = false;
    if (scope && !err) {
        char sc[24], from[24], lim[16], since[32], budget[24];
        snprintf(sc, sizeof sc, "%lld", scope);
        snprintf(from, sizeof from, "%lld", after);
        int limit = q->limit < 1                     ? 1
                    : q->limit > JN_RECORDS_MAX_PAGE ? JN_RECORDS_MAX_PAGE
                                                     : q->limit;
        snprintf(lim, sizeof lim, "%d", limit + 1);
        snprintf(since, sizeof since, "%lld", q->modified_after);
        snprintf(budget, sizeof budget, "%ld", JN_RECORDS_PAGE_BYTES);
        char *ids = q->ids ? jn_pg_text_array(q->ids, q->id_count) : NULL;
        const char *params[] = {
            sc,     from, lim, filter_array(q->filter), q->has_modified_after ? since : NULL,
            budget, ids};
        PGresult *r = NULL;
        /* Without ids the page is one range of the cursor index, never a sort; with ids,
         * their primary-key entries and a sort of at most JN_RECORDS_MAX_PAGE rows. */
        err = jn_pg_exec_script(
            conn, ids ? "BEGIN; SET LOCAL TimeZone TO 'UTC'; " JN_RECORDS_PLAN_SETTINGS
                      : "BEGIN; SET LOCAL TimeZone TO 'UTC'; " JN_RECORDS_PLAN_SETTINGS
                        "SET LOCAL enable_sort TO off");
        /* A page that surely fits its budget needs no running sum of payload lengths; the
         * statement checks it again, and returns nothing when a longer payload came. */
        bool fits = max_payload <= JN_RECORDS_PAGE_BYTES / (limit + 1);
        if (!err && fits) {
            err = jn_pg_exec(conn, ids ? PAGE_IDS_FITS_SQL : PAGE_SCOPE_FITS_SQL, ids ? 7 : 6,
                             params, &r);
            fits = !err && PQntuples(r) > 0;
            if (!err && !fits)
                PQclear(r);
        }
        if (!err && !fits)
            err = jn_pg_exec(conn, ids ? PAGE_IDS_SQL : PAGE_SCOPE_SQL, ids ? 7 : 6, params, &r);
        jn_pg_exec_script(conn, "COMMIT");
        free(ids);
        int rows = err ? 0 : PQntuples(r);
        size_t bytes = 0;
        for (int i = 0; i < rows; i++)
            bytes += (size_t)PQgetlength(r, i, 2) + 400;
        jn_buf_reserve(&out, bytes); /* one allocation for the page, not a doubling chain */
        for (int i = 0; i < rows && !err; i++) {
            if (i == limit || PQgetvalue(r, i, 9)[0] != 't') {
                more = true; /* the extra row, or the page's bytes are spent */
                break;
            }
            jn_records_cursor_encode(scope, strtoll(PQgetvalue(r, i, 1), NULL, 10), last_cursor);
            if (i)
                err = jn_buf_append(&out, ",", 1);
            if (!err)
                err = put_record(&out, ring, scope, r, i, last_cursor);
        }
        PQclear(r);
    }
    if (!err)
        err = more ? jn_buf_printf(&out, "],\"next_cursor\":\"%s\"}", last_cursor)
                   : jn_buf_append_str(&out, "],\"next_cursor\":null}");
    if (err) {
        jn_buf_cleanup(&out);
        return err;
    }
    *body = jn_buf_take(&out, body_len);
    return JN_OK;
}

jn_err_t jn_records_prune(PGconn *conn, long long env_id, const char *provider_config_key,
                          const char *connection_id, const char *model, const char *until_cursor,
                          int limit, long long *count, bool *has_more, jn_field_error_t *e)
{
    *count = 0;
    *has_more = false;
    long long connection = 0, scope = 0, until = 0;
    jn_err_t err = find_scope(conn, env_id, provider_config_key, connection_id, model, &connection,
                              &scope, NULL);
    if (err)
        return err;
    if ((err = cursor_seq(until_cursor, scope, &until, e)) || !scope)
        return err;
    char sc[24], upto[24], lim[16];
    snprintf(sc, sizeof sc, "%lld", scope);
    snprintf(upto, sizeof upto, "%lld", until);
    snprintf(lim, sizeof lim, "%d",
             limit < 1                     ? 1
             : limit > JN_RECORDS_MAX_PAGE ? JN_RECORDS_MAX_PAGE
                                           : limit);
    const char *params[] = {sc, upto, lim};
    PGresult *r = NULL;
    if ((err = jn_pg_exec_script(conn, "BEGIN; " JN_RECORDS_PLAN_SETTINGS
                                       "SET LOCAL enable_sort TO off")))
        return err;
    /* The scope's lock, as a writer takes it: writers reach rows by ctid, and a prune that
     * made new row versions under them would make them miss their rows. */
    err = jn_pg_exec_found(conn, "SELECT 1 FROM record_scopes WHERE id = $1 FOR UPDATE", 1, params);
    if (!err)
        err = jn_pg_exec(
            conn,
            "WITH p AS MATERIALIZED (SELECT ctid AS tid, seq FROM records WHERE scope_id = $1"
            "  AND seq <= $2::bigint AND pruned_at IS NULL ORDER BY seq LIMIT $3::int),"
            "done AS (UPDATE records r SET payload = NULL, sealed = false,"
            "  pruned_at = clock_timestamp() FROM p WHERE r.scope_id = $1"
            "  AND r.ctid = p.tid AND r.pruned_at IS NULL RETURNING 1) "
            "SELECT (SELECT count(*) FROM done), EXISTS (SELECT 1 FROM records WHERE scope_id = $1"
            " AND seq > coalesce((SELECT max(seq) FROM p), 0) AND seq <= $2::bigint"
            " AND pruned_at IS NULL)",
            3, params, &r);
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    *count = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *has_more = PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    return jn_pg_exec_script(conn, "COMMIT");
}
