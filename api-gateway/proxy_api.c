/*
 * proxy_api.c - ALL /proxy/... with Nango's semantics: the request goes to the provider of
 * the connection named by Connection-Id and Provider-Config-Key, with its credentials
 * injected; the provider's status, safe headers and body come back, streamed.
 *
 * Request headers: Retries (0..10), Retry-On (comma-separated statuses), Decompress,
 * Base-Url-Override, Forward-Headers-On-Redirect, and Nango-Proxy-<Name> forwarded as
 * <Name> (Content-Type is forwarded as is). The query string passes through.
 * Also here: GET/PATCH /junction/environment, where an environment's egress allow-list
 * (internal addresses its providers may live at) is read and set.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store/connections.h"
#include "providers/custom_providers.h"
#include "providers/egress.h"
#include "core/log.h"
#include "providers/provider_http.h"
#include "providers/token_refresh.h"

#define MAX_FORWARDED 48
#define MAX_KEY 255

typedef struct {
    char *headers[MAX_FORWARDED + 1];
    int count;
    bool bad;
    char bad_name[64];
} forwarded_t;

static void collect_forwarded(const char *name, const char *value, void *ud)
{
    forwarded_t *f = ud;
    const char *out_name = NULL;
    if (strncasecmp(name, "Nango-Proxy-", 12) == 0 && name[12])
        out_name = name + 12;
    else if (strcasecmp(name, "Content-Type") == 0)
        out_name = name;
    if (!out_name || f->count == MAX_FORWARDED)
        return;
    if (strpbrk(value, "\r\n") || strpbrk(out_name, "\r\n: ")) {
        f->bad = true;
        snprintf(f->bad_name, sizeof f->bad_name, "%s", name);
        return;
    }
    size_t n = strlen(out_name) + strlen(value) + 3;
    char *h = malloc(n);
    if (!h)
        abort();
    snprintf(h, n, "%s: %s", out_name, value);
    f->headers[f->count++] = h;
}

static void forwarded_cleanup(forwarded_t *f)
{
    for (int i = 0; i < f->count; i++)
        free(f->headers[i]);
}

/* Hop-by-hop and cross-origin headers are not passed back (RFC 9110 §7.6.1). */
static bool safe_response_header(const char *line, bool decompressed)
{
    static const char *const dropped[] = {"connection",          "keep-alive", "proxy-authenticate",
                                          "proxy-authorization", "te",         "trailer",
                                          "transfer-encoding",   "upgrade",    "content-length",
                                          "set-cookie",          NULL};
    const char *colon = strchr(line, ':');
    if (!colon)
        return false;
    size_t n = (size_t)(colon - line);
    for (size_t i = 0; dropped[i]; i++) {
        if (strlen(dropped[i]) == n && strncasecmp(line, dropped[i], n) == 0)
            return false;
    }
    if (n > 15 && strncasecmp(line, "access-control-", 15) == 0)
        return false;
    if (decompressed && n == 16 && strncasecmp(line, "content-encoding", 16) == 0)
        return false;
    return true;
}

static long stream_body(void *ud, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    return jn_provider_stream_read(ud, buf, max);
}

static void stream_free(void *ud)
{
    jn_provider_stream_close(ud);
}

typedef struct {
    jn_gateway_t *gw;
    long long connection_row;
    long long seq;            /* refresh_seq of the credentials the call was sent with */
    json_object *credentials; /* the latest, owned */
} refresh_ctx_t;

/* After a 401: refresh now (single-flight: unless newer credentials than those that got
 * the 401 are stored already), hand back the new credentials. */
static bool refresh_after_401(void *ud, json_object **credentials)
{
    refresh_ctx_t *r = ud;
    jn_connection_t c;
    char why[512];
    jn_err_t err = jn_token_refresh(r->gw->svc->pg, &r->gw->keyring, r->gw->catalog,
                                    r->connection_row, true, r->seq, &c, why, sizeof why);
    if (err)
        return false;
    /* Handed over, not shared: jn_connection_cleanup wipes the credentials it holds. */
    *credentials = c.credentials;
    c.credentials = NULL;
    jn_connection_cleanup(&c);
    return true;
}

static bool header_int(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
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

static bool header_bool(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
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

static bool valid_retry_on(const char *v)
{
    for (const char *p = v; *p;) {
        char *end = NULL;
        long code = strtol(p, &end, 10);
        if (end == p || code < 100 || code > 599)
            return false;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        else if (*p)
            return false;
        while (*p == ' ')
            p++;
    }
    return true;
}

/* Everything one proxied request needs, from its headers and the connection. */
typedef struct {
    jn_gateway_t *gw;
    jn_environment_t env;
    forwarded_t fwd;
    jn_egress_policy_t *policy;
    jn_connection_t c;
    json_object *provider;
    char endpoint[4096];
    char *query;
    refresh_ctx_t refresh;
    jn_provider_target_t target;
    jn_provider_call_t call;
} proxy_job_t;

static void job_cleanup(proxy_job_t *job)
{
    free(job->query);
    forwarded_cleanup(&job->fwd);
    jn_connection_cleanup(&job->c);
    json_object_put(job->provider);
    jn_egress_policy_free(job->policy);
    memset(job, 0, sizeof *job);
}

/* Authenticates, checks the headers, loads the connection (refreshing an expiring token)
 * and builds the call. False when res was answered with an error. */
static bool job_prepare(proxy_job_t *job, jn_gateway_t *gw, const jn_http_request_t *req,
                        jn_http_response_t *res)
{
    memset(job, 0, sizeof *job);
    job->gw = gw;
    if (!jn_api_begin(gw, req, res, &job->env))
        return false;
    const char *cid = jn_http_header(req, "Connection-Id");
    const char *pck = jn_http_header(req, "Provider-Config-Key");
    jn_field_error_t e;
    if (!cid || !*cid || strlen(cid) > MAX_KEY || !pck || !*pck || strlen(pck) > MAX_KEY) {
        jn_field_error(
            &e, (!cid || !*cid || strlen(cid) > MAX_KEY) ? "Connection-Id" : "Provider-Config-Key",
            "is required (at most %d characters)", MAX_KEY);
        jn_api_invalid(res, "invalid_headers", &e);
        return false;
    }
    jn_provider_call_t *call = &job->call;
    call->method = req->method;
    const char *retry_on = jn_http_header(req, "Retry-On");
    if (!header_int(req, res, "Retries", 0, 10, &call->retries) ||
        !header_bool(req, res, "Decompress", &call->decompress) ||
        !header_bool(req, res, "Forward-Headers-On-Redirect", &call->forward_auth_on_redirect))
        return false;
    if (retry_on && *retry_on && !valid_retry_on(retry_on)) {
        jn_field_error(&e, "Retry-On", "must be comma-separated HTTP status codes");
        jn_api_invalid(res, "invalid_headers", &e);
        return false;
    }
    call->retry_on = retry_on;
    call->base_url_override = jn_http_header(req, "Base-Url-Override");
    jn_http_header_each(req, collect_forwarded, &job->fwd);
    if (job->fwd.bad) {
        jn_field_error(&e, job->fwd.bad_name, "header values may not contain CR or LF");
        jn_api_invalid(res, "invalid_headers", &e);
        job_cleanup(job);
        return false;
    }
    char why[512];
    if (jn_egress_policy_new(job->env.egress_allowlist, &job->policy, why, sizeof why) != JN_OK) {
        jn_http_respond_error(res, 500, "server_error",
                              "the environment's egress allow-list is invalid");
        job_cleanup(job);
        return false;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        job_cleanup(job);
        return false;
    }
    /* One read for the connection and its credentials; a token refresh happens only when
     * the token is about to expire, with the database connection given back first. */
    jn_err_t err = jn_connections_get(conn, &gw->keyring, job->env.id, pck, cid, true, &job->c);
    if (!err)
        err = jn_providers_lookup(gw->catalog, conn, job->env.id, job->c.provider, &job->provider);
    jn_api_db_release(gw, conn);
    if (!err && jn_token_expiring(&job->c, job->provider)) {
        jn_connection_t fresh;
        /* A failed refresh keeps the old credentials: the provider then decides. */
        if (jn_token_refresh(gw->svc->pg, &gw->keyring, gw->catalog, job->c.id, false,
                             job->c.refresh_seq, &fresh, why, sizeof why) == JN_OK) {
            jn_connection_cleanup(&job->c);
            job->c = fresh;
        }
    }
    if (err) {
        char what[600];
        snprintf(what, sizeof what, "connection '%s' of integration '%s'", cid, pck);
        jn_api_store_error(res, err, what);
        job_cleanup(job);
        return false;
    }
    const char *rest = jn_http_param(req, "*");
    snprintf(job->endpoint, sizeof job->endpoint, "/%s", rest ? rest : "");
    job->query = jn_http_query_string(req);
    job->refresh = (refresh_ctx_t){gw, job->c.id, job->c.refresh_seq, NULL};
    job->target = (jn_provider_target_t){job->c.provider, job->provider, job->c.credentials,
                                         job->c.connection_config};
    call->endpoint = job->endpoint;
    call->query = job->query;
    call->headers = (const char *const *)job->fwd.headers;
    call->body = req->body_len ? req->body : NULL;
    call->body_len = req->body_len;
    call->egress = job->policy;
    bool oauth = strcmp(job->c.credentials_type, "OAUTH2") == 0 ||
                 strcmp(job->c.credentials_type, "OAUTH2_CC") == 0;
    call->refresh = oauth ? refresh_after_401 : NULL;
    call->refresh_ud = &job->refresh;
    return true;
}

static void respond_error(jn_http_response_t *res, jn_err_t err, const char *why)
{
    if (err == JN_ERR_INVALID)
        jn_http_respond_error(res, 400, "invalid_proxy_request", "%s", why);
    else
        jn_http_respond_error(res, err == JN_ERR_TIMEOUT ? 504 : 502, "upstream_unavailable", "%s",
                              why);
}

/* Status, safe headers, then the body as it arrives; the response takes the stream. The
 * content type points into the stream, which lives until the response is finished. */
static void respond_stream(jn_http_response_t *res, jn_provider_stream_t *stream, bool decompressed)
{
    const char *type = jn_provider_stream_header_get(stream, "content-type");
    long long length = -1;
    const char *cl = jn_provider_stream_header_get(stream, "content-length");
    if (cl && !decompressed)
        length = strtoll(cl, NULL, 10);
    long status = jn_provider_stream_status(stream);
    jn_http_respond_stream(res, (int)status, type ? type : "application/octet-stream", length,
                           stream_body, stream, stream_free);
    for (int i = 0; i < jn_provider_stream_header_count(stream); i++) {
        const char *line = jn_provider_stream_header(stream, i);
        if (!safe_response_header(line, decompressed) ||
            strncasecmp(line, "content-type:", 13) == 0)
            continue;
        char name[128];
        size_t n = (size_t)(strchr(line, ':') - line);
        if (n >= sizeof name)
            continue;
        memcpy(name, line, n);
        name[n] = '\0';
        const char *value = line + n + 1;
        while (*value == ' ')
            value++;
        jn_http_add_header(res, name, value);
    }
}

static void proxy(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    proxy_job_t job;
    if (!job_prepare(&job, ud, req, res))
        return;
    jn_provider_stream_t *stream = NULL;
    char why[512];
    jn_err_t err = jn_provider_stream_open(job.gw->provider_http, &job.target, &job.call, &stream,
                                           why, sizeof why);
    bool decompressed = job.call.decompress;
    job_cleanup(&job);
    if (err) {
        respond_error(res, err, why);
        return;
    }
    respond_stream(res, stream, decompressed);
}

/* ---- large uploads: the request body streams to the provider ---- */

/* Bodies up to this size are buffered, so the call can be retried; larger ones stream
 * through and are sent once. */
#define STREAM_UPLOAD_ABOVE (1024 * 1024)

typedef struct {
    proxy_job_t job;
    jn_provider_stream_t *stream;
    jn_http_response_t early; /* an error found before the body arrived */
    bool failed;
} upload_t;

static void *upload_open(const jn_http_request_t *req, void *ud)
{
    const char *length = jn_http_header(req, "Content-Length");
    const char *encoding = jn_http_header(req, "Transfer-Encoding");
    long long size = -1;
    if (length) {
        char *end = NULL;
        size = strtoll(length, &end, 10);
        if (*end || size <= STREAM_UPLOAD_ABOVE)
            return NULL;
    } else if (!encoding || strcasecmp(encoding, "chunked") != 0) {
        return NULL;
    }
    upload_t *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    if (!job_prepare(&u->job, ud, req, &u->early)) {
        u->failed = true;
        return u;
    }
    char why[512];
    jn_err_t err = jn_provider_upload_open(u->job.gw->provider_http, &u->job.target, &u->job.call,
                                           size, &u->stream, why, sizeof why);
    if (err) {
        respond_error(&u->early, err, why);
        u->failed = true;
    }
    return u;
}

static void upload_write(void *sink, const char *data, size_t len)
{
    upload_t *u = sink;
    if (!u->failed)
        jn_provider_upload_write(u->stream, data, len);
}

static void upload_finish(void *sink, const jn_http_request_t *req, jn_http_response_t *res)
{
    upload_t *u = sink;
    (void)req;
    if (u->failed) {
        *res = u->early;
        memset(&u->early, 0, sizeof u->early);
        return;
    }
    char why[512];
    jn_err_t err = jn_provider_upload_finish(u->stream, why, sizeof why);
    if (err) {
        respond_error(res, err, why);
        return;
    }
    respond_stream(res, u->stream, u->job.call.decompress);
    u->stream = NULL; /* the response owns it now */
}

static void upload_close(void *sink)
{
    upload_t *u = sink;
    jn_provider_stream_close(u->stream);
    jn_http_response_cleanup(&u->early);
    job_cleanup(&u->job);
    free(u);
}

static const jn_http_body_sink_t upload_sink = {upload_open, upload_write, upload_finish,
                                                upload_close};

static json_object *environment_json(const jn_environment_t *env)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(env->name));
    json_object_object_add(o, "uuid", json_object_new_string(env->uuid));
    json_object_object_add(o, "egress_allowlist", json_object_new_string(env->egress_allowlist));
    return o;
}

static void get_environment(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    jn_api_data(res, environment_json(&env));
}

static void patch_environment(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const fields[] = {"egress_allowlist", NULL};
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    const char *list = NULL;
    jn_egress_policy_t *policy = NULL;
    char why[256];
    if (jn_json_only_keys(body, fields, "", &e) ||
        jn_json_string(body, "egress_allowlist", true, sizeof env.egress_allowlist - 1, &list,
                       &e)) {
        jn_api_invalid(res, "invalid_body", &e);
    } else if (jn_egress_policy_new(list, &policy, why, sizeof why) != JN_OK) {
        jn_field_error(&e, "egress_allowlist", "%s", why);
        jn_api_invalid(res, "invalid_body", &e);
    } else {
        jn_err_t err = jn_env_cache_set_allowlist(gw->envs, env.id, list);
        if (err) {
            jn_api_store_error(res, err, "environment");
        } else {
            snprintf(env.egress_allowlist, sizeof env.egress_allowlist, "%s", list);
            jn_log_info("egress", "environment %s: egress allow-list set to '%s'", env.name, list);
            jn_api_data(res, environment_json(&env));
        }
    }
    jn_egress_policy_free(policy);
    json_object_put(body);
}

void jn_routes_proxy(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route_with_sink(http, "*", "/proxy/*", proxy, &upload_sink, gw);
    jn_http_route(http, "GET", "/junction/environment", get_environment, gw);
    jn_http_route(http, "PATCH", "/junction/environment", patch_environment, gw);
}
