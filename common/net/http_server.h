/*
 * http_server.h - the HTTP server every Junction program embeds (libmicrohttpd).
 *
 * A route table maps (method, pattern) to a handler. Patterns are paths whose
 * segments may be ":name" (one segment, captured) or a final "*" (the rest, captured
 * as "*"). The server reads the whole request body up to a cap before calling the
 * handler (413 past it), answers 404/405 itself with the JSON error envelope, and
 * counts every request in jn_http_requests_total / jn_http_request_duration_seconds.
 * Handlers run on a pool of server threads and may block briefly (a database query);
 * they fill a jn_http_response_t that the server sends and frees.
 */
#ifndef JN_HTTP_SERVER_H
#define JN_HTTP_SERVER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define JN_HTTP_MAX_PARAMS 8
#define JN_HTTP_MAX_HEADERS 16

typedef struct jn_http_server jn_http_server_t;

typedef struct {
    const char *method; /* "GET" */
    const char *path;   /* without the query string, percent-decoded by the server */
    const char *route;  /* the matched pattern, for labels and logs */
    const char *body;   /* NUL-terminated copy of the body; may contain NUL bytes */
    size_t body_len;
    void *conn; /* the underlying struct MHD_Connection */
    int param_count;
    const char *param_names[JN_HTTP_MAX_PARAMS];
    char *param_values[JN_HTTP_MAX_PARAMS];
} jn_http_request_t;

/* Produces the next bytes of a streamed response body: writes up to max bytes at buf and
 * returns how many, 0 at the end of the body, or -1 to abort the response (the client
 * sees a cut connection). pos is the number of bytes produced so far. Called from a
 * server thread, possibly long after the handler returned. */
typedef long (*jn_http_stream_fn)(void *ud, uint64_t pos, char *buf, size_t max);

/* Takes over a connection after a 101 Switching Protocols answer (WebSockets): sock now
 * speaks the new protocol; extra holds bytes the client already sent after its request.
 * Called on a server thread, must not block; the callee owns the connection until it
 * calls jn_http_upgraded_close(handle). */
typedef void (*jn_http_upgrade_fn)(void *ud, int sock, const char *extra, size_t extra_len,
                                   void *handle);

typedef struct {
    int status;
    char *body; /* owned: freed by the server after sending */
    size_t body_len;
    const char *content_type; /* static string; default application/json */
    int header_count;
    char *header_names[JN_HTTP_MAX_HEADERS]; /* owned copies */
    char *header_values[JN_HTTP_MAX_HEADERS];
    jn_http_stream_fn stream; /* set by jn_http_respond_stream */
    void *stream_ud;
    void (*stream_free)(void *ud);
    int64_t stream_size;
    jn_http_upgrade_fn upgrade; /* set by jn_http_respond_upgrade */
    void *upgrade_ud;
} jn_http_response_t;

typedef void (*jn_http_handler_fn)(const jn_http_request_t *req, jn_http_response_t *res, void *ud);

typedef struct {
    const char *bind_address; /* "0.0.0.0" or "127.0.0.1" */
    uint16_t port;            /* 0 picks a free port; see jn_http_server_port() */
    size_t max_body;          /* bytes; larger requests get 413 */
    int threads;              /* size of the handler thread pool */
} jn_http_options_t;

/* Creates a server (not yet listening). Returns NULL only on allocation failure. */
jn_http_server_t *jn_http_server_new(const jn_http_options_t *opts);

/* Adds a route; routes are tried in the order added. method "*" matches any method.
 * Call before jn_http_server_start(). */
void jn_http_route(jn_http_server_t *srv, const char *method, const char *pattern,
                   jn_http_handler_fn handler, void *ud);

/* Receives a request body piecewise instead of buffering it (large uploads through the
 * proxy). open runs once the headers are in and returns a sink context, or NULL to have
 * the body buffered and the route's ordinary handler called; the body size cap does not
 * apply to a sink. write receives each piece in order; finish answers the request; close
 * runs once at the end whatever happened. All on one server thread per request. */
typedef struct {
    void *(*open)(const jn_http_request_t *req, void *ud);
    void (*write)(void *sink, const char *data, size_t len);
    void (*finish)(void *sink, const jn_http_request_t *req, jn_http_response_t *res);
    void (*close)(void *sink);
} jn_http_body_sink_t;

/* jn_http_route() with a body sink (borrowed; must outlive the server). */
void jn_http_route_with_sink(jn_http_server_t *srv, const char *method, const char *pattern,
                             jn_http_handler_fn handler, const jn_http_body_sink_t *sink, void *ud);

/* Starts listening. JN_ERR_IO (logged with the reason) when the port cannot be bound. */
jn_err_t jn_http_server_start(jn_http_server_t *srv);

/* The port actually bound (useful with port 0). */
uint16_t jn_http_server_port(const jn_http_server_t *srv);

/* Stops accepting, finishes in-flight requests, frees everything. NULL is fine. */
void jn_http_server_free(jn_http_server_t *srv);

/* Request accessors: all return borrowed strings valid during the handler, or NULL. */
const char *jn_http_header(const jn_http_request_t *req, const char *name);
const char *jn_http_query(const jn_http_request_t *req, const char *name);
const char *jn_http_param(const jn_http_request_t *req, const char *name);
/* Calls fn for each value of a repeated query argument (include=a&include=b). */
void jn_http_query_each(const jn_http_request_t *req, const char *name,
                        void (*fn)(const char *value, void *ud), void *ud);

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

/* Answers 101 Switching Protocols (add the protocol's headers with jn_http_add_header);
 * fn receives the connection once the answer is sent. */
void jn_http_respond_upgrade(jn_http_response_t *res, jn_http_upgrade_fn fn, void *ud);

/* Closes a connection handed over by an upgrade. */
void jn_http_upgraded_close(void *handle);

/* Frees what a response holds (body, headers, an unsent stream), for a response a
 * handler built but does not answer with. The server does this itself for answers. */
void jn_http_response_cleanup(jn_http_response_t *res);

/* Adds a response header (copied). Ignored past JN_HTTP_MAX_HEADERS. */
void jn_http_add_header(jn_http_response_t *res, const char *name, const char *value);

#endif
