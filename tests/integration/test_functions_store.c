/*
 * Integration: common/store/functions.c against a real PostgreSQL. The deployment hook
 * runs inside the transaction (its failure stores nothing), concurrent deployments of
 * one integration serialise instead of mixing their sets, one previous version is
 * kept, and no row can tie one environment's function to another's integration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "store/functions.h"
#include "store/migrate.h"
#include "store/pg.h"

static char db[96], url[512];
static long long env_a, env_b;

static long long sql_id(const char *sql)
{
    char *v = jn_test_sql_value(url, sql);
    assert_non_null(v);
    long long id = strtoll(v, NULL, 10);
    free(v);
    return id;
}

static int setup(void **state)
{
    (void)state;
    jn_test_unique("jt_functions", db, sizeof db);
    jn_test_create_database(db, url, sizeof url);
    PGconn *conn = jn_pg_connect(url, "test_functions_store");
    assert_non_null(conn);
    size_t n = 0;
    const jn_migration_t *list = jn_migrations_builtin(&n);
    assert_int_equal(jn_migrate_apply(conn, list, n, NULL), JN_OK);
    PQfinish(conn);
    env_a = sql_id("INSERT INTO environments (name, secret_key_hash) VALUES ('a', 'ha') "
                   "RETURNING id");
    env_b = sql_id("INSERT INTO environments (name, secret_key_hash) VALUES ('b', 'hb') "
                   "RETURNING id");
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO integrations (environment_id, unique_key, provider) VALUES "
             "(%lld, 'crm', 'hubspot'), (%lld, 'crm', 'hubspot') RETURNING id",
             env_a, env_b);
    free(jn_test_sql_value(url, sql));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_drop_database(db);
    return 0;
}

static PGconn *connect(void)
{
    PGconn *conn = jn_pg_connect(url, "test_functions_store");
    assert_non_null(conn);
    return conn;
}

/* n functions named prefix1..prefixN, each with a source that says version. */
typedef struct {
    jn_function_input_t fns[8];
    char names[8][16], sources[8][64];
    json_object *decl;
    size_t n;
} set_t;

static void make_set(set_t *s, const char *prefix, size_t n, int version)
{
    memset(s, 0, sizeof *s);
    s->decl = json_tokener_parse("{\"type\":\"action\",\"description\":\"x\"}");
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(s->names[i], sizeof s->names[i], "%s%zu", prefix, i + 1);
        snprintf(s->sources[i], sizeof s->sources[i], "return {} -- %s v%d", s->names[i], version);
        s->fns[i] = (jn_function_input_t){s->names[i], "action", s->sources[i],
                                          strlen(s->sources[i]), s->decl};
    }
}

static void free_set(set_t *s)
{
    json_object_put(s->decl);
}

static char *function_names(long long env)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM functions WHERE "
             "environment_id = %lld",
             env);
    return jn_test_sql_value(url, sql);
}

typedef struct {
    int calls;
    jn_err_t answer;
    size_t added, removed;
    long long integration_id;
} hook_t;

static jn_err_t hook(PGconn *conn, long long env_id, const jn_deployment_t *d, void *ud)
{
    hook_t *h = ud;
    (void)conn;
    assert_int_equal(env_id, env_a);
    h->calls++;
    h->added = json_object_array_length(d->added);
    h->removed = json_object_array_length(d->removed);
    h->integration_id = d->integration_id;
    return h->answer;
}

static void test_hook_runs_in_the_transaction(void **state)
{
    (void)state;
    PGconn *conn = connect();
    set_t s;
    make_set(&s, "h", 2, 1);
    jn_deployment_t d;
    hook_t h = {.answer = JN_ERR_CONFLICT};
    assert_int_equal(jn_functions_deploy(conn, env_a, "crm", s.fns, s.n, hook, &h, &d),
                     JN_ERR_CONFLICT);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.added, 2);
    char *names = function_names(env_a);
    assert_string_equal(names, ""); /* the hook said no: nothing stored */
    free(names);

    h.answer = JN_OK;
    assert_int_equal(jn_functions_deploy(conn, env_a, "crm", s.fns, s.n, hook, &h, &d), JN_OK);
    assert_true(h.integration_id > 0);
    assert_int_equal(h.integration_id, d.integration_id);
    jn_deployment_cleanup(&d);
    names = function_names(env_a);
    assert_string_equal(names, "h1,h2");
    free(names);

    /* A failing hook on a later deployment leaves the earlier one intact. */
    set_t s2;
    make_set(&s2, "h", 1, 2);
    h.answer = JN_ERR_DB;
    assert_int_equal(jn_functions_deploy(conn, env_a, "crm", s2.fns, s2.n, hook, &h, &d),
                     JN_ERR_DB);
    assert_int_equal(h.removed, 1);
    names = function_names(env_a);
    assert_string_equal(names, "h1,h2");
    free(names);
    jn_function_t f;
    assert_int_equal(jn_functions_get(conn, env_a, "crm", "h1", true, &f), JN_OK);
    assert_non_null(strstr(f.source, "v1"));
    assert_false(f.has_previous);
    jn_function_cleanup(&f);
    /* A delete goes through the hook too. */
    assert_int_equal(jn_functions_delete(conn, env_a, "crm", "h1", hook, &h), JN_ERR_DB);
    assert_int_equal(jn_functions_get(conn, env_a, "crm", "h1", false, &f), JN_OK);
    jn_function_cleanup(&f);
    free_set(&s);
    free_set(&s2);
    PQfinish(conn);
}

static void test_one_previous_version(void **state)
{
    (void)state;
    PGconn *conn = connect();
    jn_deployment_t d;
    for (int v = 1; v <= 3; v++) {
        set_t s;
        make_set(&s, "p", 1, v);
        assert_int_equal(jn_functions_deploy(conn, env_a, "crm", s.fns, s.n, NULL, NULL, &d),
                         JN_OK);
        jn_deployment_cleanup(&d);
        free_set(&s);
    }
    jn_function_t f;
    assert_int_equal(jn_functions_get(conn, env_a, "crm", "p1", true, &f), JN_OK);
    assert_non_null(strstr(f.source, "v3"));
    assert_true(f.has_previous);
    assert_non_null(strstr(f.previous_source, "v2"));
    char checksum[65];
    jn_function_checksum(f.previous_source, strlen(f.previous_source), checksum);
    assert_string_equal(f.previous_checksum, checksum);
    jn_function_cleanup(&f);
    PQfinish(conn);
}

typedef struct {
    const char *prefix;
    int failures;
} writer_t;

static void *deploy_many(void *ud)
{
    writer_t *w = ud;
    PGconn *conn = jn_pg_connect(url, "test_functions_store");
    for (int i = 0; i < 25; i++) {
        set_t s;
        make_set(&s, w->prefix, 5, i);
        jn_deployment_t d;
        if (jn_functions_deploy(conn, env_a, "crm", s.fns, s.n, NULL, NULL, &d) != JN_OK)
            w->failures++;
        else
            jn_deployment_cleanup(&d);
        free_set(&s);
    }
    PQfinish(conn);
    return NULL;
}

static void test_concurrent_deployments_do_not_mix(void **state)
{
    (void)state;
    writer_t a = {"x", 0}, b = {"y", 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, deploy_many, &a);
    pthread_create(&tb, NULL, deploy_many, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.failures, 0);
    assert_int_equal(b.failures, 0);
    /* The integration holds one whole set, the last one committed. */
    char *names = function_names(env_a);
    if (strcmp(names, "x1,x2,x3,x4,x5") != 0 && strcmp(names, "y1,y2,y3,y4,y5") != 0)
        fail_msg("mixed sets: %s", names);
    free(names);
}

static void test_environments_do_not_cross(void **state)
{
    (void)state;
    PGconn *conn = connect();
    set_t s;
    make_set(&s, "e", 1, 1);
    jn_deployment_t d;
    assert_int_equal(jn_functions_deploy(conn, env_a, "crm", s.fns, s.n, NULL, NULL, &d), JN_OK);
    long long integration_a = d.integration_id;
    jn_deployment_cleanup(&d);
    /* b has an integration with the same key: its functions are its own. */
    jn_function_t *list = NULL;
    size_t n = 99;
    assert_int_equal(jn_functions_list(conn, env_b, "crm", &list, &n), JN_OK);
    assert_int_equal(n, 0);
    free(list);
    jn_function_t f;
    assert_int_equal(jn_functions_get(conn, env_b, "crm", "e1", false, &f), JN_ERR_NOT_FOUND);
    assert_int_equal(jn_functions_delete(conn, env_b, "crm", "e1", NULL, NULL), JN_ERR_NOT_FOUND);
    assert_int_equal(jn_functions_get(conn, env_a, "crm", "e1", false, &f), JN_OK);
    jn_function_cleanup(&f);
    assert_int_equal(jn_functions_list(conn, env_b, "nope", &list, &n), JN_ERR_NOT_FOUND);
    /* The schema itself refuses a function of b on a's integration. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO functions (environment_id, integration_id, name, type, source, "
             "declaration, checksum) VALUES (%lld, %lld, 'sneaky', 'action', 'x', '{}', 'c')",
             env_b, integration_a);
    PGresult *r = PQexec(conn, sql);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23503");
    PQclear(r);
    free_set(&s);
    PQfinish(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook_runs_in_the_transaction),
        cmocka_unit_test(test_one_previous_version),
        cmocka_unit_test(test_concurrent_deployments_do_not_mix),
        cmocka_unit_test(test_environments_do_not_cross),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
