/* Unit tests for common/core/log.c: each line is one valid JSON object, escaped and capped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json_util.h"
#include "core/log.h"

/* Runs the logger with stderr redirected to a pipe and returns what it wrote. */
static char *capture(void (*emit)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    emit();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char *out = calloc(1, 65536);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], out + len, 65535 - len)) > 0)
        len += (size_t)n;
    close(fds[0]);
    return out;
}

static void emit_hostile(void)
{
    jn_log_init("gateway", JN_LOG_INFO);
    jn_log_info("test\"comp", "quote \" backslash \\ newline \n tab \t bell \a done");
    jn_log_debug("test", "this is below the level and must not appear");
}

static void test_line_is_json(void **state)
{
    (void)state;
    char *out = capture(emit_hostile);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, ""); /* exactly one line: debug was filtered */
    json_object *o = json_tokener_parse(out);
    assert_non_null(o);
    json_object *v;
    assert_true(json_object_object_get_ex(o, "level", &v));
    assert_string_equal(json_object_get_string(v), "info");
    assert_true(json_object_object_get_ex(o, "service", &v));
    assert_string_equal(json_object_get_string(v), "gateway");
    assert_true(json_object_object_get_ex(o, "component", &v));
    assert_string_equal(json_object_get_string(v), "test\"comp");
    assert_true(json_object_object_get_ex(o, "msg", &v));
    assert_string_equal(json_object_get_string(v),
                        "quote \" backslash \\ newline \n tab \t bell \a done");
    assert_true(json_object_object_get_ex(o, "ts", &v));
    assert_int_equal(strlen(json_object_get_string(v)), 24);
    json_object_put(o);
    free(out);
}

static void emit_huge(void)
{
    jn_log_init("worker", JN_LOG_DEBUG);
    char *big = malloc(3 * JN_LOG_LINE_MAX);
    memset(big, '"', 3 * JN_LOG_LINE_MAX - 1); /* every character needs escaping */
    big[3 * JN_LOG_LINE_MAX - 1] = '\0';
    jn_log_warn("test", "%s", big);
    free(big);
}

static void test_long_line_is_capped_and_valid(void **state)
{
    (void)state;
    char *out = capture(emit_huge);
    size_t len = strlen(out);
    assert_true(len <= JN_LOG_LINE_MAX);
    assert_int_equal(out[len - 1], '\n');
    json_object *o = json_tokener_parse(out);
    assert_non_null(o);
    json_object_put(o);
    free(out);
}

static void emit_bad_utf8(void)
{
    jn_log_init("gateway", JN_LOG_INFO);
    jn_log_info("test", "id fz-int\xff\xfe cut \xc3 surrogate \xed\xa0\x80 overlong \xc0\xaf "
                        "kept caf\xc3\xa9 \xf0\x9f\x98\x80");
}

/* Bytes that are not UTF-8 (from a client or a provider) never make a line invalid JSON. */
static void test_invalid_utf8_is_replaced(void **state)
{
    (void)state;
    char *out = capture(emit_bad_utf8);
    assert_true(jn_utf8_valid(out, strlen(out)));
    json_object *o = json_tokener_parse(out);
    assert_non_null(o);
    json_object *v;
    assert_true(json_object_object_get_ex(o, "msg", &v));
    assert_string_equal(json_object_get_string(v),
                        "id fz-int\xef\xbf\xbd\xef\xbf\xbd cut \xef\xbf\xbd surrogate "
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd overlong \xef\xbf\xbd\xef\xbf\xbd "
                        "kept caf\xc3\xa9 \xf0\x9f\x98\x80");
    json_object_put(o);
    free(out);
}

static void emit_huge_utf8(void)
{
    jn_log_init("worker", JN_LOG_DEBUG);
    char *big = malloc(3 * JN_LOG_LINE_MAX + 1);
    for (size_t i = 0; i + 2 <= 3 * JN_LOG_LINE_MAX; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[3 * JN_LOG_LINE_MAX] = '\0';
    jn_log_warn("test", "x%s", big); /* the x puts every character across the cut */
    free(big);
}

/* A capped line never ends inside a multi-byte character. */
static void test_capped_line_keeps_characters_whole(void **state)
{
    (void)state;
    char *out = capture(emit_huge_utf8);
    assert_true(strlen(out) <= JN_LOG_LINE_MAX);
    assert_true(jn_utf8_valid(out, strlen(out)));
    json_object *o = json_tokener_parse(out);
    assert_non_null(o);
    json_object_put(o);
    free(out);
}

static void test_level_parse(void **state)
{
    (void)state;
    jn_log_level_t l;
    assert_int_equal(jn_log_level_parse("warn", &l), JN_OK);
    assert_int_equal(l, JN_LOG_WARN);
    assert_int_equal(jn_log_level_parse("Error", &l), JN_OK);
    assert_int_equal(l, JN_LOG_ERROR);
    assert_int_equal(jn_log_level_parse("verbose", &l), JN_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_is_json),
        cmocka_unit_test(test_long_line_is_capped_and_valid),
        cmocka_unit_test(test_invalid_utf8_is_replaced),
        cmocka_unit_test(test_capped_line_keeps_characters_whole),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
