/*
 * Unit: origin lists of the end-user routes (api-gateway/cors.c): what a setter accepts,
 * and which pages a list admits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "cors.h"

static void test_check_accepts_lists(void **state)
{
    (void)state;
    char why[256];
    const char *good[] = {"",
                          "*",
                          " * ",
                          "https://app.example.com",
                          "https://app.example.com, http://localhost:5173",
                          "http://127.0.0.1:8080/",
                          "https://[::1]:8443",
                          "HTTPS://App.Example.COM"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (jn_cors_origins_check(good[i], why, sizeof why) != JN_OK)
            fail_msg("'%s' refused: %s", good[i], why);
    }
}

static void test_check_refuses_what_is_not_an_origin(void **state)
{
    (void)state;
    char why[256];
    const char *bad[] = {"app.example.com",
                         "ftp://app.example.com",
                         "https://app.example.com/path",
                         "https://user:pw@app.example.com",
                         "https://app.example.com?x=1",
                         "https://app.example.com#f",
                         "https://",
                         "https://app.example.com:0",
                         "https://app.example.com:70000",
                         "https://app.example.com,,https://b.example.com",
                         "https://app.example.com,",
                         "*, https://app.example.com",
                         "https://app.example.com\r\nX-Evil: 1",
                         "javascript:alert(1)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (jn_cors_origins_check(bad[i], why, sizeof why) == JN_OK)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(why[0] != '\0');
    }
    char many[4096];
    size_t len = 0;
    for (int i = 0; i <= JN_CORS_MAX_ORIGINS; i++)
        len += (size_t)snprintf(many + len, sizeof many - len, "%shttps://a%d.example.com",
                                i ? "," : "", i);
    assert_int_equal(jn_cors_origins_check(many, why, sizeof why), JN_ERR_INVALID);
    assert_non_null(strstr(why, "at most"));
}

static void test_allowed(void **state)
{
    (void)state;
    const char *own = "https://junction.example.com/base";
    /* No list: any origin, even an opaque one. */
    assert_true(jn_cors_origin_allowed(NULL, "https://x.example", own));
    assert_true(jn_cors_origin_allowed("", "null", own));
    assert_true(jn_cors_origin_allowed("*", "https://x.example", own));
    const char *list = "https://app.example.com, http://localhost:5173";
    assert_true(jn_cors_origin_allowed(list, "https://app.example.com", own));
    assert_true(jn_cors_origin_allowed(list, "http://localhost:5173", own));
    assert_true(jn_cors_origin_allowed(list, "https://app.example.com:443", own));
    assert_true(jn_cors_origin_allowed(list, "https://junction.example.com", own));
    assert_false(jn_cors_origin_allowed(list, "http://app.example.com", own));
    assert_false(jn_cors_origin_allowed(list, "https://app.example.com.evil.example", own));
    assert_false(jn_cors_origin_allowed(list, "https://evil.example", own));
    assert_false(jn_cors_origin_allowed(list, "http://localhost:5174", own));
    assert_false(jn_cors_origin_allowed(list, "null", own));
    assert_false(jn_cors_origin_allowed(list, NULL, own));
    assert_false(jn_cors_origin_allowed(list, "https://junction.example.com", NULL));
}

static void test_origin_of(void **state)
{
    (void)state;
    char out[JN_CORS_ORIGIN_MAX];
    assert_true(jn_cors_origin_of("https://Junction.Example.com:443/api?x#y", out));
    assert_string_equal(out, "https://junction.example.com");
    assert_true(jn_cors_origin_of("http://127.0.0.1:3003", out));
    assert_string_equal(out, "http://127.0.0.1:3003");
    assert_false(jn_cors_origin_of("https://user@host.example/", out));
    assert_false(jn_cors_origin_of("file:///etc/passwd", out));
    assert_false(jn_cors_origin_of(NULL, out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_accepts_lists),
        cmocka_unit_test(test_check_refuses_what_is_not_an_origin),
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_origin_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
