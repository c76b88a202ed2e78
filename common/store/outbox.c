/*
 * outbox.c - leases, reads and fenced deletes of the records outbox for relays (see the
 * header).
 *
 * The workload: a tick per relay every few seconds (a handful of single-row statements
 * over 64 shard rows), and per publishing cycle one read of the heads of the shards it
 * holds (an index range per shard) and one delete of what was published (primary-key
 * probes), so the outbox costs PostgreSQL two statements per cycle of up to tens of
 * thousands of changes.
 */
#include "store/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "store/pg.h"

/* "{a,b,…}" of the shards (or tokens) of leases, for a $n::smallint[] (bigint[]). */
static char *lease_array(const jn_outbox_lease_t *leases, int count, bool tokens)
{
    jn_buf_t b;
    jn_buf_init(&b, 64 * 24 + 3);
    jn_buf_append(&b, "{", 1);
    for (int i = 0; i < count; i++)
        jn_buf_printf(&b, "%s%lld", i ? "," : "", tokens ? leases[i].token : leases[i].shard);
    jn_buf_append(&b, "}", 1);
    return jn_buf_take(&b, NULL);
}

static int by_shard(const void *a, const void *b)
{
    const jn_outbox_lease_t *x = a, *y = b;
    return (x->shard > y->shard) - (x->shard < y->shard);
}

/* Replaces l's set with the (shard, token) rows of r, appended when append. */
static void take_rows(jn_outbox_leases_t *l, PGresult *r, bool append)
{
    if (!append)
        l->count = 0;
    for (int i = 0; i < PQntuples(r) && l->count < JN_OUTBOX_SHARDS; i++) {
        l->held[l->count].shard = (int)strtol(PQgetvalue(r, i, 0), NULL, 10);
        l->held[l->count].token = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        l->count++;
    }
    qsort(l->held, (size_t)l->count, sizeof l->held[0], by_shard);
}

static jn_err_t tick_body(PGconn *conn, const char *owner, const char *lease, bool may_release,
                          jn_outbox_leases_t *l)
{
    const char *me[] = {owner, lease};
    jn_err_t err = jn_pg_exec(conn,
                              "INSERT INTO record_relays (owner, seen_until) "
                              "VALUES ($1, now() + $2::int * interval '1 second') "
                              "ON CONFLICT (owner) DO UPDATE SET seen_until = EXCLUDED.seen_until",
                              2, me, NULL);
    if (!err)
        err = jn_pg_exec(conn,
                         "DELETE FROM record_relays WHERE seen_until < now() - interval '1 minute'",
                         0, NULL, NULL);
    PGresult *r = NULL;
    if (!err)
        err = jn_pg_exec(conn, "SELECT count(*) FROM record_relays WHERE seen_until > now()", 0,
                         NULL, &r);
    if (err)
        return err;
    l->relays = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (l->relays < 1)
        l->relays = 1;
    l->share = (JN_OUTBOX_SHARDS + l->relays - 1) / l->relays;

    /* Renew what is still ours: a shard whose token moved was taken over. */
    int before = l->count;
    char *shards = lease_array(l->held, l->count, false);
    char *tokens = lease_array(l->held, l->count, true);
    const char *renew[] = {owner, lease, shards, tokens};
    err = jn_pg_exec(conn,
                     "UPDATE record_outbox_shards SET lease_until = now() + $2::int * "
                     "interval '1 second' WHERE owner = $1 AND (shard, lease_token) IN "
                     "(SELECT * FROM unnest($3::smallint[], $4::bigint[])) "
                     "RETURNING shard, lease_token",
                     4, renew, &r);
    free(shards);
    free(tokens);
    if (err)
        return err;
    take_rows(l, r, false);
    PQclear(r);
    l->lost = before - l->count;

    /* Beyond the share: give back the highest shards. */
    if (may_release && l->count > l->share) {
        int excess = l->count - l->share;
        char *give = lease_array(l->held + l->share, excess, false);
        const char *rel[] = {owner, give};
        err = jn_pg_exec(conn,
                         "UPDATE record_outbox_shards SET owner = NULL, lease_until = NULL "
                         "WHERE owner = $1 AND shard = ANY ($2::smallint[])",
                         2, rel, NULL);
        free(give);
        if (err)
            return err;
        l->count = l->share;
        l->released = excess;
    }

    /* Below the share: take free shards and those whose lease expired. */
    if (l->count < l->share) {
        char want[16];
        snprintf(want, sizeof want, "%d", l->share - l->count);
        const char *take_params[] = {owner, lease, want};
        err = jn_pg_exec(conn,
                         "UPDATE record_outbox_shards s SET owner = $1, lease_until = now() + "
                         "$2::int * interval '1 second', lease_token = s.lease_token + 1 "
                         "FROM (SELECT shard FROM record_outbox_shards "
                         " WHERE owner IS NULL OR lease_until IS NULL OR lease_until < now() "
                         " ORDER BY shard LIMIT $3::int FOR UPDATE SKIP LOCKED) f "
                         "WHERE s.shard = f.shard RETURNING s.shard, s.lease_token",
                         3, take_params, &r);
        if (err)
            return err;
        l->acquired = PQntuples(r);
        take_rows(l, r, true);
        PQclear(r);
    }
    return JN_OK;
}

jn_err_t jn_outbox_tick(PGconn *conn, const char *owner, int lease_s, bool may_release,
                        jn_outbox_leases_t *l)
{
    l->acquired = l->released = l->lost = 0;
    char lease[16];
    snprintf(lease, sizeof lease, "%d", lease_s);
    jn_outbox_leases_t next = *l;
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (!err)
        err = tick_body(conn, owner, lease, may_release, &next);
    if (!err)
        err = jn_pg_exec_script(conn, "COMMIT");
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    *l = next;
    return JN_OK;
}

jn_err_t jn_outbox_leave(PGconn *conn, const char *owner, jn_outbox_leases_t *l)
{
    const char *params[] = {owner};
    jn_err_t err = jn_pg_exec(conn,
                              "WITH g AS (UPDATE record_outbox_shards SET owner = NULL, "
                              " lease_until = NULL WHERE owner = $1) "
                              "DELETE FROM record_relays WHERE owner = $1",
                              1, params, NULL);
    if (!err)
        l->count = 0;
    return err;
}

/* Per shard (unnest), the head rows in id order while the changes and stored bytes before
 * each stay under the budgets ($2, $3); $4 caps the rows looked at per shard. */
static const char *const READ_SQL =
    "SELECT x.shard, x.id, x.environment_id, x.environment_name, x.integration, x.provider, "
    " x.connection, x.model, x.scope_id, x.job_id, "
    " to_char(x.changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    " x.sealed, x.changes "
    "FROM unnest($1::smallint[]) AS l(shard), LATERAL ("
    " SELECT o.*, sum(o.change_count) OVER w - o.change_count AS changes_before, "
    "  sum(pg_column_size(o.changes)) OVER w - pg_column_size(o.changes) AS bytes_before "
    " FROM (SELECT * FROM record_outbox h WHERE h.shard = l.shard ORDER BY h.id LIMIT $4) o "
    " WINDOW w AS (ORDER BY o.id)) x "
    "WHERE x.changes_before < $2 AND x.bytes_before < $3 "
    "ORDER BY x.shard, x.id";

jn_err_t jn_outbox_read(PGconn *conn, const jn_outbox_lease_t *leases, int count, int max_changes,
                        long max_bytes, jn_outbox_batch_t *out)
{
    memset(out, 0, sizeof *out);
    if (count == 0)
        return JN_OK;
    char *shards = lease_array(leases, count, false);
    char changes[24], bytes[24], rows[24];
    snprintf(changes, sizeof changes, "%d", max_changes < 1 ? 1 : max_changes);
    snprintf(bytes, sizeof bytes, "%ld", max_bytes < 1 ? 1 : max_bytes);
    /* a row holds at least one change: more rows than changes are never wanted */
    snprintf(rows, sizeof rows, "%d",
             max_changes < 1      ? 1
             : max_changes > 1000 ? 1000
                                  : max_changes);
    const char *params[] = {shards, changes, bytes, rows};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, READ_SQL, 4, params, &r);
    free(shards);
    if (err)
        return err;
    int n = PQntuples(r);
    out->result = r;
    out->count = n;
    out->rows = calloc(n ? (size_t)n : 1, sizeof *out->rows);
    out->shards = calloc(n ? (size_t)n : 1, sizeof *out->shards);
    if (!out->rows || !out->shards)
        abort();
    for (int i = 0; i < n; i++) {
        jn_outbox_row_t *row = &out->rows[i];
        out->shards[i] = (int)strtol(PQgetvalue(r, i, 0), NULL, 10);
        row->id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        row->environment_id = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        row->environment = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3);
        row->integration = PQgetvalue(r, i, 4);
        row->provider = PQgetisnull(r, i, 5) ? NULL : PQgetvalue(r, i, 5);
        row->connection = PQgetvalue(r, i, 6);
        row->model = PQgetvalue(r, i, 7);
        row->scope_id = strtoll(PQgetvalue(r, i, 8), NULL, 10);
        row->job_id = PQgetisnull(r, i, 9) ? NULL : PQgetvalue(r, i, 9);
        row->changed_at = PQgetvalue(r, i, 10);
        row->sealed = PQgetvalue(r, i, 11)[0] == 't';
        row->changes = PQgetvalue(r, i, 12);
        row->changes_len = (size_t)PQgetlength(r, i, 12);
    }
    return JN_OK;
}

void jn_outbox_batch_free(jn_outbox_batch_t *b)
{
    PQclear(b->result);
    free(b->rows);
    free(b->shards);
    memset(b, 0, sizeof *b);
}

jn_err_t jn_outbox_delete(PGconn *conn, const char *owner, const jn_outbox_lease_t *leases,
                          int count, const int *shards, const long long *ids, int n,
                          long long *deleted)
{
    *deleted = 0;
    if (n == 0)
        return JN_OK;
    jn_buf_t s, d;
    jn_buf_init(&s, (size_t)n * 8 + 3);
    jn_buf_init(&d, (size_t)n * 24 + 3);
    jn_buf_append(&s, "{", 1);
    jn_buf_append(&d, "{", 1);
    for (int i = 0; i < n; i++) {
        jn_buf_printf(&s, "%s%d", i ? "," : "", shards[i]);
        jn_buf_printf(&d, "%s%lld", i ? "," : "", ids[i]);
    }
    jn_buf_append(&s, "}", 1);
    jn_buf_append(&d, "}", 1);
    char *lease_shards = lease_array(leases, count, false);
    char *lease_tokens = lease_array(leases, count, true);
    const char *params[] = {owner, lease_shards, lease_tokens, s.data, d.data};
    PGresult *r = NULL;
    /* The fence: the shard rows still carrying our tokens, locked FOR SHARE so that a
     * relay taking one over (an UPDATE) waits for this delete or makes it find nothing. */
    jn_err_t err =
        jn_pg_exec(conn,
                   "WITH fence AS MATERIALIZED (SELECT shard FROM record_outbox_shards "
                   " WHERE owner = $1 AND (shard, lease_token) IN "
                   " (SELECT * FROM unnest($2::smallint[], $3::bigint[])) FOR SHARE), "
                   "gone AS (DELETE FROM record_outbox o USING unnest($4::smallint[], "
                   " $5::bigint[]) AS d(shard, id) WHERE o.shard = d.shard AND o.id = d.id "
                   " AND d.shard IN (SELECT shard FROM fence) RETURNING 1) "
                   "SELECT count(*) FROM gone",
                   5, params, &r);
    free(lease_shards);
    free(lease_tokens);
    jn_buf_cleanup(&s);
    jn_buf_cleanup(&d);
    if (err)
        return err;
    *deleted = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_outbox_backlog(PGconn *conn, const jn_outbox_lease_t *leases, int count,
                           jn_outbox_backlog_t *out)
{
    memset(out, 0, sizeof *out);
    if (count == 0)
        return JN_OK;
    char *shards = lease_array(leases, count, false);
    const char *params[] = {shards};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT count(*), coalesce(sum(change_count), 0), "
                              " coalesce(extract(epoch FROM now() - min(created_at)), 0) "
                              "FROM record_outbox WHERE shard = ANY ($1::smallint[])",
                              1, params, &r);
    free(shards);
    if (err)
        return err;
    out->rows = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    out->changes = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    out->oldest_s = strtod(PQgetvalue(r, 0, 2), NULL);
    if (out->oldest_s < 0)
        out->oldest_s = 0;
    PQclear(r);
    return JN_OK;
}
