/*
 * proxy_api.c - ALL /proxy/... with Nango's semantics: the request goes to the provider of
 * the connection named by Connection-Id and Provider-Config-Key, with its credentials
 * injected; the provider's status, safe headers and body come back, streamed.
 *
 * Request headers: Retries (0..10), Retry-On (comma-separated statuses), Decompress,
 * Base-Url-Override, Forward-Headers-On-Redirect, and Nango-Proxy-<Name> forwarded as
 * <Name> (Content-Type is forwarded as is). The path after /proxy is passed on exactly as
 * sent (percent-encoded; dot segments and encoded control characters refused); the query
 * string passes through.
 *
 * Everything runs on the event loop and never blocks: the connection comes from a
 * provider session (memory, or PostgreSQL on the task pool), the call from the
 * asynchronous transport, and the answer streams to the client as the provider sends it.
 * A client that goes away ends the provider call.
 */
#include "routes.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "providers/session.h"

#define MAX_FORWARDED 48

/* Bodies up to this size are buffered, so the call can be retried; larger ones stream
 * through and are sent once. */
#define STREAM_UPLOAD_ABOVE (1024 * 1024)

/* ---- request headers ---- */

/* Headers that belong to one hop (RFC 9110 §7.6.1) or frame the message: a caller may not
 * set them on the provider request, whatever it names them. */
static bool hop_header(const char *name)
{
    static const char *const hop[] = {
        "connection", "keep-alive",     "te",   "trailer", "transfer-encoding",
        "upgrade",    "content-length", "host", "expect",  "proxy-connection",
        NULL};
    for (int i = 0; hop[i]; i++) {
        if (strcasecmp(name, hop[i]) == 0)
            return true;
    }
    return strncasecmp(name, "proxy-", 6) == 0;
}

static bool token_name(const char *name)
{
    if (!*name)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p)))
            return false;
    }
    return true;
}

typedef struct {
    char *headers[MAX_FORWARDED + 1];
    int count;
    bool bad;
    char bad_name[96];
    char bad_why[96];
} forwarded_t;

/* Keeps Content-Type and the Nango-Proxy-<Name> headers whose Name is a token and an
 * end-to-end header; refuses the others. */
static void collect_forwarded(const char *name, const char *value, void *ud)
{
    forwarded_t *f = ud;
    const char *out_name = NULL;
    if (strncasecmp(name, "Nango-Proxy-", 12) == 0)
        out_name = name + 12;
    else if (strcasecmp(name, "Content-Type") == 0)
        out_name = name;
    if (!out_name || f->bad)
        return;
    if (!token_name(out_name)) {
        f->bad = true;
        snprintf(f->bad_name, sizeof f->bad_name, "%.80s", name);
        snprintf(f->bad_why, sizeof f->bad_why, "does not name a header");
        return;
    }
    if (hop_header(out_name)) {
        f->bad = true;
        snprintf(f->bad_name, sizeof f->bad_name, "%.80s", name);
        snprintf(f->bad_why, sizeof f->bad_why,
                 "names a hop-by-hop or framing header, which is never forwarded");
        return;
    }
    if (f->count == MAX_FORWARDED) {
        f->bad = true;
        snprintf(f->bad_name, sizeof f->bad_name, "Nango-Proxy-*");
        snprintf(f->bad_why, sizeof f->bad_why, "at most %d headers are forwarded", MAX_FORWARDED);
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
    f->count = 0;
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

/* An absolute http(s) URL with a host. */
static bool valid_base_url(const char *v)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = curl_url_set(u, CURLUPART_URL, v, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host &&
              (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* The path after /proxy must not walk out of the provider's base path: no "." or ".."
 * segment, however it is encoded. */
static bool path_stays_below(const char *raw)
{
    for (const char *p = raw; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char seg[16];
        size_t k = 0;
        for (size_t i = 0; i < n && k < sizeof seg - 1; i++) {
            if (p[i] == '%' && i + 2 < n + 1 && strncasecmp(p + i, "%2e", 3) == 0) {
                seg[k++] = '.';
                i += 2;
            } else {
                seg[k++] = p[i];
            }
        }
        seg[k] = '\0';
        if (n < sizeof seg && (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0))
            return false;
        if (!slash)
            break;
        p = slash + 1;
    }
    return true;
}

/* ---- one proxied request ---- */

typedef struct {
    jn_gateway_t *gw;
    const jn_http_request_t *req;
    jn_http_response_t *res;
    jn_http_pending_t *pending;
    jn_environment_t env;
    forwarded_t fwd;
    char endpoint[8192];
    char *query;
    jn_provider_call_t call;
    jn_session_t *session;
    jn_provider_stream_t *stream;
    bool opening;      /* the session is being opened: on_session owns what happens next */
    bool gone;         /* the client left */
    bool head_in;      /* the provider's head arrived */
    jn_err_t head_err; /* and how */
    char head_why[512];
    /* an upload */
    bool upload;
    bool body_ended;
    bool owned_by_response;   /* the streamed answer frees the job */
    jn_http_response_t early; /* an upload refused before its body was read */
    bool refused;
} proxy_job_t;

static void job_free(void *ud)
{
    proxy_job_t *job = ud;
    jn_provider_stream_close(job->stream);
    jn_session_close(job->session);
    forwarded_cleanup(&job->fwd);
    jn_http_response_cleanup(&job->early);
    free(job->query);
    free(job);
}

/* Frees a job whose answer does not own it; an upload's job goes with its sink. */
static void job_done(proxy_job_t *job)
{
    if (!job->upload)
        job_free(job);
}

/* Parses and checks the request's headers and path into job. False when res was answered
 * with an error. Memory only. */
static bool job_prepare(proxy_job_t *job, jn_gateway_t *gw, const jn_http_request_t *req,
                        jn_http_response_t *res)
{
    job->gw = gw;
    job->req = req;
    job->res = res;
    if (!jn_api_begin(gw, req, res, &job->env))
        return false;
    const char *cid = NULL, *pck = NULL;
    if (!jn_api_connection_headers(req, res, &cid, &pck))
        return false;
    jn_field_error_t e;
    jn_provider_call_t *call = &job->call;
    call->method = req->method;
    const char *retry_on = jn_http_header(req, "Retry-On");
    if (!jn_api_header_int(req, res, "Retries", 0, 10, &call->retries) ||
        !jn_api_header_bool(req, res, "Decompress", &call->decompress) ||
        !jn_api_header_bool(req, res, "Forward-Headers-On-Redirect",
                            &call->forward_auth_on_redirect))
        return false;
    if (retry_on && *retry_on && !valid_retry_on(retry_on)) {
        jn_field_error(&e, "Retry-On", "must be comma-separated HTTP status codes");
        jn_api_invalid(res, "invalid_headers", &e);
        return false;
    }
    call->retry_on = retry_on;
    const char *base = jn_http_header(req, "Base-Url-Override");
    if (base && *base && !valid_base_url(base)) {
        jn_field_error(&e, "Base-Url-Override", "must be an absolute http or https URL");
        jn_api_invalid(res, "invalid_headers", &e);
        return false;
    }
    call->base_url_override = base && *base ? base : NULL;
    jn_http_header_each(req, collect_forwarded, &job->fwd);
    if (job->fwd.bad) {
        jn_field_error(&e, job->fwd.bad_name, "%s", job->fwd.bad_why);
        jn_api_invalid(res, "invalid_headers", &e);
        return false;
    }
    const char *rest = jn_http_param(req, "*");
    if (!rest)
        rest = "";
    if (!path_stays_below(rest)) {
        jn_field_error(&e, "path", "may not contain '.' or '..' segments");
        jn_api_invalid(res, "invalid_uri_params", &e);
        return false;
    }
    /* Passed on encoded, but a provider decodes it: a CR or LF there could split a line
     * in whatever reads it next. */
    for (const unsigned char *p = (const unsigned char *)req->path; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            jn_field_error(&e, "path", "may not contain control characters");
            jn_api_invalid(res, "invalid_uri_params", &e);
            return false;
        }
    }
    if (strlen(rest) + 2 > sizeof job->endpoint) {
        jn_field_error(&e, "path", "is too long");
        jn_api_invalid(res, "invalid_uri_params", &e);
        return false;
    }
    snprintf(job->endpoint, sizeof job->endpoint, "/%s", rest);
    job->query = jn_http_query_string(req);
    call->endpoint = job->endpoint;
    call->query = job->query;
    call->headers = (const char *const *)job->fwd.headers;
    call->body = req->body_len ? req->body : NULL;
    call->body_len = req->body_len;
    return true;
}

static void job_answer(proxy_job_t *job)
{
    jn_http_pending_finish(job->pending);
}

static void respond_error(jn_http_response_t *res, jn_err_t err, const char *why)
{
    switch (err) {
    case JN_ERR_INVALID: jn_http_respond_error(res, 400, "invalid_proxy_request", "%s", why); break;
    case JN_ERR_TIMEOUT: jn_http_respond_error(res, 504, "upstream_timeout", "%s", why); break;
    case JN_ERR_BUSY:
        jn_http_add_header(res, "Retry-After", "1");
        jn_http_respond_error(res, 429, "too_many_requests", "%s", why);
        break;
    default: jn_http_respond_error(res, 502, "upstream_unavailable", "%s", why); break;
    }
}

static void respond_session_error_into(jn_http_response_t *res, jn_err_t err, const char *why)
{
    switch (err) {
    case JN_ERR_NOT_FOUND: jn_http_respond_error(res, 404, "unknown_connection", "%s", why); break;
    case JN_ERR_BUSY:
    case JN_ERR_DB_UNAVAILABLE:
    case JN_ERR_TIMEOUT:
        jn_http_add_header(res, "Retry-After", "1");
        jn_http_respond_error(res, 503, "service_unavailable", "%s", why);
        break;
    default:
        jn_log_error("proxy", "opening the connection failed: %s (%s)", why, jn_err_str(err));
        jn_http_respond_error(res, 500, "server_error", "an internal error occurred");
        break;
    }
}

static void on_provider_data(void *ud)
{
    proxy_job_t *job = ud;
    jn_http_wake(job->req, 0);
}

static long stream_body(void *ud, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    proxy_job_t *job = ud;
    long n = jn_provider_stream_read(job->stream, buf, max);
    return n == JN_PROVIDER_AGAIN ? JN_HTTP_STREAM_AGAIN : n;
}

/* Status, safe headers, then the body as it arrives; the answer now owns the job. */
static void respond_stream(proxy_job_t *job)
{
    jn_provider_stream_t *stream = job->stream;
    bool decompressed = job->call.decompress;
    const char *type = jn_provider_stream_header_get(stream, "content-type");
    long long length = -1;
    const char *cl = jn_provider_stream_header_get(stream, "content-length");
    if (cl && !decompressed && strcmp(job->req->method, "HEAD") != 0) {
        char *end = NULL;
        long long v = strtoll(cl, &end, 10);
        if (end != cl && *end == '\0' && v >= 0)
            length = v;
    }
    long status = jn_provider_stream_status(stream);
    jn_http_response_t *res = job->res;
    /* The content type points into the stream, which lives as long as the answer. */
    jn_http_respond_stream(res, (int)status, type ? type : "application/octet-stream", length,
                           stream_body, job, job_free);
    job->owned_by_response = true;
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
    jn_provider_stream_on_data(stream, on_provider_data, job);
}

/* The provider's answer is in (or the call failed): answer the client. */
static void finish_with_head(proxy_job_t *job)
{
    if (job->head_err) {
        respond_error(job->res, job->head_err, job->head_why);
        job_answer(job);
        job_done(job);
        return;
    }
    respond_stream(job);
    job_answer(job);
}

static void on_head(jn_provider_stream_t *s, jn_err_t err, const char *why, void *ud)
{
    (void)s;
    proxy_job_t *job = ud;
    job->head_in = true;
    job->head_err = err;
    if (why)
        snprintf(job->head_why, sizeof job->head_why, "%s", why);
    /* An upload answers once its body is in; until then the rest of it is discarded. */
    if (job->upload && !job->body_ended) {
        jn_http_sink_resume(job->req);
        return;
    }
    finish_with_head(job);
}

static void on_upload_room(void *ud)
{
    proxy_job_t *job = ud;
    jn_http_sink_resume(job->req);
}

static void on_session(jn_session_t *s, jn_err_t err, const char *why, void *ud)
{
    proxy_job_t *job = ud;
    job->opening = false;
    if (job->gone) {
        /* The client left while the connection was looked up. */
        jn_session_close(s);
        if (!job->upload)
            job_answer(job);
        job_free(job);
        return;
    }
    if (err) {
        if (job->upload) {
            /* The body is still arriving: answer once it is in. */
            job->refused = true;
            respond_session_error_into(&job->early, err, why);
            jn_http_sink_resume(job->req);
            return;
        }
        respond_session_error_into(job->res, err, why);
        job_answer(job);
        job_free(job);
        return;
    }
    job->session = s;
    jn_session_call(s, &job->call, on_head, job, &job->stream);
    if (job->upload && !job->head_in) {
        jn_provider_stream_on_data(job->stream, on_upload_room, job);
        jn_http_sink_resume(job->req);
    }
}

/* The client went away while its answer was awaited: abandon the provider call. */
static void on_gone(void *ud)
{
    proxy_job_t *job = ud;
    job->gone = true;
    if (job->opening)
        return; /* on_session cleans up */
    job_answer(job);
    job_done(job);
}

static void proxy(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    proxy_job_t *job = calloc(1, sizeof *job);
    if (!job)
        abort();
    if (!job_prepare(job, ud, req, res)) {
        job_free(job);
        return;
    }
    job->pending = jn_http_defer(req);
    jn_http_pending_on_gone(job->pending, on_gone, job);
    job->opening = true;
    jn_session_open(&job->gw->engine->sessions, &job->env,
                    jn_http_header(req, "Provider-Config-Key"),
                    jn_http_header(req, "Connection-Id"), on_session, job);
}

/* ---- large uploads: the request body streams to the provider ---- */

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
    proxy_job_t *job = calloc(1, sizeof *job);
    if (!job)
        abort();
    job->upload = true;
    if (!job_prepare(job, ud, req, &job->early)) {
        /* The body is still read (and dropped); finish answers with this error. */
        job->refused = true;
        return job;
    }
    job->call.body = NULL;
    job->call.body_len = 0;
    job->call.upload = true;
    job->call.upload_length = size;
    job->call.retries = 0;
    job->opening = true;
    jn_session_open(&job->gw->engine->sessions, &job->env,
                    jn_http_header(req, "Provider-Config-Key"),
                    jn_http_header(req, "Connection-Id"), on_session, job);
    return job;
}

static size_t upload_write(void *sink, const char *data, size_t len)
{
    proxy_job_t *job = sink;
    if (job->refused || job->head_in)
        return len; /* refused or answered already: the rest is not needed */
    if (!job->stream)
        return 0; /* the session is still opening: jn_http_sink_resume() follows */
    return jn_provider_upload_write(job->stream, data, len);
}

static void upload_finish(void *sink, const jn_http_request_t *req, jn_http_response_t *res)
{
    proxy_job_t *job = sink;
    job->res = res;
    job->req = req;
    job->body_ended = true;
    if (job->refused) {
        *res = job->early;
        memset(&job->early, 0, sizeof job->early);
        return;
    }
    job->pending = jn_http_defer(req);
    jn_http_pending_on_gone(job->pending, on_gone, job);
    if (job->stream)
        jn_provider_upload_end(job->stream);
    if (job->head_in)
        finish_with_head(job);
    /* Otherwise on_head answers. */
}

static void upload_close(void *sink)
{
    proxy_job_t *job = sink;
    if (job->owned_by_response)
        return; /* the answer's stream frees it */
    if (job->opening) {
        job->gone = true; /* on_session frees it */
        return;
    }
    job_free(job);
}

static const jn_http_body_sink_t upload_sink = {upload_open, upload_write, upload_finish,
                                                upload_close};

void jn_routes_proxy(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route_t r = {.method = "*",
                         .pattern = "/proxy/*",
                         .handler = proxy,
                         .ud = gw,
                         .where = JN_HTTP_ON_LOOP,
                         .max_body = (size_t)gw->engine->config.max_body_bytes,
                         .sink = &upload_sink};
    jn_http_route_add(http, &r);
}
