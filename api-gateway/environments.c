/*
 * environments.c - dev/prod bootstrap, secret-key hashing and the authentication cache.
 *
 * Workload: every API request authenticates, so the check is in memory: one SHA-256 of
 * the presented key and a constant-time comparison per environment (a handful). The
 * cache reloads from PostgreSQL when older than RELOAD_SECONDS.
 */
#include "environments.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/log.h"

#define RELOAD_SECONDS 5
#define MAX_ENVIRONMENTS 64

typedef struct {
    jn_environment_t env;
    unsigned char hash[32];
} entry_t;

struct jn_env_cache {
    jn_pg_pool_t *pool;
    pthread_mutex_t lock;
    entry_t entries[MAX_ENVIRONMENTS];
    int count;
    time_t loaded_at;
};

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
        /* Shown once, on the terminal of whoever started the first gateway; never logged.
         * Set the variable to choose the key yourself. */
        printf("junction: environment '%s' created with secret key %s "
               "(shown once; set %s to choose your own)\n",
               name, key, variable);
        fflush(stdout);
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

static jn_err_t reload(jn_env_cache_t *c)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(c->pool, 2000, &err);
    if (!conn)
        return err;
    PGresult *r = NULL;
    err = jn_pg_exec(
        conn,
        "SELECT id, uuid::text, name, secret_key_hash, egress_allowlist FROM environments "
        "ORDER BY id",
        0, NULL, &r);
    jn_pg_release(c->pool, conn);
    if (err)
        return err;
    int n = PQntuples(r);
    if (n > MAX_ENVIRONMENTS)
        n = MAX_ENVIRONMENTS;
    for (int i = 0; i < n; i++) {
        entry_t *e = &c->entries[i];
        e->env.id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(e->env.uuid, sizeof e->env.uuid, "%s", PQgetvalue(r, i, 1));
        snprintf(e->env.name, sizeof e->env.name, "%s", PQgetvalue(r, i, 2));
        snprintf(e->env.egress_allowlist, sizeof e->env.egress_allowlist, "%s",
                 PQgetvalue(r, i, 4));
        const char *hex = PQgetvalue(r, i, 3);
        for (int b = 0; b < 32; b++) {
            unsigned v = 0;
            sscanf(hex + 2 * b, "%2x", &v);
            e->hash[b] = (unsigned char)v;
        }
    }
    c->count = n;
    c->loaded_at = time(NULL);
    PQclear(r);
    return JN_OK;
}

jn_env_cache_t *jn_env_cache_new(jn_pg_pool_t *pool)
{
    jn_env_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->pool = pool;
    pthread_mutex_init(&c->lock, NULL);
    if (reload(c) != JN_OK)
        jn_log_warn("environments", "could not load environments yet; will retry");
    return c;
}

void jn_env_cache_free(jn_env_cache_t *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    jn_secure_wipe(c->entries, sizeof c->entries);
    free(c);
}

jn_err_t jn_env_cache_authenticate(jn_env_cache_t *c, const char *secret_key, jn_environment_t *out)
{
    unsigned char digest[32];
    jn_crypto_sha256(secret_key, strlen(secret_key), digest);

    pthread_mutex_lock(&c->lock);
    jn_err_t err = JN_OK;
    if (c->count == 0 || time(NULL) - c->loaded_at >= RELOAD_SECONDS) {
        err = reload(c);
        /* Keep serving from the last good copy while PostgreSQL is away, and do not
         * retry on every request. */
        if (err && c->count > 0)
            c->loaded_at = time(NULL);
    }
    if (err && c->count == 0) {
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    /* Compare with every entry, whatever matches, so timing says nothing about which. */
    int match = -1;
    for (int i = 0; i < c->count; i++) {
        if (jn_crypto_equal(digest, c->entries[i].hash, sizeof digest))
            match = i;
    }
    if (match >= 0)
        *out = c->entries[match].env;
    pthread_mutex_unlock(&c->lock);
    return match >= 0 ? JN_OK : JN_ERR_NOT_FOUND;
}

jn_err_t jn_env_cache_set_allowlist(jn_env_cache_t *c, long long env_id, const char *allowlist)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(c->pool, 2000, &err);
    if (!conn)
        return err;
    char id[24];
    snprintf(id, sizeof id, "%lld", env_id);
    const char *params[] = {id, allowlist};
    err = jn_pg_exec(conn,
                     "UPDATE environments SET egress_allowlist = $2, updated_at = now() "
                     "WHERE id = $1",
                     2, params, NULL);
    jn_pg_release(c->pool, conn);
    if (err)
        return err;
    pthread_mutex_lock(&c->lock);
    err = reload(c);
    pthread_mutex_unlock(&c->lock);
    return err;
}
