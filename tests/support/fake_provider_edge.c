/*
 * fake_provider_edge.c - provider behaviours that test the edges of a gateway, under /api
 * and without authentication (each request is counted in /_admin/stats like any other):
 *
 *   ANY /api/inspect[/...]        what arrived, exactly: method, the raw path and
 *                                 query as sent (percent-encoding untouched), decoded
 *                                 headers and query, the body's length, and the client's
 *                                 port (which upstream connection carried the request)
 *   GET /api/many-headers?count=N an answer with N headers X-Header-<i> (1..200),
 *                                 and the Link and X-RateLimit-* headers GitHub sends
 *   GET /api/hang                 never answers. The answer is deferred on the
 *                                 server's loop (no thread waits) and finished only when
 *                                 the client goes away or the fake stops; /_admin/stats
 *                                 counts hangs_started and hangs_open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_provider.h"

#define MAX_MANY_HEADERS 200

static void respond_message(jn_http_response_t *res, int status, const char *message)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "message", json_object_new_string(message));
    jn_http_respond_json(res, status, o);
}

/* Counted like every /api request (fake_provider_api.c), so a test sees what arrived. */
static void count_request(jn_fake_t *fp, const jn_http_request_t *req)
{
    pthread_mutex_lock(&fp->mu);
    fp->api_requests++;
    jn_fake_count(fp->api_requests_by_path, req->path);
    pthread_mutex_unlock(&fp->mu);
}

static void inspect(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    count_request(ud, req);
    const char *raw_query = jn_http_raw_query(req);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "method", json_object_new_string(req->method));
    json_object_object_add(o, "raw_path", json_object_new_string(req->raw_path));
    json_object_object_add(o, "raw_query", raw_query ? json_object_new_string(raw_query) : NULL);
    json_object_object_add(o, "path", json_object_new_string(req->path));
    json_object_object_add(o, "headers", jn_fake_request_headers(req));
    json_object_object_add(o, "query", jn_fake_request_query(req));
    json_object_object_add(o, "body_length", json_object_new_int64((int64_t)req->body_len));
    json_object_object_add(o, "client_port", json_object_new_int((int)req->remote_port));
    jn_http_respond_json(res, 200, o);
}

static void many_headers(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    count_request(ud, req);
    const char *count_text = jn_http_query(req, "count");
    char *end = NULL;
    long count = count_text ? strtol(count_text, &end, 10) : -1;
    if (!count_text || *end || count < 1 || count > MAX_MANY_HEADERS) {
        respond_message(res, 400, "count must be an integer from 1 to 200");
        return;
    }
    respond_message(res, 200, "headers");
    jn_http_add_header(res, "Link",
                       "<https://api.example.com/items?page=2>; rel=\"next\", "
                       "<https://api.example.com/items?page=9>; rel=\"last\"");
    jn_http_add_header(res, "X-RateLimit-Limit", "5000");
    jn_http_add_header(res, "X-RateLimit-Remaining", "4999");
    jn_http_add_header(res, "X-RateLimit-Reset", "1700000000");
    jn_http_add_header(res, "X-RateLimit-Used", "1");
    jn_http_add_header(res, "X-RateLimit-Resource", "core");
    for (long i = 1; i <= count; i++) {
        char name[32], value[32];
        snprintf(name, sizeof name, "X-Header-%ld", i);
        snprintf(value, sizeof value, "value-%ld", i);
        jn_http_add_header(res, name, value);
    }
}

/* ---- a provider that never answers ---- */

typedef struct {
    jn_fake_t *fp;
    jn_http_pending_t *pending;
    jn_http_response_t *res;
} hang_t;

/* The client left (or the fake stops): let the request go. */
static void hang_release(void *ud)
{
    hang_t *h = ud;
    pthread_mutex_lock(&h->fp->mu);
    h->fp->hangs_open--;
    pthread_mutex_unlock(&h->fp->mu);
    /* Sent only at shutdown, to a client still there. */
    respond_message(h->res, 503, "the fake provider is stopping");
    jn_http_pending_finish(h->pending);
    free(h);
}

/* Runs on the server's loop: defers and returns, so a thousand hangs hold no thread. */
static void hang(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_fake_t *fp = ud;
    count_request(fp, req);
    hang_t *h = malloc(sizeof *h);
    if (!h)
        abort();
    *h = (hang_t){fp, jn_http_defer(req), res};
    jn_http_pending_on_gone(h->pending, hang_release, h);
    pthread_mutex_lock(&fp->mu);
    fp->hangs_started++;
    fp->hangs_open++;
    pthread_mutex_unlock(&fp->mu);
}

void jn_fake_routes_edge(jn_fake_t *fp, jn_http_server_t *srv)
{
    jn_http_route(srv, "*", "/api/inspect", inspect, fp);
    jn_http_route(srv, "*", "/api/inspect/*", inspect, fp);
    jn_http_route(srv, "GET", "/api/many-headers", many_headers, fp);
    jn_http_route_t r = {.method = "GET",
                         .pattern = "/api/hang",
                         .handler = hang,
                         .ud = fp,
                         .where = JN_HTTP_ON_LOOP};
    jn_http_route_add(srv, &r);
}
