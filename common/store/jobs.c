/*
 * jobs.c - the jobs table's statements. Each change is one statement (or one statement and
 * its NOTIFY in one transaction), fenced by lease_token where a run writes.
 */
#include "store/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "store/pg.h"

#define ISO(col)                                                                                   \
    "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '')"

/* The connection's names are read with the row (jobs.connection_id qualified: inside the
 * subselects a bare connection_id would be the connections table's text column). */
#define JOB_COLUMNS                                                                                \
    "id::text, environment_id, kind, coalesce(connection_id, 0), function_name, state, "           \
    "attempts, max_attempts, lease_token, input::text, output::text, error::text, " ISO(           \
        "created_at") ", " ISO("started_at") ", " ISO("finished_at") ", async, "                   \
                                                                     "(SELECT i.unique_key FROM "  \
                                                                     "connections c JOIN "         \
                                                                     "integrations i ON i.id = "   \
                                                                     "c.integration_id"            \
                                                                     " WHERE c.id = "              \
                                                                     "jobs.connection_id), "       \
                                                                     "(SELECT c.connection_id "    \
                                                                     "FROM connections c WHERE "   \
                                                                     "c.id = jobs.connection_id)"

static const char *const kind_names[JN_JOB_KINDS] = {"action", "sync", "webhook", "delivery"};
static const char *const state_names[] = {"queued", "running", "succeeded", "failed", "cancelled"};

const char *jn_job_kind_name(jn_job_kind_t kind)
{
    return kind_names[kind];
}

jn_err_t jn_job_kind_parse(const char *name, jn_job_kind_t *out)
{
    for (int i = 0; i < JN_JOB_KINDS; i++) {
        if (name && strcmp(name, kind_names[i]) == 0) {
            *out = (jn_job_kind_t)i;
            return JN_OK;
        }
    }
    return JN_ERR_INVALID;
}

const char *jn_job_state_name(jn_job_state_t state)
{
    return state_names[state];
}

void jn_job_cleanup(jn_job_t *job)
{
    free(job->function_name);
    free(job->integration_key);
    free(job->connection_key);
    json_object_put(job->input);
    json_object_put(job->output);
    json_object_put(job->error);
    memset(job, 0, sizeof *job);
}

static json_object *json_at(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return json_tokener_parse(PQgetvalue(r, row, col));
}

static void from_row(const PGresult *r, int row, jn_job_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, row, 0));
    out->environment_id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
    jn_job_kind_parse(PQgetvalue(r, row, 2), &out->kind);
    out->connection_id = strtoll(PQgetvalue(r, row, 3), NULL, 10);
    out->function_name = jn_pg_dup(r, row, 4);
    const char *state = PQgetvalue(r, row, 5);
    for (int i = 0; i < 5; i++) {
        if (strcmp(state, state_names[i]) == 0)
            out->state = (jn_job_state_t)i;
    }
    out->attempts = (int)strtol(PQgetvalue(r, row, 6), NULL, 10);
    out->max_attempts = (int)strtol(PQgetvalue(r, row, 7), NULL, 10);
    out->lease_token = strtoll(PQgetvalue(r, row, 8), NULL, 10);
    out->input = json_at(r, row, 9);
    out->output = json_at(r, row, 10);
    out->error = json_at(r, row, 11);
    snprintf(out->created_at, sizeof out->created_at, "%s", PQgetvalue(r, row, 12));
    snprintf(out->started_at, sizeof out->started_at, "%s", PQgetvalue(r, row, 13));
    snprintf(out->finished_at, sizeof out->finished_at, "%s", PQgetvalue(r, row, 14));
    out->async = PQgetvalue(r, row, 15)[0] == 't';
    out->integration_key = jn_pg_dup(r, row, 16);
    out->connection_key = jn_pg_dup(r, row, 17);
}

static const char *json_text(json_object *o)
{
    return o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
}

jn_err_t jn_jobs_create(PGconn *conn, const jn_job_new_t *in, char id_out[37])
{
    jn_crypto_uuid4(id_out);
    char env[24], cid[24], max[8];
    snprintf(env, sizeof env, "%lld", in->environment_id);
    snprintf(cid, sizeof cid, "%lld", in->connection_id);
    int m = in->max_attempts < 1 ? 1 : in->max_attempts > 10 ? 10 : in->max_attempts;
    snprintf(max, sizeof max, "%d", m);
    const char *params[] = {id_out,
                            env,
                            jn_job_kind_name(in->kind),
                            in->connection_id ? cid : NULL,
                            in->function_name,
                            json_text(in->input),
                            max,
                            in->async ? "t" : "f"};
    return jn_pg_exec(conn,
                      "INSERT INTO jobs (id, environment_id, kind, connection_id, function_name, "
                      "input, max_attempts, async) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)",
                      8, params, NULL);
}

/* Takeovers allowed beyond max_attempts, for runs cut short by a dying worker. */
#define CRASH_BUDGET "2"

jn_err_t jn_jobs_claim(PGconn *conn, const char *id, const char *owner, int lease_s, jn_job_t *out)
{
    char lease[16];
    snprintf(lease, sizeof lease, "%d", lease_s);
    const char *params[] = {id, owner, lease};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "UPDATE jobs SET state = 'running', attempts = attempts + 1, "
                   "lease_token = lease_token + 1, lease_owner = $2, "
                   "lease_until = clock_timestamp() + make_interval(secs => $3::int), "
                   "started_at = coalesce(started_at, clock_timestamp()), retry_at = NULL, "
                   "updated_at = clock_timestamp() "
                   "WHERE id = $1::uuid AND (state = 'queued' OR "
                   "(state = 'running' AND lease_until < clock_timestamp() AND "
                   "attempts < max_attempts + " CRASH_BUDGET ")) "
                   "RETURNING " JOB_COLUMNS,
                   3, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 1) {
        from_row(r, 0, out);
        PQclear(r);
        return JN_OK;
    }
    PQclear(r);
    /* A job whose workers keep dying while they run it (a script that brings the process
     * down) is failed rather than handed on forever. */
    static const char *const abandoned =
        "{\"status\":500,\"body\":{\"error\":{\"code\":\"action_script_failure\","
        "\"message\":\"the job was abandoned: the workers running it stopped "
        "unexpectedly " CRASH_BUDGET " times\",\"payload\":{\"type\":\"worker_lost\"}}}}";
    const char *give_up[] = {id, abandoned};
    err = jn_pg_exec(conn,
                     "WITH gave_up AS (UPDATE jobs SET state = 'failed', error = $2::jsonb, "
                     " finished_at = clock_timestamp(), lease_owner = NULL, lease_until = NULL,"
                     " updated_at = clock_timestamp()"
                     " WHERE id = $1::uuid AND state = 'running' AND lease_until < "
                     " clock_timestamp() AND attempts >= max_attempts + " CRASH_BUDGET
                     " RETURNING id),"
                     " forget AS (DELETE FROM job_calls WHERE job_id IN (SELECT id FROM gave_up))"
                     "SELECT pg_notify('" JN_JOBS_CHANNEL "', $1::text) FROM gave_up",
                     2, give_up, NULL);
    if (err)
        return err;
    /* Not claimable: does it exist at all? */
    r = NULL;
    err = jn_pg_exec(conn, "SELECT 1 FROM jobs WHERE id = $1::uuid", 1, params, &r);
    if (err)
        return err;
    bool exists = PQntuples(r) == 1;
    PQclear(r);
    return exists ? JN_ERR_CONFLICT : JN_ERR_NOT_FOUND;
}

jn_err_t jn_jobs_heartbeat(PGconn *conn, const char *id, long long lease_token, int lease_s)
{
    char token[24], lease[16];
    snprintf(token, sizeof token, "%lld", lease_token);
    snprintf(lease, sizeof lease, "%d", lease_s);
    const char *params[] = {id, token, lease};
    jn_err_t err = jn_pg_exec_found(
        conn,
        "UPDATE jobs SET lease_until = clock_timestamp() + make_interval(secs => $3::int), "
        "updated_at = clock_timestamp() "
        "WHERE id = $1::uuid AND lease_token = $2 AND state = 'running' RETURNING 1",
        3, params);
    return err == JN_ERR_NOT_FOUND ? JN_ERR_CONFLICT : err;
}

jn_err_t jn_jobs_finish(PGconn *conn, const char *id, long long lease_token,
                        jn_job_outcome_t outcome, json_object *result, bool retryable,
                        int retry_delay_s, bool *requeued)
{
    char token[24], delay[16];
    snprintf(token, sizeof token, "%lld", lease_token);
    snprintf(delay, sizeof delay, "%d", retry_delay_s < 0 ? 0 : retry_delay_s);
    const char *params[] = {id,
                            token,
                            outcome == JN_JOB_OUTCOME_SUCCEEDED ? "t" : "f",
                            json_text(result),
                            retryable ? "t" : "f",
                            delay};
    PGresult *r = NULL;
    /* One statement: the outcome, the journal's end, and the notice that goes out when it
     * commits. */
    jn_err_t err = jn_pg_exec(
        conn,
        "WITH done AS ("
        " UPDATE jobs SET"
        "  state = CASE WHEN $3::bool THEN 'succeeded'"
        "               WHEN $5::bool AND attempts < max_attempts THEN 'queued'"
        "               ELSE 'failed' END,"
        "  output = CASE WHEN $3::bool THEN $4::jsonb END,"
        "  error = CASE WHEN $3::bool THEN NULL ELSE $4::jsonb END,"
        "  retry_at = CASE WHEN NOT $3::bool AND $5::bool AND attempts < max_attempts"
        "                  THEN clock_timestamp() + make_interval(secs => $6::int) END,"
        "  finished_at = CASE WHEN $3::bool OR NOT ($5::bool AND attempts < max_attempts)"
        "                     THEN clock_timestamp() END,"
        "  lease_owner = NULL, lease_until = NULL, updated_at = clock_timestamp()"
        " WHERE id = $1::uuid AND lease_token = $2 AND state = 'running'"
        " RETURNING id, state),"
        /* The attempt is over: its call journal (job_calls.h) must not answer a retry. */
        " forget AS (DELETE FROM job_calls WHERE job_id IN (SELECT id FROM done))"
        "SELECT state, pg_notify('" JN_JOBS_CHANNEL "', $1::text) FROM done",
        6, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_CONFLICT;
    }
    if (requeued)
        *requeued = strcmp(PQgetvalue(r, 0, 0), "queued") == 0;
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_jobs_release(PGconn *conn, const char *id, long long lease_token)
{
    char token[24];
    snprintf(token, sizeof token, "%lld", lease_token);
    const char *params[] = {id, token};
    jn_err_t err = jn_pg_exec_found(
        conn,
        "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), "
        "lease_owner = NULL, lease_until = NULL, updated_at = clock_timestamp() "
        "WHERE id = $1::uuid AND lease_token = $2 AND state = 'running' RETURNING 1",
        2, params);
    return err == JN_ERR_NOT_FOUND ? JN_ERR_CONFLICT : err;
}

jn_err_t jn_jobs_cancel_queued(PGconn *conn, const char *id)
{
    const char *params[] = {id};
    jn_err_t err =
        jn_pg_exec_found(conn,
                         "WITH done AS ("
                         " UPDATE jobs SET state = 'cancelled', finished_at = clock_timestamp(),"
                         "  updated_at = clock_timestamp() WHERE id = $1::uuid AND state = 'queued'"
                         " RETURNING 1)"
                         "SELECT pg_notify('" JN_JOBS_CHANNEL "', $1::text) FROM done",
                         1, params);
    if (err != JN_ERR_NOT_FOUND)
        return err;
    err = jn_pg_exec_found(conn, "SELECT 1 FROM jobs WHERE id = $1::uuid", 1, params);
    return err == JN_OK ? JN_ERR_CONFLICT : err;
}

jn_err_t jn_jobs_get(PGconn *conn, long long env_id, const char *id, jn_job_t *out)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {id, env};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1::uuid "
                              "AND ($2::bigint = 0 OR environment_id = $2::bigint)",
                              2, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    from_row(r, 0, out);
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_jobs_due_for_send(PGconn *conn, int limit, int min_age_s, jn_job_ref_t **list,
                              size_t *count)
{
    *list = NULL;
    *count = 0;
    char lim[16], age[16];
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(age, sizeof age, "%d", min_age_s);
    const char *params[] = {lim, age};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(
        conn,
        "WITH due AS ("
        " SELECT id FROM jobs"
        " WHERE (state = 'queued' AND retry_at <= clock_timestamp())"
        "    OR (sent_at < clock_timestamp() - make_interval(secs => $2::int)"
        "        AND ((state = 'queued' AND (retry_at IS NULL OR retry_at <= clock_timestamp()))"
        "          OR (state = 'running' AND lease_until < clock_timestamp())))"
        " ORDER BY created_at LIMIT $1::int FOR UPDATE SKIP LOCKED)"
        "UPDATE jobs j SET sent_at = clock_timestamp(), retry_at = NULL FROM due "
        "WHERE j.id = due.id "
        "RETURNING j.id::text, j.environment_id, j.kind, coalesce(j.connection_id, 0)",
        2, params, &r);
    if (err)
        return err;
    int n = PQntuples(r);
    jn_job_ref_t *out = calloc(n > 0 ? (size_t)n : 1, sizeof *out);
    if (!out)
        abort();
    for (int i = 0; i < n; i++) {
        snprintf(out[i].id, sizeof out[i].id, "%s", PQgetvalue(r, i, 0));
        out[i].environment_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        jn_job_kind_parse(PQgetvalue(r, i, 2), &out[i].kind);
        out[i].connection_id = strtoll(PQgetvalue(r, i, 3), NULL, 10);
    }
    PQclear(r);
    *list = out;
    *count = (size_t)n;
    return JN_OK;
}
