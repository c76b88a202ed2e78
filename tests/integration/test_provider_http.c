/*
 * Integration: the provider HTTP layer (common/providers/provider_http.c) and the pagination
 * strategies (common/providers/paginate.c) driven together against the fake provider, without a
 * gateway: every strategy walks all pages, a network error is retried and then reported,
 * a slow drip arrives whole, and the egress policy refuses a DNS name that resolves to
 * loopback.
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

#include "providers/egress.h"
#include "harness.h"
#include "core/log.h"
#include "providers/paginate.h"
#include "net/loop.h"
#include "providers/provider_http.h"

static jn_test_process_t fake;
static char fake_url[64];
static jn_loop_t *loop;
static jn_provider_http_t *http;
static jn_egress_policy_t *loopback_ok;

static bool fake_listening(void *ud)
{
    (void)ud;
    char *log = jn_test_read_log(&fake);
    const char *line = strstr(log, "listening on ");
    if (line)
        snprintf(fake_url, sizeof fake_url, "http://127.0.0.1:%ld", strtol(line + 13, NULL, 10));
    free(log);
    return line != NULL;
}

static int setup(void **state)
{
    (void)state;
    jn_log_init("test_provider_http", JN_LOG_WARN);
    const char *argv[] = {FAKE_PROVIDER_BIN, NULL};
    jn_test_spawn(&fake, argv, NULL, "provider_http_fake");
    assert_true(jn_test_wait_until(fake_listening, NULL, 10000));
    char url[128], *body = NULL;
    snprintf(url, sizeof url, "%s/_admin/api_keys", fake_url);
    jn_test_http("POST", url, (const char *[]){"Content-Type: application/json", NULL},
                 "{\"key\":\"k\"}", 11, &body);
    free(body);
    loop = jn_loop_new("test");
    jn_loop_spawn(loop);
    jn_provider_http_options_t opts = {.loop = loop};
    http = jn_provider_http_new(&opts);
    char why[128];
    assert_int_equal(jn_egress_policy_new("127.0.0.0/8", &loopback_ok, why, sizeof why), JN_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_provider_http_free(http);
    jn_loop_stop(loop);
    jn_loop_free(loop);
    jn_egress_policy_free(loopback_ok);
    jn_test_signal(&fake, SIGTERM);
    jn_test_process_wait(&fake, 10000);
    jn_test_process_kill(&fake);
    return 0;
}

static json_object *provider_with(const char *paginate)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"name\":\"fake\",\"auth_mode\":\"API_KEY\",\"proxy\":{\"base_url\":\"%s\","
             "\"headers\":{\"x-api-key\":\"${apiKey}\"},\"paginate\":%s}}",
             fake_url, paginate);
    json_object *p = json_tokener_parse(text);
    assert_non_null(p);
    return p;
}

/* Walks every page of endpoint with the provider's paginate config; returns the ids. */
static int walk(const char *paginate, const char *endpoint, int limit, int *pages)
{
    json_object *provider = provider_with(paginate);
    json_object *creds = json_tokener_parse("{\"type\":\"API_KEY\",\"apiKey\":\"k\"}");
    json_object *paginate_cfg = NULL, *proxy = NULL;
    json_object_object_get_ex(provider, "proxy", &proxy);
    json_object_object_get_ex(proxy, "paginate", &paginate_cfg);
    jn_paginator_t *p = NULL;
    char why[256];
    assert_int_equal(jn_paginator_new(paginate_cfg, NULL, limit, &p, why, sizeof why), JN_OK);
    jn_provider_target_t target = {"fake", provider, creds, NULL};
    json_object *params = jn_paginator_first_params(p);
    char *next_url = NULL;
    bool seen[1000] = {false};
    int total = 0;
    *pages = 0;
    for (;;) {
        char query[512] = "";
        json_object_object_foreach(params, k, v)
        {
            size_t n = strlen(query);
            snprintf(query + n, sizeof query - n, "%s%s=%s", n ? "&" : "", k,
                     json_object_get_string(v));
        }
        jn_provider_call_t call = {.endpoint = next_url ? "" : endpoint,
                                   .query = next_url ? NULL : query,
                                   .base_url_override = next_url,
                                   .egress = loopback_ok};
        jn_provider_response_t res;
        assert_int_equal(jn_provider_fetch(http, 1, &target, &call, 1 << 20, &res, why, sizeof why),
                         JN_OK);
        assert_int_equal(res.status, 200);
        (*pages)++;
        json_object *body = json_tokener_parse(res.body);
        json_object *records = NULL, *next_params = NULL;
        bool done = false;
        free(next_url);
        next_url = NULL;
        jn_err_t err =
            jn_paginator_next(p, (int)res.status, jn_provider_response_header(&res, "link"), body,
                              &records, &done, &next_url, &next_params, why, sizeof why);
        if (err)
            fail_msg("page %d: %s", *pages, why);
        for (size_t i = 0; records && i < json_object_array_length(records); i++) {
            json_object *id = NULL;
            json_object_object_get_ex(json_object_array_get_idx(records, i), "seq", &id);
            int seq = json_object_get_int(id);
            assert_true(seq >= 1 && seq < 1000);
            assert_false(seen[seq]); /* never twice */
            seen[seq] = true;
            total++;
        }
        json_object_put(body);
        jn_provider_response_cleanup(&res);
        if (done)
            break;
        if (next_params) {
            json_object_put(params);
            params = next_params;
        }
        assert_true(*pages < 50);
    }
    free(next_url);
    json_object_put(params);
    jn_paginator_free(p);
    json_object_put(provider);
    json_object_put(creds);
    return total;
}

static void test_every_strategy_walks_all_pages(void **state)
{
    (void)state;
    int pages = 0;
    assert_int_equal(
        walk("{\"type\":\"cursor\",\"cursor_path_in_response\":\"next_cursor\","
             "\"cursor_name_in_request\":\"cursor\",\"limit_name_in_request\":\"limit\","
             "\"response_path\":\"items\"}",
             "/api/items", 50, &pages),
        250);
    assert_true(pages >= 5);
    assert_int_equal(walk("{\"type\":\"link\",\"link_rel_in_response_header\":\"next\","
                          "\"limit_name_in_request\":\"limit\",\"response_path\":\"items\"}",
                          "/api/items/link", 60, &pages),
                     250);
    assert_true(pages >= 5);
    assert_int_equal(walk("{\"type\":\"link\",\"link_path_in_response_body\":\"next_url\","
                          "\"limit_name_in_request\":\"limit\",\"response_path\":\"items\"}",
                          "/api/items/link", 100, &pages),
                     250);
    assert_true(pages >= 3);
    assert_int_equal(walk("{\"type\":\"offset\",\"offset_name_in_request\":\"offset\","
                          "\"limit_name_in_request\":\"limit\",\"response_path\":\"items\"}",
                          "/api/items/offset", 40, &pages),
                     250);
    assert_true(pages >= 7);
    assert_int_equal(walk("{\"type\":\"page\",\"page_name_in_request\":\"page\","
                          "\"limit_name_in_request\":\"per_page\",\"response_path\":\"items\"}",
                          "/api/items/page", 100, &pages),
                     250);
    assert_true(pages >= 3);
}

static void test_network_error_is_retried_then_reported(void **state)
{
    (void)state;
    int closed_port = jn_test_free_port(); /* nothing listens there */
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", closed_port);
    json_object *provider = provider_with("null");
    jn_provider_target_t target = {"fake", provider, NULL, NULL};
    jn_provider_call_t call = {.endpoint = "/x",
                               .base_url_override = base,
                               .retries = 2,
                               .max_total_wait_ms = 20000,
                               .egress = loopback_ok};
    jn_provider_response_t res;
    char why[256];
    assert_int_equal(jn_provider_fetch(http, 1, &target, &call, 4096, &res, why, sizeof why),
                     JN_ERR_UPSTREAM);
    assert_non_null(strstr(why, "did not answer"));
    json_object_put(provider);
}

static void test_slow_drip_arrives_whole(void **state)
{
    (void)state;
    json_object *provider = provider_with("null");
    json_object *creds = json_tokener_parse("{\"apiKey\":\"k\"}");
    jn_provider_target_t target = {"fake", provider, creds, NULL};
    jn_provider_call_t call = {
        .endpoint = "/api/drip", .query = "bytes=256&interval_ms=20", .egress = loopback_ok};
    jn_provider_response_t res;
    char why[256];
    assert_int_equal(jn_provider_fetch(http, 1, &target, &call, 4096, &res, why, sizeof why),
                     JN_OK);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.body_len, 256);
    jn_provider_response_cleanup(&res);
    /* Over the cap: refused, not truncated silently. */
    call.query = "bytes=8192&interval_ms=1";
    assert_int_equal(jn_provider_fetch(http, 1, &target, &call, 4096, &res, why, sizeof why),
                     JN_ERR_TOO_LARGE);
    json_object_put(provider);
    json_object_put(creds);
}

static void test_dns_name_to_loopback_is_refused(void **state)
{
    (void)state;
    json_object *provider = provider_with("null");
    char base[64];
    snprintf(base, sizeof base, "http://localhost:%s", strrchr(fake_url, ':') + 1);
    jn_provider_target_t target = {"fake", provider, NULL, NULL};
    jn_egress_policy_t *strict = NULL;
    char why[256];
    assert_int_equal(jn_egress_policy_new(NULL, &strict, why, sizeof why), JN_OK);
    jn_provider_call_t call = {
        .endpoint = "/api/me", .base_url_override = base, .retries = 3, .egress = strict};
    jn_provider_response_t res;
    assert_int_equal(jn_provider_fetch(http, 1, &target, &call, 4096, &res, why, sizeof why),
                     JN_ERR_INVALID);
    assert_non_null(strstr(why, "loopback"));
    /* The pooled connection an allowed call leaves behind is not borrowed by a strict one. */
    call.egress = loopback_ok;
    call.retries = 0;
    assert_int_equal(jn_provider_fetch(http, 1, &target, &call, 1 << 20, &res, why, sizeof why),
                     JN_OK);
    jn_provider_response_cleanup(&res);
    call.egress = strict;
    assert_int_equal(jn_provider_fetch(http, 1, &target, &call, 4096, &res, why, sizeof why),
                     JN_ERR_INVALID);
    jn_egress_policy_free(strict);
    json_object_put(provider);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_strategy_walks_all_pages),
        cmocka_unit_test(test_network_error_is_retried_then_reported),
        cmocka_unit_test(test_slow_drip_arrives_whole),
        cmocka_unit_test(test_dns_name_to_loopback_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
