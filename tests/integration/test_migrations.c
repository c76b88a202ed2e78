/*
 * Integration: several processes applying the same migrations at once against a real
 * PostgreSQL apply each migration exactly once; an edited migration is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define APPLIERS 4

static void test_concurrent_appliers_apply_once(void **state)
{
    (void)state;
    char db[96], url[512];
    jn_test_unique("jt_migrate", db, sizeof db);
    jn_test_create_database(db, url, sizeof url);

    jn_test_process_t procs[APPLIERS];
    for (int i = 0; i < APPLIERS; i++) {
        const char *argv[] = {MIGRATE_PROBE_BIN, url, FIXTURES_DIR "/migrations", NULL};
        char name[128];
        snprintf(name, sizeof name, "%s_applier_%d", db, i);
        jn_test_spawn(&procs[i], argv, NULL, name);
    }
    int total_applied = 0;
    for (int i = 0; i < APPLIERS; i++) {
        assert_true(jn_test_process_wait(&procs[i], 60000));
        char *log = jn_test_read_log(&procs[i]);
        if (procs[i].exit_status != 0)
            fail_msg("applier %d failed:\n%s", i, log);
        const char *line = strstr(log, "applied ");
        while (line && !(line == log || line[-1] == '\n'))
            line = strstr(line + 1, "applied ");
        assert_non_null(line);
        total_applied += (int)strtol(line + 8, NULL, 10);
        free(log);
    }
    /* Three migrations, applied once in total across all processes. */
    assert_int_equal(total_applied, 3);

    char *count = jn_test_sql_value(url, "SELECT count(*) FROM junction_schema_migrations");
    assert_string_equal(count, "3");
    free(count);
    char *order = jn_test_sql_value(
        url, "SELECT string_agg(version::text, ',' ORDER BY at) FROM applied_log");
    assert_string_equal(order, "1,2,10");
    free(order);

    /* A later start applies nothing. */
    jn_test_process_t again;
    const char *argv[] = {MIGRATE_PROBE_BIN, url, FIXTURES_DIR "/migrations", NULL};
    char name[128];
    snprintf(name, sizeof name, "%s_again", db);
    jn_test_spawn(&again, argv, NULL, name);
    assert_true(jn_test_process_wait(&again, 30000));
    assert_int_equal(again.exit_status, 0);
    char *log = jn_test_read_log(&again);
    assert_non_null(strstr(log, "applied 0"));
    free(log);

    jn_test_drop_database(db);
}

static void test_edited_migration_is_refused(void **state)
{
    (void)state;
    char db[96], url[512];
    jn_test_unique("jt_migrate_edit", db, sizeof db);
    jn_test_create_database(db, url, sizeof url);

    jn_test_process_t p;
    const char *argv[] = {MIGRATE_PROBE_BIN, url, FIXTURES_DIR "/migrations", NULL};
    char name[128];
    snprintf(name, sizeof name, "%s_first", db);
    jn_test_spawn(&p, argv, NULL, name);
    assert_true(jn_test_process_wait(&p, 30000));
    assert_int_equal(p.exit_status, 0);

    const char *argv2[] = {MIGRATE_PROBE_BIN, url, FIXTURES_DIR "/migrations_edited", NULL};
    snprintf(name, sizeof name, "%s_edited", db);
    jn_test_spawn(&p, argv2, NULL, name);
    assert_true(jn_test_process_wait(&p, 30000));
    assert_int_equal(p.exit_status, 1);
    char *log = jn_test_read_log(&p);
    assert_non_null(strstr(log, "0002_slow_step.sql was changed after it was applied"));
    free(log);
    /* Nothing of the edited text ran. */
    char *n = jn_test_sql_value(url, "SELECT count(*) FROM applied_log WHERE version = 22");
    assert_string_equal(n, "0");
    free(n);
    jn_test_drop_database(db);
}

static void test_failing_migration_leaves_nothing(void **state)
{
    (void)state;
    char db[96], url[512];
    jn_test_unique("jt_migrate_fail", db, sizeof db);
    jn_test_create_database(db, url, sizeof url);
    /* Applying the "edited" set to a fresh database: 0001 works, 0002 works, 0010 too.
     * Then a broken set: a migration whose second statement fails must leave no trace. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s_dir",
             getenv("JN_TEST_LOG_DIR") ? getenv("JN_TEST_LOG_DIR") : ".", db);
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && printf 'CREATE TABLE half_done (id int);\\nSELECT "
             "no_such_function();\\n' > '%s/0001_broken.sql'",
             dir, dir);
    assert_int_equal(system(cmd), 0);
    jn_test_process_t p;
    const char *argv[] = {MIGRATE_PROBE_BIN, url, dir, NULL};
    char name[128];
    snprintf(name, sizeof name, "%s_broken", db);
    jn_test_spawn(&p, argv, NULL, name);
    assert_true(jn_test_process_wait(&p, 30000));
    assert_int_equal(p.exit_status, 1);
    char *n =
        jn_test_sql_value(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'half_done'");
    assert_string_equal(n, "0");
    free(n);
    n = jn_test_sql_value(url, "SELECT count(*) FROM junction_schema_migrations");
    assert_string_equal(n, "0");
    free(n);
    jn_test_drop_database(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_appliers_apply_once),
        cmocka_unit_test(test_edited_migration_is_refused),
        cmocka_unit_test(test_failing_migration_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
