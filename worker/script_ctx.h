/*
 * script_ctx.h - running a script: the `ctx` object it receives, and the host
 * interface through which ctx reaches the rest of the worker.
 *
 * One run = one fresh sandbox (common/scripts/sandbox.h) = one ctx. The job runner
 * implements jn_script_host_t for the job's connection and calls an entry point below;
 * the entry point loads the script, checks its declaration, installs ctx, runs exec (or
 * on_webhook), validates what comes back and returns a classified outcome. Nothing the
 * script creates survives the run.
 *
 * What a script can reach is exactly the host's functions for the one connection the
 * runner bound them to: no ctx method takes a connection or an integration, so a script
 * cannot name another. ctx itself cannot be changed: it is a userdata with a locked
 * metatable (getmetatable gives "ctx", setmetatable and rawset fail, fields are
 * read-only), and its methods refuse any other `self`.
 *
 * The host interface (the seam between scripts and the job pipeline):
 *   - every pointer the script side passes in is borrowed for the call only;
 *   - whatever a host function returns through an out-parameter is new and becomes the
 *     caller's (json-c references it must put, malloc'd buffers it must free);
 *   - a host function returns JN_OK or an error with a one-line why that names no
 *     secret (scripts see it). The class of the error decides what the script sees:
 *       JN_ERR_INVALID    the request was refused (bad URL, egress policy, unknown
 *                         model): a script error, catchable with pcall
 *       JN_ERR_TIMEOUT    the run's deadline passed: the run ends with a timeout
 *       JN_ERR_TOO_LARGE  a size cap was hit: a script error
 *       anything else     a host error (network, database), catchable; uncaught it
 *                         ends the run as JN_SCRIPT_HOST (retryable or not as the
 *                         jn_err_t says, outcome.host_err)
 *   - a host function must return within timeout_ms (from the sandbox's deadline) and
 *     may block the calling thread until then: runs happen off the consumer's poll loop;
 *   - functions a kind of run does not need may be NULL (an action has no records); ctx
 *     then raises "ctx:<method> is not available in this run".
 */
#ifndef JN_WORKER_SCRIPT_CTX_H
#define JN_WORKER_SCRIPT_CTX_H

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/log.h"
#include "scripts/declaration.h"
#include "scripts/sandbox.h"

/* A request a script makes (ctx:get/post/put/patch/delete/proxy and every page of
 * ctx:paginate). */
typedef struct {
    const char *method;   /* "GET", "POST", "PUT", "PATCH" or "DELETE" */
    const char *endpoint; /* path (and query) under the base URL, e.g. "/v1/notes" */
    json_object *params;  /* query parameters name -> string; may be NULL */
    /* name -> string, checked (token names, no CR/LF); may be NULL. The provider's own
     * headers and the connection's credentials win over a script's of the same name. */
    json_object *headers;
    const char *body; /* may be NULL */
    size_t body_len;
    const char *content_type;      /* of body ("application/json" for a table); may be NULL */
    const char *base_url_override; /* replaces the provider's base URL; may be NULL. The
                                      host applies the provider session's rules (egress
                                      policy; credentials only to the provider's origin). */
    int retries;                   /* attempts after the first, 0..10 */
    json_object *retry_on;         /* extra retryable statuses (array of integers); may be NULL */
    long timeout_ms;               /* the host answers within this (the run's time left) */
    size_t max_response_bytes;     /* a larger body is JN_ERR_TOO_LARGE */
} jn_script_http_request_t;

typedef struct {
    int status;
    json_object *headers; /* new: lower-case name -> string (repeats joined with ", ") */
    char *body;           /* new (malloc), NUL-terminated; NULL when empty */
    size_t body_len;
} jn_script_http_response_t;

/* Frees what a response holds. */
void jn_script_http_response_cleanup(jn_script_http_response_t *res);

typedef enum {
    JN_SCRIPT_RECORDS_SAVE,   /* upsert full records */
    JN_SCRIPT_RECORDS_UPDATE, /* merge partial records into existing ones */
    JN_SCRIPT_RECORDS_DELETE, /* mark deleted (the objects carry at least the id) */
} jn_script_records_op_t;

typedef struct {
    void *ud; /* passed to every function */

    /* Sends req through the connection's provider session (credentials, retries, rate
     * limits, egress policy). On JN_OK *res is filled, whatever the status. */
    jn_err_t (*http)(void *ud, const jn_script_http_request_t *req, jn_script_http_response_t *res,
                     char *why, size_t why_len);

    /* The provider's pagination defaults (provider.proxy.paginate), borrowed and valid
     * for the run, or NULL when the provider has none. */
    json_object *(*paginate_config)(void *ud);

    /* The connection as Nango's getConnection shows it to a script (id, provider config
     * key, provider, connection_config, metadata, credentials of this connection only;
     * never an integration's client secret). New object: the caller wipes its strings
     * once they are copied into the script and puts it. */
    jn_err_t (*connection)(void *ud, json_object **out, char *why, size_t why_len);

    /* The connection's metadata (a new object, {} when none); set replaces it, merge=true
     * merges the top-level keys of metadata into it. */
    jn_err_t (*get_metadata)(void *ud, json_object **out, char *why, size_t why_len);
    jn_err_t (*set_metadata)(void *ud, json_object *metadata, bool merge, char *why,
                             size_t why_len);

    /* The variables of the connection's environment, as Nango's getEnvironmentVariables
     * gives them: a new array of {name, value}. Values are secrets: the caller wipes them
     * once they are copied into the script, and puts the array. */
    jn_err_t (*environment_variables)(void *ud, json_object **out, char *why, size_t why_len);

    /* A line of the run's log (level as the script chose; msg not NUL-terminated, at
     * most JN_SCRIPT_LOG_LINE_MAX bytes, valid UTF-8). Never fails. */
    void (*log)(void *ud, jn_log_level_t level, const char *msg, size_t len);

    /* Syncs (and their webhook handlers). The checkpoint is a flat object; *out is NULL
     * when none was saved. save with NULL clears it. */
    jn_err_t (*get_checkpoint)(void *ud, json_object **out, char *why, size_t why_len);
    jn_err_t (*save_checkpoint)(void *ud, json_object *checkpoint, char *why, size_t why_len);

    /* Applies op to records (a JSON array of at most JN_SCRIPT_RECORDS_BATCH objects, each
     * validated against `model` and with an "id" string or integer) of model. */
    jn_err_t (*records)(void *ud, jn_script_records_op_t op, const char *model,
                        json_object *records, char *why, size_t why_len);

    /* The stored records of model whose ids are in ids (an array of at most 100 strings):
     * *out is a new object id -> record, without the missing ones. */
    jn_err_t (*records_by_ids)(void *ud, const char *model, json_object *ids, json_object **out,
                               char *why, size_t why_len);
} jn_script_host_t;

#define JN_SCRIPT_RECORDS_BATCH 1000
#define JN_SCRIPT_LOG_LINE_MAX 4096
#define JN_SCRIPT_LOG_LINES_MAX 10000

/* What a run knows besides the host (all borrowed for the run; any may be NULL). */
typedef struct {
    const char *connection_id;
    const char *provider_config_key;
    const char *provider;
    const char *base_url;       /* the provider's resolved base URL: the origin link
                                   pagination may follow */
    const char *last_sync_date; /* syncs: ISO 8601 start of the last successful run */
    /* Set from another thread to stop the run at once (jn_sandbox_set_interrupt). */
    const atomic_bool *stop;
    const atomic_bool *lost;
    /* Webhook runs: on_webhook's third argument, what came with the payload
     * ({headers, event_type, provider, received_at}); borrowed, may be NULL. */
    json_object *webhook;
} jn_script_run_info_t;

/* The script a run executes. */
typedef struct {
    const char *name; /* the function's name, as in messages ("create-note:12: ...") */
    const char *source;
    size_t len;
} jn_script_source_t;

typedef struct {
    jn_script_status_t status;
    jn_script_error_t error; /* when status != JN_SCRIPT_OK; error.payload owned */
    jn_err_t host_err;       /* JN_SCRIPT_HOST: the host's error class (retryable?) */
    json_object *output;     /* action: the validated output (NULL = JSON null); owned */
    uint64_t instructions;   /* spent */
    size_t memory_peak;      /* bytes */
    int64_t duration_ms;
} jn_script_outcome_t;

/* Frees what an outcome holds. */
void jn_script_outcome_cleanup(jn_script_outcome_t *o);

/* Runs an action: input (borrowed; NULL = none) is checked against the declared input
 * (JN_SCRIPT_INVALID_INPUT), exec(ctx, input) runs, and its result is checked against
 * the declared output and capped at limits->output_bytes (JN_SCRIPT_INVALID_OUTPUT).
 * limits NULL = jn_sandbox_limits_action(). Returns out->status. */
jn_script_status_t jn_script_run_action(const jn_script_source_t *script, json_object *input,
                                        const jn_script_host_t *host,
                                        const jn_script_run_info_t *info,
                                        const jn_sandbox_limits_t *limits,
                                        jn_script_outcome_t *out);

/* Runs a sync's exec(ctx). limits NULL = jn_sandbox_limits_sync(). */
jn_script_status_t jn_script_run_sync(const jn_script_source_t *script,
                                      const jn_script_host_t *host,
                                      const jn_script_run_info_t *info,
                                      const jn_sandbox_limits_t *limits, jn_script_outcome_t *out);

/* Runs a sync's on_webhook(ctx, payload[, webhook]) for one provider webhook (payload
 * borrowed; info->webhook, when set, is the third argument). limits NULL =
 * jn_sandbox_limits_webhook(). */
jn_script_status_t jn_script_run_webhook(const jn_script_source_t *script, json_object *payload,
                                         const jn_script_host_t *host,
                                         const jn_script_run_info_t *info,
                                         const jn_sandbox_limits_t *limits,
                                         jn_script_outcome_t *out);

/* The API's answer to a failed action, in Nango's shapes: a new
 * {"error":{"code","message","payload"[,"upstream"]}} and its HTTP status:
 *   JN_SCRIPT_HTTP           424 script_http_error (payload: the provider's body;
 *                            upstream: {status, headers, body}, headers limited to
 *                            content-type, x-rate* and retry-after)
 *   JN_SCRIPT_ACTION_FAILED  500 action_script_failure (payload: the script's)
 *   JN_SCRIPT_INVALID_INPUT  400 invalid_action_input
 *   JN_SCRIPT_HOST           502 script_network_error
 *   others                   500 action_script_failure, payload {type, message} with
 *                            type jn_script_status_str() (script_error, cpu_limit, ...) */
json_object *jn_script_outcome_error_json(const jn_script_outcome_t *o, int *http_status);

#endif
