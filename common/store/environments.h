/*
 * environments.h - environments, the tenant boundary, and their secret keys.
 *
 * At start-up jn_environments_ensure() makes sure "dev" and "prod" exist. A key given in
 * JUNCTION_SECRET_KEY_DEV / _PROD becomes that environment's key at every start (so
 * operators rotate keys by redeploying); without one, a key is generated when the
 * environment is first created and shown once on the terminal that started the process
 * (never in a log: on a platform whose standard output is collected, nothing is shown and
 * the operator sets the variable). Keys are stored only as SHA-256 hashes.
 */
#ifndef JN_ENVIRONMENTS_H
#define JN_ENVIRONMENTS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/err.h"

struct jn_egress_policy;

typedef struct {
    long long id;
    char uuid[40];
    char name[72];
    char egress_allowlist[1024]; /* CIDRs admitted although internal; see egress.h */
    char script_limits[512];     /* JSON as stored (scripts/limits.h); "{}" for defaults */
    /* The allow-list compiled (set by the engine's cache; lives as long as the process);
     * NULL admits nothing extra. */
    const struct jn_egress_policy *egress;
} jn_environment_t;

/* One row as loaded, with the key's hash. */
typedef struct {
    jn_environment_t env;
    unsigned char key_hash[32];
} jn_environment_row_t;

/* Creates dev and prod if missing and applies configured keys (see above). */
jn_err_t jn_environments_ensure(PGconn *conn, const jn_config_t *cfg);

/* Every environment, ordered by id: *rows is a new array of *count (free()). */
jn_err_t jn_environments_load(PGconn *conn, jn_environment_row_t **rows, size_t *count);

/* Sets the environment's egress allow-list (already validated). */
jn_err_t jn_environments_set_allowlist(PGconn *conn, long long env_id, const char *allowlist);

/* Sets the environment's script limits (a JSON object, already checked). */
jn_err_t jn_environments_set_script_limits(PGconn *conn, long long env_id, const char *limits_json);

/* The origins whose pages may call the end-user routes (already validated; "" = any). */
jn_err_t jn_environments_set_cors_origins(PGconn *conn, long long env_id, const char *origins);
/* *out is a new string (free()). */
jn_err_t jn_environments_get_cors_origins(PGconn *conn, long long env_id, char **out);

#endif
