/*
 * integrations.h - the integrations store: a provider configured in one environment
 * under a unique_key, with its OAuth client credentials sealed at rest.
 *
 * Every function takes the environment id and never reads or writes a row of another
 * environment: an integration of another environment is simply not found.
 * Client secrets and webhook secrets are sealed with the keyring (crypto.h) using
 * "integration:<id>:<field>" as associated data; they are opened only when the caller
 * asks for them (with_secrets).
 */
#ifndef JN_INTEGRATIONS_H
#define JN_INTEGRATIONS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/crypto.h"
#include "core/err.h"

typedef struct {
    long long id;
    char *unique_key;
    char *provider;
    char *display_name;     /* may be NULL */
    char *credentials_type; /* "OAUTH2", "OAUTH1", "TBA" or NULL */
    char *client_id;
    char *client_secret;  /* plaintext; only filled with with_secrets */
    char *scopes;         /* comma-separated, as Nango stores them */
    char *webhook_secret; /* plaintext; only filled with with_secrets */
    bool has_webhook_secret;
    bool forward_webhooks;
    json_object *integration_config; /* owned reference */
    json_object *custom;             /* owned reference */
    char created_at[40];             /* ISO 8601 UTC with milliseconds */
    char updated_at[40];
} jn_integration_t;

/* What a create or update sets. NULL pointers and false has_ flags mean "not given":
 * create uses defaults, update leaves the stored value. */
typedef struct {
    const char *unique_key;
    const char *provider;
    const char *display_name;
    bool has_credentials;
    const char *credentials_type;
    const char *client_id;
    const char *client_secret;
    const char *scopes;
    const char *webhook_secret; /* the secret provider webhooks are verified with, whatever
                                   the provider's auth mode: NULL keeps it, "" clears it */
    bool has_forward_webhooks;
    bool forward_webhooks;
    json_object *integration_config; /* borrowed */
    json_object *custom;             /* borrowed */
} jn_integration_input_t;

/* Frees the strings and references inside it (not the struct), wiping secrets. */
void jn_integration_cleanup(jn_integration_t *it);

/* All integrations of the environment, ordered by creation, without secrets. *list is a
 * new array of *count entries; free each with jn_integration_cleanup, then the array. */
jn_err_t jn_integrations_list(PGconn *conn, long long env_id, jn_integration_t **list,
                              size_t *count);

/* One integration by unique_key: JN_ERR_NOT_FOUND when absent in this environment. */
jn_err_t jn_integrations_get(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                             const char *unique_key, bool with_secrets, jn_integration_t *out);

/* Creates; JN_ERR_CONFLICT when unique_key is taken in this environment. */
jn_err_t jn_integrations_create(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                                const jn_integration_input_t *in, jn_integration_t *out);

/* Updates the given fields (a new unique_key renames). JN_ERR_NOT_FOUND, JN_ERR_CONFLICT. */
jn_err_t jn_integrations_update(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                                const char *unique_key, const jn_integration_input_t *in,
                                jn_integration_t *out);

/* Deletes; JN_ERR_NOT_FOUND when absent. */
jn_err_t jn_integrations_delete(PGconn *conn, long long env_id, const char *unique_key);

#endif
