/*
 * Unit tests for common/net/http_server.c in process, for the timeouts the gateway does
 * not let a test shorten: a body that stops arriving gets 408 after the stall timeout
 * (the body pace), and a client that stops reading its answer loses the connection after
 * the same timeout. Also a pool handler whose deferred answer is finished (by another
 * thread) before the handler itself returns: the answer goes out once, and the request
 * that follows on the connection is not answered in its stead. The server runs on its
 * own loop and pool with a 300 ms stall timeout; the client is a raw socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/metrics.h"
#include "harness.h"
#include "net/http_server.h"

#define STALL_MS 300
#define BIG_ANSWER (16 * 1024 * 1024)

static jn_http_server_t *srv;
static int port;

static void upload(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)ud;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)req->body_len));
    jn_http_respond_json(res, 200, o);
}

static void big(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    (void)ud;
    char *text = malloc(BIG_ANSWER + 1);
    memset(text, 'b', BIG_ANSWER);
    text[BIG_ANSWER] = '\0';
    jn_http_respond_text(res, 200, "text/plain", text);
    free(text);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Defers, has its answer sent at once (as a thread that finished the work would), and
 * only then returns: the connection may carry the next request by the time it does. */
static void finished_early(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)ud;
    jn_http_pending_t *p = jn_http_defer(req);
    jn_http_respond_text(res, 200, "text/plain", "early");
    jn_http_pending_finish(p);
    sleep_ms(200);
}

static void slow(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    (void)ud;
    sleep_ms(600);
    jn_http_respond_text(res, 200, "text/plain", "slow");
}

static int setup(void **state)
{
    (void)state;
    jn_http_options_t opts = {.port = 0,
                              .threads = 2,
                              .head_timeout_ms = 5000,
                              .stall_timeout_ms = STALL_MS,
                              .max_body = 1 << 20};
    srv = jn_http_server_new(&opts);
    jn_http_route(srv, "POST", "/upload", upload, NULL);
    jn_http_route(srv, "GET", "/big", big, NULL);
    jn_http_route(srv, "GET", "/early", finished_early, NULL);
    jn_http_route(srv, "GET", "/slow", slow, NULL);
    assert_int_equal(jn_http_server_start(srv), JN_OK);
    port = jn_http_server_port(srv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_http_server_free(srv);
    return 0;
}

/* Whether the server holds *(long *)ud connections. */
static bool open_connections_are(void *ud)
{
    static const char name[] = "\njn_http_open_connections ";
    char *text = jn_metrics_render();
    const char *line = strstr(text, name);
    bool same = line && strtol(line + sizeof name - 1, NULL, 10) == *(long *)ud;
    free(text);
    return same;
}

/* A body that stops arriving: 408 once it has made no progress for the stall timeout. */
static void test_a_stalled_body_gets_408(void **state)
{
    (void)state;
    static const char start[] = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
                                "only ten b";
    int fd = jn_test_connect(NULL, port);
    assert_true(fd >= 0);
    long t0 = jn_test_now_ms();
    assert_true(jn_test_send(fd, start, sizeof start - 1));
    jn_test_response_t r;
    jn_test_read_response(fd, 5000, &r);
    long took = jn_test_now_ms() - t0;
    jn_test_expect_error(&r, 408, "request_timeout", "a stalled body");
    jn_test_response_cleanup(&r);
    assert_true(jn_test_wait_closed(fd, 2000));
    close(fd);
    printf("a stalled body: 408 after %ld ms\n", took);
    assert_true(took >= STALL_MS - 50 && took < STALL_MS + 2000);
    /* A body that keeps coming is read whole. */
    fd = jn_test_connect(NULL, port);
    static const char whole[] = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n";
    assert_true(jn_test_send(fd, whole, sizeof whole - 1));
    for (int i = 0; i < 9; i++) {
        assert_true(jn_test_send(fd, "x", 1));
        /* A third of the stall timeout between bytes, and no answer meanwhile. */
        assert_int_equal(jn_test_read_response(fd, STALL_MS / 3, &r), 0);
        jn_test_response_cleanup(&r);
    }
    assert_true(jn_test_send(fd, "x", 1));
    assert_int_equal(jn_test_read_response(fd, 5000, &r), 200);
    assert_non_null(strstr(r.body, "\"bytes\":10"));
    jn_test_response_cleanup(&r);
    close(fd);
}

/* A client that asks for a large answer and never reads it: the server gives the
 * connection up once its writes have made no progress for the stall timeout. */
static void test_an_unread_answer_is_given_up(void **state)
{
    (void)state;
    long none = 0, one = 1;
    assert_true(jn_test_wait_until(open_connections_are, &none, 5000));
    int fd = jn_test_connect(NULL, port);
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    static const char request[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
    long t0 = jn_test_now_ms();
    assert_true(jn_test_send(fd, request, sizeof request - 1));
    assert_true(jn_test_wait_until(open_connections_are, &one, 5000));
    assert_true(jn_test_wait_until(open_connections_are, &none, 10000));
    long took = jn_test_now_ms() - t0;
    printf("an unread %d MiB answer: given up after %ld ms\n", BIG_ANSWER >> 20, took);
    assert_true(took >= STALL_MS);
    close(fd);
}

/* A deferred answer finished before its pool handler returned: the next request on the
 * connection gets its own answer, not a second send of the connection's state by the
 * handler that returned late; and a client that leaves at once costs nothing (under
 * ASan: no read of the freed connection). */
static void test_an_answer_finished_before_its_handler_returned(void **state)
{
    (void)state;
    static const char early[] = "GET /early HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char slow_req[] = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
    for (int round = 0; round < 3; round++) {
        int fd = jn_test_connect(NULL, port);
        assert_true(fd >= 0);
        assert_true(jn_test_send(fd, early, sizeof early - 1));
        jn_test_response_t r;
        assert_int_equal(jn_test_read_response(fd, 5000, &r), 200);
        assert_string_equal(r.body, "early");
        jn_test_response_cleanup(&r);
        /* The early handler is still running: this request must wait for its own. */
        assert_true(jn_test_send(fd, slow_req, sizeof slow_req - 1));
        assert_int_equal(jn_test_read_response(fd, 5000, &r), 200);
        assert_string_equal(r.body, "slow");
        jn_test_response_cleanup(&r);
        close(fd);
    }
    for (int round = 0; round < 3; round++) {
        int fd = jn_test_connect(NULL, port);
        assert_true(fd >= 0);
        assert_true(jn_test_send(fd, early, sizeof early - 1));
        jn_test_response_t r;
        assert_int_equal(jn_test_read_response(fd, 5000, &r), 200);
        jn_test_response_cleanup(&r);
        close(fd); /* the connection goes while its handler still runs */
    }
    sleep_ms(400); /* the handlers return to a closed connection */
    int fd = jn_test_connect(NULL, port);
    assert_true(jn_test_send(fd, slow_req, sizeof slow_req - 1));
    jn_test_response_t r;
    assert_int_equal(jn_test_read_response(fd, 5000, &r), 200);
    jn_test_response_cleanup(&r);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_stalled_body_gets_408),
        cmocka_unit_test(test_an_unread_answer_is_given_up),
        cmocka_unit_test(test_an_answer_finished_before_its_handler_returned),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
