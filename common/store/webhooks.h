/*
 * webhooks.h - webhooks to the customer's app: Nango's payloads, and enqueueing their
 * deliveries (docs/webhooks.md).
 *
 * Enqueueing decides and records; it sends nothing. It reads the environment's settings
 * (webhook_settings.h), drops the webhook when its switch is off, resolves the destinations
 * (the connection's webhook_url_override replaces both environment URLs; otherwise the
 * primary and the secondary URL, each once), serializes the body once with keys sorted by
 * bytes, and writes one delivery job per destination (a jobs row of kind "delivery" and its
 * deliveries row with the exact text to send). It runs inside the caller's transaction
 * when there is one, so a webhook is recorded exactly when what it tells of commits;
 * otherwise it makes its own. After the commit the caller sends the returned jobs'
 * messages (net/job_message.h); a message that is never sent is sent by the scheduler's
 * resend, so nothing is lost either way.
 *
 * Payload builders return new objects in Nango's shapes (type, from, camelCase fields).
 */
#ifndef JN_WEBHOOKS_H
#define JN_WEBHOOKS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "store/jobs.h"

#define JN_WEBHOOK_MAX_DESTINATIONS 2
/* The largest body a webhook may have, serialized (a forwarded provider payload may be big;
 * more than this is refused rather than stored). */
#define JN_WEBHOOK_MAX_BODY (4 * 1024 * 1024)

typedef enum {
    JN_WEBHOOK_AUTH,
    JN_WEBHOOK_SYNC,
    JN_WEBHOOK_ASYNC_ACTION,
    JN_WEBHOOK_FORWARD,
} jn_webhook_type_t;

/* "auth", "sync", "async_action", "forward". */
const char *jn_webhook_type_name(jn_webhook_type_t type);
jn_err_t jn_webhook_type_parse(const char *name, jn_webhook_type_t *out);

/* The setting that decides whether a webhook is sent. */
typedef enum {
    JN_WEBHOOK_SEND_ALWAYS, /* a sync with changes, a forward */
    JN_WEBHOOK_ON_AUTH_CREATION,
    JN_WEBHOOK_ON_AUTH_REFRESH_ERROR,
    JN_WEBHOOK_ON_SYNC_COMPLETION_ALWAYS, /* a sync without changes */
    JN_WEBHOOK_ON_SYNC_ERROR,
    JN_WEBHOOK_ON_ASYNC_ACTION_COMPLETION,
} jn_webhook_switch_t;

/* The delivery jobs written, whose messages the caller sends after committing. */
typedef struct {
    jn_job_ref_t jobs[JN_WEBHOOK_MAX_DESTINATIONS];
    size_t count;
} jn_webhook_jobs_t;

/* The body's text as sent: its canonical JSON (core/canonical_json.h: keys sorted by
 * bytes at every level, no whitespace, '/' not escaped, numbers by value). A new string
 * (free()); NULL when the body holds what JSON cannot (invalid UTF-8, NaN; *len 0) or its
 * text would exceed JN_WEBHOOK_MAX_BODY (*len past it). */
char *jn_webhook_serialize(json_object *body, size_t *len);

/* Enqueues body (any JSON value; serialized here) for environment env_id (see above).
 * connection_row is the connections.id it is about (its override applies and its names are
 * recorded with the delivery), 0 for none. out gets the jobs written (none when the switch
 * is off or no URL is set), for the caller to send; a caller that cannot send (no Kafka
 * producer at hand) passes NULL, and the jobs are then marked due at once, so that the
 * scheduler's next resend pass sends them. JN_ERR_TOO_LARGE past JN_WEBHOOK_MAX_BODY;
 * JN_ERR_NOT_FOUND when connection_row is not a connection of env_id. */
jn_err_t jn_webhooks_enqueue(PGconn *conn, long long env_id, long long connection_row,
                             jn_webhook_type_t type, jn_webhook_switch_t sw, json_object *body,
                             jn_webhook_jobs_t *out);

/* ---- auth: a connection created or overridden, or its token refresh failed ---- */

typedef struct {
    const char *connection_id;
    const char *provider_config_key;
    const char *provider;
    const char *auth_mode;   /* "OAUTH2", "API_KEY", … */
    const char *environment; /* the environment's name */
    const char *operation;   /* "creation", "override" or "refresh" */
    bool success;
    json_object *tags;     /* the connection's tags; may be NULL */
    json_object *end_user; /* the connection's end user as stored; may be NULL */
    const char *error_type, *error_description; /* when !success */
} jn_webhook_auth_t;

json_object *jn_webhook_auth_body(const jn_webhook_auth_t *a);

/* Builds and enqueues it: creation and override under on_auth_creation, a failed refresh
 * under on_auth_refresh_error (a successful refresh sends nothing, as in Nango). */
jn_err_t jn_webhooks_enqueue_auth(PGconn *conn, long long env_id, long long connection_row,
                                  const jn_webhook_auth_t *a, jn_webhook_jobs_t *out);

/* ---- sync: one per model after a run ---- */

typedef struct {
    const char *connection_id;
    const char *provider_config_key;
    const char *sync_name;
    const char *sync_variant; /* "base" when NULL */
    const char *model;
    const char *sync_type; /* "INITIAL", "INCREMENTAL" or "WEBHOOK" */
    bool success;
    /* success */
    const char *modified_after; /* ISO 8601: the run's start */
    long long added, updated, deleted;
    json_object *checkpoint_from, *checkpoint_to; /* may be NULL; "checkpoints" when either */
    /* failure */
    const char *error_type, *error_description;
    json_object *error_payload; /* may be NULL */
    const char *started_at, *failed_at;
} jn_webhook_sync_t;

json_object *jn_webhook_sync_body(const jn_webhook_sync_t *s);

/* Builds and enqueues it: a success with changes always, one without changes under
 * on_sync_completion_always, a failure under on_sync_error. */
jn_err_t jn_webhooks_enqueue_sync(PGconn *conn, long long env_id, long long connection_row,
                                  const jn_webhook_sync_t *s, jn_webhook_jobs_t *out);

/* ---- async_action: an action called with X-Async reached its final outcome ---- */

json_object *jn_webhook_async_action_body(const char *connection_id,
                                          const char *provider_config_key, const char *job_id);

/* Builds and enqueues it for the action job job_id of connection connection_row, under
 * on_async_action_completion. */
jn_err_t jn_webhooks_enqueue_async_action(PGconn *conn, long long env_id, long long connection_row,
                                          const char *job_id, jn_webhook_jobs_t *out);

/* ---- forward: a provider webhook passed on to the app ---- */

/* Wrapped {from: provider, type: "forward", providerConfigKey, connectionId, payload} when
 * connection_id is given; the provider's payload itself (a reference) when no connection
 * matched, as Nango does. */
json_object *jn_webhook_forward_body(const char *provider, const char *provider_config_key,
                                     const char *connection_id, json_object *payload);

/* Builds and enqueues it (always sent; the integration decides whether to forward).
 * connection_row 0 when no connection matched. */
jn_err_t jn_webhooks_enqueue_forward(PGconn *conn, long long env_id, long long connection_row,
                                     const char *provider, const char *provider_config_key,
                                     const char *connection_id, json_object *payload,
                                     jn_webhook_jobs_t *out);

#endif
