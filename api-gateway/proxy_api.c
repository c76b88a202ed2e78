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

#include "connections.h"
#include "custom_providers.h"
#include "egress.h"
#include "log.h"
#include "provider_http.h"
#include "token_refresh.h"

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
    json_object *credentials; /* the latest, owned */
} refresh_ctx_t;

/* After a 401: refresh now (single-flight), hand back the new credentials. */
static bool refresh_after_401(void *ud, json_object **credentials)
{
    refresh_ctx_t *r = ud;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(r->gw->svc->pg, 5000, &err);
    if (!conn)
        return false;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    jn_connection_t c;
    char why[512];
    err = jn_token_refresh(conn, &r->gw->keyring, r->gw->catalog, r->connection_row, true,
                           (double)now.tv_sec, &c, why, sizeof why);
    jn_pg_release(r->gw->svc->pg, conn);
    if (err)
        return false;
    *credentials = json_object_get(c.credentials);
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

static void proxy(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    const char *cid = jn_http_header(req, "Connection-Id");
    const char *pck = jn_http_header(req, "Provider-Config-Key");
    jn_field_error_t e;
    if (!cid || !*cid || strlen(cid) > MAX_KEY || !pck || !*pck || strlen(pck) > MAX_KEY) {
        jn_field_error(
            &e, (!cid || !*cid || strlen(cid) > MAX_KEY) ? "Connection-Id" : "Provider-Config-Key",
            "is required (at most %d characters)", MAX_KEY);
        jn_api_invalid(res, "invalid_headers", &e);
        return;
    }
    jn_provider_call_t call = {.method = req->method, .egress = NULL};
    const char *retry_on = jn_http_header(req, "Retry-On");
    if (!header_int(req, res, "Retries", 0, 10, &call.retries) ||
        !header_bool(req, res, "Decompress", &call.decompress) ||
        !header_bool(req, res, "Forward-Headers-On-Redirect", &call.forward_auth_on_redirect))
        return;
    if (retry_on && *retry_on && !valid_retry_on(retry_on)) {
        jn_field_error(&e, "Retry-On", "must be comma-separated HTTP status codes");
        jn_api_invalid(res, "invalid_headers", &e);
        return;
    }
    call.retry_on = retry_on;
    call.base_url_override = jn_http_header(req, "Base-Url-Override");
    forwarded_t fwd = {0};
    jn_http_header_each(req, collect_forwarded, &fwd);
    if (fwd.bad) {
        jn_field_error(&e, fwd.bad_name, "header values may not contain CR or LF");
        jn_api_invalid(res, "invalid_headers", &e);
        forwarded_cleanup(&fwd);
        return;
    }
    jn_egress_policy_t *policy = NULL;
    char why[512];
    if (jn_egress_policy_new(env.egress_allowlist, &policy, why, sizeof why) != JN_OK) {
        jn_http_respond_error(res, 500, "server_error",
                              "the environment's egress allow-list is invalid");
        forwarded_cleanup(&fwd);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        jn_egress_policy_free(policy);
        forwarded_cleanup(&fwd);
        return;
    }
    /* One read for the connection and its credentials; the row lock and the token request
     * happen only when the token is about to expire. */
    jn_connection_t c = {0};
    json_object *provider = NULL;
    jn_err_t err = jn_connections_get(conn, &gw->keyring, env.id, pck, cid, true, &c);
    long long row = c.id;
    if (!err)
        err = jn_providers_lookup(gw->catalog, conn, env.id, c.provider, &provider);
    if (!err && jn_token_expiring(&c, provider)) {
        jn_connection_t fresh;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        /* A failed refresh keeps the old credentials: the provider then decides. */
        if (jn_token_refresh(conn, &gw->keyring, gw->catalog, row, false, (double)now.tv_sec,
                             &fresh, why, sizeof why) == JN_OK) {
            jn_connection_cleanup(&c);
            c = fresh;
        }
    }
    jn_api_db_release(gw, conn);
    if (err) {
        char what[600];
        snprintf(what, sizeof what, "connection '%s' of integration '%s'", cid, pck);
        jn_api_store_error(res, err, what);
        jn_egress_policy_free(policy);
        forwarded_cleanup(&fwd);
        return;
    }

    const char *rest = jn_http_param(req, "*");
    char endpoint[4096];
    snprintf(endpoint, sizeof endpoint, "/%s", rest ? rest : "");
    char *query = jn_http_query_string(req);
    refresh_ctx_t refresh = {gw, row, NULL};
    jn_provider_target_t target = {c.provider, provider, c.credentials, c.connection_config};
    call.endpoint = endpoint;
    call.query = query;
    call.headers = (const char *const *)fwd.headers;
    call.body = req->body_len ? req->body : NULL;
    call.body_len = req->body_len;
    call.egress = policy;
    bool oauth =
        strcmp(c.credentials_type, "OAUTH2") == 0 || strcmp(c.credentials_type, "OAUTH2_CC") == 0;
    call.refresh = oauth ? refresh_after_401 : NULL;
    call.refresh_ud = &refresh;

    jn_provider_stream_t *stream = NULL;
    err = jn_provider_stream_open(gw->provider_http, &target, &call, &stream, why, sizeof why);
    free(query);
    forwarded_cleanup(&fwd);
    jn_connection_cleanup(&c);
    json_object_put(provider);
    jn_egress_policy_free(policy);
    if (err == JN_ERR_INVALID) {
        jn_http_respond_error(res, 400, "invalid_proxy_request", "%s", why);
        return;
    }
    if (err) {
        jn_http_respond_error(res, err == JN_ERR_TIMEOUT ? 504 : 502, "upstream_unavailable", "%s",
                              why);
        return;
    }
    /* Status, safe headers, then the body as it arrives. The content type points into the
     * stream, which lives until the response is finished. */
    const char *type = jn_provider_stream_header_get(stream, "content-type");
    long long length = -1;
    const char *cl = jn_provider_stream_header_get(stream, "content-length");
    if (cl && !call.decompress)
        length = strtoll(cl, NULL, 10);
    long status = jn_provider_stream_status(stream);
    jn_http_respond_stream(res, (int)status, type ? type : "application/octet-stream", length,
                           stream_body, stream, stream_free);
    for (int i = 0; i < jn_provider_stream_header_count(stream); i++) {
        const char *line = jn_provider_stream_header(stream, i);
        if (!safe_response_header(line, call.decompress) ||
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
    jn_http_route(http, "*", "/proxy/*", proxy, gw);
    jn_http_route(http, "GET", "/junction/environment", get_environment, gw);
    jn_http_route(http, "PATCH", "/junction/environment", patch_environment, gw);
}
