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

/* ---- Nango's shapes ---- */

/* The connection created with an API key through a session of body; its id to cid. */
static void connect_with_session(const char *body, char *cid, size_t cap)
{
    char token[128], path[256];
    new_session(body, token, sizeof token);
    snprintf(path, sizeof path, "/api-auth/api-key/fe-key?connect_session_token=%s", token);
    json_object *resp = NULL;
    expect(jn_test_api(&gw, "POST", path, NULL, "{\"apiKey\":\"k\"}", &resp), 200, resp, "api key");
    snprintf(cid, cap, "%s", jn_test_json_str(resp, "connectionId"));
    json_object_put(resp);
}

/* The list of GET /connections?query (one connection expected) in *resp. */
static const char *only_connection(const char *query, json_object **resp)
{
    char path[512];
    snprintf(path, sizeof path, "/connections?%s", query);
    expect(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, resp), 200, *resp, path);
    json_object *list = NULL;
    json_object_object_get_ex(*resp, "connections", &list);
    if (json_object_array_length(list) != 1)
        fail_msg("%s: %s", path, json_object_to_json_string(*resp));
    return jn_test_json_str(*resp, "connections.0.connection_id");
}

static void test_session_organization_and_tags_reach_the_connection(void **state)
{
    (void)state;
    char cid[64];
    connect_with_session("{\"end_user\":{\"id\":\"u-org\",\"email\":\"ada@acme.test\","
                         "\"display_name\":\"Ada\",\"tags\":{\"Plan\":\"pro\"}},"
                         "\"organization\":{\"id\":\"org-acme\",\"display_name\":\"Acme\"},"
                         "\"tags\":{\"team\":\"core\",\"end_user_display_name\":\"A.\"}}",
                         cid, sizeof cid);
    json_object *resp = NULL;
    assert_string_equal(only_connection("endUserOrganizationId=org-acme", &resp), cid);
    assert_string_equal(jn_test_json_str(resp, "connections.0.end_user.organization.id"),
                        "org-acme");
    assert_string_equal(jn_test_json_str(resp, "connections.0.end_user.organization.display_name"),
                        "Acme");
    json_object_put(resp);
    /* The SDK's listConnections({tags: {end_user_email}}) and friends. */
    assert_string_equal(only_connection("tags[end_user_email]=ada@acme.test", &resp), cid);
    const struct {
        const char *key, *value;
    } want[] = {{"end_user_id", "u-org"},
                {"end_user_email", "ada@acme.test"},
                {"organization_id", "org-acme"},
                {"organization_display_name", "Acme"},
                {"plan", "pro"},
                {"team", "core"},
                /* the caller's own tags win over the automatic ones */
                {"end_user_display_name", "A."}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char path[96];
        snprintf(path, sizeof path, "connections.0.tags.%s", want[i].key);
        const char *got = jn_test_json_str(resp, path);
        if (!got || strcmp(got, want[i].value) != 0)
            fail_msg("tag %s: %s", want[i].key, json_object_to_json_string(resp));
    }
    json_object_put(resp);
    assert_string_equal(only_connection("tags[organization_id]=org-acme&tags[team]=core", &resp),
                        cid);
    json_object_put(resp);

    /* An import with an end user gets the same automatic tags. */
    expect(jn_test_api(&gw, "POST", "/connections", gw.dev_key,
                       "{\"provider_config_key\":\"fe-key\",\"connection_id\":\"imported\","
                       "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"k\"},"
                       "\"end_user\":{\"id\":\"u-imp\",\"email\":\"imp@acme.test\"}}",
                       &resp),
           201, resp, "import");
    assert_string_equal(jn_test_json_str(resp, "tags.end_user_email"), "imp@acme.test");
    json_object_put(resp);
}

/* True when o has key with the JSON value null. */
static bool null_key(json_object *o, const char *key)
{
    json_object *v = (json_object *)1;
    return json_object_object_get_ex(o, key, &v) && v == NULL;
}

static void test_end_user_keys_are_always_present(void **state)
{
    (void)state;
    char cid[64];
    connect_with_session("{\"end_user\":{\"id\":\"u-bare\"}}", cid, sizeof cid);
    char path[256];
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fe-key", cid);
    json_object *resp = NULL, *end_user = NULL;
    expect(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp, "connection");
    assert_true(json_object_object_get_ex(resp, "end_user", &end_user));
    assert_string_equal(jn_test_json_str(end_user, "id"), "u-bare");
    const char *nullable[] = {"display_name", "email", "tags", "organization"};
    for (size_t i = 0; i < 4; i++) {
        if (!null_key(end_user, nullable[i]))
            fail_msg("end_user.%s is not null: %s", nullable[i],
                     json_object_to_json_string(end_user));
    }
    json_object_put(resp);
    json_object *list = NULL;
    only_connection("endUserId=u-bare", &list);
    json_object *item = json_object_array_get_idx(json_object_object_get(list, "connections"), 0);
    assert_true(null_key(json_object_object_get(item, "end_user"), "organization"));
    json_object_put(list);
}

static void test_connect_session_shape(void **state)
{
    (void)state;
    char token[128], auth[200];
    new_session("{\"end_user\":{\"id\":\"u-s\"},\"organization\":{\"id\":\"org-s\"},"
                "\"tags\":{\"team\":\"core\"}}",
                token, sizeof token);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    json_object *resp = NULL;
    char *head = NULL;
    assert_int_equal(call("GET", "/connect/session", headers, NULL, &head, &resp), 200);
    free(head);
    json_object *data = json_object_object_get(resp, "data");
    json_object *end_user = json_object_object_get(data, "endUser");
    assert_string_equal(jn_test_json_str(end_user, "organization.id"), "org-s");
    assert_true(null_key(json_object_object_get(end_user, "organization"), "display_name"));
    assert_true(null_key(end_user, "email"));
    assert_string_equal(jn_test_json_str(data, "tags.team"), "core");
    assert_string_equal(jn_test_json_str(data, "tags.organization_id"), "org-s");
    /* Connect UI reads its theme from connectUISettings. */
    assert_string_equal(jn_test_json_str(data, "connectUISettings.defaultTheme"), "system");
    assert_non_null(jn_test_json_str(data, "connectUISettings.theme.light.primary"));
    assert_non_null(jn_test_json_str(data, "connectUISettings.theme.dark.primary"));
    assert_string_equal(jn_test_json_str(data, "connectUISettings.showWatermark"), "false");
    json_object_put(resp);
}

static void test_validation_errors_carry_codes(void **state)
{
    (void)state;
    const struct {
        const char *body, *code, *path;
    } cases[] = {
        {"{\"provider\":\"fe-key\",\"unique_key\":\"x\",\"colour\":1}", "unrecognized_keys",
         "colour"},
        {"{\"unique_key\":\"x\"}", "invalid_type", "provider"},
        {"{\"provider\":7,\"unique_key\":\"x\"}", "invalid_type", "provider"},
        {"{\"provider\":\"fe-key\",\"unique_key\":\"\"}", "too_small", "unique_key"},
        {"not json", "custom", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *resp = NULL;
        expect(jn_test_api(&gw, "POST", "/integrations", gw.dev_key, cases[i].body, &resp), 400,
               resp, cases[i].body);
        const char *code = jn_test_json_str(resp, "error.errors.0.code");
        if (!code || strcmp(code, cases[i].code) != 0)
            fail_msg("%s: %s", cases[i].body, json_object_to_json_string(resp));
        if (cases[i].path)
            assert_string_equal(jn_test_json_str(resp, "error.errors.0.path.0"), cases[i].path);
        json_object_put(resp);
    }
    char long_key[400];
    memset(long_key, 'k', 300);
    long_key[300] = '\0';
    char body[512];
    snprintf(body, sizeof body, "{\"provider\":\"fe-key\",\"unique_key\":\"%s\"}", long_key);
    json_object *resp = NULL;
    expect(jn_test_api(&gw, "POST", "/integrations", gw.dev_key, body, &resp), 400, resp, "long");
    assert_string_equal(jn_test_json_str(resp, "error.errors.0.code"), "too_big");
    json_object_put(resp);
}

static json_object *provider(const char *name, json_object **resp)
{
    char path[128];
    snprintf(path, sizeof path, "/providers/%s", name);
    expect(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, resp), 200, *resp, path);
    return json_object_object_get(*resp, "data");
}

static void test_providers_in_nango_shape(void **state)
{
    (void)state;
    json_object *resp = NULL, *p = NULL, *v = NULL;
    /* PKCE: ours opt-in, Nango's opt-out. */
    p = provider("asana", &resp); /* no pkce, body auth */
    assert_false(json_object_object_get_ex(p, "pkce", &v));
    assert_string_equal(jn_test_json_str(p, "disable_pkce"), "true");
    assert_false(json_object_object_get_ex(p, "token_request_auth_method", &v));
    json_object_put(resp);
    p = provider("airtable", &resp); /* pkce, basic auth */
    assert_false(json_object_object_get_ex(p, "pkce", &v));
    assert_false(json_object_object_get_ex(p, "disable_pkce", &v));
    assert_string_equal(jn_test_json_str(p, "token_request_auth_method"), "basic");
    json_object_put(resp);
    p = provider("notion", &resp);
    assert_string_equal(jn_test_json_str(p, "body_format"), "json");
    assert_false(json_object_object_get_ex(p, "token_request_body_format", &v));
    json_object_put(resp);
    /* Page numbers are offset pagination per page, from 1. */
    p = provider("cloudflare", &resp);
    assert_string_equal(jn_test_json_str(p, "proxy.paginate.type"), "offset");
    assert_string_equal(jn_test_json_str(p, "proxy.paginate.offset_name_in_request"), "page");
    assert_string_equal(jn_test_json_str(p, "proxy.paginate.offset_calculation_method"),
                        "per-page");
    assert_string_equal(jn_test_json_str(p, "proxy.paginate.offset_start_value"), "1");
    assert_string_equal(jn_test_json_str(p, "credentials.apiKey.order"), "1");
    assert_string_equal(jn_test_json_str(p, "credentials.apiKey.automated"), "false");
    json_object_put(resp);
    p = provider("bamboohr-basic", &resp);
    assert_string_equal(jn_test_json_str(p, "credentials.password.default_value"), "x");
    assert_string_equal(jn_test_json_str(p, "credentials.password.order"), "2");
    assert_false(json_object_object_get_ex(
        json_object_object_get(json_object_object_get(p, "credentials"), "password"), "default",
        &v));
    /* A logo URL that answers with an image. */
    const char *logo = jn_test_json_str(p, "logo_url");
    assert_non_null(logo);
    char *head = NULL, *svg = NULL, value[64];
    assert_int_equal(jn_test_http_headers("GET", logo, NULL, NULL, 0, &svg, &head), 200);
    jn_test_header_value(head, "Content-Type", value, sizeof value);
    assert_string_equal(value, "image/svg+xml");
    assert_non_null(strstr(svg, "<svg"));
    free(head);
    free(svg);
    json_object_put(resp);
    char url[128];
    snprintf(url, sizeof url, "%s/images/template-logos/..%%2fetc.svg", gw.url);
    assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, NULL), 404);

    /* The list says the same, and integrations have a logo too. */
    expect(jn_test_api(&gw, "GET", "/providers?search=cloudflare", gw.dev_key, NULL, &resp), 200,
           resp, "list");
    assert_string_equal(jn_test_json_str(resp, "data.0.proxy.paginate.type"), "offset");
    json_object_put(resp);
    expect(jn_test_api(&gw, "GET", "/integrations/fe-key?include=webhook", gw.dev_key, NULL, &resp),
           200, resp, "integration");
    p = json_object_object_get(resp, "data");
    assert_non_null(strstr(jn_test_json_str(p, "logo"), "/images/template-logos/fe-key.svg"));
    /* No webhook_url for a provider that sends no webhooks: an advertised URL must work. */
    assert_false(json_object_object_get_ex(p, "webhook_url", &v));
    json_object_put(resp);
}

static void test_webhook_url_override_is_checked(void **state)
{
    (void)state;
    static char long_url[2200];
    snprintf(long_url, sizeof long_url, "https://hooks.example.com/%02100d", 0);
    const char *bad[] = {"ftp://hooks.example.com/x",     "https://user:secret@hooks.example.com/x",
                         "hooks.example.com/x",           "https://",
                         "https://hooks.example.com/a b", long_url};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[2600];
        snprintf(body, sizeof body,
                 "{\"end_user\":{\"id\":\"u-w\"},\"webhook_url_override\":\"%s\"}", bad[i]);
        json_object *resp = NULL;
        expect(jn_test_api(&gw, "POST", "/connect/sessions", gw.dev_key, body, &resp), 400, resp,
               bad[i]);
        assert_string_equal(jn_test_json_str(resp, "error.errors.0.path.0"),
                            "webhook_url_override");
        json_object_put(resp);
    }
    json_object *resp = NULL;
    expect(jn_test_api(&gw, "POST", "/connect/sessions", gw.dev_key,
                       "{\"end_user\":{\"id\":\"u-w\"},"
                       "\"webhook_url_override\":\"https://hooks.example.com/junction\"}",
                       &resp),
           201, resp, "good url");
    json_object_put(resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cors_on_end_user_routes_only),
        cmocka_unit_test(test_environment_narrows_origins),
        cmocka_unit_test(test_session_organization_and_tags_reach_the_connection),
        cmocka_unit_test(test_end_user_keys_are_always_present),
        cmocka_unit_test(test_connect_session_shape),
        cmocka_unit_test(test_validation_errors_carry_codes),
        cmocka_unit_test(test_providers_in_nango_shape),
        cmocka_unit_test(test_webhook_url_override_is_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
