/*
 * Integration: the PostgreSQL connection pool against a real server. A release the pool
 * did not lend must not write past its array of idle connections. COPY FROM STDIN and a
 * query sent now and collected later answer as jn_pg_exec does, errors included, and leave
 * the connection usable.
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
#include "store/pg.h"

static void test_foreign_release_is_ignored(void **state)
{
    (void)state;
    char db[96], url[512];
    jn_test_unique("jt_pool", db, sizeof db);
    jn_test_create_database(db, url, sizeof url);
    jn_pg_pool_t *pool = jn_pg_pool_new(url, "jt_pool", 1);
    jn_err_t err;
    PGconn *lent = jn_pg_acquire(pool, 5000, &err);
    assert_int_equal(err, JN_OK);
    assert_non_null(lent);
    jn_pg_release(pool, lent); /* idle is now full */
    /* A connection the pool never lent: before, it was written one past idle's end. */
    PGconn *foreign = jn_pg_connect(url, "jt_pool_foreign");
    assert_non_null(foreign);
    jn_pg_release(pool, foreign);
    /* The pool still lends its own connection, and that one works. */
    PGconn *again = jn_pg_acquire(pool, 5000, &err);
    assert_int_equal(err, JN_OK);
    assert_ptr_equal(again, lent);
    PGresult *r = PQexec(again, "SELECT 1");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    jn_pg_release(pool, again);
    /* The foreign connection was left to its owner, still usable. */
    r = PQexec(foreign, "SELECT 2");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(foreign);
    jn_pg_pool_free(pool);
    jn_test_drop_database(db);
}

static void test_copy_and_queries_collected_later(void **state)
{
    (void)state;
    char db[96], url[512];
    jn_test_unique("jt_pool", db, sizeof db);
    jn_test_create_database(db, url, sizeof url);
    jn_pg_pool_t *pool = jn_pg_pool_new(url, "jt_pool", 1);
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(pool, 5000, &err);
    assert_non_null(conn);
    assert_int_equal(jn_pg_exec_script(conn, "CREATE TABLE t (n int PRIMARY KEY, v text)"), JN_OK);
    long long rows = 0;
    assert_int_equal(jn_pg_copy_in(conn, "COPY t FROM STDIN", "1\tone\n2\ttwo\n",
                                   strlen("1\tone\n2\ttwo\n"), &rows),
                     JN_OK);
    assert_int_equal(rows, 2);
    /* Bad input, a broken key: refused, nothing copied, the connection still works. */
    assert_int_not_equal(
        jn_pg_copy_in(conn, "COPY t FROM STDIN", "3\tx\nq\ty\n", strlen("3\tx\nq\ty\n"), &rows),
        JN_OK);
    assert_int_equal(
        jn_pg_copy_in(conn, "COPY t FROM STDIN", "1\tagain\n", strlen("1\tagain\n"), NULL),
        JN_ERR_CONFLICT);
    assert_int_not_equal(jn_pg_copy_in(conn, "COPY nope FROM STDIN", "1\n", strlen("1\n"), NULL),
                         JN_OK);
    /* Sent, then collected. */
    assert_int_equal(jn_pg_copy_send(conn, "COPY t FROM STDIN", "4\tfour\n", strlen("4\tfour\n")),
                     JN_OK);
    assert_int_equal(jn_pg_receive(conn, "COPY t", NULL), JN_OK);
    const char *params[] = {"1"};
    assert_int_equal(jn_pg_send(conn, "SELECT count(*) FROM t WHERE n > $1", 1, params), JN_OK);
    PGresult *r = NULL;
    assert_int_equal(jn_pg_receive(conn, "SELECT count(*)", &r), JN_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "2"); /* 2 and 4 */
    PQclear(r);
    assert_int_equal(jn_pg_send(conn, "SELECT 1 / 0", 0, NULL), JN_OK);
    assert_int_not_equal(jn_pg_receive(conn, "SELECT 1 / 0", NULL), JN_OK);
    assert_int_equal(jn_pg_exec(conn, "SELECT count(*) FROM t", 0, NULL, &r), JN_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "3");
    PQclear(r);
    jn_pg_release(pool, conn);
    jn_pg_pool_free(pool);
    jn_test_drop_database(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foreign_release_is_ignored),
        cmocka_unit_test(test_copy_and_queries_collected_later),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
