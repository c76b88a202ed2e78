/*
 * Integration: the connections API, connect sessions and the non-OAuth auth routes
 * against a real gateway and PostgreSQL: shapes, filters, metadata, isolation between
 * environments, credentials never stored in plaintext, and bad input that changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static jn_test_gateway_t gw;

static long api(const char *method, const char *path, const char *key, const char *body,
                json_object **resp)
{
    return jn_test_api(&gw, method, path, key, body, resp);
}

static void ok(long status, long want, json_object *resp, const char *what)
{
    if (status != want)
        fail_msg("%s: status %ld (wanted %ld): %s", what, status, want,
                 resp ? json_object_to_json_string(resp) : "(no JSON)");
}

/* Providers of our own, so no test depends on reaching the real APIs (the catalog's
 * stripe, freshdesk and github verify credentials against them). */
static const char *const providers[][2] = {
    {"key-api", "{\"display_name\":\"Key API\",\"categories\":[\"dev-tools\"],"
                "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
                "\"proxy\":{\"base_url\":\"https://api.example.com\","
                "\"headers\":{\"authorization\":\"Bearer ${apiKey}\"}},"
                "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\"}}}"},
    {"basic-api",
     "{\"display_name\":\"Basic API\",\"categories\":[\"support\"],"
     "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"BASIC\","
     "\"proxy\":{\"base_url\":\"https://${connectionConfig.subdomain}.example.com\"},"
     "\"connection_config\":{\"subdomain\":{\"type\":\"string\",\"title\":\"Subdomain\","
     "\"pattern\":\"^[a-z0-9-]+$\",\"host_suffixes\":[\".example.com\"]}},"
     "\"credentials\":{\"username\":{\"type\":\"string\",\"title\":\"User\"},"
     "\"password\":{\"type\":\"string\",\"title\":\"Password\"}}}"},
    {"oauth-api", "{\"display_name\":\"OAuth API\",\"categories\":[\"dev-tools\"],"
                  "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"OAUTH2\","
                  "\"authorization_url\":\"https://example.com/authorize\","
                  "\"token_url\":\"https://example.com/token\","
                  "\"proxy\":{\"base_url\":\"https://api.example.com\"}}"},
    {"two-keys", "{\"display_name\":\"Two keys\",\"categories\":[\"analytics\"],"
                 "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
                 "\"proxy\":{\"base_url\":\"https://api.example.com\","
                 "\"headers\":{\"x-api-key\":\"${apiKey}\","
                 "\"x-app-key\":\"${credentials.appKey}\"}},"
                 "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\"},"
                 "\"appKey\":{\"type\":\"string\",\"title\":\"App key\",\"secret\":true,"
                 "\"optional\":true}}}"},
};
#define PROVIDERS (sizeof providers / sizeof providers[0])

static int setup(void **state)
{
    (void)state;
    jn_test_gateway_start(&gw, GATEWAY_BIN, NULL);
    const char *keys[] = {gw.dev_key, gw.prod_key};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < PROVIDERS; i++) {
            char path[96];
            snprintf(path, sizeof path, "/junction/providers/%s", providers[i][0]);
            json_object *resp = NULL;
            ok(api("PUT", path, keys[k], providers[i][1], &resp), 201, resp, providers[i][0]);
            json_object_put(resp);
        }
    }
    const char *integrations[] = {
        "{\"provider\":\"key-api\",\"unique_key\":\"stripe\"}",
        "{\"provider\":\"basic-api\",\"unique_key\":\"freshdesk\"}",
        "{\"provider\":\"oauth-api\",\"unique_key\":\"github\",\"credentials\":{\"type\":"
        "\"OAUTH2\","
        "\"client_id\":\"c\",\"client_secret\":\"s\"}}",
        "{\"provider\":\"hackernews\",\"unique_key\":\"hn\"}",
        "{\"provider\":\"salesforce\",\"unique_key\":\"sf\",\"credentials\":{\"type\":"
        "\"OAUTH2\",\"client_id\":\"sf-client\",\"client_secret\":\"sf-SECRET\"}}",
        "{\"provider\":\"salesforce-cc\",\"unique_key\":\"sfcc\"}",
        "{\"provider\":\"datadog\",\"unique_key\":\"dd\"}",
        "{\"provider\":\"two-keys\",\"unique_key\":\"two\"}",
    };
    for (size_t i = 0; i < sizeof integrations / sizeof integrations[0]; i++) {
        json_object *resp = NULL;
        ok(api("POST", "/integrations", gw.dev_key, integrations[i], &resp), 200, resp,
           integrations[i]);
        json_object_put(resp);
    }
    json_object *resp = NULL;
    ok(api("POST", "/integrations", gw.prod_key, integrations[0], &resp), 200, resp, "prod stripe");
    json_object_put(resp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_gateway_stop(&gw);
    return 0;
}

static char *snapshot(void)
{
    return jn_test_sql_value(
        gw.db_url, "SELECT md5(coalesce((SELECT string_agg(c::text, '|' ORDER BY c.id) FROM "
                   "connections c), '') || coalesce((SELECT string_agg(i::text, '|' ORDER BY i.id) "
                   "FROM integrations i), ''))");
}

static void test_import_and_read(void **state)
{
    (void)state;
    json_object *resp = NULL;
    long st = api(
        "POST", "/connections", gw.dev_key,
        "{\"provider_config_key\":\"stripe\",\"connection_id\":\"acme\","
        "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"sk_live_SECRET_1\"},"
        "\"metadata\":{\"plan\":\"pro\"},\"end_user\":{\"id\":\"u-1\",\"email\":\"a@acme.test\"},"
        "\"tags\":{\"team\":\"core\"}}",
        &resp);
    ok(st, 201, resp, "import API_KEY");
    assert_string_equal(jn_test_json_str(resp, "connection_id"), "acme");
    assert_string_equal(jn_test_json_str(resp, "provider"), "key-api");
    assert_string_equal(jn_test_json_str(resp, "credentials.apiKey"), "sk_live_SECRET_1");
    json_object_put(resp);

    /* Import again: an override (200), new key. */
    st = api("POST", "/connections", gw.dev_key,
             "{\"provider_config_key\":\"stripe\",\"connection_id\":\"acme\","
             "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"sk_live_SECRET_2\"}}",
             &resp);
    ok(st, 200, resp, "override");
    json_object_put(resp);

    st = api("POST", "/connections", gw.dev_key,
             "{\"provider_config_key\":\"freshdesk\",\"connection_id\":\"fd-1\","
             "\"connection_config\":{\"subdomain\":\"acme\"},"
             "\"credentials\":{\"type\":\"BASIC\",\"username\":\"key\",\"password\":\"X\"}}",
             &resp);
    ok(st, 201, resp, "import BASIC");
    assert_string_equal(jn_test_json_str(resp, "connection_config.subdomain"), "acme");
    json_object_put(resp);

    st = api("POST", "/connections", gw.dev_key,
             "{\"provider_config_key\":\"github\",\"connection_id\":\"gh-1\","
             "\"credentials\":{\"type\":\"OAUTH2\",\"access_token\":\"gho_SECRET_3\","
             "\"refresh_token\":\"ghr_SECRET_4\",\"expires_at\":\"2099-01-01T00:00:00Z\"}}",
             &resp);
    ok(st, 201, resp, "import OAUTH2");
    json_object_put(resp);

    /* A generated connection id. */
    st = api("POST", "/connections", gw.dev_key,
             "{\"provider_config_key\":\"hn\",\"credentials\":{\"type\":\"NONE\"}}", &resp);
    ok(st, 201, resp, "import NONE");
    assert_int_equal(strlen(jn_test_json_str(resp, "connection_id")), 36);
    json_object_put(resp);

    st = api("GET", "/connections/acme?provider_config_key=stripe", gw.dev_key, NULL, &resp);
    ok(st, 200, resp, "get");
    assert_string_equal(jn_test_json_str(resp, "credentials.apiKey"), "sk_live_SECRET_2");
    assert_string_equal(jn_test_json_str(resp, "metadata.plan"), "pro");
    assert_string_equal(jn_test_json_str(resp, "end_user.email"), "a@acme.test");
    json_object_put(resp);
    /* Reading it stamped last_fetched_at. */
    st = api("GET", "/connections/acme?provider_config_key=stripe", gw.dev_key, NULL, &resp);
    assert_non_null(jn_test_json_str(resp, "last_fetched_at"));
    json_object_put(resp);

    /* Refresh tokens are hidden unless asked for. */
    st = api("GET", "/connections/gh-1?provider_config_key=github", gw.dev_key, NULL, &resp);
    ok(st, 200, resp, "get oauth");
    assert_string_equal(jn_test_json_str(resp, "credentials.access_token"), "gho_SECRET_3");
    assert_null(jn_test_json_str(resp, "credentials.refresh_token"));
    assert_null(strstr(json_object_to_json_string(resp), "ghr_SECRET_4"));
    json_object_put(resp);
    st = api("GET", "/connections/gh-1?provider_config_key=github&refresh_token=true", gw.dev_key,
             NULL, &resp);
    assert_string_equal(jn_test_json_str(resp, "credentials.refresh_token"), "ghr_SECRET_4");
    json_object_put(resp);

    /* No secret is stored in plaintext. */
    char *rows = jn_test_sql_value(gw.db_url, "SELECT string_agg(c::text, '|') FROM connections c");
    assert_null(strstr(rows, "SECRET"));
    free(rows);
}

static void test_list_filters_patch_delete(void **state)
{
    (void)state;
    json_object *resp = NULL;
    ok(api("GET", "/connections", gw.dev_key, NULL, &resp), 200, resp, "list");
    json_object *items = NULL;
    assert_true(json_object_object_get_ex(resp, "connections", &items));
    assert_true(json_object_array_length(items) >= 4);
    assert_null(strstr(json_object_to_json_string(resp), "SECRET"));
    json_object_put(resp);

    ok(api("GET", "/connections?integrationId=stripe,freshdesk", gw.dev_key, NULL, &resp), 200,
       resp, "by integration");
    json_object_object_get_ex(resp, "connections", &items);
    assert_int_equal(json_object_array_length(items), 2);
    json_object_put(resp);
    ok(api("GET", "/connections?endUserId=u-1", gw.dev_key, NULL, &resp), 200, resp, "by user");
    json_object_object_get_ex(resp, "connections", &items);
    assert_int_equal(json_object_array_length(items), 1);
    assert_string_equal(jn_test_json_str(resp, "connections.0.connection_id"), "acme");
    json_object_put(resp);
    ok(api("GET", "/connections?tags%5Bteam%5D=core", gw.dev_key, NULL, &resp), 200, resp,
       "by tag");
    json_object_object_get_ex(resp, "connections", &items);
    assert_int_equal(json_object_array_length(items), 1);
    json_object_put(resp);
    ok(api("GET", "/connections?search=ACME.TEST", gw.dev_key, NULL, &resp), 200, resp, "search");
    json_object_object_get_ex(resp, "connections", &items);
    assert_int_equal(json_object_array_length(items), 1);
    json_object_put(resp);
    ok(api("GET", "/connections?limit=1&page=1", gw.dev_key, NULL, &resp), 200, resp, "page");
    json_object_object_get_ex(resp, "connections", &items);
    assert_int_equal(json_object_array_length(items), 1);
    json_object_put(resp);

    ok(api("PATCH", "/connections/acme?provider_config_key=stripe", gw.dev_key,
           "{\"tags\":{\"team\":\"growth\"},\"webhook_url_override\":\"https://hooks.acme.test/"
           "x\"}",
           &resp),
       200, resp, "patch");
    json_object_put(resp);
    ok(api("GET", "/connections/acme?provider_config_key=stripe", gw.dev_key, NULL, &resp), 200,
       resp, "get");
    assert_string_equal(jn_test_json_str(resp, "tags.team"), "growth");
    assert_string_equal(jn_test_json_str(resp, "webhook_url_override"),
                        "https://hooks.acme.test/x");
    json_object_put(resp);

    /* Metadata: replace, then shallow merge, for a list of ids. */
    ok(api("POST", "/connections/metadata", gw.dev_key,
           "{\"connection_id\":[\"acme\"],\"provider_config_key\":\"stripe\",\"metadata\":{\"a\":1,"
           "\"b\":{\"x\":1}}}",
           &resp),
       201, resp, "set metadata");
    json_object_put(resp);
    ok(api("PATCH", "/connections/metadata", gw.dev_key,
           "{\"connection_id\":\"acme\",\"provider_config_key\":\"stripe\",\"metadata\":{\"b\":{"
           "\"y\":2},\"c\":3}}",
           &resp),
       200, resp, "merge metadata");
    json_object_put(resp);
    ok(api("GET", "/connections/acme?provider_config_key=stripe", gw.dev_key, NULL, &resp), 200,
       resp, "get");
    assert_string_equal(jn_test_json_str(resp, "metadata.a"), "1");
    assert_string_equal(jn_test_json_str(resp, "metadata.c"), "3");
    assert_string_equal(jn_test_json_str(resp, "metadata.b.y"), "2");
    assert_null(jn_test_json_str(resp, "metadata.b.x")); /* shallow: b replaced */
    json_object_put(resp);

    /* One unknown id in a list changes nothing. */
    char *before = snapshot();
    long st = api("POST", "/connections/metadata", gw.dev_key,
                  "{\"connection_id\":[\"acme\",\"nope\"],\"provider_config_key\":\"stripe\","
                  "\"metadata\":{}}",
                  &resp);
    ok(st, 404, resp, "metadata unknown id");
    json_object_put(resp);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);

    ok(api("DELETE", "/connections/fd-1?provider_config_key=freshdesk", gw.dev_key, NULL, &resp),
       200, resp, "delete");
    json_object_put(resp);
    ok(api("GET", "/connections/fd-1?provider_config_key=freshdesk", gw.dev_key, NULL, &resp), 404,
       resp, "gone");
    json_object_put(resp);
}

static void test_environments_isolated(void **state)
{
    (void)state;
    json_object *resp = NULL;
    char *before = snapshot();
    ok(api("GET", "/connections/acme?provider_config_key=stripe", gw.prod_key, NULL, &resp), 404,
       resp, "prod get");
    json_object_put(resp);
    ok(api("DELETE", "/connections/acme?provider_config_key=stripe", gw.prod_key, NULL, &resp), 404,
       resp, "prod delete");
    json_object_put(resp);
    ok(api("PATCH", "/connections/metadata", gw.prod_key,
           "{\"connection_id\":\"acme\",\"provider_config_key\":\"stripe\",\"metadata\":{\"x\":1}}",
           &resp),
       404, resp, "prod metadata");
    json_object_put(resp);
    ok(api("GET", "/connections", gw.prod_key, NULL, &resp), 200, resp, "prod list");
    assert_null(strstr(json_object_to_json_string(resp), "acme"));
    json_object_put(resp);
    /* Importing into prod's integration of the same name creates prod's own connection. */
    ok(api("POST", "/connections", gw.prod_key,
           "{\"provider_config_key\":\"stripe\",\"connection_id\":\"acme\",\"credentials\":{"
           "\"type\":\"API_KEY\",\"apiKey\":\"k\"}}",
           &resp),
       201, resp, "prod import");
    json_object_put(resp);
    ok(api("GET", "/connections/acme?provider_config_key=stripe", gw.dev_key, NULL, &resp), 200,
       resp, "dev still");
    assert_string_equal(jn_test_json_str(resp, "credentials.apiKey"), "sk_live_SECRET_2");
    json_object_put(resp);
    free(before);
}

/* The schema itself ties a connection's environment to its integration's: a row that
 * names one environment and another environment's integration cannot exist, whatever
 * the code above it does. */
static void test_schema_ties_connection_to_its_environment(void **state)
{
    (void)state;
    PGconn *conn = PQconnectdb(gw.db_url);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    PGresult *r = PQexec(
        conn, "INSERT INTO connections (environment_id, integration_id, connection_id, "
              "credentials_type, credentials_sealed) SELECT p.id, i.id, 'cross', 'API_KEY', 'x' "
              "FROM environments p, integrations i JOIN environments d ON d.id = i.environment_id "
              "WHERE p.name = 'prod' AND d.name = 'dev' AND i.unique_key = 'stripe'");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23503"); /* foreign key */
    assert_non_null(strstr(PQresultErrorMessage(r), "connections_integration_environment_fkey"));
    PQclear(r);
    /* Moving an existing connection to another environment is refused the same way. */
    r = PQexec(conn, "UPDATE connections SET environment_id = (SELECT id FROM environments WHERE "
                     "name = 'prod') WHERE environment_id = (SELECT id FROM environments WHERE "
                     "name = 'dev')");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23503");
    PQclear(r);
    PQfinish(conn);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct {
        const char *method, *path, *body, *code, *mention;
        long status;
    } cases[] = {
        {"POST", "/connections", "{\"provider_config_key\":\"stripe\"}", "invalid_body",
         "credentials", 400},
        {"POST", "/connections",
         "{\"provider_config_key\":\"stripe\",\"credentials\":{\"type\":\"API_KEY\"}}",
         "invalid_body", "apiKey", 400},
        {"POST", "/connections",
         "{\"provider_config_key\":\"stripe\",\"credentials\":{\"type\":\"BASIC\",\"username\":"
         "\"u\",\"password\":\"p\"}}",
         "invalid_body", "API_KEY", 400},
        {"POST", "/connections",
         "{\"provider_config_key\":\"stripe\",\"credentials\":{\"type\":\"OAUTH1\"}}",
         "invalid_body", "credentials.type", 400},
        {"POST", "/connections",
         "{\"provider_config_key\":\"nope\",\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"k\"}"
         "}",
         "not_found", "nope", 404},
        {"POST", "/connections",
         "{\"provider_config_key\":\"freshdesk\",\"connection_config\":{\"subdomain\":\"evil.com/"
         "x?\"},\"credentials\":{\"type\":\"BASIC\",\"username\":\"u\",\"password\":\"p\"}}",
         "invalid_body", "subdomain", 400},
        {"POST", "/connections",
         "{\"provider_config_key\":\"github\",\"credentials\":{\"type\":\"OAUTH2\",\"access_"
         "token\":\"t\",\"expires_at\":\"tomorrow\"}}",
         "invalid_body", "expires_at", 400},
        {"POST", "/connections",
         "{\"provider_config_key\":\"github\",\"credentials\":{\"type\":\"OAUTH2\",\"access_"
         "token\":\"t\",\"expires_at\":\"2099-01-01T00:00:00+99:99\"}}",
         "invalid_body", "offset's hours", 400},
        {"POST", "/connections",
         "{\"provider_config_key\":\"github\",\"credentials\":{\"type\":\"OAUTH2\",\"access_"
         "token\":\"t\",\"expires_at\":\"2099-02-30T00:00:00Z\"}}",
         "invalid_body", "expires_at", 400},
        {"POST", "/connections",
         "{\"provider_config_key\":\"stripe\",\"connection_id\":\"a\\u0000b\",\"credentials\":{"
         "\"type\":\"API_KEY\",\"apiKey\":\"k\"}}",
         "invalid_body", NULL, 400},
        {"POST", "/connections",
         "{\"provider_config_key\":\"stripe\",\"end_user\":{\"email\":\"x\"},\"credentials\":{"
         "\"type\":\"API_KEY\",\"apiKey\":\"k\"}}",
         "invalid_body", "end_user.id", 400},
        {"POST", "/connections", "{broken", "invalid_body", "JSON", 400},
        {"GET", "/connections/acme", NULL, "invalid_query_params", "provider_config_key", 400},
        {"GET", "/connections/acme?provider_config_key=stripe&force_refresh=maybe", NULL,
         "invalid_query_params", "force_refresh", 400},
        {"GET", "/connections?limit=0", NULL, "invalid_query_params", "limit", 400},
        {"GET", "/connections?page=-1", NULL, "invalid_query_params", "page", 400},
        {"PATCH", "/connections/acme?provider_config_key=stripe", "{\"tags\":{\"a\":1}}",
         "invalid_body", "tags.a", 400},
        {"PATCH", "/connections/acme?provider_config_key=stripe",
         "{\"webhook_url_override\":\"ftp://x\"}", "invalid_body", "webhook_url_override", 400},
        {"PATCH", "/connections/metadata",
         "{\"connection_id\":5,\"provider_config_key\":\"stripe\",\"metadata\":{}}", "invalid_body",
         "connection_id", 400},
        {"POST", "/connections/metadata",
         "{\"connection_id\":\"acme\",\"provider_config_key\":\"stripe\",\"metadata\":[1]}",
         "invalid_body", "metadata", 400},
        {"POST", "/connect/sessions", "{}", "invalid_body", "end_user", 400},
        /* custom providers are held to the catalog's rules: a host field names its hosts */
        {"PUT", "/junction/providers/any-host",
         "{\"display_name\":\"Any host\",\"categories\":[\"crm\"],"
         "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"OAUTH2\","
         "\"authorization_url\":\"https://${connectionConfig.host}/authorize\","
         "\"token_url\":\"https://${connectionConfig.host}/token\","
         "\"proxy\":{\"base_url\":\"https://${connectionConfig.host}\"},"
         "\"connection_config\":{\"host\":{\"type\":\"string\",\"pattern\":\"^[a-z.]+$\"}}}",
         "invalid_body", "must declare enum or host_suffixes", 400},
        {"POST", "/connect/sessions",
         "{\"end_user\":{\"id\":\"u\"},\"allowed_integrations\":\"stripe\"}", "invalid_body",
         "allowed_integrations", 400},
        {"POST", "/connect/sessions/reconnect",
         "{\"connection_id\":\"nope\",\"integration_id\":\"stripe\"}", "not_found", "nope", 404},
    };
    char *before = snapshot();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *resp = NULL;
        long st = api(cases[i].method, cases[i].path, gw.dev_key, cases[i].body, &resp);
        char what[64];
        snprintf(what, sizeof what, "case %zu", i);
        ok(st, cases[i].status, resp, what);
        const char *code = jn_test_json_str(resp, "error.code");
        if (!code || strcmp(code, cases[i].code) != 0)
            fail_msg("case %zu: code %s, wanted %s", i, code ? code : "none", cases[i].code);
        const char *msg = jn_test_json_str(resp, "error.message");
        if (cases[i].mention && (!msg || !strstr(msg, cases[i].mention)))
            fail_msg("case %zu: '%s' does not mention %s", i, msg ? msg : "", cases[i].mention);
        json_object_put(resp);
    }
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* A connect session lets a browser add an API key connection for allowed integrations only. */
static void test_connect_session_api_key(void **state)
{
    (void)state;
    json_object *resp = NULL;
    ok(api("POST", "/connect/sessions", gw.dev_key,
           "{\"end_user\":{\"id\":\"user-42\",\"email\":\"u42@x.test\"},\"allowed_integrations\":["
           "\"stripe\"],\"tags\":{\"src\":\"ui\"}}",
           &resp),
       201, resp, "session");
    char token[128];
    snprintf(token, sizeof token, "%s", jn_test_json_str(resp, "data.token"));
    assert_true(strncmp(token, "nango_connect_session_", 22) == 0);
    assert_non_null(strstr(jn_test_json_str(resp, "data.connect_link"), token));
    assert_non_null(jn_test_json_str(resp, "data.expires_at"));
    json_object_put(resp);

    char path[256];
    snprintf(path, sizeof path, "/api-auth/api-key/stripe?connect_session_token=%s", token);
    ok(api("POST", path, NULL, "{\"apiKey\":\"sk_test_FROM_UI\"}", &resp), 200, resp,
       "api key via session");
    const char *cid = jn_test_json_str(resp, "connectionId");
    assert_non_null(cid);
    char cid_copy[64];
    snprintf(cid_copy, sizeof cid_copy, "%s", cid);
    assert_string_equal(jn_test_json_str(resp, "providerConfigKey"), "stripe");
    json_object_put(resp);

    snprintf(path, sizeof path, "/connections/%s?provider_config_key=stripe", cid_copy);
    ok(api("GET", path, gw.dev_key, NULL, &resp), 200, resp, "created by session");
    assert_string_equal(jn_test_json_str(resp, "end_user.id"), "user-42");
    assert_string_equal(jn_test_json_str(resp, "tags.src"), "ui");
    json_object_put(resp);

    char *before = snapshot();
    snprintf(path, sizeof path, "/api-auth/basic/freshdesk?connect_session_token=%s", token);
    ok(api("POST", path, NULL, "{\"username\":\"u\",\"password\":\"p\"}", &resp), 400, resp,
       "not allowed");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "integration_not_allowed");
    json_object_put(resp);
    snprintf(path, sizeof path,
             "/api-auth/api-key/stripe?connect_session_token=nango_connect_session_%064d", 0);
    ok(api("POST", path, NULL, "{\"apiKey\":\"k\"}", &resp), 401, resp, "unknown token");
    json_object_put(resp);
    ok(api("POST", "/api-auth/api-key/stripe?connect_session_token=garbage", NULL,
           "{\"apiKey\":\"k\"}", &resp),
       401, resp, "bad token");
    json_object_put(resp);
    snprintf(path, sizeof path, "/api-auth/api-key/stripe?connect_session_token=%s", token);
    ok(api("POST", path, NULL, "{\"apiKey\":5}", &resp), 400, resp, "bad body");
    json_object_put(resp);
    /* A callback with a forged state creates nothing. */
    char url[512], *html = NULL;
    snprintf(url, sizeof url, "%s/oauth/callback?state=forged&code=abc", gw.url);
    assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, &html), 400);
    assert_non_null(strstr(html, "nango_oauth_callback_error"));
    free(html);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* The connect link's page offers the allowed integrations only. */
    snprintf(url, sizeof url, "%s/connect?session_token=%s", gw.url, token);
    char *page = NULL;
    assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, &page), 200);
    assert_non_null(strstr(page, "api-auth/api-key"));
    assert_non_null(strstr(page, "data-key=\"stripe\""));
    assert_null(strstr(page, "data-key=\"freshdesk\""));
    free(page);
    snprintf(url, sizeof url, "%s/connect?session_token=nope", gw.url);
    assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, NULL), 400);

    /* The session can be read and ended with its own token. */
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    snprintf(url, sizeof url, "%s/connect/session", gw.url);
    char *body = NULL;
    assert_int_equal(jn_test_http("GET", url, headers, NULL, 0, &body), 200);
    assert_non_null(strstr(body, "user-42"));
    free(body);
    assert_int_equal(jn_test_http("DELETE", url, headers, NULL, 0, NULL), 204);
    assert_int_equal(jn_test_http("GET", url, headers, NULL, 0, NULL), 401);
}

/* A reconnect session renews one existing connection and nothing else. */
static void test_reconnect_session(void **state)
{
    (void)state;
    json_object *resp = NULL;
    ok(api("POST", "/connections", gw.dev_key,
           "{\"provider_config_key\":\"stripe\",\"connection_id\":\"renew-me\","
           "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"old-key\"}}",
           &resp),
       201, resp, "import");
    json_object_put(resp);
    ok(api("POST", "/connect/sessions/reconnect", gw.dev_key,
           "{\"connection_id\":\"renew-me\",\"integration_id\":\"stripe\"}", &resp),
       201, resp, "reconnect session");
    char token[128];
    snprintf(token, sizeof token, "%s", jn_test_json_str(resp, "data.token"));
    json_object_put(resp);

    char path[256];
    snprintf(path, sizeof path, "/api-auth/api-key/stripe?connect_session_token=%s", token);
    ok(api("POST", path, NULL, "{\"apiKey\":\"new-key\"}", &resp), 200, resp, "renew");
    assert_string_equal(jn_test_json_str(resp, "connectionId"), "renew-me");
    json_object_put(resp);
    ok(api("GET", "/connections/renew-me?provider_config_key=stripe", gw.dev_key, NULL, &resp), 200,
       resp, "renewed");
    assert_string_equal(jn_test_json_str(resp, "credentials.apiKey"), "new-key");
    json_object_put(resp);
    /* The session may not touch another integration. */
    snprintf(path, sizeof path, "/api-auth/basic/freshdesk?connect_session_token=%s", token);
    ok(api("POST", path, NULL, "{\"username\":\"u\",\"password\":\"p\"}", &resp), 400, resp,
       "other integration");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "integration_not_allowed");
    json_object_put(resp);
    char *n = jn_test_sql_value(
        gw.db_url, "SELECT count(*) FROM connections WHERE connection_id = 'renew-me'");
    assert_string_equal(n, "1");
    free(n);
}

/* The review's first finding, end to end: an end user's connect flow names the hosts a
 * developer's client secret is sent to. Every refusal is a 400 that names the field, made
 * before any request leaves the gateway, and changes nothing stored. */
static void test_end_user_cannot_choose_hosts(void **state)
{
    (void)state;
    long st;
    json_object *resp = NULL;
    st = api("POST", "/connect/sessions", gw.dev_key, "{\"end_user\":{\"id\":\"mallory\"}}", &resp);
    ok(st, 201, resp, "session");
    char token[128];
    snprintf(token, sizeof token, "%s", jn_test_json_str(resp, "data.token"));
    json_object_put(resp);

    char *before = snapshot();
    char *attempts = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM oauth_attempts");
    static const struct {
        const char *method, *route, *params, *body, *field, *mention;
    } refused[] = {
        /* the authorization redirect, and later the token request, would go there */
        {"GET", "/oauth/connect/sf", "&params%5Bhostname%5D=attacker.example.com", NULL, "hostname",
         "attacker.example.com"},
        {"GET", "/oauth/connect/sf",
         "&params%5Bhostname%5D=attacker.example.com%23.my.salesforce.com", NULL, "hostname", NULL},
        /* filled from the token response, never typed by the end user */
        {"GET", "/oauth/connect/sf", "&params%5Binstance_url%5D=https://attacker.example.com", NULL,
         "instance_url", "automatically"},
        /* a key the provider does not have */
        {"GET", "/oauth/connect/sf", "&params%5Bregion%5D=eu", NULL, "region", "not a setting"},
        /* the client credentials grant sends the secret at once */
        {"POST", "/oauth2/auth/sfcc", "&params%5Bhostname%5D=attacker.example.com",
         "{\"client_id\":\"id\",\"client_secret\":\"cc-SECRET\"}", "hostname",
         "attacker.example.com"},
        /* enum, at run time */
        {"POST", "/api-auth/api-key/dd", "&params%5BsiteParameter%5D=evil.example",
         "{\"apiKey\":\"0123456789abcdef0123456789abcdef\"}", "siteParameter", "evil.example"},
        /* a required setting left out */
        {"POST", "/api-auth/api-key/dd", "", "{\"apiKey\":\"0123456789abcdef0123456789abcdef\"}",
         "siteParameter", "required"},
        /* the application key is a credential now, not a setting */
        {"POST", "/api-auth/api-key/dd",
         "&params%5BsiteParameter%5D=datadoghq.eu&params%5BapplicationKey%5D=k",
         "{\"apiKey\":\"0123456789abcdef0123456789abcdef\"}", "applicationKey", NULL},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s?connect_session_token=%s%s", refused[i].route, token,
                 refused[i].params);
        st = api(refused[i].method, path, NULL, refused[i].body, &resp);
        char what[64];
        snprintf(what, sizeof what, "refusal %zu", i);
        ok(st, 400, resp, what);
        const char *code = jn_test_json_str(resp, "error.code");
        const char *message = jn_test_json_str(resp, "error.message");
        if (!code || strcmp(code, "invalid_query_params") != 0)
            fail_msg("refusal %zu: code %s: %s", i, code ? code : "none", message ? message : "");
        char field[96];
        snprintf(field, sizeof field, "connection_config.%s", refused[i].field);
        if (!strstr(message, field) || (refused[i].mention && !strstr(message, refused[i].mention)))
            fail_msg("refusal %zu: '%s' lacks %s / %s", i, message, field,
                     refused[i].mention ? refused[i].mention : "");
        json_object_put(resp);
    }
    char *after = snapshot();
    char *attempts_after = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM oauth_attempts");
    assert_string_equal(before, after);
    assert_string_equal(attempts, attempts_after); /* no authorization was started */
    free(before);
    free(after);
    free(attempts);
    free(attempts_after);
    /* Neither secret went anywhere to be echoed: the gateway never built a token request. */
    char *log = jn_test_read_log(&gw.proc);
    assert_null(strstr(log, "attacker.example.com"));
    free(log);

    /* The provider's own hosts still work: the authorization step starts. */
    char path[512];
    snprintf(path, sizeof path,
             "/oauth/connect/sf?connect_session_token=%s&params%%5Bhostname%%5D=acme.my."
             "salesforce.com",
             token);
    st = api("GET", path, NULL, NULL, &resp);
    ok(st, 302, resp, "own host");
    json_object_put(resp);
    snprintf(path, sizeof path, "/oauth/connect/sf?connect_session_token=%s", token);
    st = api("GET", path, NULL, NULL, &resp);
    ok(st, 302, resp, "default host");
    json_object_put(resp);
}

/* A connect session's defaults are the developer's: judged when the session is made,
 * automated fields allowed, and the flow still starts from them. */
static void test_session_defaults(void **state)
{
    (void)state;
    json_object *resp = NULL;
    char *before = snapshot();
    long st = api("POST", "/connect/sessions", gw.dev_key,
                  "{\"end_user\":{\"id\":\"u-d\"},\"integrations_config_defaults\":{\"sf\":"
                  "{\"connection_config\":{\"hostname\":\"attacker.example.com\"}}}}",
                  &resp);
    ok(st, 400, resp, "bad default");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "invalid_body");
    const char *message = jn_test_json_str(resp, "error.message");
    if (!message || !strstr(message, "integrations_config_defaults.sf.connection_config.hostname"))
        fail_msg("'%s' does not name the default", message ? message : "");
    json_object_put(resp);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);

    st = api("POST", "/connect/sessions", gw.dev_key,
             "{\"end_user\":{\"id\":\"u-d\"},\"integrations_config_defaults\":{"
             "\"sf\":{\"connection_config\":{\"hostname\":\"acme.my.salesforce.com\","
             "\"instance_url\":\"https://acme.my.salesforce.com\"}},"
             "\"not-yet\":{\"connection_config\":{\"anything\":\"x\"}}}}",
             &resp);
    ok(st, 201, resp, "good defaults");
    char token[128], path[256];
    snprintf(token, sizeof token, "%s", jn_test_json_str(resp, "data.token"));
    json_object_put(resp);
    snprintf(path, sizeof path, "/oauth/connect/sf?connect_session_token=%s", token);
    st = api("GET", path, NULL, NULL, &resp);
    ok(st, 302, resp, "flow from defaults");
    json_object_put(resp);
}

/* The developer's import may set what a migration carries (automated fields), but only
 * keys and values the provider admits. */
static void test_import_connection_config(void **state)
{
    (void)state;
    json_object *resp = NULL;
    long st = api("POST", "/connections", gw.dev_key,
                  "{\"provider_config_key\":\"sf\",\"connection_id\":\"sf-1\","
                  "\"connection_config\":{\"hostname\":\"acme.my.salesforce.com\","
                  "\"instance_url\":\"https://acme.my.salesforce.com\"},"
                  "\"credentials\":{\"type\":\"OAUTH2\",\"access_token\":\"t\"}}",
                  &resp);
    ok(st, 201, resp, "import with an automated field");
    assert_string_equal(jn_test_json_str(resp, "connection_config.instance_url"),
                        "https://acme.my.salesforce.com");
    json_object_put(resp);

    char *before = snapshot();
    static const struct {
        const char *body, *mention;
    } refused[] = {
        {"{\"provider_config_key\":\"sf\",\"connection_config\":{\"instance_url\":"
         "\"https://attacker.example.com\"},\"credentials\":{\"type\":\"OAUTH2\","
         "\"access_token\":\"t\"}}",
         "connection_config.instance_url"},
        {"{\"provider_config_key\":\"sf\",\"connection_config\":{\"hostname\":"
         "\"attacker.example.com\"},\"credentials\":{\"type\":\"OAUTH2\",\"access_token\":"
         "\"t\"}}",
         "connection_config.hostname"},
        {"{\"provider_config_key\":\"sf\",\"connection_config\":{\"subdomain\":\"acme\"},"
         "\"credentials\":{\"type\":\"OAUTH2\",\"access_token\":\"t\"}}",
         "not a setting"},
        /* before the fix, this one was accepted and its credentials sent to
         * https://api.evil.example for verification */
        {"{\"provider_config_key\":\"dd\",\"connection_config\":{\"siteParameter\":"
         "\"evil.example\"},\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":"
         "\"0123456789abcdef0123456789abcdef\"}}",
         "connection_config.siteParameter"},
        {"{\"provider_config_key\":\"two\",\"credentials\":{\"type\":\"API_KEY\","
         "\"apiKey\":\"k\",\"other\":\"x\"}}",
         "credentials.other: is not a credential of this provider"},
        {"{\"provider_config_key\":\"two\",\"credentials\":{\"type\":\"API_KEY\","
         "\"appKey\":\"x\"}}",
         "credentials.apiKey: is required"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        st = api("POST", "/connections", gw.dev_key, refused[i].body, &resp);
        char what[64];
        snprintf(what, sizeof what, "import refusal %zu", i);
        ok(st, 400, resp, what);
        assert_string_equal(jn_test_json_str(resp, "error.code"), "invalid_body");
        const char *message = jn_test_json_str(resp, "error.message");
        if (!message || !strstr(message, refused[i].mention))
            fail_msg("import refusal %zu: '%s' lacks '%s'", i, message ? message : "",
                     refused[i].mention);
        json_object_put(resp);
    }
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* A second credential the provider declares is kept with the first. */
    st = api("POST", "/connections", gw.dev_key,
             "{\"provider_config_key\":\"two\",\"connection_id\":\"two-1\","
             "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"k-SECRET\","
             "\"appKey\":\"a-SECRET\"}}",
             &resp);
    ok(st, 201, resp, "import two keys");
    assert_string_equal(jn_test_json_str(resp, "credentials.appKey"), "a-SECRET");
    json_object_put(resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_and_read),
        cmocka_unit_test(test_list_filters_patch_delete),
        cmocka_unit_test(test_environments_isolated),
        cmocka_unit_test(test_schema_ties_connection_to_its_environment),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_connect_session_api_key),
        cmocka_unit_test(test_reconnect_session),
        cmocka_unit_test(test_end_user_cannot_choose_hosts),
        cmocka_unit_test(test_import_connection_config),
        cmocka_unit_test(test_session_defaults),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
