/* Unit tests for the pure parts of common/store/records.c: the records API's cursor
 * round-trips and refuses anything it did not write; model names with variants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "store/records.h"

/* The records API's cursor round-trips, and anything else is refused. */
static void test_cursor(void **state)
{
    (void)state;
    char c[64];
    jn_records_cursor_encode(12, 345, c);
    assert_string_equal(c, "cjE6MTI6MzQ1"); /* base64url("r1:12:345"), as records_cursor() */
    long long scope = 0, seq = 0;
    assert_int_equal(jn_records_cursor_decode(c, &scope, &seq), JN_OK);
    assert_int_equal(scope, 12);
    assert_int_equal(seq, 345);
    jn_records_cursor_encode(1, 0, c); /* the shortest */
    assert_int_equal(jn_records_cursor_decode(c, &scope, &seq), JN_OK);
    assert_int_equal(scope, 1);
    assert_int_equal(seq, 0);
    jn_records_cursor_encode(9007199254740993LL, 9223372036854775LL, c);
    assert_int_equal(jn_records_cursor_decode(c, &scope, &seq), JN_OK);
    assert_int_equal(scope, 9007199254740993LL);
    const char *bad[] = {"",           "cjE6MTI6MzQ1=", "cjE6MTI6",       "bm9wZQ", "cjI6MTI6MzQ1",
                         "cjE6LTE6Mw", "cjE6MDE6Mw",    "cjE6MTI6MzQ1YQ", "!!!!",   "cjE6MTIgOjM"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (jn_records_cursor_decode(bad[i], &scope, &seq) == JN_OK)
            fail_msg("cursor '%s' accepted as %lld:%lld", bad[i], scope, seq);
    }
    char model[600];
    assert_int_equal(jn_records_model_name("Contact", "base", model, sizeof model), JN_OK);
    assert_string_equal(model, "Contact");
    assert_int_equal(jn_records_model_name("Contact", "eu", model, sizeof model), JN_OK);
    assert_string_equal(model, "Contact::eu");
    assert_int_equal(jn_records_model_name("Con::tact", NULL, model, sizeof model), JN_ERR_INVALID);
    assert_int_equal(jn_records_model_name("", NULL, model, sizeof model), JN_ERR_INVALID);
    assert_int_equal(jn_records_model_name("a\nb", NULL, model, sizeof model), JN_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
