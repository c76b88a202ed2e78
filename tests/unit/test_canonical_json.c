/* Unit tests for common/core/canonical_json.c and common/core/buf.c: equal JSON values get
 * one text whatever their key order or number spelling, different values different texts,
 * and what JSON cannot hold is refused with its path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/canonical_json.h"

/* The canonical text of the JSON text in (parsed with json-c); fails on a parse error. */
static char *canon(const char *in)
{
    json_object *v = json_tokener_parse(in);
    if (!v && strcmp(in, "null") != 0)
        fail_msg("test input does not parse: %s", in);
    jn_buf_t b;
    jn_buf_init(&b, 1 << 20);
    jn_field_error_t e;
    jn_err_t err = jn_canonical_json(v, &b, &e);
    json_object_put(v);
    if (err)
        fail_msg("'%s': %s at '%s': %s", in, jn_err_str(err), e.path, e.message);
    return jn_buf_take(&b, NULL);
}

static void expect(const char *in, const char *want)
{
    char *got = canon(in);
    if (strcmp(got, want) != 0)
        fail_msg("'%s' -> '%s', wanted '%s'", in, got, want);
    free(got);
}

static void test_key_order_and_whitespace(void **state)
{
    (void)state;
    expect("{ \"b\" : 1, \"a\" : [ 2 , 3 ] }", "{\"a\":[2,3],\"b\":1}");
    expect("{\"z\":{\"y\":1,\"x\":{\"b\":null,\"a\":true}},\"a\":false}",
           "{\"a\":false,\"z\":{\"x\":{\"a\":true,\"b\":null},\"y\":1}}");
    /* Byte order: upper case before lower case, shorter prefix first, UTF-8 by bytes. */
    expect("{\"b\":1,\"B\":2,\"ab\":3,\"a\":4,\"\xc3\xa9\":5,\"z\":6}",
           "{\"B\":2,\"a\":4,\"ab\":3,\"b\":1,\"z\":6,\"\xc3\xa9\":5}");
    /* Arrays keep their order; empty containers stay. */
    expect("[3,1,2,{},[]]", "[3,1,2,{},[]]");
}

static void test_numbers_by_value(void **state)
{
    (void)state;
    const char *ones[] = {"1", "1.0", "1.000", "1e0", "10E-1", "0.1e1", "1E+0"};
    for (size_t i = 0; i < sizeof ones / sizeof ones[0]; i++)
        expect(ones[i], "1");
    expect("-0", "0");
    expect("-0.0", "0");
    expect("100", "100");
    expect("1e2", "100");
    expect("0.1", "0.1");
    expect("1.5", "1.5");
    expect("-2.50", "-2.5");
    expect("9007199254740991", "9007199254740991");         /* 2^53 - 1: an integer */
    expect("9223372036854775807", "9223372036854775807");   /* INT64_MAX stays exact */
    expect("18446744073709551615", "18446744073709551615"); /* json-c keeps it unsigned */
    expect("1e21", "1e+21");
    expect("1.5e-7", "1.5e-07");
    expect("123456.789", "123456.789");
    /* Round trip: the shortest text reads back as the same double. */
    char *t = canon("0.30000000000000004");
    assert_true(strtod(t, NULL) == 0.30000000000000004);
    assert_string_equal(t, "0.30000000000000004");
    free(t);
}

static void test_strings(void **state)
{
    (void)state;
    /* Escapes are normalised: \u00e9 and the raw bytes are one string; '/' is not escaped. */
    expect("\"\\u00e9\"", "\"\xc3\xa9\"");
    expect("\"a/b\\/c\"", "\"a/b/c\"");
    expect("\"q\\\"b\\\\\"", "\"q\\\"b\\\\\"");
    expect("\"\\b\\f\\n\\r\\t\\u0001\\u001f\"", "\"\\b\\f\\n\\r\\t\\u0001\\u001f\"");
    expect("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
}

static void test_refusals_name_the_path(void **state)
{
    (void)state;
    json_object *v = json_tokener_parse("{\"a\":{\"list\":[1,2,0]}}");
    json_object *list = json_object_object_get(json_object_object_get(v, "a"), "list");
    json_object_array_put_idx(list, 2, json_object_new_double(INFINITY));
    jn_buf_t b;
    jn_buf_init(&b, 1 << 20);
    jn_field_error_t e;
    assert_int_equal(jn_canonical_json(v, &b, &e), JN_ERR_INVALID);
    assert_string_equal(e.path, "a.list[2]");
    json_object_put(v);
    jn_buf_reset(&b);
    v = json_object_new_object();
    json_object_object_add(v, "x", json_object_new_string_len("\xff\xfe", 2));
    assert_int_equal(jn_canonical_json(v, &b, &e), JN_ERR_INVALID);
    assert_string_equal(e.path, "x");
    json_object_put(v);
    /* Nested past the cap. */
    jn_buf_reset(&b);
    v = json_object_new_array();
    json_object *cur = v;
    for (int i = 0; i < JN_CANONICAL_MAX_DEPTH + 5; i++) {
        json_object *next = json_object_new_array();
        json_object_array_add(cur, next);
        cur = next;
    }
    assert_int_equal(jn_canonical_json(v, &b, &e), JN_ERR_INVALID);
    json_object_put(v);
    jn_buf_cleanup(&b);
}

static void test_buffer_cap(void **state)
{
    (void)state;
    jn_buf_t b;
    jn_buf_init(&b, 10);
    assert_int_equal(jn_buf_append_str(&b, "12345"), JN_OK);
    assert_int_equal(jn_buf_printf(&b, "%d", 678), JN_OK);
    assert_int_equal(jn_buf_append_str(&b, "9ab"), JN_ERR_TOO_LARGE);
    assert_string_equal(b.data, "12345678"); /* unchanged by the refused append */
    assert_int_equal(jn_buf_append_str(&b, "9a"), JN_OK);
    assert_int_equal(b.len, 10);
    assert_int_equal(jn_buf_printf(&b, "%s", "x"), JN_ERR_TOO_LARGE);
    size_t len = 0;
    char *s = jn_buf_take(&b, &len);
    assert_string_equal(s, "123456789a");
    assert_int_equal(len, 10);
    free(s);
    assert_null(b.data);
    jn_buf_init(&b, 64);
    assert_int_equal(jn_buf_be16(&b, 0xffff), JN_OK);
    assert_int_equal(jn_buf_be32(&b, 0x01020304), JN_OK);
    assert_int_equal(jn_buf_be64(&b, 0x0102030405060708ULL), JN_OK);
    const unsigned char want[] = {0xff, 0xff, 1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    jn_buf_cleanup(&b);
    /* A long printf grows the buffer in one step. */
    jn_buf_init(&b, 4096);
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(jn_buf_printf(&b, "<%s>", big), JN_OK);
    assert_int_equal(b.len, 1001);
    jn_buf_cleanup(&b);
}

/* The escaped form of s[0..n) byte by byte (the slow way the fast path must agree with);
 * NULL for invalid UTF-8 (only the cases the test builds: a lone continuation byte or a
 * lead byte without its continuation). */
static char *slow_escape(const unsigned char *s, size_t n)
{
    jn_buf_t b;
    jn_buf_init(&b, 1 << 20);
    jn_buf_append(&b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == 0xc3) {
            if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80) {
                jn_buf_cleanup(&b);
                return NULL;
            }
            jn_buf_append(&b, s + i, 2);
            i++;
        } else if (c >= 0x80) {
            jn_buf_cleanup(&b);
            return NULL;
        } else if (c == '"' || c == '\\') {
            jn_buf_printf(&b, "\\%c", c);
        } else if (c == '\n') {
            jn_buf_append_str(&b, "\\n");
        } else if (c < 0x20) {
            jn_buf_printf(&b, "\\u%04x", c);
        } else {
            jn_buf_append(&b, &c, 1);
        }
    }
    jn_buf_append(&b, "\"", 1);
    return jn_buf_take(&b, NULL);
}

/* Every special byte at every offset of strings of every length up to 40: the eight-byte
 * fast path never skips one, and never lets invalid UTF-8 through. */
static void test_strings_at_every_offset(void **state)
{
    (void)state;
    const char *specials[] = {"\"",       "\\",   "\n",   "\x01", "\x1f",
                              "\xc3\xa9", "\x80", "\xc3", "\x7f", " "};
    jn_buf_t out;
    jn_buf_init(&out, 1 << 20);
    for (size_t len = 0; len <= 40; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
                unsigned char text[64];
                memset(text, 'a', len);
                size_t sl = strlen(specials[k]);
                memcpy(text + at, specials[k], sl);
                size_t n = len + sl;
                for (size_t i = at + sl; i < n; i++)
                    text[i] = (unsigned char)('a' + i % 26);
                json_object *v = json_object_new_string_len((const char *)text, (int)n);
                jn_buf_reset(&out);
                jn_field_error_t e;
                jn_err_t err = jn_canonical_json(v, &out, &e);
                json_object_put(v);
                char *want = slow_escape(text, n);
                if (!want) {
                    if (err != JN_ERR_INVALID)
                        fail_msg("invalid UTF-8 at %zu of %zu accepted", at, n);
                    continue;
                }
                if (err || strcmp(out.data, want) != 0)
                    fail_msg("special %zu at %zu of %zu: '%s', wanted '%s'", k, at, n,
                             err ? "(error)" : out.data, want);
                free(want);
            }
        }
    }
    jn_buf_cleanup(&out);
}

/* The shortest spelling that reads back (a binary search over the digits) is the one a
 * search from one digit up finds, for doubles of every magnitude. */
static void test_shortest_doubles(void **state)
{
    (void)state;
    unsigned long long x = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        uint64_t bits = x;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d) || d == floor(d))
            continue;
        char want[32], got[32];
        for (int p = 1; p <= 17; p++) {
            snprintf(want, sizeof want, "%.*g", p, d);
            if (strtod(want, NULL) == d)
                break;
        }
        json_object *v = json_object_new_double(d);
        assert_int_equal(jn_canonical_number(v, got), JN_OK);
        json_object_put(v);
        if (strcmp(got, want) != 0)
            fail_msg("%a: '%s', wanted '%s'", d, got, want);
    }
}

/* A record without its metadata and with its id as a string, written from the object as
 * it is: the same text as the edited copy's. */
static void test_object_with_a_member_dropped_and_one_replaced(void **state)
{
    (void)state;
    json_object *v = json_tokener_parse("{\"z\":1,\"id\":7,\"_meta\":{\"x\":1},\"a\":[true]}");
    jn_buf_t b;
    jn_buf_init(&b, 1 << 20);
    jn_field_error_t e;
    json_object *id = json_object_new_string("7");
    assert_int_equal(jn_canonical_json_object(v, "_meta", "id", id, &b, &e), JN_OK);
    assert_string_equal(b.data, "{\"a\":[true],\"id\":\"7\",\"z\":1}");
    /* A key the object lacks is added in its place in the order. */
    jn_buf_reset(&b);
    assert_int_equal(jn_canonical_json_object(v, NULL, "m", id, &b, &e), JN_OK);
    assert_string_equal(b.data, "{\"_meta\":{\"x\":1},\"a\":[true],\"id\":7,\"m\":\"7\",\"z\":1}");
    jn_buf_reset(&b);
    assert_int_equal(jn_canonical_json_object(v, NULL, NULL, NULL, &b, &e), JN_OK);
    assert_string_equal(b.data, "{\"_meta\":{\"x\":1},\"a\":[true],\"id\":7,\"z\":1}");
    json_object_put(id);
    json_object_put(v);
    jn_buf_reset(&b);
    v = json_tokener_parse("[1]");
    assert_int_equal(jn_canonical_json_object(v, NULL, NULL, NULL, &b, &e), JN_ERR_INVALID);
    json_object_put(v);
    /* Reserving keeps the cap and the text. */
    jn_buf_reset(&b);
    jn_buf_append_str(&b, "ab");
    assert_int_equal(jn_buf_reserve(&b, 1000), JN_OK);
    assert_string_equal(b.data, "ab");
    assert_int_equal(jn_buf_reserve(&b, 2 << 20), JN_ERR_TOO_LARGE);
    jn_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_order_and_whitespace),
        cmocka_unit_test(test_numbers_by_value),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_refusals_name_the_path),
        cmocka_unit_test(test_buffer_cap),
        cmocka_unit_test(test_strings_at_every_offset),
        cmocka_unit_test(test_shortest_doubles),
        cmocka_unit_test(test_object_with_a_member_dropped_and_one_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
