/*
 * Integration: the whole OAuth 2 dance over HTTP against the fake provider
 * (connect session → /oauth/connect → authorize → /oauth/callback → connection), refused
 * and replayed callbacks, refresh-token rotation, a dead refresh token recorded without
 * losing credentials, client credentials, token_response_metadata on every kind of token
 * acquisition, and the scheduler's refresh sweep. Refresh concurrency and failure
 * handling are in test_token_refresh.c.
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

#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_oauth.h"
#include "harness.h"

static jn_test_gateway_t gw;
static jn_test_fake_t fake;

static long fake_call(const char *method, const char *path, const char *body, json_object **resp)
{
    return jn_test_fake_call(&fake, method, path, body, resp);
}

static long token_requests(const char *grant)
{
    return jn_test_fake_token_requests(&fake, grant);
}

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "oauth_fake_provider");
    /* The harness makes the gateway's public URL its own address, so the provider
     * redirects the browser back to it. */
    jn_test_gateway_start(&gw, GATEWAY_BIN, NULL);
    jn_test_fake_setup_gateway(&gw, &fake);
    json_object *resp = NULL;

    /* Token requests obey the egress policy: the fake provider is on loopback, refused
     * until the environment admits it. */
    jn_test_expect_status(jn_test_api(&gw, "POST", "/connect/sessions", gw.dev_key,
                                      "{\"end_user\":{\"id\":\"egress\"}}", &resp),
                          201, resp, "session");
    char path[256];
    snprintf(path, sizeof path, "/oauth2/auth/fake-cc?connect_session_token=%s",
             jn_test_json_str(resp, "data.token"));
    json_object_put(resp);
    jn_test_expect_status(
        jn_test_api(&gw, "POST", path, NULL,
                    "{\"client_id\":\"test-client\",\"client_secret\":\"test-secret\"}", &resp),
        400, resp, "refused token request");
    assert_non_null(strstr(jn_test_json_str(resp, "error.message"), "loopback"));
    json_object_put(resp);
    jn_test_fake_allow(&gw);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    return 0;
}

static void new_session(char *token, size_t cap)
{
    jn_test_connect_session(&gw, token, cap);
}

static long get_no_follow(const char *url, char *location, size_t cap, char **body)
{
    return jn_test_get_no_follow(url, location, cap, body);
}

static char dance_ws_client[48];

/* Reads one unmasked text frame from the server. */
static bool ws_read_text(int fd, char *out, size_t cap)
{
    unsigned char h[2];
    if (recv(fd, h, 2, MSG_WAITALL) != 2 || (h[0] & 0x0f) != 1)
        return false;
    size_t len = h[1] & 0x7f;
    if (len == 126) {
        unsigned char ext[2];
        if (recv(fd, ext, 2, MSG_WAITALL) != 2)
            return false;
        len = (size_t)ext[0] << 8 | ext[1];
    }
    if (len >= cap || recv(fd, out, len, MSG_WAITALL) != (ssize_t)len)
        return false;
    out[len] = '\0';
    return true;
}

/* Runs the dance and returns the new connection id. */
static void oauth_dance(char *connection_id, size_t cap, char *callback_url, size_t cb_cap)
{
    jn_test_oauth_dance(&gw, &fake, dance_ws_client[0] ? dance_ws_client : NULL, connection_id, cap,
                        callback_url, cb_cap);
}

static char flow_connection[64];

static void test_full_dance_and_replay(void **state)
{
    (void)state;
    char callback[2048];
    long before = token_requests("authorization_code");
    oauth_dance(flow_connection, sizeof flow_connection, callback, sizeof callback);
    assert_int_equal(token_requests("authorization_code"), before + 1);

    char path[256];
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake", flow_connection);
    json_object *resp = NULL;
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "connection");
    assert_string_equal(jn_test_json_str(resp, "credentials.type"), "OAUTH2");
    assert_string_equal(jn_test_json_str(resp, "end_user.id"), "oauth-user");
    const char *access = jn_test_json_str(resp, "credentials.access_token");
    assert_non_null(access);
    char token[128];
    snprintf(token, sizeof token, "%s", access);
    json_object_put(resp);

    /* The token works at the provider. */
    char url[256], auth[200];
    snprintf(url, sizeof url, "%s/api/me", fake.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    assert_int_equal(jn_test_http("GET", url, headers, NULL, 0, NULL), 200);

    /* Neither the gateway's log nor the row holds the token in plaintext. */
    char *gw_log = jn_test_read_log(&gw.proc);
    assert_null(strstr(gw_log, token));
    assert_null(strstr(gw_log, "test-secret"));
    free(gw_log);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM connections c WHERE c::text LIKE '%%%s%%'",
             token);
    char *n = jn_test_sql_value(gw.db_url, sql);
    assert_string_equal(n, "0");
    free(n);

    /* Replaying the callback, or a forged state, creates nothing and asks nothing. */
    char *count_before = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections");
    char location[512], *html = NULL;
    assert_int_equal(get_no_follow(callback, location, sizeof location, &html), 400);
    assert_non_null(strstr(html, "already used"));
    free(html);
    snprintf(url, sizeof url, "%s/oauth/callback?state=0000&code=abc", gw.url);
    assert_int_equal(get_no_follow(url, location, sizeof location, NULL), 400);
    char *count_after = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections");
    assert_string_equal(count_before, count_after);
    free(count_before);
    free(count_after);
    assert_int_equal(token_requests("authorization_code"), before + 1);
}

static void test_provider_denial(void **state)
{
    (void)state;
    json_object *resp = NULL;
    assert_int_equal(fake_call("POST", "/_admin/config", "{\"deny\":true}", &resp), 200);
    json_object_put(resp);
    char token[128], url[512], location[2048], callback[2048];
    new_session(token, sizeof token);
    snprintf(url, sizeof url, "%s/oauth/connect/fake?connect_session_token=%s", gw.url, token);
    assert_int_equal(get_no_follow(url, location, sizeof location, NULL), 302);
    assert_int_equal(get_no_follow(location, callback, sizeof callback, NULL), 302);
    char *html = NULL;
    assert_int_equal(get_no_follow(callback, location, sizeof location, &html), 400);
    assert_non_null(strstr(html, "access_denied"));
    assert_non_null(strstr(html, "nango_oauth_callback_error"));
    free(html);
    assert_int_equal(fake_call("POST", "/_admin/config", "{\"deny\":false}", &resp), 200);
    json_object_put(resp);
}

static void test_rotation_and_dead_refresh_token(void **state)
{
    (void)state;
    json_object *resp = NULL;
    /* With rotation, the new refresh token replaces the old one atomically. */
    assert_int_equal(fake_call("POST", "/_admin/config", "{\"rotate_refresh_tokens\":true}", &resp),
                     200);
    json_object_put(resp);
    char path[256];
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&refresh_token=true",
             flow_connection);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "before");
    char old_refresh[128];
    snprintf(old_refresh, sizeof old_refresh, "%s",
             jn_test_json_str(resp, "credentials.refresh_token"));
    json_object_put(resp);
    snprintf(path, sizeof path,
             "/connections/%s?provider_config_key=fake&refresh_token=true&force_refresh=true",
             flow_connection);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "rotated");
    const char *new_refresh = jn_test_json_str(resp, "credentials.refresh_token");
    assert_non_null(new_refresh);
    assert_string_not_equal(new_refresh, old_refresh);
    json_object_put(resp);
    assert_int_equal(
        fake_call("POST", "/_admin/config", "{\"rotate_refresh_tokens\":false}", &resp), 200);
    json_object_put(resp);

    /* A revoked grant: the failure is recorded, the old credentials stay. */
    assert_int_equal(fake_call("POST", "/_admin/revoke", "{\"all\":true}", &resp), 200);
    json_object_put(resp);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake", flow_connection);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "still readable");
    char access[128];
    snprintf(access, sizeof access, "%s", jn_test_json_str(resp, "credentials.access_token"));
    json_object_put(resp);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&force_refresh=true",
             flow_connection);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 400, resp,
                          "dead grant");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "invalid_credentials");
    const char *message = jn_test_json_str(resp, "error.message");
    assert_non_null(message);
    assert_non_null(strstr(message, "invalid_grant"));
    assert_non_null(jn_test_json_str(resp, "error.payload.connection.errors.0.message"));
    json_object_put(resp);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake", flow_connection);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "after failure");
    assert_string_equal(jn_test_json_str(resp, "credentials.access_token"), access);
    assert_string_equal(jn_test_json_str(resp, "errors.0.type"), "auth");
    json_object_put(resp);
}

static void test_client_credentials(void **state)
{
    (void)state;
    char token[128], path[256];
    new_session(token, sizeof token);
    json_object *resp = NULL;
    long before = token_requests("client_credentials");
    snprintf(path, sizeof path, "/oauth2/auth/fake-cc?connect_session_token=%s", token);
    jn_test_expect_status(jn_test_api(&gw, "POST", path, NULL,
                                      "{\"client_id\":\"test-client\",\"client_secret\":\"wrong\"}",
                                      &resp),
                          400, resp, "wrong secret");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "connection_test_failed");
    json_object_put(resp);
    jn_test_expect_status(
        jn_test_api(&gw, "POST", path, NULL,
                    "{\"client_id\":\"test-client\",\"client_secret\":\"test-secret\"}", &resp),
        200, resp, "client credentials");
    char cid[64];
    snprintf(cid, sizeof cid, "%s", jn_test_json_str(resp, "connectionId"));
    json_object_put(resp);
    assert_int_equal(token_requests("client_credentials"), before + 2);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake-cc", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "cc connection");
    assert_string_equal(jn_test_json_str(resp, "credentials.type"), "OAUTH2_CC");
    assert_non_null(jn_test_json_str(resp, "credentials.token"));
    json_object_put(resp);
}

/* The connection's connection_config value at key (keys may hold dots); fails the test
 * when there is none. */
static const char *config_value(json_object *connection, const char *key)
{
    json_object *config = NULL, *v = NULL;
    if (!json_object_object_get_ex(connection, "connection_config", &config) ||
        !json_object_object_get_ex(config, key, &v))
        fail_msg("connection_config has no '%s': %s", key, json_object_to_json_string(connection));
    return json_object_get_string(v);
}

static void test_token_metadata_on_every_acquisition(void **state)
{
    (void)state;
    jn_test_fake_config(&fake, "{\"extra_token_fields\":{\"instance_url\":"
                               "\"https://eu1.example.test\",\"team\":{\"id\":\"T42\"}}}");
    /* Client credentials. */
    char token[128], path[256], cid[64];
    new_session(token, sizeof token);
    json_object *resp = NULL;
    snprintf(path, sizeof path, "/oauth2/auth/fake-cc?connect_session_token=%s", token);
    jn_test_expect_status(
        jn_test_api(&gw, "POST", path, NULL,
                    "{\"client_id\":\"test-client\",\"client_secret\":\"test-secret\"}", &resp),
        200, resp, "client credentials");
    snprintf(cid, sizeof cid, "%s", jn_test_json_str(resp, "connectionId"));
    json_object_put(resp);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake-cc", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "cc connection");
    assert_string_equal(config_value(resp, "instance_url"), "https://eu1.example.test");
    assert_string_equal(config_value(resp, "team.id"), "T42");
    json_object_put(resp);

    /* Authorization code, then a refresh that brings a new value. */
    char callback[2048];
    oauth_dance(cid, sizeof cid, callback, sizeof callback);
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "oauth connection");
    assert_string_equal(config_value(resp, "instance_url"), "https://eu1.example.test");
    json_object_put(resp);
    jn_test_fake_config(&fake, "{\"extra_token_fields\":{\"instance_url\":"
                               "\"https://eu2.example.test\"}}");
    snprintf(path, sizeof path, "/connections/%s?provider_config_key=fake&force_refresh=true", cid);
    jn_test_expect_status(jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp), 200, resp,
                          "refreshed");
    assert_string_equal(config_value(resp, "instance_url"), "https://eu2.example.test");
    assert_string_equal(config_value(resp, "team.id"), "T42"); /* merged, not replaced */
    json_object_put(resp);
    jn_test_fake_config(&fake, "{\"extra_token_fields\":null}");
}

static bool refreshed_by_sweep(void *ud)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM connections WHERE connection_id = '%s' AND "
             "expires_at > now() + interval '30 minutes'",
             (const char *)ud);
    char *n = jn_test_sql_value(gw.db_url, sql);
    bool done = strcmp(n, "1") == 0;
    free(n);
    return done;
}

static void test_scheduler_sweep_refreshes_expiring_tokens(void **state)
{
    (void)state;
    /* A fresh connection (the earlier one's grant was revoked), about to expire. */
    char cid[64], callback[2048];
    oauth_dance(cid, sizeof cid, callback, sizeof callback);
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE connections SET expires_at = now() + interval '2 minutes' "
             "WHERE connection_id = '%s' RETURNING 1",
             cid);
    free(jn_test_sql_value(gw.db_url, sql));
    long before = token_requests("refresh_token");

    static char db_env[600], port_env[64], prefix_env[128];
    snprintf(db_env, sizeof db_env, "JUNCTION_DATABASE_URL=%s", gw.db_url);
    snprintf(port_env, sizeof port_env, "JUNCTION_SCHEDULER_PORT=%d", jn_test_free_port());
    snprintf(prefix_env, sizeof prefix_env, "JUNCTION_TOPIC_PREFIX=%s", gw.db);
    const char *env[] = {db_env,
                         port_env,
                         prefix_env,
                         "JUNCTION_REFRESH_SWEEP_SECONDS=1",
                         "JUNCTION_BIND_ADDRESS=127.0.0.1",
                         "JUNCTION_TOPIC_PARTITIONS=1",
                         NULL};
    const char *argv[] = {SCHEDULER_BIN, NULL};
    jn_test_process_t scheduler;
    jn_test_spawn(&scheduler, argv, env, "oauth_scheduler");
    bool done = jn_test_wait_until(refreshed_by_sweep, cid, 60000);
    jn_test_signal(&scheduler, SIGTERM);
    assert_true(jn_test_process_wait(&scheduler, 20000));
    if (!done) {
        char *log = jn_test_read_log(&scheduler);
        fail_msg("the sweep did not refresh the token:\n%s", log);
    }
    assert_true(token_requests("refresh_token") >= before + 1);
}

/* ---- the frontend SDK's WebSocket ---- */

static int ws_connect(char *client_id, size_t cap)
{
    int port = (int)strtol(strrchr(gw.url, ':') + 1, NULL, 10);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    char req[512];
    int n = snprintf(
        req, sizeof req,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
        port, key);
    assert_int_equal(send(fd, req, (size_t)n, 0), n);
    char head[2048];
    size_t got = 0;
    while (got < sizeof head - 1 && !strstr(head, "\r\n\r\n")) {
        ssize_t r = recv(fd, head + got, 1, 0);
        assert_true(r == 1);
        got++;
        head[got] = '\0';
    }
    assert_non_null(strstr(head, " 101 "));
    /* RFC 6455's own example: this key must be answered with this accept value. */
    assert_non_null(strstr(head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    char msg[1024];
    assert_true(ws_read_text(fd, msg, sizeof msg));
    json_object *ack = json_tokener_parse(msg);
    assert_string_equal(jn_test_json_str(ack, "message_type"), "connection_ack");
    snprintf(client_id, cap, "%s", jn_test_json_str(ack, "ws_client_id"));
    json_object_put(ack);
    return fd;
}

static void test_frontend_websocket_gets_the_result(void **state)
{
    (void)state;
    char client[40];
    int fd = ws_connect(client, sizeof client);
    snprintf(dance_ws_client, sizeof dance_ws_client, "%s", client);
    char cid[64], callback[2048];
    oauth_dance(cid, sizeof cid, callback, sizeof callback);
    dance_ws_client[0] = '\0';
    char msg[1024];
    assert_true(ws_read_text(fd, msg, sizeof msg));
    json_object *m = json_tokener_parse(msg);
    assert_string_equal(jn_test_json_str(m, "message_type"), "success");
    assert_string_equal(jn_test_json_str(m, "connection_id"), cid);
    assert_string_equal(jn_test_json_str(m, "provider_config_key"), "fake");
    assert_string_equal(jn_test_json_str(m, "is_pending"), "false");
    json_object_put(m);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_dance_and_replay),
        cmocka_unit_test(test_frontend_websocket_gets_the_result),
        cmocka_unit_test(test_provider_denial),
        cmocka_unit_test(test_rotation_and_dead_refresh_token),
        cmocka_unit_test(test_client_credentials),
        cmocka_unit_test(test_token_metadata_on_every_acquisition),
        cmocka_unit_test(test_scheduler_sweep_refreshes_expiring_tokens),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
