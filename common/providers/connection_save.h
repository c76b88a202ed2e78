/*
 * connection_save.h - storing a connection the way every path must: the import API, the end
 * user's connect flows (API key, basic, client credentials, OAuth) and, later, anything
 * else that creates one.
 *
 * The integration must exist in the environment; the credentials' type must be its
 * provider's auth mode; API key credentials hold exactly what the provider declares;
 * connection_config passes connection_config.h for where it came from; when asked, the
 * credentials are verified with the provider's verification request (an import stores what
 * it is given, as Nango's does, so a bulk migration is never blocked by a provider); then
 * the row is created or its credentials replaced. No database connection is held while a
 * provider is asked. The HTTP mapping of the errors belongs to the caller.
 */
#ifndef JN_CONNECTION_SAVE_H
#define JN_CONNECTION_SAVE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/json_util.h"
#include "providers/connection_config.h"
#include "providers/session.h"
#include "store/connections.h"
#include "store/environments.h"
#include "store/webhooks.h"

/* What to store; all borrowed. connection_id NULL: a new UUID is made. */
typedef struct {
    const char *provider_config_key;
    const char *connection_id;
    const char *credentials_type;
    json_object *credentials;
    long long expires_at;
    json_object *connection_config;
    json_object *metadata;
    json_object *end_user;
    json_object *tags;
    const char *webhook_url_override;
} jn_connection_save_t;

/* Why a save failed, for the caller to map: the code says which. */
typedef struct {
    jn_field_error_t field; /* JN_ERR_INVALID: the field that is wrong */
    char why[600];          /* every other error: one line for the API user */
} jn_connection_save_error_t;

/* Saves in (see above) with deps' pool, keys, catalog and transport (a thread that may
 * block; not the loop's). verify runs the provider's verification request first. The auth
 * webhook (operation creation or override) is enqueued in the same transaction as the row
 * (store/webhooks.h); webhooks (may be NULL) gets its delivery jobs, whose messages the
 * caller sends. JN_OK with *out (with credentials; cleanup it) and *created. Errors:
 *   JN_ERR_NOT_FOUND   the integration (or its custom provider) does not exist (why)
 *   JN_ERR_INVALID     a field is wrong (e->field)
 *   JN_ERR_UPSTREAM    the provider refused the credentials or could not be asked (why)
 *   store errors       JN_ERR_DB_UNAVAILABLE, JN_ERR_TIMEOUT, JN_ERR_CONFLICT, ... (why) */
jn_err_t jn_connection_save(const jn_session_deps_t *deps, const jn_environment_t *env,
                            const jn_connection_save_t *in, jn_conncfg_source_t source, bool verify,
                            jn_connection_t *out, bool *created, jn_webhook_jobs_t *webhooks,
                            jn_connection_save_error_t *e);

/* Runs the provider's verification request (proxy.verification) with credentials and
 * config. JN_OK when the provider accepts them or declares no verification;
 * JN_ERR_UPSTREAM with why when it refuses them or cannot be asked. Blocks. */
jn_err_t jn_connection_verify(jn_provider_http_t *http, const jn_environment_t *env,
                              const char *provider_name, json_object *provider,
                              json_object *credentials, json_object *connection_config, char *why,
                              size_t why_len);

#endif
