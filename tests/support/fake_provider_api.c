/*
 * fake_provider_api.c - the REST API of the fake provider, under /api.
 *
 * Every /api request first passes the gates, in this order: it is counted (total and
 * per path), waits latency_ms, answers the injected failure while fail_next.count > 0,
 * then goes through the rate limit (a fixed window: its headers on every response, 429
 * past the limit). Then the caller must show a valid access token (Authorization:
 * Bearer) or a registered API key (x-api-key) unless require_auth is off; 401
 * {"message":"bad token"} otherwise.
 *
 * /api/me echoes the caller's headers, query and port (which upstream connection carried
 * it); /api/redirect?to=URL&status=N answers a redirect there.
 *
 * The data set is items_count items "item-1".."item-N" with seq = N, served by four
 * paginations (cursor, link, offset, page). Streamed bodies (/api/large, /api/drip) use
 * the byte pattern byte(i) = i % 251 and never hold the body in memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/crypto.h"
#include "fake_provider.h"

#define DEFAULT_PAGE 50
#define MAX_PAGE 100
#define MAX_LARGE (INT64_C(1) << 31)
#define MAX_DRIP (1 << 20)
#define DRIP_CHUNK 16
#define ITEMS_EPOCH 1704067200 /* 2024-01-01T00:00:00Z; item n was updated n minutes later */

typedef void (*api_fn)(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                       const char *token_kind);

typedef struct {
    const char *method;
    const char *pattern;
    api_fn fn;
    bool auth;
    jn_fake_t *fp;
} api_route_t;

static void respond_message(jn_http_response_t *res, int status, const char *message)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "message", json_object_new_string(message));
    jn_http_respond_json(res, status, o);
}

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void add_header_int(jn_http_response_t *res, const char *name, int64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)value);
    jn_http_add_header(res, name, text);
}

/* Runs the gates; true when they answered the request themselves. */
static bool gate(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res)
{
    pthread_mutex_lock(&fp->mu);
    fp->api_requests++;
    jn_fake_count(fp->api_requests_by_path, req->path);
    int64_t latency = fp->knobs.latency_ms;
    pthread_mutex_unlock(&fp->mu);
    jn_fake_sleep_ms(latency);

    pthread_mutex_lock(&fp->mu);
    jn_fake_fail_next_t *f = &fp->knobs.fail_next;
    if (f->count > 0) {
        f->count--;
        jn_http_respond_text(res, f->status, jn_fake_intern(fp, f->content_type), f->body);
        if (f->headers) {
            json_object_object_foreach(f->headers, name, value)
            {
                jn_http_add_header(res, name, json_object_get_string(value));
            }
        }
        pthread_mutex_unlock(&fp->mu);
        return true;
    }
    const jn_fake_rate_limit_t *rl = &fp->knobs.rate_limit;
    if (!rl->on) {
        pthread_mutex_unlock(&fp->mu);
        return false;
    }
    int64_t now = jn_fake_now_ms();
    if (fp->window_start_ms == 0 || now >= fp->window_start_ms + rl->window_ms) {
        fp->window_start_ms = now;
        fp->window_used = 0;
    }
    fp->window_used++;
    int64_t left_ms = fp->window_start_ms + rl->window_ms - now;
    int64_t remaining = rl->limit - fp->window_used;
    bool over = remaining < 0;
    char reset_header[64], remaining_header[64];
    snprintf(reset_header, sizeof reset_header, "%s", rl->reset_header);
    snprintf(remaining_header, sizeof remaining_header, "%s", rl->remaining_header);
    bool retry_after = rl->retry_after;
    pthread_mutex_unlock(&fp->mu);

    add_header_int(res, remaining_header, over ? 0 : remaining);
    add_header_int(res, reset_header, (realtime_ms() + left_ms + 999) / 1000);
    if (!over)
        return false;
    respond_message(res, 429, "rate limit exceeded");
    if (retry_after)
        add_header_int(res, "Retry-After", (left_ms + 999) / 1000);
    return true;
}

/* "bearer", "api_key", "none" (auth off and none given) or NULL (refused). */
static const char *authenticate(jn_fake_t *fp, const jn_http_request_t *req)
{
    const char *auth = jn_http_header(req, "Authorization");
    const char *key = jn_http_header(req, "x-api-key");
    const char *kind = NULL;
    int64_t now = jn_fake_now_ms();
    pthread_mutex_lock(&fp->mu);
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *value = auth + 7;
        while (*value == ' ')
            value++;
        for (const jn_fake_token_t *t = fp->tokens; t && !kind; t = t->next)
            if (!t->refresh && !t->revoked && (t->expires_at_ms == 0 || now < t->expires_at_ms) &&
                strcmp(t->value, value) == 0)
                kind = "bearer";
    }
    if (!kind && key && jn_fake_client_find(fp->api_keys, key))
        kind = "api_key";
    if (!kind && !fp->knobs.require_auth)
        kind = "none";
    pthread_mutex_unlock(&fp->mu);
    return kind;
}

static void dispatch(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    const api_route_t *route = ud;
    if (gate(route->fp, req, res))
        return;
    const char *kind = NULL;
    if (route->auth) {
        kind = authenticate(route->fp, req);
        if (!kind) {
            respond_message(res, 401, "bad token");
            jn_http_add_header(res, "WWW-Authenticate", "Bearer realm=\"fake_provider\"");
            return;
        }
    }
    route->fn(route->fp, req, res, kind);
}

static void me(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
               const char *kind)
{
    (void)fp;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string("user-1"));
    json_object_object_add(o, "name", json_object_new_string("Test User"));
    json_object_object_add(o, "token_kind", json_object_new_string(kind));
    json_object_object_add(o, "client_port", json_object_new_int((int)req->remote_port));
    json_object_object_add(o, "headers", jn_fake_request_headers(req));
    json_object_object_add(o, "query", jn_fake_request_query(req));
    jn_http_respond_json(res, 200, o);
}

/* Reads a non-negative integer query argument; absent gives def. False when malformed. */
static bool query_int(const jn_http_request_t *req, const char *name, int64_t def, int64_t max,
                      int64_t *out)
{
    const char *text = jn_http_query(req, name);
    *out = def;
    if (!text)
        return true;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || n < 0 || n > max)
        return false;
    *out = n;
    return true;
}

/* The page size from limit or per_page: default 50, at most 100, at least 1. */
static bool page_size(const jn_http_request_t *req, jn_http_response_t *res, int64_t *out)
{
    const char *name = jn_http_query(req, "limit") ? "limit" : "per_page";
    if (!query_int(req, name, DEFAULT_PAGE, INT32_MAX, out) || *out < 1) {
        respond_message(res, 400, "limit must be a positive integer");
        return false;
    }
    if (*out > MAX_PAGE)
        *out = MAX_PAGE;
    return true;
}

/* The data set as the knobs make it now. */
typedef struct {
    int64_t count, version, delete_every, fail_from;
    bool reverse;
} items_view_t;

static items_view_t items_view(jn_fake_t *fp)
{
    pthread_mutex_lock(&fp->mu);
    items_view_t v = {fp->knobs.items_count, fp->knobs.items_version, fp->knobs.items_delete_every,
                      fp->knobs.items_fail_from_offset, fp->knobs.items_reverse_keys};
    pthread_mutex_unlock(&fp->mu);
    return v;
}

/* A page starting at offset fails by the items_fail_from_offset knob (answered). */
static bool items_fail(const items_view_t *v, int64_t offset, jn_http_response_t *res)
{
    if (v->fail_from < 0 || offset < v->fail_from)
        return false;
    respond_message(res, 500, "items are unavailable");
    return true;
}

/* {"items":[items offset+1 .. offset+limit, within count]}: positions count, so an item
 * that is gone leaves its page one shorter. */
static json_object *items_page(const items_view_t *v, int64_t offset, int64_t limit)
{
    json_object *items = json_object_new_array();
    for (int64_t seq = offset + 1; seq <= v->count && seq <= offset + limit; seq++) {
        if (v->delete_every > 0 && seq % v->delete_every == 0)
            continue;
        char id[32], name[48], updated[32];
        snprintf(id, sizeof id, "item-%lld", (long long)seq);
        if (v->version > 0 && seq % 3 == 0)
            snprintf(name, sizeof name, "Item %lld v%lld", (long long)seq, (long long)v->version);
        else
            snprintf(name, sizeof name, "Item %lld", (long long)seq);
        time_t t = (time_t)(ITEMS_EPOCH + seq * 60);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(updated, sizeof updated, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_object *item = json_object_new_object();
        if (v->reverse) {
            json_object_object_add(item, "seq", json_object_new_int64(seq));
            json_object_object_add(item, "updated_at", json_object_new_string(updated));
            json_object_object_add(item, "name", json_object_new_string(name));
            json_object_object_add(item, "id", json_object_new_string(id));
        } else {
            json_object_object_add(item, "id", json_object_new_string(id));
            json_object_object_add(item, "name", json_object_new_string(name));
            json_object_object_add(item, "updated_at", json_object_new_string(updated));
            json_object_object_add(item, "seq", json_object_new_int64(seq));
        }
        json_object_array_add(items, item);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "items", items);
    return o;
}

/* An opaque page token: base64url (no padding) of "<kind>:<offset>". */
static void token_encode(char kind, int64_t offset, char out[64])
{
    char plain[32];
    int n = snprintf(plain, sizeof plain, "%c:%lld", kind, (long long)offset);
    jn_base64_encode((const unsigned char *)plain, (size_t)n, out);
    size_t k = 0;
    for (size_t i = 0; out[i] && out[i] != '='; i++)
        out[k++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[k] = '\0';
}

/* Decodes a token made by token_encode for kind; false when it is not one. */
static bool token_decode(const char *text, char kind, int64_t *offset)
{
    char b64[64];
    size_t n = strlen(text);
    if (n == 0 || n + 3 >= sizeof b64)
        return false;
    for (size_t i = 0; i < n; i++)
        b64[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
    while (n % 4 != 0) /* the decoder wants the padding that base64url leaves out */
        b64[n++] = '=';
    b64[n] = '\0';
    unsigned char plain[48];
    size_t len = 0;
    if (jn_base64_decode(b64, n, plain, sizeof plain - 1, &len) != JN_OK || len < 3)
        return false;
    plain[len] = '\0';
    if (plain[0] != (unsigned char)kind || plain[1] != ':')
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll((const char *)plain + 2, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        return false;
    *offset = v;
    return true;
}

static void items_cursor(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                         const char *kind)
{
    (void)kind;
    int64_t limit, offset = 0;
    if (!page_size(req, res, &limit))
        return;
    const char *cursor = jn_http_query(req, "cursor");
    if (cursor && *cursor && !token_decode(cursor, 'c', &offset)) {
        respond_message(res, 400, "bad cursor");
        return;
    }
    items_view_t v = items_view(fp);
    if (items_fail(&v, offset, res))
        return;
    json_object *o = items_page(&v, offset, limit);
    json_object *next = NULL;
    if (offset + limit < v.count) {
        char tok[64];
        token_encode('c', offset + limit, tok);
        next = json_object_new_string(tok);
    }
    json_object_object_add(o, "next_cursor", next);
    jn_http_respond_json(res, 200, o);
}

static void items_link(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                       const char *kind)
{
    (void)kind;
    int64_t limit, offset = 0;
    if (!page_size(req, res, &limit))
        return;
    const char *page_token = jn_http_query(req, "page_token");
    if (page_token && *page_token && !token_decode(page_token, 'l', &offset)) {
        respond_message(res, 400, "bad page_token");
        return;
    }
    items_view_t v = items_view(fp);
    if (items_fail(&v, offset, res))
        return;
    pthread_mutex_lock(&fp->mu);
    unsigned port = fp->port;
    pthread_mutex_unlock(&fp->mu);
    json_object *o = items_page(&v, offset, limit);
    json_object *next = NULL;
    if (offset + limit < v.count) {
        char tok[64], url[256], link[300];
        token_encode('l', offset + limit, tok);
        snprintf(url, sizeof url, "http://127.0.0.1:%u/api/items/link?page_token=%s&limit=%lld",
                 port, tok, (long long)limit);
        snprintf(link, sizeof link, "<%s>; rel=\"next\"", url);
        jn_http_add_header(res, "Link", link);
        next = json_object_new_string(url);
    }
    json_object_object_add(o, "next_url", next);
    jn_http_respond_json(res, 200, o);
}

static void items_offset(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                         const char *kind)
{
    (void)kind;
    int64_t limit, offset;
    if (!page_size(req, res, &limit))
        return;
    if (!query_int(req, "offset", 0, INT64_C(1) << 40, &offset)) {
        respond_message(res, 400, "offset must be a non-negative integer");
        return;
    }
    items_view_t v = items_view(fp);
    if (!items_fail(&v, offset, res))
        jn_http_respond_json(res, 200, items_page(&v, offset, limit));
}

static void items_paged(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                        const char *kind)
{
    (void)kind;
    int64_t limit, page;
    if (!page_size(req, res, &limit))
        return;
    if (!query_int(req, "page", 1, INT64_C(1) << 30, &page) || page < 1) {
        respond_message(res, 400, "page must be an integer from 1");
        return;
    }
    items_view_t v = items_view(fp);
    if (!items_fail(&v, (page - 1) * limit, res))
        jn_http_respond_json(res, 200, items_page(&v, (page - 1) * limit, limit));
}

typedef struct {
    jn_fake_t *fp;
    uint64_t size;
    int64_t interval_ms; /* < 0: no pacing */
    const jn_http_request_t *req;
    int64_t next_at_ms; /* when the next drip is due */
} pattern_stream_t;

static long pattern_fill(uint64_t pos, char *buf, size_t n)
{
    unsigned v = (unsigned)(pos % 251);
    for (size_t i = 0; i < n; i++) {
        buf[i] = (char)v;
        if (++v == 251)
            v = 0;
    }
    return (long)n;
}

static long large_read(void *ud, uint64_t pos, char *buf, size_t max)
{
    const pattern_stream_t *st = ud;
    if (pos >= st->size)
        return 0;
    if (atomic_load(&st->fp->stop))
        return -1;
    uint64_t left = st->size - pos;
    size_t n = left < max ? (size_t)left : max;
    if (n > (1u << 20))
        n = 1u << 20;
    return pattern_fill(pos, buf, n);
}

/* Runs on the server's loop: a drip that is not due yet asks to be called again when it
 * is, instead of sleeping. */
static long drip_read(void *ud, uint64_t pos, char *buf, size_t max)
{
    pattern_stream_t *st = ud;
    if (pos >= st->size)
        return 0;
    if (atomic_load(&st->fp->stop))
        return -1;
    int64_t now = jn_fake_now_ms();
    if (pos > 0 && now < st->next_at_ms) {
        jn_http_wake(st->req, (uint64_t)(st->next_at_ms - now));
        return JN_HTTP_STREAM_AGAIN;
    }
    st->next_at_ms = now + st->interval_ms;
    uint64_t left = st->size - pos;
    size_t n = left < DRIP_CHUNK ? (size_t)left : DRIP_CHUNK;
    if (n > max)
        n = max;
    return pattern_fill(pos, buf, n);
}

static void respond_pattern(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                            uint64_t size, int64_t interval_ms)
{
    pattern_stream_t *st = malloc(sizeof *st);
    if (!st)
        abort();
    *st = (pattern_stream_t){fp, size, interval_ms, req, 0};
    jn_http_respond_stream(res, 200, "application/octet-stream", (int64_t)size,
                           interval_ms < 0 ? large_read : drip_read, st, free);
}

static void large(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                  const char *kind)
{
    (void)kind;
    int64_t bytes;
    if (!jn_http_query(req, "bytes") || !query_int(req, "bytes", 0, MAX_LARGE, &bytes)) {
        respond_message(res, 400, "bytes must be an integer from 0 to 2147483648");
        return;
    }
    respond_pattern(fp, req, res, (uint64_t)bytes, -1);
}

static void drip(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                 const char *kind)
{
    (void)kind;
    int64_t bytes, interval;
    if (!jn_http_query(req, "bytes") || !query_int(req, "bytes", 0, MAX_DRIP, &bytes)) {
        respond_message(res, 400, "bytes must be an integer from 0 to 1048576");
        return;
    }
    if (!query_int(req, "interval_ms", 100, 60000, &interval)) {
        respond_message(res, 400, "interval_ms must be an integer from 0 to 60000");
        return;
    }
    respond_pattern(fp, req, res, (uint64_t)bytes, interval);
}

static void garbage(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                    const char *kind)
{
    (void)fp;
    (void)req;
    (void)kind;
    jn_http_respond_text(res, 200, "application/json",
                         "{\"items\": [{\"id\": \"item-1\", <html><body>502 Bad Gateway</body>");
}

static void echo(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                 const char *kind)
{
    (void)fp;
    (void)kind;
    unsigned char digest[32];
    char hex[65];
    jn_crypto_sha256(req->body, req->body_len, digest);
    jn_hex_encode(digest, sizeof digest, hex);
    const char *content_type = jn_http_header(req, "Content-Type");
    json_object *o = json_object_new_object();
    json_object_object_add(o, "method", json_object_new_string(req->method));
    json_object_object_add(o, "content_type",
                           content_type ? json_object_new_string(content_type) : NULL);
    json_object_object_add(o, "body_length", json_object_new_int64((int64_t)req->body_len));
    json_object_object_add(o, "body_sha256", json_object_new_string(hex));
    json_object_object_add(o, "headers", jn_fake_request_headers(req));
    json_object_object_add(o, "query", jn_fake_request_query(req));
    jn_http_respond_json(res, 200, o);
}

/* ?to=URL[&status=302]: answers the redirect status (301, 302, 303, 307, 308) with
 * Location: URL. */
static void redirect(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                     const char *kind)
{
    (void)fp;
    (void)kind;
    const char *to = jn_http_query(req, "to");
    int64_t status = 302;
    if (!query_int(req, "status", 302, 399, &status) ||
        (status != 301 && status != 302 && status != 303 && status != 307 && status != 308) ||
        !to || !*to) {
        respond_message(res, 400, "give to=<url> and a redirect status");
        return;
    }
    respond_message(res, (int)status, "moved");
    jn_http_add_header(res, "Location", to);
}

static void not_found(jn_fake_t *fp, const jn_http_request_t *req, jn_http_response_t *res,
                      const char *kind)
{
    (void)fp;
    (void)kind;
    char message[512];
    snprintf(message, sizeof message, "no endpoint %s %s", req->method, req->path);
    respond_message(res, 404, message);
}

static api_route_t api_routes[] = {
    {"GET", "/api/me", me, true, NULL},
    {"GET", "/api/items", items_cursor, true, NULL},
    {"GET", "/api/items/link", items_link, true, NULL},
    {"GET", "/api/items/offset", items_offset, true, NULL},
    {"GET", "/api/items/page", items_paged, true, NULL},
    {"GET", "/api/large", large, true, NULL},
    {"GET", "/api/drip", drip, true, NULL},
    {"GET", "/api/garbage", garbage, true, NULL},
    {"GET", "/api/redirect", redirect, true, NULL},
    {"POST", "/api/echo", echo, true, NULL},
    {"PUT", "/api/echo", echo, true, NULL},
    {"PATCH", "/api/echo", echo, true, NULL},
    {"DELETE", "/api/echo", echo, true, NULL},
    {"*", "/api/*", not_found, false, NULL},
};

void jn_fake_routes_api(jn_fake_t *fp, jn_http_server_t *srv)
{
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
        api_routes[i].fp = fp;
        jn_http_route(srv, api_routes[i].method, api_routes[i].pattern, dispatch, &api_routes[i]);
    }
}
