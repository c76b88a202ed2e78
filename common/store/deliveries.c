/*
 * deliveries.c - the deliveries rows with their jobs: reading, finishing an attempt, the
 * dead-letter listing and replays (see the header).
 */
#include "store/deliveries.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "store/pg.h"

#define ISO(col)                                                                                   \
    "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '')"

/* Columns from jobs j joined with deliveries d (the failure time in unix microseconds is
 * the cursor's); the body follows them, when asked for. */
#define DELIVERY_COLUMNS                                                                           \
    "j.id::text, j.environment_id, d.type, d.url, d.provider_config_key, d.connection_id, "        \
    "j.state, j.attempts, j.max_attempts, coalesce(d.last_status, 0), d.last_error, "              \
    "d.replays, " ISO("d.created_at") ", " ISO("d.last_attempt_at") ", " ISO(                      \
        "j.finished_at") ", coalesce((extract(epoch FROM j.finished_at) * 1000000)::bigint, 0)"
#define BODY_COLUMN 16

void jn_delivery_cleanup(jn_delivery_t *d)
{
    free(d->url);
    free(d->body);
    free(d->provider_config_key);
    free(d->connection_id);
    free(d->last_error);
    memset(d, 0, sizeof *d);
}

static void from_row(const PGresult *r, int row, bool with_body, jn_delivery_t *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", PQgetvalue(r, row, 0));
    d->environment_id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
    snprintf(d->type, sizeof d->type, "%s", PQgetvalue(r, row, 2));
    d->url = jn_pg_dup(r, row, 3);
    d->provider_config_key = jn_pg_dup(r, row, 4);
    d->connection_id = jn_pg_dup(r, row, 5);
    static const char *const states[] = {"queued", "running", "succeeded", "failed", "cancelled"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(PQgetvalue(r, row, 6), states[i]) == 0)
            d->state = (jn_job_state_t)i;
    }
    d->attempts = (int)strtol(PQgetvalue(r, row, 7), NULL, 10);
    d->max_attempts = (int)strtol(PQgetvalue(r, row, 8), NULL, 10);
    d->last_status = (int)strtol(PQgetvalue(r, row, 9), NULL, 10);
    d->last_error = jn_pg_dup(r, row, 10);
    d->replays = (int)strtol(PQgetvalue(r, row, 11), NULL, 10);
    snprintf(d->created_at, sizeof d->created_at, "%s", PQgetvalue(r, row, 12));
    snprintf(d->last_attempt_at, sizeof d->last_attempt_at, "%s", PQgetvalue(r, row, 13));
    snprintf(d->finished_at, sizeof d->finished_at, "%s", PQgetvalue(r, row, 14));
    if (with_body) {
        d->body = jn_pg_dup(r, row, BODY_COLUMN);
        d->body_len = d->body ? (size_t)PQgetlength(r, row, BODY_COLUMN) : 0;
    }
}

jn_err_t jn_deliveries_get(PGconn *conn, long long env_id, const char *id, bool with_body,
                           jn_delivery_t *out)
{
    if (!jn_uuid_shaped(id, true))
        return JN_ERR_NOT_FOUND;
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {id, env, with_body ? "t" : "f"};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT " DELIVERY_COLUMNS ", CASE WHEN $3::bool THEN d.body END "
                              "FROM jobs j JOIN deliveries d ON d.job_id = j.id "
                              "WHERE j.id = $1::uuid AND ($2::bigint = 0 OR j.environment_id = $2)",
                              3, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    from_row(r, 0, with_body, out);
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_deliveries_finish(PGconn *conn, const char *id, long long lease_token, bool ok,
                              int status, const char *error, bool retryable, int retry_delay_s,
                              bool *requeued)
{
    json_object *result = json_object_new_object();
    json_object_object_add(result, "status", json_object_new_int(status));
    if (error)
        json_object_object_add(result, "error", json_object_new_string(error));
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (!err)
        err = jn_jobs_finish(conn, id, lease_token,
                             ok ? JN_JOB_OUTCOME_SUCCEEDED : JN_JOB_OUTCOME_FAILED, result,
                             retryable, retry_delay_s, requeued);
    json_object_put(result);
    if (!err) {
        char st[16];
        snprintf(st, sizeof st, "%d", status);
        const char *params[] = {id, status ? st : NULL, error};
        err = jn_pg_exec(conn,
                         "UPDATE deliveries SET last_status = $2::int, last_error = $3, "
                         "last_attempt_at = clock_timestamp() WHERE job_id = $1::uuid",
                         3, params, NULL);
    }
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    return jn_pg_exec_script(conn, "COMMIT");
}

/* The WHERE of the dead letters of $1 matching $2 (type), $3/$4 (created bounds). */
#define DEAD_WHERE                                                                                 \
    "j.environment_id = $1 AND j.kind = 'delivery' AND j.state = 'failed' "                        \
    "AND ($2::text IS NULL OR d.type = $2) "                                                       \
    "AND ($3::bigint IS NULL OR d.created_at >= to_timestamp($3::bigint)) "                        \
    "AND ($4::bigint IS NULL OR d.created_at < to_timestamp($4::bigint)) "

/* Cursor: "<finished_at in unix microseconds>_<job id>" of the last row of a page. */
static bool parse_cursor(const char *cursor, char *us, size_t us_cap, char id[37])
{
    const char *sep = strchr(cursor, '_');
    if (!sep || sep == cursor || (size_t)(sep - cursor) >= us_cap || strlen(sep + 1) != 36 ||
        !jn_uuid_shaped(sep + 1, false))
        return false;
    for (const char *p = cursor; p < sep; p++) {
        if (*p < '0' || *p > '9')
            return false;
    }
    memcpy(us, cursor, (size_t)(sep - cursor));
    us[sep - cursor] = '\0';
    memcpy(id, sep + 1, 37);
    return true;
}

static void bounds(const jn_delivery_filter_t *f, char from[24], char to[24])
{
    snprintf(from, 24, "%lld", f->created_from);
    snprintf(to, 24, "%lld", f->created_to);
}

jn_err_t jn_deliveries_dead(PGconn *conn, long long env_id, const jn_delivery_filter_t *f,
                            int limit, const char *cursor, jn_delivery_t **list, size_t *count,
                            char next_cursor[96])
{
    *list = NULL;
    *count = 0;
    next_cursor[0] = '\0';
    char us[24] = "", after[37] = "";
    if (cursor && *cursor && !parse_cursor(cursor, us, sizeof us, after))
        return JN_ERR_INVALID;
    if (limit < 1 || limit > JN_DELIVERIES_PAGE_MAX)
        limit = JN_DELIVERIES_PAGE_MAX;
    char env[24], from[24], to[24], lim[16];
    snprintf(env, sizeof env, "%lld", env_id);
    bounds(f, from, to);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {env,
                            f->type,
                            f->created_from ? from : NULL,
                            f->created_to ? to : NULL,
                            us[0] ? us : NULL,
                            after[0] ? after : NULL,
                            lim};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(
        conn,
        "SELECT " DELIVERY_COLUMNS " FROM jobs j JOIN deliveries d ON d.job_id = j.id "
        "WHERE " DEAD_WHERE
        "AND ($5::bigint IS NULL OR ((extract(epoch FROM j.finished_at) * 1000000)::bigint, j.id) "
        "    < ($5::bigint, $6::uuid)) "
        "ORDER BY (extract(epoch FROM j.finished_at) * 1000000)::bigint DESC, j.id DESC "
        "LIMIT $7::int",
        7, params, &r);
    if (err)
        return err;
    int n = PQntuples(r);
    bool more = n > limit;
    if (more)
        n = limit;
    jn_delivery_t *out = calloc(n > 0 ? (size_t)n : 1, sizeof *out);
    if (!out)
        abort();
    for (int i = 0; i < n; i++)
        from_row(r, i, false, &out[i]);
    if (more)
        snprintf(next_cursor, 96, "%s_%s", PQgetvalue(r, n - 1, 15), PQgetvalue(r, n - 1, 0));
    PQclear(r);
    *list = out;
    *count = (size_t)n;
    return JN_OK;
}

jn_err_t jn_deliveries_replay(PGconn *conn, long long env_id, const char *id, int max_attempts,
                              jn_job_ref_t *ref)
{
    if (!jn_uuid_shaped(id, true))
        return JN_ERR_NOT_FOUND;
    char env[24], max[16];
    snprintf(env, sizeof env, "%lld", env_id);
    snprintf(max, sizeof max, "%d", max_attempts);
    const char *params[] = {env, id, max};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "WITH picked AS (SELECT j.id FROM jobs j WHERE j.environment_id = $1 "
                              " AND j.kind = 'delivery' AND j.id = $2::uuid AND j.state = 'failed' "
                              " FOR UPDATE), "
                              "again AS (UPDATE jobs j SET state = 'queued', attempts = 0, "
                              " max_attempts = $3::int, error = NULL, output = NULL, "
                              " retry_at = NULL, finished_at = NULL, lease_owner = NULL, "
                              " lease_until = NULL, sent_at = clock_timestamp(), "
                              " updated_at = clock_timestamp() FROM picked "
                              " WHERE j.id = picked.id RETURNING j.id), "
                              "counted AS (UPDATE deliveries d SET replays = replays + 1 "
                              " FROM again WHERE d.job_id = again.id RETURNING d.job_id) "
                              "SELECT id::text FROM again",
                              3, params, &r);
    if (err)
        return err;
    bool done = PQntuples(r) == 1;
    PQclear(r);
    if (done) {
        memset(ref, 0, sizeof *ref);
        snprintf(ref->id, sizeof ref->id, "%s", id);
        ref->environment_id = env_id;
        ref->kind = JN_JOB_DELIVERY;
        return JN_OK;
    }
    /* Nothing replayed: no such delivery here, or one that is not failed. */
    err = jn_pg_exec_found(conn,
                           "SELECT 1 FROM jobs WHERE environment_id = $1 AND kind = 'delivery' "
                           "AND id = $2::uuid",
                           2, params);
    return err == JN_OK ? JN_ERR_CONFLICT : err;
}

jn_err_t jn_deliveries_replay_matching(PGconn *conn, long long env_id,
                                       const jn_delivery_filter_t *f, int max_attempts,
                                       jn_job_ref_t **refs, size_t *count, bool *more)
{
    *refs = NULL;
    *count = 0;
    *more = false;
    char env[24], from[24], to[24], max[16], lim[16];
    snprintf(env, sizeof env, "%lld", env_id);
    bounds(f, from, to);
    snprintf(max, sizeof max, "%d", max_attempts);
    snprintf(lim, sizeof lim, "%d", JN_DELIVERIES_REPLAY_MAX);
    const char *params[] = {env, f->type, f->created_from ? from : NULL, f->created_to ? to : NULL,
                            max, lim};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(
        conn,
        "WITH picked AS (SELECT j.id FROM jobs j JOIN deliveries d ON d.job_id = j.id "
        " WHERE " DEAD_WHERE " ORDER BY j.finished_at, j.id LIMIT $6::int "
        " FOR UPDATE OF j SKIP LOCKED), "
        "again AS (UPDATE jobs j SET state = 'queued', attempts = 0, max_attempts = $5::int, "
        " error = NULL, output = NULL, retry_at = NULL, finished_at = NULL, lease_owner = NULL, "
        " lease_until = NULL, sent_at = clock_timestamp(), updated_at = clock_timestamp() "
        " FROM picked WHERE j.id = picked.id RETURNING j.id), "
        "counted AS (UPDATE deliveries d SET replays = replays + 1 FROM again "
        " WHERE d.job_id = again.id RETURNING d.job_id) "
        "SELECT id::text FROM again",
        6, params, &r);
    if (err)
        return err;
    int n = PQntuples(r);
    jn_job_ref_t *out = calloc(n > 0 ? (size_t)n : 1, sizeof *out);
    if (!out)
        abort();
    for (int i = 0; i < n; i++) {
        snprintf(out[i].id, sizeof out[i].id, "%s", PQgetvalue(r, i, 0));
        out[i].environment_id = env_id;
        out[i].kind = JN_JOB_DELIVERY;
    }
    PQclear(r);
    *refs = out;
    *count = (size_t)n;
    if (n == JN_DELIVERIES_REPLAY_MAX) {
        /* Matching ones beyond this call's share. */
        const char *p4[] = {env, f->type, f->created_from ? from : NULL, f->created_to ? to : NULL};
        *more = jn_pg_exec_found(conn,
                                 "SELECT 1 FROM jobs j JOIN deliveries d ON d.job_id = j.id "
                                 "WHERE " DEAD_WHERE "LIMIT 1",
                                 4, p4) == JN_OK;
    }
    return JN_OK;
}
