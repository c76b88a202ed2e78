/*
 * env_cache.h - every environment in memory, for authenticating requests without touching
 * PostgreSQL.
 *
 * Every API request authenticates, so the check is in memory: one SHA-256 of the presented
 * key and a constant-time comparison with each environment's hash. The cache is reloaded
 * off the request path: when the invalidation listener hears that the environments table
 * changed, and on a timer as a safety net; a request never waits for a reload. Each
 * environment carries its egress policy from jn_egress_policy_shared(), the one place
 * that builds them (it fails closed the same way for everyone).
 */
#ifndef JN_ENV_CACHE_H
#define JN_ENV_CACHE_H

#include "core/err.h"
#include "store/environments.h"
#include "store/pg.h"

typedef struct jn_env_cache jn_env_cache_t;

/* A cache over pool's environments table, loaded once now (a failure is logged and the
 * next reload retries). */
jn_env_cache_t *jn_env_cache_new(jn_pg_pool_t *pool);
void jn_env_cache_free(jn_env_cache_t *cache);

/* Reloads from PostgreSQL (blocking). Thread-safe. */
jn_err_t jn_env_cache_reload(jn_env_cache_t *cache);

/* Finds the environment whose key is secret_key: JN_ERR_NOT_FOUND when none matches,
 * JN_ERR_DB_UNAVAILABLE when the cache was never loaded. Memory only; thread-safe. */
jn_err_t jn_env_cache_authenticate(jn_env_cache_t *cache, const char *secret_key,
                                   jn_environment_t *out);

/* The environment with this id (or, with by_uuid, this uuid). JN_ERR_NOT_FOUND. */
jn_err_t jn_env_cache_get(jn_env_cache_t *cache, long long id, jn_environment_t *out);
jn_err_t jn_env_cache_get_by_uuid(jn_env_cache_t *cache, const char *uuid, jn_environment_t *out);

#endif
