/*
 * provider_webhooks.h - webhooks from providers, as jobs (docs/webhooks.md#provider-webhooks):
 * the intake job the gateway records for each webhook it accepts, the handler jobs a worker
 * fans it out into, and the lookups its routing needs.
 *
 * An intake job (kind "webhook", no connection) holds what was received, in its input:
 *   {"stage":"intake","integration_id":<n>,"integration":"<unique_key>","provider":"<name>",
 *    "body":"<the raw body, as text>","headers":{"<name>":"<value>"},"verified":<bool>}
 * A worker routes it and, in the transaction that finishes it, creates one handler job per
 * matched connection and sync that handles webhooks: kind "webhook", that connection,
 * function_name the sync's name, input
 *   {"stage":"handler","intake":"<intake job id>","variant":"<the sync's variant>",
 *    "route_path":"<path>"|null,"route_value":"<value>"|null}
 * A handler reads the body from its intake job, so a fan-out never copies it, and its own
 * row carries its lease, attempts and outcome like any job's. Every function is scoped by
 * environment id.
 */
#ifndef JN_PROVIDER_WEBHOOKS_H
#define JN_PROVIDER_WEBHOOKS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "store/jobs.h"

#define JN_PROVIDER_WEBHOOK_ATTEMPTS 3      /* per intake and per handler job */
#define JN_PROVIDER_WEBHOOK_HEADERS_MAX 32  /* headers kept with a webhook */
#define JN_PROVIDER_WEBHOOK_HEADER_MAX 4096 /* bytes of one kept header value */

/* What the gateway received and verified (borrowed). body is UTF-8 text without NUL. */
typedef struct {
    long long integration_id;
    const char *integration; /* its unique_key */
    const char *provider;
    const char *body;
    size_t body_len;
    json_object *headers; /* name -> value, the ones kept for scripts */
    bool verified;        /* false: an unsigned provider's, taken on trust */
} jn_provider_webhook_t;

/* Records the intake job of w for environment env_id; *out is the job to send. */
jn_err_t jn_provider_webhooks_record(PGconn *conn, long long env_id, const jn_provider_webhook_t *w,
                                     jn_job_ref_t *out);

/* Reads an intake job's input back (pointers borrowed from input). JN_ERR_INVALID when it
 * is not one. */
jn_err_t jn_provider_webhooks_read(json_object *input, jn_provider_webhook_t *out);

/* A connection a webhook is routed to. */
typedef struct {
    long long row; /* connections.id */
    char connection_id[256];
    char route_value[256]; /* the routing value that matched it */
} jn_webhook_target_t;

/* The connections of integration integration_id (of env_id) whose connection_config value
 * under config_key (NULL: whose connection_id) is one of values (a JSON array of strings),
 * at most limit, oldest first. *out is new (free()). */
jn_err_t jn_provider_webhooks_targets(PGconn *conn, long long env_id, long long integration_id,
                                      const char *config_key, json_object *values, size_t limit,
                                      jn_webhook_target_t **out, size_t *count);

/* A sync a webhook is handed to. */
typedef struct {
    long long connection_row;
    char name[256];
    char variant[256];
} jn_webhook_sync_ref_t;

/* The running syncs (not paused, not stopped) of the connections rows[0..n) of env_id whose
 * name is one of names (a JSON array of strings), at most limit, ordered by connection,
 * name and variant. *out is new (free()). */
jn_err_t jn_provider_webhooks_syncs(PGconn *conn, long long env_id, const long long *rows, size_t n,
                                    json_object *names, size_t limit, jn_webhook_sync_ref_t **out,
                                    size_t *count);

/* A handler job to create. */
typedef struct {
    long long connection_row;
    const char *sync_name;
    const char *variant;
    const char *intake_id;
    const char *route_path;  /* NULL when the provider does not route */
    const char *route_value; /* NULL when the provider does not route */
} jn_webhook_handler_t;

/* Creates the handler job h of environment env_id; *out is the job to send once the
 * transaction commits. */
jn_err_t jn_provider_webhooks_handler(PGconn *conn, long long env_id, const jn_webhook_handler_t *h,
                                      jn_job_ref_t *out);

/* Reads a handler job's input back (borrowed). JN_ERR_INVALID when it is not one. */
jn_err_t jn_provider_webhooks_read_handler(json_object *input, jn_webhook_handler_t *out);

#endif
