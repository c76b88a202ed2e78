/*
 * Integration: the PostgreSQL connection pool against a real server. A release the pool
 * did not lend must not write past its array of idle connections.
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foreign_release_is_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
