/*
 * env_variables.c - SQL for environment_variables (migration 0035).
 *
 * Only sealed values reach PostgreSQL (so no statement, error or log line of the
 * database ever holds a plain value). Writes take the environment's row lock first.
 */
#include "store/env_variables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/json_util.h"
#include "core/log.h"
#include "store/pg.h"

/* name, created_at and updated_at (ISO 8601 UTC with milliseconds) */
#define COLUMNS                                                                                    \
    "name, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "          \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

bool jn_env_variable_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > JN_ENV_VARIABLE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool other = (c >= '0' && c <= '9') || c == '.' || c == '-';
        if (!letter && (i == 0 || !other))
            return false;
    }
    return true;
}

bool jn_env_variable_value_valid(const char *value, size_t len, char *why, size_t why_len)
{
    if (len == 0) {
        jn_err_why(JN_ERR_INVALID, why, why_len, "may not be empty");
        return false;
    }
    if (len > JN_ENV_VARIABLE_VALUE_MAX_BYTES || memchr(value, '\0', len) ||
        !jn_utf8_valid(value, len)) {
        jn_err_why(JN_ERR_INVALID, why, why_len,
                   len > JN_ENV_VARIABLE_VALUE_MAX_BYTES
                       ? "must be at most %d characters"
                       : "must be text (UTF-8 without NUL characters) of at most %d characters",
                   JN_ENV_VARIABLE_VALUE_MAX);
        return false;
    }
    size_t chars = 0;
    for (size_t i = 0; i < len; i++)
        chars += ((unsigned char)value[i] & 0xC0) != 0x80;
    if (chars > JN_ENV_VARIABLE_VALUE_MAX) {
        jn_err_why(JN_ERR_INVALID, why, why_len, "must be at most %d characters",
                   JN_ENV_VARIABLE_VALUE_MAX);
        return false;
    }
    return true;
}

void jn_env_variables_free(jn_env_variable_t *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        if (list[i].value) {
            jn_secure_wipe(list[i].value, list[i].value_len);
            free(list[i].value);
        }
        free(list[i].name);
    }
    free(list);
}

static void aad_for(long long env_id, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "environment:%lld:variable:%s", env_id, name);
}

static char *seal(const jn_crypto_keyring_t *ring, long long env_id,
                  const jn_env_variable_input_t *var)
{
    char aad[JN_ENV_VARIABLE_NAME_MAX + 64];
    aad_for(env_id, var->name, aad, sizeof aad);
    char *blob = NULL;
    if (jn_crypto_seal(ring, var->value, var->value_len, aad, strlen(aad), &blob) != JN_OK)
        abort(); /* only fails on OpenSSL internal errors */
    return blob;
}

jn_err_t jn_env_variables_list(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                               bool with_values, jn_env_variable_t **list, size_t *n)
{
    *list = NULL;
    *n = 0;
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env};
    PGresult *r = NULL;
    static const char *const sql[] = {
        "SELECT " COLUMNS
        " FROM environment_variables WHERE environment_id = $1 ORDER BY name COLLATE \"C\"",
        "SELECT " COLUMNS ", value_sealed FROM environment_variables WHERE environment_id = $1 "
        "ORDER BY name COLLATE \"C\"",
    };
    jn_err_t err = jn_pg_exec(conn, sql[with_values], 1, params, &r);
    if (err)
        return err;
    int rows = PQntuples(r);
    jn_env_variable_t *out = calloc(rows ? (size_t)rows : 1, sizeof *out);
    if (!out)
        abort();
    for (int i = 0; i < rows && !err; i++) {
        out[i].name = jn_pg_dup(r, i, 0);
        snprintf(out[i].created_at, sizeof out[i].created_at, "%s", PQgetvalue(r, i, 1));
        snprintf(out[i].updated_at, sizeof out[i].updated_at, "%s", PQgetvalue(r, i, 2));
        if (!with_values)
            continue;
        char aad[JN_ENV_VARIABLE_NAME_MAX + 64];
        aad_for(env_id, out[i].name, aad, sizeof aad);
        if (jn_crypto_open(ring, PQgetvalue(r, i, 3), aad, strlen(aad), &out[i].value,
                           &out[i].value_len) != JN_OK) {
            jn_log_error("env_variables",
                         "environment %lld: variable %s cannot be decrypted (wrong "
                         "JUNCTION_ENCRYPTION_KEY, or the row was tampered with)",
                         env_id, out[i].name);
            err = JN_ERR_INTERNAL;
        }
    }
    PQclear(r);
    if (err) {
        jn_env_variables_free(out, (size_t)rows);
        return err;
    }
    *list = out;
    *n = (size_t)rows;
    return JN_OK;
}

/* Starts a transaction holding the environment's row lock; env receives the id as text. */
static jn_err_t begin_locked(PGconn *conn, long long env_id, char env[24])
{
    snprintf(env, 24, "%lld", env_id);
    const char *params[] = {env};
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (!err &&
        (err = jn_pg_exec_found(conn, "SELECT id FROM environments WHERE id = $1 FOR NO KEY UPDATE",
                                1, params)))
        jn_pg_exec_script(conn, "ROLLBACK");
    return err;
}

static jn_err_t upsert(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                       const char *env, const jn_env_variable_input_t *var)
{
    char *sealed = seal(ring, env_id, var);
    const char *params[] = {env, var->name, sealed};
    jn_err_t err = jn_pg_exec(conn,
                              "INSERT INTO environment_variables (environment_id, name, "
                              "value_sealed) VALUES ($1, $2, $3) ON CONFLICT (environment_id, "
                              "name) DO UPDATE SET value_sealed = EXCLUDED.value_sealed, "
                              "updated_at = now()",
                              3, params, NULL);
    free(sealed);
    return err;
}

static jn_err_t finish(PGconn *conn, jn_err_t err)
{
    if (!err)
        return jn_pg_exec_script(conn, "COMMIT");
    jn_pg_exec_script(conn, "ROLLBACK");
    return err;
}

jn_err_t jn_env_variables_replace(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                                  const jn_env_variable_input_t *vars, size_t n)
{
    char env[24];
    jn_err_t err = begin_locked(conn, env_id, env);
    if (err)
        return err;
    json_object *names = json_object_new_array();
    for (size_t i = 0; i < n && !err; i++) {
        err = upsert(conn, ring, env_id, env, &vars[i]);
        json_object_array_add(names, json_object_new_string(vars[i].name));
    }
    if (!err) {
        const char *params[] = {env, json_object_to_json_string_ext(names, JSON_C_TO_STRING_PLAIN)};
        err = jn_pg_exec(conn,
                         "DELETE FROM environment_variables WHERE environment_id = $1 AND name "
                         "NOT IN (SELECT jsonb_array_elements_text($2::jsonb))",
                         2, params, NULL);
    }
    json_object_put(names);
    return finish(conn, err);
}

jn_err_t jn_env_variables_set(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                              const jn_env_variable_input_t *var, bool *created)
{
    char env[24];
    jn_err_t err = begin_locked(conn, env_id, env);
    if (err)
        return err;
    PGresult *r = NULL;
    const char *params[] = {env, var->name};
    err = jn_pg_exec(conn,
                     "SELECT count(*), coalesce(bool_or(name = $2), false) FROM "
                     "environment_variables WHERE environment_id = $1",
                     2, params, &r);
    if (!err) {
        long count = strtol(PQgetvalue(r, 0, 0), NULL, 10);
        bool exists = PQgetvalue(r, 0, 1)[0] == 't';
        *created = !exists;
        if (!exists && count >= JN_ENV_VARIABLES_MAX)
            err = JN_ERR_TOO_LARGE;
        else
            err = upsert(conn, ring, env_id, env, var);
    }
    PQclear(r);
    return finish(conn, err);
}

jn_err_t jn_env_variables_delete(PGconn *conn, long long env_id, const char *name)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, name};
    return jn_pg_exec_found(conn,
                            "DELETE FROM environment_variables WHERE environment_id = $1 AND "
                            "name = $2 RETURNING name",
                            2, params);
}
