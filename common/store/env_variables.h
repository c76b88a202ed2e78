/*
 * env_variables.h - an environment's variables: name/value pairs a developer sets
 * (PUT /junction/environment/variables), that the app reads back with Nango's
 * GET /environment-variables and scripts with ctx:get_environment_variables().
 *
 * Values are secrets (API keys, signing secrets): they are sealed with the keyring
 * (AES-256-GCM) before they reach PostgreSQL, bound to the environment and the name, so
 * neither a log line nor a database dump shows them, and a sealed value moved to another
 * row does not open. Plain values exist only in memory returned by jn_env_variables_list
 * with values, and jn_env_variables_free wipes them.
 *
 * Every function takes the environment id and reaches only that environment's rows.
 * Writes of one environment's variables serialise on its row (FOR NO KEY UPDATE), so the
 * count cap holds under concurrent writers.
 */
#ifndef JN_ENV_VARIABLES_H
#define JN_ENV_VARIABLES_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/crypto.h"
#include "core/err.h"

#define JN_ENV_VARIABLE_NAME_MAX 256   /* bytes */
#define JN_ENV_VARIABLE_VALUE_MAX 4000 /* characters (code points) */
#define JN_ENV_VARIABLE_VALUE_MAX_BYTES (JN_ENV_VARIABLE_VALUE_MAX * 4)
#define JN_ENV_VARIABLES_MAX 100 /* per environment */

typedef struct {
    char *name;
    char *value; /* NULL unless asked for */
    size_t value_len;
    char created_at[40]; /* ISO 8601 UTC with milliseconds */
    char updated_at[40];
} jn_env_variable_t;

/* One variable to store (borrowed). */
typedef struct {
    const char *name;
    const char *value;
    size_t value_len;
} jn_env_variable_input_t;

/* Checks a name: a letter or _, then letters, digits, _ . or -, at most
 * JN_ENV_VARIABLE_NAME_MAX bytes. */
bool jn_env_variable_name_valid(const char *name);

/* Checks a value: valid UTF-8 without NUL, 1 to JN_ENV_VARIABLE_VALUE_MAX characters.
 * why names the rule broken, never the value. */
bool jn_env_variable_value_valid(const char *value, size_t len, char *why, size_t why_len);

/* Frees n variables and the array, wiping the values first. */
void jn_env_variables_free(jn_env_variable_t *list, size_t n);

/* The environment's variables ordered by name; with_values opens each value (a value
 * that does not open - a wrong JUNCTION_ENCRYPTION_KEY, a tampered row - is
 * JN_ERR_INTERNAL, logged by name). *list is new: jn_env_variables_free(). */
jn_err_t jn_env_variables_list(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                               bool with_values, jn_env_variable_t **list, size_t *n);

/* Replaces the whole set with vars (names unique and valid, values valid, at most
 * JN_ENV_VARIABLES_MAX: checked by the caller) in one transaction. A variable whose name
 * stays keeps its created_at. */
jn_err_t jn_env_variables_replace(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                                  const jn_env_variable_input_t *vars, size_t n);

/* Sets one variable (name and value valid), creating it (*created true) or replacing its
 * value. JN_ERR_TOO_LARGE, storing nothing, when it would be the environment's
 * JN_ENV_VARIABLES_MAX + 1st. */
jn_err_t jn_env_variables_set(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                              const jn_env_variable_input_t *var, bool *created);

/* Removes one variable. JN_ERR_NOT_FOUND when the environment has none by that name. */
jn_err_t jn_env_variables_delete(PGconn *conn, long long env_id, const char *name);

#endif
