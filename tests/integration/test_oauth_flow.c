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
#include <strings.h>

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

static void test_callback_only_in_the_browser_that_started(void **state)
{
    (void)state;
    char token[128], url[512], location[2048], callback[2048];
    new_session(token, sizeof token);
    snprintf(url, sizeof url, "%s/oauth/connect/fake?connect_session_token=%s", gw.url, token);
    jn_test_browser_cookie[0] = '\0';
    assert_int_equal(get_no_follow(url, location, sizeof location, NULL), 302);
    /* The nonce cookie: unreadable by scripts, sent on the provider's redirect back, only to
     * the callback, gone with the attempt. */
    assert_non_null(strstr(jn_test_browser_set_cookie, "jn_oauth_"));
    assert_non_null(strstr(jn_test_browser_set_cookie, "; HttpOnly"));
    assert_non_null(strstr(jn_test_browser_set_cookie, "; SameSite=Lax"));
    assert_non_null(strstr(jn_test_browser_set_cookie, "; Path=/oauth/callback"));
    assert_non_null(strstr(jn_test_browser_set_cookie, "; Max-Age=1800"));
    char started[256];
    snprintf(started, sizeof started, "%s", jn_test_browser_cookie);
    assert_int_equal(get_no_follow(location, callback, sizeof callback, NULL), 302);

    /* Someone else's browser opens the callback link (the account-linking CSRF): no
     * cookie, or a guessed one. Nothing is created, nothing is asked of the provider. */
    long exchanges = token_requests("authorization_code");
    char *before = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections");
    char *html = NULL;
    jn_test_browser_cookie[0] = '\0';
    assert_int_equal(get_no_follow(callback, location, sizeof location, &html), 400);
    assert_non_null(strstr(html, "nango_oauth_callback_error"));
    assert_non_null(strstr(html, "not started in this browser"));
    free(html);
    snprintf(jn_test_browser_cookie, sizeof jn_test_browser_cookie, "%.*s=%064d",
             (int)strcspn(started, "="), started, 0);
    assert_int_equal(get_no_follow(callback, location, sizeof location, NULL), 400);
    char *after = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections");
    assert_string_equal(before, after);
    free(after);
    assert_int_equal(token_requests("authorization_code"), exchanges);

    /* The browser that started it still can, once, and the cookie is then deleted. */
    snprintf(jn_test_browser_cookie, sizeof jn_test_browser_cookie, "%s", started);
    assert_int_equal(get_no_follow(callback, location, sizeof location, &html), 200);
    assert_non_null(strstr(html, "nango_oauth_callback_success"));
    free(html);
    assert_string_equal(jn_test_browser_cookie, "");
    assert_non_null(strstr(jn_test_browser_set_cookie, "Max-Age=0"));
    after = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections");
    assert_int_equal(strtol(after, NULL, 10), strtol(before, NULL, 10) + 1);
    free(before);
    free(after);
}

static void test_callback_page_posts_to_the_environments_origins(void **state)
{
    (void)state;
    free(jn_test_sql_value(gw.db_url, "UPDATE environments SET cors_allowed_origins = "
                                      "'https://app.example.com' WHERE name = 'dev' RETURNING 1"));
    char cid[64], callback[2048], url[512], location[512], *html = NULL;
    oauth_dance(cid, sizeof cid, callback, sizeof callback);
    free(jn_test_sql_value(gw.db_url, "UPDATE environments SET cors_allowed_origins = '' "
                                      "WHERE name = 'dev' RETURNING 1"));
    /* The dance checked the page of the success; an error page (unknown state) knows no
     * environment and posts to the gateway only. */
    snprintf(url, sizeof url, "%s/oauth/callback?state=%064d&code=x", gw.url, 1);
    assert_int_equal(get_no_follow(url, location, sizeof location, &html), 400);
    char only[160], own[128];
    jn_test_slash_escaped(gw.url, own, sizeof own);
    snprintf(only, sizeof only, "t=[\"%s\"]", own);
    assert_non_null(strstr(html, only));
    free(html);
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
    /* One Connection header saying exactly "Upgrade" (Node's client refuses anything
     * else, e.g. "Upgrade, Upgrade"), and Upgrade: websocket. */
    char value[128];
    assert_int_equal(jn_test_header_value(head, "Connection", value, sizeof value), 1);
    if (strcasecmp(value, "Upgrade") != 0)
        fail_msg("Connection: %s", value);
    assert_int_equal(jn_test_header_value(head, "Upgrade", value, sizeof value), 1);
    assert_string_equal(value, "websocket");
    char msg[1024];
    assert_true(ws_read_text(fd, msg, sizeof msg));
    json_object *ack = json_tokener_parse(msg);
    assert_string_equal(jn_test_json_str(ack, "message_type"), "connection_ack");
    snprintf(client_id, cap, "%s", jn_test_json_str(ack, "ws_client_id"));
    json_object_put(ack);
    return fd;
}

/* Sends one masked client frame. */
static void ws_send(int fd, int opcode, const void *payload, size_t len)
{
    unsigned char frame[256];
    assert_true(len <= 125);
    const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    frame[0] = (unsigned char)(0x80 | opcode);
    frame[1] = (unsigned char)(0x80 | len);
    memcpy(frame + 2, mask, 4);
    for (size_t i = 0; i < len; i++)
        frame[6 + i] = ((const unsigned char *)payload)[i] ^ mask[i & 3];
    assert_int_equal(send(fd, frame, 6 + len, 0), (ssize_t)(6 + len));
}

/* Reads one server frame (unmasked, short); returns its opcode, payload in out. */
static int ws_read_frame(int fd, unsigned char *out, size_t *len)
{
    unsigned char h[2];
    if (recv(fd, h, 2, MSG_WAITALL) != 2)
        return -1;
    assert_int_equal(h[1] & 0x80, 0); /* servers never mask */
    *len = h[1] & 0x7f;
    assert_true(*len <= 125);
    if (*len && recv(fd, out, *len, MSG_WAITALL) != (ssize_t)*len)
        return -1;
    return h[0] & 0x0f;
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

    /* A ping is answered with its payload; then the closing handshake, the server's
     * Close echoing ours, and the server closes the TCP connection. */
    unsigned char frame[128];
    size_t len = 0;
    ws_send(fd, 0x9, "are you there", 13);
    assert_int_equal(ws_read_frame(fd, frame, &len), 0xa);
    assert_int_equal(len, 13);
    assert_memory_equal(frame, "are you there", 13);
    const unsigned char bye[] = {0x03, 0xe8, 'd', 'o', 'n', 'e'};
    ws_send(fd, 0x8, bye, sizeof bye);
    assert_int_equal(ws_read_frame(fd, frame, &len), 0x8);
    assert_int_equal(len, 2);
    assert_int_equal(frame[0] << 8 | frame[1], 1000);
    assert_int_equal(recv(fd, frame, 1, 0), 0);
    close(fd);
}

/* An end user who names the host of a client-credentials token request is refused
 * before any request leaves: the fake provider, standing in for the attacker's host and
 * reachable through the environment's allow-list, sees no token request. */
static void test_end_user_host_reaches_nothing(void **state)
{
    (void)state;
    long st;
    const char *port = strrchr(fake.url, ':') + 1;
    char def[2048];
    snprintf(def, sizeof def,
             "{\"display_name\":\"Hosted CC\",\"categories\":[\"dev-tools\"],"
             "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"OAUTH2_CC\","
             "\"token_url\":\"http://${connectionConfig.host}:%s/oauth/token\","
             "\"token_params\":{\"grant_type\":\"client_credentials\"},"
             "\"proxy\":{\"base_url\":\"http://${connectionConfig.host}:%s/api\"},"
             "\"connection_config\":{\"host\":{\"type\":\"string\",\"title\":\"Host\","
             "\"pattern\":\"^[a-z0-9.-]+$\",\"host_suffixes\":[\".fake.example\"]}},"
             "\"credentials\":{\"client_id\":{\"type\":\"string\",\"title\":\"ID\"},"
             "\"client_secret\":{\"type\":\"string\",\"title\":\"Secret\"}}}",
             port, port);
    json_object *resp = NULL;
    st = jn_test_api(&gw, "PUT", "/junction/providers/hosted-cc", gw.dev_key, def, &resp);
    jn_test_expect_status(st, 201, resp, "provider");
    json_object_put(resp);
    st = jn_test_api(&gw, "POST", "/integrations", gw.dev_key,
                     "{\"provider\":\"hosted-cc\",\"unique_key\":\"hosted-cc\"}", &resp);
    jn_test_expect_status(st, 200, resp, "integration");
    json_object_put(resp);

    char token[128], path[512];
    new_session(token, sizeof token);
    long before = token_requests("client_credentials");
    static const char *const hosts[] = {"127.0.0.1", "localhost", "127.0.0.1.nip.io",
                                        "fake.example"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        snprintf(path, sizeof path,
                 "/oauth2/auth/hosted-cc?connect_session_token=%s"
                 "&params%%5Bhost%%5D=%s",
                 token, hosts[i]);
        st =
            jn_test_api(&gw, "POST", path, NULL,
                        "{\"client_id\":\"test-client\",\"client_secret\":\"test-secret\"}", &resp);
        jn_test_expect_status(st, 400, resp, hosts[i]);
        const char *code = jn_test_json_str(resp, "error.code");
        const char *message = jn_test_json_str(resp, "error.message");
        if (!code || strcmp(code, "invalid_query_params") != 0 || !message ||
            !strstr(message, "connection_config.host"))
            fail_msg("%s: %s: %s", hosts[i], code ? code : "no code", message ? message : "");
        json_object_put(resp);
    }
    assert_int_equal(token_requests("client_credentials"), before);
}

/* Runs the authorization-code flow for integration pck; returns the callback's status and
 * its page (caller frees). */
static long dance_for(const char *pck, char **html)
{
    char token[128], url[512], location[2048], callback[2048];
    new_session(token, sizeof token);
    snprintf(url, sizeof url, "%s/oauth/connect/%s?connect_session_token=%s", gw.url, pck, token);
    assert_int_equal(get_no_follow(url, location, sizeof location, NULL), 302);
    assert_int_equal(get_no_follow(location, callback, sizeof callback, NULL), 302);
    return get_no_follow(callback, location, sizeof location, html);
}

/* token_response_metadata is the provider's word, and a provider does not choose where
 * later requests go either: a token answer whose instance_url leaves the allowed hosts
 * creates nothing. */
static void test_token_metadata_is_held_to_hosts(void **state)
{
    (void)state;
    long st;
    char def[2048];
    snprintf(def, sizeof def,
             "{\"display_name\":\"Fake with metadata\",\"categories\":[\"crm\"],"
             "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"OAUTH2\","
             "\"authorization_url\":\"%s/oauth/authorize\",\"token_url\":\"%s/oauth/token\","
             "\"token_response_metadata\":[\"instance_url\",\"team.id\"],"
             "\"proxy\":{\"base_url\":\"${connectionConfig.instance_url} || %s/api\"},"
             "\"connection_config\":{\"instance_url\":{\"type\":\"string\","
             "\"title\":\"Instance\",\"automated\":true,"
             "\"pattern\":\"^https://[a-z0-9.-]+$\",\"host_suffixes\":[\".salesforce.com\"]}}}",
             fake.url, fake.url, fake.url);
    json_object *resp = NULL;
    st = jn_test_api(&gw, "PUT", "/junction/providers/fake-meta", gw.dev_key, def, &resp);
    jn_test_expect_status(st, 201, resp, "provider");
    json_object_put(resp);
    st = jn_test_api(&gw, "POST", "/integrations", gw.dev_key,
                     "{\"provider\":\"fake-meta\",\"unique_key\":\"fake-meta\","
                     "\"credentials\":{\"type\":\"OAUTH2\",\"client_id\":\"test-client\","
                     "\"client_secret\":\"test-secret\"}}",
                     &resp);
    jn_test_expect_status(st, 200, resp, "integration");
    json_object_put(resp);

    char *count_before = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections");
    assert_int_equal(fake_call("POST", "/_admin/config",
                               "{\"extra_token_fields\":{\"instance_url\":"
                               "\"https://attacker.example\"}}",
                               &resp),
                     200);
    json_object_put(resp);
    char *html = NULL;
    assert_int_equal(dance_for("fake-meta", &html), 400);
    assert_non_null(strstr(html, "nango_oauth_callback_error"));
    assert_non_null(strstr(html, "connection_config.instance_url"));
    free(html);
    char *count_after = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections");
    assert_string_equal(count_before, count_after);
    free(count_before);
    free(count_after);

    /* The provider's own host is kept, beside metadata the entry lists but does not use. */
    assert_int_equal(fake_call("POST", "/_admin/config",
                               "{\"extra_token_fields\":{\"instance_url\":"
                               "\"https://acme.my.salesforce.com\",\"team\":{\"id\":\"T1\"}}}",
                               &resp),
                     200);
    json_object_put(resp);
    assert_int_equal(dance_for("fake-meta", &html), 200);
    const char *id = strstr(html, "\"connectionId\":\"");
    assert_non_null(id);
    id += 16;
    char path[256];
    snprintf(path, sizeof path, "/connections/%.*s?provider_config_key=fake-meta",
             (int)strcspn(id, "\""), id);
    free(html);
    st = jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp);
    jn_test_expect_status(st, 200, resp, "connection");
    assert_string_equal(jn_test_json_str(resp, "connection_config.instance_url"),
                        "https://acme.my.salesforce.com");
    json_object *config = NULL;
    assert_true(json_object_object_get_ex(resp, "connection_config", &config));
    json_object *team = NULL;
    assert_true(json_object_object_get_ex(config, "team.id", &team));
    assert_string_equal(json_object_get_string(team), "T1");
    json_object_put(resp);
    assert_int_equal(fake_call("POST", "/_admin/config", "{\"extra_token_fields\":null}", &resp),
                     200);
    json_object_put(resp);
}

static jn_test_process_t node_client;

/* The line of the Node client's output that starts with prefix, or NULL (new string). */
static char *node_line(const char *prefix)
{
    char *log = jn_test_read_log(&node_client);
    char *line = NULL;
    for (char *p = log; p && *p;) {
        size_t len = strcspn(p, "\n");
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            line = strndup(p, len);
            break;
        }
        p += len + (p[len] ? 1 : 0);
    }
    free(log);
    return line;
}

static bool node_said(void *ud)
{
    char *line = node_line(ud);
    free(line);
    return line != NULL;
}

static void test_node_websocket_client(void **state)
{
    (void)state;
    /* The WebSocket of Node 20 (undici, the same checks as browsers). */
    if (system("node --experimental-websocket -e "
               "\"process.exit(typeof WebSocket === 'function' ? 0 : 1)\" 2>/dev/null") != 0) {
        printf("SKIPPED: node with a built-in WebSocket (Node 20+) is not installed\n");
        skip();
    }
    char ws_url[sizeof gw.url + 8];
    snprintf(ws_url, sizeof ws_url, "ws://%.60s/", gw.url + strlen("http://"));
    const char *argv[] = {
        "/usr/bin/env", "node", "--experimental-websocket", FIXTURES_DIR "/ws_client.mjs",
        ws_url,         NULL};
    jn_test_spawn(&node_client, argv, NULL, "oauth_node_ws_client");
    if (!jn_test_wait_until(node_said, "MESSAGE ", 20000)) {
        char *log = jn_test_read_log(&node_client);
        fail_msg("node's WebSocket did not connect:\n%s", log);
    }
    char *ack = node_line("MESSAGE ");
    json_object *m = json_tokener_parse(ack + 8);
    free(ack);
    assert_string_equal(jn_test_json_str(m, "message_type"), "connection_ack");
    snprintf(dance_ws_client, sizeof dance_ws_client, "%s", jn_test_json_str(m, "ws_client_id"));
    json_object_put(m);

    char cid[64], callback[2048];
    oauth_dance(cid, sizeof cid, callback, sizeof callback);
    dance_ws_client[0] = '\0';
    /* The client got the result, closed, and the closing handshake completed cleanly. */
    if (!jn_test_wait_until(node_said, "CLOSE ", 20000)) {
        char *log = jn_test_read_log(&node_client);
        fail_msg("node's WebSocket did not close:\n%s", log);
    }
    char *log = jn_test_read_log(&node_client);
    char want[128];
    snprintf(want, sizeof want, "\"connection_id\":\"%s\"", cid);
    if (!strstr(log, "\"message_type\":\"success\"") || !strstr(log, want) ||
        !strstr(log, "CLOSE 1005 true") || strstr(log, "ERROR"))
        fail_msg("node's WebSocket saw:\n%s", log);
    free(log);
    assert_true(jn_test_process_wait(&node_client, 10000));
    assert_int_equal(node_client.exit_status, 0);
}

static void test_websocket_protocol_errors_close_the_socket(void **state)
{
    (void)state;
    char client[40];
    int fd = ws_connect(client, sizeof client);
    /* An unmasked client frame breaks RFC 6455 5.1: Close 1002, then the end. */
    const unsigned char unmasked[] = {0x81, 0x02, 'h', 'i'};
    assert_int_equal(send(fd, unmasked, sizeof unmasked, 0), (ssize_t)sizeof unmasked);
    unsigned char frame[128];
    size_t len = 0;
    assert_int_equal(ws_read_frame(fd, frame, &len), 0x8);
    assert_int_equal(frame[0] << 8 | frame[1], 1002);
    assert_int_equal(recv(fd, frame, 1, 0), 0);
    close(fd);

    /* A handshake without version 13 is refused with the version we speak. */
    int port = (int)strtol(strrchr(gw.url, ':') + 1, NULL, 10);
    char url[96], *head = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    const char *old_version[] = {
        "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8", NULL};
    assert_int_equal(jn_test_http_headers("GET", url, old_version, NULL, 0, NULL, &head), 426);
    char value[32];
    jn_test_header_value(head, "Sec-WebSocket-Version", value, sizeof value);
    assert_string_equal(value, "13");
    free(head);
    const char *bad_key[] = {"Upgrade: websocket", "Connection: Upgrade",
                             "Sec-WebSocket-Key: c2hvcnQ=", "Sec-WebSocket-Version: 13", NULL};
    assert_int_equal(jn_test_http("GET", url, bad_key, NULL, 0, NULL), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_dance_and_replay),
        cmocka_unit_test(test_frontend_websocket_gets_the_result),
        cmocka_unit_test(test_websocket_protocol_errors_close_the_socket),
        cmocka_unit_test(test_node_websocket_client),
        cmocka_unit_test(test_callback_only_in_the_browser_that_started),
        cmocka_unit_test(test_callback_page_posts_to_the_environments_origins),
        cmocka_unit_test(test_provider_denial),
        cmocka_unit_test(test_rotation_and_dead_refresh_token),
        cmocka_unit_test(test_client_credentials),
        cmocka_unit_test(test_token_metadata_on_every_acquisition),
        cmocka_unit_test(test_scheduler_sweep_refreshes_expiring_tokens),
        cmocka_unit_test(test_end_user_host_reaches_nothing),
        cmocka_unit_test(test_token_metadata_is_held_to_hosts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
