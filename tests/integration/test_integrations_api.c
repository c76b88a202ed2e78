/*
 * Integration: environments, secret keys, the provider catalog and the integrations API
 * against a real gateway and PostgreSQL. Every bad request must get its 4xx and leave
 * the stored rows exactly as they were.
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

#include "harness.h"

static jn_test_gateway_t gw;

static int setup(void **state)
{
    (void)state;
    const char *env[] = {"JUNCTION_MAX_BODY_BYTES=1048576",
                         "JUNCTION_SERVER_URL=https://junction.example.test/", NULL};
    jn_test_gateway_start(&gw, GATEWAY_BIN, env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_gateway_stop(&gw);
    return 0;
}

/* A fingerprint of every stored row that the API can change. */
static char *snapshot(void)
{
    return jn_test_sql_value(
        gw.db_url,
        "SELECT md5(coalesce((SELECT string_agg(t::text, '|' ORDER BY t.id) FROM integrations t), "
        "'')"
        " || coalesce((SELECT string_agg(c::text, '|' ORDER BY c.id) FROM custom_providers c), '')"
        " || coalesce((SELECT string_agg(e::text, '|' ORDER BY e.id) FROM environments e), ''))");
}

static void expect_error(long got, long want, json_object *resp, const char *code,
                         const char *mention, const char *what)
{
    if (got != want)
        fail_msg("%s: status %ld, wanted %ld: %s", what, got, want,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
    const char *c = jn_test_json_str(resp, "error.code");
    if (!c || strcmp(c, code) != 0)
        fail_msg("%s: error code %s, wanted %s", what, c ? c : "(none)", code);
    const char *m = jn_test_json_str(resp, "error.message");
    assert_non_null(m);
    if (mention && !strstr(m, mention))
        fail_msg("%s: message '%s' does not mention '%s'", what, m, mention);
}

static void create(const char *key, const char *body)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "POST", "/integrations", key, body, &resp);
    if (st != 200)
        fail_msg("create %s: %ld %s", body, st, resp ? json_object_to_json_string(resp) : "");
    json_object_put(resp);
}

static void test_every_endpoint_requires_the_key(void **state)
{
    (void)state;
    create(gw.dev_key, "{\"provider\":\"github\",\"unique_key\":\"auth-probe\"}");
    const char *routes[][2] = {
        {"GET", "/providers"},
        {"GET", "/providers/github"},
        {"GET", "/integrations"},
        {"POST", "/integrations"},
        {"GET", "/integrations/auth-probe"},
        {"PATCH", "/integrations/auth-probe"},
        {"DELETE", "/integrations/auth-probe"},
        {"GET", "/junction/providers"},
        {"PUT", "/junction/providers/my-api"},
        {"DELETE", "/junction/providers/my-api"},
    };
    char *before = snapshot();
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        json_object *resp = NULL;
        long st = jn_test_api(&gw, routes[i][0], routes[i][1], NULL, "{}", &resp);
        expect_error(st, 401, resp, "missing_auth_header", NULL, routes[i][1]);
        json_object_put(resp);
        st = jn_test_api(&gw, routes[i][0], routes[i][1], "not-the-key-0000000000", "{}", &resp);
        expect_error(st, 401, resp, "unknown_account", NULL, routes[i][1]);
        json_object_put(resp);
    }
    /* Basic instead of Bearer. */
    char url[128];
    snprintf(url, sizeof url, "%s/integrations", gw.url);
    const char *headers[] = {"Authorization: Basic dXNlcjpwYXNz", NULL};
    assert_int_equal(jn_test_http("GET", url, headers, NULL, 0, NULL), 401);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
    json_object *resp = NULL;
    assert_int_equal(
        jn_test_api(&gw, "DELETE", "/integrations/auth-probe", gw.dev_key, NULL, &resp), 200);
    json_object_put(resp);
}

static void test_integration_lifecycle(void **state)
{
    (void)state;
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "POST", "/integrations", gw.dev_key,
                          "{\"provider\":\"github\",\"unique_key\":\"github-prod\","
                          "\"credentials\":{\"type\":\"OAUTH2\",\"client_id\":\"cid-123\","
                          "\"client_secret\":\"TOP-SECRET-abc\",\"scopes\":\"repo,user\"}}",
                          &resp);
    assert_int_equal(st, 200);
    assert_string_equal(jn_test_json_str(resp, "data.unique_key"), "github-prod");
    assert_string_equal(jn_test_json_str(resp, "data.provider"), "github");
    /* The display name defaults to the provider's. */
    assert_non_null(strstr(jn_test_json_str(resp, "data.display_name"), "GitHub"));
    assert_non_null(jn_test_json_str(resp, "data.created_at"));
    /* Without include, no secrets. */
    assert_null(strstr(json_object_to_json_string(resp), "TOP-SECRET"));
    json_object_put(resp);

    /* The secret is not stored in plaintext anywhere in the row. */
    char *row = jn_test_sql_value(
        gw.db_url, "SELECT t::text FROM integrations t WHERE unique_key = 'github-prod'");
    assert_non_null(row);
    assert_null(strstr(row, "TOP-SECRET"));
    assert_non_null(strstr(row, "cid-123"));
    free(row);

    /* Duplicate unique_key. */
    st = jn_test_api(&gw, "POST", "/integrations", gw.dev_key,
                     "{\"provider\":\"slack\",\"unique_key\":\"github-prod\"}", &resp);
    expect_error(st, 409, resp, "duplicate_unique_key", "github-prod", "duplicate");
    json_object_put(resp);

    st = jn_test_api(&gw, "GET", "/integrations/github-prod?include=credentials&include=webhook",
                     gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    assert_string_equal(jn_test_json_str(resp, "data.credentials.client_secret"), "TOP-SECRET-abc");
    assert_string_equal(jn_test_json_str(resp, "data.credentials.type"), "OAUTH2");
    assert_string_equal(jn_test_json_str(resp, "data.credentials.scopes"), "repo,user");
    /* GitHub signs its webhooks: include=webhook gives the URL they are received at, and
     * the webhook secret is never returned (only whether one is set). */
    const char *hook_url = jn_test_json_str(resp, "data.webhook_url");
    assert_non_null(hook_url);
    assert_non_null(strstr(hook_url, "https://junction.example.test/webhook/"));
    assert_non_null(strstr(hook_url, "/github-prod"));
    assert_null(jn_test_json_get(resp, "data.credentials.webhook_secret"));
    assert_false(json_object_get_boolean(jn_test_json_get(resp, "data.has_webhook_secret")));
    const char *logo = jn_test_json_str(resp, "data.logo");
    assert_non_null(logo);
    assert_string_equal(logo, "https://junction.example.test/images/template-logos/github.svg");
    json_object_put(resp);

    /* Rename and change the display name; the secret survives. */
    st = jn_test_api(&gw, "PATCH", "/integrations/github-prod", gw.dev_key,
                     "{\"unique_key\":\"github-main\",\"display_name\":\"Our GitHub\"}", &resp);
    assert_int_equal(st, 200);
    assert_string_equal(jn_test_json_str(resp, "data.unique_key"), "github-main");
    assert_string_equal(jn_test_json_str(resp, "data.display_name"), "Our GitHub");
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/integrations/github-main?include=credentials", gw.dev_key, NULL,
                     &resp);
    assert_int_equal(st, 200);
    assert_string_equal(jn_test_json_str(resp, "data.credentials.client_secret"), "TOP-SECRET-abc");
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/integrations/github-prod", gw.dev_key, NULL, &resp);
    expect_error(st, 404, resp, "not_found", "github-prod", "old name");
    json_object_put(resp);

    /* Rotate the client secret. */
    st = jn_test_api(&gw, "PATCH", "/integrations/github-main", gw.dev_key,
                     "{\"credentials\":{\"type\":\"OAUTH2\",\"client_secret\":\"NEW-SECRET\"}}",
                     &resp);
    assert_int_equal(st, 200);
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/integrations/github-main?include=credentials", gw.dev_key, NULL,
                     &resp);
    assert_string_equal(jn_test_json_str(resp, "data.credentials.client_secret"), "NEW-SECRET");
    assert_string_equal(jn_test_json_str(resp, "data.credentials.client_id"), "cid-123");
    json_object_put(resp);

    /* Rename onto an existing key is a conflict. */
    create(gw.dev_key, "{\"provider\":\"slack\",\"unique_key\":\"slack\"}");
    st = jn_test_api(&gw, "PATCH", "/integrations/github-main", gw.dev_key,
                     "{\"unique_key\":\"slack\"}", &resp);
    expect_error(st, 409, resp, "duplicate_unique_key", "slack", "rename clash");
    json_object_put(resp);

    st = jn_test_api(&gw, "GET", "/integrations", gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    json_object *data = NULL;
    assert_true(json_object_object_get_ex(resp, "data", &data));
    assert_int_equal(json_object_array_length(data), 2);
    json_object_put(resp);

    st = jn_test_api(&gw, "DELETE", "/integrations/slack", gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    assert_string_equal(jn_test_json_str(resp, "success"), "true");
    json_object_put(resp);
    st = jn_test_api(&gw, "DELETE", "/integrations/slack", gw.dev_key, NULL, &resp);
    expect_error(st, 404, resp, "not_found", "slack", "double delete");
    json_object_put(resp);
}

static void test_environments_are_isolated(void **state)
{
    (void)state;
    create(gw.prod_key, "{\"provider\":\"hubspot\",\"unique_key\":\"prod-only\"}");
    create(gw.dev_key, "{\"provider\":\"hubspot\",\"unique_key\":\"dev-only\"}");
    json_object *resp = NULL;
    const char *paths[][2] = {{"GET", "/integrations/prod-only"},
                              {"PATCH", "/integrations/prod-only"},
                              {"DELETE", "/integrations/prod-only"}};
    char *before = snapshot();
    for (size_t i = 0; i < 3; i++) {
        long st = jn_test_api(&gw, paths[i][0], paths[i][1], gw.dev_key, "{\"display_name\":\"x\"}",
                              &resp);
        expect_error(st, 404, resp, "not_found", "prod-only", paths[i][0]);
        json_object_put(resp);
    }
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
    long st = jn_test_api(&gw, "GET", "/integrations", gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    assert_null(strstr(json_object_to_json_string(resp), "prod-only"));
    assert_non_null(strstr(json_object_to_json_string(resp), "dev-only"));
    json_object_put(resp);
    /* The same unique_key may exist in both environments. */
    create(gw.dev_key, "{\"provider\":\"hubspot\",\"unique_key\":\"prod-only\"}");
    st = jn_test_api(&gw, "GET", "/integrations/prod-only", gw.prod_key, NULL, &resp);
    assert_int_equal(st, 200);
    json_object_put(resp);
}

static void test_bad_input_changes_nothing(void **state)
{
    (void)state;
    create(gw.dev_key, "{\"provider\":\"notion\",\"unique_key\":\"notion\"}");
    char longkey[400];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    char long_body[600];
    snprintf(long_body, sizeof long_body, "{\"provider\":\"github\",\"unique_key\":\"%s\"}",
             longkey);
    struct {
        const char *method, *path, *body, *code, *mention;
        long status;
    } cases[] = {
        {"POST", "/integrations", "{\"provider\":\"github\",", "invalid_body", "JSON", 400},
        {"POST", "/integrations", "not json at all", "invalid_body", "JSON", 400},
        {"POST", "/integrations", "[1,2]", "invalid_body", "object", 400},
        {"POST", "/integrations", "{\"provider\":\"github\",\"unique_key\":\"a\"} trailing",
         "invalid_body", NULL, 400},
        {"POST", "/integrations", "", "invalid_body", "empty", 400},
        {"POST", "/integrations", "{\"unique_key\":\"x\"}", "invalid_body", "provider", 400},
        {"POST", "/integrations", "{\"provider\":\"github\"}", "invalid_body", "unique_key", 400},
        {"POST", "/integrations", "{\"provider\":42,\"unique_key\":\"x\"}", "invalid_body",
         "provider", 400},
        {"POST", "/integrations", "{\"provider\":\"github\",\"unique_key\":[\"x\"]}",
         "invalid_body", "unique_key", 400},
        {"POST", "/integrations",
         "{\"provider\":\"github\",\"unique_key\":\"x\",\"forward_webhooks\":\"yes\"}",
         "invalid_body", "forward_webhooks", 400},
        {"POST", "/integrations", "{\"provider\":\"no-such-provider\",\"unique_key\":\"x\"}",
         "invalid_body", "no-such-provider", 400},
        {"POST", "/integrations", long_body, "invalid_body", "unique_key", 400},
        {"POST", "/integrations", "{\"provider\":\"github\",\"unique_key\":\"bad/key\"}",
         "invalid_body", "unique_key", 400},
        {"POST", "/integrations", "{\"provider\":\"github\",\"unique_key\":\"nul\\u0000key\"}",
         "invalid_body", "NUL", 400},
        {"POST", "/integrations", "{\"provider\":\"github\",\"unique_key\":\"x\",\"surprise\":1}",
         "invalid_body", "surprise", 400},
        {"POST", "/integrations",
         "{\"provider\":\"github\",\"unique_key\":\"x\",\"credentials\":{\"type\":\"OAUTH2\","
         "\"client_secret\":7}}",
         "invalid_body", "credentials.client_secret", 400},
        {"POST", "/integrations",
         "{\"provider\":\"github\",\"unique_key\":\"x\",\"credentials\":{\"type\":\"APP\"}}",
         "invalid_body", "credentials.type", 400},
        {"POST", "/integrations",
         "{\"provider\":\"stripe\",\"unique_key\":\"x\",\"credentials\":{\"type\":\"OAUTH2\","
         "\"client_id\":\"a\"}}",
         "invalid_body", "credentials", 400},
        {"POST", "/integrations",
         "{\"provider\":\"github\",\"unique_key\":\"x\",\"integration_config\":{\"a\":1}}",
         "invalid_body", "integration_config.a", 400},
        {"POST", "/integrations",
         "{\"provider\":\"github\",\"unique_key\":\"x\",\"display_name\":\"\\ud800\"}",
         "invalid_body", NULL, 400},
        {"PATCH", "/integrations/notion", "{\"unique_key\":\"\"}", "invalid_body", "unique_key",
         400},
        {"PATCH", "/integrations/notion", "{\"provider\":\"nope\"}", "invalid_body", "nope", 400},
        {"PATCH", "/integrations/notion", "{\"display_name\":false}", "invalid_body",
         "display_name", 400},
        {"PATCH", "/integrations/missing", "{}", "not_found", "missing", 404},
        {"GET", "/integrations/notion?include=secrets", NULL, "invalid_query_params", "include",
         400},
        {"PUT", "/integrations", "{}", "method_not_allowed", NULL, 405},
        {"POST", "/integrations/notion", "{}", "method_not_allowed", NULL, 405},
        {"GET", "/providers/not-a-provider", NULL, "not_found", "not-a-provider", 404},
        {"GET", "/no-such-endpoint", NULL, "not_found", NULL, 404},
    };
    char *before = snapshot();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *resp = NULL;
        long st =
            jn_test_api(&gw, cases[i].method, cases[i].path, gw.dev_key, cases[i].body, &resp);
        char what[96];
        snprintf(what, sizeof what, "case %zu (%s %s)", i, cases[i].method, cases[i].path);
        expect_error(st, cases[i].status, resp, cases[i].code, cases[i].mention, what);
        json_object_put(resp);
    }
    /* A raw NUL byte inside the body. */
    char url[128];
    snprintf(url, sizeof url, "%s/integrations", gw.url);
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
    const char *headers[] = {auth, NULL};
    const char raw[] = "{\"provider\":\"github\",\"unique_key\":\"a\0b\"}";
    assert_int_equal(jn_test_http("POST", url, headers, raw, sizeof raw - 1, NULL), 400);
    /* Deeply nested JSON. */
    char deep[1001];
    memset(deep, '[', 1000);
    deep[1000] = '\0';
    assert_int_equal(jn_test_http("POST", url, headers, deep, strlen(deep), NULL), 400);
    /* An oversize body (the test gateway accepts 1 MiB). */
    size_t big_len = 2 * 1024 * 1024;
    char *big = malloc(big_len);
    memset(big, ' ', big_len);
    big[0] = '{';
    big[big_len - 1] = '}';
    char *body = NULL;
    assert_int_equal(jn_test_http("POST", url, headers, big, big_len, &body), 413);
    assert_non_null(strstr(body, "payload_too_large"));
    free(body);
    free(big);

    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_providers_catalog(void **state)
{
    (void)state;
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "GET", "/providers", gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    json_object *data = NULL;
    assert_true(json_object_object_get_ex(resp, "data", &data));
    assert_true(json_object_array_length(data) >= 50);
    json_object_put(resp);

    st = jn_test_api(&gw, "GET", "/providers?search=HubSp", gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    assert_true(json_object_object_get_ex(resp, "data", &data));
    assert_true(json_object_array_length(data) >= 1);
    assert_string_equal(jn_test_json_str(resp, "data.0.name"), "hubspot");
    json_object_put(resp);

    st = jn_test_api(&gw, "GET", "/providers/zendesk", gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    assert_string_equal(jn_test_json_str(resp, "data.auth_mode"), "OAUTH2");
    assert_non_null(jn_test_json_str(resp, "data.connection_config.subdomain.pattern"));
    json_object_put(resp);
}

static void test_custom_providers(void **state)
{
    (void)state;
    const char *def =
        "{\"display_name\":\"Local test API\",\"categories\":[\"dev-tools\"],"
        "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
        "\"proxy\":{\"base_url\":\"http://127.0.0.1:9\","
        "\"headers\":{\"x-api-key\":\"${apiKey}\"}},"
        "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\",\"secret\":true}}}";
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "PUT", "/junction/providers/local-test-api", gw.dev_key, def, &resp);
    if (st != 201)
        fail_msg("PUT custom provider: %ld %s", st, resp ? json_object_to_json_string(resp) : "");
    json_object_put(resp);
    st = jn_test_api(&gw, "PUT", "/junction/providers/local-test-api", gw.dev_key, def, &resp);
    assert_int_equal(st, 200);
    json_object_put(resp);

    /* Visible to dev, usable in an integration; invisible to prod. */
    st = jn_test_api(&gw, "GET", "/providers/local-test-api", gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    assert_string_equal(jn_test_json_str(resp, "data.auth_mode"), "API_KEY");
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/providers/local-test-api", gw.prod_key, NULL, &resp);
    assert_int_equal(st, 404);
    json_object_put(resp);
    create(gw.dev_key, "{\"provider\":\"local-test-api\",\"unique_key\":\"local\"}");
    st = jn_test_api(&gw, "POST", "/integrations", gw.prod_key,
                     "{\"provider\":\"local-test-api\",\"unique_key\":\"local\"}", &resp);
    expect_error(st, 400, resp, "invalid_body", "local-test-api", "prod uses dev's provider");
    json_object_put(resp);

    char *before = snapshot();
    /* Broken definitions name the field; built-in names cannot be shadowed; in use. */
    st = jn_test_api(
        &gw, "PUT", "/junction/providers/broken", gw.dev_key,
        "{\"display_name\":\"B\",\"categories\":[\"dev-tools\"],\"docs\":\"https://e.com\","
        "\"auth_mode\":\"OAUTH2\",\"proxy\":{\"base_url\":\"https://api.e.com\"}}",
        &resp);
    expect_error(st, 400, resp, "invalid_body", "authorization_url", "broken custom provider");
    json_object_put(resp);
    st = jn_test_api(&gw, "PUT", "/junction/providers/github", gw.dev_key, def, &resp);
    expect_error(st, 409, resp, "conflict", "github", "shadow built-in");
    json_object_put(resp);
    st = jn_test_api(&gw, "DELETE", "/junction/providers/local-test-api", gw.dev_key, NULL, &resp);
    expect_error(st, 409, resp, "conflict", "local-test-api", "delete in use");
    json_object_put(resp);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);

    st = jn_test_api(&gw, "DELETE", "/integrations/local", gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    json_object_put(resp);
    st = jn_test_api(&gw, "DELETE", "/junction/providers/local-test-api", gw.dev_key, NULL, &resp);
    assert_int_equal(st, 200);
    json_object_put(resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_endpoint_requires_the_key),
        cmocka_unit_test(test_integration_lifecycle),
        cmocka_unit_test(test_environments_are_isolated),
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_providers_catalog),
        cmocka_unit_test(test_custom_providers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
