/*
 * Integration: two gateways on one database share what a proxied call needs only through
 * PostgreSQL. A token refreshed through one is used by the other's next proxy call (and
 * costs no second token request), and a connection deleted through one is refused by the
 * other once the change notice arrives.
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

#include "fake_oauth.h"
#include "harness.h"

static jn_test_gateway_t gw1;
static jn_test_process_t gw2_proc;
static char gw2_url[64], gw2_admin[64];
static jn_test_fake_t fake;

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "cache_fake_provider");
    jn_test_gateway_start(&gw1, GATEWAY_BIN, NULL);
    jn_test_fake_setup_gateway(&gw1, &fake);
    jn_test_fake_allow(&gw1);
    /* The second gateway: same database, same keys, its own ports. */
    jn_test_gateway_beside(&gw2_proc, &gw1, GATEWAY_BIN, "cache_second_gateway", gw2_url,
                           gw2_admin);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_signal(&gw2_proc, SIGTERM);
    jn_test_process_wait(&gw2_proc, 20000);
    jn_test_process_kill(&gw2_proc);
    jn_test_gateway_stop(&gw1);
    jn_test_fake_stop(&fake);
    return 0;
}

/* A proxied GET /me (the fake's /api/me) through the gateway at base: the status, and the bearer
 * token the provider received (the fake echoes the request's headers). */
static long proxy_me(const char *base, const char *cid, char *token, size_t cap)
{
    char url[160], auth[200], conn[120], *body = NULL;
    snprintf(url, sizeof url, "%s/proxy/me", base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw1.dev_key);
    snprintf(conn, sizeof conn, "Connection-Id: %s", cid);
    const char *headers[] = {auth, conn, "Provider-Config-Key: fake", NULL};
    long st = jn_test_http("GET", url, headers, NULL, 0, &body);
    token[0] = '\0';
    json_object *o = json_tokener_parse(body ? body : "");
    const char *seen = jn_test_json_str(o, "headers.authorization");
    if (seen && strncmp(seen, "Bearer ", 7) == 0)
        snprintf(token, cap, "%s", seen + 7);
    json_object_put(o);
    free(body);
    return st;
}

static void test_refresh_on_one_gateway_is_used_by_the_other(void **state)
{
    (void)state;
    char cid[64], callback[2048];
    jn_test_oauth_dance(&gw1, &fake, NULL, cid, sizeof cid, callback, sizeof callback);

    /* The second gateway proxies once: it now holds the connection in memory. */
    char before_token[128], after_token[128];
    assert_int_equal(proxy_me(gw2_url, cid, before_token, sizeof before_token), 200);
    assert_true(before_token[0]);

    /* Through the first gateway: the provider stops accepting the old token and a forced
     * refresh stores a new one. */
    jn_test_fake_call(&fake, "POST", "/_admin/revoke", "{\"access_tokens\":true}", NULL);
    long requests = jn_test_fake_token_requests(&fake, "refresh_token");
    char path[256];
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&force_refresh=true", cid);
    json_object *resp = NULL;
    jn_test_expect_status(jn_test_api(&gw1, "GET", path, gw1.dev_key, NULL, &resp), 200, resp,
                          "force refresh");
    char fresh[128];
    snprintf(fresh, sizeof fresh, "%s", jn_test_json_str(resp, "credentials.access_token"));
    json_object_put(resp);
    assert_string_not_equal(fresh, before_token);
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), requests + 1);

    /* The second gateway's next call carries the new token, and nobody asked the token
     * endpoint again: the change notice dropped its copy, or, if the call raced the
     * notice, the 401 made it read what the first gateway stored. */
    assert_int_equal(proxy_me(gw2_url, cid, after_token, sizeof after_token), 200);
    assert_string_equal(after_token, fresh);
    assert_int_equal(jn_test_fake_token_requests(&fake, "refresh_token"), requests + 1);
}

typedef struct {
    const char *cid;
} gone_t;

static bool refused_by_second(void *ud)
{
    const gone_t *g = ud;
    char token[128];
    return proxy_me(gw2_url, g->cid, token, sizeof token) == 404;
}

static void test_delete_on_one_gateway_is_seen_by_the_other(void **state)
{
    (void)state;
    char cid[64], callback[2048], token[128];
    jn_test_oauth_dance(&gw1, &fake, NULL, cid, sizeof cid, callback, sizeof callback);
    assert_int_equal(proxy_me(gw2_url, cid, token, sizeof token), 200);
    char path[256];
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake", cid);
    jn_test_expect_status(jn_test_api(&gw1, "DELETE", path, gw1.dev_key, NULL, NULL), 200, NULL,
                          "delete");
    /* The change notice travels through PostgreSQL: allow it a moment, no more. */
    gone_t g = {cid};
    assert_true(jn_test_wait_until(refused_by_second, &g, 3000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refresh_on_one_gateway_is_used_by_the_other),
        cmocka_unit_test(test_delete_on_one_gateway_is_seen_by_the_other),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
