/* Unit tests for common/core/iso8601.c: every part of the grammar is checked, so a near
 * miss ("+99:99", "2026-02-30", a trailing word) is refused rather than misread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/iso8601.h"

static void test_valid(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long long unix_seconds;
    } ok[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-11-28T18:00:00Z", 1795888800},
        {"2026-11-28T18:00:00.123Z", 1795888800},
        {"2026-11-28T18:00:00.123456789Z", 1795888800},
        {"2026-11-28T19:00:00+01:00", 1795888800},
        {"2026-11-28T12:30:00-05:30", 1795888800},
        {"2026-11-28T18:00:00-00:00", 1795888800},
        {"2026-11-29T17:59:00+23:59", 1795888800},
        {"2026-11-28T18:00:00", 1795888800},  /* no offset: UTC */
        {"2024-02-29T00:00:00Z", 1709164800}, /* a leap day */
        {"2000-02-29T00:00:00Z", 951782400},  /* divisible by 400: a leap year */
        {"2016-12-31T23:59:60Z", 1483228800}, /* a leap second reads as the next second */
        {"1969-12-31T23:59:59Z", -1},
        {"2099-01-01T00:00:00Z", 4070908800},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        long long t = 42;
        char why[96] = "";
        if (jn_iso8601_parse(ok[i].text, &t, why, sizeof why) != JN_OK)
            fail_msg("'%s' refused: %s", ok[i].text, why);
        if (t != ok[i].unix_seconds)
            fail_msg("'%s' read as %lld, not %lld", ok[i].text, t, ok[i].unix_seconds);
    }
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"2026-11-28T18:00:00+99:99", "offset's hours"},
        {"2026-11-28T18:00:00+24:00", "offset's hours"},
        {"2026-11-28T18:00:00+01:60", "offset's minutes"},
        {"2026-11-28T18:00:00+0100", "offset must be"},
        {"2026-11-28T18:00:00+1:00", "offset must be"},
        {"2026-11-28T18:00:00+01", "offset must be"},
        {"2026-11-28T18:00:00+01:00x", "after the date-time"},
        {"2026-11-28T18:00:00Zjunk", "after the date-time"},
        {"2026-11-28T18:00:00 Z", "after the date-time"},
        {"2026-11-28T18:00:00z", "after the date-time"},
        {"2026-11-28T24:00:00Z", "hours"},
        {"2026-11-28T18:60:00Z", "minutes"},
        {"2026-11-28T18:00:61Z", "seconds"},
        {"2026-13-01T00:00:00Z", "month"},
        {"2026-00-01T00:00:00Z", "month"},
        {"2026-02-29T00:00:00Z", "day"}, /* not a leap year */
        {"1900-02-29T00:00:00Z", "day"}, /* divisible by 100 only */
        {"2026-04-31T00:00:00Z", "day"},
        {"2026-11-00T00:00:00Z", "day"},
        {"2026-11-28 18:00:00Z", "'T'"},
        {"2026-11-28", "'T'"},
        {"2026-11-28T18:00Z", "hh:mm:ss"},
        {"2026-11-28T8:00:00Z", "hh:mm:ss"},
        {"26-11-28T18:00:00Z", "YYYY-MM-DD"},
        {"2026/11/28T18:00:00Z", "YYYY-MM-DD"},
        {"+2026-11-28T18:00:00Z", "YYYY-MM-DD"},
        {"2026-11-28T18:00:00.Z", "fraction"},
        {"2026-11-28T18:00:00.1234567890Z", "fraction"},
        {"tomorrow", "YYYY-MM-DD"},
        {"", "YYYY-MM-DD"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long long t = 42;
        char why[96] = "";
        if (jn_iso8601_parse(bad[i].text, &t, why, sizeof why) != JN_ERR_INVALID)
            fail_msg("'%s' accepted as %lld", bad[i].text, t);
        assert_int_equal(t, 42); /* untouched */
        if (!strstr(why, bad[i].why))
            fail_msg("'%s': why '%s' lacks '%s'", bad[i].text, why, bad[i].why);
    }
    long long t = 0;
    assert_int_equal(jn_iso8601_parse(NULL, &t, NULL, 0), JN_ERR_INVALID);
    assert_int_equal(jn_iso8601_parse("2026-11-28T18:00:00+99:99", &t, NULL, 0), JN_ERR_INVALID);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char text[JN_ISO8601_LEN];
    jn_iso8601_format(1795888800, text);
    assert_string_equal(text, "2026-11-28T18:00:00.000Z");
    long long back = 0;
    assert_int_equal(jn_iso8601_parse(text, &back, NULL, 0), JN_OK);
    assert_int_equal(back, 1795888800);
    jn_iso8601_format(0, text);
    assert_string_equal(text, "1970-01-01T00:00:00.000Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
