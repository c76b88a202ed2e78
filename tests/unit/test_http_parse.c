/*
 * Unit tests for common/net/http_parse.c: every acceptance and refusal rule its header
 * lists (each refusal with the status and code the server answers with), chunked decoding
 * fed whole, split at every byte and malformed, percent-decoding, and a seeded
 * random-mutation fuzz of valid requests through the head parser and the chunked decoder:
 * a few hundred thousand inputs, each in a buffer of exactly its size (so a sanitizer build
 * sees any read past it), every outcome DONE, MORE or a well-formed ERROR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_parse.h"

#define MAX_FIELDS 16

static const jn_http_parse_limits_t limits = {
    .max_target = 256, .max_head = 1024, .max_fields = MAX_FIELDS};

/* One parse of text (len bytes, or strlen when len is 0) in a buffer of exactly its size;
 * the buffer stays alive (the head points into it) until the next parse. */
typedef struct {
    char *buf;
    jn_http_field_t fields[MAX_FIELDS];
    jn_http_head_t head;
    jn_http_parse_error_t err;
    size_t consumed;
    jn_http_parse_result_t r;
} parsed_t;

static parsed_t P;

static jn_http_parse_result_t parse_n(const char *text, size_t len)
{
    free(P.buf);
    P.buf = malloc(len ? len : 1);
    assert_non_null(P.buf);
    memcpy(P.buf, text, len);
    memset(&P.err, 0, sizeof P.err);
    P.head.fields = P.fields;
    P.consumed = 0;
    P.r = jn_http_parse_head(P.buf, len, &limits, &P.head, &P.consumed, &P.err);
    return P.r;
}

static jn_http_parse_result_t parse(const char *text)
{
    return parse_n(text, strlen(text));
}

/* Fails unless text is refused with status and code. */
static void refused(const char *text, size_t len, int status, const char *code)
{
    jn_http_parse_result_t r = parse_n(text, len ? len : strlen(text));
    if (r != JN_HTTP_PARSE_ERROR)
        fail_msg("accepted (%d) what must be refused with %d: %.*s", (int)r, status,
                 (int)(len ? len : strlen(text)), text);
    if (P.err.status != status || strcmp(P.err.code, code) != 0)
        fail_msg("refused with %d %s (wanted %d %s): %s", P.err.status, P.err.code, status, code,
                 P.err.message);
    assert_true(P.err.message[0] != '\0');
}

static int teardown(void **state)
{
    (void)state;
    free(P.buf);
    P.buf = NULL;
    return 0;
}

/* ---- acceptance ---- */

static void test_accepts_a_simple_request(void **state)
{
    (void)state;
    const char *text = "GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-Thing:   spaced value \t\r\n\r\n";
    assert_int_equal(parse(text), JN_HTTP_PARSE_DONE);
    assert_int_equal(P.consumed, strlen(text));
    assert_string_equal(P.head.method, "GET");
    assert_string_equal(P.head.target, "/a%20b?x=1");
    assert_int_equal(P.head.minor_version, 1);
    assert_int_equal(P.head.field_count, 2);
    assert_string_equal(P.head.fields[1].name, "X-Thing");
    assert_string_equal(P.head.fields[1].value, "spaced value"); /* trimmed both sides */
    assert_string_equal(jn_http_head_field(&P.head, "x-thing"), "spaced value");
    assert_string_equal(jn_http_head_field(&P.head, "HOST"), "h");
    assert_null(jn_http_head_field(&P.head, "absent"));
    assert_int_equal(P.head.content_length, -1);
    assert_false(P.head.chunked);
    assert_true(P.head.keep_alive);
    assert_false(P.head.expect_continue);
    assert_false(P.head.upgrade);
}

static void test_accepts_bare_lf_and_leading_empty_lines(void **state)
{
    (void)state;
    assert_int_equal(parse("\r\n\nPOST /p HTTP/1.1\nHost: h\nContent-Length: 0\n\n"),
                     JN_HTTP_PARSE_DONE);
    assert_string_equal(P.head.method, "POST");
    assert_int_equal(P.head.content_length, 0);
    /* An empty field value is a value. */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n"), JN_HTTP_PARSE_DONE);
    assert_string_equal(jn_http_head_field(&P.head, "X-Empty"), "");
}

static void test_consumed_leaves_pipelined_bytes(void **state)
{
    (void)state;
    const char *first = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
    char two[128];
    snprintf(two, sizeof two, "%sGET /2 HTTP/1.1\r\nHost: h\r\n\r\n", first);
    assert_int_equal(parse(two), JN_HTTP_PARSE_DONE);
    assert_int_equal(P.consumed, strlen(first));
    assert_string_equal(P.head.target, "/1");
}

static void test_more_until_the_head_ends(void **state)
{
    (void)state;
    const char *text = "GET /x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n";
    size_t n = strlen(text);
    for (size_t cut = 0; cut < n; cut++) {
        jn_http_parse_result_t r = parse_n(text, cut);
        if (r != JN_HTTP_PARSE_MORE)
            fail_msg("a head cut at %zu of %zu gave %d, not MORE", cut, n, (int)r);
    }
    assert_int_equal(parse_n(text, n), JN_HTTP_PARSE_DONE);
}

static void test_versions_and_keep_alive(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n"), JN_HTTP_PARSE_DONE); /* no Host needed */
    assert_int_equal(P.head.minor_version, 0);
    assert_false(P.head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), JN_HTTP_PARSE_DONE);
    assert_true(P.head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n"),
                     JN_HTTP_PARSE_DONE);
    assert_false(P.head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"),
                     JN_HTTP_PARSE_DONE);
    assert_true(P.head.keep_alive); /* a token, not a prefix */
}

static void test_body_framing_fields(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 000123\r\n\r\n"),
                     JN_HTTP_PARSE_DONE);
    assert_int_equal(P.head.content_length, 123);
    assert_int_equal(
        parse("POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 999999999999999999\r\n\r\n"),
        JN_HTTP_PARSE_DONE);
    assert_true(P.head.content_length == 999999999999999999LL);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"),
                     JN_HTTP_PARSE_DONE);
    assert_true(P.head.chunked);
    assert_int_equal(P.head.content_length, -1);
    assert_int_equal(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n"
                           "Content-Length: 5\r\n\r\n"),
                     JN_HTTP_PARSE_DONE);
    assert_true(P.head.expect_continue);
}

static void test_upgrade_needs_both_fields(void **state)
{
    (void)state;
    assert_int_equal(parse("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                           "Upgrade: websocket\r\n\r\n"),
                     JN_HTTP_PARSE_DONE);
    assert_true(P.head.upgrade);
    assert_int_equal(parse("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"),
                     JN_HTTP_PARSE_DONE);
    assert_false(P.head.upgrade);
    assert_int_equal(parse("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n"),
                     JN_HTTP_PARSE_DONE);
    assert_false(P.head.upgrade);
}

static void test_targets(void **state)
{
    (void)state;
    assert_int_equal(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), JN_HTTP_PARSE_DONE);
    assert_string_equal(P.head.target, "*");
    /* Clients send brackets and pipes raw; they are visible ASCII and accepted. */
    assert_int_equal(parse("GET /r?tags[team]=a|b HTTP/1.1\r\nHost: h\r\n\r\n"),
                     JN_HTTP_PARSE_DONE);
    refused("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    refused("GET http://evil.example/ HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    refused("GET relative HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    refused("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_uri_params");
    refused("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_uri_params");
    refused("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_uri_params");
    refused("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_uri_params");
    refused("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_uri_params");
    static const char nul[] = "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n";
    refused(nul, sizeof nul - 1, 400, "invalid_uri_params");
}

/* ---- refusals ---- */

static void test_request_line_refusals(void **state)
{
    (void)state;
    refused("GARBAGE\r\n\r\n", 0, 400, "invalid_request");
    refused("GET\r\n\r\n", 0, 400, "invalid_request");
    refused("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_request"); /* empty target */
    refused("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    refused("GET / http/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    refused("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    refused("GET / HTTP/1.10\r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    refused("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 0, 505, "http_version_not_supported");
    refused("GET / HTTP/1.9\r\nHost: h\r\n\r\n", 0, 505, "http_version_not_supported");
    refused("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    refused(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    char method[64];
    memset(method, 'M', 33);
    snprintf(method + 33, sizeof method - 33, " / HTTP/1.1\r\n\r\n");
    refused(method, 0, 400, "invalid_request");
}

static void test_smuggling_shapes_are_refused(void **state)
{
    (void)state;
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            0, 400, "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            0, 400, "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, 400,
            "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, 400,
            "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 0, 400,
            "invalid_headers");
    /* obs-fold */
    refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n", 0, 400, "invalid_headers");
    /* a bare CR, in a value, in the request line, as a line ending */
    refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", 0, 400, "invalid_request");
    refused("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, "invalid_request");
    refused("GET / HTTP/1.1\rHost: h\r\n\r\n", 0, 400, "invalid_request");
    /* white space between the name and the colon */
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n", 0, 400, "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n", 0, 400,
            "invalid_headers");
    /* Transfer-Encoding other than chunked, or stacked */
    refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 501,
            "not_implemented");
    refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, 501,
            "not_implemented");
    refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            0, 501, "not_implemented");
    refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400, "invalid_headers");
}

static void test_field_refusals(void **state)
{
    (void)state;
    refused("GET / HTTP/1.1\r\n\r\n", 0, 400, "invalid_headers"); /* no Host in 1.1 */
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\n: no name\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\nBad@Name: x\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\nN\xc3\xa4me: x\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01z\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fz\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: \xff\xfe\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: \xc3\x28\r\n\r\n", 0, 400, "invalid_headers");
    refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: \xed\xa0\x80\r\n\r\n", 0, 400, "invalid_headers");
    static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
    refused(nul, sizeof nul - 1, 400, "invalid_headers");
    static const char nul_name[] = "GET / HTTP/1.1\r\nHost: h\r\nX\0A: b\r\n\r\n";
    refused(nul_name, sizeof nul_name - 1, 400, "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12a\r\n\r\n", 0, 400, "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 0, 400, "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", 0, 400, "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 0, 400, "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 0, 400,
            "invalid_headers");
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1234567890123456789\r\n\r\n", 0, 400,
            "invalid_headers"); /* 19 digits could overflow */
    refused("POST / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n\r\n", 0, 417,
            "expectation_failed");
}

static void test_size_limits(void **state)
{
    (void)state;
    char text[4096];
    /* A target past max_target: 414, whole or still arriving. */
    int n = snprintf(text, sizeof text, "GET /");
    memset(text + n, 'a', 400);
    n += 400;
    int cut = n;
    n += snprintf(text + n, sizeof text - (size_t)n, " HTTP/1.1\r\nHost: h\r\n\r\n");
    refused(text, (size_t)n, 414, "uri_too_long");
    refused(text, (size_t)cut, 414, "uri_too_long");
    /* A target of exactly max_target bytes is fine. */
    n = snprintf(text, sizeof text, "GET /");
    memset(text + n, 'a', 255);
    n += 255;
    n += snprintf(text + n, sizeof text - (size_t)n, " HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(parse_n(text, (size_t)n), JN_HTTP_PARSE_DONE);
    /* A head past max_head: 431, whole or still arriving. */
    n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    memset(text + n, 'b', 1100);
    n += 1100;
    cut = n;
    n += snprintf(text + n, sizeof text - (size_t)n, "\r\n\r\n");
    refused(text, (size_t)n, 431, "headers_too_large");
    refused(text, (size_t)cut, 431, "headers_too_large");
    /* More fields than max_fields: 431; exactly max_fields: fine. */
    n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < MAX_FIELDS; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "X-%d: v\r\n", i);
    cut = n;
    n += snprintf(text + n, sizeof text - (size_t)n, "\r\n");
    assert_int_equal(parse_n(text, (size_t)n), JN_HTTP_PARSE_DONE);
    assert_int_equal(P.head.field_count, MAX_FIELDS);
    n = cut + snprintf(text + cut, sizeof text - (size_t)cut, "X-Last: v\r\n\r\n");
    refused(text, (size_t)n, 431, "headers_too_large");
}

/* ---- chunked bodies ---- */

/* Decodes in (len bytes) in pieces of at most step bytes, as a server reading a socket
 * would: undecoded bytes stay ahead of the next read. Returns the body (static) or NULL
 * on a refusal; *rest is what followed the body. */
static const char *dechunk(const char *in, size_t len, size_t step, size_t *body_len, size_t *rest)
{
    static char out[4096];
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    jn_http_chunked_t d;
    jn_http_chunked_init(&d);
    size_t have = 0, fed = 0, out_len = 0;
    const char *result = out;
    while (!d.done) {
        size_t more = len - fed < step ? len - fed : step;
        memcpy(buf + have, in + fed, more);
        have += more;
        fed += more;
        size_t used = 0;
        long n = jn_http_chunked_decode(&d, buf, have, &used);
        if (n < 0) {
            result = NULL;
            break;
        }
        assert_true(used <= have);
        assert_true((size_t)n <= used);
        memcpy(out + out_len, buf, (size_t)n);
        out_len += (size_t)n;
        memmove(buf, buf + used, have - used);
        have -= used;
        if (fed == len && !d.done && used == 0)
            break; /* needs more than there is */
    }
    free(buf);
    if (result && !d.done)
        result = "(incomplete)";
    *body_len = out_len;
    *rest = have + (len - fed);
    return result;
}

static void test_chunked_whole_and_split(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *body;
        size_t rest;
    } cases[] = {
        {"5\r\nhello\r\n0\r\n\r\n", "hello", 0},
        {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0},
        {"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", 0},
        {"5;name=value;x\r\nhello\r\n0;last\r\n\r\n", "hello", 0},
        {"5\nhello\n0\n\n", "hello", 0},
        {"5\r\nhello\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n", "hello", 0},
        {"0\r\n\r\n", "", 0},
        {"000\r\n\r\n", "", 0},
        {"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "abc", 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        for (size_t step = 1; step <= len; step++) {
            size_t body_len, rest;
            const char *body = dechunk(cases[i].in, len, step, &body_len, &rest);
            if (!body || body_len != strlen(cases[i].body) ||
                memcmp(body, cases[i].body, body_len) != 0 || rest != cases[i].rest)
                fail_msg("case %zu in pieces of %zu: got %s (%zu bytes, %zu left)", i, step,
                         body ? body : "a refusal", body_len, rest);
        }
    }
}

static void test_chunked_refusals(void **state)
{
    (void)state;
    static char long_ext[5000], long_trailer[17000], many_trailers[32000];
    int n = snprintf(long_ext, sizeof long_ext, "5;");
    memset(long_ext + n, 'e', 4200);
    snprintf(long_ext + n + 4200, sizeof long_ext - (size_t)n - 4200, "\r\nhello\r\n0\r\n\r\n");
    n = snprintf(long_trailer, sizeof long_trailer, "0\r\nX-T: ");
    memset(long_trailer + n, 't', 16500);
    snprintf(long_trailer + n + 16500, sizeof long_trailer - (size_t)n - 16500, "\r\n\r\n");
    /* Short trailer lines, many of them: the bound is on the whole trailer section. */
    n = snprintf(many_trailers, sizeof many_trailers, "0\r\n");
    while ((size_t)n + 16 < sizeof many_trailers)
        n += snprintf(many_trailers + n, sizeof many_trailers - (size_t)n, "T: v\r\n");
    snprintf(many_trailers + n, sizeof many_trailers - (size_t)n, "\r\n");
    const char *bad[] = {
        "x\r\nhello\r\n0\r\n\r\n",                       /* not hex */
        "\r\nhello\r\n0\r\n\r\n",                        /* no digits */
        ";ext\r\n\r\n",                                  /* no digits before the extension */
        "-5\r\nhello\r\n0\r\n\r\n",                      /* a sign */
        "0x5\r\nhello\r\n0\r\n\r\n",                     /* a prefix */
        "5\r\nhelloX\r\n0\r\n\r\n",                      /* data longer than its size */
        "5\r\nhello\rX0\r\n\r\n",                        /* CR not followed by LF after data */
        "5\rhello\r\n0\r\n\r\n",                         /* CR not followed by LF after the size */
        "1000000000000000\r\n",                          /* 2^60: too large */
        "FFFFFFFFFFFFFFFFF\r\n",                         /* 17 digits */
        "00000000000000000000005\r\nhello\r\n0\r\n\r\n", /* a size line of leading zeros */
        "0\r\n\rX",                                      /* a bad end of trailers */
        long_ext,
        long_trailer,
        many_trailers,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i]);
        for (size_t step = 1; step <= len; step = step < 8 ? step + 1 : step * 4) {
            size_t body_len, rest;
            const char *body = dechunk(bad[i], len, step, &body_len, &rest);
            if (body)
                fail_msg("bad chunked body %zu accepted in pieces of %zu: %.40s", i, step, bad[i]);
        }
    }
    /* The largest size the decoder takes, 2^60 - 1, is a size, not a refusal. */
    jn_http_chunked_t d;
    jn_http_chunked_init(&d);
    char big[] = "FFFFFFFFFFFFFFF\r\nab";
    size_t used = 0;
    assert_int_equal(jn_http_chunked_decode(&d, big, strlen(big), &used), 2);
    assert_int_equal(used, strlen(big));
    assert_false(d.done);
    assert_true(d.remaining == (1ull << 60) - 1 - 2);
}

/* ---- percent-decoding ---- */

static void decodes(const char *in, bool plus, const char *want)
{
    char out[256];
    size_t n = 99;
    jn_err_t err = jn_http_percent_decode(in, strlen(in), plus, out, &n);
    if (err != JN_OK)
        fail_msg("'%s' was refused", in);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void undecodable(const char *in, size_t len)
{
    char out[256];
    size_t n = 0;
    if (jn_http_percent_decode(in, len ? len : strlen(in), true, out, &n) != JN_ERR_INVALID)
        fail_msg("'%s' was decoded to '%s'", in, out);
}

static void test_percent_decoding(void **state)
{
    (void)state;
    decodes("", false, "");
    decodes("plain", false, "plain");
    decodes("a%20b", false, "a b");
    decodes("%2F%2f%3F%23", false, "//?#");
    decodes("%41%42%43", false, "ABC");
    decodes("a+b", false, "a+b");
    decodes("a+b", true, "a b");
    decodes("%2B", true, "+");
    decodes("caf%C3%A9", false, "caf\xc3\xa9");
    decodes("\xc3\xa9", false, "\xc3\xa9"); /* raw valid UTF-8 passes */
    decodes("%F0%9F%98%80", false, "\xf0\x9f\x98\x80");
    undecodable("%", 0);
    undecodable("a%", 0);
    undecodable("%2", 0);
    undecodable("%zz", 0);
    undecodable("%g0", 0);
    undecodable("%00", 0);
    undecodable("fz-int%00junk", 0);
    undecodable("a\0b", 3);
    undecodable("%FF", 0);
    undecodable("%C3%28", 0);
    undecodable("%C0%AF", 0);       /* overlong "/" */
    undecodable("%E0%80%AF", 0);    /* overlong "/" */
    undecodable("%ED%A0%80", 0);    /* a surrogate */
    undecodable("%F4%90%80%80", 0); /* past U+10FFFF */
    undecodable("%C3", 0);          /* cut short */
    undecodable("\xff", 0);
    undecodable("ok%C3", 0);
}

/* ---- fuzz ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: deterministic for a seed. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static size_t rng_below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

static const char *const seeds[] = {
    "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /integrations/fz-int?x=1&y=%20 HTTP/1.1\r\nHost: localhost:3003\r\n"
    "Authorization: Bearer key\r\nAccept: */*\r\n\r\n",
    "POST /connections HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
    "Content-Length: 17\r\n\r\n{\"connection\":1}",
    "PUT /proxy/api/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
    "Connection-Id: c1\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    "GET /old HTTP/1.0\nConnection: keep-alive\n\n",
    "DELETE /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
};

/* Bytes that matter to the grammar, most of the time; any byte otherwise. */
static char interesting_byte(void)
{
    static const char picks[] = "\r\n\0 \t:;,/?%#=+-0123456789aAfF\x7f\x80\xc3\xff";
    if (rng_below(4) == 0)
        return (char)rng_below(256);
    return picks[rng_below(sizeof picks - 1)];
}

/* One random edit of buf (len bytes, capacity cap); returns the new length. */
static size_t mutate(char *buf, size_t len, size_t cap)
{
    switch (rng_below(7)) {
    case 0: /* overwrite a byte */
        if (len)
            buf[rng_below(len)] = interesting_byte();
        return len;
    case 1: /* insert a byte */
        if (len < cap) {
            size_t at = rng_below(len + 1);
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = interesting_byte();
            return len + 1;
        }
        return len;
    case 2: /* delete a span */
        if (len) {
            size_t at = rng_below(len), n = 1 + rng_below(8);
            if (n > len - at)
                n = len - at;
            memmove(buf + at, buf + at + n, len - at - n);
            return len - n;
        }
        return len;
    case 3: /* duplicate a span */
        if (len) {
            size_t at = rng_below(len), n = 1 + rng_below(32);
            if (n > len - at)
                n = len - at;
            if (len + n <= cap) {
                size_t to = rng_below(len + 1);
                char tmp[32];
                memcpy(tmp, buf + at, n);
                memmove(buf + to + n, buf + to, len - to);
                memcpy(buf + to, tmp, n);
                return len + n;
            }
        }
        return len;
    case 4: /* truncate */ return rng_below(len + 1);
    case 5: /* flip a bit */
        if (len)
            buf[rng_below(len)] ^= (char)(1 << rng_below(8));
        return len;
    default: /* repeat one byte many times */
        if (len && len + 64 <= cap) {
            size_t at = rng_below(len), n = 1 + rng_below(64);
            memmove(buf + at + n, buf + at, len - at);
            memset(buf + at, buf[at + n], n);
            return len + n;
        }
        return len;
    }
}

static void check_outcome(jn_http_parse_result_t r, size_t len)
{
    switch (r) {
    case JN_HTTP_PARSE_DONE:
        assert_true(P.consumed > 0 && P.consumed <= len);
        assert_non_null(P.head.method);
        assert_non_null(P.head.target);
        assert_true(P.head.minor_version == 0 || P.head.minor_version == 1);
        assert_true(P.head.field_count <= MAX_FIELDS);
        assert_true(P.head.content_length >= -1);
        assert_false(P.head.chunked && P.head.content_length >= 0);
        for (size_t i = 0; i < P.head.field_count; i++) {
            assert_true(P.head.fields[i].name >= P.buf && P.head.fields[i].name < P.buf + len);
            assert_true(P.head.fields[i].value >= P.buf && P.head.fields[i].value < P.buf + len);
        }
        break;
    case JN_HTTP_PARSE_MORE: break;
    case JN_HTTP_PARSE_ERROR: {
        static const int statuses[] = {400, 414, 417, 431, 501, 505};
        bool known = false;
        for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
            known |= P.err.status == statuses[i];
        if (!known)
            fail_msg("refused with status %d", P.err.status);
        assert_non_null(P.err.code);
        assert_true(P.err.message[0] != '\0');
        break;
    }
    default: fail_msg("outcome %d is none of DONE, MORE, ERROR", (int)r);
    }
}

static void test_fuzz_head_parser(void **state)
{
    (void)state;
    enum { ROUNDS = 300000, CAP = 2048 };
    rng_state = 0x6a756e6374696f6eull; /* fixed seed: a failure replays */
    char work[CAP];
    long outcomes[3] = {0};
    for (long round = 0; round < ROUNDS; round++) {
        const char *seed = seeds[rng_below(sizeof seeds / sizeof seeds[0])];
        size_t len = strlen(seed);
        memcpy(work, seed, len);
        int edits = 1 + (int)rng_below(6);
        for (int e = 0; e < edits; e++)
            len = mutate(work, len, CAP);
        jn_http_parse_result_t r = parse_n(work, len);
        check_outcome(r, len);
        outcomes[r == JN_HTTP_PARSE_DONE ? 0 : r == JN_HTTP_PARSE_MORE ? 1 : 2]++;
        /* What follows an accepted chunked head goes through the decoder too, fed in
         * random pieces. */
        if (r == JN_HTTP_PARSE_DONE && P.head.chunked && P.consumed < len) {
            size_t body_len, rest, left = len - P.consumed;
            dechunk(work + P.consumed, left, 1 + rng_below(left), &body_len, &rest);
            assert_true(body_len <= left && rest <= left);
        }
    }
    printf("fuzz: %d inputs: %ld parsed, %ld incomplete, %ld refused\n", ROUNDS, outcomes[0],
           outcomes[1], outcomes[2]);
    /* The mutations must exercise every outcome, or the fuzz proves little. */
    assert_true(outcomes[0] > ROUNDS / 20);
    assert_true(outcomes[1] > ROUNDS / 100);
    assert_true(outcomes[2] > ROUNDS / 5);
}

static void test_fuzz_chunked_and_percent(void **state)
{
    (void)state;
    enum { ROUNDS = 100000, CAP = 512 };
    rng_state = 0x63687573ull;
    static const char *const bodies[] = {
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: x\r\n\r\n",
        "0\r\n\r\n",
    };
    static const char *const escaped[] = {"a%20b%2Fc", "caf%C3%A9+x", "%F0%9F%98%80%3F"};
    char work[CAP];
    for (long round = 0; round < ROUNDS; round++) {
        const char *seed = bodies[rng_below(3)];
        size_t len = strlen(seed);
        memcpy(work, seed, len);
        for (int e = 1 + (int)rng_below(4); e > 0; e--)
            len = mutate(work, len, CAP);
        size_t body_len, rest;
        dechunk(work, len, 1 + rng_below(len + 1), &body_len, &rest);
        assert_true(body_len <= len && rest <= len);

        seed = escaped[rng_below(3)];
        len = strlen(seed);
        memcpy(work, seed, len);
        for (int e = 1 + (int)rng_below(3); e > 0; e--)
            len = mutate(work, len, CAP);
        char *in = malloc(len ? len : 1), *out = malloc(len + 1);
        assert_true(in && out);
        memcpy(in, work, len);
        size_t out_len = 0;
        if (jn_http_percent_decode(in, len, rng_below(2) == 0, out, &out_len) == JN_OK) {
            assert_true(out_len <= len);
            assert_int_equal(strlen(out), out_len); /* no NUL inside */
        }
        free(in);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_accepts_a_simple_request, teardown),
        cmocka_unit_test_teardown(test_accepts_bare_lf_and_leading_empty_lines, teardown),
        cmocka_unit_test_teardown(test_consumed_leaves_pipelined_bytes, teardown),
        cmocka_unit_test_teardown(test_more_until_the_head_ends, teardown),
        cmocka_unit_test_teardown(test_versions_and_keep_alive, teardown),
        cmocka_unit_test_teardown(test_body_framing_fields, teardown),
        cmocka_unit_test_teardown(test_upgrade_needs_both_fields, teardown),
        cmocka_unit_test_teardown(test_targets, teardown),
        cmocka_unit_test_teardown(test_request_line_refusals, teardown),
        cmocka_unit_test_teardown(test_smuggling_shapes_are_refused, teardown),
        cmocka_unit_test_teardown(test_field_refusals, teardown),
        cmocka_unit_test_teardown(test_size_limits, teardown),
        cmocka_unit_test(test_chunked_whole_and_split),
        cmocka_unit_test(test_chunked_refusals),
        cmocka_unit_test(test_percent_decoding),
        cmocka_unit_test_teardown(test_fuzz_head_parser, teardown),
        cmocka_unit_test(test_fuzz_chunked_and_percent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
