/*
 * Integration: dev and prod exist after the first start; a generated key is printed once
 * and stored only hashed; a configured key becomes the key at every start (rotation);
 * one key cannot serve two environments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "harness.h"

typedef struct {
    jn_test_process_t proc;
    char url[64];
    char admin_url[64];
} gateway_t;

static char db[96], db_url[512];

static bool healthy(void *ud)
{
    char url[96];
    snprintf(url, sizeof url, "%s/health", ((gateway_t *)ud)->admin_url);
    return jn_test_http("GET", url, NULL, NULL, 0, NULL) == 200;
}

/* Starts a gateway on the test database with the given key variables ("" = unset); with
 * on_terminal, under script(1), so that its standard output is a terminal as on an
 * operator's console. */
static void start_with(gateway_t *g, const char *dev_key, const char *prod_key,
                       const char *log_name, bool on_terminal)
{
    static char e_db[600], e_port[64], e_admin[64], e_dev[160], e_prod[160], e_prefix[128];
    jn_test_gateway_ports(e_port, e_admin, g->url, g->admin_url);
    snprintf(e_db, sizeof e_db, "JUNCTION_DATABASE_URL=%s", db_url);
    snprintf(e_dev, sizeof e_dev, "JUNCTION_SECRET_KEY_DEV=%s", dev_key);
    snprintf(e_prod, sizeof e_prod, "JUNCTION_SECRET_KEY_PROD=%s", prod_key);
    snprintf(e_prefix, sizeof e_prefix, "JUNCTION_TOPIC_PREFIX=%s", db);
    const char *env[] = {e_db,
                         e_port,
                         e_admin,
                         e_dev,
                         e_prod,
                         e_prefix,
                         "JUNCTION_TOPIC_PARTITIONS=1",
                         "JUNCTION_BIND_ADDRESS=127.0.0.1",
                         NULL};
    const char *argv[] = {GATEWAY_BIN, NULL};
    /* "exec" makes the gateway script's only child whichever shell script(1) runs, so that
     * the signal below reaches the gateway itself and not a shell that dies of it. */
    const char *tty_argv[] = {"/usr/bin/script",   "-q",        "-e", "-c",
                              "exec " GATEWAY_BIN, "/dev/null", NULL};
    char name[160];
    snprintf(name, sizeof name, "%s_%s", db, log_name);
    jn_test_spawn(&g->proc, on_terminal ? tty_argv : argv, env, name);
}

static void start(gateway_t *g, const char *dev_key, const char *prod_key, const char *log_name)
{
    start_with(g, dev_key, prod_key, log_name, false);
}

/* The pid of the gateway that script(1) started (its only child), or 0. */
static pid_t terminal_child(const gateway_t *g)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)g->proc.pid, (int)g->proc.pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

static void start_healthy_with(gateway_t *g, const char *dev_key, const char *prod_key,
                               const char *log_name, bool on_terminal)
{
    start_with(g, dev_key, prod_key, log_name, on_terminal);
    if (!jn_test_wait_until(healthy, g, 60000)) {
        char *log = jn_test_read_log(&g->proc);
        jn_test_process_kill(&g->proc);
        fail_msg("gateway not healthy:\n%s", log);
    }
}

static void start_healthy(gateway_t *g, const char *dev_key, const char *prod_key,
                          const char *log_name)
{
    start_healthy_with(g, dev_key, prod_key, log_name, false);
}

static void stop(gateway_t *g)
{
    jn_test_signal(&g->proc, SIGTERM);
    assert_true(jn_test_process_wait(&g->proc, 20000));
    assert_int_equal(g->proc.exit_status, 0);
}

static long list_with(gateway_t *g, const char *key)
{
    char url[128], auth[200];
    snprintf(url, sizeof url, "%s/integrations", g->url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *headers[] = {auth, NULL};
    return jn_test_http("GET", url, headers, NULL, 0, NULL);
}

/* Finds "environment '<name>' created with secret key <key>" in the log. */
static bool printed_key(const char *log, const char *name, char *key, size_t cap)
{
    char marker[96];
    snprintf(marker, sizeof marker, "environment '%s' created with secret key ", name);
    const char *p = strstr(log, marker);
    if (!p)
        return false;
    p += strlen(marker);
    size_t n = strcspn(p, " \n");
    snprintf(key, cap, "%.*s", (int)n, p);
    return true;
}

static void test_generated_keys_then_rotation(void **state)
{
    (void)state;
    jn_test_unique("jt_env", db, sizeof db);
    jn_test_create_database(db, db_url, sizeof db_url);

    /* Generated keys are shown on a terminal, once. */
    gateway_t g;
    start_healthy_with(&g, "", "", "first", true);
    char *log = jn_test_read_log(&g.proc);
    char dev_key[80], prod_key[80];
    assert_true(printed_key(log, "dev", dev_key, sizeof dev_key));
    assert_true(printed_key(log, "prod", prod_key, sizeof prod_key));
    assert_int_equal(strlen(dev_key), 36);
    assert_string_not_equal(dev_key, prod_key);
    free(log);
    assert_int_equal(list_with(&g, dev_key), 200);
    assert_int_equal(list_with(&g, prod_key), 200);
    assert_int_equal(list_with(&g, "0123456789abcdef-wrong"), 401);

    /* Only hashes are stored. */
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM environments e WHERE e::text LIKE '%%%s%%'",
             dev_key);
    char *n = jn_test_sql_value(db_url, sql);
    assert_string_equal(n, "0");
    free(n);
    n = jn_test_sql_value(db_url, "SELECT string_agg(name, ',' ORDER BY name) FROM environments");
    assert_string_equal(n, "dev,prod");
    free(n);
    pid_t child = terminal_child(&g);
    assert_true(child > 0);
    kill(child, SIGTERM);
    assert_true(jn_test_process_wait(&g.proc, 20000));
    assert_int_equal(g.proc.exit_status, 0);

    /* A second start prints nothing and keeps the keys. */
    start_healthy(&g, "", "", "second");
    log = jn_test_read_log(&g.proc);
    assert_null(strstr(log, "created with secret key"));
    free(log);
    assert_int_equal(list_with(&g, dev_key), 200);
    stop(&g);

    /* A configured key replaces the generated one: rotation by redeploying. */
    start_healthy(&g, "rotated-dev-key-0001", "", "rotated");
    assert_int_equal(list_with(&g, "rotated-dev-key-0001"), 200);
    assert_int_equal(list_with(&g, dev_key), 401);
    assert_int_equal(list_with(&g, prod_key), 200);
    log = jn_test_read_log(&g.proc);
    assert_null(strstr(log, "rotated-dev-key-0001")); /* never logged */
    free(log);
    stop(&g);

    /* One key for two environments is refused at start. */
    start(&g, "same-key-for-both-0001", "same-key-for-both-0001", "same");
    assert_true(jn_test_process_wait(&g.proc, 30000));
    assert_int_not_equal(g.proc.exit_status, 0);
    log = jn_test_read_log(&g.proc);
    assert_non_null(
        strstr(log, "JUNCTION_SECRET_KEY_PROD is already the key of another environment"));
    free(log);

    jn_test_drop_database(db);
}

/* Where standard output is collected (a container's log), a generated key is never
 * written there: the operator is told to set the variable instead. */
static void test_generated_key_never_reaches_a_log(void **state)
{
    (void)state;
    jn_test_unique("jt_env", db, sizeof db);
    jn_test_create_database(db, db_url, sizeof db_url);
    gateway_t g;
    start_healthy(&g, "", "", "collected");
    char *log = jn_test_read_log(&g.proc);
    assert_null(strstr(log, "created with secret key"));
    assert_non_null(strstr(log, "set JUNCTION_SECRET_KEY_DEV and restart"));
    free(log);
    char *n = jn_test_sql_value(db_url, "SELECT count(*) FROM environments");
    assert_string_equal(n, "2");
    free(n);
    stop(&g);
    jn_test_drop_database(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_keys_then_rotation),
        cmocka_unit_test(test_generated_key_never_reaches_a_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
