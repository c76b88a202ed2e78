/*
 * http_server.h - the HTTP/1.1 server every Junction program embeds.
 *
 * One event loop (loop.h) owns the sockets: it accepts, parses requests (http_parse.h),
 * reads bodies, writes answers and streams, and never blocks. Handlers run where their
 * route says: on a task pool thread (the default: they may block briefly on PostgreSQL),
 * or on the loop itself (they must not block: /livez, and handlers that wait for
 * something — a provider, a job result — by deferring their answer). A request that
 * waits costs its connection's memory and no thread, so a thousand calls hanging on a
 * provider do not stop anyone else.
 *
 * Routes map (method, pattern) to a handler. Patterns are paths whose segments may be
 * ":name" (one segment, percent-decoded) or a final "*" (the rest of the path, left
 * percent-encoded as sent, so that "%2F" stays inside a segment). The route is chosen on
 * the request head, before the body is read: a gate may refuse the request or set how
 * much body it may send (the gateway authenticates there), and each route has its own
 * body cap (413 past it).
 *
 * The edge is defended here, once: per-connection and per-address connection limits,
 * a deadline for the request head, a minimum pace for bodies and for reading answers,
 * an idle timeout between keep-alive requests, caps on the target, the head, the header
 * count and the query arguments, and a refusal (400) of any NUL or invalid UTF-8 in the
 * decoded path, query or headers, before a handler runs. Every error, including the
 * protocol's own (400, 413, 414, 431, 501, 505, 503 when full), is the JSON envelope
 * {"error":{"code","message"}}.
 *
 * Requests are counted in jn_http_requests_total{route,code} and
 * jn_http_request_duration_seconds{route}.
 */
#ifndef JN_HTTP_SERVER_H
#define JN_HTTP_SERVER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/loop.h"
#include "net/taskpool.h"

#define JN_HTTP_MAX_PARAMS 8

typedef struct jn_http_server jn_http_server_t;

typedef struct {
    const char *method;   /* "GET" */
    const char *path;     /* without the query string, percent-decoded (for messages) */
    const char *raw_path; /* without the query string, as sent (percent-encoded) */
    const char *route;    /* the matched pattern, for labels and logs */
    const char *body;     /* NUL-terminated copy of the body; may contain NUL bytes */
    size_t body_len;
    const char *remote_addr; /* the client's address, "127.0.0.1" or "::1" */
    unsigned remote_port;    /* the client's port: tells its connections apart */
    int param_count;
    const char *param_names[JN_HTTP_MAX_PARAMS];
    char *param_values[JN_HTTP_MAX_PARAMS];
    void *internal; /* the server's */
} jn_http_request_t;

/* Produces the next bytes of a streamed response body: writes up to max bytes at buf and
 * returns how many, 0 at the end of the body, JN_HTTP_STREAM_AGAIN when nothing is ready
 * yet (the producer then calls jn_http_wake() when it has more), or -1 to abort the
 * response (the client sees a cut connection). pos is the number of bytes produced so far.
 * Called on the loop thread: it must not block. */
typedef long (*jn_http_stream_fn)(void *ud, uint64_t pos, char *buf, size_t max);
#define JN_HTTP_STREAM_AGAIN (-2)

/* Takes over a connection after a 101 Switching Protocols answer (WebSockets): sock now
 * speaks the new protocol; extra holds bytes the client already sent after its request.
 * Called on the loop thread, must not block; the callee owns the socket until it calls
 * jn_http_upgraded_close(handle). */
typedef void (*jn_http_upgrade_fn)(void *ud, int sock, const char *extra, size_t extra_len,
                                   void *handle);

typedef struct {
    int status;
    char *body; /* owned: freed by the server after sending */
    size_t body_len;
    const char *content_type; /* static string; default application/json */
    int header_count;
    int header_cap;
    size_t header_bytes;
    char **header_names; /* owned copies */
    char **header_values;
    jn_http_stream_fn stream; /* set by jn_http_respond_stream */
    void *stream_ud;
    void (*stream_free)(void *ud);
    int64_t stream_size;
    jn_http_upgrade_fn upgrade; /* set by jn_http_respond_upgrade */
    void *upgrade_ud;
} jn_http_response_t;

typedef void (*jn_http_handler_fn)(const jn_http_request_t *req, jn_http_response_t *res, void *ud);

/* Runs on the loop when a request's head has arrived and its route is known, before any
 * of its body is read. Returns true to go on; *max_body may be lowered (or raised up to the
 * route's cap) for this request. Returning false answers with what it put in res (and
 * closes the connection if a body was announced). Must not block. */
typedef bool (*jn_http_gate_fn)(const jn_http_request_t *req, size_t *max_body,
                                jn_http_response_t *res, void *ud);

typedef struct {
    const char *bind_address;        /* "127.0.0.1" (default) or "0.0.0.0", or an IPv6 literal */
    uint16_t port;                   /* 0 picks a free port; see jn_http_server_port() */
    size_t max_body;                 /* default body cap of a route; 1 MiB when 0 */
    int threads;                     /* handler threads when the server makes its own pool */
    jn_loop_t *loop;                 /* share a loop (the caller runs it), or NULL for an own one */
    jn_taskpool_t *pool;             /* share a task pool, or NULL for an own one */
    int max_connections;             /* open at once; default 10000 */
    int max_connections_per_address; /* default 1024 */
    int head_timeout_ms;             /* from the first byte to the end of the head; default 10 s */
    int idle_timeout_ms;             /* between requests on a kept-alive connection; default 60 s */
    int stall_timeout_ms;            /* body or answer making no progress; default 30 s */
    size_t max_query_args;           /* default 256 */
} jn_http_options_t;

/* Creates a server (not yet listening). Returns NULL only on allocation failure. */
jn_http_server_t *jn_http_server_new(const jn_http_options_t *opts);

/* Where a route's handler runs. */
typedef enum {
    JN_HTTP_ON_POOL = 0, /* a task pool thread: may block briefly (a database query) */
    JN_HTTP_ON_LOOP,     /* the loop thread: must not block; defer to wait */
} jn_http_where_t;

/* Receives a request body piecewise instead of buffering it (large uploads through the
 * proxy). open runs on the loop once the head is in and returns a sink context, or NULL to
 * have the body buffered and the route's handler called; the route's body cap does not
 * apply to a sink. A request whose gate lowered its body cap (an anonymous caller) is
 * never given to a sink: its body is buffered under that cap, 413 past it. write receives
 * each piece in order and returns how many bytes it took; taking fewer pauses the reading
 * until jn_http_sink_resume(). finish answers the request (it may defer); close runs once
 * at the end whatever happened. All on the loop thread, none of them may block. */
typedef struct {
    void *(*open)(const jn_http_request_t *req, void *ud);
    size_t (*write)(void *sink, const char *data, size_t len);
    void (*finish)(void *sink, const jn_http_request_t *req, jn_http_response_t *res);
    void (*close)(void *sink);
} jn_http_body_sink_t;

typedef struct {
    const char *method; /* "GET", or "*" for any */
    const char *pattern;
    jn_http_handler_fn handler;
    void *ud;
    jn_http_where_t where;
    size_t max_body;                 /* 0: the server's default */
    const jn_http_body_sink_t *sink; /* borrowed; may be NULL */
} jn_http_route_t;

/* Adds a route (copied); routes are tried in the order added. Call before start. */
void jn_http_route_add(jn_http_server_t *srv, const jn_http_route_t *route);

/* jn_http_route_add for a pool handler with the default body cap. */
void jn_http_route(jn_http_server_t *srv, const char *method, const char *pattern,
                   jn_http_handler_fn handler, void *ud);

/* Sets the gate every route of this server passes (see jn_http_gate_fn). */
void jn_http_server_gate(jn_http_server_t *srv, jn_http_gate_fn gate, void *ud);

/* Starts listening (and the server's own loop, when it has one). JN_ERR_IO (logged with
 * the reason) when the port cannot be bound. */
jn_err_t jn_http_server_start(jn_http_server_t *srv);

/* The port actually bound (useful with port 0). */
uint16_t jn_http_server_port(const jn_http_server_t *srv);

/* Stops accepting, closes every connection, waits for running handlers, frees. A shared
 * loop must still run (it is told to close the sockets); NULL is fine. */
void jn_http_server_free(jn_http_server_t *srv);

/* Request accessors: all return borrowed strings valid until the answer is sent, or NULL.
 * Header names are matched without regard to case; query names exactly. */
const char *jn_http_header(const jn_http_request_t *req, const char *name);
const char *jn_http_query(const jn_http_request_t *req, const char *name);
const char *jn_http_param(const jn_http_request_t *req, const char *name);
/* The query string as sent (without "?"), or NULL when there is none. */
const char *jn_http_raw_query(const jn_http_request_t *req);
/* Calls fn for each value of a repeated query argument (include=a&include=b). */
void jn_http_query_each(const jn_http_request_t *req, const char *name,
                        void (*fn)(const char *value, void *ud), void *ud);
/* Calls fn for every query argument, in order (value "" when it has none). */
void jn_http_query_all(const jn_http_request_t *req,
                       void (*fn)(const char *name, const char *value, void *ud), void *ud);
/* Calls fn for every request header (names as sent). */
void jn_http_header_each(const jn_http_request_t *req,
                         void (*fn)(const char *name, const char *value, void *ud), void *ud);
/* The query string rebuilt from the parsed arguments ("a=1&b=x%20y"), or NULL when there
 * is none. New string; caller frees. */
char *jn_http_query_string(const jn_http_request_t *req);
/* Collects bracketed query arguments name[key]=value (e.g. tags[team]=core) into out as
 * key -> value strings. Keys over 64 bytes are skipped. */
void jn_http_query_bracketed(const jn_http_request_t *req, const char *name, json_object *out);

/* Response helpers. They replace any body already set. */
void jn_http_respond_json(jn_http_response_t *res, int status, json_object *body); /* takes body */
void jn_http_respond_text(jn_http_response_t *res, int status, const char *content_type,
                          const char *text);
/* The JSON error envelope {"error":{"code":code,"message":message}}. */
void jn_http_respond_error(jn_http_response_t *res, int status, const char *code, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));
/* A response whose body is produced piece by piece by fn (a large download, a proxied
 * body), so it never sits in memory whole. size is the body length, or -1 when unknown
 * (chunked). free_fn(ud) runs once the response is finished or abandoned. */
void jn_http_respond_stream(jn_http_response_t *res, int status, const char *content_type,
                            int64_t size, jn_http_stream_fn fn, void *ud,
                            void (*free_fn)(void *ud));

/* Answers 101 Switching Protocols with exactly the headers added with jn_http_add_header;
 * fn receives the connection once the answer is sent. */
void jn_http_respond_upgrade(jn_http_response_t *res, jn_http_upgrade_fn fn, void *ud);

/* Closes a connection handed over by an upgrade. */
void jn_http_upgraded_close(void *handle);

/* Frees what a response holds (body, headers, an unsent stream), for a response a
 * handler built but does not answer with. The server does this itself for answers. */
void jn_http_response_cleanup(jn_http_response_t *res);

/* Adds a response header (copied). A name or value with CR, LF or NUL is dropped (and
 * logged); headers past 64 KiB in all are dropped. */
void jn_http_add_header(jn_http_response_t *res, const char *name, const char *value);

/* ---- answering later ---- */

typedef struct jn_http_pending jn_http_pending_t;

/* Called by a handler that answers later: the handler returns, req and res stay valid, and
 * the answer in res is sent when jn_http_pending_finish() is called. */
jn_http_pending_t *jn_http_defer(const jn_http_request_t *req);

/* Sends the answer the handler's res now holds. Thread-safe; exactly once per defer; the
 * caller must not touch req or res afterwards. */
void jn_http_pending_finish(jn_http_pending_t *p);

/* True once the client has gone away (its answer would be dropped): stop waiting early.
 * Thread-safe. */
bool jn_http_pending_gone(const jn_http_pending_t *p);

/* Calls fn(ud) on the loop if the client goes away (or the server stops) while the answer
 * is deferred, so the work it waits for can be abandoned; the handler still finishes.
 * Loop thread only. */
void jn_http_pending_on_gone(jn_http_pending_t *p, void (*fn)(void *ud), void *ud);

/* After a stream returned JN_HTTP_STREAM_AGAIN: asks the server to call it again after
 * delay_ms (0: as soon as the socket can take more). Loop thread only, and only while the
 * stream's free_fn has not run. */
void jn_http_wake(const jn_http_request_t *req, uint64_t delay_ms);

/* After a sink's write took less than it was given: read again. Loop thread only, and
 * only while the sink's close has not run. */
void jn_http_sink_resume(const jn_http_request_t *req);

/* The loop the server runs on (to post work back to it). */
jn_loop_t *jn_http_server_loop(const jn_http_server_t *srv);

#endif
