/*
 * environments.c - dev/prod bootstrap, secret-key hashes, and reading the table.
 */
#include "store/environments.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "store/pg.h"

static jn_err_t ensure_one(PGconn *conn, const char *name, const char *configured,
                           const char *variable)
{
    char hex[65];
    if (configured[0]) {
        jn_crypto_sha256_hex(configured, hex);
        const char *params[] = {name, hex};
        jn_err_t err = jn_pg_exec(
            conn,
            "INSERT INTO environments (name, secret_key_hash) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET secret_key_hash = EXCLUDED.secret_key_hash, "
            "updated_at = now() WHERE environments.secret_key_hash <> EXCLUDED.secret_key_hash",
            2, params, NULL);
        if (err == JN_ERR_CONFLICT)
            jn_log_error("environments",
                         "%s is already the key of another environment; every environment "
                         "needs its own key",
                         variable);
        return err;
    }
    char key[37];
    jn_crypto_uuid4(key);
    jn_crypto_sha256_hex(key, hex);
    const char *params[] = {name, hex};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "INSERT INTO environments (name, secret_key_hash) VALUES ($1, $2) "
                              "ON CONFLICT (name) DO NOTHING RETURNING id",
                              2, params, &r);
    if (err == JN_OK && PQntuples(r) == 1) {
        if (isatty(STDOUT_FILENO)) {
            /* Shown once, on the terminal of whoever started the first process; never
             * logged, never written where a log collector reads. */
            printf("junction: environment '%s' created with secret key %s "
                   "(shown once; set %s to choose your own)\n",
                   name, key, variable);
            fflush(stdout);
        } else {
            jn_log_warn("environments",
                        "environment '%s' created with a generated secret key that is not "
                        "shown (standard output is not a terminal); set %s and restart to "
                        "choose the key",
                        name, variable);
        }
    }
    PQclear(r);
    jn_secure_wipe(key, sizeof key);
    return err;
}

jn_err_t jn_environments_ensure(PGconn *conn, const jn_config_t *cfg)
{
    jn_err_t err = ensure_one(conn, "dev", cfg->secret_key_dev, "JUNCTION_SECRET_KEY_DEV");
    if (!err)
        err = ensure_one(conn, "prod", cfg->secret_key_prod, "JUNCTION_SECRET_KEY_PROD");
    return err;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

jn_err_t jn_environments_load(PGconn *conn, jn_environment_row_t **rows, size_t *count)
{
    *rows = NULL;
    *count = 0;
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(
        conn,
        "SELECT id, uuid::text, name, secret_key_hash, egress_allowlist, script_limits::text "
        "FROM environments ORDER BY id",
        0, NULL, &r);
    if (err)
        return err;
    int n = PQntuples(r);
    jn_environment_row_t *out = calloc(n > 0 ? (size_t)n : 1, sizeof *out);
    if (!out)
        abort();
    for (int i = 0; i < n; i++) {
        jn_environment_row_t *e = &out[i];
        e->env.id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(e->env.uuid, sizeof e->env.uuid, "%s", PQgetvalue(r, i, 1));
        snprintf(e->env.name, sizeof e->env.name, "%s", PQgetvalue(r, i, 2));
        snprintf(e->env.egress_allowlist, sizeof e->env.egress_allowlist, "%s",
                 PQgetvalue(r, i, 4));
        const char *limits = PQgetvalue(r, i, 5);
        /* Too long to be valid settings: the defaults (limits.h never fails a run). */
        snprintf(e->env.script_limits, sizeof e->env.script_limits, "%s",
                 strlen(limits) < sizeof e->env.script_limits ? limits : "{}");
        const char *hex = PQgetvalue(r, i, 3);
        for (int b = 0; b < 32 && hex[2 * b] && hex[2 * b + 1]; b++) {
            int hi = hex_digit(hex[2 * b]), lo = hex_digit(hex[2 * b + 1]);
            e->key_hash[b] = (unsigned char)((hi < 0 ? 0 : hi) * 16 + (lo < 0 ? 0 : lo));
        }
    }
    PQclear(r);
    *rows = out;
    *count = (size_t)n;
    return JN_OK;
}

jn_err_t jn_environments_set_script_limits(PGconn *conn, long long env_id, const char *limits_json)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", env_id);
    const char *params[] = {id, limits_json};
    return jn_pg_exec_found(conn,
                            "UPDATE environments SET script_limits = $2::jsonb WHERE id = $1 "
                            "RETURNING 1",
                            2, params);
}

jn_err_t jn_environments_set_allowlist(PGconn *conn, long long env_id, const char *allowlist)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", env_id);
    const char *params[] = {id, allowlist};
    return jn_pg_exec_found(conn,
                            "UPDATE environments SET egress_allowlist = $2, updated_at = now() "
                            "WHERE id = $1 RETURNING id",
                            2, params);
}

jn_err_t jn_environments_set_cors_origins(PGconn *conn, long long env_id, const char *origins)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", env_id);
    const char *params[] = {id, origins};
    return jn_pg_exec_found(conn,
                            "UPDATE environments SET cors_allowed_origins = $2, updated_at = now() "
                            "WHERE id = $1 RETURNING id",
                            2, params);
}

jn_err_t jn_environments_get_cors_origins(PGconn *conn, long long env_id, char **out)
{
    *out = NULL;
    char id[24];
    snprintf(id, sizeof id, "%lld", env_id);
    const char *params[] = {id};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, "SELECT cors_allowed_origins FROM environments WHERE id = $1",
                              1, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    *out = strdup(PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!*out)
        abort();
    return JN_OK;
}
