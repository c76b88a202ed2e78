/*
 * http_server.c - routes, bounded bodies and JSON errors over libmicrohttpd.
 *
 * libmicrohttpd calls the access handler several times per request: once with the
 * headers, then once per body chunk, then once with no data. We keep a per-request
 * context across those calls, stop buffering past max_body, and dispatch on the
 * last call. The daemon runs a thread pool with epoll; a handler owns its thread for
 * the time it runs.
 */
#include "net/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"

#define MAX_ROUTES 128
#define MAX_SEGMENTS 32

typedef struct {
    char method[16];
    char pattern[256];
    jn_http_handler_fn handler;
    const jn_http_body_sink_t *sink;
    void *ud;
} route_t;

struct jn_http_server {
    jn_http_options_t opts;
    char bind_address[64];
    route_t routes[MAX_ROUTES];
    int route_count;
    struct MHD_Daemon *daemon;
    uint16_t bound_port;
};

typedef struct {
    char *body;
    size_t len, cap;
    bool too_large;
    bool answered; /* a response was queued early (413) */
    struct timespec started;
    /* a route with a body sink that took this request */
    const route_t *sink_route;
    void *sink;
    jn_http_request_t sink_req;
    char *sink_path;
} request_ctx_t;

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

jn_http_server_t *jn_http_server_new(const jn_http_options_t *opts)
{
    jn_http_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->opts = *opts;
    snprintf(srv->bind_address, sizeof srv->bind_address, "%s",
             opts->bind_address ? opts->bind_address : "0.0.0.0");
    srv->opts.bind_address = srv->bind_address;
    if (srv->opts.threads < 1)
        srv->opts.threads = 1;
    return srv;
}

void jn_http_route_with_sink(jn_http_server_t *srv, const char *method, const char *pattern,
                             jn_http_handler_fn handler, const jn_http_body_sink_t *sink, void *ud)
{
    jn_http_route(srv, method, pattern, handler, ud);
    srv->routes[srv->route_count - 1].sink = sink;
}

void jn_http_route(jn_http_server_t *srv, const char *method, const char *pattern,
                   jn_http_handler_fn handler, void *ud)
{
    if (srv->route_count == MAX_ROUTES) {
        jn_log_error("http", "too many routes; raise MAX_ROUTES");
        abort();
    }
    route_t *r = &srv->routes[srv->route_count++];
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->pattern, sizeof r->pattern, "%s", pattern);
    r->handler = handler;
    r->ud = ud;
}

/* Matches path against pattern, filling req params on success. */
static bool match_route(const char *pattern, const char *path, jn_http_request_t *req)
{
    req->param_count = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '*') {
            if (req->param_count < JN_HTTP_MAX_PARAMS) {
                req->param_names[req->param_count] = "*";
                req->param_values[req->param_count++] = xstrdup(s);
            }
            return true;
        }
        if (*p == ':') {
            const char *name_end = strchr(p, '/');
            size_t name_len = name_end ? (size_t)(name_end - p - 1) : strlen(p + 1);
            const char *seg_end = strchr(s, '/');
            size_t seg_len = seg_end ? (size_t)(seg_end - s) : strlen(s);
            if (seg_len == 0 || req->param_count == JN_HTTP_MAX_PARAMS)
                return false;
            /* The name points into the route table, which outlives the request. */
            req->param_names[req->param_count] = p + 1;
            char *value = xmalloc(seg_len + 1);
            memcpy(value, s, seg_len);
            value[seg_len] = '\0';
            req->param_values[req->param_count++] = value;
            (void)name_len;
            p += 1 + name_len;
            s += seg_len;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    if (*p == '*' && *s == '\0') {
        if (req->param_count < JN_HTTP_MAX_PARAMS) {
            req->param_names[req->param_count] = "*";
            req->param_values[req->param_count++] = xstrdup("");
        }
        return true;
    }
    /* A trailing slash on the request is tolerated. */
    if (*p == '\0' && (*s == '\0' || (s[0] == '/' && s[1] == '\0')))
        return true;
    return false;
}

static void free_params(jn_http_request_t *req)
{
    for (int i = 0; i < req->param_count; i++)
        free(req->param_values[i]);
    req->param_count = 0;
}

const char *jn_http_param(const jn_http_request_t *req, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < req->param_count; i++) {
        const char *pn = req->param_names[i];
        if (strncmp(pn, name, n) == 0 && (pn[n] == '\0' || pn[n] == '/'))
            return req->param_values[i];
    }
    return NULL;
}

const char *jn_http_header(const jn_http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *jn_http_query(const jn_http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
    const char *name;
    void (*fn)(const char *, void *);
    void *ud;
} query_each_t;

static enum MHD_Result query_each_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    query_each_t *q = cls;
    (void)kind;
    if (key && strcmp(key, q->name) == 0)
        q->fn(value ? value : "", q->ud);
    return MHD_YES;
}

void jn_http_query_each(const jn_http_request_t *req, const char *name,
                        void (*fn)(const char *value, void *ud), void *ud)
{
    query_each_t q = {name, fn, ud};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_each_cb, &q);
}

typedef struct {
    void (*fn)(const char *, const char *, void *);
    void *ud;
} header_each_t;

static enum MHD_Result header_each_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    header_each_t *h = cls;
    (void)kind;
    if (key)
        h->fn(key, value ? value : "", h->ud);
    return MHD_YES;
}

void jn_http_header_each(const jn_http_request_t *req,
                         void (*fn)(const char *name, const char *value, void *ud), void *ud)
{
    header_each_t h = {fn, ud};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, header_each_cb, &h);
}

typedef struct {
    char *out;
    size_t len, cap;
} query_text_t;

static void query_put(query_text_t *q, char c)
{
    if (q->len + 2 > q->cap) {
        q->cap = q->cap * 2 + 64;
        q->out = realloc(q->out, q->cap);
        if (!q->out)
            abort();
    }
    q->out[q->len++] = c;
    q->out[q->len] = '\0';
}

static void escape_into(query_text_t *q, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            query_put(q, (char)*p);
        } else {
            query_put(q, '%');
            query_put(q, hex[*p >> 4]);
            query_put(q, hex[*p & 15]);
        }
    }
}

static enum MHD_Result query_text_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    query_text_t *q = cls;
    (void)kind;
    if (!key)
        return MHD_YES;
    if (q->len > 0)
        query_put(q, '&');
    escape_into(q, key);
    if (value) {
        query_put(q, '=');
        escape_into(q, value);
    }
    return MHD_YES;
}

char *jn_http_query_string(const jn_http_request_t *req)
{
    query_text_t q = {0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_text_cb, &q);
    return q.out;
}

typedef struct {
    const char *name;
    size_t name_len;
    json_object *out;
} bracketed_t;

static enum MHD_Result bracketed_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    bracketed_t *b = cls;
    (void)kind;
    size_t n = key ? strlen(key) : 0;
    if (n > b->name_len + 2 && strncmp(key, b->name, b->name_len) == 0 && key[b->name_len] == '[' &&
        key[n - 1] == ']' && n - b->name_len - 2 <= 64) {
        char inner[72];
        snprintf(inner, sizeof inner, "%.*s", (int)(n - b->name_len - 2), key + b->name_len + 1);
        json_object_object_add(b->out, inner, json_object_new_string(value ? value : ""));
    }
    return MHD_YES;
}

void jn_http_query_bracketed(const jn_http_request_t *req, const char *name, json_object *out)
{
    bracketed_t b = {name, strlen(name), out};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, bracketed_cb, &b);
}

static void set_body(jn_http_response_t *res, char *body, size_t len)
{
    if (res->stream && res->stream_free)
        res->stream_free(res->stream_ud);
    res->stream = NULL;
    res->stream_free = NULL;
    free(res->body);
    res->body = body;
    res->body_len = len;
}

void jn_http_respond_json(jn_http_response_t *res, int status, json_object *body)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    char *copy = xmalloc(len + 1);
    memcpy(copy, text, len + 1);
    json_object_put(body);
    res->status = status;
    res->content_type = "application/json";
    set_body(res, copy, len);
}

void jn_http_respond_text(jn_http_response_t *res, int status, const char *content_type,
                          const char *text)
{
    res->status = status;
    res->content_type = content_type;
    set_body(res, xstrdup(text), strlen(text));
}

void jn_http_respond_error(jn_http_response_t *res, int status, const char *code, const char *fmt,
                           ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    json_object *err = json_object_new_object();
    json_object_object_add(err, "code", json_object_new_string(code));
    json_object_object_add(err, "message", json_object_new_string(message));
    json_object *root = json_object_new_object();
    json_object_object_add(root, "error", err);
    jn_http_respond_json(res, status, root);
}

void jn_http_add_header(jn_http_response_t *res, const char *name, const char *value)
{
    if (res->header_count == JN_HTTP_MAX_HEADERS)
        return;
    res->header_names[res->header_count] = xstrdup(name);
    res->header_values[res->header_count++] = xstrdup(value);
}

void jn_http_response_cleanup(jn_http_response_t *res)
{
    /* A stream never handed to MHD is released here. */
    if (res->stream && res->stream_free)
        res->stream_free(res->stream_ud);
    free(res->body);
    for (int i = 0; i < res->header_count; i++) {
        free(res->header_names[i]);
        free(res->header_values[i]);
    }
}

void jn_http_respond_stream(jn_http_response_t *res, int status, const char *content_type,
                            int64_t size, jn_http_stream_fn fn, void *ud, void (*free_fn)(void *ud))
{
    set_body(res, NULL, 0);
    res->status = status;
    res->content_type = content_type;
    res->stream = fn;
    res->stream_ud = ud;
    res->stream_free = free_fn;
    res->stream_size = size;
}

typedef struct {
    jn_http_stream_fn fn;
    void *ud;
    void (*free_fn)(void *ud);
} stream_t;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_t *st = cls;
    long n = st->fn(st->ud, pos, buf, max);
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)n;
}

static void stream_done(void *cls)
{
    stream_t *st = cls;
    if (st->free_fn)
        st->free_fn(st->ud);
    free(st);
}

static struct MHD_Response *create_stream_response(jn_http_response_t *res)
{
    stream_t *st = xmalloc(sizeof *st);
    *st = (stream_t){res->stream, res->stream_ud, res->stream_free};
    /* The stream now belongs to MHD, which calls stream_done exactly once. */
    res->stream = NULL;
    res->stream_free = NULL;
    uint64_t size = res->stream_size < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)res->stream_size;
    return MHD_create_response_from_callback(size, 64 * 1024, stream_reader, st, stream_done);
}

void jn_http_respond_upgrade(jn_http_response_t *res, jn_http_upgrade_fn fn, void *ud)
{
    set_body(res, NULL, 0);
    res->status = 101;
    res->upgrade = fn;
    res->upgrade_ud = ud;
}

typedef struct {
    jn_http_upgrade_fn fn;
    void *ud;
} upgrade_t;

static void upgrade_trampoline(void *cls, struct MHD_Connection *connection, void *con_cls,
                               const char *extra_in, size_t extra_in_size, MHD_socket sock,
                               struct MHD_UpgradeResponseHandle *urh)
{
    upgrade_t *u = cls;
    (void)connection;
    (void)con_cls;
    u->fn(u->ud, sock, extra_in, extra_in_size, urh);
    free(u);
}

void jn_http_upgraded_close(void *handle)
{
    MHD_upgrade_action(handle, MHD_UPGRADE_ACTION_CLOSE);
}

static enum MHD_Result send_response(struct MHD_Connection *conn, jn_http_response_t *res)
{
    if (res->upgrade) {
        upgrade_t *u = xmalloc(sizeof *u);
        *u = (upgrade_t){res->upgrade, res->upgrade_ud};
        struct MHD_Response *ur = MHD_create_response_for_upgrade(upgrade_trampoline, u);
        if (!ur) {
            free(u);
            return MHD_NO;
        }
        /* Handlers add every 101 header themselves; libmicrohttpd adds its own
         * "Connection: Upgrade" and would merge the handler's into "Upgrade, Upgrade". */
        for (int i = 0; i < res->header_count; i++)
            if (strcasecmp(res->header_names[i], MHD_HTTP_HEADER_CONNECTION) != 0)
                MHD_add_response_header(ur, res->header_names[i], res->header_values[i]);
        enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, ur);
        MHD_destroy_response(ur);
        return ok;
    }
    if (res->stream) {
        struct MHD_Response *sr = create_stream_response(res);
        if (!sr)
            return MHD_NO;
        MHD_add_response_header(sr, MHD_HTTP_HEADER_CONTENT_TYPE,
                                res->content_type ? res->content_type : "application/octet-stream");
        for (int i = 0; i < res->header_count; i++)
            MHD_add_response_header(sr, res->header_names[i], res->header_values[i]);
        enum MHD_Result ok = MHD_queue_response(conn, (unsigned)res->status, sr);
        MHD_destroy_response(sr);
        return ok;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        res->body_len, res->body ? res->body : (char *)"", MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            res->content_type ? res->content_type : "application/json");
    for (int i = 0; i < res->header_count; i++)
        MHD_add_response_header(r, res->header_names[i], res->header_values[i]);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ok;
}

static double elapsed_seconds(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void count_request(const char *route, int status, const struct timespec *started)
{
    char labels[320];
    snprintf(labels, sizeof labels, "route=\"%s\",code=\"%d\"", route, status);
    jn_metric_inc(jn_metrics_counter("jn_http_requests_total", "HTTP requests served", labels));
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    jn_metric_observe(jn_metrics_histogram("jn_http_request_duration_seconds",
                                           "Time to serve an HTTP request", labels),
                      elapsed_seconds(started));
}

static enum MHD_Result dispatch(jn_http_server_t *srv, struct MHD_Connection *conn, const char *url,
                                const char *method, request_ctx_t *ctx)
{
    jn_http_request_t req = {.method = method, .path = url, .conn = conn};
    req.body = ctx->body ? ctx->body : "";
    req.body_len = ctx->len;
    jn_http_response_t res = {.status = 500};
    const route_t *found = NULL;
    bool path_known = false;

    for (int i = 0; i < srv->route_count; i++) {
        const route_t *r = &srv->routes[i];
        if (!match_route(r->pattern, url, &req)) {
            free_params(&req);
            continue;
        }
        if (strcmp(r->method, "*") == 0 || strcmp(r->method, method) == 0) {
            found = r;
            break;
        }
        path_known = true;
        free_params(&req);
    }

    const char *route_label;
    if (found) {
        req.route = found->pattern;
        route_label = found->pattern;
        found->handler(&req, &res, found->ud);
        free_params(&req);
    } else if (path_known) {
        route_label = "unmatched";
        jn_http_respond_error(&res, 405, "method_not_allowed", "%s is not allowed on %s", method,
                              url);
    } else {
        route_label = "unmatched";
        jn_http_respond_error(&res, 404, "not_found", "no route for %s %s", method, url);
    }
    enum MHD_Result ok = send_response(conn, &res);
    count_request(route_label, res.status, &ctx->started);
    jn_http_response_cleanup(&res);
    return ok;
}

/* At the first call of a request: when its route has a body sink that wants it, sets the
 * sink up and returns true. */
static bool open_sink(jn_http_server_t *srv, struct MHD_Connection *conn, const char *url,
                      const char *method, request_ctx_t *ctx)
{
    jn_http_request_t req = {.method = method, .conn = conn, .body = ""};
    for (int i = 0; i < srv->route_count; i++) {
        const route_t *r = &srv->routes[i];
        if (!match_route(r->pattern, url, &req)) {
            free_params(&req);
            continue;
        }
        bool method_ok = strcmp(r->method, "*") == 0 || strcmp(r->method, method) == 0;
        if (!method_ok) {
            free_params(&req);
            continue;
        }
        if (!r->sink) {
            free_params(&req);
            return false;
        }
        ctx->sink_path = strdup(url);
        if (!ctx->sink_path)
            abort();
        req.path = ctx->sink_path;
        req.route = r->pattern;
        ctx->sink_req = req;
        ctx->sink = r->sink->open(&ctx->sink_req, r->ud);
        if (!ctx->sink) {
            free_params(&ctx->sink_req);
            free(ctx->sink_path);
            ctx->sink_path = NULL;
            memset(&ctx->sink_req, 0, sizeof ctx->sink_req);
            return false;
        }
        ctx->sink_route = r;
        return true;
    }
    return false;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    jn_http_server_t *srv = cls;
    (void)version;
    request_ctx_t *ctx = *con_cls;

    if (!ctx) {
        ctx = calloc(1, sizeof *ctx);
        if (!ctx)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &ctx->started);
        *con_cls = ctx;
        if (open_sink(srv, conn, url, method, ctx))
            return MHD_YES;
        const char *length =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length) {
            char *end = NULL;
            unsigned long long n = strtoull(length, &end, 10);
            if (end != length && n > srv->opts.max_body)
                ctx->too_large = true;
        }
        if (ctx->too_large) {
            /* Answer before reading the body; MHD closes the connection afterwards. */
            jn_http_response_t res = {0};
            jn_http_respond_error(&res, 413, "payload_too_large",
                                  "the request body is larger than %zu bytes", srv->opts.max_body);
            ctx->answered = true;
            enum MHD_Result ok = send_response(conn, &res);
            count_request("unmatched", 413, &ctx->started);
            jn_http_response_cleanup(&res);
            return ok;
        }
        return MHD_YES;
    }

    if (ctx->sink) {
        if (*upload_data_size > 0) {
            ctx->sink_route->sink->write(ctx->sink, upload_data, *upload_data_size);
            *upload_data_size = 0;
            return MHD_YES;
        }
        jn_http_response_t res = {.status = 500};
        ctx->sink_route->sink->finish(ctx->sink, &ctx->sink_req, &res);
        enum MHD_Result ok = send_response(conn, &res);
        count_request(ctx->sink_route->pattern, res.status, &ctx->started);
        jn_http_response_cleanup(&res);
        return ok;
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ctx->answered || ctx->too_large)
            return MHD_YES;
        if (ctx->len + n > srv->opts.max_body) {
            ctx->too_large = true;
            return MHD_YES;
        }
        if (ctx->len + n + 1 > ctx->cap) {
            size_t cap = ctx->cap ? ctx->cap : 4096;
            while (cap < ctx->len + n + 1)
                cap *= 2;
            char *grown = realloc(ctx->body, cap);
            if (!grown)
                abort();
            ctx->body = grown;
            ctx->cap = cap;
        }
        memcpy(ctx->body + ctx->len, upload_data, n);
        ctx->len += n;
        ctx->body[ctx->len] = '\0';
        return MHD_YES;
    }

    if (ctx->answered)
        return MHD_YES;
    if (ctx->too_large) {
        jn_http_response_t res = {0};
        jn_http_respond_error(&res, 413, "payload_too_large",
                              "the request body is larger than %zu bytes", srv->opts.max_body);
        enum MHD_Result ok = send_response(conn, &res);
        count_request("unmatched", 413, &ctx->started);
        jn_http_response_cleanup(&res);
        return ok;
    }
    return dispatch(srv, conn, url, method, ctx);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    request_ctx_t *ctx = *con_cls;
    if (ctx) {
        if (ctx->sink) {
            ctx->sink_route->sink->close(ctx->sink);
            free_params(&ctx->sink_req);
            free(ctx->sink_path);
        }
        free(ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    jn_log_warn("http", "%s", line);
}

jn_err_t jn_http_server_start(jn_http_server_t *srv)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(srv->opts.port)};
    if (inet_pton(AF_INET, srv->bind_address, &addr.sin_addr) != 1) {
        jn_log_error("http", "bind address '%s' is not an IPv4 address", srv->bind_address);
        return JN_ERR_INVALID;
    }
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
    /* The logger goes first so that errors about later options reach our log too. */
    srv->daemon = MHD_start_daemon(
        flags, srv->opts.port, NULL, NULL, access_handler, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)srv->opts.threads, MHD_OPTION_NOTIFY_COMPLETED, request_completed, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(64 * 1024), MHD_OPTION_END);
    if (!srv->daemon) {
        jn_log_error("http", "cannot listen on %s:%u (is the port in use?)", srv->bind_address,
                     (unsigned)srv->opts.port);
        return JN_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->bound_port = info ? info->port : srv->opts.port;
    return JN_OK;
}

uint16_t jn_http_server_port(const jn_http_server_t *srv)
{
    return srv->bound_port;
}

void jn_http_server_free(jn_http_server_t *srv)
{
    if (!srv)
        return;
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    free(srv);
}
