/*
 * Integration: webhooks to the app, end to end with real processes - a gateway, a worker
 * and the scheduler on one database and Kafka - and a receiver in this process.
 *
 * Covers the settings API (Nango's routes and Junction's, refusals that change nothing, the
 * signing key returned by a rotation only and never logged), a delivery retried through
 * two 500s and accepted once with signatures that verify (a plain HMAC here, and
 * @nangohq/node's own verification when node and the package are installed), a receiver
 * down for good (dead letter with its last error, replay once it is up, another
 * environment unable to see or replay it), 4xx not retried, Retry-After honoured, the
 * egress policy refusing loopback and metadata addresses, switches off enqueueing nothing,
 * a connection's override replacing both URLs, the auth webhooks of a connect flow and of a
 * failed token refresh, the async_action webhook of an X-Async action, sync and forward
 * payloads, and hostile receivers and tenants (slow answers, giant answers, redirects to
 * internal hosts, huge payloads, replay storms).
 *
 * Until the scheduler resends lost and retried job messages, a thread here does what its
 * resend does (store/jobs.h jn_jobs_due_for_send); both may run at once without harm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/crypto.h"
#include "fake_oauth.h"
#include "harness.h"
#include "net/job_message.h"
#include "net/kafka.h"
#include "receiver.h"
#include "store/jobs.h"
#include "store/pg.h"
#include "store/webhooks.h"

#define API_KEY "k-webhooks-1"

static jn_test_fake_t fake;
static jn_test_gateway_t gw;
static jn_test_process_t worker, scheduler;
static char worker_admin[64], scheduler_admin[64];
static jn_test_receiver_t *rx;
static pthread_t pump;
static atomic_bool pump_stop;

static const char *const service_env[] = {"JUNCTION_JOB_LEASE_SECONDS=5",
                                          "JUNCTION_WORKER_DRAIN_SECONDS=2",
                                          "JUNCTION_DELIVERY_BACKOFF_SECONDS=1",
                                          "JUNCTION_DELIVERY_TIMEOUT_MS=3000",
                                          "JUNCTION_JOB_RESEND_SECONDS=2",
                                          "JUNCTION_LOG_LEVEL=info",
                                          NULL};

/* ---- the stand-in for the scheduler's resend ---- */

static void *pump_main(void *arg)
{
    (void)arg;
    setenv("JUNCTION_TOPIC_PREFIX", gw.db, 1);
    jn_config_t cfg;
    jn_config_load_or_exit(&cfg, JN_PROGRAM_TOOL);
    jn_kafka_producer_t *producer = jn_kafka_producer_new(&cfg, "test-webhooks-resend");
    PGconn *conn = jn_pg_connect(gw.db_url, "test-webhooks-resend");
    while (!atomic_load(&pump_stop) && producer && conn) {
        jn_job_ref_t *jobs = NULL;
        size_t n = 0;
        if (jn_jobs_due_for_send(conn, 100, 2, &jobs, &n) == JN_OK)
            jn_job_message_send_all(producer, cfg.topic_prefix, jobs, n);
        free(jobs);
        usleep(200 * 1000);
    }
    if (conn)
        PQfinish(conn);
    jn_kafka_producer_free(producer, 2000);
    return NULL;
}

/* ---- helpers ---- */

static json_object *api(const char *key, const char *method, const char *path, const char *body,
                        long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, method, path, key, body, &resp);
    if (st != want)
        fail_msg("%s %s: %ld, wanted %ld: %s", method, path, st, want,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
    return resp;
}

static void api_ok(const char *key, const char *method, const char *path, const char *body,
                   long want)
{
    json_object_put(api(key, method, path, body, want));
}

static void settings(const char *key, const char *json)
{
    api_ok(key, "PATCH", "/junction/webhooks/settings", json, 200);
}

static long long sql_number(const char *sql)
{
    char *v = jn_test_sql_value(gw.db_url, sql);
    long long n = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return n;
}

static char *rotate(const char *key)
{
    json_object *resp = api(key, "POST", "/environment/webhook-signing-key/rotate", NULL, 200);
    const char *k = jn_test_json_str(resp, "data.webhook_signing_key");
    assert_non_null(k);
    assert_int_equal(strlen(k), 64);
    char *out = strdup(k);
    json_object_put(resp);
    return out;
}

static int next_connection = 0;

/* Imports a connection of integration "notes" (an auth webhook, operation creation); extra
 * JSON fields may be added (",\"webhook_url_override\":…"). Its id into cid. */
static void import_connection(const char *key, const char *extra, char *cid, size_t cap)
{
    snprintf(cid, cap, "wh-%d", ++next_connection);
    char body[1024];
    snprintf(body, sizeof body,
             "{\"provider_config_key\":\"notes\",\"connection_id\":\"%s\","
             "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"" API_KEY "\"}%s}",
             cid, extra ? extra : "");
    api_ok(key, "POST", "/connections", body, 201);
}

typedef struct {
    size_t n;
} count_arg_t;

static bool received_at_least(void *ud)
{
    return jn_test_receiver_count(rx) >= ((count_arg_t *)ud)->n;
}

static void wait_received(size_t n, int timeout_ms)
{
    count_arg_t a = {n};
    if (!jn_test_wait_until(received_at_least, &a, timeout_ms))
        fail_msg("the receiver got %zu request(s), wanted %zu", jn_test_receiver_count(rx), n);
}

static bool deliveries_settled(void *ud)
{
    (void)ud;
    return sql_number("SELECT count(*) FROM jobs WHERE kind = 'delivery' AND "
                      "state IN ('queued', 'running')") == 0;
}

/* Every delivery has its outcome. */
static void wait_settled(int timeout_ms)
{
    if (!jn_test_wait_until(deliveries_settled, NULL, timeout_ms))
        fail_msg("deliveries still pending after %d ms", timeout_ms);
}

static json_object *received_json(size_t i, jn_test_received_t *q)
{
    assert_true(jn_test_receiver_get(rx, i, q));
    json_object *o = json_tokener_parse(q->body);
    if (!o)
        fail_msg("request %zu is not JSON: %s", i, q->body);
    return o;
}

/* The delivery state of the connection's auth webhook (as jobs.state). */
static char *auth_state(const char *cid)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT j.state FROM jobs j JOIN deliveries d ON d.job_id = j.id "
             "WHERE d.connection_id = '%s' AND d.type = 'auth' ORDER BY d.created_at LIMIT 1",
             cid);
    return jn_test_sql_value(gw.db_url, sql);
}

typedef struct {
    const char *cid;
    const char *state;
} state_arg_t;

static bool auth_state_is(void *ud)
{
    state_arg_t *a = ud;
    char *s = auth_state(a->cid);
    bool ok = s && strcmp(s, a->state) == 0;
    free(s);
    return ok;
}

static void wait_auth_state(const char *cid, const char *state, int timeout_ms)
{
    state_arg_t a = {cid, state};
    if (!jn_test_wait_until(auth_state_is, &a, timeout_ms)) {
        char *s = auth_state(cid);
        fail_msg("the auth delivery of %s is %s, wanted %s", cid, s ? s : "(none)", state);
    }
}

/* The dead letters of key's environment (parsed GET answer). */
static json_object *dead_letters(const char *key, const char *query)
{
    char path[256];
    snprintf(path, sizeof path, "/junction/webhooks/dead-letters%s", query ? query : "");
    return api(key, "GET", path, NULL, 200);
}

/* The dead letter about connection cid in list, or NULL. */
static json_object *dead_letter_of(json_object *list, const char *cid)
{
    json_object *data = NULL;
    json_object_object_get_ex(list, "data", &data);
    for (size_t i = 0; data && i < json_object_array_length(data); i++) {
        json_object *d = json_object_array_get_idx(data, i);
        const char *c = jn_test_json_str(d, "connection_id");
        if (c && strcmp(c, cid) == 0)
            return d;
    }
    return NULL;
}

static void hex_hmac(const char *key, const char *body, size_t len, char out[65])
{
    unsigned char mac[32];
    jn_crypto_hmac_sha256(key, strlen(key), body, len, mac);
    jn_hex_encode(mac, sizeof mac, out);
}

/* ---- set-up ---- */

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "webhooks_fake_provider");
    jn_test_gateway_start(&gw, GATEWAY_BIN, service_env);
    rx = jn_test_receiver_start(0);
    jn_test_fake_api_key_connection(&gw, gw.dev_key, &fake, "fake-key", "notes", "c1", API_KEY);
    jn_test_fake_allow(&gw);
    /* An OAuth integration for the refresh-failure webhook. */
    jn_test_fake_setup_gateway(&gw, &fake);
    /* The action for the async_action webhook. */
    char path[512];
    snprintf(path, sizeof path, "%s/fake-provider/post-note.lua", EXAMPLES_DIR);
    char *note = jn_test_read_file(path);
    json_object *f = json_object_new_object();
    json_object_object_add(f, "name", json_object_new_string("post-note"));
    json_object_object_add(f, "source", json_object_new_string(note));
    free(note);
    json_object *fns = json_object_new_array();
    json_object_array_add(fns, f);
    json_object *body = json_object_new_object();
    json_object_object_add(body, "functions", fns);
    api_ok(gw.dev_key, "PUT", "/junction/integrations/notes/functions",
           json_object_to_json_string(body), 200);
    json_object_put(body);
    jn_test_service_start(&worker, &gw, WORKER_BIN, "webhooks_worker", service_env, worker_admin);
    jn_test_service_start(&scheduler, &gw, SCHEDULER_BIN, "webhooks_scheduler", service_env,
                          scheduler_admin);
    atomic_store(&pump_stop, false);
    pthread_create(&pump, NULL, pump_main, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    atomic_store(&pump_stop, true);
    pthread_join(pump, NULL);
    bool worker_clean = jn_test_service_stop(&worker, 30000);
    bool scheduler_clean = jn_test_service_stop(&scheduler, 20000);
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    jn_test_receiver_stop(rx);
    assert_true(worker_clean);
    assert_true(scheduler_clean);
    return 0;
}

/* Before each test: the receiver forgets, the settings point at it with 3 attempts. */
static int fresh(void **state)
{
    (void)state;
    wait_settled(30000);
    jn_test_receiver_reset(rx);
    char url[128], body[512];
    jn_test_receiver_url(rx, "/hooks", url, sizeof url);
    snprintf(body, sizeof body,
             "{\"primary_url\":\"%s\",\"secondary_url\":\"\",\"delivery_attempts\":3,"
             "\"on_auth_creation\":true,\"on_async_action_completion\":true,"
             "\"on_sync_completion_always\":false,\"on_sync_error\":true}",
             url);
    settings(gw.dev_key, body);
    return 0;
}

/* ---- tests ---- */

static void test_settings_api(void **state)
{
    (void)state;
    /* Nango's dashboard route, in its shape. */
    json_object *resp = api(gw.dev_key, "PATCH", "/api/v1/environments/webhook?env=dev",
                            "{\"primary_url\":\"https://example.com/one\",\"secondary_url\":"
                            "\"https://example.com/two\",\"on_sync_error\":false,"
                            "\"on_connection_deletion\":true}",
                            200);
    assert_true(json_object_get_boolean(json_object_object_get(resp, "success")));
    json_object_put(resp);
    resp = api(gw.dev_key, "GET", "/api/v1/environments/current?env=dev", NULL, 200);
    assert_string_equal(
        jn_test_json_str(resp, "environmentAndAccount.webhook_settings.primary_url"),
        "https://example.com/one");
    assert_string_equal(
        jn_test_json_str(resp, "environmentAndAccount.webhook_settings.secondary_url"),
        "https://example.com/two");
    json_object *ea = json_object_object_get(resp, "environmentAndAccount");
    json_object *ws = json_object_object_get(ea, "webhook_settings");
    assert_false(json_object_get_boolean(json_object_object_get(ws, "on_sync_error")));
    assert_true(json_object_get_boolean(json_object_object_get(ws, "on_auth_creation")));
    assert_true(
        json_object_is_type(json_object_object_get(ea, "webhook_signing_key"), json_type_null));
    json_object_put(resp);

    /* Refusals change nothing. */
    const char *bad[] = {
        "{\"primary_url\":\"ftp://example.com/\"}",
        "{\"primary_url\":\"https://user:pw@example.com/\"}",
        "{\"primary_url\":\"https://example.com/a b\"}",
        "{\"primary_url\":5}",
        "{\"on_auth_creation\":\"yes\"}",
        "{\"primary_urll\":\"https://example.com/\"}",
        "{\"delivery_attempts\":0}",
        "{\"delivery_attempts\":11}",
        "{\"delivery_attempts\":2.5}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp = api(gw.dev_key, "PATCH", "/junction/webhooks/settings", bad[i], 400);
        assert_non_null(jn_test_json_str(resp, "error.code"));
        json_object_put(resp);
    }
    resp =
        api(gw.dev_key, "PATCH", "/api/v1/environments/webhook", "{\"delivery_attempts\":2}", 400);
    json_object_put(resp);
    resp = api(gw.dev_key, "PATCH", "/api/v1/environments/webhook?env=prod",
               "{\"primary_url\":\"https://example.com/x\"}", 400);
    assert_string_equal(jn_test_json_str(resp, "error.code"), "invalid_query_params");
    json_object_put(resp);
    resp = api(gw.dev_key, "GET", "/junction/webhooks/settings", NULL, 200);
    assert_string_equal(jn_test_json_str(resp, "data.primary_url"), "https://example.com/one");
    assert_int_equal(json_object_get_int(json_object_object_get(
                         json_object_object_get(resp, "data"), "delivery_attempts")),
                     3);
    json_object_put(resp);
    /* Another environment's settings are its own. */
    resp = api(gw.prod_key, "GET", "/junction/webhooks/settings", NULL, 200);
    assert_true(json_object_is_type(
        json_object_object_get(json_object_object_get(resp, "data"), "primary_url"),
        json_type_null));
    json_object_put(resp);

    /* The signing key: only a rotation shows it, each time a new one. */
    char *k1 = rotate(gw.dev_key), *k2 = rotate(gw.dev_key);
    assert_string_not_equal(k1, k2);
    resp = api(gw.dev_key, "POST", "/api/v1/environment/webhook-signing-key/rotate", NULL, 200);
    assert_non_null(jn_test_json_str(resp, "data.webhook_signing_key"));
    json_object_put(resp);
    resp = api(gw.dev_key, "GET", "/junction/webhooks/settings", NULL, 200);
    assert_null(strstr(json_object_to_json_string(resp), k2));
    json_object_put(resp);
    resp = api(NULL, "POST", "/environment/webhook-signing-key/rotate", NULL, 401);
    json_object_put(resp);
    free(k1);
    free(k2);
}

/* Verifies a request's signatures with key; true when both hold. */
static void expect_signed(const jn_test_received_t *q, const char *key)
{
    char got[128] = "", want[65];
    assert_int_equal(jn_test_header_value(q->head, "X-Nango-Hmac-Sha256", got, sizeof got), 1);
    hex_hmac(key, q->body, q->body_len, want);
    assert_string_equal(got, want);
    /* The legacy header: SHA-256 of the key and the body. */
    size_t klen = strlen(key);
    char *keyed = malloc(klen + q->body_len);
    memcpy(keyed, key, klen);
    memcpy(keyed + klen, q->body, q->body_len);
    unsigned char digest[32];
    jn_crypto_sha256(keyed, klen + q->body_len, digest);
    free(keyed);
    jn_hex_encode(digest, sizeof digest, want);
    assert_int_equal(jn_test_header_value(q->head, "X-Nango-Signature", got, sizeof got), 1);
    assert_string_equal(got, want);
    assert_int_equal(jn_test_header_value(q->head, "Content-Type", got, sizeof got), 1);
    assert_string_equal(got, "application/json");
}

/* @nangohq/node's verifyIncomingWebhookRequest on the body and headers (tests/sdk/install.sh,
 * run by tests/run.sh, puts the pinned package into $JUNCTION_LOCAL_DIR/sdk). 1 verified,
 * 0 refused, -1 not installed. */
static int nango_sdk_verifies(const jn_test_received_t *q, const char *key)
{
    const char *local = getenv("JUNCTION_LOCAL_DIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sdk/node_modules/@nangohq/node", local ? local : ".");
    if (access(dir, R_OK) != 0 || jn_test_run("command -v node >/dev/null") != 0)
        return -1;
    char body_path[512], script[2048], cmd[4096], sig[128] = "";
    snprintf(body_path, sizeof body_path, "%s/webhook_body_%d.json", WORK_DIR, (int)getpid());
    FILE *f = fopen(body_path, "wb");
    fwrite(q->body, 1, q->body_len, f);
    fclose(f);
    jn_test_header_value(q->head, "X-Nango-Hmac-Sha256", sig, sizeof sig);
    snprintf(script, sizeof script,
             "const {Nango}=require('%s');"
             "const body=require('fs').readFileSync('%s','utf8');"
             "const n=new Nango({apiKey:'unused',webhookSigningKey:process.argv[1]});"
             "process.exit(n.verifyIncomingWebhookRequest(body,{'X-Nango-Hmac-Sha256':"
             "process.argv[2]})?0:3)",
             dir, body_path);
    snprintf(cmd, sizeof cmd, "node -e \"%s\" %s %s", script, key, sig);
    int rc = jn_test_run(cmd);
    unlink(body_path);
    return rc == 0 ? 1 : 0;
}

static void test_retried_until_accepted_and_signed(void **state)
{
    (void)state;
    char *key = rotate(gw.dev_key);
    jn_test_answer_t fail = {.status = 500};
    jn_test_receiver_queue(rx, &fail, 2);
    char cid[64];
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_received(3, 60000);
    wait_auth_state(cid, "succeeded", 30000);
    /* Accepted once: the third attempt, and nothing after it. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT j.attempts FROM jobs j JOIN deliveries d ON d.job_id = j.id "
             "WHERE d.connection_id = '%s'",
             cid);
    assert_int_equal(sql_number(sql), 3);
    assert_int_equal(jn_test_receiver_count(rx), 3);
    jn_test_received_t q[3];
    for (size_t i = 0; i < 3; i++)
        json_object_put(received_json(i, &q[i]));
    /* The same bytes every time, signed with the environment's key. */
    assert_int_equal(q[0].body_len, q[2].body_len);
    assert_memory_equal(q[0].body, q[2].body, q[0].body_len);
    for (size_t i = 0; i < 3; i++)
        expect_signed(&q[i], key);
    char wrong[65];
    hex_hmac("not-the-key", q[2].body, q[2].body_len, wrong);
    char got[128];
    jn_test_header_value(q[2].head, "X-Nango-Hmac-Sha256", got, sizeof got);
    assert_string_not_equal(got, wrong);
    /* Nango's auth payload, serialized once with sorted keys. */
    json_object *o = json_tokener_parse(q[2].body);
    assert_string_equal(jn_test_json_str(o, "type"), "auth");
    assert_string_equal(jn_test_json_str(o, "from"), "nango");
    assert_string_equal(jn_test_json_str(o, "operation"), "creation");
    assert_string_equal(jn_test_json_str(o, "connectionId"), cid);
    assert_string_equal(jn_test_json_str(o, "providerConfigKey"), "notes");
    assert_string_equal(jn_test_json_str(o, "provider"), "fake-key");
    assert_string_equal(jn_test_json_str(o, "authMode"), "API_KEY");
    assert_string_equal(jn_test_json_str(o, "environment"), "dev");
    assert_true(json_object_get_boolean(json_object_object_get(o, "success")));
    size_t len = 0;
    char *canonical = jn_webhook_serialize(o, &len);
    assert_int_equal(len, q[2].body_len);
    assert_memory_equal(canonical, q[2].body, len);
    free(canonical);
    json_object_put(o);
    int sdk = nango_sdk_verifies(&q[2], key);
    if (sdk < 0)
        fail_msg("@nangohq/node is not installed: run tests/sdk/install.sh (tests/run.sh does)");
    assert_int_equal(sdk, 1);
    for (size_t i = 0; i < 3; i++)
        jn_test_received_cleanup(&q[i]);
    free(key);
}

static void test_dead_letter_then_replay(void **state)
{
    (void)state;
    int port = jn_test_free_port();
    char body[512];
    snprintf(body, sizeof body,
             "{\"primary_url\":\"http://127.0.0.1:%d/down\",\"delivery_attempts\":2}", port);
    settings(gw.dev_key, body);
    char cid[64];
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_auth_state(cid, "failed", 60000);
    json_object *list = dead_letters(gw.dev_key, "?type=auth");
    json_object *d = dead_letter_of(list, cid);
    assert_non_null(d);
    assert_int_equal(json_object_get_int(json_object_object_get(d, "attempts")), 2);
    assert_true(json_object_is_type(json_object_object_get(d, "last_status"), json_type_null));
    assert_non_null(jn_test_json_str(d, "last_error"));
    assert_non_null(jn_test_json_str(d, "failed_at"));
    assert_null(json_object_object_get(d, "body"));
    char id[64], path[256];
    snprintf(id, sizeof id, "%s", jn_test_json_str(d, "id"));
    json_object_put(list);
    /* Other filters leave it out; a bad filter is refused. */
    list = dead_letters(gw.dev_key, "?type=sync");
    assert_null(dead_letter_of(list, cid));
    json_object_put(list);
    list = dead_letters(gw.dev_key, "?from=2999-01-01T00:00:00Z");
    assert_null(dead_letter_of(list, cid));
    json_object_put(list);
    list = dead_letters(gw.dev_key, "?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z");
    assert_non_null(dead_letter_of(list, cid));
    json_object_put(list);
    json_object_put(api(gw.dev_key, "GET", "/junction/webhooks/dead-letters?type=nope", NULL, 400));
    json_object_put(
        api(gw.dev_key, "GET", "/junction/webhooks/dead-letters?from=yesterday", NULL, 400));
    json_object_put(
        api(gw.dev_key, "GET", "/junction/webhooks/dead-letters?cursor=abc", NULL, 400));
    json_object_put(api(gw.dev_key, "GET", "/junction/webhooks/dead-letters?limit=0", NULL, 400));

    /* Another environment neither sees nor replays it. */
    list = dead_letters(gw.prod_key, NULL);
    assert_null(dead_letter_of(list, cid));
    json_object_put(list);
    snprintf(path, sizeof path, "/junction/webhooks/dead-letters/%s/replay", id);
    json_object_put(api(gw.prod_key, "POST", path, NULL, 404));
    snprintf(path, sizeof path, "/junction/webhooks/deliveries/%s", id);
    json_object_put(api(gw.prod_key, "GET", path, NULL, 404));
    json_object *all =
        api(gw.prod_key, "POST", "/junction/webhooks/dead-letters/replay", "{}", 202);
    assert_int_equal(json_object_get_int(
                         json_object_object_get(json_object_object_get(all, "data"), "replayed")),
                     0);
    json_object_put(all);
    /* The owner reads it whole, body included. */
    json_object *one = api(gw.dev_key, "GET", path, NULL, 200);
    assert_string_equal(jn_test_json_str(one, "data.state"), "failed");
    assert_non_null(strstr(jn_test_json_str(one, "data.body"), cid));
    json_object_put(one);

    /* The receiver comes up; a replay delivers it, once. */
    jn_test_receiver_t *up = jn_test_receiver_start(port);
    snprintf(path, sizeof path, "/junction/webhooks/dead-letters/%s/replay", id);
    json_object *r = api(gw.dev_key, "POST", path, NULL, 202);
    assert_string_equal(jn_test_json_str(r, "data.state"), "queued");
    json_object_put(r);
    /* A second replay while it is queued or done is a conflict, not a second delivery. */
    json_object_put(api(gw.dev_key, "POST", path, NULL, 409));
    wait_auth_state(cid, "succeeded", 30000);
    assert_int_equal(jn_test_receiver_count(up), 1);
    jn_test_received_t q;
    assert_true(jn_test_receiver_get(up, 0, &q));
    assert_non_null(strstr(q.body, cid));
    jn_test_received_cleanup(&q);
    list = dead_letters(gw.dev_key, NULL);
    assert_null(dead_letter_of(list, cid));
    json_object_put(list);
    json_object_put(api(gw.dev_key, "POST", path, NULL, 409));
    json_object_put(api(
        gw.dev_key, "POST",
        "/junction/webhooks/dead-letters/00000000-0000-4000-8000-000000000000/replay", NULL, 404));
    json_object_put(
        api(gw.dev_key, "POST", "/junction/webhooks/dead-letters/not-an-id/replay", NULL, 404));
    jn_test_receiver_stop(up);
}

static void test_replay_all_matching_once(void **state)
{
    (void)state;
    int port = jn_test_free_port();
    char body[512];
    snprintf(body, sizeof body,
             "{\"primary_url\":\"http://127.0.0.1:%d/down\",\"delivery_attempts\":1}", port);
    settings(gw.dev_key, body);
    char a[64], b[64];
    import_connection(gw.dev_key, NULL, a, sizeof a);
    import_connection(gw.dev_key, NULL, b, sizeof b);
    wait_auth_state(a, "failed", 30000);
    wait_auth_state(b, "failed", 30000);
    long long dead = sql_number("SELECT count(*) FROM jobs WHERE kind = 'delivery' AND "
                                "state = 'failed'");
    assert_true(dead >= 2);
    jn_test_receiver_t *up = jn_test_receiver_start(port);
    json_object_put(api(gw.dev_key, "POST", "/junction/webhooks/dead-letters/replay",
                        "{\"type\":\"bogus\"}", 400));
    json_object_put(api(gw.dev_key, "POST", "/junction/webhooks/dead-letters/replay",
                        "{\"from\":\"soon\"}", 400));
    /* A storm of replays: the first takes every match, the rest find nothing left. */
    json_object *r = api(gw.dev_key, "POST", "/junction/webhooks/dead-letters/replay",
                         "{\"type\":\"auth\"}", 202);
    long long replayed = json_object_get_int64(
        json_object_object_get(json_object_object_get(r, "data"), "replayed"));
    json_object_put(r);
    long long again = 0;
    for (int i = 0; i < 5; i++) {
        r = api(gw.dev_key, "POST", "/junction/webhooks/dead-letters/replay", "{\"type\":\"auth\"}",
                202);
        again += json_object_get_int64(
            json_object_object_get(json_object_object_get(r, "data"), "replayed"));
        json_object_put(r);
    }
    wait_settled(60000);
    assert_true(replayed >= 2);
    /* Each replayed dead letter arrived once, including those of earlier tests at this port's
     * URL; none arrived twice. */
    assert_int_equal((long long)jn_test_receiver_count(up), replayed + again);
    wait_auth_state(a, "succeeded", 1000);
    wait_auth_state(b, "succeeded", 1000);
    jn_test_receiver_stop(up);
}

static void test_4xx_not_retried_and_retry_after_honoured(void **state)
{
    (void)state;
    jn_test_answer_t gone = {.status = 410, .body_bytes = 12};
    jn_test_receiver_queue(rx, &gone, 1);
    char cid[64];
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_auth_state(cid, "failed", 30000);
    assert_int_equal(jn_test_receiver_count(rx), 1);
    json_object *list = dead_letters(gw.dev_key, NULL);
    json_object *d = dead_letter_of(list, cid);
    assert_non_null(d);
    assert_int_equal(json_object_get_int(json_object_object_get(d, "last_status")), 410);
    assert_int_equal(json_object_get_int(json_object_object_get(d, "attempts")), 1);
    assert_non_null(strstr(jn_test_json_str(d, "last_error"), "410"));
    json_object_put(list);

    /* 503 asking for 3 s, then accepted: the retry waits as asked (the backoff alone would
     * be about a second). */
    jn_test_receiver_reset(rx);
    jn_test_answer_t later = {.status = 503, .headers = "Retry-After: 3\r\n"};
    jn_test_receiver_queue(rx, &later, 1);
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_received(2, 30000);
    wait_auth_state(cid, "succeeded", 30000);
    jn_test_received_t q0, q1;
    assert_true(jn_test_receiver_get(rx, 0, &q0));
    assert_true(jn_test_receiver_get(rx, 1, &q1));
    long gap = q1.at_ms - q0.at_ms;
    if (gap < 2900)
        fail_msg("the retry came %ld ms after a Retry-After of 3 s", gap);
    jn_test_received_cleanup(&q0);
    jn_test_received_cleanup(&q1);
    /* 429 is retried too. */
    jn_test_receiver_reset(rx);
    jn_test_answer_t slow_down = {.status = 429};
    jn_test_receiver_queue(rx, &slow_down, 1);
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_auth_state(cid, "succeeded", 30000);
    assert_int_equal(jn_test_receiver_count(rx), 2);
}

static void test_egress_policy_refuses_internal_addresses(void **state)
{
    (void)state;
    /* prod admits nothing internal: loopback (the receiver) and the metadata address. */
    jn_test_fake_api_key_connection(&gw, gw.prod_key, &fake, "fake-key-p", "notes", "p0", API_KEY);
    char url[128], body[512];
    jn_test_receiver_url(rx, "/internal", url, sizeof url);
    snprintf(
        body, sizeof body,
        "{\"primary_url\":\"%s\",\"secondary_url\":\"http://169.254.169.254/latest/meta-data\","
        "\"delivery_attempts\":3}",
        url);
    settings(gw.prod_key, body);
    char cid[64];
    import_connection(gw.prod_key, NULL, cid, sizeof cid);
    wait_settled(30000);
    assert_int_equal(jn_test_receiver_count(rx), 0);
    json_object *list = dead_letters(gw.prod_key, NULL);
    json_object *data = json_object_object_get(list, "data");
    int refused = 0;
    for (size_t i = 0; i < json_object_array_length(data); i++) {
        json_object *d = json_object_array_get_idx(data, i);
        const char *c = jn_test_json_str(d, "connection_id");
        if (!c || strcmp(c, cid) != 0)
            continue;
        const char *err = jn_test_json_str(d, "last_error");
        assert_non_null(err);
        /* Refused at once: an address policy does not change between attempts. */
        assert_int_equal(json_object_get_int(json_object_object_get(d, "attempts")), 1);
        if (strstr(err, "loopback") || strstr(err, "link-local") || strstr(err, "169.254"))
            refused++;
        else
            fail_msg("unexpected error: %s", err);
    }
    assert_int_equal(refused, 2);
    json_object_put(list);
    /* The environment's allow-list admits loopback: then it is delivered. */
    jn_test_allow_loopback(&gw, gw.prod_key);
    snprintf(body, sizeof body, "{\"primary_url\":\"%s\",\"secondary_url\":\"\"}", url);
    settings(gw.prod_key, body);
    import_connection(gw.prod_key, NULL, cid, sizeof cid);
    wait_received(1, 30000);
    settings(gw.prod_key, "{\"primary_url\":\"\"}");
}

static void test_switch_off_enqueues_nothing(void **state)
{
    (void)state;
    settings(gw.dev_key, "{\"on_auth_creation\":false}");
    long long before = sql_number("SELECT count(*) FROM deliveries");
    char cid[64];
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    assert_int_equal(sql_number("SELECT count(*) FROM deliveries"), before);
    /* No URL at all: nothing either. */
    settings(gw.dev_key, "{\"on_auth_creation\":true,\"primary_url\":\"\"}");
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    assert_int_equal(sql_number("SELECT count(*) FROM deliveries"), before);
    assert_int_equal(jn_test_receiver_count(rx), 0);
}

static void test_override_replaces_both_urls(void **state)
{
    (void)state;
    char p[128], s[128], o[128], body[512];
    jn_test_receiver_url(rx, "/primary", p, sizeof p);
    jn_test_receiver_url(rx, "/secondary", s, sizeof s);
    jn_test_receiver_url(rx, "/override", o, sizeof o);
    snprintf(body, sizeof body, "{\"primary_url\":\"%s\",\"secondary_url\":\"%s\"}", p, s);
    settings(gw.dev_key, body);
    char cid[64], extra[256];
    snprintf(extra, sizeof extra, ",\"webhook_url_override\":\"%s\"", o);
    import_connection(gw.dev_key, extra, cid, sizeof cid);
    wait_settled(30000);
    assert_int_equal(jn_test_receiver_count(rx), 1);
    jn_test_received_t q;
    assert_true(jn_test_receiver_get(rx, 0, &q));
    assert_string_equal(q.path, "/override");
    jn_test_received_cleanup(&q);
    /* Without one: both environment URLs. */
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_settled(30000);
    assert_int_equal(jn_test_receiver_count(rx), 3);
    bool primary = false, secondary = false;
    for (size_t i = 1; i < 3; i++) {
        assert_true(jn_test_receiver_get(rx, i, &q));
        primary |= strcmp(q.path, "/primary") == 0;
        secondary |= strcmp(q.path, "/secondary") == 0;
        jn_test_received_cleanup(&q);
    }
    assert_true(primary && secondary);
}

static void test_connect_flow_sends_auth_webhook(void **state)
{
    (void)state;
    json_object *resp = api(gw.dev_key, "POST", "/connect/sessions",
                            "{\"end_user\":{\"id\":\"hook-user\",\"email\":\"u@example.com\"},"
                            "\"organization\":{\"id\":\"org-7\"}}",
                            201);
    char path[512], url[600];
    snprintf(path, sizeof path, "/api-auth/api-key/notes?connect_session_token=%s",
             jn_test_json_str(resp, "data.token"));
    json_object_put(resp);
    snprintf(url, sizeof url, "%s%s", gw.url, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"apiKey\":\"" API_KEY "\"}";
    char *text = NULL;
    long st = jn_test_http("POST", url, headers, body, strlen(body), &text);
    if (st != 200)
        fail_msg("connect flow: %ld %s", st, text ? text : "");
    free(text);
    wait_received(1, 30000);
    jn_test_received_t q;
    json_object *o = received_json(0, &q);
    assert_string_equal(jn_test_json_str(o, "type"), "auth");
    assert_string_equal(jn_test_json_str(o, "operation"), "creation");
    assert_string_equal(jn_test_json_str(o, "endUser.endUserId"), "hook-user");
    assert_string_equal(jn_test_json_str(o, "endUser.endUserEmail"), "u@example.com");
    assert_string_equal(jn_test_json_str(o, "endUser.organizationId"), "org-7");
    assert_string_equal(jn_test_json_str(o, "tags.end_user_id"), "hook-user");
    json_object_put(o);
    jn_test_received_cleanup(&q);
    /* The same connection again: an override. */
    jn_test_receiver_reset(rx);
    import_connection(gw.dev_key, NULL, path, sizeof path);
    char again[1024];
    snprintf(again, sizeof again,
             "{\"provider_config_key\":\"notes\",\"connection_id\":\"%s\","
             "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"" API_KEY "\"}}",
             path);
    api_ok(gw.dev_key, "POST", "/connections", again, 200);
    wait_received(2, 30000);
    wait_settled(30000);
    int overrides = 0;
    for (size_t i = 0; i < 2; i++) {
        o = received_json(i, &q);
        overrides += strcmp(jn_test_json_str(o, "operation"), "override") == 0;
        json_object_put(o);
        jn_test_received_cleanup(&q);
    }
    assert_int_equal(overrides, 1);
}

static void test_async_action_sends_webhook(void **state)
{
    (void)state;
    char url[128], auth[256];
    snprintf(url, sizeof url, "%s/action/trigger", gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
    const char *headers[] = {auth,
                             "Connection-Id: c1",
                             "Provider-Config-Key: notes",
                             "Content-Type: application/json",
                             "X-Async: true",
                             NULL};
    const char *body = "{\"action_name\":\"post-note\",\"input\":{\"text\":\"hook me\"}}";
    char *text = NULL;
    long st = jn_test_http("POST", url, headers, body, strlen(body), &text);
    assert_int_equal(st, 202);
    json_object *a = json_tokener_parse(text);
    free(text);
    char id[64], status_url[128];
    snprintf(id, sizeof id, "%s", jn_test_json_str(a, "id"));
    json_object_put(a);
    snprintf(status_url, sizeof status_url, "/action/%s", id);
    wait_received(1, 60000);
    jn_test_received_t q;
    json_object *o = received_json(0, &q);
    assert_string_equal(jn_test_json_str(o, "type"), "async_action");
    assert_string_equal(jn_test_json_str(o, "from"), "nango");
    assert_string_equal(jn_test_json_str(o, "connectionId"), "c1");
    assert_string_equal(jn_test_json_str(o, "providerConfigKey"), "notes");
    assert_string_equal(jn_test_json_str(o, "payload.id"), id);
    assert_string_equal(jn_test_json_str(o, "payload.statusUrl"), status_url);
    /* '/' is not escaped: the bytes are what JSON.stringify would write. */
    assert_non_null(strstr(q.body, "\"statusUrl\":\"/action/"));
    json_object_put(o);
    jn_test_received_cleanup(&q);
    /* The result is there when the webhook arrives. */
    json_object_put(api(gw.dev_key, "GET", status_url, NULL, 200));
    /* A synchronous call sends none. */
    const char *sync_headers[] = {auth, "Connection-Id: c1", "Provider-Config-Key: notes",
                                  "Content-Type: application/json", NULL};
    st = jn_test_http("POST", url, sync_headers, body, strlen(body), NULL);
    assert_int_equal(st, 200);
    wait_settled(30000);
    assert_int_equal(jn_test_receiver_count(rx), 1);
}

/* Enqueues through the store, as the sync runner and provider webhooks will. */
static void test_sync_and_forward_payloads(void **state)
{
    (void)state;
    PGconn *conn = jn_pg_connect(gw.db_url, "test-webhooks");
    assert_non_null(conn);
    char *env = jn_test_sql_value(gw.db_url, "SELECT id FROM environments WHERE name = 'dev'");
    char *row =
        jn_test_sql_value(gw.db_url, "SELECT id FROM connections WHERE connection_id = 'c1'");
    long long env_id = strtoll(env, NULL, 10), conn_row = strtoll(row, NULL, 10);
    free(env);
    free(row);
    jn_webhook_sync_t s = {.connection_id = "c1",
                           .provider_config_key = "notes",
                           .sync_name = "issues",
                           .model = "Issue",
                           .sync_type = "INCREMENTAL",
                           .success = true,
                           .modified_after = "2026-11-29T10:00:00.000Z",
                           .added = 2,
                           .updated = 1};
    jn_webhook_jobs_t jobs;
    assert_int_equal(jn_webhooks_enqueue_sync(conn, env_id, conn_row, &s, NULL), JN_OK);
    /* No changes and on_sync_completion_always off: nothing. */
    s.added = s.updated = 0;
    assert_int_equal(jn_webhooks_enqueue_sync(conn, env_id, conn_row, &s, &jobs), JN_OK);
    assert_int_equal(jobs.count, 0);
    s.success = false;
    s.error_type = "script_error";
    s.error_description = "boom";
    s.started_at = "2026-11-29T10:00:00.000Z";
    s.failed_at = "2026-11-29T10:00:05.000Z";
    assert_int_equal(jn_webhooks_enqueue_sync(conn, env_id, conn_row, &s, NULL), JN_OK);
    json_object *payload = json_tokener_parse("{\"z\":1,\"a\":{\"y\":[3,{\"k\":\"v\",\"b\":2}]}}");
    assert_int_equal(
        jn_webhooks_enqueue_forward(conn, env_id, 0, "fake-key", "notes", NULL, payload, NULL),
        JN_OK);
    assert_int_equal(jn_webhooks_enqueue_forward(conn, env_id, conn_row, "fake-key", "notes", "c1",
                                                 payload, NULL),
                     JN_OK);
    json_object_put(payload);
    /* A payload past the cap is refused, and nothing of it is written. */
    long long before = sql_number("SELECT count(*) FROM deliveries");
    size_t big = JN_WEBHOOK_MAX_BODY + 16;
    char *huge = malloc(big + 1);
    memset(huge, 'h', big);
    huge[big] = '\0';
    json_object *hp = json_object_new_object();
    json_object_object_add(hp, "blob", json_object_new_string(huge));
    free(huge);
    assert_int_equal(
        jn_webhooks_enqueue_forward(conn, env_id, conn_row, "fake-key", "notes", "c1", hp, NULL),
        JN_ERR_TOO_LARGE);
    json_object_put(hp);
    assert_int_equal(sql_number("SELECT count(*) FROM deliveries"), before);
    PQfinish(conn);

    /* Not sent by anyone here: due at once, the resend sends them. */
    wait_received(4, 30000);
    wait_settled(30000);
    assert_int_equal(jn_test_receiver_count(rx), 4);
    bool success = false, failure = false, raw = false, wrapped = false;
    for (size_t i = 0; i < 4; i++) {
        jn_test_received_t q;
        json_object *o = received_json(i, &q);
        const char *type = jn_test_json_str(o, "type");
        if (type && strcmp(type, "sync") == 0 &&
            json_object_get_boolean(json_object_object_get(o, "success"))) {
            success = true;
            assert_string_equal(jn_test_json_str(o, "syncName"), "issues");
            assert_string_equal(jn_test_json_str(o, "syncVariant"), "base");
            assert_string_equal(jn_test_json_str(o, "model"), "Issue");
            assert_string_equal(jn_test_json_str(o, "responseResults.added"), "2");
            assert_string_equal(jn_test_json_str(o, "modifiedAfter"), "2026-11-29T10:00:00.000Z");
        } else if (type && strcmp(type, "sync") == 0) {
            failure = true;
            assert_string_equal(jn_test_json_str(o, "error.type"), "script_error");
            assert_string_equal(jn_test_json_str(o, "failedAt"), "2026-11-29T10:00:05.000Z");
        } else if (type && strcmp(type, "forward") == 0) {
            wrapped = true;
            assert_string_equal(jn_test_json_str(o, "from"), "fake-key");
            assert_string_equal(jn_test_json_str(o, "connectionId"), "c1");
            assert_string_equal(q.body, "{\"connectionId\":\"c1\",\"from\":\"fake-key\","
                                        "\"payload\":{\"a\":{\"y\":[3,{\"b\":2,\"k\":\"v\"}]},"
                                        "\"z\":1},\"providerConfigKey\":\"notes\","
                                        "\"type\":\"forward\"}");
        } else {
            raw = true;
            assert_string_equal(q.body, "{\"a\":{\"y\":[3,{\"b\":2,\"k\":\"v\"}]},\"z\":1}");
        }
        json_object_put(o);
        jn_test_received_cleanup(&q);
    }
    assert_true(success && failure && raw && wrapped);
}

static void test_hostile_receivers(void **state)
{
    (void)state;
    /* Slow loris: the headers come, then a byte every 400 ms; the attempt ends at the
     * delivery timeout (3 s here) and is retried; the next answer is accepted. */
    jn_test_answer_t drip = {.status = 200, .body_bytes = 1000, .drip_ms = 400};
    jn_test_receiver_queue(rx, &drip, 1);
    char cid[64];
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_auth_state(cid, "succeeded", 60000);
    assert_int_equal(jn_test_receiver_count(rx), 2);
    jn_test_received_t q0, q1;
    assert_true(jn_test_receiver_get(rx, 0, &q0));
    assert_true(jn_test_receiver_get(rx, 1, &q1));
    assert_true(q1.at_ms - q0.at_ms >= 2900);
    jn_test_received_cleanup(&q0);
    jn_test_received_cleanup(&q1);

    /* A giant answer: read no further than 64 KiB; its 200 counts. */
    jn_test_receiver_reset(rx);
    jn_test_answer_t giant = {.status = 200, .body_bytes = 64L * 1024 * 1024};
    jn_test_receiver_queue(rx, &giant, 1);
    long t0 = jn_test_now_ms();
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_auth_state(cid, "succeeded", 30000);
    assert_true(jn_test_now_ms() - t0 < 20000);
    assert_int_equal(jn_test_receiver_count(rx), 1);
    long rss = jn_test_status_kb(worker.pid, "VmHWM");
    if (rss > 0)
        assert_true(rss < 256 * 1024);

    /* A redirect to the metadata service: not followed, not retried. */
    jn_test_receiver_reset(rx);
    jn_test_answer_t moved = {.status = 307,
                              .headers = "Location: http://169.254.169.254/latest/meta-data\r\n"};
    jn_test_receiver_queue(rx, &moved, 1);
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_auth_state(cid, "failed", 30000);
    assert_int_equal(jn_test_receiver_count(rx), 1);
    json_object *list = dead_letters(gw.dev_key, NULL);
    json_object *d = dead_letter_of(list, cid);
    assert_non_null(d);
    assert_int_equal(json_object_get_int(json_object_object_get(d, "last_status")), 307);
    assert_non_null(strstr(jn_test_json_str(d, "last_error"), "redirect"));
    json_object_put(list);

    /* Closing without an answer is a connection error: retried. */
    jn_test_receiver_reset(rx);
    jn_test_answer_t hang_up = {.status = 0};
    jn_test_receiver_queue(rx, &hang_up, 1);
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_auth_state(cid, "succeeded", 30000);
    assert_int_equal(jn_test_receiver_count(rx), 2);
}

static void test_refresh_failure_sends_auth_webhook(void **state)
{
    (void)state;
    /* An OAuth connection (its creation webhook first), then its grant revoked at the
     * provider: the forced refresh fails, and the failure is told. */
    char cid[128], callback[1024], path[512], body[1024];
    jn_test_oauth_dance(&gw, &fake, NULL, cid, sizeof cid, callback, sizeof callback);
    wait_received(1, 30000);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&refresh_token=true", cid);
    json_object *resp = api(gw.dev_key, "GET", path, NULL, 200);
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}",
             jn_test_json_str(resp, "credentials.refresh_token"));
    json_object_put(resp);
    assert_int_equal(jn_test_fake_call(&fake, "POST", "/_admin/revoke", body, NULL), 200);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&force_refresh=true", cid);
    json_object_put(api(gw.dev_key, "GET", path, NULL, 400));
    /* Not sent by the gateway: due at once, the resend sends it. */
    wait_received(2, 30000);
    wait_settled(30000);
    jn_test_received_t q;
    json_object *o = received_json(0, &q);
    assert_string_equal(jn_test_json_str(o, "operation"), "creation");
    assert_string_equal(jn_test_json_str(o, "authMode"), "OAUTH2");
    json_object_put(o);
    jn_test_received_cleanup(&q);
    o = received_json(1, &q);
    assert_string_equal(jn_test_json_str(o, "type"), "auth");
    assert_string_equal(jn_test_json_str(o, "operation"), "refresh");
    assert_string_equal(jn_test_json_str(o, "connectionId"), cid);
    assert_string_equal(jn_test_json_str(o, "providerConfigKey"), "fake");
    assert_false(json_object_get_boolean(json_object_object_get(o, "success")));
    assert_string_equal(jn_test_json_str(o, "error.type"), "refresh_token_external_error");
    assert_non_null(strstr(jn_test_json_str(o, "error.description"), "invalid_grant"));
    json_object_put(o);
    jn_test_received_cleanup(&q);
}

static void test_signing_key_never_logged(void **state)
{
    (void)state;
    char *key = rotate(gw.dev_key);
    char cid[64];
    import_connection(gw.dev_key, NULL, cid, sizeof cid);
    wait_auth_state(cid, "succeeded", 30000);
    const jn_test_process_t *procs[] = {&gw.proc, &worker, &scheduler};
    for (size_t i = 0; i < 3; i++) {
        char *log = jn_test_read_log(procs[i]);
        if (log && strstr(log, key))
            fail_msg("the signing key is in the log %s", procs[i]->log_path);
        free(log);
    }
    /* At rest it is sealed. */
    char *stored = jn_test_sql_value(gw.db_url, "SELECT string_agg(signing_key_sealed, ',') "
                                                "FROM environment_webhooks");
    assert_non_null(stored);
    assert_null(strstr(stored, key));
    free(stored);
    free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_settings_api, fresh),
        cmocka_unit_test_setup(test_retried_until_accepted_and_signed, fresh),
        cmocka_unit_test_setup(test_dead_letter_then_replay, fresh),
        cmocka_unit_test_setup(test_replay_all_matching_once, fresh),
        cmocka_unit_test_setup(test_4xx_not_retried_and_retry_after_honoured, fresh),
        cmocka_unit_test_setup(test_egress_policy_refuses_internal_addresses, fresh),
        cmocka_unit_test_setup(test_switch_off_enqueues_nothing, fresh),
        cmocka_unit_test_setup(test_override_replaces_both_urls, fresh),
        cmocka_unit_test_setup(test_connect_flow_sends_auth_webhook, fresh),
        cmocka_unit_test_setup(test_async_action_sends_webhook, fresh),
        cmocka_unit_test_setup(test_sync_and_forward_payloads, fresh),
        cmocka_unit_test_setup(test_hostile_receivers, fresh),
        cmocka_unit_test_setup(test_refresh_failure_sends_auth_webhook, fresh),
        cmocka_unit_test_setup(test_signing_key_never_logged, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
