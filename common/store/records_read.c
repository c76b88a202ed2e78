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
                           const char *model, long long *connection, long long *scope)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, pck, cid, model};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "SELECT c.id, coalesce(s.id, 0) FROM connections c "
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

/* ---- pages ---- */

/* An instant given in microseconds since the epoch, as JavaScript writes it
 * ("2026-01-02T03:04:05.678Z"), or with microseconds ("...05.678901Z"). */
static void iso_micros(long long us, bool micro, char out[40])
{
    long long secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int frac = (int)(us - secs * 1000000); /* 0..999999 */
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    if (micro)
        snprintf(out, 40, "%.19s.%06dZ", date, frac % 1000000);
    else
        snprintf(out, 40, "%.19s.%03dZ", date, (frac / 1000) % 1000);
}

static jn_err_t put_time(jn_buf_t *out, const char *name, const PGresult *r, int row, int col,
                         bool micro)
{
    jn_err_t err = jn_buf_printf(out, "\"%s\":", name);
    if (err)
        return err;
    if (PQgetisnull(r, row, col))
        return jn_buf_append(out, "null", 4);
    char iso[40];
    iso_micros(strtoll(PQgetvalue(r, row, col), NULL, 10), micro, iso);
    return jn_buf_printf(out, "\"%s\"", iso);
}

#define US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"

/* $1 scope, $2 after seq, $3 limit + 1, $4 actions ("char"[] or NULL), $5 ids (text[] or
 * NULL), $6 modified after (unix seconds or NULL), $7 page byte budget. */
static const char *const PAGE_SQL =
    "SELECT external_id, seq, CASE WHEN before < $7::bigint THEN payload END, sealed,"
    " last_action, " US("first_seen_at") ", " US("updated_at") ", " US("deleted_at") ", " US(
        "pruned_at") ", before < $7::bigint "
                     "FROM (SELECT r.*, coalesce(sum(octet_length(r.payload)) OVER (ORDER BY "
                     "r.seq ROWS UNBOUNDED PRECEDING), 0) - coalesce(octet_length(r.payload), 0)"
                     " AS before FROM records r WHERE r.scope_id = $1"
                     " AND r.seq > greatest($2::bigint, CASE WHEN $6::double precision IS NULL"
                     "  THEN 0 ELSE records_seq_at($1, to_timestamp($6::double precision)) - 1 "
                     "END)"
                     " AND ($4::\"char\"[] IS NULL OR r.last_action = ANY ($4::\"char\"[]))"
                     " AND ($5::text[] IS NULL OR r.external_id = ANY ($5::text[]))"
                     " AND ($6::double precision IS NULL OR"
                     "  r.updated_at >= to_timestamp($6::double precision))"
                     " ORDER BY r.seq LIMIT $3::int) p ORDER BY seq";

/* The "char"[] literal of a filter, or NULL for every action. */
static const char *filter_array(unsigned filter)
{
    static const char *const arrays[8] = {NULL,  "{A}",   "{U}",   "{A,U}",
                                          "{D}", "{A,D}", "{U,D}", NULL};
    return arrays[filter & 7];
}

static const char *action_name(char a)
{
    return a == 'A' ? "ADDED" : a == 'U' ? "UPDATED" : "DELETED";
}

/* Appends record row i of a page to out. */
static jn_err_t put_record(jn_buf_t *out, const jn_crypto_keyring_t *ring, long long scope,
                           const PGresult *r, int i)
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
    char cursor[64];
    jn_records_cursor_encode(scope, strtoll(PQgetvalue(r, i, 1), NULL, 10), cursor);
    if (!err)
        err = jn_buf_append_str(out, ",\"_nango_metadata\":{");
    if (!err)
        err = put_time(out, "first_seen_at", r, i, 5, false);
    if (!err)
        err = jn_buf_append(out, ",", 1);
    if (!err)
        err = put_time(out, "last_modified_at", r, i, 6, true);
    if (!err)
        err = jn_buf_printf(out, ",\"last_action\":\"%s\",", action_name(PQgetvalue(r, i, 4)[0]));
    if (!err)
        err = put_time(out, "deleted_at", r, i, 7, false);
    if (!err)
        err = jn_buf_append(out, ",", 1);
    if (!err)
        err = put_time(out, "pruned_at", r, i, 8, false);
    if (!err)
        err = jn_buf_printf(out, ",\"cursor\":\"%s\"}}", cursor);
    return err;
}

jn_err_t jn_records_list_json(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                              const jn_records_query_t *q, char **body, size_t *body_len,
                              jn_field_error_t *e)
{
    *body = NULL;
    *body_len = 0;
    long long connection = 0, scope = 0, after = 0;
    jn_err_t err = find_scope(conn, env_id, q->provider_config_key, q->connection_id, q->model,
                              &connection, &scope);
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
            sc,    from, lim, filter_array(q->filter), ids, q->has_modified_after ? since : NULL,
            budget};
        PGresult *r = NULL;
        err = jn_pg_exec(conn, PAGE_SQL, 7, params, &r);
        free(ids);
        int rows = err ? 0 : PQntuples(r);
        for (int i = 0; i < rows && !err; i++) {
            if (i == limit || PQgetvalue(r, i, 9)[0] != 't') {
                more = true; /* the extra row, or the page's bytes are spent */
                break;
            }
            if (i)
                err = jn_buf_append(&out, ",", 1);
            if (!err)
                err = put_record(&out, ring, scope, r, i);
            jn_records_cursor_encode(scope, strtoll(PQgetvalue(r, i, 1), NULL, 10), last_cursor);
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
    jn_err_t err =
        find_scope(conn, env_id, provider_config_key, connection_id, model, &connection, &scope);
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
    err = jn_pg_exec(
        conn,
        "WITH done AS (UPDATE records r SET payload = NULL, sealed = false,"
        " pruned_at = clock_timestamp() WHERE r.scope_id = $1 AND r.external_id = ANY (ARRAY("
        "  SELECT external_id FROM records WHERE scope_id = $1 AND seq <= $2::bigint"
        "  AND pruned_at IS NULL ORDER BY seq LIMIT $3::int))"
        " AND r.seq <= $2::bigint AND r.pruned_at IS NULL RETURNING 1) "
        "SELECT (SELECT count(*) FROM done), EXISTS (SELECT 1 FROM records WHERE scope_id = $1"
        " AND seq <= $2::bigint AND pruned_at IS NULL"
        " AND external_id <> ALL (ARRAY(SELECT external_id FROM records WHERE scope_id = $1"
        "  AND seq <= $2::bigint AND pruned_at IS NULL ORDER BY seq LIMIT $3::int)))",
        3, params, &r);
    if (err)
        return err;
    *count = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *has_more = PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    return JN_OK;
}
