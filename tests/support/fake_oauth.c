/*
 * fake_oauth.c - the fake provider and the OAuth dance for integration tests (see
 * fake_oauth.h).
 */
#include "fake_oauth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool fake_listening(void *ud)
{
    jn_test_fake_t *f = ud;
    char *log = jn_test_read_log(&f->proc);
    const char *line = strstr(log, "listening on ");
    if (line)
        snprintf(f->url, sizeof f->url, "http://127.0.0.1:%ld", strtol(line + 13, NULL, 10));
    free(log);
    return line != NULL;
}

void jn_test_fake_start(jn_test_fake_t *f, const char *fake_bin, const char *log_name)
{
    memset(f, 0, sizeof *f);
    const char *argv[] = {fake_bin, "--port", "0", NULL};
    jn_test_spawn(&f->proc, argv, NULL, log_name);
    if (!jn_test_wait_until(fake_listening, f, 10000))
        fail_msg("the fake provider did not start");
}

void jn_test_fake_stop(jn_test_fake_t *f)
{
    jn_test_signal(&f->proc, SIGTERM);
    jn_test_process_wait(&f->proc, 10000);
    jn_test_process_kill(&f->proc);
}

long jn_test_fake_call(const jn_test_fake_t *f, const char *method, const char *path,
                       const char *body, json_object **resp)
{
    char url[256], *text = NULL;
    snprintf(url, sizeof url, "%s%s", f->url, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    long st = jn_test_http(method, url, headers, body, body ? strlen(body) : 0, &text);
    if (resp)
        *resp = text ? json_tokener_parse(text) : NULL;
    free(text);
    return st;
}

void jn_test_fake_config(const jn_test_fake_t *f, const char *knobs)
{
    json_object *resp = NULL;
    long st = jn_test_fake_call(f, "POST", "/_admin/config", knobs, &resp);
    if (st != 200)
        fail_msg("fake provider refused %s: %s", knobs,
                 resp ? json_object_to_json_string(resp) : "");
    json_object_put(resp);
}

long jn_test_fake_token_requests(const jn_test_fake_t *f, const char *grant)
{
    json_object *stats = NULL;
    assert_int_equal(jn_test_fake_call(f, "GET", "/_admin/stats", NULL, &stats), 200);
    char path[96];
    snprintf(path, sizeof path, "token_requests_by_grant.%s", grant);
    const char *v = jn_test_json_str(stats, path);
    long n = v ? strtol(v, NULL, 10) : 0;
    json_object_put(stats);
    return n;
}

static void api_ok_as(const jn_test_gateway_t *gw, const char *key, const char *method,
                      const char *path, const char *body, long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(gw, method, path, key, body, &resp);
    if (st != want)
        fail_msg("%s %s: %ld (wanted %ld) %s", method, path, st, want,
                 resp ? json_object_to_json_string(resp) : "");
    json_object_put(resp);
}

static void api_ok(const jn_test_gateway_t *gw, const char *method, const char *path,
                   const char *body, long want)
{
    api_ok_as(gw, gw->dev_key, method, path, body, want);
}

void jn_test_fake_setup_gateway(const jn_test_gateway_t *gw, const jn_test_fake_t *f)
{
    jn_test_browser_for(gw->url);
    char def[2048];
    snprintf(def, sizeof def,
             "{\"display_name\":\"Fake OAuth\",\"categories\":[\"dev-tools\"],"
             "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"OAUTH2\","
             "\"authorization_url\":\"%s/oauth/authorize\",\"token_url\":\"%s/oauth/token\","
             "\"token_response_metadata\":[\"instance_url\",\"team.id\"],"
             "\"pkce\":true,\"proxy\":{\"base_url\":\"%s/api\"}}",
             f->url, f->url, f->url);
    api_ok(gw, "PUT", "/junction/providers/fake-oauth", def, 201);
    snprintf(
        def, sizeof def,
        "{\"display_name\":\"Fake CC\",\"categories\":[\"dev-tools\"],"
        "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"OAUTH2_CC\","
        "\"token_url\":\"%s/oauth/token\",\"token_params\":{\"grant_type\":\"client_credentials\"},"
        "\"token_response_metadata\":[\"instance_url\",\"team.id\"],"
        "\"proxy\":{\"base_url\":\"%s/api\"},"
        "\"credentials\":{\"client_id\":{\"type\":\"string\",\"title\":\"Client ID\"},"
        "\"client_secret\":{\"type\":\"string\",\"title\":\"Client secret\",\"secret\":true}}}",
        f->url, f->url);
    api_ok(gw, "PUT", "/junction/providers/fake-cc", def, 201);
    api_ok(gw, "POST", "/integrations",
           "{\"provider\":\"fake-oauth\",\"unique_key\":\"fake\",\"credentials\":"
           "{\"type\":\"OAUTH2\",\"client_id\":\"test-client\","
           "\"client_secret\":\"test-secret\",\"scopes\":\"read,write\"}}",
           200);
    api_ok(gw, "POST", "/integrations", "{\"provider\":\"fake-cc\",\"unique_key\":\"fake-cc\"}",
           200);
}

void jn_test_fake_allow(const jn_test_gateway_t *gw)
{
    jn_test_allow_loopback(gw, gw->dev_key);
}

void jn_test_allow_loopback(const jn_test_gateway_t *gw, const char *key)
{
    api_ok_as(gw, key, "PATCH", "/junction/environment", "{\"egress_allowlist\":\"127.0.0.0/8\"}",
              200);
}

void jn_test_fake_api_key_connection(const jn_test_gateway_t *gw, const char *key,
                                     const jn_test_fake_t *f, const char *provider,
                                     const char *unique_key, const char *connection_id,
                                     const char *api_key)
{
    char body[2048], path[256];
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", api_key);
    if (jn_test_fake_call(f, "POST", "/_admin/api_keys", body, NULL) != 201)
        fail_msg("the fake refused API key %s", api_key);
    snprintf(body, sizeof body,
             "{\"display_name\":\"Fake keyed\",\"categories\":[\"dev-tools\"],"
             "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
             "\"proxy\":{\"base_url\":\"%s\",\"headers\":{\"x-api-key\":\"${apiKey}\"}},"
             "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\","
             "\"secret\":true}}}",
             f->url);
    snprintf(path, sizeof path, "/junction/providers/%s", provider);
    api_ok_as(gw, key, "PUT", path, body, 201);
    snprintf(body, sizeof body, "{\"provider\":\"%s\",\"unique_key\":\"%s\"}", provider,
             unique_key);
    api_ok_as(gw, key, "POST", "/integrations", body, 200);
    snprintf(body, sizeof body,
             "{\"provider_config_key\":\"%s\",\"connection_id\":\"%s\","
             "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"%s\"}}",
             unique_key, connection_id, api_key);
    api_ok_as(gw, key, "POST", "/connections", body, 201);
}

void jn_test_connect_session(const jn_test_gateway_t *gw, char *token, size_t cap)
{
    json_object *resp = NULL;
    long st = jn_test_api(gw, "POST", "/connect/sessions", gw->dev_key,
                          "{\"end_user\":{\"id\":\"oauth-user\"}}", &resp);
    if (st != 201)
        fail_msg("connect session: %ld", st);
    snprintf(token, cap, "%s", jn_test_json_str(resp, "data.token"));
    json_object_put(resp);
}

void jn_test_slash_escaped(const char *text, char *out, size_t cap)
{
    size_t n = 0;
    for (; *text && n + 3 < cap; text++) {
        if (*text == '/')
            out[n++] = '\\';
        out[n++] = *text;
    }
    out[n] = '\0';
}

char jn_test_browser_cookie[256];
char jn_test_browser_set_cookie[512];
static char browser_origin[64];

void jn_test_browser_for(const char *gateway_url)
{
    snprintf(browser_origin, sizeof browser_origin, "%s", gateway_url);
    jn_test_browser_cookie[0] = jn_test_browser_set_cookie[0] = '\0';
}

static size_t keep_cookie(char *line, size_t size, size_t n, void *ud)
{
    (void)ud;
    size_t len = size * n;
    if (len > 12 && strncasecmp(line, "Set-Cookie: ", 12) == 0) {
        char *set = jn_test_browser_set_cookie;
        snprintf(set, sizeof jn_test_browser_set_cookie, "%.*s", (int)(len - 12), line + 12);
        set[strcspn(set, "\r\n")] = '\0';
        size_t pair = strcspn(set, ";");
        const char *eq = memchr(set, '=', pair);
        /* An emptied value is the gateway deleting the cookie. */
        if (eq && (size_t)(eq - set) + 1 < pair)
            snprintf(jn_test_browser_cookie, sizeof jn_test_browser_cookie, "%.*s", (int)pair, set);
        else
            jn_test_browser_cookie[0] = '\0';
    }
    return len;
}

long jn_test_get_no_follow(const char *url, char *location, size_t cap, char **body)
{
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    if (browser_origin[0] && strncmp(url, browser_origin, strlen(browser_origin)) == 0) {
        if (jn_test_browser_cookie[0])
            curl_easy_setopt(curl, CURLOPT_COOKIE, jn_test_browser_cookie);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, keep_cookie);
    }
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
    FILE *sink = body ? NULL : fopen("/dev/null", "w");
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = body ? open_memstream(&buf, &len) : sink;
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, mem);
    long status = 0;
    location[0] = '\0';
    if (curl_easy_perform(curl) == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        char *loc = NULL;
        curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &loc);
        if (loc)
            snprintf(location, cap, "%s", loc);
    }
    curl_easy_cleanup(curl);
    fclose(mem);
    if (body)
        *body = buf;
    return status;
}

void jn_test_oauth_dance(const jn_test_gateway_t *gw, const jn_test_fake_t *f,
                         const char *ws_client_id, char *connection_id, size_t cap,
                         char *callback_url, size_t cb_cap)
{
    char token[128], url[512], location[2048];
    jn_test_connect_session(gw, token, sizeof token);
    snprintf(url, sizeof url, "%s/oauth/connect/fake?connect_session_token=%s%s%s", gw->url, token,
             ws_client_id ? "&ws_client_id=" : "", ws_client_id ? ws_client_id : "");
    assert_int_equal(jn_test_get_no_follow(url, location, sizeof location, NULL), 302);
    assert_true(strncmp(location, f->url, strlen(f->url)) == 0);
    assert_non_null(strstr(location, "code_challenge_method=S256"));
    assert_non_null(strstr(location, "state="));
    assert_non_null(strstr(location, "client_id=test-client"));
    assert_non_null(strstr(location, "scope=read%20write"));

    /* The provider approves and sends the browser back to our callback. */
    char callback[2048];
    assert_int_equal(jn_test_get_no_follow(location, callback, sizeof callback, NULL), 302);
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s/oauth/callback?", gw->url);
    assert_true(strncmp(callback, prefix, strlen(prefix)) == 0);
    char *html = NULL;
    long st = jn_test_get_no_follow(callback, location, sizeof location, &html);
    if (st != 200)
        fail_msg("callback answered %ld: %s", st, html);
    assert_non_null(strstr(html, "nango_oauth_callback_success"));
    /* The result is posted to the gateway's own origin (and the environment's), never '*'. */
    char targets[320], own[128];
    jn_test_slash_escaped(gw->url, own, sizeof own);
    snprintf(targets, sizeof targets, "t=[\"%s\"", own);
    assert_non_null(strstr(html, targets));
    assert_null(strstr(html, "'*'"));
    char *listed = jn_test_sql_value(gw->db_url, "SELECT cors_allowed_origins FROM environments "
                                                 "WHERE name = 'dev'");
    if (listed && *listed) {
        char other[128];
        jn_test_slash_escaped(listed, other, sizeof other);
        snprintf(targets, sizeof targets, "t=[\"%s\",\"%s\"]", own, other);
        assert_non_null(strstr(html, targets));
    }
    free(listed);
    const char *id = strstr(html, "\"connectionId\":\"");
    assert_non_null(id);
    id += 16;
    snprintf(connection_id, cap, "%.*s", (int)strcspn(id, "\""), id);
    free(html);
    snprintf(callback_url, cb_cap, "%s", callback);
}
