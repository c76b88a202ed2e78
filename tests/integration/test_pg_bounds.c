/*
 * Integration: every wait on PostgreSQL is bounded. Against a throwaway cluster of its own
 * (tests/support/throwaway_pg.sh; the shared one is never touched), frozen with SIGSTOP:
 * a query on a pooled connection fails with JN_ERR_DB_UNAVAILABLE within the pool's
 * query deadline, borrowing and reconnecting fail within their timeouts, and once the
 * cluster is thawed (SIGCONT) the pool answers again without a restart. A slow statement
 * on a live server is cancelled by the server (statement_timeout) and its connection
 * survives. And the review's case end to end: a gateway on the frozen cluster answers
 * sixteen clients 503 within seconds, then 200 again once the cluster is thawed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "store/pg.h"

#define DEADLINE_MS 1500
#define STATEMENT_MS 800
#define CONNECT_S 2
#define SLACK_MS 1000

static char dir[600];
static char url[128];
static pid_t postmaster;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/pg_bounds_%ld", WORK_DIR, (long)getpid());
    int port = jn_test_free_port();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "tests/support/throwaway_pg.sh start '%s' %d", dir, port);
    if (jn_test_run(cmd) != 0)
        fail_msg("could not start the throwaway cluster in %s", dir);
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%d/postgres", port);
    char pid_file[700];
    snprintf(pid_file, sizeof pid_file, "%s/data/postmaster.pid", dir);
    FILE *f = fopen(pid_file, "r");
    assert_non_null(f);
    long pid = 0;
    assert_int_equal(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    postmaster = (pid_t)pid;
    return 0;
}

static void signal_cluster(int sig);

static jn_test_gateway_t gw; /* the gateway test's, stopped here if that test failed */

static int teardown(void **state)
{
    (void)state;
    signal_cluster(SIGCONT); /* a failed test may have left it frozen */
    if (gw.proc.pid > 0)
        jn_test_process_kill(&gw.proc);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "tests/support/throwaway_pg.sh stop '%s'", dir);
    jn_test_run(cmd);
    return 0;
}

/* Sends sig to the postmaster and every process it started (backends, checkpointer…),
 * read from /proc: the whole cluster stops or resumes at once. */
static void signal_cluster(int sig)
{
    DIR *proc = opendir("/proc");
    assert_non_null(proc);
    struct dirent *e;
    while ((e = readdir(proc))) {
        char *end = NULL;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], stat[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        const char *after = strrchr(stat, ')'); /* the command may hold spaces */
        long ppid = 0;
        if (after && sscanf(after + 1, " %*c %ld", &ppid) == 1 && ppid == postmaster)
            kill((pid_t)pid, sig);
    }
    closedir(proc);
    kill(postmaster, sig);
}

static jn_pg_pool_t *new_pool(int size)
{
    jn_pg_options_t opts = {.size = size,
                            .connect_timeout_s = CONNECT_S,
                            .statement_timeout_ms = STATEMENT_MS,
                            .lock_timeout_ms = STATEMENT_MS,
                            .query_deadline_ms = DEADLINE_MS};
    return jn_pg_pool_new_with(url, "pg_bounds", &opts);
}

static void test_statement_timeout_keeps_the_connection(void **state)
{
    (void)state;
    jn_pg_pool_t *pool = new_pool(1);
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(pool, 5000, &err);
    assert_non_null(conn);
    long t0 = jn_test_now_ms();
    /* The server cancels it at statement_timeout, before the client deadline. */
    assert_int_equal(jn_pg_exec(conn, "SELECT pg_sleep(5)", 0, NULL, NULL), JN_ERR_TIMEOUT);
    long took = jn_test_now_ms() - t0;
    assert_true(took >= STATEMENT_MS - 100 && took < DEADLINE_MS);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    assert_int_equal(jn_pg_exec(conn, "SELECT 1", 0, NULL, NULL), JN_OK);
    jn_pg_release(pool, conn);
    jn_pg_pool_free(pool);
}

typedef struct {
    jn_pg_pool_t *pool;
    jn_err_t err;
    long took_ms;
} pinger_t;

static void *ping_once(void *arg)
{
    pinger_t *p = arg;
    long t0 = jn_test_now_ms();
    p->err = jn_pg_ping(p->pool);
    p->took_ms = jn_test_now_ms() - t0;
    return NULL;
}

static bool pool_answers(void *ud)
{
    return jn_pg_ping(ud) == JN_OK;
}

static void test_frozen_server_fails_fast_and_the_pool_recovers(void **state)
{
    (void)state;
    enum { POOL = 4, CLIENTS = 16 };
    jn_pg_pool_t *pool = new_pool(POOL);
    jn_err_t err;
    PGconn *a = jn_pg_acquire(pool, 5000, &err);
    PGconn *b = jn_pg_acquire(pool, 5000, &err);
    PGconn *c = jn_pg_acquire(pool, 5000, &err);
    PGconn *d = jn_pg_acquire(pool, 5000, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    assert_int_equal(jn_pg_exec(a, "SELECT 1", 0, NULL, NULL), JN_OK);
    assert_int_equal(jn_pg_exec(b, "SELECT 1", 0, NULL, NULL), JN_OK);
    assert_int_equal(jn_pg_exec_script(c, "CREATE TEMP TABLE t (v text)"), JN_OK);
    jn_pg_release(pool, b); /* idle in the pool, healthy as far as libpq knows */

    signal_cluster(SIGSTOP);
    /* A query on an open connection: the server accepts the bytes and answers nothing. */
    long t0 = jn_test_now_ms();
    err = jn_pg_exec(a, "SELECT 1", 0, NULL, NULL);
    long took = jn_test_now_ms() - t0;
    assert_int_equal(err, JN_ERR_DB_UNAVAILABLE);
    if (took < DEADLINE_MS - 100 || took > DEADLINE_MS + SLACK_MS)
        fail_msg("the query failed after %ld ms; the deadline is %d ms", took, DEADLINE_MS);
    assert_int_not_equal(PQstatus(a), CONNECTION_OK); /* dropped */
    jn_pg_release(pool, a);                           /* and discarded */
    /* A COPY, and a query sent now and collected later, keep the same deadline. */
    t0 = jn_test_now_ms();
    assert_int_equal(jn_pg_copy_in(c, "COPY t FROM STDIN", "x\n", 2, NULL), JN_ERR_DB_UNAVAILABLE);
    took = jn_test_now_ms() - t0;
    if (took < DEADLINE_MS - 100 || took > DEADLINE_MS + SLACK_MS)
        fail_msg("the COPY failed after %ld ms; the deadline is %d ms", took, DEADLINE_MS);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    jn_pg_release(pool, c);
    assert_int_equal(jn_pg_send(d, "SELECT 1", 0, NULL), JN_OK);
    t0 = jn_test_now_ms();
    assert_int_equal(jn_pg_receive(d, "SELECT 1", NULL), JN_ERR_DB_UNAVAILABLE);
    took = jn_test_now_ms() - t0;
    if (took < DEADLINE_MS - 100 || took > DEADLINE_MS + SLACK_MS)
        fail_msg("the answer was given up after %ld ms; the deadline is %d ms", took, DEADLINE_MS);
    assert_int_not_equal(PQstatus(d), CONNECTION_OK);
    jn_pg_release(pool, d);
    /* For a moment the pool now fails borrowers at once instead of letting each wait. */
    t0 = jn_test_now_ms();
    assert_null(jn_pg_acquire(pool, 5000, &err));
    assert_int_equal(err, JN_ERR_DB_UNAVAILABLE);
    assert_true(jn_test_now_ms() - t0 < 100);

    /* Sixteen clients on a pool of four: each fails within a bound (waiting for a free
     * connection, connecting, or the query deadline), none hangs. */
    pinger_t p[CLIENTS];
    pthread_t threads[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        p[i] = (pinger_t){.pool = pool};
        pthread_create(&threads[i], NULL, ping_once, &p[i]);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(threads[i], NULL);
    /* jn_pg_ping waits up to 2 s for a free connection, then queries (DEADLINE_MS) or
     * connects (CONNECT_S). */
    long bound = 2000 + CONNECT_S * 1000 + SLACK_MS;
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_not_equal(p[i].err, JN_OK);
        if (p[i].took_ms > bound)
            fail_msg("client %d waited %ld ms (bound %ld)", i, p[i].took_ms, bound);
    }

    signal_cluster(SIGCONT);
    assert_true(jn_test_wait_until(pool_answers, pool, 15000));
    /* Every connection handed out now works. */
    PGconn *held[POOL];
    for (int i = 0; i < POOL; i++) {
        held[i] = jn_pg_acquire(pool, 5000, &err);
        assert_non_null(held[i]);
        assert_int_equal(jn_pg_exec(held[i], "SELECT 1", 0, NULL, NULL), JN_OK);
    }
    for (int i = 0; i < POOL; i++)
        jn_pg_release(pool, held[i]);
    jn_pg_pool_free(pool);
}

typedef struct {
    const jn_test_gateway_t *gw;
    long status;
    long took_ms;
} client_t;

static void *list_connections(void *arg)
{
    client_t *c = arg;
    long t0 = jn_test_now_ms();
    c->status = jn_test_api(c->gw, "GET", "/connections", c->gw->dev_key, NULL, NULL);
    c->took_ms = jn_test_now_ms() - t0;
    return NULL;
}

static bool gateway_answers(void *ud)
{
    return jn_test_api(ud, "GET", "/connections", ((jn_test_gateway_t *)ud)->dev_key, NULL, NULL) ==
           200;
}

static void test_gateway_answers_503_while_frozen(void **state)
{
    (void)state;
    enum { CLIENTS = 16 };
    static char db_env[200];
    snprintf(db_env, sizeof db_env, "JUNCTION_DATABASE_URL=%s", url);
    const char *env[] = {db_env, "JUNCTION_PG_STATEMENT_TIMEOUT_MS=1000",
                         "JUNCTION_PG_QUERY_DEADLINE_MS=1500", "JUNCTION_PG_CONNECT_TIMEOUT_S=2",
                         NULL};
    jn_test_gateway_start(&gw, GATEWAY_BIN, env); /* its database is the throwaway cluster */
    assert_true(gateway_answers(&gw));

    signal_cluster(SIGSTOP);
    client_t c[CLIENTS];
    pthread_t threads[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (client_t){.gw = &gw};
        pthread_create(&threads[i], NULL, list_connections, &c[i]);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(threads[i], NULL);
    signal_cluster(SIGCONT);
    /* The first to find PostgreSQL silent waits out a deadline (or a connect timeout);
     * those after it are failed at once. A server thread may hold several of the clients
     * in turn: a few seconds in all. */
    for (int i = 0; i < CLIENTS; i++) {
        if (c[i].status != 503 || c[i].took_ms > 6000)
            fail_msg("client %d: HTTP %ld after %ld ms (wanted 503 within 6 s)", i, c[i].status,
                     c[i].took_ms);
    }
    assert_true(jn_test_wait_until(gateway_answers, &gw, 15000));
    jn_test_gateway_stop(&gw);
    gw.proc.pid = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_timeout_keeps_the_connection),
        cmocka_unit_test(test_frozen_server_fails_fast_and_the_pool_recovers),
        cmocka_unit_test(test_gateway_answers_503_while_frozen),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
