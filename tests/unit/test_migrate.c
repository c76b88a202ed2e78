/* Unit tests for the ordering rules of common/store/migrate.c (no database needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "store/migrate.h"

static void test_parse_name(void **state)
{
    (void)state;
    int v = -1;
    assert_int_equal(jn_migration_parse_name("0001_environments.sql", &v), JN_OK);
    assert_int_equal(v, 1);
    assert_int_equal(jn_migration_parse_name("0042_add_index_2.sql", &v), JN_OK);
    assert_int_equal(v, 42);
    assert_int_equal(jn_migration_parse_name("7_short.sql", &v), JN_OK);
    assert_int_equal(v, 7);

    const char *bad[] = {"0000_zero.sql",  "00001_five_digits.sql",
                         "0001.sql",       "0001_.sql",
                         "0001_Upper.sql", "0001_name.SQL",
                         "abcd_name.sql",  "0001_name.sql.bak",
                         "0001-name.sql",  "",
                         "_name.sql"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (jn_migration_parse_name(bad[i], &v) != JN_ERR_INVALID)
            fail_msg("'%s' should be refused", bad[i]);
    }
}

static void test_order_sorts_by_number(void **state)
{
    (void)state;
    jn_migration_t list[] = {
        {0, "0010_ten.sql", "x"},
        {0, "0002_two.sql", "x"},
        {0, "0001_one.sql", "x"},
        {0, "0009_nine.sql", "x"},
    };
    char why[256] = "";
    assert_int_equal(jn_migrations_order(list, 4, why, sizeof why), JN_OK);
    assert_string_equal(list[0].name, "0001_one.sql");
    assert_string_equal(list[1].name, "0002_two.sql");
    assert_string_equal(list[2].name, "0009_nine.sql");
    assert_string_equal(list[3].name, "0010_ten.sql");
    /* Numeric, not lexical: 10 sorts after 9 even when written without padding. */
    jn_migration_t unpadded[] = {{0, "10_ten.sql", "x"}, {0, "9_nine.sql", "x"}};
    assert_int_equal(jn_migrations_order(unpadded, 2, why, sizeof why), JN_OK);
    assert_int_equal(unpadded[0].version, 9);
    assert_int_equal(unpadded[1].version, 10);
}

static void test_order_rejects_duplicates(void **state)
{
    (void)state;
    jn_migration_t list[] = {
        {0, "0001_one.sql", "x"},
        {0, "0002_two.sql", "x"},
        {0, "0002_other.sql", "x"},
    };
    char why[256] = "";
    assert_int_equal(jn_migrations_order(list, 3, why, sizeof why), JN_ERR_INVALID);
    assert_non_null(strstr(why, "0002_"));
}

static void test_order_rejects_bad_names(void **state)
{
    (void)state;
    jn_migration_t list[] = {{0, "0001_one.sql", "x"}, {0, "notes.sql", "x"}};
    char why[256] = "";
    assert_int_equal(jn_migrations_order(list, 2, why, sizeof why), JN_ERR_INVALID);
    assert_non_null(strstr(why, "notes.sql"));
}

static void test_builtin_set_is_ordered(void **state)
{
    (void)state;
    size_t n = 0;
    const jn_migration_t *list = jn_migrations_builtin(&n);
    assert_true(n >= 1);
    assert_int_equal(list[0].version, 1);
    for (size_t i = 1; i < n; i++)
        assert_true(list[i].version > list[i - 1].version);
    for (size_t i = 0; i < n; i++)
        assert_true(strlen(list[i].sql) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_order_sorts_by_number),
        cmocka_unit_test(test_order_rejects_duplicates),
        cmocka_unit_test(test_order_rejects_bad_names),
        cmocka_unit_test(test_builtin_set_is_ordered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
