/*
 * Unit: RFC 6455 framing of the gateway's WebSocket (api-gateway/oauth_ws.c), one
 * connection over a socketpair: the test plays the client, writing masked frames byte for
 * byte as a client would and reading what the server answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "oauth_ws.h"

typedef struct {
    int client; /* the test's end */
    int server;
    jn_ws_conn_t *ws;
} pair_t;

static int setup(void **state)
{
    pair_t *p = calloc(1, sizeof *p);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    p->client = fds[0];
    p->server = fds[1];
    p->ws = jn_ws_conn_new(p->server, NULL, 0);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    pair_t *p = *state;
    jn_ws_conn_free(p->ws);
    close(p->client);
    close(p->server);
    free(p);
    return 0;
}

/* Encodes one client frame: mask applied, the length in the form given by len_bytes
 * (0: fewest, 2 or 8: forced) — raw first byte b0 so tests can set any bit. */
static size_t client_frame(unsigned char *out, unsigned b0, bool masked, const void *payload,
                           size_t len, int len_bytes)
{
    static const unsigned char mask[4] = {0xa1, 0x5b, 0x07, 0xe2};
    size_t h = 0;
    out[h++] = (unsigned char)b0;
    unsigned char m = masked ? 0x80 : 0;
    if (len_bytes == 0 && len < 126) {
        out[h++] = (unsigned char)(m | len);
    } else if (len_bytes == 2 || (len_bytes == 0 && len <= 0xffff)) {
        out[h++] = m | 126;
        out[h++] = (unsigned char)(len >> 8);
        out[h++] = (unsigned char)len;
    } else {
        out[h++] = m | 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            out[h++] = (unsigned char)((uint64_t)len >> shift);
    }
    if (masked) {
        memcpy(out + h, mask, 4);
        h += 4;
    }
    for (size_t i = 0; i < len && payload; i++)
        out[h + i] = ((const unsigned char *)payload)[i] ^ (masked ? mask[i & 3] : 0);
    return h + (payload ? len : 0);
}

static void put(pair_t *p, const unsigned char *bytes, size_t len)
{
    assert_int_equal(send(p->client, bytes, len, 0), (ssize_t)len);
}

/* Sends one masked frame with the fewest length bytes. */
static void send_frame(pair_t *p, unsigned b0, const void *payload, size_t len)
{
    static unsigned char buf[JN_WS_MAX_MESSAGE + 16];
    put(p, buf, client_frame(buf, b0, true, payload, len, 0));
}

/* Reads one server frame; returns its first byte, the payload into out (cap bytes). */
static int read_frame(pair_t *p, unsigned char *out, size_t cap, size_t *len)
{
    struct pollfd pfd = {.fd = p->client, .events = POLLIN};
    if (poll(&pfd, 1, 2000) != 1)
        return -1;
    unsigned char h[10];
    if (recv(p->client, h, 2, MSG_WAITALL) != 2)
        return -1;
    assert_int_equal(h[1] & 0x80, 0); /* a server never masks */
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        assert_int_equal(recv(p->client, h + 2, 2, MSG_WAITALL), 2);
        n = (uint64_t)h[2] << 8 | h[3];
    } else if (n == 127) {
        assert_int_equal(recv(p->client, h + 2, 8, MSG_WAITALL), 8);
        n = 0;
        for (int i = 2; i < 10; i++)
            n = n << 8 | h[i];
    }
    assert_true(n <= cap);
    if (n && recv(p->client, out, (size_t)n, MSG_WAITALL) != (ssize_t)n)
        return -1;
    *len = (size_t)n;
    return h[0];
}

/* The server failed the connection with code: a Close frame saying so, then CLOSED. */
static void expect_failed(pair_t *p, uint16_t code)
{
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_CLOSED);
    unsigned char payload[128];
    size_t len = 0;
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x88);
    assert_int_equal(len, 2);
    assert_int_equal(payload[0] << 8 | payload[1], code);
    assert_int_equal(jn_ws_conn_close_code(p->ws), code);
}

/* Nothing was answered. */
static void expect_silence(pair_t *p)
{
    struct pollfd pfd = {.fd = p->client, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 50), 0);
}

static void test_accept_key(void **state)
{
    (void)state;
    char out[29];
    /* RFC 6455 section 1.3's example. */
    assert_true(jn_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out));
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_false(jn_ws_accept_key(NULL, out));
    assert_false(jn_ws_accept_key("", out));
    assert_false(jn_ws_accept_key("c2hvcnQ=", out));                     /* 5 bytes */
    assert_false(jn_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==AAAA", out)); /* too long */
    assert_false(jn_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ*=", out));     /* not base64 */
}

/* Reads exactly n bytes, letting the server write what it still holds in between. */
static void recv_all(pair_t *p, unsigned char *out, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = recv(p->client, out + got, n - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        assert_true(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        assert_int_not_equal(jn_ws_conn_flush(p->ws), JN_WS_CLOSED);
        struct pollfd pfd = {.fd = p->client, .events = POLLIN};
        poll(&pfd, 1, 10);
    }
}

static void test_server_frames_use_every_length_form(void **state)
{
    pair_t *p = *state;
    static unsigned char text[70000], got[70000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (unsigned char)('a' + i % 26);
    const size_t sizes[] = {0, 125, 126, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_true(jn_ws_conn_send_text(p->ws, (const char *)text, sizes[i]));
        unsigned char h[10];
        recv_all(p, h, 2);
        assert_int_equal(h[0], 0x81); /* FIN + text, unmasked */
        uint64_t n = h[1] & 0x7f;
        size_t extra = n == 126 ? 2 : n == 127 ? 8 : 0;
        /* The fewest length bytes: 7 bits, then 16, then 64. */
        assert_int_equal(extra, sizes[i] < 126 ? 0 : sizes[i] <= 0xffff ? 2 : 8);
        if (extra) {
            recv_all(p, h + 2, extra);
            n = 0;
            for (size_t b = 0; b < extra; b++)
                n = n << 8 | h[2 + b];
        }
        assert_int_equal(n, sizes[i]);
        recv_all(p, got, (size_t)n);
        assert_memory_equal(got, text, (size_t)n);
    }
}

static void test_ping_gets_its_payload_back(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x89, "hello", 5);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_OPEN);
    unsigned char payload[128];
    size_t len = 0;
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x8a);
    assert_int_equal(len, 5);
    assert_memory_equal(payload, "hello", 5);
    /* An empty ping and a 125-byte one (the largest control frame). */
    unsigned char big[125];
    memset(big, 'x', sizeof big);
    send_frame(p, 0x89, NULL, 0);
    send_frame(p, 0x89, big, sizeof big);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_OPEN);
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x8a);
    assert_int_equal(len, 0);
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x8a);
    assert_int_equal(len, 125);
    /* An unsolicited pong means nothing. */
    send_frame(p, 0x8a, "x", 1);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_OPEN);
    expect_silence(p);
}

static void test_frames_split_across_reads(void **state)
{
    pair_t *p = *state;
    unsigned char frame[64];
    size_t n = client_frame(frame, 0x89, true, "split", 5, 0);
    for (size_t i = 0; i < n; i++) {
        put(p, frame + i, 1);
        assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_OPEN);
        if (i + 1 < n)
            expect_silence(p);
    }
    unsigned char payload[16];
    size_t len = 0;
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x8a);
    assert_memory_equal(payload, "split", 5);
}

static void test_fragmented_message_with_ping_between(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x01, "Hel", 3);          /* text, not final */
    send_frame(p, 0x89, "p", 1);            /* a control frame between fragments */
    send_frame(p, 0x00, "lo ", 3);          /* continuation */
    send_frame(p, 0x80, "w\xc3\xb6rld", 6); /* final continuation, UTF-8 across frames */
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_OPEN);
    unsigned char payload[16];
    size_t len = 0;
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x8a);
    /* A 16-bit length a client chose for a 200-byte binary message is fine too. */
    unsigned char buf[300], data[200];
    memset(data, 0xff, sizeof data);
    put(p, buf, client_frame(buf, 0x82, true, data, sizeof data, 2));
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_OPEN);
    expect_silence(p);
}

static void test_unmasked_frame_fails(void **state)
{
    pair_t *p = *state;
    unsigned char buf[16];
    put(p, buf, client_frame(buf, 0x81, false, "hi", 2, 0));
    expect_failed(p, 1002);
}

static void test_reserved_bits_fail(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0xc1, "x", 1); /* RSV1 without an extension */
    expect_failed(p, 1002);
}

static void test_reserved_opcode_fails(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x83, "x", 1); /* opcode 3 is reserved */
    expect_failed(p, 1002);
}

static void test_fragmented_control_frame_fails(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x09, "x", 1); /* ping without FIN */
    expect_failed(p, 1002);
}

static void test_long_control_frame_fails(void **state)
{
    pair_t *p = *state;
    unsigned char buf[200], data[126] = {0};
    put(p, buf, client_frame(buf, 0x89, true, data, sizeof data, 0)); /* 126 > 125 */
    expect_failed(p, 1002);
}

static void test_continuation_without_start_fails(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x80, "x", 1);
    expect_failed(p, 1002);
}

static void test_new_message_inside_fragmented_one_fails(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x01, "a", 1);
    send_frame(p, 0x81, "b", 1);
    expect_failed(p, 1002);
}

static void test_non_minimal_length_fails(void **state)
{
    pair_t *p = *state;
    unsigned char buf[32];
    put(p, buf, client_frame(buf, 0x81, true, "abc", 3, 2)); /* 3 in a 16-bit length */
    expect_failed(p, 1002);
}

static void test_64bit_length_with_top_bit_fails(void **state)
{
    pair_t *p = *state;
    unsigned char head[14] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    put(p, head, sizeof head);
    expect_failed(p, 1002);
}

static void test_message_over_the_cap_fails(void **state)
{
    pair_t *p = *state;
    /* A 64-bit length announcing 1 MiB: refused from the header, before any payload. */
    unsigned char head[14];
    client_frame(head, 0x82, true, NULL, 1 << 20, 8);
    put(p, head, sizeof head);
    expect_failed(p, 1009);
}

static void test_fragments_over_the_cap_fail(void **state)
{
    pair_t *p = *state;
    static unsigned char chunk[JN_WS_MAX_MESSAGE / 2 + 1];
    memset(chunk, 'a', sizeof chunk);
    send_frame(p, 0x01, chunk, sizeof chunk);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_OPEN);
    send_frame(p, 0x00, chunk, sizeof chunk);
    expect_failed(p, 1009);
}

static void test_invalid_utf8_text_fails(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x81, "\xc3\x28", 2);
    expect_failed(p, 1007);
}

static void test_client_close_is_echoed(void **state)
{
    pair_t *p = *state;
    const unsigned char bye[] = {0x03, 0xe8, 'b', 'y', 'e'};
    send_frame(p, 0x88, bye, sizeof bye);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_CLOSED);
    unsigned char payload[16];
    size_t len = 0;
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x88);
    assert_int_equal(len, 2);
    assert_int_equal(payload[0] << 8 | payload[1], 1000);
    /* Once closed, nothing more is sent. */
    assert_false(jn_ws_conn_send_text(p->ws, "late", 4));
}

static void test_empty_close_is_answered_empty(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x88, NULL, 0);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_CLOSED);
    unsigned char payload[16];
    size_t len = 1;
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x88);
    assert_int_equal(len, 0);
}

static void test_malformed_close_fails(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x88, "\x03", 1); /* a one-byte close payload */
    expect_failed(p, 1002);
}

static void test_close_with_reserved_code_fails(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x88, "\x03\xed", 2); /* 1005 may never be sent */
    expect_failed(p, 1002);
}

static void test_close_with_bad_reason_fails(void **state)
{
    pair_t *p = *state;
    send_frame(p, 0x88, "\x03\xe8\xff", 3);
    expect_failed(p, 1007);
}

static void test_server_close_handshake(void **state)
{
    pair_t *p = *state;
    jn_ws_conn_close(p->ws, 1001);
    assert_int_equal(jn_ws_conn_state(p->ws), JN_WS_CLOSING);
    unsigned char payload[16];
    size_t len = 0;
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x88);
    assert_int_equal(payload[0] << 8 | payload[1], 1001);
    /* Pings and messages after our Close get no answer; the client's Close ends it. */
    assert_false(jn_ws_conn_send_text(p->ws, "x", 1));
    send_frame(p, 0x89, "p", 1);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_CLOSING);
    expect_silence(p);
    send_frame(p, 0x88, "\x03\xe9", 2);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_CLOSED);
    expect_silence(p);
}

static void test_peer_gone_without_close(void **state)
{
    pair_t *p = *state;
    shutdown(p->client, SHUT_WR);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_CLOSED);
}

static void test_bytes_sent_with_the_handshake(void **state)
{
    pair_t *p = *state;
    unsigned char frame[32];
    size_t n = client_frame(frame, 0x89, true, "early", 5, 0);
    jn_ws_conn_free(p->ws);
    p->ws = jn_ws_conn_new(p->server, (const char *)frame, n);
    assert_int_equal(jn_ws_conn_read(p->ws), JN_WS_OPEN);
    unsigned char payload[16];
    size_t len = 0;
    assert_int_equal(read_frame(p, payload, sizeof payload, &len), 0x8a);
    assert_memory_equal(payload, "early", 5);
}

static void test_client_that_does_not_read_is_dropped(void **state)
{
    pair_t *p = *state;
    static char text[8192];
    memset(text, 'z', sizeof text);
    bool ok = true;
    for (int i = 0; i < 1000 && ok; i++)
        ok = jn_ws_conn_send_text(p->ws, text, sizeof text);
    assert_false(ok);
    assert_int_equal(jn_ws_conn_state(p->ws), JN_WS_CLOSED);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        T(test_server_frames_use_every_length_form),
        T(test_ping_gets_its_payload_back),
        T(test_frames_split_across_reads),
        T(test_fragmented_message_with_ping_between),
        T(test_unmasked_frame_fails),
        T(test_reserved_bits_fail),
        T(test_reserved_opcode_fails),
        T(test_fragmented_control_frame_fails),
        T(test_long_control_frame_fails),
        T(test_continuation_without_start_fails),
        T(test_new_message_inside_fragmented_one_fails),
        T(test_non_minimal_length_fails),
        T(test_64bit_length_with_top_bit_fails),
        T(test_message_over_the_cap_fails),
        T(test_fragments_over_the_cap_fail),
        T(test_invalid_utf8_text_fails),
        T(test_client_close_is_echoed),
        T(test_empty_close_is_answered_empty),
        T(test_malformed_close_fails),
        T(test_close_with_reserved_code_fails),
        T(test_close_with_bad_reason_fails),
        T(test_server_close_handshake),
        T(test_peer_gone_without_close),
        T(test_bytes_sent_with_the_handshake),
        T(test_client_that_does_not_read_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
