/*
 * environments.h - environments and their secret keys, as the gateway sees them.
 *
 * At start-up jn_environments_ensure() makes sure "dev" and "prod" exist. A key given in
 * JUNCTION_SECRET_KEY_DEV / _PROD becomes that environment's key at every start (so
 * operators rotate keys by redeploying); without one, a key is generated when the
 * environment is first created and printed once to standard output.
 * Keys are stored only as SHA-256 hashes. Authentication hashes the presented key and
 * compares it in constant time with every environment's hash from an in-memory cache,
 * reloaded at most every few seconds so a rotation by another gateway is picked up.
 */
#ifndef JN_GATEWAY_ENVIRONMENTS_H
#define JN_GATEWAY_ENVIRONMENTS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "core/config.h"
#include "core/err.h"
#include "store/pg.h"

typedef struct {
    long long id;
    char uuid[40];
    char name[72];
    char egress_allowlist[1024]; /* CIDRs admitted although internal; see egress.h */
} jn_environment_t;

typedef struct jn_env_cache jn_env_cache_t;

/* Creates dev and prod if missing and applies configured keys (see above). */
jn_err_t jn_environments_ensure(PGconn *conn, const jn_config_t *cfg);

/* A cache over the environments table; loads it once now. */
jn_env_cache_t *jn_env_cache_new(jn_pg_pool_t *pool);
void jn_env_cache_free(jn_env_cache_t *cache);

/* Finds the environment whose key is secret_key. JN_ERR_NOT_FOUND when none matches,
 * JN_ERR_DB_UNAVAILABLE when the cache is stale and cannot be reloaded. Thread-safe. */
jn_err_t jn_env_cache_authenticate(jn_env_cache_t *cache, const char *secret_key,
                                   jn_environment_t *out);

/* Sets the environment's egress allow-list (already validated) and reloads the cache. */
jn_err_t jn_env_cache_set_allowlist(jn_env_cache_t *cache, long long env_id, const char *allowlist);

#endif
