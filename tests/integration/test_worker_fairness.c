/*
 * Integration: environments share a worker's threads fairly. A worker with two action
 * threads; the dev environment queues a backlog of slow actions, then prod calls a quick
 * one. Prod's action runs at once on the thread dev may not take (one environment uses at
 * most half a lane's threads), while dev's backlog is still waiting, and dev never ran two
 * of its actions at once.
 *
 * Real processes: a gateway, a worker and the fake provider on the shared PostgreSQL and
 * Kafka.
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

#include "fake_oauth.h"
#include "harness.h"

#define BACKLOG 4

static jn_test_fake_t fake;
static jn_test_gateway_t gw;
static jn_test_process_t worker;
static char worker_admin[64];

static const char *const service_env[] = {"JUNCTION_WORKER_ACTIONS=2", "JUNCTION_LOG_LEVEL=info",
                                          NULL};

static const char slow[] =
    "return {\n"
    "  type = 'action', description = 'waits about two seconds on the provider',\n"
    "  exec = function(ctx, input)\n"
    "    ctx:get{ endpoint = '/api/drip', params = { bytes = '128', interval_ms = '500' } }\n"
    "    return { slow = true }\n"
    "  end,\n"
    "}\n";

static const char quick[] = "return {\n"
                            "  type = 'action', description = 'one quick call',\n"
                            "  exec = function(ctx, input)\n"
                            "    return { status = ctx:get{ endpoint = '/api/me' }.status }\n"
                            "  end,\n"
                            "}\n";

static void api_ok(const char *key, const char *method, const char *path, const char *body,
                   long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, method, path, key, body, &resp);
    if (st != want)
        fail_msg("%s %s: %ld, wanted %ld: %s", method, path, st, want,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
    json_object_put(resp);
}

/* The fake as a provider, an integration "notes" with connection "c1" (its own API key),
 * and both actions, in the environment of key. */
static void set_up_environment(const char *key, const char *api_key)
{
    jn_test_fake_api_key_connection(&gw, key, &fake, "fake-key", "notes", "c1", api_key);
    jn_test_allow_loopback(&gw, key);
    json_object *fns = json_object_new_array();
    const char *const scripts[][2] = {{"slow", slow}, {"quick", quick}};
    for (size_t i = 0; i < 2; i++) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "name", json_object_new_string(scripts[i][0]));
        json_object_object_add(f, "source", json_object_new_string(scripts[i][1]));
        json_object_array_add(fns, f);
    }
    json_object *deploy = json_object_new_object();
    json_object_object_add(deploy, "functions", fns);
    api_ok(key, "PUT", "/junction/integrations/notes/functions", json_object_to_json_string(deploy),
           200);
    json_object_put(deploy);
}

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "fairness_fake_provider");
    jn_test_gateway_start(&gw, GATEWAY_BIN, service_env);
    set_up_environment(gw.dev_key, "k-fairness-dev");
    set_up_environment(gw.prod_key, "k-fairness-prod");
    jn_test_service_start(&worker, &gw, WORKER_BIN, "fairness_worker", service_env, worker_admin);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bool clean = jn_test_service_stop(&worker, 30000);
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    assert_true(clean);
    return 0;
}

static long trigger(const char *key, const char *action, bool async, json_object **resp)
{
    char url[128], auth[256], body[128];
    snprintf(url, sizeof url, "%s/action/trigger", gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    snprintf(body, sizeof body, "{\"action_name\":\"%s\"}", action);
    const char *headers[] = {auth,
                             "Connection-Id: c1",
                             "Provider-Config-Key: notes",
                             "Content-Type: application/json",
                             async ? "X-Async: true" : NULL,
                             NULL};
    char *text = NULL;
    long st = jn_test_http("POST", url, headers, body, strlen(body), &text);
    *resp = text ? json_tokener_parse(text) : NULL;
    free(text);
    return st;
}

static long long count(const char *sql)
{
    char *v = jn_test_sql_value(gw.db_url, sql);
    long long n = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return n;
}

#define DEV_SLOW                                                                                   \
    "FROM jobs j JOIN environments e ON e.id = j.environment_id "                                  \
    "WHERE e.name = 'dev' AND j.function_name = 'slow'"

static bool dev_running(void *ud)
{
    (void)ud;
    return count("SELECT count(*) " DEV_SLOW " AND j.state = 'running'") >= 1;
}

static bool dev_done(void *ud)
{
    (void)ud;
    return count("SELECT count(*) " DEV_SLOW " AND j.state = 'succeeded'") == BACKLOG;
}

static void test_one_environment_cannot_hold_every_thread(void **state)
{
    (void)state;
    for (int i = 0; i < BACKLOG; i++) {
        json_object *resp = NULL;
        jn_test_expect_status(trigger(gw.dev_key, "slow", true, &resp), 202, resp, "dev backlog");
        json_object_put(resp);
    }
    assert_true(jn_test_wait_until(dev_running, NULL, 30000));

    /* Prod's call runs beside dev's backlog, not after it. */
    json_object *resp = NULL;
    long st = trigger(gw.prod_key, "quick", false, &resp);
    long long dev_waiting = count("SELECT count(*) " DEV_SLOW " AND j.state = 'queued'");
    jn_test_expect_status(st, 200, resp, "prod's quick action");
    assert_int_equal(json_object_get_int(json_object_object_get(resp, "status")), 200);
    json_object_put(resp);
    if (dev_waiting < 1)
        fail_msg("prod's action waited until dev's backlog had started (%lld dev jobs queued)",
                 dev_waiting);

    /* Dev's backlog ran to the end, one at a time: its share of two threads is one. */
    assert_true(jn_test_wait_until(dev_done, NULL, 60000));
    long long overlaps =
        count("SELECT count(*) FROM (SELECT j.started_at, j.finished_at " DEV_SLOW ") a, "
              "(SELECT j.started_at, j.finished_at " DEV_SLOW ") b "
              "WHERE a.started_at < b.started_at AND b.started_at < a.finished_at");
    assert_int_equal(overlaps, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_environment_cannot_hold_every_thread),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
