/*
 * http_server.c - connections, routing and dispatch on an event loop (see the header).
 *
 * A connection moves through: HEAD (reading a request head) -> BODY (reading its body
 * into a buffer or a sink) -> HANDLER (a handler runs on the pool, or waits deferred) ->
 * WRITE (the answer, then a stream if any) -> back to HEAD when kept alive. While a
 * handler holds the request the socket is not read (pipelined bytes wait in the input
 * buffer) and only a hang-up is watched, so a client that leaves is noticed and the
 * handler told. A connection is freed on the loop thread, and never while a handler still
 * holds its request: a socket that closes under a running handler is closed at once, the
 * struct when the handler is done.
 *
 * Workload: many short JSON requests on kept-alive connections, some long waits (proxy,
 * actions), few large bodies. Per request the server allocates from an arena that the
 * connection keeps between requests.
 */
#include "net/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/http_parse.h"

#define MAX_ROUTES 192
#define MAX_TARGET (16 * 1024)
#define MAX_HEAD (32 * 1024)
#define MAX_FIELDS 128
#define IN_CHUNK (64 * 1024)
#define STREAM_CHUNK (64 * 1024)
#define CHUNK_HEAD 20 /* room for "<hex>\r\n" before stream data */
#define MAX_RESPONSE_HEADER_BYTES (64 * 1024)
#define ADDR_BUCKETS 1024

typedef struct {
    char method[16];
    char pattern[256];
    jn_http_route_t r;
} route_entry_t;

typedef struct addr_count {
    struct addr_count *next;
    unsigned char key[17]; /* family byte + 16 address bytes */
    int count;
} addr_count_t;

typedef enum { C_HEAD, C_BODY, C_HANDLER, C_WRITE } conn_state_t;

typedef struct conn conn_t;

struct jn_http_pending {
    conn_t *conn;
    atomic_bool gone;
};

typedef struct {
    char *name;
    char *value;
} arg_t;

struct conn {
    conn_t *prev, *next;
    jn_http_server_t *srv;
    int fd;
    bool fd_closed;
    jn_loop_watch_t watch;
    jn_loop_timer_t timer;
    jn_loop_timer_t wake_timer;
    unsigned char addr_key[17];
    char addr_text[48];
    unsigned port;
    conn_state_t state;

    char *in;
    size_t in_len, in_cap;
    bool head_started;
    uint64_t head_started_ms;
    uint64_t last_progress_ms;
    uint64_t body_deadline_ms;

    /* the current request */
    jn_arena_t arena;
    jn_http_head_t head;
    jn_http_field_t fields[MAX_FIELDS];
    arg_t *args;
    size_t arg_count;
    const char *raw_query;
    jn_http_request_t req;
    const route_entry_t *route;
    size_t max_body;
    bool gate_lowered; /* the gate set max_body below the route's cap: no sink */
    uint64_t started_ms;
    bool is_head_method;

    /* the body */
    char *body;
    size_t body_len, body_cap;
    long long body_left; /* Content-Length still to come; -1 when chunked */
    jn_http_chunked_t chunked;
    bool body_chunked;
    const jn_http_body_sink_t *sink;
    void *sink_ctx;
    bool sink_paused;
    char *stage; /* decoded body bytes the sink has not taken yet */
    size_t stage_len, stage_cap;

    /* the handler */
    jn_http_pending_t pending;
    bool handler_busy; /* a handler holds req/res (running or deferred) */
    bool deferred;     /* the handler called jn_http_defer() */
    /* A deferred answer is sent by the second of: the pool handler returning, and
     * jn_http_pending_finish(). Another thread may finish the answer before the handler
     * has returned; the connection may then be answered, reused or freed, so neither side
     * may look at it after its increment unless it was the second. */
    atomic_int finish_gate;
    bool free_scheduled;
    void (*on_gone)(void *ud);
    void *on_gone_ud;

    /* the answer */
    jn_http_response_t res;
    bool keep_alive;
    char *out;
    size_t out_pos, out_len, out_cap;
    bool streaming;
    bool stream_chunked;
    bool stream_waiting;
    bool stream_done;
    uint64_t stream_pos;
    bool upgrading;
    int answered_status;
};

struct jn_http_server {
    jn_http_options_t opts;
    char bind_address[64];
    route_entry_t routes[MAX_ROUTES];
    int route_count;
    jn_http_gate_fn gate;
    void *gate_ud;
    jn_loop_t *loop;
    bool own_loop;
    jn_taskpool_t *pool;
    bool own_pool;
    int listen_fd;
    jn_loop_watch_t listen_watch;
    uint16_t bound_port;
    conn_t *conns;
    int conn_count;
    addr_count_t *addr_buckets[ADDR_BUCKETS];
    /* shutdown */
    pthread_mutex_t lock;
    pthread_cond_t drained;
    bool stopping;
    bool stopped;
    jn_metric_t *open_connections;
    jn_metric_t *refused_connections;
};

static void conn_close(conn_t *c);
static void conn_maybe_free(conn_t *c);
static void start_next_request(conn_t *c);
static void on_io(jn_loop_watch_t *w, unsigned events);
static void send_answer(conn_t *c);
static void try_write(conn_t *c);

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

/* ---- server set-up ---- */

jn_http_server_t *jn_http_server_new(const jn_http_options_t *opts)
{
    jn_http_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->opts = *opts;
    snprintf(srv->bind_address, sizeof srv->bind_address, "%s",
             opts->bind_address ? opts->bind_address : "127.0.0.1");
    srv->opts.bind_address = srv->bind_address;
    if (!srv->opts.max_body)
        srv->opts.max_body = 1024 * 1024;
    if (srv->opts.threads < 1)
        srv->opts.threads = 4;
    if (srv->opts.max_connections <= 0)
        srv->opts.max_connections = 10000;
    if (srv->opts.max_connections_per_address <= 0)
        srv->opts.max_connections_per_address = 1024;
    if (srv->opts.head_timeout_ms <= 0)
        srv->opts.head_timeout_ms = 10000;
    if (srv->opts.idle_timeout_ms <= 0)
        srv->opts.idle_timeout_ms = 60000;
    if (srv->opts.stall_timeout_ms <= 0)
        srv->opts.stall_timeout_ms = 30000;
    if (srv->opts.max_query_args == 0)
        srv->opts.max_query_args = 256;
    srv->listen_fd = -1;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->drained, NULL);
    srv->open_connections =
        jn_metrics_gauge("jn_http_open_connections", "HTTP connections open", NULL);
    srv->refused_connections =
        jn_metrics_counter("jn_http_refused_connections_total",
                           "HTTP connections refused because a connection limit was reached", NULL);
    return srv;
}

void jn_http_route_add(jn_http_server_t *srv, const jn_http_route_t *route)
{
    if (srv->route_count == MAX_ROUTES) {
        jn_log_error("http", "too many routes; raise MAX_ROUTES");
        abort();
    }
    route_entry_t *e = &srv->routes[srv->route_count++];
    snprintf(e->method, sizeof e->method, "%s", route->method);
    snprintf(e->pattern, sizeof e->pattern, "%s", route->pattern);
    e->r = *route;
    e->r.method = e->method;
    e->r.pattern = e->pattern;
}

void jn_http_route(jn_http_server_t *srv, const char *method, const char *pattern,
                   jn_http_handler_fn handler, void *ud)
{
    jn_http_route_t r = {.method = method, .pattern = pattern, .handler = handler, .ud = ud};
    jn_http_route_add(srv, &r);
}

void jn_http_server_gate(jn_http_server_t *srv, jn_http_gate_fn gate, void *ud)
{
    srv->gate = gate;
    srv->gate_ud = ud;
}

jn_loop_t *jn_http_server_loop(const jn_http_server_t *srv)
{
    return srv->loop;
}

uint16_t jn_http_server_port(const jn_http_server_t *srv)
{
    return srv->bound_port;
}

/* ---- connection limits per address ---- */

static unsigned addr_hash(const unsigned char *key)
{
    unsigned h = 2166136261u;
    for (int i = 0; i < 17; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % ADDR_BUCKETS;
}

static addr_count_t *addr_find(jn_http_server_t *srv, const unsigned char *key, bool create)
{
    unsigned b = addr_hash(key);
    for (addr_count_t *a = srv->addr_buckets[b]; a; a = a->next) {
        if (memcmp(a->key, key, 17) == 0)
            return a;
    }
    if (!create)
        return NULL;
    addr_count_t *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    memcpy(a->key, key, 17);
    a->next = srv->addr_buckets[b];
    srv->addr_buckets[b] = a;
    return a;
}

static void addr_release(jn_http_server_t *srv, const unsigned char *key)
{
    unsigned b = addr_hash(key);
    for (addr_count_t **pp = &srv->addr_buckets[b]; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->key, key, 17) == 0) {
            if (--(*pp)->count <= 0) {
                addr_count_t *dead = *pp;
                *pp = dead->next;
                free(dead);
            }
            return;
        }
    }
}

/* ---- responses ---- */

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

static bool header_text_ok(const char *s, bool name)
{
    if (!*s && name)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\r' || *p == '\n')
            return false;
        if (name && (*p <= ' ' || *p == ':' || *p >= 0x7f))
            return false;
    }
    return true;
}

void jn_http_add_header(jn_http_response_t *res, const char *name, const char *value)
{
    if (!header_text_ok(name, true) || !header_text_ok(value, false)) {
        jn_log_warn("http", "dropped a response header with a malformed name or value");
        return;
    }
    size_t bytes = strlen(name) + strlen(value) + 4;
    if (res->header_bytes + bytes > MAX_RESPONSE_HEADER_BYTES) {
        jn_log_warn("http", "dropped response header %s: the answer's headers are full", name);
        return;
    }
    if (res->header_count == res->header_cap) {
        res->header_cap = res->header_cap ? res->header_cap * 2 : 8;
        res->header_names = realloc(res->header_names, (size_t)res->header_cap * sizeof(char *));
        res->header_values = realloc(res->header_values, (size_t)res->header_cap * sizeof(char *));
        if (!res->header_names || !res->header_values)
            abort();
    }
    res->header_names[res->header_count] = xstrdup(name);
    res->header_values[res->header_count++] = xstrdup(value);
    res->header_bytes += bytes;
}

void jn_http_response_cleanup(jn_http_response_t *res)
{
    if (res->stream && res->stream_free)
        res->stream_free(res->stream_ud);
    free(res->body);
    for (int i = 0; i < res->header_count; i++) {
        free(res->header_names[i]);
        free(res->header_values[i]);
    }
    free(res->header_names);
    free(res->header_values);
    memset(res, 0, sizeof *res);
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

void jn_http_respond_upgrade(jn_http_response_t *res, jn_http_upgrade_fn fn, void *ud)
{
    set_body(res, NULL, 0);
    res->status = 101;
    res->upgrade = fn;
    res->upgrade_ud = ud;
}

typedef struct {
    int fd;
} upgraded_t;

void jn_http_upgraded_close(void *handle)
{
    upgraded_t *u = handle;
    if (!u)
        return;
    close(u->fd);
    free(u);
}

/* ---- request accessors ---- */

const char *jn_http_header(const jn_http_request_t *req, const char *name)
{
    const conn_t *c = req->internal;
    return jn_http_head_field(&c->head, name);
}

const char *jn_http_query(const jn_http_request_t *req, const char *name)
{
    const conn_t *c = req->internal;
    for (size_t i = 0; i < c->arg_count; i++) {
        if (strcmp(c->args[i].name, name) == 0)
            return c->args[i].value;
    }
    return NULL;
}

const char *jn_http_raw_query(const jn_http_request_t *req)
{
    const conn_t *c = req->internal;
    return c->raw_query;
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

void jn_http_query_each(const jn_http_request_t *req, const char *name,
                        void (*fn)(const char *value, void *ud), void *ud)
{
    const conn_t *c = req->internal;
    for (size_t i = 0; i < c->arg_count; i++) {
        if (strcmp(c->args[i].name, name) == 0)
            fn(c->args[i].value, ud);
    }
}

void jn_http_query_all(const jn_http_request_t *req,
                       void (*fn)(const char *name, const char *value, void *ud), void *ud)
{
    const conn_t *c = req->internal;
    for (size_t i = 0; i < c->arg_count; i++)
        fn(c->args[i].name, c->args[i].value, ud);
}

void jn_http_header_each(const jn_http_request_t *req,
                         void (*fn)(const char *name, const char *value, void *ud), void *ud)
{
    const conn_t *c = req->internal;
    for (size_t i = 0; i < c->head.field_count; i++)
        fn(c->head.fields[i].name, c->head.fields[i].value, ud);
}

typedef struct {
    char *out;
    size_t len, cap;
} text_t;

static void text_put(text_t *q, char ch)
{
    if (q->len + 2 > q->cap) {
        q->cap = q->cap * 2 + 64;
        q->out = realloc(q->out, q->cap);
        if (!q->out)
            abort();
    }
    q->out[q->len++] = ch;
    q->out[q->len] = '\0';
}

static void text_escape(text_t *q, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            text_put(q, (char)*p);
        } else {
            text_put(q, '%');
            text_put(q, hex[*p >> 4]);
            text_put(q, hex[*p & 15]);
        }
    }
}

char *jn_http_query_string(const jn_http_request_t *req)
{
    const conn_t *c = req->internal;
    text_t q = {0};
    for (size_t i = 0; i < c->arg_count; i++) {
        if (i > 0)
            text_put(&q, '&');
        text_escape(&q, c->args[i].name);
        text_put(&q, '=');
        text_escape(&q, c->args[i].value);
    }
    return q.out;
}

void jn_http_query_bracketed(const jn_http_request_t *req, const char *name, json_object *out)
{
    const conn_t *c = req->internal;
    size_t name_len = strlen(name);
    for (size_t i = 0; i < c->arg_count; i++) {
        const char *key = c->args[i].name;
        size_t n = strlen(key);
        if (n > name_len + 2 && strncmp(key, name, name_len) == 0 && key[name_len] == '[' &&
            key[n - 1] == ']' && n - name_len - 2 <= 64) {
            char inner[72];
            snprintf(inner, sizeof inner, "%.*s", (int)(n - name_len - 2), key + name_len + 1);
            json_object_object_add(out, inner, json_object_new_string(c->args[i].value));
        }
    }
}

/* ---- metrics ---- */

static void count_request(const char *route, int status, uint64_t started_ms, uint64_t now_ms)
{
    char labels[320];
    snprintf(labels, sizeof labels, "route=\"%s\",code=\"%d\"", route, status);
    jn_metric_inc(jn_metrics_counter("jn_http_requests_total", "HTTP requests served", labels));
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    jn_metric_observe(jn_metrics_histogram("jn_http_request_duration_seconds",
                                           "Time to serve an HTTP request", labels),
                      (double)(now_ms - started_ms) / 1000.0);
}

/* ---- connections ---- */

static uint64_t now_ms(const conn_t *c)
{
    return jn_loop_now_ms(c->srv->loop);
}

static void set_watch(conn_t *c, unsigned events)
{
    if (!c->fd_closed)
        jn_loop_watch_update(&c->watch, events);
}

static void on_timer(jn_loop_timer_t *t);

static void arm_timer(conn_t *c, uint64_t at_ms)
{
    uint64_t now = now_ms(c);
    jn_loop_timer_start(c->srv->loop, &c->timer, at_ms > now ? at_ms - now : 0, on_timer, c);
}

static void reset_request(conn_t *c)
{
    if (c->sink && c->sink_ctx)
        c->sink->close(c->sink_ctx);
    c->sink = NULL;
    c->sink_ctx = NULL;
    c->sink_paused = false;
    c->stage_len = 0;
    jn_http_response_cleanup(&c->res);
    jn_arena_reset(&c->arena);
    free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    c->args = NULL;
    c->arg_count = 0;
    c->raw_query = NULL;
    memset(&c->req, 0, sizeof c->req);
    c->req.internal = c;
    c->route = NULL;
    c->head.field_count = 0;
    c->body_chunked = false;
    c->body_left = 0;
    c->streaming = c->stream_chunked = c->stream_waiting = c->stream_done = false;
    c->stream_pos = 0;
    c->upgrading = false;
    c->deferred = false;
    c->on_gone = NULL;
    c->on_gone_ud = NULL;
    c->out_pos = c->out_len = 0;
    c->head_started = false;
    c->answered_status = 0;
    atomic_store(&c->pending.gone, false);
}

static void conn_free(conn_t *c)
{
    jn_http_server_t *srv = c->srv;
    reset_request(c);
    jn_loop_timer_stop(&c->timer);
    jn_loop_timer_stop(&c->wake_timer);
    jn_arena_cleanup(&c->arena);
    free(c->in);
    free(c->out);
    free(c->stage);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->conn_count--;
    addr_release(srv, c->addr_key);
    jn_metric_add(srv->open_connections, -1);
    free(c);
    if (srv->stopping && srv->conn_count == 0) {
        pthread_mutex_lock(&srv->lock);
        pthread_cond_broadcast(&srv->drained);
        pthread_mutex_unlock(&srv->lock);
    }
}

/* Closes the socket; the struct goes when no handler holds it. */
static void conn_close(conn_t *c)
{
    if (!c->fd_closed) {
        jn_loop_watch_stop(&c->watch);
        close(c->fd);
        c->fd_closed = true;
    }
    jn_loop_timer_stop(&c->timer);
    jn_loop_timer_stop(&c->wake_timer);
    if (c->handler_busy && !atomic_exchange(&c->pending.gone, true) && c->on_gone) {
        void (*fn)(void *) = c->on_gone;
        c->on_gone = NULL;
        fn(c->on_gone_ud);
    }
    conn_maybe_free(c);
}

static void conn_free_posted(void *ud)
{
    conn_free(ud);
}

/* Frees a closed connection that no handler holds, at the end of the loop iteration: the
 * callbacks on the stack may still look at it until they return. */
static void conn_maybe_free(conn_t *c)
{
    if (c->fd_closed && !c->handler_busy && !c->free_scheduled) {
        c->free_scheduled = true;
        jn_loop_post(c->srv->loop, conn_free_posted, c);
    }
}

/* Answers an error the server found itself, then closes (the rest of the request may still
 * be on the wire). */
static void answer_error_and_close(conn_t *c, int status, const char *code, const char *message)
{
    jn_http_response_cleanup(&c->res);
    jn_http_respond_error(&c->res, status, code, "%s", message);
    c->keep_alive = false;
    send_answer(c);
}

/* ---- the request head ---- */

static jn_http_parse_limits_t parse_limits = {MAX_TARGET, MAX_HEAD, MAX_FIELDS};

/* Splits the raw query into decoded arguments. False (and an answer) on a bad one. */
static bool parse_query(conn_t *c, const char *q)
{
    size_t max = c->srv->opts.max_query_args;
    size_t count = 1;
    for (const char *p = q; *p; p++)
        count += *p == '&';
    if (count > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "more than %zu query arguments", max);
        answer_error_and_close(c, 400, "invalid_query_params", msg);
        return false;
    }
    c->args = jn_arena_alloc(&c->arena, count * sizeof *c->args);
    c->arg_count = 0;
    const char *p = q;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t nlen = eq ? (size_t)(eq - p) : len;
            size_t vlen = eq ? len - nlen - 1 : 0;
            char *name = jn_arena_alloc(&c->arena, nlen + 1);
            char *value = jn_arena_alloc(&c->arena, vlen + 1);
            size_t olen;
            if (jn_http_percent_decode(p, nlen, true, name, &olen) != JN_OK ||
                jn_http_percent_decode(eq ? eq + 1 : "", vlen, true, value, &olen) != JN_OK) {
                answer_error_and_close(c, 400, "invalid_query_params",
                                       "a query argument is malformed: a bad %-escape, a NUL or "
                                       "invalid UTF-8");
                return false;
            }
            c->args[c->arg_count++] = (arg_t){name, value};
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return true;
}

/* One decoded path segment with where it starts in the raw path. */
typedef struct {
    const char *text;
    size_t raw_offset;
} segment_t;

static bool match_route(conn_t *c, const route_entry_t *e, const segment_t *segs, size_t nsegs,
                        const char *raw)
{
    jn_http_request_t *req = &c->req;
    req->param_count = 0;
    const char *p = e->pattern;
    size_t i = 0;
    if (*p == '/')
        p++;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t plen = slash ? (size_t)(slash - p) : strlen(p);
        if (plen == 1 && *p == '*') {
            if (req->param_count < JN_HTTP_MAX_PARAMS) {
                req->param_names[req->param_count] = "*";
                req->param_values[req->param_count++] =
                    (char *)(i < nsegs ? raw + segs[i].raw_offset : "");
            }
            return true;
        }
        if (i >= nsegs)
            return false;
        if (*p == ':') {
            if (!*segs[i].text || req->param_count == JN_HTTP_MAX_PARAMS)
                return false;
            req->param_names[req->param_count] = p + 1;
            req->param_values[req->param_count++] = (char *)segs[i].text;
        } else if (strlen(segs[i].text) != plen || strncmp(segs[i].text, p, plen) != 0) {
            return false;
        }
        i++;
        p += plen;
        if (*p == '/')
            p++;
    }
    /* A trailing slash on the request is tolerated. */
    return i == nsegs || (i + 1 == nsegs && !*segs[i].text);
}

static void dispatch(conn_t *c);
static void begin_body(conn_t *c);

/* Builds the request from a parsed head (copied into the arena), finds its route and runs
 * the gate. */
static void on_head(conn_t *c, size_t head_len)
{
    jn_http_server_t *srv = c->srv;
    c->started_ms = now_ms(c);
    /* Keep the head in the arena: the input buffer is reused for the body. */
    char *copy = jn_arena_alloc(&c->arena, head_len);
    memcpy(copy, c->in, head_len);
    ptrdiff_t shift = copy - c->in;
    c->head.method += shift;
    c->head.target += shift;
    for (size_t i = 0; i < c->head.field_count; i++) {
        c->head.fields[i].name += shift;
        c->head.fields[i].value += shift;
    }
    memmove(c->in, c->in + head_len, c->in_len - head_len);
    c->in_len -= head_len;

    c->keep_alive = c->head.keep_alive;
    c->is_head_method = strcmp(c->head.method, "HEAD") == 0;
    jn_http_request_t *req = &c->req;
    req->internal = c;
    req->method = c->head.method;
    req->remote_addr = c->addr_text;
    req->remote_port = c->port;
    req->body = "";

    /* Path and query. */
    const char *target = c->head.target;
    const char *qmark = strchr(target, '?');
    size_t path_len = qmark ? (size_t)(qmark - target) : strlen(target);
    char *raw = jn_arena_strndup(&c->arena, target, path_len);
    req->raw_path = raw;
    c->raw_query = qmark ? qmark + 1 : NULL;
    char *decoded = jn_arena_alloc(&c->arena, path_len + 1);
    size_t dlen;
    if (jn_http_percent_decode(raw, path_len, false, decoded, &dlen) != JN_OK) {
        answer_error_and_close(c, 400, "invalid_uri_params",
                               "the path is malformed: a bad %-escape, a NUL or invalid UTF-8");
        return;
    }
    req->path = decoded;
    if (c->raw_query && !parse_query(c, c->raw_query))
        return;

    /* Segments, each decoded alone so that %2F stays inside its segment. */
    size_t nsegs = 0;
    for (const char *p = raw; *p; p++)
        nsegs += *p == '/';
    segment_t *segs = jn_arena_alloc(&c->arena, (nsegs + 1) * sizeof *segs);
    nsegs = 0;
    for (const char *p = raw[0] == '/' ? raw + 1 : raw;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        char *seg = jn_arena_alloc(&c->arena, len + 1);
        size_t slen;
        if (jn_http_percent_decode(p, len, false, seg, &slen) != JN_OK) {
            answer_error_and_close(c, 400, "invalid_uri_params", "a path segment is malformed");
            return;
        }
        segs[nsegs++] = (segment_t){seg, (size_t)(p - raw)};
        if (!slash)
            break;
        p = slash + 1;
    }
    if (strcmp(raw, "*") == 0)
        nsegs = 0;

    const route_entry_t *found = NULL;
    bool path_known = false;
    for (int i = 0; i < srv->route_count; i++) {
        const route_entry_t *e = &srv->routes[i];
        if (!match_route(c, e, segs, nsegs, raw))
            continue;
        if (strcmp(e->method, "*") == 0 || strcmp(e->method, req->method) == 0) {
            found = e;
            break;
        }
        path_known = true;
    }
    if (!found) {
        req->param_count = 0;
        char msg[160];
        snprintf(msg, sizeof msg, "%s %.100s", req->method, req->path);
        jn_http_response_cleanup(&c->res);
        if (path_known)
            jn_http_respond_error(&c->res, 405, "method_not_allowed", "%s is not allowed on %s",
                                  req->method, req->path);
        else
            jn_http_respond_error(&c->res, 404, "not_found", "no route for %s %s", req->method,
                                  req->path);
        if (c->head.content_length > 0 || c->head.chunked)
            c->keep_alive = false;
        send_answer(c);
        return;
    }
    c->route = found;
    req->route = found->pattern;
    size_t route_cap = found->r.max_body ? found->r.max_body : srv->opts.max_body;
    c->max_body = route_cap;
    if (srv->gate && !srv->gate(req, &c->max_body, &c->res, srv->gate_ud)) {
        if (c->head.content_length > 0 || c->head.chunked)
            c->keep_alive = false;
        send_answer(c);
        return;
    }
    if (c->max_body > route_cap)
        c->max_body = route_cap;
    c->gate_lowered = c->max_body < route_cap;
    begin_body(c);
}

/* ---- the body ---- */

static void too_large(conn_t *c)
{
    char msg[96];
    snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", c->max_body);
    answer_error_and_close(c, 413, "payload_too_large", msg);
}

static void body_done(conn_t *c);
static void feed_body(conn_t *c);

static void begin_body(conn_t *c)
{
    c->body_chunked = c->head.chunked;
    c->body_left = c->head.chunked ? -1 : (c->head.content_length > 0 ? c->head.content_length : 0);
    if (c->body_chunked)
        jn_http_chunked_init(&c->chunked);
    bool has_body = c->body_chunked || c->body_left > 0;
    /* A sink takes bodies past the route's cap; a request the gate held to less (an
     * anonymous one) is buffered under its own cap instead, and refused past it. */
    if (c->route->r.sink && has_body && !c->gate_lowered) {
        c->sink_ctx = c->route->r.sink->open(&c->req, c->route->r.ud);
        if (c->sink_ctx)
            c->sink = c->route->r.sink;
    }
    if (!c->sink && !c->body_chunked && (size_t)c->body_left > c->max_body) {
        too_large(c);
        return;
    }
    if (!has_body) {
        body_done(c);
        return;
    }
    c->state = C_BODY;
    uint64_t now = now_ms(c);
    c->last_progress_ms = now;
    uint64_t budget = 60000;
    if (c->body_left > 0)
        budget += (uint64_t)c->body_left / 16; /* at least 16 KB/s on big bodies */
    else
        budget = 600000;
    c->body_deadline_ms = now + budget;
    arm_timer(c, now + (uint64_t)c->srv->opts.stall_timeout_ms);
    if (c->head.expect_continue && c->in_len == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t n = send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL);
        if (n != (ssize_t)(sizeof cont - 1)) {
            conn_close(c);
            return;
        }
    }
    feed_body(c);
    if (!c->fd_closed && c->state == C_BODY)
        set_watch(c, c->sink_paused ? 0 : JN_LOOP_READ);
}

/* Appends body bytes to the buffer or hands them to the sink. Returns false when the body
 * is over its cap (answered). */
static bool take_body_bytes(conn_t *c, const char *data, size_t n, size_t *taken)
{
    *taken = n;
    if (n == 0)
        return true;
    if (c->sink) {
        *taken = c->sink->write(c->sink_ctx, data, n);
        if (*taken < n)
            c->sink_paused = true;
        return true;
    }
    if (c->body_len + n > c->max_body) {
        too_large(c);
        return false;
    }
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        if (cap > c->max_body + 1)
            cap = c->max_body + 1;
        c->body = realloc(c->body, cap);
        if (!c->body)
            abort();
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return true;
}

/* Offers the staged bytes to the sink; true when it took them all. */
static bool drain_stage(conn_t *c)
{
    if (c->stage_len == 0)
        return true;
    size_t taken = c->sink->write(c->sink_ctx, c->stage, c->stage_len);
    memmove(c->stage, c->stage + taken, c->stage_len - taken);
    c->stage_len -= taken;
    if (taken > 0)
        c->last_progress_ms = now_ms(c);
    c->sink_paused = c->stage_len > 0;
    return !c->sink_paused;
}

/* Keeps decoded body bytes the sink did not take, to offer them again after a resume. */
static void stage_bytes(conn_t *c, const char *data, size_t n)
{
    if (c->stage_len + n > c->stage_cap) {
        c->stage_cap = c->stage_len + n;
        c->stage = realloc(c->stage, c->stage_cap);
        if (!c->stage)
            abort();
    }
    memcpy(c->stage + c->stage_len, data, n);
    c->stage_len += n;
}

static bool body_complete(const conn_t *c)
{
    return c->body_chunked ? c->chunked.done : c->body_left == 0;
}

/* Consumes what the input buffer holds of the body. Decoded bytes a sink does not take
 * wait in the stage, and reading pauses until the sink resumes. */
static void feed_body(conn_t *c)
{
    if (c->sink && !drain_stage(c))
        return;
    while (c->state == C_BODY && c->in_len > 0 && !body_complete(c)) {
        size_t used, n;
        if (c->body_chunked) {
            long out = jn_http_chunked_decode(&c->chunked, c->in, c->in_len, &used);
            if (out < 0) {
                answer_error_and_close(c, 400, "invalid_body", "the chunked body is malformed");
                return;
            }
            n = (size_t)out;
        } else {
            n = c->in_len < (size_t)c->body_left ? c->in_len : (size_t)c->body_left;
            used = n;
            c->body_left -= (long long)n;
        }
        size_t taken = n;
        if (!take_body_bytes(c, c->in, n, &taken))
            return;
        if (taken < n)
            stage_bytes(c, c->in + taken, n - taken);
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        c->last_progress_ms = now_ms(c);
        if (c->sink_paused)
            return;
    }
    if (c->state == C_BODY && body_complete(c) && c->stage_len == 0)
        body_done(c);
}

void jn_http_sink_resume(const jn_http_request_t *req)
{
    conn_t *c = req->internal;
    if (!c->sink_paused || c->fd_closed || c->state != C_BODY)
        return;
    c->sink_paused = false;
    feed_body(c);
    if (!c->fd_closed && c->state == C_BODY)
        set_watch(c, c->sink_paused ? 0 : JN_LOOP_READ);
}

/* ---- handlers ---- */

static void handler_done_on_loop(void *ud)
{
    conn_t *c = ud;
    c->handler_busy = false;
    if (c->fd_closed) {
        conn_maybe_free(c);
        return;
    }
    send_answer(c);
}

static void run_on_pool(void *ud)
{
    conn_t *c = ud;
    c->route->r.handler(&c->req, &c->res, c->route->r.ud);
    /* Nobody else touches c until this returns unless the handler deferred; then whoever
     * of this and jn_http_pending_finish() comes second sends the answer. */
    if (!c->deferred || atomic_fetch_add(&c->finish_gate, 1) == 1)
        jn_loop_post(c->srv->loop, handler_done_on_loop, c);
}

jn_http_pending_t *jn_http_defer(const jn_http_request_t *req)
{
    conn_t *c = req->internal;
    c->deferred = true;
    c->pending.conn = c;
    return &c->pending;
}

void jn_http_pending_finish(jn_http_pending_t *p)
{
    /* Always through the loop's queue, so the caller's stack never sees the answer sent
     * and the connection reused under it; and not before a pool handler has returned. */
    conn_t *c = p->conn;
    if (atomic_fetch_add(&c->finish_gate, 1) == 1)
        jn_loop_post(c->srv->loop, handler_done_on_loop, c);
}

void jn_http_pending_on_gone(jn_http_pending_t *p, void (*fn)(void *ud), void *ud)
{
    p->conn->on_gone = fn;
    p->conn->on_gone_ud = ud;
}

bool jn_http_pending_gone(const jn_http_pending_t *p)
{
    return atomic_load(&p->gone);
}

static void body_done(conn_t *c)
{
    jn_loop_timer_stop(&c->timer);
    c->req.body = c->body ? c->body : "";
    c->req.body_len = c->body_len;
    dispatch(c);
}

static void on_peer_gone(conn_t *c)
{
    conn_close(c);
}

static void dispatch(conn_t *c)
{
    c->state = C_HANDLER;
    c->handler_busy = true;
    c->deferred = false;
    c->pending.conn = c;
    /* A handler on the loop has returned by the time anything can finish it. */
    bool on_pool = !c->sink && c->route->r.where != JN_HTTP_ON_LOOP;
    atomic_store(&c->finish_gate, on_pool ? 0 : 1);
    /* Only a hang-up is watched while a handler holds the request. */
    set_watch(c, JN_LOOP_PEER_CLOSED);
    jn_http_response_cleanup(&c->res);
    c->res.status = 500;
    if (c->sink) {
        c->sink->finish(c->sink_ctx, &c->req, &c->res);
    } else if (c->route->r.where == JN_HTTP_ON_LOOP) {
        c->route->r.handler(&c->req, &c->res, c->route->r.ud);
    } else {
        if (jn_taskpool_submit(c->srv->pool, run_on_pool, c) != JN_OK) {
            c->handler_busy = false;
            answer_error_and_close(c, 503, "service_unavailable",
                                   "the server is overloaded; retry shortly");
        }
        return;
    }
    if (c->deferred)
        return; /* jn_http_pending_finish() sends the answer */
    c->handler_busy = false;
    if (c->fd_closed) {
        conn_maybe_free(c);
        return;
    }
    send_answer(c);
}

/* ---- the answer ---- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 424: return "Failed Dependency";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

static void out_reserve(conn_t *c, size_t more)
{
    if (c->out_len + more <= c->out_cap)
        return;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more)
        cap *= 2;
    c->out = realloc(c->out, cap);
    if (!c->out)
        abort();
    c->out_cap = cap;
}

static void out_append(conn_t *c, const char *data, size_t n)
{
    out_reserve(c, n);
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
}

static void out_printf(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(conn_t *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        out_append(c, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void out_header(conn_t *c, const char *name, const char *value)
{
    out_append(c, name, strlen(name));
    out_append(c, ": ", 2);
    out_append(c, value, strlen(value));
    out_append(c, "\r\n", 2);
}

/* Writes the head (and a buffered body) into the output buffer and starts writing. */
static void send_answer(conn_t *c)
{
    jn_http_response_t *res = &c->res;
    if (res->status < 100 || res->status > 599)
        res->status = 500;
    c->state = C_WRITE;
    set_watch(c, 0);
    c->answered_status = res->status;
    c->out_pos = c->out_len = 0;
    /* An unread body cannot be skipped safely: close after answering. */
    if (c->body_left != 0 || (c->body_chunked && !c->chunked.done))
        c->keep_alive = false;
    if (c->srv->stopping)
        c->keep_alive = false;
    bool no_body = res->status == 204 || res->status == 304 || res->status < 200;
    out_printf(c, "HTTP/1.1 %d %s\r\n", res->status, reason_phrase(res->status));
    if (res->upgrade) {
        for (int i = 0; i < res->header_count; i++)
            out_header(c, res->header_names[i], res->header_values[i]);
        out_append(c, "\r\n", 2);
        c->upgrading = true;
        try_write(c);
        return;
    }
    if (!no_body)
        out_header(c, "Content-Type", res->content_type ? res->content_type : "application/json");
    for (int i = 0; i < res->header_count; i++)
        out_header(c, res->header_names[i], res->header_values[i]);
    if (res->stream) {
        c->streaming = true;
        if (res->stream_size >= 0) {
            out_printf(c, "Content-Length: %lld\r\n", (long long)res->stream_size);
        } else if (c->head.minor_version == 1) {
            out_header(c, "Transfer-Encoding", "chunked");
            c->stream_chunked = true;
        } else {
            c->keep_alive = false; /* HTTP/1.0: the end of the body is the end of the connection */
        }
    } else if (!no_body) {
        out_printf(c, "Content-Length: %zu\r\n", res->body_len);
    }
    if (!c->keep_alive)
        out_header(c, "Connection", "close");
    else if (c->head.minor_version == 0)
        out_header(c, "Connection", "keep-alive");
    out_append(c, "\r\n", 2);
    if (!c->is_head_method && !no_body && !res->stream && res->body_len)
        out_append(c, res->body, res->body_len);
    if ((c->is_head_method || no_body) && res->stream) {
        if (res->stream_free)
            res->stream_free(res->stream_ud);
        res->stream = NULL;
        res->stream_free = NULL;
        c->streaming = false;
    }
    try_write(c);
}

static void on_wake_timer(jn_loop_timer_t *t)
{
    conn_t *c = t->ud;
    if (c->state == C_WRITE && c->stream_waiting) {
        c->stream_waiting = false;
        try_write(c);
    }
}

void jn_http_wake(const jn_http_request_t *req, uint64_t delay_ms)
{
    conn_t *c = req->internal;
    if (c->fd_closed)
        return;
    /* Also from inside the stream function itself, before it says it is waiting: the
     * timer runs on a later iteration, by which time it is. */
    jn_loop_timer_start(c->srv->loop, &c->wake_timer, delay_ms, on_wake_timer, c);
}

/* Pulls the next piece of a streamed body into the output buffer. Returns false when
 * nothing is ready (waiting) or the stream failed (closed). */
static bool pull_stream(conn_t *c)
{
    jn_http_response_t *res = &c->res;
    if (c->stream_done)
        return false;
    out_reserve(c, CHUNK_HEAD + STREAM_CHUNK + 2);
    char *data = c->out + CHUNK_HEAD;
    long n = res->stream(res->stream_ud, c->stream_pos, data, STREAM_CHUNK);
    if (n == JN_HTTP_STREAM_AGAIN) {
        c->stream_waiting = true;
        return false;
    }
    if (n < 0) {
        conn_close(c);
        return false;
    }
    if (n == 0) {
        c->stream_done = true;
        if (res->stream_size >= 0 && c->stream_pos != (uint64_t)res->stream_size) {
            conn_close(c); /* shorter than announced: the client must see a cut */
            return false;
        }
        if (c->stream_chunked) {
            memcpy(c->out, "0\r\n\r\n", 5);
            c->out_pos = 0;
            c->out_len = 5;
            return true;
        }
        return false;
    }
    c->stream_pos += (uint64_t)n;
    if (c->stream_chunked) {
        char size_line[CHUNK_HEAD];
        int h = snprintf(size_line, sizeof size_line, "%lx\r\n", (unsigned long)n);
        memcpy(c->out + CHUNK_HEAD - h, size_line, (size_t)h);
        c->out_pos = (size_t)(CHUNK_HEAD - h);
        memcpy(c->out + CHUNK_HEAD + n, "\r\n", 2);
        c->out_len = CHUNK_HEAD + (size_t)n + 2;
    } else {
        c->out_pos = CHUNK_HEAD;
        c->out_len = CHUNK_HEAD + (size_t)n;
    }
    return true;
}

static void finish_request(conn_t *c);

static void detach_upgraded(conn_t *c)
{
    jn_http_response_t *res = &c->res;
    jn_http_upgrade_fn fn = res->upgrade;
    void *ud = res->upgrade_ud;
    upgraded_t *u = xmalloc(sizeof *u);
    u->fd = c->fd;
    size_t extra_len = c->in_len;
    char *extra = NULL;
    if (extra_len) {
        extra = xmalloc(extra_len);
        memcpy(extra, c->in, extra_len);
    }
    count_request(c->route ? c->route->pattern : "unmatched", 101, c->started_ms, now_ms(c));
    jn_loop_watch_stop(&c->watch);
    c->fd_closed = true; /* the socket now belongs to the upgrade handler */
    res->upgrade = NULL;
    conn_maybe_free(c);
    fn(ud, u->fd, extra, extra_len, u);
    free(extra);
}

static void try_write(conn_t *c)
{
    for (;;) {
        while (c->out_pos < c->out_len) {
            ssize_t n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos, MSG_NOSIGNAL);
            if (n > 0) {
                c->out_pos += (size_t)n;
                c->last_progress_ms = now_ms(c);
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                set_watch(c, JN_LOOP_WRITE);
                if (!jn_loop_timer_armed(&c->timer))
                    arm_timer(c, now_ms(c) + (uint64_t)c->srv->opts.stall_timeout_ms);
                return;
            }
            if (n < 0 && errno == EINTR)
                continue;
            conn_close(c);
            return;
        }
        c->out_pos = c->out_len = 0;
        if (c->upgrading) {
            detach_upgraded(c);
            return;
        }
        if (c->streaming && !c->stream_done) {
            if (pull_stream(c))
                continue;
            if (c->fd_closed)
                return;
            if (c->stream_waiting) {
                set_watch(c, JN_LOOP_PEER_CLOSED);
                jn_loop_timer_stop(&c->timer);
                return;
            }
        }
        finish_request(c);
        return;
    }
}

static void finish_request(conn_t *c)
{
    count_request(c->route ? c->route->pattern : "unmatched", c->answered_status, c->started_ms,
                  now_ms(c));
    if (!c->keep_alive) {
        conn_close(c);
        return;
    }
    start_next_request(c);
}

/* ---- reading ---- */

static bool read_more(conn_t *c)
{
    if (c->in_cap - c->in_len < 4096) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 8192;
        if (cap > MAX_HEAD + IN_CHUNK)
            cap = MAX_HEAD + IN_CHUNK;
        if (cap <= c->in_len) {
            return true; /* full: the parser decides */
        }
        c->in = realloc(c->in, cap);
        if (!c->in)
            abort();
        c->in_cap = cap;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return true;
    conn_close(c); /* end of stream or error */
    return false;
}

static void process_head(conn_t *c)
{
    if (c->in_len == 0)
        return;
    if (!c->head_started) {
        c->head_started = true;
        c->head_started_ms = now_ms(c);
        arm_timer(c, c->head_started_ms + (uint64_t)c->srv->opts.head_timeout_ms);
    }
    size_t consumed = 0;
    jn_http_parse_error_t perr;
    c->head.fields = c->fields;
    jn_http_parse_result_t r =
        jn_http_parse_head(c->in, c->in_len, &parse_limits, &c->head, &consumed, &perr);
    if (r == JN_HTTP_PARSE_MORE)
        return;
    if (r == JN_HTTP_PARSE_ERROR) {
        c->started_ms = now_ms(c);
        c->head.minor_version = 1;
        c->in_len = 0;
        answer_error_and_close(c, perr.status, perr.code, perr.message);
        return;
    }
    jn_loop_timer_stop(&c->timer);
    on_head(c, consumed);
}

static void on_pipelined(jn_loop_timer_t *t)
{
    conn_t *c = t->ud;
    if (c->state == C_HEAD && !c->fd_closed)
        process_head(c);
}

static void start_next_request(conn_t *c)
{
    reset_request(c);
    c->state = C_HEAD;
    arm_timer(c, now_ms(c) + (uint64_t)c->srv->opts.idle_timeout_ms);
    set_watch(c, JN_LOOP_READ);
    /* A pipelined request may be waiting in the buffer already: parse it on the next
     * iteration, so a long pipeline does not nest calls. */
    if (c->in_len > 0)
        jn_loop_timer_start(c->srv->loop, &c->wake_timer, 0, on_pipelined, c);
}

static void on_io(jn_loop_watch_t *w, unsigned events)
{
    conn_t *c = w->ud;
    if (c->state == C_HANDLER) {
        if (events & (JN_LOOP_PEER_CLOSED | JN_LOOP_ERROR))
            on_peer_gone(c);
        return;
    }
    if (c->state == C_WRITE) {
        if (events & JN_LOOP_ERROR) {
            conn_close(c);
            return;
        }
        if (events & JN_LOOP_PEER_CLOSED && c->stream_waiting) {
            conn_close(c);
            return;
        }
        if (events & JN_LOOP_WRITE) {
            jn_loop_timer_stop(&c->timer);
            try_write(c);
        }
        return;
    }
    if (!(events & (JN_LOOP_READ | JN_LOOP_ERROR)))
        return;
    if (!read_more(c))
        return;
    if (c->state == C_HEAD) {
        process_head(c);
    } else if (c->state == C_BODY) {
        feed_body(c);
        if (!c->fd_closed && c->state == C_BODY && c->sink_paused)
            set_watch(c, 0);
    }
}

static void on_timer(jn_loop_timer_t *t)
{
    conn_t *c = t->ud;
    uint64_t now = now_ms(c);
    switch (c->state) {
    case C_HEAD:
        if (c->head_started) {
            answer_error_and_close(c, 408, "request_timeout",
                                   "the request head did not arrive in time");
        } else {
            conn_close(c); /* idle keep-alive connection */
        }
        return;
    case C_BODY:
        if (c->sink_paused) {
            arm_timer(c, now + (uint64_t)c->srv->opts.stall_timeout_ms);
            return;
        }
        if (now >= c->body_deadline_ms ||
            now - c->last_progress_ms >= (uint64_t)c->srv->opts.stall_timeout_ms) {
            answer_error_and_close(c, 408, "request_timeout",
                                   "the request body did not arrive in time");
            return;
        }
        arm_timer(c, c->last_progress_ms + (uint64_t)c->srv->opts.stall_timeout_ms);
        return;
    case C_WRITE:
        if (now - c->last_progress_ms >= (uint64_t)c->srv->opts.stall_timeout_ms) {
            conn_close(c); /* the client does not read its answer */
            return;
        }
        arm_timer(c, c->last_progress_ms + (uint64_t)c->srv->opts.stall_timeout_ms);
        return;
    case C_HANDLER: return;
    }
}

/* ---- accepting ---- */

static void refuse_connection(int fd, const char *message)
{
    char body[256], resp[512];
    int blen =
        snprintf(body, sizeof body,
                 "{\"error\":{\"code\":\"service_unavailable\",\"message\":\"%s\"}}", message);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
                     blen, body);
    ssize_t w = send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    close(fd);
}

static void addr_identity(const struct sockaddr_storage *ss, unsigned char key[17], char *text,
                          size_t text_len, unsigned *port)
{
    memset(key, 0, 17);
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        key[0] = 6;
        memcpy(key + 1, &a->sin6_addr, 16);
        inet_ntop(AF_INET6, &a->sin6_addr, text, (socklen_t)text_len);
        *port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        key[0] = 4;
        memcpy(key + 1, &a->sin_addr, 4);
        inet_ntop(AF_INET, &a->sin_addr, text, (socklen_t)text_len);
        *port = ntohs(a->sin_port);
    }
}

static void on_accept(jn_loop_watch_t *w, unsigned events)
{
    (void)events;
    jn_http_server_t *srv = w->ud;
    for (int accepted = 0; accepted < 128; accepted++) {
        struct sockaddr_storage ss;
        socklen_t slen = sizeof ss;
        int fd =
            accept4(srv->listen_fd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                jn_log_warn("http", "accept: %s", strerror(errno));
            return;
        }
        if (srv->stopping) {
            refuse_connection(fd, "the server is stopping");
            continue;
        }
        unsigned char key[17];
        char text[48];
        unsigned port = 0;
        addr_identity(&ss, key, text, sizeof text, &port);
        if (srv->conn_count >= srv->opts.max_connections) {
            jn_metric_inc(srv->refused_connections);
            refuse_connection(fd, "too many connections; retry shortly");
            continue;
        }
        addr_count_t *a = addr_find(srv, key, true);
        if (a->count >= srv->opts.max_connections_per_address) {
            if (a->count == 0)
                addr_release(srv, key);
            jn_metric_inc(srv->refused_connections);
            refuse_connection(fd, "too many connections from your address; retry shortly");
            continue;
        }
        a->count++;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = calloc(1, sizeof *c);
        if (!c)
            abort();
        c->srv = srv;
        c->fd = fd;
        memcpy(c->addr_key, key, 17);
        snprintf(c->addr_text, sizeof c->addr_text, "%s", text);
        c->port = port;
        jn_arena_init(&c->arena, 4096);
        jn_loop_timer_init(&c->timer);
        jn_loop_timer_init(&c->wake_timer);
        c->req.internal = c;
        c->head.fields = c->fields;
        atomic_init(&c->pending.gone, false);
        atomic_init(&c->finish_gate, 0);
        c->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = c;
        srv->conns = c;
        srv->conn_count++;
        jn_metric_add(srv->open_connections, 1);
        if (jn_loop_watch_start(srv->loop, &c->watch, fd, JN_LOOP_READ, on_io, c) != JN_OK) {
            c->fd_closed = true;
            close(fd);
            conn_free(c);
            continue;
        }
        c->state = C_HEAD;
        arm_timer(c, now_ms(c) + (uint64_t)srv->opts.head_timeout_ms);
    }
}

static int open_listener(jn_http_server_t *srv)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t slen;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, srv->bind_address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(srv->opts.port);
        slen = sizeof *a4;
    } else if (inet_pton(AF_INET6, srv->bind_address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(srv->opts.port);
        slen = sizeof *a6;
    } else {
        jn_log_error("http", "bind address '%s' is not an IP address", srv->bind_address);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, slen) != 0 || listen(fd, 4096) != 0) {
        jn_log_error("http", "cannot listen on %s:%u: %s", srv->bind_address,
                     (unsigned)srv->opts.port, strerror(errno));
        close(fd);
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    srv->bound_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                        : ((struct sockaddr_in *)&bound)->sin_port);
    return fd;
}

typedef struct {
    jn_http_server_t *srv;
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool finished;
    jn_err_t err;
} start_call_t;

static void start_on_loop(void *ud)
{
    start_call_t *s = ud;
    s->err = jn_loop_watch_start(s->srv->loop, &s->srv->listen_watch, s->srv->listen_fd,
                                 JN_LOOP_READ, on_accept, s->srv);
    pthread_mutex_lock(&s->lock);
    s->finished = true;
    pthread_cond_signal(&s->done);
    pthread_mutex_unlock(&s->lock);
}

/* Runs fn on the loop and waits for it (from another thread). */
static void run_on_loop_and_wait(jn_http_server_t *srv, void (*fn)(void *), start_call_t *s)
{
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->done, NULL);
    s->finished = false;
    s->srv = srv;
    jn_loop_post(srv->loop, fn, s);
    pthread_mutex_lock(&s->lock);
    while (!s->finished)
        pthread_cond_wait(&s->done, &s->lock);
    pthread_mutex_unlock(&s->lock);
    pthread_cond_destroy(&s->done);
    pthread_mutex_destroy(&s->lock);
}

jn_err_t jn_http_server_start(jn_http_server_t *srv)
{
    srv->listen_fd = open_listener(srv);
    if (srv->listen_fd < 0)
        return JN_ERR_IO;
    if (srv->opts.loop) {
        srv->loop = srv->opts.loop;
    } else {
        srv->loop = jn_loop_new("http");
        srv->own_loop = true;
        jn_loop_spawn(srv->loop);
    }
    if (srv->opts.pool) {
        srv->pool = srv->opts.pool;
    } else {
        srv->pool = jn_taskpool_new("http", srv->opts.threads, 4096);
        srv->own_pool = true;
    }
    start_call_t s = {0};
    if (jn_loop_on_thread(srv->loop))
        s.err = jn_loop_watch_start(srv->loop, &srv->listen_watch, srv->listen_fd, JN_LOOP_READ,
                                    on_accept, srv);
    else
        run_on_loop_and_wait(srv, start_on_loop, &s);
    return s.err;
}

/* On the loop: stop accepting, close idle connections, tell waiting handlers. */
static void stop_on_loop(void *ud)
{
    start_call_t *s = ud;
    jn_http_server_t *srv = s->srv;
    srv->stopping = true;
    jn_loop_watch_stop(&srv->listen_watch);
    close(srv->listen_fd);
    srv->listen_fd = -1;
    for (conn_t *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == C_HEAD || c->state == C_WRITE || c->state == C_BODY)
            conn_close(c);
        else if (c->state == C_HANDLER && c->handler_busy && c->on_gone &&
                 !atomic_exchange(&c->pending.gone, true)) {
            void (*fn)(void *) = c->on_gone;
            c->on_gone = NULL;
            fn(c->on_gone_ud);
        }
    }
    pthread_mutex_lock(&s->lock);
    s->finished = true;
    pthread_cond_signal(&s->done);
    pthread_mutex_unlock(&s->lock);
}

void jn_http_server_free(jn_http_server_t *srv)
{
    if (!srv)
        return;
    if (srv->loop) {
        start_call_t s = {0};
        run_on_loop_and_wait(srv, stop_on_loop, &s);
        /* Handlers still running finish and free their connections; wait a bounded time. */
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        pthread_mutex_lock(&srv->lock);
        while (srv->conn_count > 0) {
            if (pthread_cond_timedwait(&srv->drained, &srv->lock, &deadline) != 0)
                break;
        }
        pthread_mutex_unlock(&srv->lock);
        if (srv->conn_count > 0)
            jn_log_warn("http", "%d connections still busy at shutdown", srv->conn_count);
        if (srv->own_pool)
            jn_taskpool_free(srv->pool);
        if (srv->own_loop) {
            jn_loop_stop(srv->loop);
            jn_loop_free(srv->loop);
        }
    } else if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
    }
    for (int i = 0; i < ADDR_BUCKETS; i++) {
        for (addr_count_t *a = srv->addr_buckets[i], *next; a; a = next) {
            next = a->next;
            free(a);
        }
    }
    pthread_cond_destroy(&srv->drained);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
