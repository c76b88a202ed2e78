/*
 * env_cache.c - a copy-on-reload array of environments behind a mutex.
 */
#include "engine/env_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "providers/egress.h"

struct jn_env_cache {
    jn_pg_pool_t *pool;
    pthread_mutex_t lock;
    jn_environment_row_t *rows;
    size_t count;
    bool loaded;
};

jn_err_t jn_env_cache_reload(jn_env_cache_t *c)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(c->pool, 2000, &err);
    if (!conn)
        return err;
    jn_environment_row_t *rows = NULL;
    size_t count = 0;
    err = jn_environments_load(conn, &rows, &count);
    jn_pg_release(c->pool, conn);
    if (err)
        return err;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < count; i++)
        rows[i].env.egress = jn_egress_policy_shared(rows[i].env.egress_allowlist);
    jn_environment_row_t *old = c->rows;
    size_t old_count = c->count;
    c->rows = rows;
    c->count = count;
    c->loaded = true;
    pthread_mutex_unlock(&c->lock);
    if (old) {
        jn_secure_wipe(old, old_count * sizeof *old);
        free(old);
    }
    return JN_OK;
}

jn_env_cache_t *jn_env_cache_new(jn_pg_pool_t *pool)
{
    jn_env_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->pool = pool;
    pthread_mutex_init(&c->lock, NULL);
    if (jn_env_cache_reload(c) != JN_OK)
        jn_log_warn("environments", "could not load environments yet; will retry");
    return c;
}

void jn_env_cache_free(jn_env_cache_t *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    if (c->rows) {
        jn_secure_wipe(c->rows, c->count * sizeof *c->rows);
        free(c->rows);
    }
    free(c);
}

jn_err_t jn_env_cache_authenticate(jn_env_cache_t *c, const char *secret_key, jn_environment_t *out)
{
    unsigned char digest[32];
    jn_crypto_sha256(secret_key, strlen(secret_key), digest);
    pthread_mutex_lock(&c->lock);
    if (!c->loaded) {
        pthread_mutex_unlock(&c->lock);
        return JN_ERR_DB_UNAVAILABLE;
    }
    /* Compare with every entry, whatever matches, so timing says nothing about which. */
    size_t match = SIZE_MAX;
    for (size_t i = 0; i < c->count; i++) {
        if (jn_crypto_equal(digest, c->rows[i].key_hash, sizeof digest))
            match = i;
    }
    if (match != SIZE_MAX)
        *out = c->rows[match].env;
    pthread_mutex_unlock(&c->lock);
    return match != SIZE_MAX ? JN_OK : JN_ERR_NOT_FOUND;
}

static jn_err_t find(jn_env_cache_t *c, long long id, const char *uuid, jn_environment_t *out)
{
    pthread_mutex_lock(&c->lock);
    jn_err_t err = c->loaded ? JN_ERR_NOT_FOUND : JN_ERR_DB_UNAVAILABLE;
    for (size_t i = 0; i < c->count; i++) {
        if (uuid ? strcmp(c->rows[i].env.uuid, uuid) == 0 : c->rows[i].env.id == id) {
            *out = c->rows[i].env;
            err = JN_OK;
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return err;
}

jn_err_t jn_env_cache_get(jn_env_cache_t *c, long long id, jn_environment_t *out)
{
    return find(c, id, NULL, out);
}

jn_err_t jn_env_cache_get_by_uuid(jn_env_cache_t *c, const char *uuid, jn_environment_t *out)
{
    return find(c, 0, uuid, out);
}
