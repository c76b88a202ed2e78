/*
 * api.h - what every public API handler of the gateway shares: the gateway's state,
 * authentication by secret key, borrowing a database connection, and the Nango error
 * envelope for each class of failure.
 *
 * A handler's first line is `if (!jn_api_begin(gw, req, res, &env)) return;` which
 * authenticates and scopes the request to one environment; every store call then
 * receives env.id, so no handler can reach another environment's rows.
 */
#ifndef JN_GATEWAY_API_H
#define JN_GATEWAY_API_H

#include <stdbool.h>

#include "providers/catalog.h"
#include "core/crypto.h"
#include "net/http_server.h"
#include "core/json_util.h"
#include "providers/provider_http.h"
#include "engine/engine.h"

typedef struct {
    jn_engine_t *engine;
    jn_catalog_t *catalog;             /* the engine's */
    jn_crypto_keyring_t keyring;       /* a copy of the engine's, wiped at exit */
    jn_env_cache_t *envs;              /* the engine's */
    jn_provider_http_t *provider_http; /* the engine's */
    struct jn_job_waiters *jobs;       /* requests waiting for jobs (job_waiters.h) */
    jn_taskpool_t *flows;              /* long requests (jn_api_offload) */
    struct env_slots *flow_slots;      /* long work in progress per environment */
    struct env_slots *action_waits;    /* synchronous action calls waiting, per environment */
} jn_gateway_t;

/* Binds the gateway to a started engine. */
void jn_gateway_init(jn_gateway_t *gw, jn_engine_t *engine);
void jn_gateway_cleanup(jn_gateway_t *gw);

/* The public server's gate (jn_http_gate_fn): a request that presents an environment's
 * secret key may send its route's whole body cap; any other request at most
 * JN_API_ANONYMOUS_MAX_BODY bytes, so unauthenticated clients cannot make the gateway
 * buffer large bodies - except on the provider-webhook route, public by design, whose own
 * cap (JUNCTION_WEBHOOK_MAX_BODY_BYTES) applies to everyone. Memory only: it never
 * blocks. */
#define JN_API_ANONYMOUS_MAX_BODY (64 * 1024)
bool jn_api_gate(const jn_http_request_t *req, size_t *max_body, jn_http_response_t *res, void *ud);

/* Authenticates the request (Authorization: Bearer <secret key>). On failure answers 401
 * (or 503 when the keys cannot be loaded) and returns false. Memory only. */
bool jn_api_begin(jn_gateway_t *gw, const jn_http_request_t *req, jn_http_response_t *res,
                  jn_environment_t *env);

/* Borrows a database connection, or answers 503 and returns NULL. */
PGconn *jn_api_db(jn_gateway_t *gw, jn_http_response_t *res);
void jn_api_db_release(jn_gateway_t *gw, PGconn *conn);

/* Parses the request body as a JSON object, or answers 400 invalid_body and returns NULL.
 * The result is a new reference. */
json_object *jn_api_body_object(const jn_http_request_t *req, jn_http_response_t *res);

/* 400 with code (invalid_body, invalid_query_params, invalid_uri_params) naming the field:
 * {"error":{"code","message","errors":[{"path":[...],"message"}]}}. */
void jn_api_invalid(jn_http_response_t *res, const char *code, const jn_field_error_t *e);

/* Answers the error of a store call: 404 not_found (naming what), 409 conflict, 503 when
 * PostgreSQL is unavailable, 500 otherwise. */
void jn_api_store_error(jn_http_response_t *res, jn_err_t err, const char *what);

/* {"data": data} with status 200; takes data. */
void jn_api_data(jn_http_response_t *res, json_object *data);

/* {"success": true} with status 200 (Nango's answer to deletes). */
void jn_api_success(jn_http_response_t *res);

/* Checks a path parameter: non-empty, at most max_len bytes, printable, no control
 * characters; otherwise answers 400 invalid_uri_params and returns false. */
bool jn_api_uri_param(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
                      size_t max_len, const char **out);

/* The connection a request names in its Connection-Id and Provider-Config-Key headers
 * (both required, at most 255 bytes), or answers 400 invalid_headers and returns false. */
bool jn_api_connection_headers(const jn_http_request_t *req, jn_http_response_t *res,
                               const char **connection_id, const char **provider_config_key);

/* For a request that may take seconds without the database (a connect flow waiting on a
 * provider, compiling a deployment's scripts): defers the answer and runs fn(req, res, ud)
 * on the gateway's pool for long requests, so a slow provider or a heavy deployment never
 * holds the threads that serve the rest of the API. Answers 503 when that pool's queue is
 * full. */
void jn_api_offload(jn_gateway_t *gw, const jn_http_request_t *req, jn_http_response_t *res,
                    jn_http_handler_fn fn, void *ud);

/* Takes one of environment env_id's slots for long work (at most
 * JUNCTION_LONG_REQUESTS_PER_ENVIRONMENT at once), so one environment cannot fill the
 * pool for the others. False when they are all taken (answer with jn_api_long_busy()).
 * Give a slot back with jn_api_long_end(). */
bool jn_api_long_begin(jn_gateway_t *gw, long long env_id);
void jn_api_long_end(jn_gateway_t *gw, long long env_id);

/* Takes one of environment env_id's slots for a caller waiting on a synchronous action
 * (at most JUNCTION_ACTION_WAITS_PER_ENVIRONMENT at once): each holds a connection, and
 * one environment must not fill the gateway's connection table. False when all are
 * taken. Give it back with jn_api_action_wait_end(). */
bool jn_api_action_wait_begin(jn_gateway_t *gw, long long env_id);
void jn_api_action_wait_end(jn_gateway_t *gw, long long env_id);

/* 503 with Retry-After: too many long requests in progress for the environment. */
void jn_api_long_busy(jn_http_response_t *res);

/* Reads an optional integer header within [min, max] into *out (left as is when absent),
 * or answers 400 invalid_headers and returns false. */
bool jn_api_header_int(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
                       int min, int max, int *out);

/* Reads an optional true/false header (any case) into *out, or answers 400. */
bool jn_api_header_bool(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
                        bool *out);

#endif
