/* Unit tests for common/core/frequency.c: Nango's frequency notation into seconds, and
 * everything else refused; and the notation the sync status writes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/frequency.h"
#include "store/syncs.h"

static void test_valid(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t seconds;
    } ok[] = {
        {"every 5 minutes", 300},
        {"5m", 300},
        {"5min", 300},
        {"every 5mins", 300},
        {"30s", 30},
        {"30 seconds", 30},
        {"1h", 3600},
        {"every hour", 3600},
        {"every 2 hours", 7200},
        {"2 HRS", 7200},
        {"every day", 86400},
        {"1d", 86400},
        {"every half hour", 1800},
        {"every quarter hour", 900},
        {"every half day", 43200},
        {"every week", 604800},
        {"2w", 1209600},
        {"every month", 2592000},
        {"1.5h", 5400},
        {"5.5m", 330},
        {"  every   30 sec  ", 30},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t s = -1;
        char why[128];
        if (jn_frequency_parse(ok[i].text, &s, why, sizeof why) != JN_OK)
            fail_msg("'%s' refused: %s", ok[i].text, why);
        if (s != ok[i].seconds)
            fail_msg("'%s' read as %lld s, not %lld", ok[i].text, (long long)s,
                     (long long)ok[i].seconds);
    }
}

static void test_invalid(void **state)
{
    (void)state;
    /* Below 30 s and above 31 days are refused too. */
    const char *bad[] = {"",          "every",           "5",      "m",   "0m",
                         "-5m",       "5 parsecs",       "1500ms", "10s", "every every 5m",
                         "5m and 3s", "99999999999999h", "32 days"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t s = 42;
        char why[128] = "";
        if (jn_frequency_parse(bad[i], &s, why, sizeof why) == JN_OK)
            fail_msg("'%s' accepted as %lld", bad[i], (long long)s);
        assert_true(why[0] != '\0');
    }
}

static void test_text(void **state)
{
    (void)state;
    char out[32];
    jn_syncs_frequency_text(30, out, sizeof out);
    assert_string_equal(out, "every 30s");
    jn_syncs_frequency_text(300, out, sizeof out);
    assert_string_equal(out, "every 5m");
    jn_syncs_frequency_text(7200, out, sizeof out);
    assert_string_equal(out, "every 2h");
    jn_syncs_frequency_text(172800, out, sizeof out);
    assert_string_equal(out, "every 2d");
    jn_syncs_frequency_text(90, out, sizeof out);
    assert_string_equal(out, "every 90s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
