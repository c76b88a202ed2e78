/*
 * session.h - a provider session: one connection of one environment, ready to call its
 * provider.
 *
 * Opening a session finds the connection (in memory when it can: conn_cache.h; otherwise
 * in PostgreSQL, on a task pool thread), its provider's definition, and credentials that
 * are not about to expire (refreshing them first when they are). A call through the
 * session gets the credentials injected, the environment's egress policy, retries and
 * rate-limit handling (provider_http.h), and one credential refresh and retry after a 401.
 * The proxy uses it from the event loop; scripts use the blocking forms from their job
 * threads. It is the one path from Junction to a provider on behalf of a connection.
 *
 * A session is reference-counted (refreshes in flight hold it); close it when done. Any
 * credentials a session has held stay in memory until it is closed, so that calls started
 * with them can finish.
 */
#ifndef JN_SESSION_H
#define JN_SESSION_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/crypto.h"
#include "core/err.h"
#include "net/taskpool.h"
#include "providers/catalog.h"
#include "providers/conn_cache.h"
#include "providers/provider_http.h"
#include "store/environments.h"
#include "store/pg.h"

/* What sessions need from the process; built once (the engine does). */
typedef struct {
    jn_pg_pool_t *pg;
    const jn_crypto_keyring_t *keyring;
    const jn_catalog_t *catalog;
    jn_taskpool_t *tasks;
    jn_provider_http_t *http;
    jn_conn_cache_t *cache;
} jn_session_deps_t;

typedef struct jn_session jn_session_t;

/* The outcome of an asynchronous open, on the loop. On success s is the caller's (close
 * it); on failure s is NULL and err is JN_ERR_NOT_FOUND (no such connection), JN_ERR_BUSY
 * (the task pool is full), JN_ERR_DB_UNAVAILABLE / JN_ERR_TIMEOUT, with why. */
typedef void (*jn_session_open_fn)(jn_session_t *s, jn_err_t err, const char *why, void *ud);

/* Opens a session on the loop thread; done runs on the loop, possibly before this returns
 * (when everything is in memory). deps must outlive the session. */
void jn_session_open(const jn_session_deps_t *deps, const jn_environment_t *env,
                     const char *provider_config_key, const char *connection_id,
                     jn_session_open_fn done, void *ud);

/* The same from a thread that may block (not the loop's). */
jn_err_t jn_session_open_sync(const jn_session_deps_t *deps, const jn_environment_t *env,
                              const char *provider_config_key, const char *connection_id,
                              jn_session_t **out, char *why, size_t why_len);

/* The connection as of the session's current credentials (borrowed, valid until close).
 * Its JSON objects are shared: read them, never modify or reference-count them. */
const jn_connection_t *jn_session_connection(const jn_session_t *s);
/* The provider's definition (borrowed, valid until close; read-only as above). */
json_object *jn_session_provider(const jn_session_t *s);
const jn_environment_t *jn_session_environment(const jn_session_t *s);

/* Starts a call through the session on the loop thread (see jn_provider_start): target,
 * egress policy and refresh are filled in from the session. The stream may outlive this
 * call but not jn_session_close(). */
void jn_session_call(jn_session_t *s, const jn_provider_call_t *call, jn_provider_head_fn on_head,
                     void *ud, jn_provider_stream_t **out);

/* A whole call from a thread that may block (scripts): refreshes first when the
 * credentials are about to expire, then jn_provider_fetch(). */
jn_err_t jn_session_fetch(jn_session_t *s, const jn_provider_call_t *call, size_t max_body,
                          jn_provider_response_t *out, char *why, size_t why_len);

/* Closes the session (any thread). NULL is fine. */
void jn_session_close(jn_session_t *s);

#endif
