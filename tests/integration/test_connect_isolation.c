/*
 * Integration: an end user's connect flow that waits on a slow provider (here a token
 * endpoint that takes 4 s) holds none of the threads that serve the rest of the API, and
 * one environment's flows cannot take all the room: past
 * JUNCTION_LONG_REQUESTS_PER_ENVIRONMENT at once, its next ones are refused at once with
 * 503 while other environments' flows and every other route go on.
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

#include "fake_oauth.h"
#include "harness.h"

#define PER_ENV 3
#define FLOWS 9
#define TOKEN_LATENCY_MS 4000

static jn_test_fake_t fake;
static jn_test_gateway_t gw;

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "isolation_fake_provider");
    char per_env[64];
    snprintf(per_env, sizeof per_env, "JUNCTION_LONG_REQUESTS_PER_ENVIRONMENT=%d", PER_ENV);
    /* Few task threads: if a flow held one, the API would stall at once. */
    const char *env[] = {per_env, "JUNCTION_TASK_THREADS=2", NULL};
    jn_test_gateway_start(&gw, GATEWAY_BIN, env);
    jn_test_fake_setup_gateway(&gw, &fake);
    jn_test_fake_allow(&gw);
    char knobs[64];
    snprintf(knobs, sizeof knobs, "{\"token_latency_ms\":%d}", TOKEN_LATENCY_MS);
    jn_test_fake_config(&fake, knobs);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    return 0;
}

typedef struct {
    char path[256];
    long status;
    long ms;
} flow_t;

static void *run_flow(void *arg)
{
    flow_t *f = arg;
    long t0 = jn_test_now_ms();
    f->status =
        jn_test_api(&gw, "POST", f->path, NULL,
                    "{\"client_id\":\"test-client\",\"client_secret\":\"test-secret\"}", NULL);
    f->ms = jn_test_now_ms() - t0;
    return NULL;
}

static void session_path(int i, char *out, size_t cap)
{
    json_object *resp = NULL;
    char body[96];
    snprintf(body, sizeof body, "{\"end_user\":{\"id\":\"slow-%d\"}}", i);
    jn_test_expect_status(jn_test_api(&gw, "POST", "/connect/sessions", gw.dev_key, body, &resp),
                          201, resp, "connect session");
    snprintf(out, cap, "/oauth2/auth/fake-cc?connect_session_token=%s",
             jn_test_json_str(resp, "data.token"));
    json_object_put(resp);
}

static void test_slow_provider_holds_nothing_else(void **state)
{
    (void)state;
    static flow_t flows[FLOWS];
    pthread_t threads[FLOWS];
    for (int i = 0; i < FLOWS; i++)
        session_path(i, flows[i].path, sizeof flows[i].path);
    for (int i = 0; i < FLOWS; i++)
        pthread_create(&threads[i], NULL, run_flow, &flows[i]);

    /* While the flows wait on the token endpoint, the API answers as usual. */
    long worst = 0;
    for (int i = 0; i < 20; i++) {
        long t0 = jn_test_now_ms();
        json_object *resp = NULL;
        long st =
            jn_test_api(&gw, "GET", "/integrations", i % 2 ? gw.dev_key : gw.prod_key, NULL, &resp);
        long ms = jn_test_now_ms() - t0;
        json_object_put(resp);
        assert_int_equal(st, 200);
        worst = ms > worst ? ms : worst;
    }
    for (int i = 0; i < FLOWS; i++)
        pthread_join(threads[i], NULL);
    if (worst > 1000)
        fail_msg("GET /integrations took %ld ms while connect flows waited on a provider", worst);

    /* PER_ENV flows went through; the rest were refused without waiting. */
    int created = 0, refused = 0;
    for (int i = 0; i < FLOWS; i++) {
        if (flows[i].status == 200) {
            created++;
            assert_true(flows[i].ms >= TOKEN_LATENCY_MS - 200);
        } else if (flows[i].status == 503) {
            refused++;
            if (flows[i].ms > 1000)
                fail_msg("a refused flow waited %ld ms", flows[i].ms);
        } else {
            fail_msg("flow %d answered %ld", i, flows[i].status);
        }
    }
    assert_int_equal(created, PER_ENV);
    assert_int_equal(refused, FLOWS - PER_ENV);

    /* The slots are given back: the next flow goes through. */
    jn_test_fake_config(&fake, "{\"token_latency_ms\":0}");
    flow_t again;
    session_path(100, again.path, sizeof again.path);
    run_flow(&again);
    assert_int_equal(again.status, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_provider_holds_nothing_else),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
