/*
 * sync_runs.c - sync runs: the scheduler firing due syncs, and the worker's side of a run
 * (begin, checkpoints, success, failure), every write of a run fenced by its job's lease.
 *
 * The fence: a run's statement locks its job row FOR SHARE where the row still holds the
 * run's lease token and is running. A new claim (which bumps the token) or a cancel
 * (which ends the job) waits for that statement's transaction, and a write that comes
 * after them finds no row: nothing of a stale worker can land after its successor took
 * over.
 */
#include "store/syncs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

#define ISO(col)                                                                                   \
    "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '')"

/* $1 job, $2 lease token, $3 environment: the run's job, still ours. */
#define FENCE                                                                                      \
    "fence AS (SELECT j.id FROM jobs j WHERE j.id = $1::uuid AND j.lease_token = $2 "              \
    " AND j.state = 'running' AND j.environment_id = $3 FOR SHARE)"

/* ---- the scheduler ---- */

/* Due syncs, locked (another scheduler skips them). A sync is busy while its last run's
 * job is queued or running; a finished, cancelled or vanished job frees it, so no sync
 * stays "running" forever. A busy sync skips the slot; its pending request waits for the
 * run's end. The next slot is the first after now, so a sync overdue by many slots (the
 * schedulers were down) fires once, not once per missed slot. */
static const char *const FIRE_SQL =
    "WITH due AS MATERIALIZED ("
    " SELECT s.id, s.environment_id, s.connection_id, s.name, s.variant, s.state,"
    "  s.requested_mode, s.next_due_at, coalesce(s.frequency_override_s, s.frequency_s) AS freq,"
    "  EXISTS (SELECT 1 FROM jobs j WHERE j.id = s.current_job_id"
    "   AND j.state IN ('queued', 'running')) AS busy"
    " FROM syncs s WHERE s.next_due_at <= now() ORDER BY s.next_due_at LIMIT $1::int"
    " FOR UPDATE OF s SKIP LOCKED),"
    "fire AS MATERIALIZED ("
    " SELECT due.*, gen_random_uuid() AS job_id,"
    "  coalesce(requested_mode, 'incremental') AS mode FROM due WHERE NOT busy),"
    "ins AS (INSERT INTO jobs (id, environment_id, kind, connection_id, function_name, input,"
    " max_attempts) SELECT job_id, environment_id, 'sync', connection_id, name,"
    " jsonb_build_object('sync_id', id, 'variant', variant, 'mode', mode,"
    "  'reason', CASE WHEN requested_mode IS NOT NULL THEN 'request'"
    "   WHEN next_due_at < now() - make_interval(secs => freq) THEN 'catch_up'"
    "   ELSE 'schedule' END,"
    "  'slot', CASE WHEN requested_mode IS NULL THEN to_char(next_due_at AT TIME ZONE 'UTC',"
    "   'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END), 1 FROM fire),"
    "upd AS (UPDATE syncs s SET"
    " next_due_at = CASE WHEN s.state = 'running' THEN sync_next_slot(s.id, due.freq, now()) END,"
    " current_job_id = coalesce(f.job_id, s.current_job_id),"
    " requested_mode = CASE WHEN f.job_id IS NULL THEN s.requested_mode END,"
    " skipped_slots = s.skipped_slots + CASE WHEN f.job_id IS NULL THEN 1 ELSE 0 END,"
    " updated_at = now()"
    " FROM due LEFT JOIN fire f ON f.id = due.id WHERE s.id = due.id) "
    "SELECT job_id::text, environment_id, connection_id, NULL FROM fire "
    "UNION ALL SELECT NULL, 0, 0, count(*) FROM due WHERE busy";

jn_err_t jn_syncs_fire_due(PGconn *conn, int limit, jn_job_ref_t **jobs, size_t *count,
                           size_t *skipped)
{
    *jobs = NULL;
    *count = 0;
    *skipped = 0;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit < 1 ? 1 : limit);
    const char *params[] = {lim};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, FIRE_SQL, 1, params, &r);
    if (err)
        return err;
    int rows = PQntuples(r);
    jn_job_ref_t *out = calloc(rows > 0 ? (size_t)rows : 1, sizeof *out);
    if (!out)
        abort();
    size_t n = 0;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(r, i, 0)) {
            *skipped = (size_t)strtoll(PQgetvalue(r, i, 3), NULL, 10);
            continue;
        }
        jn_job_ref_t *j = &out[n++];
        snprintf(j->id, sizeof j->id, "%s", PQgetvalue(r, i, 0));
        j->environment_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        j->kind = JN_JOB_SYNC;
        j->connection_id = strtoll(PQgetvalue(r, i, 2), NULL, 10);
    }
    PQclear(r);
    *jobs = out;
    *count = n;
    return JN_OK;
}

/* ---- the worker's side ---- */

void jn_sync_run_cleanup(jn_sync_run_t *run)
{
    for (size_t i = 0; i < run->model_count; i++)
        free(run->models[i]);
    free(run->models);
    json_object_put(run->checkpoint);
    memset(run, 0, sizeof *run);
}

/* Parses a text[] value ("{a,b}" or "{\"a b\",c}") into a new array of new strings. */
static void parse_text_array(const char *text, char ***out, size_t *count)
{
    size_t cap = 4, n = 0;
    char **items = malloc(cap * sizeof *items);
    if (!items)
        abort();
    const char *p = text;
    if (*p == '{')
        p++;
    while (*p && *p != '}') {
        char item[1024];
        size_t k = 0;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (k + 1 < sizeof item)
                    item[k++] = *p;
            }
            if (*p == '"')
                p++;
        } else {
            for (; *p && *p != ',' && *p != '}'; p++) {
                if (k + 1 < sizeof item)
                    item[k++] = *p;
            }
        }
        item[k] = '\0';
        if (n == cap) {
            cap *= 2;
            char **grown = realloc(items, cap * sizeof *items);
            if (!grown)
                abort();
            items = grown;
        }
        items[n] = strdup(item);
        if (!items[n])
            abort();
        n++;
        if (*p == ',')
            p++;
    }
    *out = items;
    *count = n;
}

static jn_err_t parse_mode(const char *text, jn_sync_mode_t *mode)
{
    if (strcmp(text, "incremental") == 0)
        *mode = JN_SYNC_RUN_INCREMENTAL;
    else if (strcmp(text, "full") == 0)
        *mode = JN_SYNC_RUN_FULL;
    else if (strcmp(text, "full_empty") == 0)
        *mode = JN_SYNC_RUN_FULL_EMPTY;
    else
        return JN_ERR_INVALID;
    return JN_OK;
}

jn_err_t jn_syncs_run_begin(PGconn *conn, long long env_id, const char *job_id,
                            long long lease_token, jn_sync_run_t *out)
{
    memset(out, 0, sizeof *out);
    char token[24], env[24];
    snprintf(token, sizeof token, "%lld", lease_token);
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {job_id, token, env};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT 1 FROM jobs WHERE id = $1::uuid AND environment_id = $2 "
                              "AND kind = 'sync' AND input ? 'sync_id'",
                              2, (const char *const[]){job_id, env}, &r);
    if (err)
        return err;
    bool exists = PQntuples(r) == 1;
    PQclear(r);
    if (!exists)
        return JN_ERR_NOT_FOUND;
    if ((err = jn_pg_exec_script(conn, "BEGIN")))
        return err;
    /* One statement: the fence, the sync locked and still running this job, the run's
     * generation, the reset a mode asks for, and everything the run needs. */
    r = NULL;
    err = jn_pg_exec(
        conn,
        "WITH " FENCE ","
        "s AS (SELECT s.id, j.input->>'mode' AS mode FROM syncs s, jobs j, fence"
        " WHERE j.id = fence.id AND s.id = (j.input->>'sync_id')::bigint"
        " AND s.current_job_id = j.id AND s.environment_id = $3 FOR UPDATE OF s),"
        "g AS (SELECT nextval('sync_generations') AS gen),"
        "upd AS (UPDATE syncs t SET current_generation = g.gen,"
        " pass_generation = CASE WHEN t.sync_type <> 'full' THEN NULL"
        "  WHEN s.mode <> 'incremental' OR t.pass_generation IS NULL THEN g.gen"
        "  ELSE t.pass_generation END,"
        " checkpoint = CASE WHEN s.mode <> 'incremental' THEN NULL ELSE t.checkpoint END,"
        " last_sync_date = CASE WHEN s.mode <> 'incremental' THEN NULL ELSE t.last_sync_date END,"
        " current_run_started_at = now(), last_started_at = now(), updated_at = now()"
        " FROM s, g WHERE t.id = s.id RETURNING t.*, s.mode, g.gen) "
        "SELECT u.id, u.uuid::text, u.name, u.variant, u.sync_type = 'full', u.track_deletes,"
        " u.mode, u.models::text, u.checkpoint::text, " ISO(
            "u.last_sync_date") ","
                                " coalesce(u.pass_generation, 0), u.gen, i.unique_key, "
                                "c.connection_id,"
                                " e.encrypt_records, u.connection_id "
                                "FROM upd u JOIN connections c ON c.id = u.connection_id"
                                " JOIN integrations i ON i.id = c.integration_id"
                                " JOIN environments e ON e.id = u.environment_id",
        3, params, &r);
    if (!err && PQntuples(r) != 1)
        err = JN_ERR_CONFLICT;
    if (!err && parse_mode(PQgetvalue(r, 0, 6), &out->mode) != JN_OK)
        err = JN_ERR_INTERNAL;
    if (err) {
        PQclear(r);
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    out->sync_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(out->uuid, sizeof out->uuid, "%s", PQgetvalue(r, 0, 1));
    snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, 0, 2));
    snprintf(out->variant, sizeof out->variant, "%s", PQgetvalue(r, 0, 3));
    out->full = PQgetvalue(r, 0, 4)[0] == 't';
    out->track_deletes = PQgetvalue(r, 0, 5)[0] == 't';
    parse_text_array(PQgetvalue(r, 0, 7), &out->models, &out->model_count);
    out->checkpoint = PQgetisnull(r, 0, 8) ? NULL : json_tokener_parse(PQgetvalue(r, 0, 8));
    snprintf(out->last_sync_date, sizeof out->last_sync_date, "%s", PQgetvalue(r, 0, 9));
    out->pass_generation = strtoll(PQgetvalue(r, 0, 10), NULL, 10);
    jn_records_writer_t *w = &out->writer;
    w->environment_id = env_id;
    w->connection_id = strtoll(PQgetvalue(r, 0, 15), NULL, 10);
    snprintf(w->integration_key, sizeof w->integration_key, "%s", PQgetvalue(r, 0, 12));
    snprintf(w->connection_key, sizeof w->connection_key, "%s", PQgetvalue(r, 0, 13));
    snprintf(w->variant, sizeof w->variant, "%s", out->variant);
    snprintf(w->job_id, sizeof w->job_id, "%s", job_id);
    w->lease_token = lease_token;
    w->generation = strtoll(PQgetvalue(r, 0, 11), NULL, 10);
    w->mark_seen = out->full && out->track_deletes;
    w->encrypt = PQgetvalue(r, 0, 14)[0] == 't';
    PQclear(r);
    if ((err = jn_pg_exec_script(conn, "COMMIT"))) {
        jn_sync_run_cleanup(out);
        return err;
    }
    /* emptyCache: every record of the sync's models becomes DELETED before the run saves
     * anything, so what the run saves again comes back as ADDED and what it does not stays
     * deleted; readers and consumers see each of these changes. */
    for (size_t i = 0; out->mode == JN_SYNC_RUN_FULL_EMPTY && i < out->model_count && !err; i++) {
        long long deleted = 0;
        err = jn_records_delete_all(conn, w, out->models[i], JN_SYNC_DELETE_BATCH, &deleted);
    }
    if (err)
        jn_sync_run_cleanup(out);
    return err;
}

/* A fenced single statement on the run's sync row: $1 job, $2 token, $3 env, $4 sync,
 * $5 the value (when not NULL). JN_ERR_CONFLICT when the run is not current. */
static jn_err_t fenced_sync_update(PGconn *conn, const jn_sync_run_t *run, const char *set,
                                   const char *value)
{
    char token[24], env[24], sync[24], sql[512];
    snprintf(token, sizeof token, "%lld", run->writer.lease_token);
    snprintf(env, sizeof env, "%lld", run->writer.environment_id);
    snprintf(sync, sizeof sync, "%lld", run->sync_id);
    snprintf(sql, sizeof sql,
             "WITH " FENCE " UPDATE syncs s SET %s, updated_at = now() FROM fence "
             "WHERE s.id = $4 AND s.current_job_id = $1::uuid RETURNING 1",
             set);
    const char *params[] = {run->writer.job_id, token, env, sync, value};
    jn_err_t err = jn_pg_exec_found(conn, sql, value ? 5 : 4, params);
    return err == JN_ERR_NOT_FOUND ? JN_ERR_CONFLICT : err;
}

jn_err_t jn_syncs_checkpoint_get(PGconn *conn, const jn_sync_run_t *run, json_object **out)
{
    *out = NULL;
    char env[24], sync[24];
    snprintf(env, sizeof env, "%lld", run->writer.environment_id);
    snprintf(sync, sizeof sync, "%lld", run->sync_id);
    const char *params[] = {sync, env};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT checkpoint::text FROM syncs WHERE id = $1 "
                              "AND environment_id = $2",
                              2, params, &r);
    if (err)
        return err;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    if (!PQgetisnull(r, 0, 0))
        *out = json_tokener_parse(PQgetvalue(r, 0, 0));
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_syncs_checkpoint_save(PGconn *conn, const jn_sync_run_t *run, json_object *checkpoint)
{
    if (!json_object_is_type(checkpoint, json_type_object))
        return JN_ERR_INVALID;
    const char *text = json_object_to_json_string_ext(checkpoint, JSON_C_TO_STRING_PLAIN);
    if (strlen(text) > JN_SYNC_MAX_CHECKPOINT)
        return JN_ERR_TOO_LARGE;
    return fenced_sync_update(conn, run, "checkpoint = $5::jsonb", text);
}

jn_err_t jn_syncs_checkpoint_clear(PGconn *conn, const jn_sync_run_t *run)
{
    return fenced_sync_update(conn, run, "checkpoint = NULL", NULL);
}

/* Ends the run in one transaction: the sync's outcome (SQL for its SET list, with the
 * run's result as res.result and $5 the error), then the job's. */
static jn_err_t finish_run(PGconn *conn, const jn_sync_run_t *run, bool ok, json_object *error,
                           jn_sync_finish_hook_fn hook, void *ud, json_object **result)
{
    char token[24], env[24], sync[24];
    snprintf(token, sizeof token, "%lld", run->writer.lease_token);
    snprintf(env, sizeof env, "%lld", run->writer.environment_id);
    snprintf(sync, sizeof sync, "%lld", run->sync_id);
    const char *err_text =
        error ? json_object_to_json_string_ext(error, JSON_C_TO_STRING_PLAIN) : NULL;
    const char *params[] = {run->writer.job_id, token, env, sync, err_text, ok ? "t" : "f"};
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (err)
        return err;
    PGresult *r = NULL;
    /* The result: every declared model with the changes the run committed (its batches
     * summed them in sync_run_counts). A success ends the full pass and sets
     * last_sync_date to the run's start; a failure keeps both, so the pass goes on. */
    err = jn_pg_exec(
        conn,
        "WITH " FENCE ","
        "s AS (SELECT s.id, s.variant, s.models FROM syncs s, fence WHERE s.id = $4"
        " AND s.current_job_id = $1::uuid FOR UPDATE OF s),"
        "res AS (SELECT coalesce(jsonb_object_agg(m.model, jsonb_build_object("
        "  'added', coalesce(c.added, 0), 'updated', coalesce(c.updated, 0),"
        "  'deleted', coalesce(c.deleted, 0))), '{}'::jsonb) AS result"
        " FROM (SELECT x AS model, CASE WHEN s.variant = 'base' THEN x"
        "  ELSE x || '::' || s.variant END AS full FROM s, unnest(s.models) x) m"
        " LEFT JOIN sync_run_counts c ON c.job_id = $1::uuid AND c.model = m.full),"
        "upd AS (UPDATE syncs t SET"
        " last_status = CASE WHEN $6::bool THEN 'success' ELSE 'error' END,"
        " last_result = res.result, last_error = $5::jsonb, last_job_id = $1::uuid,"
        " last_finished_at = now(),"
        " last_sync_date = CASE WHEN $6::bool THEN t.current_run_started_at"
        "  ELSE t.last_sync_date END,"
        " pass_generation = CASE WHEN $6::bool THEN NULL ELSE t.pass_generation END,"
        " current_job_id = NULL, current_run_started_at = NULL, current_generation = NULL,"
        " next_due_at = CASE WHEN t.requested_mode IS NOT NULL THEN now()"
        "  ELSE t.next_due_at END, updated_at = now()"
        " FROM res, s WHERE t.id = s.id RETURNING res.result) "
        "SELECT result::text FROM upd",
        6, params, &r);
    if (!err && PQntuples(r) != 1)
        err = JN_ERR_CONFLICT;
    json_object *res = err ? NULL : json_tokener_parse(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!err)
        err = jn_jobs_finish(conn, run->writer.job_id, run->writer.lease_token,
                             ok ? JN_JOB_OUTCOME_SUCCEEDED : JN_JOB_OUTCOME_FAILED,
                             ok ? res : error, false, 0, NULL);
    if (!err)
        err = jn_pg_exec(conn, "DELETE FROM sync_run_counts WHERE job_id = $1::uuid", 1, params,
                         NULL);
    if (!err && hook)
        err = hook(conn, run, ok ? res : NULL, ok ? NULL : error, ud);
    if (err) {
        json_object_put(res);
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    if ((err = jn_pg_exec_script(conn, "COMMIT"))) {
        json_object_put(res);
        return err;
    }
    if (result)
        *result = res;
    else
        json_object_put(res);
    return JN_OK;
}

jn_err_t jn_syncs_run_succeed(PGconn *conn, const jn_sync_run_t *run, json_object **result)
{
    return jn_syncs_run_succeed_with(conn, run, NULL, NULL, result);
}

jn_err_t jn_syncs_run_succeed_with(PGconn *conn, const jn_sync_run_t *run,
                                   jn_sync_finish_hook_fn hook, void *ud, json_object **result)
{
    if (result)
        *result = NULL;
    /* Deletion detection, after a run that completed: the records of each model that no
     * run of this pass has written or seen are gone upstream. */
    for (size_t i = 0; run->full && run->track_deletes && i < run->model_count; i++) {
        long long deleted = 0;
        jn_err_t err =
            jn_records_delete_unseen(conn, &run->writer, run->models[i], run->pass_generation,
                                     JN_SYNC_DELETE_BATCH, &deleted);
        if (err)
            return err;
    }
    return finish_run(conn, run, true, NULL, hook, ud, result);
}

jn_err_t jn_syncs_run_fail(PGconn *conn, const jn_sync_run_t *run, json_object *error)
{
    return jn_syncs_run_fail_with(conn, run, error, NULL, NULL);
}

jn_err_t jn_syncs_run_fail_with(PGconn *conn, const jn_sync_run_t *run, json_object *error,
                                jn_sync_finish_hook_fn hook, void *ud)
{
    json_object *fallback = NULL;
    if (!error) {
        fallback = json_object_new_object();
        json_object_object_add(fallback, "type", json_object_new_string("unknown"));
        error = fallback;
    }
    jn_err_t err = finish_run(conn, run, false, error, hook, ud, NULL);
    json_object_put(fallback);
    return err;
}
