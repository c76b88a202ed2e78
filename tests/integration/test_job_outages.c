/*
 * Integration: an accepted job survives its dependencies' outages (DESIGN.md, invariant 1)
 * - the Kafka broker stopped when the job is accepted and started again, and PostgreSQL
 * stopped and started while a worker runs the job. Each outage delays the job, nothing
 * more: the caller reads its outcome, and the provider saw the side effect once; a run
 * that ended while PostgreSQL was away keeps its outcome and stores it when it is back.
 *
 * Real processes: a gateway, a worker and the scheduler (which resends what Kafka lost)
 * on the shared PostgreSQL and Kafka, which this test stops and starts; it runs alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_oauth.h"
#include "harness.h"

#define API_KEY "k-outages-1"

static jn_test_fake_t fake;
static jn_test_gateway_t gw;
static jn_test_process_t worker, scheduler;
static char worker_admin[64], scheduler_admin[64];

static const char *const service_env[] = {"JUNCTION_JOB_LEASE_SECONDS=5",
                                          "JUNCTION_WORKER_DRAIN_SECONDS=2",
                                          "JUNCTION_LOG_LEVEL=info", NULL};

/* Posts a note (the side effect), then waits on a slow call: long enough to stop
 * PostgreSQL under a running job. */
static const char slow_note[] =
    "return {\n"
    "  type = 'action', description = 'posts a note, then waits on a slow call',\n"
    "  input = { text = 'string' },\n"
    "  exec = function(ctx, input)\n"
    "    local res = ctx:post{ endpoint = '/api/echo', data = { body = input.text } }\n"
    "    ctx:get{ endpoint = '/api/drip', params = { bytes = '64', interval_ms = '500' } }\n"
    "    return { sha256 = res.data.body_sha256 }\n"
    "  end,\n"
    "}\n";

static void api_ok(const char *method, const char *path, const char *body, long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, method, path, gw.dev_key, body, &resp);
    if (st != want)
        fail_msg("%s %s: %ld, wanted %ld: %s", method, path, st, want,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
    json_object_put(resp);
}

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "outages_fake_provider");
    jn_test_gateway_start(&gw, GATEWAY_BIN, service_env);
    jn_test_fake_api_key_connection(&gw, gw.dev_key, &fake, "fake-key", "notes", "c1", API_KEY);
    jn_test_fake_allow(&gw);
    json_object *fns = json_object_new_array();
    json_object *f = json_object_new_object();
    json_object_object_add(f, "name", json_object_new_string("slow-note"));
    json_object_object_add(f, "source", json_object_new_string(slow_note));
    json_object_array_add(fns, f);
    json_object *deploy = json_object_new_object();
    json_object_object_add(deploy, "functions", fns);
    api_ok("PUT", "/junction/integrations/notes/functions", json_object_to_json_string(deploy),
           200);
    json_object_put(deploy);
    jn_test_service_start(&worker, &gw, WORKER_BIN, "outages_worker", service_env, worker_admin);
    jn_test_service_start(&scheduler, &gw, SCHEDULER_BIN, "outages_scheduler", service_env,
                          scheduler_admin);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* Whatever a failed test left stopped comes back for the tests after this one. */
    jn_test_run("deploy/local/postgres.sh start >/dev/null");
    jn_test_run("deploy/local/kafka.sh start >/dev/null");
    bool worker_clean = jn_test_service_stop(&worker, 30000);
    bool scheduler_clean = jn_test_service_stop(&scheduler, 20000);
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    assert_true(worker_clean);
    assert_true(scheduler_clean);
    return 0;
}

/* POST /action/trigger with X-Async for slow-note; the job id into id. */
static void trigger_async(const char *text, char id[37])
{
    char url[128], auth[256], body[256];
    snprintf(url, sizeof url, "%s/action/trigger", gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
    snprintf(body, sizeof body, "{\"action_name\":\"slow-note\",\"input\":{\"text\":\"%s\"}}",
             text);
    const char *headers[] = {auth,
                             "Connection-Id: c1",
                             "Provider-Config-Key: notes",
                             "Content-Type: application/json",
                             "X-Async: true",
                             NULL};
    char *text_out = NULL;
    long st = jn_test_http("POST", url, headers, body, strlen(body), &text_out);
    json_object *resp = text_out ? json_tokener_parse(text_out) : NULL;
    free(text_out);
    jn_test_expect_status(st, 202, resp, "async trigger");
    const char *got = jn_test_json_str(resp, "id");
    assert_non_null(got);
    snprintf(id, 37, "%s", got);
    json_object_put(resp);
}

/* The outcome is readable (200 or an error other than "not done yet" / "unavailable"). */
static bool outcome_ready(void *ud)
{
    const char *id = ud;
    char url[160], auth[256];
    snprintf(url, sizeof url, "%s/action/%s", gw.url, id);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
    const char *headers[] = {auth, NULL};
    long st = jn_test_http("GET", url, headers, NULL, 0, NULL);
    return st != 404 && st != 503 && st != 0;
}

/* Requests the fake has counted for path since its last reset. */
static long long fake_count(const char *path)
{
    json_object *stats = NULL;
    if (jn_test_fake_call(&fake, "GET", "/_admin/stats", NULL, &stats) != 200)
        fail_msg("cannot read the fake's stats");
    json_object *by = NULL, *v = NULL;
    long long n = 0;
    if (json_object_object_get_ex(stats, "api_requests_by_path", &by) &&
        json_object_object_get_ex(by, path, &v))
        n = json_object_get_int64(v);
    json_object_put(stats);
    return n;
}

/* Forgets what the fake counted (and its keys: registers ours again). */
static void fake_reset(void)
{
    assert_int_equal(jn_test_fake_call(&fake, "POST", "/_admin/reset", NULL, NULL), 200);
    char body[64];
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", API_KEY);
    assert_int_equal(jn_test_fake_call(&fake, "POST", "/_admin/api_keys", body, NULL), 201);
}

static void expect_succeeded_once(const char *id, const char *text)
{
    assert_true(jn_test_wait_until(outcome_ready, (void *)id, 120000));
    char path[96];
    snprintf(path, sizeof path, "/action/%s", id);
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp);
    jn_test_expect_status(st, 200, resp, "the outcome after the outage");
    assert_non_null(jn_test_json_str(resp, "sha256"));
    json_object_put(resp);
    /* The provider saw the note once: the journal answered any second attempt. */
    long long seen = fake_count("/api/echo");
    if (seen != 1)
        fail_msg("the provider saw the note '%s' %lld times, wanted once", text, seen);
}

static bool kafka_down_for_gateway(void *ud)
{
    (void)ud;
    char url[96];
    snprintf(url, sizeof url, "%s/health", gw.admin_url);
    return jn_test_http("GET", url, NULL, NULL, 0, NULL) == 503;
}

static void test_accepted_while_the_broker_is_down(void **state)
{
    (void)state;
    fake_reset();
    assert_int_equal(jn_test_run("deploy/local/kafka.sh stop >/dev/null"), 0);
    bool noticed = jn_test_wait_until(kafka_down_for_gateway, NULL, 30000);
    char id[37] = "";
    /* The job row is the promise; its message waits for the broker. */
    trigger_async("outage-kafka", id);
    int started = jn_test_run("deploy/local/kafka.sh start >/dev/null");
    assert_true(noticed);
    assert_int_equal(started, 0);
    expect_succeeded_once(id, "outage-kafka");
}

static bool job_in_drip(void *ud)
{
    const char *id = ud;
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT state FROM jobs WHERE id = '%s'", id);
    char *state = jn_test_sql_value(gw.db_url, sql);
    bool running = state && strcmp(state, "running") == 0;
    free(state);
    if (!running)
        return false;
    return fake_count("/api/drip") > 0;
}

static bool worker_reports_down(void *ud)
{
    (void)ud;
    char url[96];
    snprintf(url, sizeof url, "%s/health", worker_admin);
    return jn_test_http("GET", url, NULL, NULL, 0, NULL) == 503;
}

static void test_postgres_restarts_under_a_running_job(void **state)
{
    (void)state;
    fake_reset();
    char id[37] = "";
    trigger_async("outage-postgres", id);
    /* The note is posted and the slow call has begun: now PostgreSQL goes away. */
    assert_true(jn_test_wait_until(job_in_drip, id, 60000));
    assert_int_equal(jn_test_run("deploy/local/postgres.sh stop >/dev/null"), 0);
    /* The outage outlasts the script and the job's 5 s lease: the worker finishes the run
     * with nowhere to store its outcome, and the lease runs out meanwhile. */
    bool noticed = jn_test_wait_until(worker_reports_down, NULL, 30000);
    struct timespec outage = {8, 0};
    nanosleep(&outage, NULL);
    assert_int_equal(jn_test_run("deploy/local/postgres.sh start >/dev/null"), 0);
    assert_true(noticed);
    expect_succeeded_once(id, "outage-postgres");
    /* The worker kept the outcome and stored it once PostgreSQL was back: the run was not
     * repeated. */
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT attempts FROM jobs WHERE id = '%s'", id);
    char *attempts = jn_test_sql_value(gw.db_url, sql);
    assert_non_null(attempts);
    assert_string_equal(attempts, "1");
    free(attempts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_while_the_broker_is_down),
        cmocka_unit_test(test_postgres_restarts_under_a_running_job),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
