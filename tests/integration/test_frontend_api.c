/*
 * Integration: what Nango's frontend SDK and Connect UI need from the gateway, over HTTP
 * against a real gateway: CORS on the end-user routes (and none on the secret-key ones),
 * an environment that narrows the allowed origins, and the Nango shapes the SDKs read
 * (end users, automatic tags, organizations, validation errors, providers, logos,
 * connect session settings).
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

static void expect(long got, long want, json_object *resp, const char *what)
{
    if (got != want)
        fail_msg("%s: %ld (wanted %ld) %s", what, got, want,
                 resp ? json_object_to_json_string(resp) : "");
}

static int setup(void **state)
{
    (void)state;
    jn_test_gateway_start(&gw, GATEWAY_BIN, NULL);
    json_object *resp = NULL;
    expect(jn_test_api(&gw, "PUT", "/junction/providers/fe-key", gw.dev_key,
                       "{\"display_name\":\"FE key\",\"categories\":[\"dev-tools\"],"
                       "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
                       "\"proxy\":{\"base_url\":\"https://api.example.com\","
                       "\"headers\":{\"x-api-key\":\"${apiKey}\"}},"
                       "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\","
                       "\"secret\":true}}}",
                       &resp),
           201, resp, "custom provider");
    json_object_put(resp);
    expect(jn_test_api(&gw, "POST", "/integrations", gw.dev_key,
                       "{\"provider\":\"fe-key\",\"unique_key\":\"fe-key\"}", &resp),
           200, resp, "integration");
    json_object_put(resp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_gateway_stop(&gw);
    return 0;
}

/* A new connect session for body; the token goes to token. */
static void new_session(const char *body, char *token, size_t cap)
{
    json_object *resp = NULL;
    expect(jn_test_api(&gw, "POST", "/connect/sessions", gw.dev_key, body, &resp), 201, resp,
           "connect session");
    snprintf(token, cap, "%s", jn_test_json_str(resp, "data.token"));
    json_object_put(resp);
}

/* method path with extra header lines; returns the status, the response headers in *head
 * (caller frees) and the parsed body in *resp (may be NULL). */
static long call(const char *method, const char *path, const char *const *headers, const char *body,
                 char **head, json_object **resp)
{
    char url[1024], *text = NULL;
    snprintf(url, sizeof url, "%s%s", gw.url, path);
    long st =
        jn_test_http_headers(method, url, headers, body, body ? strlen(body) : 0, &text, head);
    if (resp)
        *resp = json_tokener_parse(text);
    free(text);
    return st;
}

static char *count_connections(void)
{
    return jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections");
}

/* ---- CORS ---- */

static void test_cors_on_end_user_routes_only(void **state)
{
    (void)state;
    char token[128], path[256], value[256], *head = NULL;
    new_session("{\"end_user\":{\"id\":\"cors-user\"}}", token, sizeof token);
    snprintf(path, sizeof path, "/api-auth/api-key/fe-key?connect_session_token=%s", token);

    /* The browser's preflight before the SDK's fetch: 204 with what it asks for. */
    const char *preflight[] = {"Origin: https://app.example.com",
                               "Access-Control-Request-Method: POST",
                               "Access-Control-Request-Headers: content-type", NULL};
    assert_int_equal(call("OPTIONS", path, preflight, NULL, &head, NULL), 204);
    assert_int_equal(jn_test_header_value(head, "Access-Control-Allow-Origin", value, sizeof value),
                     1);
    assert_string_equal(value, "*");
    jn_test_header_value(head, "Access-Control-Allow-Methods", value, sizeof value);
    assert_non_null(strstr(value, "POST"));
    jn_test_header_value(head, "Access-Control-Allow-Headers", value, sizeof value);
    assert_non_null(strcasestr(value, "content-type"));
    free(head);

    /* The call itself: created, and readable by the page. */
    const char *post[] = {"Origin: https://app.example.com", "Content-Type: application/json",
                          NULL};
    json_object *resp = NULL;
    long st = call("POST", path, post, "{\"apiKey\":\"k-1\"}", &head, &resp);
    expect(st, 200, resp, "api key");
    assert_non_null(jn_test_json_str(resp, "connectionId"));
    json_object_put(resp);
    assert_int_equal(jn_test_header_value(head, "Access-Control-Allow-Origin", value, sizeof value),
                     1);
    assert_string_equal(value, "*");
    free(head);

    /* An error before the session is known is readable too (the SDK shows its message). */
    assert_int_equal(call("POST", "/api-auth/api-key/fe-key", post, "{}", &head, &resp), 401);
    assert_string_equal(jn_test_json_str(resp, "error.code"), "missing_connect_session_token");
    json_object_put(resp);
    assert_int_equal(jn_test_header_value(head, "Access-Control-Allow-Origin", NULL, 0), 1);
    free(head);

    /* create() posts to /auth/unauthenticated; /connect/session takes the token as Bearer. */
    snprintf(path, sizeof path, "/auth/unauthenticated/fe-key?connect_session_token=%s", token);
    assert_int_equal(call("OPTIONS", path, preflight, NULL, &head, NULL), 204);
    assert_int_equal(jn_test_header_value(head, "Access-Control-Allow-Origin", NULL, 0), 1);
    free(head);
    const char *session_preflight[] = {"Origin: https://app.example.com",
                                       "Access-Control-Request-Method: GET",
                                       "Access-Control-Request-Headers: authorization", NULL};
    assert_int_equal(call("OPTIONS", "/connect/session", session_preflight, NULL, &head, NULL),
                     204);
    jn_test_header_value(head, "Access-Control-Allow-Headers", value, sizeof value);
    assert_non_null(strcasestr(value, "authorization"));
    free(head);
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *session_get[] = {"Origin: https://app.example.com", auth, NULL};
    assert_int_equal(call("GET", "/connect/session", session_get, NULL, &head, NULL), 200);
    assert_int_equal(jn_test_header_value(head, "Access-Control-Allow-Origin", NULL, 0), 1);
    free(head);

    /* Routes that take the secret key never answer a page of another origin. */
    const char *secret_preflight[] = {"Origin: https://app.example.com",
                                      "Access-Control-Request-Method: GET",
                                      "Access-Control-Request-Headers: authorization", NULL};
    const char *secret_paths[] = {"/connections", "/integrations",   "/connect/sessions",
                                  "/providers",   "/proxy/anything", "/junction/environment"};
    for (size_t i = 0; i < sizeof secret_paths / sizeof secret_paths[0]; i++) {
        call("OPTIONS", secret_paths[i], secret_preflight, NULL, &head, NULL);
        if (jn_test_header_value(head, "Access-Control-Allow-Origin", NULL, 0) != 0)
            fail_msg("a preflight to %s was allowed:\n%s", secret_paths[i], head);
        free(head);
    }
    char key_auth[200];
    snprintf(key_auth, sizeof key_auth, "Authorization: Bearer %s", gw.dev_key);
    const char *secret_get[] = {"Origin: https://app.example.com", key_auth, NULL};
    assert_int_equal(call("GET", "/connections", secret_get, NULL, &head, NULL), 200);
    assert_int_equal(jn_test_header_value(head, "Access-Control-Allow-Origin", NULL, 0), 0);
    free(head);
}

static void set_origins(const char *list)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE environments SET cors_allowed_origins = '%s' WHERE name = 'dev' RETURNING 1",
             list);
    free(jn_test_sql_value(gw.db_url, sql));
}

static void test_environment_narrows_origins(void **state)
{
    (void)state;
    set_origins("https://app.example.com, http://localhost:5173");
    char token[128], path[256], value[256], *head = NULL;
    new_session("{\"end_user\":{\"id\":\"narrow-user\"}}", token, sizeof token);
    snprintf(path, sizeof path, "/api-auth/api-key/fe-key?connect_session_token=%s", token);

    /* A listed origin: its own name comes back, and caches are told it depends on it. */
    const char *ok_preflight[] = {"Origin: http://localhost:5173",
                                  "Access-Control-Request-Method: POST",
                                  "Access-Control-Request-Headers: content-type", NULL};
    assert_int_equal(call("OPTIONS", path, ok_preflight, NULL, &head, NULL), 204);
    jn_test_header_value(head, "Access-Control-Allow-Origin", value, sizeof value);
    assert_string_equal(value, "http://localhost:5173");
    jn_test_header_value(head, "Vary", value, sizeof value);
    assert_string_equal(value, "Origin");
    free(head);

    /* Another origin: no permission in the preflight, and the call itself (which a
     * non-browser could still send with that Origin) is refused before anything is stored. */
    const char *bad_preflight[] = {"Origin: https://evil.example",
                                   "Access-Control-Request-Method: POST",
                                   "Access-Control-Request-Headers: content-type", NULL};
    assert_int_equal(call("OPTIONS", path, bad_preflight, NULL, &head, NULL), 204);
    assert_int_equal(jn_test_header_value(head, "Access-Control-Allow-Origin", NULL, 0), 0);
    free(head);
    char *before = count_connections();
    const char *bad_post[] = {"Origin: https://evil.example", "Content-Type: application/json",
                              NULL};
    json_object *resp = NULL;
    assert_int_equal(call("POST", path, bad_post, "{\"apiKey\":\"k-2\"}", &head, &resp), 403);
    assert_string_equal(jn_test_json_str(resp, "error.code"), "origin_not_allowed");
    json_object_put(resp);
    assert_int_equal(jn_test_header_value(head, "Access-Control-Allow-Origin", NULL, 0), 0);
    free(head);
    char *after = count_connections();
    assert_string_equal(before, after);
    free(after);
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *bad_get[] = {"Origin: https://evil.example", auth, NULL};
    assert_int_equal(call("GET", "/connect/session", bad_get, NULL, &head, NULL), 403);
    free(head);

    /* A listed origin written differently (default port, case) and the gateway's own
     * pages both pass. */
    const char *ok_post[] = {"Origin: https://APP.example.com:443",
                             "Content-Type: application/json", NULL};
    assert_int_equal(call("POST", path, ok_post, "{\"apiKey\":\"k-3\"}", &head, NULL), 200);
    free(head);
    char own[128];
    snprintf(own, sizeof own, "Origin: %s", gw.url);
    const char *own_post[] = {own, "Content-Type: application/json", NULL};
    assert_int_equal(call("POST", path, own_post, "{\"apiKey\":\"k-4\"}", &head, NULL), 200);
    free(head);
    after = count_connections();
    assert_int_equal(strtol(after, NULL, 10), strtol(before, NULL, 10) + 2);
    free(before);
    free(after);
    set_origins("");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cors_on_end_user_routes_only),
        cmocka_unit_test(test_environment_narrows_origins),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
