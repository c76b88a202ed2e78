/* Unit tests for common/core/json_util.c: the rules every untrusted JSON input passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/json_util.h"

static jn_err_t parse(const char *text, size_t len, json_object **out, jn_field_error_t *e)
{
    return jn_json_parse(text, len, true, out, e);
}

static void test_valid_object(void **state)
{
    (void)state;
    json_object *o = NULL;
    jn_field_error_t e;
    const char *text = " {\"a\": \"caf\\u00e9 \\ud83d\\ude00\", \"b\": [1, true, null]}\n";
    assert_int_equal(parse(text, strlen(text), &o, &e), JN_OK);
    const char *a = NULL;
    assert_int_equal(jn_json_string(o, "a", true, 100, &a, &e), JN_OK);
    assert_string_equal(a, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    json_object_put(o);
}

static void test_bare_values(void **state)
{
    (void)state;
    /* A number alone is a complete document, though nothing follows it. */
    const char *texts[] = {"12", "-3", "1.5e2", "\"s\"", "true"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_object *o = NULL;
        jn_field_error_t e;
        if (jn_json_parse(texts[i], strlen(texts[i]), false, &o, &e) != JN_OK)
            fail_msg("'%s' refused: %s", texts[i], e.message);
        json_object_put(o);
    }
    json_object *o = NULL;
    jn_field_error_t e;
    assert_int_equal(jn_json_parse("12", 2, false, &o, &e), JN_OK);
    assert_int_equal(json_object_get_int(o), 12);
    json_object_put(o);
    assert_int_equal(jn_json_parse("tru", 3, false, &o, &e), JN_ERR_INVALID);
    assert_int_equal(jn_json_parse("12", 2, true, &o, &e), JN_ERR_INVALID);
}

static void test_refusals(void **state)
{
    (void)state;
    struct {
        const char *text;
        size_t len;
        const char *mention;
    } cases[] = {
        {"", 0, "empty"},
        {"{\"a\":1", 6, "ends too early"},
        {"{\"a\":1} x", 9, "JSON"},
        {"[1]", 3, "object"},
        {"{\"a\":\"x\\u0000y\"}", 16, "NUL"},
        {"{\"a\\u0000\":1}", 13, "NUL"},
        {"{\"a\":\"\\ud800\"}", 14, "surrogate"},
        {"{\"a\":\"\\udc00\\ud800\"}", 20, "surrogate"},
        {"{\"a\":\"\xff\"}", 8, "JSON"},
        {"{\"a\":\"\xc0\xaf\"}", 9, "JSON"},
        {"{\"a\":1}\0{}", 10, "NUL byte"},
        {"{a:1}", 5, "JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *o = NULL;
        jn_field_error_t e = {0};
        if (parse(cases[i].text, cases[i].len, &o, &e) != JN_ERR_INVALID)
            fail_msg("case %zu was accepted", i);
        assert_null(o);
        if (!strstr(e.message, cases[i].mention))
            fail_msg("case %zu: '%s' does not mention '%s'", i, e.message, cases[i].mention);
    }
    /* An escaped backslash followed by "ud800" is plain text, not a surrogate. */
    json_object *o = NULL;
    jn_field_error_t e;
    const char *ok = "{\"a\":\"\\\\ud800\"}";
    assert_int_equal(parse(ok, strlen(ok), &o, &e), JN_OK);
    json_object_put(o);
}

static void test_depth_cap(void **state)
{
    (void)state;
    char deep[200];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int i = 0; i < JN_JSON_MAX_DEPTH + 5; i++)
        deep[n++] = '[';
    json_object *o = NULL;
    jn_field_error_t e;
    assert_int_equal(parse(deep, n, &o, &e), JN_ERR_INVALID);
    assert_non_null(strstr(e.message, "deeper"));
}

static void test_field_readers(void **state)
{
    (void)state;
    const char *text =
        "{\"s\":\"hello\",\"n\":5,\"e\":\"\",\"b\":true,\"m\":{\"k\":\"v\",\"x\":1},\"z\":null}";
    json_object *o = NULL;
    jn_field_error_t e;
    assert_int_equal(parse(text, strlen(text), &o, &e), JN_OK);
    const char *s = NULL;
    assert_int_equal(jn_json_string(o, "s", true, 5, &s, &e), JN_OK);
    assert_int_equal(jn_json_string(o, "s", true, 4, &s, &e), JN_ERR_INVALID);
    assert_string_equal(e.path, "s");
    assert_int_equal(jn_json_string(o, "n", false, 10, &s, &e), JN_ERR_INVALID);
    assert_string_equal(e.message, "must be a string");
    assert_int_equal(jn_json_string(o, "e", true, 10, &s, &e), JN_ERR_INVALID);
    assert_int_equal(jn_json_string(o, "e", false, 10, &s, &e), JN_OK);
    assert_int_equal(jn_json_string(o, "missing", true, 10, &s, &e), JN_ERR_INVALID);
    assert_string_equal(e.message, "is required");
    assert_int_equal(jn_json_string(o, "z", false, 10, &s, &e), JN_OK);
    assert_null(s);
    bool b = false, present = false;
    assert_int_equal(jn_json_bool(o, "b", &b, &present, &e), JN_OK);
    assert_true(b && present);
    assert_int_equal(jn_json_bool(o, "s", &b, &present, &e), JN_ERR_INVALID);
    json_object *m = NULL;
    assert_int_equal(jn_json_string_map(o, "m", 10, &m, &e), JN_ERR_INVALID);
    assert_string_equal(e.path, "m.x");
    const char *allowed[] = {"s", "n", "e", "b", "m", NULL};
    assert_int_equal(jn_json_only_keys(o, allowed, "", &e), JN_ERR_INVALID);
    assert_string_equal(e.path, "z");
    jn_field_error_nest(&e, "outer");
    assert_string_equal(e.path, "outer.z");
    json_object_put(o);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(jn_utf8_valid("plain", 5));
    assert_true(jn_utf8_valid("\xe2\x82\xac", 3));
    assert_true(jn_utf8_valid("\xf4\x8f\xbf\xbf", 4));
    assert_false(jn_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(jn_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(jn_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(jn_utf8_valid("\xe2\x82", 2));         /* truncated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_object),  cmocka_unit_test(test_bare_values),
        cmocka_unit_test(test_refusals),      cmocka_unit_test(test_depth_cap),
        cmocka_unit_test(test_field_readers), cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
