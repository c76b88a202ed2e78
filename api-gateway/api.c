/*
 * api.c - authentication, database borrowing and error envelopes for API handlers.
 */
#include "api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "job_waiters.h"
#include "core/metrics.h"

#define DB_WAIT_MS 5000

/* Counts of something in progress per environment, each held under a cap (environments
 * with something in progress are few: a short list). */
typedef struct {
    long long env_id;
    int count;
} env_count_t;

struct env_slots {
    pthread_mutex_t lock;
    int limit;
    env_count_t *envs;
    size_t n, cap;
};

static struct env_slots *slots_new(int limit)
{
    struct env_slots *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    pthread_mutex_init(&s->lock, NULL);
    s->limit = limit;
    return s;
}

static void slots_free(struct env_slots *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->envs);
    free(s);
}

/* Takes one of env_id's slots; false when it holds limit already. */
static bool slots_take(struct env_slots *s, long long env_id)
{
    bool ok = true;
    pthread_mutex_lock(&s->lock);
    size_t i = 0;
    while (i < s->n && s->envs[i].env_id != env_id)
        i++;
    if (i == s->n) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->envs = realloc(s->envs, s->cap * sizeof *s->envs);
            if (!s->envs)
                abort();
        }
        s->envs[s->n++] = (env_count_t){env_id, 0};
    }
    if (s->envs[i].count >= s->limit)
        ok = false;
    else
        s->envs[i].count++;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void slots_give(struct env_slots *s, long long env_id)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n; i++) {
        if (s->envs[i].env_id == env_id) {
            if (--s->envs[i].count == 0)
                s->envs[i] = s->envs[--s->n];
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

void jn_gateway_init(jn_gateway_t *gw, jn_engine_t *engine)
{
    gw->engine = engine;
    gw->catalog = engine->catalog;
    gw->keyring = engine->keyring;
    gw->envs = engine->envs;
    gw->provider_http = engine->provider_http;
    gw->jobs = jn_job_waiters_new(engine->loop, engine->listener);
    gw->flows = jn_taskpool_new("jn-flow", engine->config.long_request_threads,
                                engine->config.long_request_threads * 4);
    gw->flow_slots = slots_new(engine->config.long_requests_per_env);
    gw->action_waits = slots_new(engine->config.action_waits_per_env);
}

void jn_gateway_cleanup(jn_gateway_t *gw)
{
    jn_crypto_keyring_cleanup(&gw->keyring);
    jn_job_waiters_free(gw->jobs);
    gw->jobs = NULL;
    jn_taskpool_free(gw->flows);
    gw->flows = NULL;
    slots_free(gw->flow_slots);
    gw->flow_slots = NULL;
    slots_free(gw->action_waits);
    gw->action_waits = NULL;
}

/* The secret key of an "Authorization: Bearer <key>" header, or NULL. */
static const char *bearer_key(const jn_http_request_t *req)
{
    const char *auth = jn_http_header(req, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return NULL;
    const char *key = auth + 7;
    while (*key == ' ')
        key++;
    return *key ? key : NULL;
}

bool jn_api_gate(const jn_http_request_t *req, size_t *max_body, jn_http_response_t *res, void *ud)
{
    (void)res;
    jn_gateway_t *gw = ud;
    const char *key = bearer_key(req);
    jn_environment_t env;
    if (key && jn_env_cache_authenticate(gw->envs, key, &env) == JN_OK)
        return true;
    /* Providers post their webhooks anonymously: that route keeps its own cap. */
    if (req->route && strncmp(req->route, "/webhook/", 9) == 0)
        return true;
    if (*max_body > JN_API_ANONYMOUS_MAX_BODY)
        *max_body = JN_API_ANONYMOUS_MAX_BODY;
    return true;
}

bool jn_api_begin(jn_gateway_t *gw, const jn_http_request_t *req, jn_http_response_t *res,
                  jn_environment_t *env)
{
    const char *auth = jn_http_header(req, "Authorization");
    if (!auth || !*auth) {
        jn_http_respond_error(res, 401, "missing_auth_header",
                              "Authentication failed: the Authorization header is missing; "
                              "send Authorization: Bearer <secret key>");
        return false;
    }
    if (strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
        jn_http_respond_error(res, 401, "malformed_auth_header",
                              "Authentication failed: expected Authorization: Bearer <secret key>");
        return false;
    }
    const char *key = auth + 7;
    while (*key == ' ')
        key++;
    jn_err_t err = jn_env_cache_authenticate(gw->envs, key, env);
    if (err == JN_ERR_NOT_FOUND) {
        jn_metric_inc(jn_metrics_counter("jn_gateway_auth_failures_total",
                                         "Requests refused for a wrong secret key", NULL));
        jn_http_respond_error(res, 401, "unknown_account",
                              "Authentication failed: the secret key is not valid");
        return false;
    }
    if (err) {
        jn_http_respond_error(res, 503, "service_unavailable",
                              "the secret keys cannot be checked right now; retry shortly");
        return false;
    }
    return true;
}

PGconn *jn_api_db(jn_gateway_t *gw, jn_http_response_t *res)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(gw->engine->pg, DB_WAIT_MS, &err);
    if (!conn)
        jn_http_respond_error(res, 503, "service_unavailable",
                              "the database is unavailable; retry shortly");
    return conn;
}

void jn_api_db_release(jn_gateway_t *gw, PGconn *conn)
{
    jn_pg_release(gw->engine->pg, conn);
}

json_object *jn_api_body_object(const jn_http_request_t *req, jn_http_response_t *res)
{
    json_object *body = NULL;
    jn_field_error_t e;
    if (jn_json_parse(req->body, req->body_len, true, &body, &e) != JN_OK) {
        jn_api_invalid(res, "invalid_body", &e);
        return NULL;
    }
    return body;
}

/* The zod issue code Nango's errors[].code carries for a field error (its validation is
 * zod's): read from the message that json_util and the handlers write. */
static const char *issue_code(const char *message)
{
    static const struct {
        const char *start, *code;
    } codes[] = {
        {"unknown field", "unrecognized_keys"},
        {"is required", "invalid_type"},
        {"must be a ", "invalid_type"},
        {"must be an ", "invalid_type"},
        {"must be true or false", "invalid_type"},
        {"must be at most", "too_big"},
        {"at most", "too_big"},
        {"may not be empty", "too_small"},
        {"must be non-empty", "too_small"},
        {"must match", "invalid_string"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        if (strncmp(message, codes[i].start, strlen(codes[i].start)) == 0)
            return codes[i].code;
    }
    return "custom";
}

void jn_api_invalid(jn_http_response_t *res, const char *code, const jn_field_error_t *e)
{
    char message[512];
    if (e->path[0])
        snprintf(message, sizeof message, "%s: %s", e->path, e->message);
    else
        snprintf(message, sizeof message, "%s", e->message);
    json_object *path = json_object_new_array();
    if (e->path[0]) {
        /* "credentials.client_id" -> ["credentials", "client_id"] */
        char copy[sizeof e->path];
        snprintf(copy, sizeof copy, "%s", e->path);
        char *save = NULL;
        for (char *part = strtok_r(copy, ".", &save); part; part = strtok_r(NULL, ".", &save))
            json_object_array_add(path, json_object_new_string(part));
    }
    json_object *item = json_object_new_object();
    json_object_object_add(item, "code", json_object_new_string(issue_code(e->message)));
    json_object_object_add(item, "path", path);
    json_object_object_add(item, "message", json_object_new_string(e->message));
    json_object *errors = json_object_new_array();
    json_object_array_add(errors, item);
    json_object *err = json_object_new_object();
    json_object_object_add(err, "code", json_object_new_string(code));
    json_object_object_add(err, "message", json_object_new_string(message));
    json_object_object_add(err, "errors", errors);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "error", err);
    jn_http_respond_json(res, 400, root);
}

void jn_api_store_error(jn_http_response_t *res, jn_err_t err, const char *what)
{
    switch (err) {
    case JN_ERR_NOT_FOUND:
        jn_http_respond_error(res, 404, "not_found", "%s was not found", what);
        break;
    case JN_ERR_CONFLICT:
        jn_http_respond_error(res, 409, "conflict", "%s already exists", what);
        break;
    case JN_ERR_DB_UNAVAILABLE:
    case JN_ERR_TIMEOUT:
        jn_http_respond_error(res, 503, "service_unavailable",
                              "the database is unavailable; retry shortly");
        break;
    default:
        jn_log_error("api", "unexpected %s while handling %s", jn_err_str(err), what);
        jn_http_respond_error(res, 500, "server_error", "an internal error occurred");
        break;
    }
}

void jn_api_data(jn_http_response_t *res, json_object *data)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "data", data);
    jn_http_respond_json(res, 200, root);
}

void jn_api_success(jn_http_response_t *res)
{
    json_object *ok = json_object_new_object();
    json_object_object_add(ok, "success", json_object_new_boolean(1));
    jn_http_respond_json(res, 200, ok);
}

bool jn_api_uri_param(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
                      size_t max_len, const char **out)
{
    const char *v = jn_http_param(req, name);
    jn_field_error_t e;
    if (!v || !*v) {
        jn_field_error(&e, name, "is required");
    } else if (strlen(v) > max_len) {
        jn_field_error(&e, name, "must be at most %zu characters", max_len);
    } else {
        for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
            if (*p < 0x20 || *p == 0x7f) {
                jn_field_error(&e, name, "may not contain control characters");
                jn_api_invalid(res, "invalid_uri_params", &e);
                return false;
            }
        }
        *out = v;
        return true;
    }
    jn_api_invalid(res, "invalid_uri_params", &e);
    return false;
}

bool jn_api_header_int(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
                       int min, int max, int *out)
{
    const char *v = jn_http_header(req, name);
    if (!v || !*v)
        return true;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (*end || n < min || n > max) {
        jn_field_error_t e;
        jn_field_error(&e, name, "must be an integer from %d to %d", min, max);
        jn_api_invalid(res, "invalid_headers", &e);
        return false;
    }
    *out = (int)n;
    return true;
}

bool jn_api_header_bool(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
                        bool *out)
{
    const char *v = jn_http_header(req, name);
    if (!v || !*v)
        return true;
    if (strcasecmp(v, "true") == 0 || strcasecmp(v, "false") == 0) {
        *out = strcasecmp(v, "true") == 0;
        return true;
    }
    jn_field_error_t e;
    jn_field_error(&e, name, "must be true or false");
    jn_api_invalid(res, "invalid_headers", &e);
    return false;
}

bool jn_api_connection_headers(const jn_http_request_t *req, jn_http_response_t *res,
                               const char **connection_id, const char **provider_config_key)
{
    enum { MAX_KEY = 255 };
    const char *cid = jn_http_header(req, "Connection-Id");
    const char *pck = jn_http_header(req, "Provider-Config-Key");
    bool bad_cid = !cid || !*cid || strlen(cid) > MAX_KEY;
    if (bad_cid || !pck || !*pck || strlen(pck) > MAX_KEY) {
        jn_field_error_t e;
        jn_field_error(&e, bad_cid ? "Connection-Id" : "Provider-Config-Key",
                       "is required (at most %d characters)", MAX_KEY);
        jn_api_invalid(res, "invalid_headers", &e);
        return false;
    }
    *connection_id = cid;
    *provider_config_key = pck;
    return true;
}

/* ---- long requests ---- */

typedef struct {
    jn_gateway_t *gw;
    const jn_http_request_t *req;
    jn_http_response_t *res;
    jn_http_pending_t *pending;
    jn_http_handler_fn fn;
    void *ud;
} offload_t;

static void offload_run(void *arg)
{
    offload_t *o = arg;
    o->fn(o->req, o->res, o->ud);
    jn_http_pending_finish(o->pending);
    free(o);
}

void jn_api_offload(jn_gateway_t *gw, const jn_http_request_t *req, jn_http_response_t *res,
                    jn_http_handler_fn fn, void *ud)
{
    offload_t *o = calloc(1, sizeof *o);
    if (!o)
        abort();
    *o = (offload_t){gw, req, res, jn_http_defer(req), fn, ud};
    if (jn_taskpool_submit(gw->flows, offload_run, o) != JN_OK) {
        jn_http_respond_error(res, 503, "service_unavailable",
                              "too many long requests are in progress; retry shortly");
        jn_http_pending_finish(o->pending);
        free(o);
    }
}

bool jn_api_long_begin(jn_gateway_t *gw, long long env_id)
{
    return slots_take(gw->flow_slots, env_id);
}

void jn_api_long_busy(jn_http_response_t *res)
{
    jn_http_add_header(res, "Retry-After", "5");
    jn_http_respond_error(res, 503, "service_unavailable",
                          "too many long requests (connection attempts, deployments) are in "
                          "progress for this environment; retry shortly");
}

void jn_api_long_end(jn_gateway_t *gw, long long env_id)
{
    slots_give(gw->flow_slots, env_id);
}

bool jn_api_action_wait_begin(jn_gateway_t *gw, long long env_id)
{
    return slots_take(gw->action_waits, env_id);
}

void jn_api_action_wait_end(jn_gateway_t *gw, long long env_id)
{
    slots_give(gw->action_waits, env_id);
}
