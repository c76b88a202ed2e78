/*
 * Integration: the gateway's HTTP edge against hostile clients, over real sockets. Each
 * test is the regression test of a finding of the outside review:
 *
 *  - unauthenticated bodies: ten anonymous 70 MiB uploads get 413 at once and the
 *    gateway's memory does not move; a JSON route stops an anonymous caller at 64 KiB and
 *    an authenticated one at JUNCTION_MAX_JSON_BODY_BYTES; an authenticated proxy call may
 *    send more (finding 2);
 *  - slowloris: a thousand half-sent requests do not slow /livez or anyone's API call;
 *    the connection limits answer a JSON 503 and close; a byte a second does not outlive
 *    the head deadline; an idle kept-alive connection is closed (finding 3);
 *  - a NUL or invalid UTF-8 in a path, query or header is a 400 before any handler, so no
 *    handler acts on a cut name (finding 8), and the log stays valid JSON;
 *  - three thousand half-sent-then-closed connections leave no socket in CLOSE_WAIT and
 *    /livez answers throughout; 960 query arguments get a prompt 400 (finding 9);
 *  - the protocol's own errors (400, 413, 414, 431, 501, 505) and the request smuggling
 *    shapes are answered with the JSON envelope, and the connection is closed;
 *  - routes that hand their work to the pool for long requests and answer at once (an
 *    anonymous connect-flow call, a bad deployment) cannot crash the gateway: their
 *    deferred answer used to be sent, and the connection reused or freed, while the
 *    handler that deferred was still returning.
 *
 * One gateway with small limits set through its variables serves every test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/json_util.h"
#include "fake_oauth.h"
#include "harness.h"

#define MAX_JSON_BODY 262144
#define MAX_CONNECTIONS 1200
#define MAX_PER_ADDRESS 1100
#define HEAD_TIMEOUT_MS 3000
#define IDLE_TIMEOUT_MS 1500

static const char *const gateway_env[] = {
    "JUNCTION_MAX_JSON_BODY_BYTES=262144",
    "JUNCTION_HTTP_MAX_CONNECTIONS=1200",
    "JUNCTION_HTTP_MAX_CONNECTIONS_PER_ADDRESS=1100",
    "JUNCTION_HTTP_HEAD_TIMEOUT_MS=3000",
    "JUNCTION_HTTP_IDLE_TIMEOUT_MS=1500",
    NULL,
};

static jn_test_gateway_t gw;
static jn_test_fake_t fake;
static int api_port, admin_port;

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "edge_fake_provider");
    jn_test_gateway_start(&gw, GATEWAY_BIN, gateway_env);
    api_port = jn_test_url_port(gw.url);
    admin_port = jn_test_url_port(gw.admin_url);
    jn_test_fake_api_key_connection(&gw, gw.dev_key, &fake, "fake-keyed", "keyed", "c1",
                                    "k-edge-1");
    jn_test_fake_api_key_connection(&gw, gw.dev_key, &fake, "fake-fz", "fz-int", "fz-conn",
                                    "k-edge-2");
    jn_test_allow_loopback(&gw, gw.dev_key);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    return 0;
}

/* A request head with the dev key, for raw requests. */
static void authed_head(char *out, size_t cap, const char *method, const char *target,
                        const char *extra)
{
    snprintf(out, cap, "%s %s HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n%s\r\n", method,
             target, gw.dev_key, extra ? extra : "");
}

static void set_nonblocking(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

/* ---- finding 2: bodies ---- */

typedef struct {
    int fd;
    bool chunked;
    bool answered; /* the server spoke (or closed): stop sending */
    unsigned long long sent;
    size_t piece_pos; /* within the current framed piece */
} flood_t;

/* Ten anonymous clients each start a 70 MiB body (Content-Length or chunked) on routes
 * that take JSON, and on the proxy: every one gets 413 as soon as its head is in, having
 * sent no more than the socket buffers hold, and the gateway's memory does not grow. */
static void test_anonymous_bodies_are_capped(void **state)
{
    (void)state;
    enum { N = 10, PIECE = 65536 };
    const unsigned long long size = 70ull << 20;
    static const char *const routes[N][2] = {
        {"POST", "/integrations"},         {"POST", "/connections"},
        {"POST", "/proxy/api/echo"},       {"POST", "/connect/sessions"},
        {"PUT", "/proxy/api/echo"},        {"PUT", "/junction/providers/x"},
        {"POST", "/connections/metadata"}, {"PATCH", "/integrations/fz-int"},
        {"POST", "/proxy/api/echo"},       {"POST", "/connections"}};
    static char framed[PIECE + 16], plain[PIECE];
    memset(plain, 'a', sizeof plain);
    int framing = snprintf(framed, sizeof framed, "%x\r\n", PIECE);
    memcpy(framed + framing, plain, PIECE);
    memcpy(framed + framing + PIECE, "\r\n", 2);
    size_t framed_len = (size_t)framing + PIECE + 2;

    pid_t pid = gw.proc.pid;
    long rss_before = jn_test_status_kb(pid, "VmRSS"), hwm_before = jn_test_status_kb(pid, "VmHWM");
    assert_true(rss_before > 0 && hwm_before > 0);
    flood_t f[N];
    for (int i = 0; i < N; i++) {
        f[i] = (flood_t){.fd = jn_test_connect(NULL, api_port), .chunked = i % 2 == 1};
        assert_true(f[i].fd >= 0);
        char head[512];
        snprintf(head, sizeof head,
                 "%s %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                 "Connection-Id: c1\r\nProvider-Config-Key: keyed\r\n%s\r\n",
                 routes[i][0], routes[i][1],
                 f[i].chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: 73400320\r\n");
        assert_true(jn_test_send(f[i].fd, head, strlen(head)));
        set_nonblocking(f[i].fd, true);
    }
    long t0 = jn_test_now_ms(), rss_peak = rss_before;
    int answered = 0;
    while (answered < N && jn_test_now_ms() - t0 < 30000) {
        struct pollfd p[N];
        for (int i = 0; i < N; i++)
            p[i] = (struct pollfd){.fd = f[i].fd,
                                   .events =
                                       POLLIN | (f[i].answered || f[i].sent >= size ? 0 : POLLOUT)};
        poll(p, N, 50);
        for (int i = 0; i < N; i++) {
            if (f[i].answered)
                continue;
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                f[i].answered = true;
                answered++;
                continue;
            }
            if (!(p[i].revents & POLLOUT) || f[i].sent >= size)
                continue;
            const char *piece = f[i].chunked ? framed : plain;
            size_t len = f[i].chunked ? framed_len : PIECE;
            ssize_t n = send(f[i].fd, piece + f[i].piece_pos, len - f[i].piece_pos,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                f[i].sent += (unsigned long long)n;
                f[i].piece_pos = (f[i].piece_pos + (size_t)n) % len;
            }
        }
        long rss = jn_test_status_kb(pid, "VmRSS");
        rss_peak = rss > rss_peak ? rss : rss_peak;
    }
    long took = jn_test_now_ms() - t0;
    unsigned long long most = 0;
    for (int i = 0; i < N; i++) {
        set_nonblocking(f[i].fd, false);
        jn_test_response_t r;
        jn_test_read_response(f[i].fd, 5000, &r);
        char what[96];
        snprintf(what, sizeof what, "anonymous %s body to %s %s",
                 f[i].chunked ? "chunked" : "70 MiB", routes[i][0], routes[i][1]);
        jn_test_expect_error(&r, 413, "payload_too_large", what);
        jn_test_response_cleanup(&r);
        close(f[i].fd);
        most = f[i].sent > most ? f[i].sent : most;
    }
    long hwm_after = jn_test_status_kb(pid, "VmHWM");
    printf("anonymous 70 MiB bodies: all refused in %ld ms, at most %llu KiB sent on one; gateway "
           "RSS %ld KiB before, peak %ld KiB during, VmHWM %ld -> %ld KiB\n",
           took, most / 1024, rss_before, rss_peak, hwm_before, hwm_after);
    assert_true(took < 10000);
    /* Refused on the head: what was sent is what the socket buffers took, not the body. */
    assert_true(most < 16ull << 20);
    assert_true(rss_peak - rss_before < 8 * 1024);
    assert_true(hwm_after - hwm_before < 8 * 1024);
}

/* A JSON object of exactly size bytes that /integrations reads and refuses for an unknown
 * field (static; valid until the next call). */
static const char *json_of_size(size_t size)
{
    static char body[MAX_JSON_BODY + 4096];
    assert_true(size < sizeof body && size > 80);
    int n = snprintf(body, sizeof body,
                     "{\"provider\":\"fake-keyed\",\"unique_key\":\"pad\",\"pad\":\"");
    memset(body + n, 'p', size - (size_t)n - 2);
    memcpy(body + size - 2, "\"}", 3);
    return body;
}

/* POST /integrations with body, as the dev environment or anonymously, framed by
 * Content-Length or chunked; the answer in r. */
static void post_integration(bool authed, const char *body, size_t len, bool chunked,
                             jn_test_response_t *r)
{
    char head[512], framing[128];
    if (chunked)
        snprintf(framing, sizeof framing,
                 "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n");
    else
        snprintf(framing, sizeof framing,
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n", len);
    if (authed)
        authed_head(head, sizeof head, "POST", "/integrations", framing);
    else
        snprintf(head, sizeof head, "POST /integrations HTTP/1.1\r\nHost: gw\r\n%s\r\n", framing);
    int fd = jn_test_connect(NULL, api_port);
    assert_true(fd >= 0 && jn_test_send(fd, head, strlen(head)));
    /* Sends may fail past a cap: the answer comes first. */
    if (chunked) {
        char size[32];
        snprintf(size, sizeof size, "%zx\r\n", len);
        if (jn_test_send(fd, size, strlen(size)) && jn_test_send(fd, body, len))
            jn_test_send(fd, "\r\n0\r\n\r\n", 7);
    } else {
        jn_test_send(fd, body, len);
    }
    jn_test_read_response(fd, 5000, r);
    close(fd);
}

/* A JSON route reads up to JUNCTION_MAX_JSON_BODY_BYTES from an authenticated caller, and
 * up to 64 KiB from an anonymous one; past that, 413 before the body is read. */
static void test_json_body_caps(void **state)
{
    (void)state;
    static const struct {
        bool authed;
        size_t size;
        bool chunked;
        int status;
        const char *code;
    } cases[] = {
        {true, MAX_JSON_BODY - 16, false, 400, "invalid_body"}, /* read and judged */
        {true, MAX_JSON_BODY - 16, true, 400, "invalid_body"},
        {true, MAX_JSON_BODY + 100, false, 413, "payload_too_large"},
        {true, MAX_JSON_BODY + 100, true, 413, "payload_too_large"},
        {false, 60 * 1024, false, 401, "missing_auth_header"}, /* read, then refused */
        {false, 100 * 1024, false, 413, "payload_too_large"},
        {false, 100 * 1024, true, 413, "payload_too_large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jn_test_response_t r;
        post_integration(cases[i].authed, json_of_size(cases[i].size), cases[i].size,
                         cases[i].chunked, &r);
        char what[128];
        snprintf(what, sizeof what, "%s %s body of %zu bytes",
                 cases[i].authed ? "an authenticated" : "an anonymous",
                 cases[i].chunked ? "chunked" : "JSON", cases[i].size);
        jn_test_expect_error(&r, cases[i].status, cases[i].code, what);
        jn_test_response_cleanup(&r);
    }
}

/* An authenticated proxy call is not held to the JSON cap: its body reaches the provider
 * whole, buffered (under 1 MiB) or streamed (above). */
static void test_authenticated_proxy_body_passes(void **state)
{
    (void)state;
    static const size_t sizes[] = {512 * 1024, 4 * 1024 * 1024};
    for (size_t k = 0; k < 2; k++) {
        size_t size = sizes[k];
        char *body = malloc(size);
        memset(body, 'z', size);
        char head[512], extra[256];
        snprintf(extra, sizeof extra,
                 "Connection-Id: c1\r\nProvider-Config-Key: keyed\r\n"
                 "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n",
                 size);
        authed_head(head, sizeof head, "POST", "/proxy/api/echo", extra);
        int fd = jn_test_connect(NULL, api_port);
        assert_true(jn_test_send(fd, head, strlen(head)) && jn_test_send(fd, body, size));
        jn_test_response_t r;
        jn_test_read_response(fd, 30000, &r);
        close(fd);
        if (r.status != 200)
            fail_msg("a %zu-byte proxy body: %d %s", size, r.status, r.body ? r.body : "");
        json_object *o = json_tokener_parse(r.body);
        assert_true(strtoull(jn_test_json_str(o, "body_length"), NULL, 10) == size);
        json_object_put(o);
        jn_test_response_cleanup(&r);
        free(body);
    }
}

/* ---- the protocol's own errors and smuggling shapes ---- */

/* request is answered with the error envelope and Connection: close, then the connection
 * is closed: on a fresh connection, and on one kept alive after an answered request (where
 * a server that kept reading would take the rest as the next request). */
static void expect_refused_and_closed(const char *request, size_t len, int status, const char *code,
                                      const char *what)
{
    for (int kept_alive = 0; kept_alive < 2; kept_alive++) {
        int fd = jn_test_connect(NULL, api_port);
        assert_true(fd >= 0);
        jn_test_response_t r;
        if (kept_alive) {
            static const char first[] = "GET /no-such-route HTTP/1.1\r\nHost: gw\r\n\r\n";
            jn_test_send(fd, first, sizeof first - 1);
            assert_int_equal(jn_test_read_response(fd, 5000, &r), 404);
            jn_test_response_cleanup(&r);
        }
        jn_test_send(fd, request, len ? len : strlen(request));
        jn_test_read_response(fd, 5000, &r);
        jn_test_expect_error(&r, status, code, what);
        char conn[32];
        if (jn_test_header_value(r.head, "Connection", conn, sizeof conn) != 1 ||
            strcmp(conn, "close") != 0)
            fail_msg("%s: the answer does not say Connection: close: %s", what, r.head);
        if (!jn_test_wait_closed(fd, 3000))
            fail_msg("%s: the connection was left open", what);
        jn_test_response_cleanup(&r);
        close(fd);
    }
}

static void test_protocol_errors_are_json(void **state)
{
    (void)state;
    expect_refused_and_closed("GARBAGE\r\n\r\n", 0, 400, "invalid_request",
                              "an unparseable request line");
    expect_refused_and_closed("GET /livez HTTP/1.2\r\nHost: gw\r\n\r\n", 0, 505,
                              "http_version_not_supported", "HTTP/1.2");
    expect_refused_and_closed("POST /integrations HTTP/1.1\r\nHost: gw\r\n"
                              "Transfer-Encoding: gzip\r\n\r\n",
                              0, 501, "not_implemented", "Transfer-Encoding: gzip");
    static char big[64 * 1024];
    int n = snprintf(big, sizeof big, "GET /");
    memset(big + n, 'a', 17 * 1024);
    n += 17 * 1024;
    n += snprintf(big + n, sizeof big - (size_t)n, " HTTP/1.1\r\nHost: gw\r\n\r\n");
    expect_refused_and_closed(big, (size_t)n, 414, "uri_too_long", "a 17 KiB target");
    n = snprintf(big, sizeof big, "GET /integrations HTTP/1.1\r\nHost: gw\r\n");
    for (int i = 0; i < 200; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-H-%d: v\r\n", i);
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    expect_refused_and_closed(big, (size_t)n, 431, "headers_too_large", "200 header fields");
    n = snprintf(big, sizeof big, "GET /integrations HTTP/1.1\r\nHost: gw\r\nX-Big: ");
    memset(big + n, 'b', 40 * 1024);
    n += 40 * 1024;
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n\r\n");
    expect_refused_and_closed(big, (size_t)n, 431, "headers_too_large", "a 40 KiB header");
    char head[512];
    authed_head(head, sizeof head, "POST", "/integrations",
                "Content-Type: application/json\r\nContent-Length: 900000\r\n");
    expect_refused_and_closed(head, 0, 413, "payload_too_large", "a JSON body past the cap");

    /* Request smuggling shapes. */
    expect_refused_and_closed("POST /integrations HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                              0, 400, "invalid_headers", "Content-Length with Transfer-Encoding");
    expect_refused_and_closed("POST /integrations HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n"
                              "Content-Length: 40\r\n\r\nabcd",
                              0, 400, "invalid_headers", "two Content-Lengths");
    expect_refused_and_closed("GET /integrations HTTP/1.1\r\nHost: gw\r\nX-A: one\r\n"
                              " Transfer-Encoding: chunked\r\n\r\n",
                              0, 400, "invalid_headers", "obs-fold");
    expect_refused_and_closed("GET /integrations HTTP/1.1\r\nHost: gw\r\nX-A: a\rb\r\n\r\n", 0, 400,
                              "invalid_request", "a bare CR");
    expect_refused_and_closed("POST /integrations HTTP/1.1\r\nHost: gw\r\n"
                              "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
                              0, 400, "invalid_headers", "white space before the colon");
    expect_refused_and_closed(
        "POST /integrations HTTP/1.1\r\nHost: gw\r\nContent-Length: -1\r\n\r\n", 0, 400,
        "invalid_headers", "a negative Content-Length");
    expect_refused_and_closed("GET /integrations HTTP/1.1\r\n\r\n", 0, 400, "invalid_headers",
                              "no Host");
}

/* ---- finding 8: NUL and invalid UTF-8 ---- */

static long api(const char *method, const char *path, json_object **resp)
{
    return jn_test_api(&gw, method, path, gw.dev_key, NULL, resp);
}

static void expect_api_error(const char *method, const char *path, long status, const char *code)
{
    json_object *resp = NULL;
    long st = api(method, path, &resp);
    const char *got = jn_test_json_str(resp, "error.code");
    if (st != status || !got || strcmp(got, code) != 0)
        fail_msg("%s %s: %ld %s (wanted %ld %s)", method, path, st,
                 resp ? json_object_to_json_string(resp) : "(no JSON)", status, code);
    json_object_put(resp);
}

/* Fails unless fz-int and its connection are there, untouched. */
static void expect_fz_intact(void)
{
    json_object *resp = NULL;
    jn_test_expect_status(api("GET", "/integrations/fz-int", &resp), 200, resp, "fz-int");
    json_object_put(resp);
    jn_test_expect_status(api("GET", "/connections/fz-conn?provider_config_key=fz-int", &resp), 200,
                          resp, "fz-conn");
    json_object_put(resp);
    char *n = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections c JOIN integrations i "
                                           "ON i.id = c.integration_id WHERE i.unique_key = "
                                           "'fz-int' AND c.connection_id = 'fz-conn'");
    assert_string_equal(n, "1");
    free(n);
}

static void raw_expect(const char *request, size_t len, int status, const char *code,
                       const char *what)
{
    jn_test_response_t r;
    jn_test_raw_request(api_port, request, len ? len : strlen(request), 5000, &r);
    jn_test_expect_error(&r, status, code, what);
    jn_test_response_cleanup(&r);
}

/* A literal and its length, NULs included. */
#define TAIL(text) text, sizeof text - 1

/* start, "Authorization: Bearer <dev key>", then tail (raw bytes): a 400 invalid_headers. */
static void refused_after_key(const char *start, const char *tail, size_t tail_len,
                              const char *what)
{
    char head[1024];
    int n = snprintf(head, sizeof head, "%sAuthorization: Bearer %s", start, gw.dev_key);
    assert_true(n > 0 && (size_t)n + tail_len < sizeof head);
    memcpy(head + n, tail, tail_len);
    raw_expect(head, (size_t)n + tail_len, 400, "invalid_headers", what);
}

static void test_nul_and_invalid_utf8_never_reach_a_handler(void **state)
{
    (void)state;
    expect_fz_intact();
    /* In the path: the id would be cut to fz-int. */
    expect_api_error("DELETE", "/integrations/fz-int%00junk", 400, "invalid_uri_params");
    expect_api_error("DELETE", "/integrations/fz-int%C3%28", 400, "invalid_uri_params");
    expect_api_error("DELETE", "/integrations/fz-int%FF", 400, "invalid_uri_params");
    expect_api_error("DELETE", "/integrations/fz-int%C0%AF", 400, "invalid_uri_params");
    expect_api_error("DELETE", "/connections/fz-conn%00x?provider_config_key=fz-int", 400,
                     "invalid_uri_params");
    /* In the query: provider_config_key would be cut to fz-int. */
    expect_api_error("DELETE", "/connections/fz-conn?provider_config_key=fz-int%00junk", 400,
                     "invalid_query_params");
    expect_api_error("DELETE", "/connections/fz-conn?provider_config_key=fz-int%ED%A0%80", 400,
                     "invalid_query_params");
    expect_api_error("GET", "/connections?connection_id=%00", 400, "invalid_query_params");
    expect_api_error("GET", "/connections?search=%FE%FF", 400, "invalid_query_params");
    expect_api_error("GET", "/connections?sea%00rch=x", 400, "invalid_query_params");
    /* Raw bytes in the target (curl would encode them). */
    static const char raw_nul[] = "DELETE /integrations/fz-int\0junk HTTP/1.1\r\nHost: gw\r\n\r\n";
    raw_expect(raw_nul, sizeof raw_nul - 1, 400, "invalid_uri_params", "a raw NUL in the path");
    raw_expect("DELETE /integrations/fz-int\xff HTTP/1.1\r\nHost: gw\r\n\r\n", 0, 400,
               "invalid_uri_params", "a raw 0xFF in the path");
    /* In headers, over a raw socket: the dev key, then raw bytes. */
    static const char delete_conn[] =
        "DELETE /connections/fz-conn?provider_config_key=fz-int HTTP/1.1\r\nHost: gw\r\n";
    static const char proxy_me[] = "GET /proxy/api/me HTTP/1.1\r\nHost: gw\r\n";
    refused_after_key(delete_conn, TAIL("\0junk\r\n\r\n"), "a NUL in Authorization");
    refused_after_key(delete_conn, TAIL("\xff\r\n\r\n"), "invalid UTF-8 in Authorization");
    refused_after_key(proxy_me,
                      TAIL("\r\nProvider-Config-Key: fz-int\r\nConnection-Id: fz-conn\0x\r\n\r\n"),
                      "a NUL in Connection-Id");
    refused_after_key(
        proxy_me, TAIL("\r\nProvider-Config-Key: fz-int\xc3\x28\r\nConnection-Id: fz-conn\r\n\r\n"),
        "invalid UTF-8 in Provider-Config-Key");
    expect_fz_intact();

    /* The log stays one valid JSON object per line, in valid UTF-8. */
    char *log = jn_test_read_log(&gw.proc);
    int lines = 0;
    for (char *line = log, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (!jn_utf8_valid(line, strlen(line)))
            fail_msg("a log line is not valid UTF-8: %s", line);
        json_object *o = json_tokener_parse(line);
        if (!o || !json_object_is_type(o, json_type_object))
            fail_msg("a log line is not a JSON object: %s", line);
        json_object_put(o);
        lines++;
    }
    assert_true(lines > 0);
    free(log);
}

/* ---- finding 9: query floods and half-open connections ---- */

static void test_a_flood_of_query_arguments_gets_a_prompt_400(void **state)
{
    (void)state;
    static char path[8192];
    int n = snprintf(path, sizeof path, "/connections?");
    for (int i = 0; i < 960; i++)
        n += snprintf(path + n, sizeof path - (size_t)n, "%sa=1", i ? "&" : "");
    assert_true(n > 3800);
    char url[sizeof path + 64], auth[256];
    snprintf(url, sizeof url, "%s%s", gw.url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
    for (int authed = 0; authed < 2; authed++) {
        const char *headers[] = {authed ? auth : NULL, NULL};
        long t0 = jn_test_now_ms();
        char *text = NULL;
        long st = jn_test_http("GET", url, headers, NULL, 0, &text);
        long took = jn_test_now_ms() - t0;
        json_object *resp = json_tokener_parse(text ? text : "");
        free(text);
        const char *code = jn_test_json_str(resp, "error.code");
        if (st != 400 || !code || strcmp(code, "invalid_query_params") != 0)
            fail_msg("960 query arguments: %ld %s", st,
                     resp ? json_object_to_json_string(resp) : "");
        json_object_put(resp);
        printf("960 query arguments (%s): 400 in %ld ms\n", authed ? "authenticated" : "anonymous",
               took);
        assert_true(took < 2000);
    }
}

typedef struct {
    atomic_bool stop;
    int probes, failures;
    long worst_ms;
} livez_probe_t;

static void *probe_livez(void *arg)
{
    livez_probe_t *p = arg;
    char url[96];
    snprintf(url, sizeof url, "%s/livez", gw.admin_url);
    while (!atomic_load(&p->stop)) {
        long t0 = jn_test_now_ms();
        long st = jn_test_http("GET", url, NULL, NULL, 0, NULL);
        long took = jn_test_now_ms() - t0;
        p->probes++;
        p->failures += st != 200;
        p->worst_ms = took > p->worst_ms ? took : p->worst_ms;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL); /* pacing the probes, not waiting for anything */
    }
    return NULL;
}

typedef struct {
    int port;
    int count;
} close_wait_t;

static bool no_close_wait(void *ud)
{
    close_wait_t *c = ud;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ss -Htan state close-wait '( sport = :%d )' | wc -l", c->port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[32] = "";
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    pclose(p);
    c->count = (int)strtol(line, NULL, 10);
    return c->count == 0;
}

/* 3,000 connections send half a head and close: the gateway closes every one of them
 * (no socket stays in CLOSE_WAIT) and /livez answers all along. */
static void test_half_sent_then_closed_connections_leave_no_close_wait(void **state)
{
    (void)state;
    enum { TOTAL = 3000, BATCH = 500 };
    livez_probe_t probe = {.worst_ms = 0};
    atomic_init(&probe.stop, false);
    pthread_t thread;
    pthread_create(&thread, NULL, probe_livez, &probe);
    static const char half[] = "GET /integrations HTTP/1.1\r\nHost: gw\r\nAuthoriz";
    int fds[BATCH];
    int made = 0;
    long t0 = jn_test_now_ms();
    for (int round = 0; round < TOTAL / BATCH; round++) {
        for (int i = 0; i < BATCH; i++) {
            fds[i] = jn_test_connect(NULL, api_port);
            assert_true(fds[i] >= 0);
            jn_test_send(fds[i], half, sizeof half - 1);
            made++;
        }
        for (int i = 0; i < BATCH; i++)
            close(fds[i]);
    }
    /* Well before the head deadline, which would close them anyway: the gateway must see
     * each client leave. */
    close_wait_t cw = {api_port, -1};
    bool clean = jn_test_wait_until(no_close_wait, &cw, HEAD_TIMEOUT_MS / 2);
    long took = jn_test_now_ms() - t0;
    atomic_store(&probe.stop, true);
    pthread_join(thread, NULL);
    printf("%d half-sent connections closed: CLOSE_WAIT %d after %ld ms; /livez %d probes, %d "
           "failed, worst %ld ms\n",
           made, cw.count, took, probe.probes, probe.failures, probe.worst_ms);
    if (!clean)
        fail_msg("%d sockets of the gateway are still in CLOSE_WAIT", cw.count);
    assert_true(probe.probes > 0);
    assert_int_equal(probe.failures, 0);
    assert_true(probe.worst_ms < 2000);
}

/* ---- finding 3: slowloris ---- */

typedef struct {
    long want;
    long seen;
} open_wait_t;

/* Whether the gateway holds want connections, counting the one that asks (its open
 * connections gauge covers both listeners). */
static bool open_connections_are(void *ud)
{
    open_wait_t *w = ud;
    static const char name[] = "\njn_http_open_connections ";
    char url[96], *text = NULL;
    snprintf(url, sizeof url, "%s/metrics", gw.admin_url);
    long st = jn_test_http("GET", url, NULL, NULL, 0, &text);
    const char *line = st == 200 ? strstr(text, name) : NULL;
    w->seen = line ? strtol(line + sizeof name - 1, NULL, 10) : -1;
    if (!line)
        printf("/metrics: %ld %.200s\n", st, text);
    free(text);
    return w->seen == w->want;
}

static void wait_open_connections(long want, const char *when)
{
    open_wait_t w = {want + 1, -1};
    if (!jn_test_wait_until(open_connections_are, &w, 10000))
        fail_msg("%s: the gateway holds %ld connections, not %ld", when, w.seen - 1, want);
}

/* One request on a new connection from address from; its status, and how long it took. */
static int timed_request(const char *from, int port, const char *request, long *took_ms)
{
    long t0 = jn_test_now_ms();
    int fd = jn_test_connect(from, port);
    if (fd < 0)
        return -1;
    jn_test_send(fd, request, strlen(request));
    jn_test_response_t r;
    int status = jn_test_read_response(fd, 10000, &r);
    *took_ms = jn_test_now_ms() - t0;
    jn_test_response_cleanup(&r);
    close(fd);
    return status;
}

/* A connection that is not answered now (it holds a slot and waits). */
static bool silent(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

/* The next connection from address from is refused with a JSON 503 and closed. */
static void expect_limit(const char *from, const char *what)
{
    int fd = jn_test_connect(from, api_port);
    assert_true(fd >= 0);
    jn_test_response_t r;
    jn_test_read_response(fd, 5000, &r);
    jn_test_expect_error(&r, 503, "service_unavailable", what);
    if (!jn_test_wait_closed(fd, 3000))
        fail_msg("%s: the refused connection was left open", what);
    printf("%s: %s\n", what, r.body);
    jn_test_response_cleanup(&r);
    close(fd);
}

/* A thousand half-sent requests from one address hold their connections, yet /livez and
 * an authenticated API call answer at once. Past the per-address limit a connection gets
 * a JSON 503 and is closed, as past the total limit; every half-sent request gets a 408
 * at the head deadline. */
static void test_slowloris(void **state)
{
    (void)state;
    enum { HALF = 1000 };
    static const char half[] = "GET /integrations HTTP/1.1\r\nHost: gw\r\nX-Slow: ";
    static int slow[HALF], filler[MAX_CONNECTIONS];
    wait_open_connections(0, "before");
    long t0 = jn_test_now_ms();
    for (int i = 0; i < HALF; i++) {
        slow[i] = jn_test_connect(NULL, api_port);
        assert_true(slow[i] >= 0);
        assert_true(jn_test_send(slow[i], half, sizeof half - 1));
    }
    long sent_at = jn_test_now_ms();
    printf("slowloris: %d half-sent requests in %ld ms\n", HALF, sent_at - t0);

    long livez_ms, api_ms;
    char request[512];
    assert_int_equal(
        timed_request(NULL, admin_port, "GET /livez HTTP/1.1\r\nHost: gw\r\n\r\n", &livez_ms), 200);
    authed_head(request, sizeof request, "GET", "/integrations", NULL);
    assert_int_equal(timed_request(NULL, api_port, request, &api_ms), 200);
    long other_ms;
    assert_int_equal(timed_request("127.0.0.2", api_port, request, &other_ms), 200);
    printf("slowloris: /livez %ld ms, an API call %ld ms, from another address %ld ms\n", livez_ms,
           api_ms, other_ms);
    assert_true(livez_ms < 1000 && api_ms < 1000 && other_ms < 1000);
    for (int i = 0; i < HALF; i++)
        assert_true(silent(slow[i]));
    /* The calls above have closed their connections: the gateway holds the thousand. */
    wait_open_connections(HALF, "with the half-sent requests");

    /* Fill this address up to its limit: those wait; the next one is refused. */
    int fillers = 0;
    for (int i = HALF; i < MAX_PER_ADDRESS; i++) {
        filler[fillers] = jn_test_connect(NULL, api_port);
        assert_true(filler[fillers] >= 0);
        fillers++;
    }
    expect_limit(NULL, "past the per-address limit");
    /* Another address may still connect, up to the total limit. */
    for (int i = MAX_PER_ADDRESS; i < MAX_CONNECTIONS; i++) {
        filler[fillers] = jn_test_connect("127.0.0.2", api_port);
        assert_true(filler[fillers] >= 0);
        fillers++;
    }
    expect_limit("127.0.0.2", "past the total limit");
    for (int i = 0; i < fillers; i++)
        assert_true(silent(filler[i]));
    /* /livez lives on its own listener: still answered. */
    assert_int_equal(
        timed_request(NULL, admin_port, "GET /livez HTTP/1.1\r\nHost: gw\r\n\r\n", &livez_ms), 200);
    long filled_at = jn_test_now_ms();
    assert_true(filled_at - sent_at < HEAD_TIMEOUT_MS - 500); /* or the deadline interfered */

    /* The head deadline: each half-sent request is answered 408 and closed. */
    int timed_out = 0;
    for (int i = 0; i < HALF; i++) {
        jn_test_response_t r;
        jn_test_read_response(slow[i], HEAD_TIMEOUT_MS + 5000, &r);
        if (i == 0)
            jn_test_expect_error(&r, 408, "request_timeout", "a half-sent head at the deadline");
        timed_out += r.status == 408 && jn_test_wait_closed(slow[i], 3000);
        jn_test_response_cleanup(&r);
        close(slow[i]);
    }
    long closed_at = jn_test_now_ms();
    /* Connections that never sent a byte are closed at the deadline, without a word. */
    for (int i = 0; i < fillers; i++) {
        assert_true(jn_test_wait_closed(filler[i], HEAD_TIMEOUT_MS + 5000));
        close(filler[i]);
    }
    printf("slowloris: %d of %d half-sent requests got 408 and were closed %ld ms after the "
           "first byte\n",
           timed_out, HALF, closed_at - t0);
    assert_int_equal(timed_out, HALF);
    assert_true(closed_at - sent_at < HEAD_TIMEOUT_MS + 4000);
}

/* A byte a second is progress, but not a way past the head deadline. */
static void test_a_byte_a_second_does_not_outlive_the_head_deadline(void **state)
{
    (void)state;
    static const char request[] = "GET /integrations HTTP/1.1\r\nHost: gw\r\nX-Trickle: abcdef\r\n";
    int fd = jn_test_connect(NULL, api_port);
    assert_true(fd >= 0);
    long t0 = jn_test_now_ms();
    size_t sent = 0;
    jn_test_response_t r = {0};
    while (sent < sizeof request - 1) {
        if (!jn_test_send(fd, request + sent, 1))
            break;
        sent++;
        /* A second between bytes, or until the server answers. */
        if (jn_test_read_response(fd, 1000, &r) != 0)
            break;
        jn_test_response_cleanup(&r);
    }
    long took = jn_test_now_ms() - t0;
    printf("a byte a second: answered %d after %zu bytes and %ld ms\n", r.status, sent, took);
    jn_test_expect_error(&r, 408, "request_timeout", "a head sent a byte a second");
    jn_test_response_cleanup(&r);
    assert_true(jn_test_wait_closed(fd, 3000));
    close(fd);
    assert_true(took >= HEAD_TIMEOUT_MS - 200);
    assert_true(took < HEAD_TIMEOUT_MS + 1500);
    assert_true(sent < sizeof request - 1);
}

/* A kept-alive connection that sends nothing more is closed after the idle timeout. */
static void test_idle_connection_is_closed(void **state)
{
    (void)state;
    int fd = jn_test_connect(NULL, api_port);
    assert_true(fd >= 0);
    char request[512];
    authed_head(request, sizeof request, "GET", "/integrations", NULL);
    assert_true(jn_test_send(fd, request, strlen(request)));
    jn_test_response_t r;
    assert_int_equal(jn_test_read_response(fd, 5000, &r), 200);
    jn_test_response_cleanup(&r);
    long t0 = jn_test_now_ms();
    assert_true(jn_test_wait_closed(fd, IDLE_TIMEOUT_MS + 3000));
    long took = jn_test_now_ms() - t0;
    close(fd);
    printf("an idle kept-alive connection was closed after %ld ms\n", took);
    assert_true(took >= IDLE_TIMEOUT_MS - 200);
}

typedef struct {
    const char *request;
    int sent, answered;
} hammer_t;

/* Sends h->request again and again on one kept-alive connection while it is answered. */
static void *hammer(void *ud)
{
    hammer_t *h = ud;
    int fd = jn_test_connect(NULL, api_port);
    for (int i = 0; fd >= 0 && i < 6000; i++) {
        h->sent++;
        jn_test_response_t r;
        if (!jn_test_send(fd, h->request, strlen(h->request)) ||
            jn_test_read_response(fd, 5000, &r) != 401) {
            if (fd >= 0)
                jn_test_response_cleanup(&r);
            break;
        }
        jn_test_response_cleanup(&r);
        h->answered++;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* An anonymous connect-flow call is answered at once by the pool for long requests; two
 * clients sending them back to back on kept-alive connections used to crash the gateway
 * within a few thousand calls (a use after free of the connection). */
static void test_quick_answers_of_offloaded_routes(void **state)
{
    (void)state;
    static const char request[] = "POST /api-auth/api-key/x HTTP/1.1\r\nHost: t\r\n"
                                  "Content-Length: 0\r\n\r\n";
    hammer_t h[2] = {{request, 0, 0}, {request, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hammer, &h[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("offloaded quick answers: %d and %d of %d and %d\n", h[0].answered, h[1].answered,
           h[0].sent, h[1].sent);
    for (int i = 0; i < 2; i++)
        assert_int_equal(h[i].answered, 6000);
    char url[128];
    snprintf(url, sizeof url, "%s/livez", gw.admin_url);
    assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, NULL), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, on a fresh gateway: it measures the gateway's memory. */
        cmocka_unit_test(test_anonymous_bodies_are_capped),
        cmocka_unit_test(test_json_body_caps),
        cmocka_unit_test(test_authenticated_proxy_body_passes),
        cmocka_unit_test(test_protocol_errors_are_json),
        cmocka_unit_test(test_nul_and_invalid_utf8_never_reach_a_handler),
        cmocka_unit_test(test_a_flood_of_query_arguments_gets_a_prompt_400),
        cmocka_unit_test(test_half_sent_then_closed_connections_leave_no_close_wait),
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_a_byte_a_second_does_not_outlive_the_head_deadline),
        cmocka_unit_test(test_idle_connection_is_closed),
        cmocka_unit_test(test_quick_answers_of_offloaded_routes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
