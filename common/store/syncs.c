/*
 * syncs.c - syncs as deployments and the API change them: reconciling an integration's
 * syncs with its declarations, and trigger, pause, start, status, frequency and variants.
 *
 * Every statement here is set-based: deploying a sync to an integration of 100,000
 * connections, or triggering it on all of them, is a handful of statements, not a loop.
 * The runs themselves (the scheduler's and the worker's side) are in sync_runs.c.
 */
#include "store/syncs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "store/pg.h"

#define ISO(col)                                                                                   \
    "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '')"

/* Cancels the in-flight jobs listed by the CTE "old" (column current_job_id): a worker
 * still running one finds its fence gone at its next write. */
#define CANCEL_JOBS                                                                                \
    "UPDATE jobs SET state = 'cancelled', finished_at = clock_timestamp(), lease_owner = NULL, "   \
    " lease_until = NULL, retry_at = NULL, updated_at = clock_timestamp() "                        \
    "WHERE id IN (SELECT current_job_id FROM old WHERE current_job_id IS NOT NULL) "               \
    "AND state IN ('queued', 'running')"

const char *jn_sync_mode_name(jn_sync_mode_t mode)
{
    return mode == JN_SYNC_RUN_FULL_EMPTY ? "full_empty"
           : mode == JN_SYNC_RUN_FULL     ? "full"
                                          : "incremental";
}

void jn_syncs_frequency_text(int seconds, char *out, size_t cap)
{
    if (seconds > 0 && seconds % 86400 == 0)
        snprintf(out, cap, "every %dd", seconds / 86400);
    else if (seconds > 0 && seconds % 3600 == 0)
        snprintf(out, cap, "every %dh", seconds / 3600);
    else if (seconds > 0 && seconds % 60 == 0)
        snprintf(out, cap, "every %dm", seconds / 60);
    else
        snprintf(out, cap, "every %ds", seconds);
}

/* BEGIN unless conn is inside a transaction already (then the caller's is used). */
static jn_err_t begin_tx(PGconn *conn, bool *own)
{
    *own = PQtransactionStatus(conn) != PQTRANS_INTRANS;
    return *own ? jn_pg_exec_script(conn, "BEGIN") : JN_OK;
}

/* Ends a transaction begin_tx opened: COMMIT on success, else ROLLBACK. A transaction of
 * the caller's is left to the caller (an error aborts it anyway). */
static jn_err_t end_tx(PGconn *conn, bool own, jn_err_t err)
{
    if (!own)
        return err;
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    return jn_pg_exec_script(conn, "COMMIT");
}

static bool printable_name(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    }
    return true;
}

/* ---- reconciling with a deployment ---- */

static jn_err_t check_decls(const jn_sync_decl_t *decls, size_t n, char *why, size_t why_len)
{
    for (size_t i = 0; i < n; i++) {
        const jn_sync_decl_t *d = &decls[i];
        if (!printable_name(d->name, JN_SYNC_MAX_NAME))
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "sync %zu: name: must be 1 to %d "
                              "printable bytes",
                              i, JN_SYNC_MAX_NAME);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(decls[k].name, d->name) == 0)
                return jn_err_why(JN_ERR_INVALID, why, why_len, "%s: declared twice", d->name);
        }
        if (d->frequency_s < JN_SYNC_MIN_FREQUENCY_S || d->frequency_s > JN_SYNC_MAX_FREQUENCY_S)
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "%s: frequency: must be from %d seconds to 31 days", d->name,
                              JN_SYNC_MIN_FREQUENCY_S);
        if (d->model_count == 0)
            return jn_err_why(JN_ERR_INVALID, why, why_len, "%s: models: at least one", d->name);
        for (size_t m = 0; m < d->model_count; m++) {
            char full[JN_RECORDS_MAX_MODEL + 1];
            if (jn_records_model_name(d->models[m], NULL, full, sizeof full) != JN_OK)
                return jn_err_why(JN_ERR_INVALID, why, why_len,
                                  "%s: models[%zu]: must be 1 to %d printable bytes without "
                                  "\"::\"",
                                  d->name, m, JN_RECORDS_MAX_MODEL);
        }
    }
    return JN_OK;
}

static jn_err_t reconcile_one(PGconn *conn, const char *integration, const jn_sync_decl_t *d,
                              jn_sync_reconcile_counts_t *out)
{
    char freq[16];
    snprintf(freq, sizeof freq, "%d", d->frequency_s);
    char *models = jn_pg_text_array(d->models, d->model_count);
    const char *params[] = {integration,
                            d->name,
                            d->full ? "full" : "incremental",
                            d->track_deletes ? "t" : "f",
                            d->auto_start ? "t" : "f",
                            freq,
                            models};
    jn_err_t err = jn_pg_exec(
        conn,
        "INSERT INTO sync_configs (integration_id, environment_id, name, sync_type, "
        " track_deletes, auto_start, frequency_s, models) "
        "SELECT id, environment_id, $2, $3, $4::bool, $5::bool, $6::int, $7::text[] "
        "FROM integrations WHERE id = $1 "
        "ON CONFLICT (integration_id, name) DO UPDATE SET sync_type = EXCLUDED.sync_type, "
        " track_deletes = EXCLUDED.track_deletes, auto_start = EXCLUDED.auto_start, "
        " frequency_s = EXCLUDED.frequency_s, models = EXCLUDED.models, updated_at = now()",
        7, params, NULL);
    PGresult *r = NULL;
    /* Existing syncs of the script, every variant: the new declaration; a stopped one comes
     * back; a running one on the declared frequency moves to its slot of the new one. */
    if (!err)
        err = jn_pg_exec(
            conn,
            "WITH upd AS (UPDATE syncs s SET sync_type = $3, track_deletes = $4::bool,"
            " auto_start = $5::bool, frequency_s = $6::int, models = $7::text[],"
            " state = CASE WHEN s.state <> 'stopped' THEN s.state"
            "  WHEN $5::bool THEN 'running' ELSE 'paused' END,"
            " next_due_at = CASE"
            "  WHEN s.state = 'stopped' THEN CASE WHEN $5::bool THEN"
            "   sync_next_slot(s.id, coalesce(s.frequency_override_s, $6::int), now()) END"
            "  WHEN s.state = 'running' AND s.requested_mode IS NULL"
            "   AND s.frequency_override_s IS NULL AND s.frequency_s <> $6::int"
            "   THEN sync_next_slot(s.id, $6::int, now())"
            "  ELSE s.next_due_at END,"
            " stopped_at = NULL, updated_at = now()"
            " WHERE s.integration_id = $1 AND s.name = $2 RETURNING 1),"
            /* Connections without the sync get it (base variant), first due at their slot
             * so that a deployment to many connections spreads its first runs. */
            "ins AS (INSERT INTO syncs (id, environment_id, integration_id, connection_id, name,"
            " sync_type, track_deletes, auto_start, frequency_s, models, state, next_due_at)"
            " SELECT x.id, x.environment_id, x.integration_id, x.cid, $2, $3, $4::bool,"
            "  $5::bool, $6::int, $7::text[], CASE WHEN $5::bool THEN 'running' ELSE 'paused' END,"
            "  CASE WHEN $5::bool THEN sync_next_slot(x.id, $6::int, now()) END"
            " FROM (SELECT nextval('syncs_id_seq') AS id, c.environment_id, c.integration_id,"
            "  c.id AS cid FROM connections c WHERE c.integration_id = $1 AND NOT EXISTS"
            "  (SELECT 1 FROM syncs t WHERE t.connection_id = c.id AND t.name = $2"
            "   AND t.variant = 'base')) x"
            " ON CONFLICT (connection_id, name, variant) DO NOTHING RETURNING 1) "
            "SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM ins)",
            7, params, &r);
    free(models);
    if (err)
        return err;
    out->updated += strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    out->created += strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_syncs_reconcile(PGconn *conn, long long env_id, long long integration_id,
                            const jn_sync_decl_t *decls, size_t n, jn_sync_reconcile_counts_t *out,
                            char *why, size_t why_len)
{
    jn_sync_reconcile_counts_t counts = {0};
    jn_err_t err = check_decls(decls, n, why, why_len);
    if (err)
        return err;
    bool own;
    if ((err = begin_tx(conn, &own)))
        return err;
    char env[24], integration[24];
    snprintf(env, sizeof env, "%lld", env_id);
    snprintf(integration, sizeof integration, "%lld", integration_id);
    const char *params[] = {integration, env, NULL};
    /* The integration row is locked: two deployments of one integration apply in turn. */
    err = jn_pg_exec_found(conn,
                           "SELECT 1 FROM integrations WHERE id = $1 AND environment_id = $2 "
                           "FOR UPDATE",
                           2, params);
    if (err == JN_ERR_NOT_FOUND)
        jn_err_why(err, why, why_len, "integration %lld", integration_id);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names)
        abort();
    for (size_t i = 0; i < n; i++)
        names[i] = decls[i].name;
    char *array = jn_pg_text_array(names, n);
    free(names);
    params[1] = array;
    if (!err)
        err = jn_pg_exec(conn,
                         "DELETE FROM sync_configs WHERE integration_id = $1 "
                         "AND NOT (name = ANY ($2::text[]))",
                         2, params, NULL);
    for (size_t i = 0; i < n && !err; i++)
        err = reconcile_one(conn, integration, &decls[i], &counts);
    PGresult *r = NULL;
    if (!err)
        err =
            jn_pg_exec(conn,
                       "WITH old AS (SELECT id, current_job_id FROM syncs WHERE integration_id = $1"
                       " AND state <> 'stopped' AND NOT (name = ANY ($2::text[])) FOR UPDATE),"
                       "cancel AS (" CANCEL_JOBS "),"
                       "upd AS (UPDATE syncs s SET state = 'stopped', next_due_at = NULL,"
                       " requested_mode = NULL, current_job_id = NULL, stopped_at = now(),"
                       " updated_at = now() FROM old WHERE s.id = old.id RETURNING 1) "
                       "SELECT count(*) FROM upd",
                       2, params, &r);
    free(array);
    if (!err) {
        counts.stopped = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    err = end_tx(conn, own, err);
    if (!err && out)
        *out = counts;
    return err;
}

/* ---- selecting the syncs an API call names ---- */

/* The ids of the syncs sel names, checked: the integration and the connection exist, and
 * every named sync matches at least one. *ids new "{1,2}" literal (free()). With lock, the
 * rows are locked for the caller's transaction. */
static jn_err_t resolve(PGconn *conn, const jn_sync_selector_t *sel, bool lock, bool with_stopped,
                        char **ids, size_t *count, char *why, size_t why_len)
{
    *ids = NULL;
    *count = 0;
    char env[24];
    snprintf(env, sizeof env, "%lld", sel->environment_id);
    const char *params[5] = {env, sel->provider_config_key, sel->connection_id, NULL, NULL};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "SELECT i.id, (SELECT c.id FROM connections c WHERE c.integration_id = i.id"
                   " AND c.connection_id = $3) FROM integrations i WHERE i.environment_id = $1"
                   " AND i.unique_key = $2",
                   3, params, &r);
    if (err)
        return err;
    bool integration = PQntuples(r) == 1;
    bool connection = integration && (!sel->connection_id || !PQgetisnull(r, 0, 1));
    PQclear(r);
    if (!integration)
        return jn_err_why(JN_ERR_NOT_FOUND, why, why_len, "integration '%s'",
                          sel->provider_config_key);
    if (!connection)
        return jn_err_why(JN_ERR_NOT_FOUND, why, why_len, "connection '%s' of integration '%s'",
                          sel->connection_id, sel->provider_config_key);
    char *names = NULL, *variants = NULL;
    if (sel->sync_count) {
        const char **n = malloc(sel->sync_count * sizeof *n),
                   **v = malloc(sel->sync_count * sizeof *v);
        if (!n || !v)
            abort();
        for (size_t i = 0; i < sel->sync_count; i++) {
            n[i] = sel->syncs[i].name;
            v[i] = sel->syncs[i].variant && *sel->syncs[i].variant ? sel->syncs[i].variant : "base";
        }
        names = jn_pg_text_array(n, sel->sync_count);
        variants = jn_pg_text_array(v, sel->sync_count);
        free(n);
        free(v);
    }
    params[3] = names;
    params[4] = variants;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT s.id, s.name, s.variant FROM syncs s JOIN connections c ON c.id = "
             "s.connection_id JOIN integrations i ON i.id = s.integration_id "
             "WHERE i.environment_id = $1 AND i.unique_key = $2 "
             "AND ($3::text IS NULL OR c.connection_id = $3) %s "
             "AND ($4::text[] IS NULL OR (s.name, s.variant) IN "
             " (SELECT * FROM unnest($4::text[], $5::text[]))) ORDER BY s.id %s",
             with_stopped ? "" : "AND s.state <> 'stopped'", lock ? "FOR UPDATE OF s" : "");
    err = jn_pg_exec(conn, sql, 5, params, &r);
    free(names);
    free(variants);
    if (err)
        return err;
    int rows = PQntuples(r);
    for (size_t i = 0; i < sel->sync_count && !err; i++) {
        const char *v =
            sel->syncs[i].variant && *sel->syncs[i].variant ? sel->syncs[i].variant : "base";
        bool found = false;
        for (int k = 0; k < rows && !found; k++)
            found = strcmp(PQgetvalue(r, k, 1), sel->syncs[i].name) == 0 &&
                    strcmp(PQgetvalue(r, k, 2), v) == 0;
        if (!found)
            err = jn_err_why(JN_ERR_NOT_FOUND, why, why_len, "sync '%s'%s%s%s", sel->syncs[i].name,
                             strcmp(v, "base") ? " (variant '" : "", strcmp(v, "base") ? v : "",
                             strcmp(v, "base") ? "')" : "");
    }
    jn_buf_t list;
    jn_buf_init(&list, (size_t)rows * 24 + 8);
    jn_buf_append(&list, "{", 1);
    for (int k = 0; k < rows && !err; k++)
        jn_buf_printf(&list, "%s%s", k ? "," : "", PQgetvalue(r, k, 0));
    jn_buf_append(&list, "}", 1);
    PQclear(r);
    if (err) {
        jn_buf_cleanup(&list);
        return err;
    }
    *ids = jn_buf_take(&list, NULL);
    *count = (size_t)rows;
    return JN_OK;
}

/* Resolves sel and runs one statement over the ids ($1), in one transaction. */
static jn_err_t change(PGconn *conn, const jn_sync_selector_t *sel, const char *sql,
                       const char *extra, size_t *matched, char *why, size_t why_len)
{
    if (matched)
        *matched = 0;
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (err)
        return err;
    char *ids = NULL;
    size_t count = 0;
    err = resolve(conn, sel, true, false, &ids, &count, why, why_len);
    const char *params[] = {ids, extra};
    if (!err && count)
        err = jn_pg_exec(conn, sql, extra ? 2 : 1, params, NULL);
    free(ids);
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    err = jn_pg_exec_script(conn, "COMMIT");
    if (!err && matched)
        *matched = count;
    return err;
}

jn_err_t jn_syncs_trigger(PGconn *conn, const jn_sync_selector_t *sel, jn_sync_mode_t mode,
                          size_t *matched, char *why, size_t why_len)
{
    /* The strongest request wins when one is pending; a reset cancels the run in flight
     * (its fence is gone, so it can write nothing more) and the sync is free at once. */
    return change(conn, sel,
                  "WITH old AS (SELECT id, current_job_id FROM syncs"
                  " WHERE id = ANY ($1::bigint[]) AND $2 <> 'incremental'),"
                  "cancel AS (" CANCEL_JOBS ") "
                  "UPDATE syncs s SET requested_mode = CASE"
                  "  WHEN 'full_empty' IN (s.requested_mode, $2) THEN 'full_empty'"
                  "  WHEN 'full' IN (s.requested_mode, $2) THEN 'full' ELSE 'incremental' END,"
                  " current_job_id = CASE WHEN $2 = 'incremental' THEN s.current_job_id END,"
                  " next_due_at = now(), updated_at = now() "
                  "WHERE s.id = ANY ($1::bigint[])",
                  jn_sync_mode_name(mode), matched, why, why_len);
}

jn_err_t jn_syncs_pause(PGconn *conn, const jn_sync_selector_t *sel, size_t *matched, char *why,
                        size_t why_len)
{
    return change(conn, sel,
                  "UPDATE syncs SET state = 'paused', next_due_at = CASE WHEN requested_mode IS "
                  "NOT NULL THEN next_due_at END, updated_at = now() WHERE id = ANY ($1::bigint[])",
                  NULL, matched, why, why_len);
}

jn_err_t jn_syncs_start(PGconn *conn, const jn_sync_selector_t *sel, size_t *matched, char *why,
                        size_t why_len)
{
    return change(conn, sel,
                  "UPDATE syncs SET state = 'running', requested_mode = coalesce(requested_mode, "
                  "'incremental'), next_due_at = now(), updated_at = now() "
                  "WHERE id = ANY ($1::bigint[])",
                  NULL, matched, why, why_len);
}

/* ---- status ---- */

static json_object *parsed_or(const PGresult *r, int row, int col, json_object *fallback)
{
    if (PQgetisnull(r, row, col))
        return fallback;
    json_object *v = json_tokener_parse(PQgetvalue(r, row, col));
    if (!v)
        return fallback;
    json_object_put(fallback);
    return v;
}

static json_object *nullable_string(const char *s)
{
    return s && *s ? json_object_new_string(s) : NULL;
}

/* One sync in Nango's shape. Columns as selected by jn_syncs_status_json. */
static json_object *status_item(const PGresult *r, int i)
{
    const char *state = PQgetvalue(r, i, 4), *last = PQgetvalue(r, i, 10);
    bool busy = PQgetvalue(r, i, 13)[0] == 't', never = PQgetvalue(r, i, 12)[0] == 't';
    const char *status = busy                            ? "RUNNING"
                         : strcmp(state, "paused") == 0  ? "PAUSED"
                         : strcmp(state, "stopped") == 0 ? "STOPPED"
                         : strcmp(last, "error") == 0    ? "ERROR"
                                                         : "SUCCESS";
    const char *execution = busy                           ? "RUNNING"
                            : strcmp(last, "success") == 0 ? "SUCCESS"
                            : strcmp(last, "error") == 0   ? "FAILED"
                            : strcmp(last, "stopped") == 0 ? "STOPPED"
                                                           : NULL;
    char freq[32];
    jn_syncs_frequency_text((int)strtol(PQgetvalue(r, i, 6), NULL, 10), freq, sizeof freq);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(PQgetvalue(r, i, 0)));
    json_object_object_add(o, "connection_id", json_object_new_string(PQgetvalue(r, i, 1)));
    json_object_object_add(o, "name", json_object_new_string(PQgetvalue(r, i, 2)));
    json_object_object_add(o, "variant", json_object_new_string(PQgetvalue(r, i, 3)));
    json_object_object_add(o, "type", json_object_new_string(never ? "INITIAL" : "INCREMENTAL"));
    json_object_object_add(o, "status", json_object_new_string(status));
    json_object_object_add(o, "frequency", json_object_new_string(freq));
    if (!busy) /* Nango leaves it out while a run is in flight */
        json_object_object_add(o, "finishedAt", nullable_string(PQgetvalue(r, i, 7)));
    json_object_object_add(o, "nextScheduledSyncAt", nullable_string(PQgetvalue(r, i, 8)));
    json_object_object_add(o, "latestResult", parsed_or(r, i, 9, json_object_new_object()));
    json_object_object_add(o, "latestExecutionStatus",
                           execution ? json_object_new_string(execution) : NULL);
    json_object_object_add(o, "recordCount", parsed_or(r, i, 14, json_object_new_object()));
    json_object_object_add(o, "checkpoint", parsed_or(r, i, 11, NULL));
    json_object_object_add(o, "sync_type", json_object_new_string(PQgetvalue(r, i, 5)));
    json_object_object_add(o, "latestError", parsed_or(r, i, 15, NULL));
    return o;
}

jn_err_t jn_syncs_status_json(PGconn *conn, const jn_sync_selector_t *sel, json_object **out,
                              char *why, size_t why_len)
{
    *out = NULL;
    char *ids = NULL;
    size_t count = 0;
    jn_err_t err = resolve(conn, sel, false, true, &ids, &count, why, why_len);
    if (err)
        return err;
    const char *params[] = {ids};
    PGresult *r = NULL;
    err = jn_pg_exec(
        conn,
        "SELECT s.uuid::text, c.connection_id, s.name, s.variant, s.state, s.sync_type,"
        " coalesce(s.frequency_override_s, s.frequency_s), " ISO("s.last_finished_at") ", " ISO(
            "s.next_due_at") ", s.last_result::text, coalesce(s.last_status, ''),"
                             " s.checkpoint::text, s.last_sync_date IS NULL,"
                             " coalesce(j.state IN ('queued', 'running'), false),"
                             " (SELECT json_object_agg(m, coalesce(rs.live_count, 0)) FROM "
                             "unnest(s.models) m"
                             "  LEFT JOIN record_scopes rs ON rs.connection_id = s.connection_id "
                             "AND"
                             "  rs.model = CASE WHEN s.variant = 'base' THEN m"
                             "   ELSE m || '::' || s.variant END)::text,"
                             " s.last_error::text "
                             "FROM syncs s JOIN connections c ON c.id = s.connection_id "
                             "LEFT JOIN jobs j ON j.id = s.current_job_id "
                             "WHERE s.id = ANY ($1::bigint[]) ORDER BY s.id",
        1, params, &r);
    free(ids);
    if (err)
        return err;
    json_object *list = json_object_new_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_object_array_add(list, status_item(r, i));
    PQclear(r);
    *out = json_object_new_object();
    json_object_object_add(*out, "syncs", list);
    return JN_OK;
}

/* ---- one connection's sync: frequency, variants ---- */

jn_err_t jn_syncs_set_frequency(PGconn *conn, long long env_id, const char *provider_config_key,
                                const char *connection_id, const char *name, const char *variant,
                                int frequency_s, int *effective_s, char *why, size_t why_len)
{
    jn_sync_ref_t ref = {name, variant};
    jn_sync_selector_t sel = {env_id, provider_config_key, connection_id, &ref, 1};
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (err)
        return err;
    char *ids = NULL, freq[16];
    size_t count = 0;
    snprintf(freq, sizeof freq, "%d", frequency_s);
    err = resolve(conn, &sel, true, false, &ids, &count, why, why_len);
    const char *params[] = {ids, freq};
    PGresult *r = NULL;
    if (!err)
        err =
            jn_pg_exec(conn,
                       "UPDATE syncs SET frequency_override_s = nullif($2::int, 0),"
                       " next_due_at = CASE WHEN state = 'running' AND requested_mode IS NULL"
                       "  THEN sync_next_slot(id, coalesce(nullif($2::int, 0), frequency_s), now())"
                       "  ELSE next_due_at END, updated_at = now() "
                       "WHERE id = ANY ($1::bigint[]) "
                       "RETURNING coalesce(frequency_override_s, frequency_s)",
                       2, params, &r);
    free(ids);
    if (!err && effective_s && PQntuples(r) > 0)
        *effective_s = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    return jn_pg_exec_script(conn, "COMMIT");
}

jn_err_t jn_syncs_variant_create(PGconn *conn, long long env_id, const char *provider_config_key,
                                 const char *connection_id, const char *name, const char *variant,
                                 char uuid_out[37], char *why, size_t why_len)
{
    jn_sync_ref_t ref = {name, "base"};
    jn_sync_selector_t sel = {env_id, provider_config_key, connection_id, &ref, 1};
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (err)
        return err;
    char *ids = NULL, max[16];
    size_t count = 0;
    snprintf(max, sizeof max, "%d", JN_SYNC_MAX_VARIANTS);
    err = resolve(conn, &sel, true, false, &ids, &count, why, why_len);
    const char *params[] = {ids, variant, max};
    PGresult *r = NULL;
    /* The base sync is locked: variants of one sync are counted and created in turn. */
    if (!err)
        err = jn_pg_exec(
            conn,
            "WITH b AS (SELECT * FROM syncs WHERE id = ANY ($1::bigint[])),"
            "n AS (SELECT count(*) AS live FROM syncs s, b WHERE s.connection_id = b.connection_id"
            " AND s.name = b.name AND s.variant <> 'base' AND s.state <> 'stopped'),"
            "ins AS (INSERT INTO syncs AS s (environment_id, integration_id, connection_id, name,"
            " variant, sync_type, track_deletes, auto_start, frequency_s, models, state,"
            " next_due_at) SELECT b.environment_id, b.integration_id, b.connection_id, b.name, $2,"
            " b.sync_type, b.track_deletes, b.auto_start, b.frequency_s, b.models,"
            " CASE WHEN b.auto_start THEN 'running' ELSE 'paused' END,"
            " CASE WHEN b.auto_start THEN now() END FROM b, n WHERE n.live < $3::int"
            " ON CONFLICT (connection_id, name, variant) DO UPDATE SET state = EXCLUDED.state,"
            "  next_due_at = EXCLUDED.next_due_at, sync_type = EXCLUDED.sync_type,"
            "  track_deletes = EXCLUDED.track_deletes, auto_start = EXCLUDED.auto_start,"
            "  frequency_s = EXCLUDED.frequency_s, models = EXCLUDED.models, stopped_at = NULL,"
            "  updated_at = now() WHERE s.state = 'stopped' RETURNING s.uuid::text) "
            "SELECT (SELECT uuid FROM ins), (SELECT live FROM n) >= $3::int",
            3, params, &r);
    free(ids);
    if (!err && PQgetisnull(r, 0, 0)) {
        bool full = PQgetvalue(r, 0, 1)[0] == 't';
        err = full ? jn_err_why(JN_ERR_TOO_LARGE, why, why_len, "sync '%s' has %d variants already",
                                name, JN_SYNC_MAX_VARIANTS)
                   : jn_err_why(JN_ERR_CONFLICT, why, why_len, "variant '%s' of sync '%s'", variant,
                                name);
    }
    if (!err)
        snprintf(uuid_out, 37, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    return jn_pg_exec_script(conn, "COMMIT");
}

jn_err_t jn_syncs_variant_delete(PGconn *conn, long long env_id, const char *provider_config_key,
                                 const char *connection_id, const char *name, const char *variant,
                                 char *why, size_t why_len)
{
    jn_sync_ref_t ref = {name, variant};
    jn_sync_selector_t sel = {env_id, provider_config_key, connection_id, &ref, 1};
    return change(conn, &sel,
                  "WITH old AS (SELECT id, current_job_id FROM syncs WHERE id = ANY ($1::bigint[])"
                  " AND variant <> 'base'),"
                  "cancel AS (" CANCEL_JOBS ") "
                  "UPDATE syncs s SET state = 'stopped', next_due_at = NULL, requested_mode = NULL,"
                  " current_job_id = NULL, stopped_at = now(), updated_at = now() FROM old "
                  "WHERE s.id = old.id",
                  NULL, NULL, why, why_len);
}
