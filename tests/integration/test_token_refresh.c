/*
 * Integration: OAuth token refresh under concurrency and failure, against a gateway, the
 * fake provider and PostgreSQL. Some tests drive the gateway over HTTP; others call the
 * refresh library directly on pools of their own (as a gateway, a worker or the scheduler
 * does), to control exactly when callers read and when the provider answers.
 *
 * What they prove: slow token requests hold no database connection, transaction or lock;
 * concurrent callers that saw the same credentials coalesce onto one token request, and a
 * later force refresh asks again however recent the last one; a waiter takes the holder's
 * outcome; an abandoned lease is taken over and its holder's late answer stores nothing;
 * a stored refresh is announced on the NOTIFY channel an event loop can wait on;
 * a dead grant is marked and never retried until the credentials are replaced; the sweep
 * skips locked rows and backs off from failing connections.
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
#include <time.h>

#include "core/crypto.h"
#include "fake_oauth.h"
#include "harness.h"
#include "providers/catalog.h"
#include "providers/token_refresh.h"
#include "store/pg.h"

static jn_test_gateway_t gw;
static jn_test_fake_t fake;
static jn_crypto_keyring_t ring;
static jn_catalog_t *catalog;
static jn_pg_pool_t *pool;

/* The gateway runs with a pool of two connections: a refresh that held one across the
 * provider call would starve it at once. */
static const char *const gateway_env[] = {"JUNCTION_PG_POOL_SIZE=2", NULL};

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "refresh_fake_provider");
    jn_test_gateway_start(&gw, GATEWAY_BIN, gateway_env);
    jn_test_fake_setup_gateway(&gw, &fake);
    jn_test_fake_allow(&gw);
    const char *b64 = jn_test_env("JUNCTION_ENCRYPTION_KEY");
    unsigned char key[32];
    size_t key_len = 0;
    assert_int_equal(jn_base64_decode(b64, strlen(b64), key, sizeof key, &key_len), JN_OK);
    assert_int_equal(key_len, 32);
    jn_crypto_keyring_init(&ring, key);
    char why[256];
    assert_int_equal(jn_catalog_load_builtin(&catalog, why, sizeof why), JN_OK);
    pool = jn_pg_pool_new(gw.db_url, "test_token_refresh", 8);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_pg_pool_free(pool);
    jn_catalog_free(catalog);
    jn_crypto_keyring_cleanup(&ring);
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    return 0;
}

static long long sql_number(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The first column of the first row of a query, as a number (-1 for no row or NULL). */
static long long sql_number(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char *v = jn_test_sql_value(gw.db_url, sql);
    long long n = v && *v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return n;
}

/* A new OAuth connection (through the dance): its connection_id and row id. */
static long long new_connection(char *cid, size_t cap)
{
    char callback[2048];
    jn_test_oauth_dance(&gw, &fake, NULL, cid, cap, callback, sizeof callback);
    return sql_number("SELECT id FROM connections WHERE connection_id = '%s'", cid);
}

static long long seq_of(long long row)
{
    return sql_number("SELECT refresh_seq FROM connections WHERE id = %lld", row);
}

typedef struct {
    long long row;
    long long seq;
    pthread_barrier_t *read_all; /* NULL: seq is given */
    jn_pg_pool_t *pool;
    jn_err_t err;
    char access[128];
    char why[512];
} caller_t;

/* A force refresh as GET /connections?force_refresh=true does it: read the row's seq,
 * then refresh unless newer credentials appear. */
static void *force_refresh(void *arg)
{
    caller_t *c = arg;
    jn_pg_pool_t *p = c->pool ? c->pool : pool;
    if (c->read_all) {
        jn_err_t err;
        PGconn *conn = jn_pg_acquire(p, 5000, &err);
        jn_connection_t row;
        assert_non_null(conn);
        assert_int_equal(jn_connections_get_by_id(conn, &ring, c->row, false, &row), JN_OK);
        jn_pg_release(p, conn);
        c->seq = row.refresh_seq;
        jn_connection_cleanup(&row);
        pthread_barrier_wait(c->read_all); /* every caller has read before anyone refreshes */
    }
    jn_connection_t out;
    c->err = jn_token_refresh(p, &ring, catalog, c->row, true, c->seq, &out, c->why, sizeof c->why);
    if (c->err == JN_OK) {
        json_object *v = NULL;
        json_object_object_get_ex(out.credentials, "access_token", &v);
        snprintf(c->access, sizeof c->access, "%s", v ? json_object_get_string(v) : "");
        jn_connection_cleanup(&out);
    }
    return NULL;
}

typedef struct {
    const char *grant;
    long want;
} count_wait_t;

static bool token_requests_reach(void *ud)
{
    count_wait_t *w = ud;
    return jn_test_fake_token_requests(&fake, w->grant) >= w->want;
}

/* Eight force refreshes of one connection against a token endpoint that takes 3 s, on a
 * pool of eight (a gateway's default): while the provider is asked, the pool still lends
 * connections at once and no session sits in a transaction. One token request serves all. */
static void test_slow_refreshes_do_not_hold_the_pool(void **state)
{
    (void)state;
    enum { N = 8 };
    char cid[64];
    long long row = new_connection(cid, sizeof cid);
    long long seq = seq_of(row);
    long before = jn_test_fake_token_requests(&fake, "refresh_token");
    jn_test_fake_config(&fake, "{\"token_latency_ms\":3000}");
    caller_t c[N];
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        c[i] = (caller_t){.row = row, .seq = seq};
        pthread_create(&threads[i], NULL, force_refresh, &c[i]);
    }
    count_wait_t asked = {"refresh_token", before + 1};
    assert_true(jn_test_wait_until(token_requests_reach, &asked, 5000));
    /* The provider is answering slowly now: measure the pool for 1.5 s of it. */
    long worst = 0, until = jn_test_now_ms() + 1500;
    int samples = 0;
    while (jn_test_now_ms() < until) {
        long t0 = jn_test_now_ms();
        jn_err_t err;
        PGconn *conn = jn_pg_acquire(pool, 2000, &err);
        assert_non_null(conn);
        assert_int_equal(jn_pg_exec(conn, "SELECT 1", 0, NULL, NULL), JN_OK);
        jn_pg_release(pool, conn);
        long took = jn_test_now_ms() - t0;
        worst = took > worst ? took : worst;
        assert_int_equal(sql_number("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                    "current_database() AND state LIKE 'idle in transaction%%'"),
                         0);
        samples++;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < N; i++)
        pthread_join(threads[i], NULL);
    jn_test_fake_config(&fake, "{\"token_latency_ms\":0}");
    if (worst > 300)
        fail_msg("a pool connection took %ld ms while refreshes waited on the provider", worst);
    assert_true(samples >= 5);
    for (int i = 0; i < N; i++) {
        if (c[i].err != JN_OK)
            fail_msg("caller %d: %s: %s", i, jn_err_str(c[i].err), c[i].why);
        assert_string_equal(c[i].access, c[0].access);
    }
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), before + 1);
}

typedef struct {
    char url[512];
    char key[160];
    long status;
    long took_ms;
} http_call_t;

static void *http_get(void *arg)
{
    http_call_t *h = arg;
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", h->key);
    const char *headers[] = {auth, NULL};
    long t0 = jn_test_now_ms();
    h->status = jn_test_http("GET", h->url, headers, NULL, 0, NULL);
    h->took_ms = jn_test_now_ms() - t0;
    return NULL;
}

typedef struct {
    char url[512];
    char key[160];
    char connection_id[64];
    long status;
} proxy_call_t;

static void *proxy_get(void *arg)
{
    proxy_call_t *p = arg;
    char auth[200], cid[120];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", p->key);
    snprintf(cid, sizeof cid, "Connection-Id: %s", p->connection_id);
    const char *headers[] = {auth, cid, "Provider-Config-Key: fake", NULL};
    p->status = jn_test_http("GET", p->url, headers, NULL, 0, NULL);
    return NULL;
}

/* The same over HTTP: proxy calls whose token the provider no longer accepts (401, then a
 * refresh) and force refreshes, all waiting on a 3 s token endpoint, on a gateway whose
 * pool holds two connections. Other API requests keep answering at once. */
static void test_gateway_answers_while_refreshes_wait(void **state)
{
    (void)state;
    enum { PROXIES = 3, FORCES = 3 };
    char cid[64];
    new_connection(cid, sizeof cid);
    long before = jn_test_fake_token_requests(&fake, "refresh_token");
    json_object *resp = NULL;
    assert_int_equal(
        jn_test_fake_call(&fake, "POST", "/_admin/revoke", "{\"access_tokens\":true}", &resp), 200);
    json_object_put(resp);
    jn_test_fake_config(&fake, "{\"token_latency_ms\":3000}");
    proxy_call_t p[PROXIES];
    http_call_t f[FORCES];
    pthread_t pt[PROXIES], ft[FORCES];
    for (int i = 0; i < PROXIES; i++) {
        memset(&p[i], 0, sizeof p[i]);
        snprintf(p[i].url, sizeof p[i].url, "%s/proxy/me", gw.url);
        snprintf(p[i].key, sizeof p[i].key, "%s", gw.dev_key);
        snprintf(p[i].connection_id, sizeof p[i].connection_id, "%s", cid);
        pthread_create(&pt[i], NULL, proxy_get, &p[i]);
    }
    for (int i = 0; i < FORCES; i++) {
        memset(&f[i], 0, sizeof f[i]);
        snprintf(f[i].url, sizeof f[i].url,
                 "%s/connections/%s?provider_config_key=fake&force_refresh=true", gw.url, cid);
        snprintf(f[i].key, sizeof f[i].key, "%s", gw.dev_key);
        pthread_create(&ft[i], NULL, http_get, &f[i]);
    }
    count_wait_t asked = {"refresh_token", before + 1};
    assert_true(jn_test_wait_until(token_requests_reach, &asked, 5000));
    long worst = 0, until = jn_test_now_ms() + 1500;
    while (jn_test_now_ms() < until) {
        http_call_t other = {0};
        snprintf(other.url, sizeof other.url, "%s/connections", gw.url);
        snprintf(other.key, sizeof other.key, "%s", gw.dev_key);
        http_get(&other);
        if (other.status != 200)
            fail_msg("GET /connections answered %ld while refreshes waited", other.status);
        worst = other.took_ms > worst ? other.took_ms : worst;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < PROXIES; i++)
        pthread_join(pt[i], NULL);
    for (int i = 0; i < FORCES; i++)
        pthread_join(ft[i], NULL);
    jn_test_fake_config(&fake, "{\"token_latency_ms\":0}");
    if (worst > 500)
        fail_msg("GET /connections took %ld ms while refreshes waited on the provider", worst);
    for (int i = 0; i < PROXIES; i++)
        assert_int_equal(p[i].status, 200); /* refreshed after the 401, then retried */
    for (int i = 0; i < FORCES; i++)
        assert_int_equal(f[i].status, 200);
}

/* Twenty force refreshes on two pools (two gateways' worth), all of which read the row
 * before any refresh committed: one token request, one new token for all. */
static void test_concurrent_force_refreshes_make_one_request(void **state)
{
    (void)state;
    enum { N = 20 };
    char cid[64];
    long long row = new_connection(cid, sizeof cid);
    jn_pg_pool_t *second = jn_pg_pool_new(gw.db_url, "test_token_refresh_2", 8);
    long before = jn_test_fake_token_requests(&fake, "refresh_token");
    jn_test_fake_config(&fake, "{\"token_latency_ms\":400}");
    pthread_barrier_t read_all;
    pthread_barrier_init(&read_all, NULL, N);
    caller_t c[N];
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        c[i] = (caller_t){.row = row, .read_all = &read_all, .pool = i % 2 ? second : pool};
        pthread_create(&threads[i], NULL, force_refresh, &c[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&read_all);
    jn_pg_pool_free(second);
    jn_test_fake_config(&fake, "{\"token_latency_ms\":0}");
    for (int i = 0; i < N; i++) {
        if (c[i].err != JN_OK)
            fail_msg("caller %d: %s: %s", i, jn_err_str(c[i].err), c[i].why);
        assert_string_equal(c[i].access, c[0].access);
    }
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), before + 1);
}

static char *access_token_of(const char *cid, bool force)
{
    char path[256];
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake%s", cid,
             force ? "&force_refresh=true" : "");
    json_object *resp = NULL;
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp, path);
    char *token = strdup(jn_test_json_str(resp, "credentials.access_token"));
    json_object_put(resp);
    return token;
}

/* No clock decides: a force refresh a second after another one asks the provider again. */
static void test_force_refresh_a_second_later_asks_again(void **state)
{
    (void)state;
    char cid[64];
    new_connection(cid, sizeof cid);
    long before = jn_test_fake_token_requests(&fake, "refresh_token");
    char *first = access_token_of(cid, true);
    struct timespec second = {1, 0};
    nanosleep(&second, NULL);
    char *again = access_token_of(cid, true);
    assert_string_not_equal(first, again);
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), before + 2);
    free(first);
    free(again);
}

/* A caller that waited on another's refresh takes its outcome: when the provider fails,
 * both callers fail on one token request, and the failure backs off the next attempt. */
static void test_waiter_takes_the_holders_failure(void **state)
{
    (void)state;
    char cid[64];
    long long row = new_connection(cid, sizeof cid);
    long long seq = seq_of(row);
    long before = jn_test_fake_token_requests(&fake, "refresh_token");
    jn_test_fake_config(&fake, "{\"token_latency_ms\":500,\"fail_token_requests\":1}");
    caller_t c[2] = {{.row = row, .seq = seq}, {.row = row, .seq = seq}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, force_refresh, &c[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    jn_test_fake_config(&fake, "{\"token_latency_ms\":0,\"fail_token_requests\":0}");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c[i].err, JN_ERR_UPSTREAM);
        assert_non_null(strstr(c[i].why, "server_error"));
    }
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), before + 1);
    /* Recorded with a backoff of 30 s, and not a dead grant. */
    assert_int_equal(sql_number("SELECT round(extract(epoch FROM refresh_retry_at - "
                                "refresh_error_at)) FROM connections WHERE id = %lld",
                                row),
                     30);
    assert_int_equal(
        sql_number("SELECT count(*) FROM connections WHERE id = %lld AND reauth_required_at "
                   "IS NULL",
                   row),
        1);
}

/* A holder that vanished leaves a lease that expires; the next caller waits it out and
 * refreshes. A holder whose lease was taken over stores nothing when it finally answers. */
static void test_abandoned_lease_is_taken_over_and_fenced(void **state)
{
    (void)state;
    char cid[64];
    long long row = new_connection(cid, sizeof cid);
    /* The lease of a holder that died a moment ago, with a second left. */
    sql_number("UPDATE connections SET refresh_lease = gen_random_uuid(), refresh_lease_until = "
               "clock_timestamp() + interval '1 second' WHERE id = %lld RETURNING 1",
               row);
    long before = jn_test_fake_token_requests(&fake, "refresh_token");
    caller_t c = {.row = row, .seq = seq_of(row)};
    long t0 = jn_test_now_ms();
    force_refresh(&c);
    long took = jn_test_now_ms() - t0;
    if (c.err != JN_OK)
        fail_msg("%s: %s", jn_err_str(c.err), c.why);
    assert_true(took >= 700 && took < 5000); /* it waited for the lease to run out */
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), before + 1);

    /* Step by step: we lease, someone takes the lease over, our answer comes too late. */
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(pool, 5000, &err);
    assert_non_null(conn);
    jn_refresh_lease_t lease;
    jn_refresh_lease_init(&lease);
    jn_connection_t current;
    jn_refresh_outcome_t outcome;
    assert_int_equal(jn_token_refresh_begin(conn, &ring, catalog, row, true, seq_of(row), &lease,
                                            &current, &outcome),
                     JN_OK);
    assert_int_equal(outcome, JN_REFRESH_LEASED);
    json_object *v = NULL;
    json_object_object_get_ex(current.credentials, "access_token", &v);
    char *stored = strdup(json_object_get_string(v));
    jn_connection_cleanup(&current);
    sql_number("UPDATE connections SET refresh_lease = gen_random_uuid() WHERE id = %lld "
               "RETURNING 1",
               row);
    jn_oauth_token_t token = {0};
    jn_oauth_error_t failure;
    assert_int_equal(jn_token_refresh_ask(&lease, &token, &failure), JN_OK);
    jn_refresh_result_t result;
    jn_connection_t after;
    assert_int_equal(jn_token_refresh_finish(conn, &ring, &lease, &token, NULL, &result, &after),
                     JN_OK);
    assert_int_equal(result, JN_REFRESH_SUPERSEDED);
    json_object_object_get_ex(after.credentials, "access_token", &v);
    assert_string_equal(json_object_get_string(v), stored); /* unchanged */
    jn_connection_cleanup(&after);
    jn_oauth_token_cleanup(&token);
    jn_refresh_lease_cleanup(&lease);
    jn_pg_release(pool, conn);
    free(stored);
}

typedef struct {
    PGconn *conn;
    char payload[32];
} listener_t;

static bool notified(void *ud)
{
    listener_t *l = ud;
    PQconsumeInput(l->conn);
    PGnotify *n = PQnotifies(l->conn);
    if (!n)
        return false;
    snprintf(l->payload, sizeof l->payload, "%s", n->extra);
    PQfreemem(n);
    return true;
}

/* What an event loop waits on instead of polling: a stored refresh NOTIFYs the channel
 * with the connection's row id. */
static void test_stored_refresh_notifies(void **state)
{
    (void)state;
    char cid[64];
    long long row = new_connection(cid, sizeof cid);
    listener_t l = {.conn = PQconnectdb(gw.db_url)};
    assert_int_equal(PQstatus(l.conn), CONNECTION_OK);
    PQclear(PQexec(l.conn, "LISTEN " JN_TOKEN_REFRESH_CHANNEL));
    caller_t c = {.row = row, .seq = seq_of(row)};
    force_refresh(&c);
    assert_int_equal(c.err, JN_OK);
    assert_true(jn_test_wait_until(notified, &l, 5000));
    char want[32];
    snprintf(want, sizeof want, "%lld", row);
    assert_string_equal(l.payload, want);
    PQfinish(l.conn);
}

static bool sweep_done;

static void *run_sweep(void *arg)
{
    int *counts = arg;
    assert_int_equal(jn_token_refresh_sweep(pool, &ring, catalog, 100, &counts[0], &counts[1]),
                     JN_OK);
    __atomic_store_n(&sweep_done, true, __ATOMIC_SEQ_CST);
    return NULL;
}

static bool sweep_finished(void *ud)
{
    (void)ud;
    return __atomic_load_n(&sweep_done, __ATOMIC_SEQ_CST);
}

/* Runs the sweep on a thread; fails the test when it takes longer than timeout_ms (after
 * calling unblock, so the thread can end). counts: refreshed, failed. */
static void sweep_within(int timeout_ms, int counts[2], void (*unblock)(void))
{
    __atomic_store_n(&sweep_done, false, __ATOMIC_SEQ_CST);
    pthread_t t;
    pthread_create(&t, NULL, run_sweep, counts);
    bool done = jn_test_wait_until(sweep_finished, NULL, timeout_ms);
    if (!done && unblock)
        unblock();
    pthread_join(t, NULL);
    if (!done)
        fail_msg("the sweep did not return within %d ms", timeout_ms);
}

/* A revoked grant is marked for re-authorisation at the first refusal; after that no
 * caller and no sweep asks the provider again, however long ago the failure was, until
 * the credentials are replaced. */
static void test_dead_grant_is_marked_and_never_retried(void **state)
{
    (void)state;
    char cid[64], path[256], body[1024];
    long long row = new_connection(cid, sizeof cid);
    json_object *resp = NULL;
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&refresh_token=true", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "connection");
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}",
             jn_test_json_str(resp, "credentials.refresh_token"));
    json_object_put(resp);
    assert_int_equal(jn_test_fake_call(&fake, "POST", "/_admin/revoke", body, NULL), 200);

    long before = jn_test_fake_token_requests(&fake, "refresh_token");
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&force_refresh=true", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 400, resp,
                          "dead grant");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "invalid_credentials");
    assert_non_null(strstr(jn_test_json_str(resp, "error.message"), "invalid_grant"));
    json_object_put(resp);
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), before + 1);
    assert_int_equal(sql_number("SELECT count(*) FROM connections WHERE id = %lld AND "
                                "reauth_required_at IS NOT NULL",
                                row),
                     1);
    /* The connection shows the error in Nango's shape. */
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "still readable");
    assert_string_equal(jn_test_json_str(resp, "errors.0.type"), "auth");
    assert_non_null(jn_test_json_str(resp, "errors.0.log_id"));
    json_object_put(resp);

    /* An hour later, about to expire: the sweep leaves it alone, and so does a forced
     * read and a read that would refresh an expiring token. */
    sql_number("UPDATE connections SET expires_at = now() + interval '2 minutes', "
               "refresh_error_at = now() - interval '1 hour', refresh_retry_at = NULL "
               "WHERE id = %lld RETURNING 1",
               row);
    int counts[2] = {0, 0};
    sweep_within(10000, counts, NULL);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&force_refresh=true", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 400, resp,
                          "still dead");
    assert_non_null(strstr(jn_test_json_str(resp, "error.message"), "re-authorisation"));
    json_object_put(resp);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 400, resp,
                          "expiring, dead");
    json_object_put(resp);
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), before + 1);

    /* New credentials (an import of a live grant) bring it back. */
    char other[64];
    new_connection(other, sizeof other);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&refresh_token=true",
             other);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "other");
    snprintf(body, sizeof body,
             "{\"provider_config_key\":\"fake\",\"connection_id\":\"%s\",\"credentials\":"
             "{\"type\":\"OAUTH2\",\"access_token\":\"%s\",\"refresh_token\":\"%s\"}}",
             cid, jn_test_json_str(resp, "credentials.access_token"),
             jn_test_json_str(resp, "credentials.refresh_token"));
    json_object_put(resp);
    jn_test_expect_status(jn_test_api(&gw, "POST", "/connections", gw.dev_key, body, &resp), 200,
                          resp, "re-import");
    json_object_put(resp);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&force_refresh=true", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "alive again");
    assert_int_equal(json_object_array_length(json_object_object_get(resp, "errors")), 0);
    json_object_put(resp);
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), before + 2);
}

static PGconn *locker;

static void release_lock(void)
{
    PQclear(PQexec(locker, "ROLLBACK"));
}

/* The sweep skips a row another transaction holds, and refreshes the others. */
static void test_sweep_skips_locked_rows(void **state)
{
    (void)state;
    char locked_cid[64], free_cid[64];
    long long locked = new_connection(locked_cid, sizeof locked_cid);
    long long open = new_connection(free_cid, sizeof free_cid);
    sql_number("UPDATE connections SET expires_at = now() + interval '2 minutes' WHERE id IN "
               "(%lld, %lld) RETURNING 1",
               locked, open);
    locker = PQconnectdb(gw.db_url);
    assert_int_equal(PQstatus(locker), CONNECTION_OK);
    char sql[128];
    snprintf(sql, sizeof sql, "BEGIN; SELECT 1 FROM connections WHERE id = %lld FOR UPDATE",
             locked);
    PGresult *r = PQexec(locker, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    long t0 = jn_test_now_ms();
    int counts[2] = {0, 0};
    sweep_within(3000, counts, release_lock);
    long took = jn_test_now_ms() - t0;
    release_lock();
    PQfinish(locker);
    assert_true(took < 2000);
    assert_true(counts[0] >= 1);
    assert_int_equal(sql_number("SELECT count(*) FROM connections WHERE id = %lld AND "
                                "expires_at > now() + interval '30 minutes'",
                                open),
                     1);
    assert_int_equal(sql_number("SELECT count(*) FROM connections WHERE id = %lld AND "
                                "expires_at < now() + interval '30 minutes'",
                                locked),
                     1);
}

/* Connections whose refresh keeps failing back off (30 s, then 60 s…) and leave the sweep
 * to the healthy ones, even when they expire first. */
static void test_sweep_backs_off_failing_connections(void **state)
{
    (void)state;
    json_object *resp = NULL;
    jn_test_expect_status(
        jn_test_api(&gw, "POST", "/integrations", gw.dev_key,
                    "{\"provider\":\"fake-oauth\",\"unique_key\":\"fake-bad\",\"credentials\":"
                    "{\"type\":\"OAUTH2\",\"client_id\":\"test-client\","
                    "\"client_secret\":\"wrong-secret\"}}",
                    &resp),
        200, resp, "integration with a wrong secret");
    json_object_put(resp);
    for (int i = 0; i < 3; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"provider_config_key\":\"fake-bad\",\"connection_id\":\"bad-%d\","
                 "\"credentials\":{\"type\":\"OAUTH2\",\"access_token\":\"a\","
                 "\"refresh_token\":\"r\",\"expires_at\":\"2000-01-0%dT00:00:00Z\"}}",
                 i, i + 1);
        jn_test_expect_status(jn_test_api(&gw, "POST", "/connections", gw.dev_key, body, &resp),
                              201, resp, "failing connection");
        json_object_put(resp);
    }
    char cid[64];
    long long healthy = new_connection(cid, sizeof cid);
    sql_number("UPDATE connections SET expires_at = now() + interval '2 minutes' WHERE id = %lld "
               "RETURNING 1",
               healthy);
    /* Every other connection of earlier tests is out of the way: expiring far ahead. */
    sql_number("UPDATE connections SET expires_at = now() + interval '1 day' WHERE id <> %lld "
               "AND connection_id NOT LIKE 'bad-%%' RETURNING 1",
               healthy);
    int counts[2] = {0, 0};
    assert_int_equal(jn_token_refresh_sweep(pool, &ring, catalog, 3, &counts[0], &counts[1]),
                     JN_OK);
    assert_int_equal(counts[1], 3); /* the three that expire first, all failing */
    assert_int_equal(counts[0], 0);
    assert_int_equal(jn_token_refresh_sweep(pool, &ring, catalog, 3, &counts[0], &counts[1]),
                     JN_OK);
    assert_int_equal(counts[0], 1); /* backing off, they leave room for the healthy one */
    assert_int_equal(counts[1], 0);
    /* A failure invalid_client on an authorization-code grant is the integration's, not
     * the grant's: not dead. The next attempt after the backoff fails again and waits
     * twice as long. */
    assert_int_equal(sql_number("SELECT count(*) FROM connections WHERE connection_id LIKE "
                                "'bad-%%' AND reauth_required_at IS NULL"),
                     3);
    sql_number("UPDATE connections SET refresh_retry_at = now() - interval '1 second' WHERE "
               "connection_id = 'bad-0' RETURNING 1");
    assert_int_equal(jn_token_refresh_sweep(pool, &ring, catalog, 3, &counts[0], &counts[1]),
                     JN_OK);
    assert_int_equal(counts[1], 1);
    assert_int_equal(
        sql_number("SELECT round(extract(epoch FROM refresh_retry_at - "
                   "refresh_error_at)) FROM connections WHERE connection_id = 'bad-0'"),
        60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_refreshes_do_not_hold_the_pool),
        cmocka_unit_test(test_gateway_answers_while_refreshes_wait),
        cmocka_unit_test(test_concurrent_force_refreshes_make_one_request),
        cmocka_unit_test(test_force_refresh_a_second_later_asks_again),
        cmocka_unit_test(test_waiter_takes_the_holders_failure),
        cmocka_unit_test(test_abandoned_lease_is_taken_over_and_fenced),
        cmocka_unit_test(test_stored_refresh_notifies),
        cmocka_unit_test(test_dead_grant_is_marked_and_never_retried),
        cmocka_unit_test(test_sweep_skips_locked_rows),
        cmocka_unit_test(test_sweep_backs_off_failing_connections),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
