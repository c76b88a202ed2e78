/*
 * functions.c - SQL for the functions table (migration 0008).
 *
 * A deployment is one transaction that first locks the integration's row (SELECT ...
 * FOR UPDATE): concurrent deployments of one integration serialise there, and a
 * deployment racing the integration's deletion either sees it gone or keeps it until
 * it commits.
 */
#include "store/functions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "store/pg.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* Columns 10 and 11 are the sources, or NULLs, and 12 the id: see select_functions(). */
#define COLUMNS                                                                                    \
    "i.unique_key, i.provider, f.name, f.type, f.checksum, " TS(                                   \
        "f.deployed_at") ", "                                                                      \
                         "f.declaration::text, f.previous_checksum, " TS(                          \
                             "f.previous_deployed_at") ", "                                        \
                                                       "f.previous_declaration::text"

static void env_text(long long env_id, char out[24])
{
    snprintf(out, 24, "%lld", env_id);
}

void jn_function_checksum(const char *source, size_t len, char out[65])
{
    unsigned char digest[32];
    jn_crypto_sha256(source, len, digest);
    jn_hex_encode(digest, sizeof digest, out);
}

void jn_function_cleanup(jn_function_t *f)
{
    free(f->integration);
    free(f->provider);
    free(f->name);
    free(f->type);
    free(f->source);
    free(f->previous_source);
    json_object_put(f->declaration);
    json_object_put(f->previous_declaration);
    memset(f, 0, sizeof *f);
}

void jn_deployment_cleanup(jn_deployment_t *d)
{
    json_object_put(d->added);
    json_object_put(d->changed);
    json_object_put(d->unchanged);
    json_object_put(d->removed);
    memset(d, 0, sizeof *d);
}

static void copy_text(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static json_object *json_col(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : json_tokener_parse(PQgetvalue(r, row, col));
}

static void from_row(const PGresult *r, int row, bool with_source, jn_function_t *f)
{
    memset(f, 0, sizeof *f);
    f->integration = jn_pg_dup(r, row, 0);
    f->provider = jn_pg_dup(r, row, 1);
    f->name = jn_pg_dup(r, row, 2);
    f->type = jn_pg_dup(r, row, 3);
    copy_text(f->checksum, sizeof f->checksum, r, row, 4);
    copy_text(f->deployed_at, sizeof f->deployed_at, r, row, 5);
    f->declaration = json_col(r, row, 6);
    f->id = PQnfields(r) > 12 ? strtoll(PQgetvalue(r, row, 12), NULL, 10) : 0;
    f->has_previous = !PQgetisnull(r, row, 7);
    copy_text(f->previous_checksum, sizeof f->previous_checksum, r, row, 7);
    copy_text(f->previous_deployed_at, sizeof f->previous_deployed_at, r, row, 8);
    f->previous_declaration = json_col(r, row, 9);
    if (with_source) {
        f->source = jn_pg_dup(r, row, 10);
        f->previous_source = jn_pg_dup(r, row, 11);
    }
}

/* Reads every row of r (sources left out) into a new *list, and clears r. */
static void rows_to_list(PGresult *r, jn_function_t **list, size_t *count)
{
    int n = PQntuples(r);
    *list = calloc(n ? (size_t)n : 1, sizeof **list);
    if (!*list)
        abort();
    for (int i = 0; i < n; i++)
        from_row(r, i, false, &(*list)[i]);
    *count = (size_t)n;
    PQclear(r);
}

/* Finds the integration (locking its row when lock) and gives its id. */
static jn_err_t find_integration(PGconn *conn, const char *env, const char *key, bool lock,
                                 long long *id)
{
    const char *params[] = {env, key};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              lock ? "SELECT id FROM integrations WHERE environment_id = $1 AND "
                                     "unique_key = $2 FOR UPDATE"
                                   : "SELECT id FROM integrations WHERE environment_id = $1 AND "
                                     "unique_key = $2",
                              2, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return JN_OK;
}

static jn_err_t write_function(PGconn *conn, const char *env, const char *iid,
                               const jn_function_input_t *fn, const char *checksum, bool exists)
{
    const char *decl = json_object_to_json_string_ext(
        fn->declaration, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    const char *params[] = {env, iid, fn->name, fn->type, fn->source, decl, checksum};
    if (!exists)
        return jn_pg_exec(
            conn,
            "INSERT INTO functions (environment_id, integration_id, name, type, "
            "source, declaration, checksum) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
            7, params, NULL);
    return jn_pg_exec_found(conn,
                            "UPDATE functions SET previous_source = source, previous_declaration = "
                            "declaration, previous_checksum = checksum, previous_deployed_at = "
                            "deployed_at, type = $4, source = $5, declaration = $6::jsonb, "
                            "checksum = $7, deployed_at = now() WHERE environment_id = $1 AND "
                            "integration_id = $2 AND name = $3 RETURNING id",
                            7, params);
}

static void new_deployment(jn_deployment_t *d)
{
    memset(d, 0, sizeof *d);
    d->added = json_object_new_array();
    d->changed = json_object_new_array();
    d->unchanged = json_object_new_array();
    d->removed = json_object_new_array();
}

/* The body of a deployment, inside its transaction. */
static jn_err_t deploy_in_tx(PGconn *conn, const char *env, const char *key,
                             const jn_function_input_t *fns, size_t n, jn_deployment_t *d)
{
    jn_err_t err = find_integration(conn, env, key, true, &d->integration_id);
    if (err)
        return err;
    char iid[24];
    snprintf(iid, sizeof iid, "%lld", d->integration_id);
    const char *params[] = {env, iid};
    PGresult *existing = NULL;
    if ((err = jn_pg_exec(conn,
                          "SELECT name, checksum FROM functions WHERE environment_id = $1 AND "
                          "integration_id = $2",
                          2, params, &existing)))
        return err;
    int rows = PQntuples(existing);
    for (size_t i = 0; i < n && !err; i++) {
        char checksum[65];
        jn_function_checksum(fns[i].source, fns[i].source_len, checksum);
        int row = -1;
        for (int k = 0; k < rows && row < 0; k++) {
            if (strcmp(PQgetvalue(existing, k, 0), fns[i].name) == 0)
                row = k;
        }
        json_object *name = json_object_new_string(fns[i].name);
        if (row >= 0 && strcmp(PQgetvalue(existing, row, 1), checksum) == 0) {
            json_object_array_add(d->unchanged, name);
            continue;
        }
        err = write_function(conn, env, iid, &fns[i], checksum, row >= 0);
        json_object_array_add(row >= 0 ? d->changed : d->added, name);
    }
    for (int k = 0; k < rows && !err; k++) {
        const char *name = PQgetvalue(existing, k, 0);
        bool kept = false;
        for (size_t i = 0; i < n && !kept; i++)
            kept = strcmp(fns[i].name, name) == 0;
        if (kept)
            continue;
        const char *del[] = {env, iid, name};
        err = jn_pg_exec_found(conn,
                               "DELETE FROM functions WHERE environment_id = $1 AND "
                               "integration_id = $2 AND name = $3 RETURNING id",
                               3, del);
        json_object_array_add(d->removed, json_object_new_string(name));
    }
    PQclear(existing);
    return err;
}

/* Runs body in a transaction with the hook, committing only when both succeed. */
static jn_err_t in_transaction(PGconn *conn, long long env_id, jn_err_t body_err,
                               jn_functions_hook_fn hook, void *ud, const jn_deployment_t *d)
{
    jn_err_t err = body_err;
    if (!err && hook)
        err = hook(conn, env_id, d, ud);
    if (!err)
        err = jn_pg_exec_script(conn, "COMMIT");
    else
        jn_pg_exec_script(conn, "ROLLBACK");
    return err;
}

jn_err_t jn_functions_deploy(PGconn *conn, long long env_id, const char *integration,
                             const jn_function_input_t *fns, size_t n, jn_functions_hook_fn hook,
                             void *ud, jn_deployment_t *out)
{
    char env[24];
    env_text(env_id, env);
    new_deployment(out);
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (!err)
        err = in_transaction(conn, env_id, deploy_in_tx(conn, env, integration, fns, n, out), hook,
                             ud, out);
    if (err)
        jn_deployment_cleanup(out);
    return err;
}

jn_err_t jn_functions_delete(PGconn *conn, long long env_id, const char *integration,
                             const char *name, jn_functions_hook_fn hook, void *ud)
{
    return jn_functions_delete_typed(conn, env_id, integration, name, NULL, hook, ud);
}

jn_err_t jn_functions_delete_typed(PGconn *conn, long long env_id, const char *integration,
                                   const char *name, const char *type, jn_functions_hook_fn hook,
                                   void *ud)
{
    char env[24], iid[24];
    env_text(env_id, env);
    jn_deployment_t d;
    new_deployment(&d);
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (err) {
        jn_deployment_cleanup(&d);
        return err;
    }
    jn_err_t body = find_integration(conn, env, integration, true, &d.integration_id);
    if (!body) {
        snprintf(iid, sizeof iid, "%lld", d.integration_id);
        const char *params[] = {env, iid, name, type};
        body = jn_pg_exec_found(conn,
                                type ? "DELETE FROM functions WHERE environment_id = $1 AND "
                                       "integration_id = $2 AND name = $3 AND type = $4 "
                                       "RETURNING id"
                                     : "DELETE FROM functions WHERE environment_id = $1 AND "
                                       "integration_id = $2 AND name = $3 RETURNING id",
                                type ? 4 : 3, params);
        json_object_array_add(d.removed, json_object_new_string(name));
    }
    err = in_transaction(conn, env_id, body, hook, ud, &d);
    jn_deployment_cleanup(&d);
    return err;
}

static jn_err_t select_functions(PGconn *conn, const char *env, const char *integration,
                                 const char *name, bool with_source, PGresult **r)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " COLUMNS ", %s, f.id FROM functions f JOIN integrations i ON i.id = "
             "f.integration_id AND i.environment_id = f.environment_id WHERE f.environment_id = "
             "$1%s%s ORDER BY i.unique_key, f.name",
             with_source ? "f.source, f.previous_source" : "NULL, NULL",
             integration ? " AND i.unique_key = $2" : "", name ? " AND f.name = $3" : "");
    const char *params[] = {env, integration, name};
    return jn_pg_exec(conn, sql, name ? 3 : integration ? 2 : 1, params, r);
}

jn_err_t jn_functions_list(PGconn *conn, long long env_id, const char *integration,
                           jn_function_t **list, size_t *count)
{
    char env[24];
    env_text(env_id, env);
    *list = NULL;
    *count = 0;
    long long iid;
    jn_err_t err = integration ? find_integration(conn, env, integration, false, &iid) : JN_OK;
    PGresult *r = NULL;
    if (!err)
        err = select_functions(conn, env, integration, NULL, false, &r);
    if (err)
        return err;
    rows_to_list(r, list, count);
    return JN_OK;
}

jn_err_t jn_functions_sync_declarations(PGconn *conn, long long env_id, long long integration_id,
                                        json_object **out)
{
    char env[24], iid[24];
    env_text(env_id, env);
    snprintf(iid, sizeof iid, "%lld", integration_id);
    const char *params[] = {env, iid};
    PGresult *r = NULL;
    *out = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT declaration::text FROM functions WHERE environment_id = $1 "
                              "AND integration_id = $2 AND type = 'sync' ORDER BY name",
                              2, params, &r);
    if (err)
        return err;
    *out = json_object_new_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_object *d = json_tokener_parse(PQgetvalue(r, i, 0));
        if (d)
            json_object_array_add(*out, d);
    }
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_functions_get(PGconn *conn, long long env_id, const char *integration, const char *name,
                          bool with_source, jn_function_t *out)
{
    char env[24];
    env_text(env_id, env);
    PGresult *r = NULL;
    jn_err_t err = select_functions(conn, env, integration, name, with_source, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    from_row(r, 0, with_source, out);
    PQclear(r);
    return JN_OK;
}

/* The matches of jn_functions_find: $3 and $4 NULL match everything; the search is a
 * plain substring, never a pattern. */
#define FIND_WHERE                                                                                 \
    " FROM functions f JOIN integrations i ON i.id = f.integration_id AND i.environment_id = "     \
    "f.environment_id WHERE f.environment_id = $1 AND i.unique_key = $2 AND ($3::text IS NULL "    \
    "OR f.type = $3) AND ($4::text IS NULL OR strpos(lower(f.name), lower($4)) > 0)"

jn_err_t jn_functions_find(PGconn *conn, long long env_id, const char *integration,
                           const jn_functions_query_t *q, jn_function_t **list, size_t *count,
                           size_t *total)
{
    char env[24], offset[24], limit[24];
    env_text(env_id, env);
    snprintf(offset, sizeof offset, "%zu", q->offset);
    snprintf(limit, sizeof limit, "%zu", q->limit);
    *list = NULL;
    *count = 0;
    *total = 0;
    long long iid;
    jn_err_t err = find_integration(conn, env, integration, false, &iid);
    if (err)
        return err;
    const char *params[] = {env, integration, q->type, q->search, limit, offset};
    PGresult *r = NULL;
    if ((err = jn_pg_exec(conn, "SELECT count(*)" FIND_WHERE, 4, params, &r)))
        return err;
    *total = (size_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    r = NULL;
    if ((err = jn_pg_exec(conn,
                          "SELECT " COLUMNS ", NULL, NULL, f.id" FIND_WHERE
                          " ORDER BY f.type COLLATE \"C\", f.name COLLATE \"C\" LIMIT $5 "
                          "OFFSET $6",
                          6, params, &r)))
        return err;
    rows_to_list(r, list, count);
    return JN_OK;
}
