/*
 * Integration: ALL /proxy/... against the fake provider through a real gateway: credential
 * injection, header and query pass-through, each retry rule with its wait honoured, the
 * egress policy (SSRF) with its per-environment allow-list, and a 100 MB download that
 * streams through without the gateway's memory growing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static jn_test_gateway_t gw;
static jn_test_process_t fake;
static char fake_url[64];
static int fake_port;

static bool fake_listening(void *ud)
{
    (void)ud;
    char *log = jn_test_read_log(&fake);
    const char *line = strstr(log, "listening on ");
    if (line) {
        fake_port = (int)strtol(line + 13, NULL, 10);
        snprintf(fake_url, sizeof fake_url, "http://127.0.0.1:%d", fake_port);
    }
    free(log);
    return line != NULL;
}

static void fake_admin(const char *path, const char *body)
{
    char url[256], *text = NULL;
    snprintf(url, sizeof url, "%s%s", fake_url, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    long st = jn_test_http("POST", url, headers, body, strlen(body), &text);
    if (st < 200 || st > 299)
        fail_msg("fake admin %s: %ld %s", path, st, text);
    free(text);
}

static long api_requests(void)
{
    char url[256], *text = NULL;
    snprintf(url, sizeof url, "%s/_admin/stats", fake_url);
    assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, &text), 200);
    json_object *o = json_tokener_parse(text);
    free(text);
    long n = strtol(jn_test_json_str(o, "api_requests"), NULL, 10);
    json_object_put(o);
    return n;
}

static void must(long got, long want, json_object *resp, const char *what)
{
    if (got != want)
        fail_msg("%s: %ld (wanted %ld) %s", what, got, want,
                 resp ? json_object_to_json_string(resp) : "");
}

static int setup(void **state)
{
    (void)state;
    const char *argv[] = {FAKE_PROVIDER_BIN, NULL};
    jn_test_spawn(&fake, argv, NULL, "proxy_fake_provider");
    assert_true(jn_test_wait_until(fake_listening, NULL, 10000));
    fake_admin("/_admin/api_keys", "{\"key\":\"k-123\"}");
    static const char *const env[] = {"JUNCTION_EGRESS_ADMISSIBLE=127.0.0.0/8,::1/128", NULL};
    jn_test_gateway_start(&gw, GATEWAY_BIN, env);

    char def[2048];
    snprintf(
        def, sizeof def,
        "{\"display_name\":\"Fake API\",\"categories\":[\"dev-tools\"],"
        "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
        "\"proxy\":{\"base_url\":\"%s\",\"headers\":{\"x-api-key\":\"${apiKey}\"},"
        "\"retry\":{\"after\":[\"retry-after\"],\"at\":[\"x-ratelimit-reset\"],"
        "\"remaining\":\"x-ratelimit-remaining\",\"error_code\":[\"429\",\"5xx\"]}},"
        "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\",\"secret\":true}}}",
        fake_url);
    const char *keys[] = {gw.dev_key, gw.prod_key};
    for (int i = 0; i < 2; i++) {
        json_object *resp = NULL;
        must(jn_test_api(&gw, "PUT", "/junction/providers/fake-api", keys[i], def, &resp), 201,
             resp, "provider");
        json_object_put(resp);
        must(jn_test_api(&gw, "POST", "/integrations", keys[i],
                         "{\"provider\":\"fake-api\",\"unique_key\":\"fake\"}", &resp),
             200, resp, "integration");
        json_object_put(resp);
        must(jn_test_api(&gw, "POST", "/connections", keys[i],
                         "{\"provider_config_key\":\"fake\",\"connection_id\":\"c1\","
                         "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"k-123\"}}",
                         &resp),
             201, resp, "connection");
        json_object_put(resp);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* Invariant: credentials never reach the logs. */
    char *log = jn_test_read_log(&gw.proc);
    bool leaked = strstr(log, "k-123") != NULL;
    free(log);
    jn_test_gateway_stop(&gw);
    if (leaked)
        fail_msg("the API key appears in the gateway's log");
    jn_test_signal(&fake, SIGTERM);
    jn_test_process_wait(&fake, 10000);
    jn_test_process_kill(&fake);
    return 0;
}

/* A proxied request with the dev key; extra is a NULL-terminated list of more headers. */
static long proxy_call(const char *key, const char *method, const char *path,
                       const char *const *extra, const char *body, char **out)
{
    char url[512], auth[200];
    snprintf(url, sizeof url, "%s/proxy%s", gw.url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *headers[24] = {auth, "Connection-Id: c1", "Provider-Config-Key: fake"};
    int n = 3;
    for (int i = 0; extra && extra[i] && n < 23; i++)
        headers[n++] = extra[i];
    headers[n] = NULL;
    return jn_test_http(method, url, headers, body, body ? strlen(body) : 0, out);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_egress_is_refused_until_allowed(void **state)
{
    (void)state;
    char *body = NULL;
    /* Loopback is internal: refused by default, naming the reason. */
    long st = proxy_call(gw.dev_key, "GET", "/api/me", NULL, NULL, &body);
    assert_int_equal(st, 400);
    assert_non_null(strstr(body, "loopback"));
    free(body);
    json_object *resp = NULL;
    must(jn_test_api(&gw, "PATCH", "/junction/environment", gw.dev_key,
                     "{\"egress_allowlist\":\"127.0.0.0/8\"}", &resp),
         200, resp, "allow-list");
    json_object_put(resp);
    must(jn_test_api(&gw, "PATCH", "/junction/environment", gw.dev_key,
                     "{\"egress_allowlist\":\"127.0.0.1/99\"}", &resp),
         400, resp, "bad allow-list");
    json_object_put(resp);
    /* Cloud metadata is never admitted, however wide the list; nothing is stored. */
    const char *metadata[] = {"169.254.169.254", "169.254.0.0/16", "0.0.0.0/0", "::/0",
                              "10.0.0.0/8, 100.64.0.0/10"};
    for (size_t i = 0; i < sizeof metadata / sizeof metadata[0]; i++) {
        char patch[128];
        snprintf(patch, sizeof patch, "{\"egress_allowlist\":\"%s\"}", metadata[i]);
        must(jn_test_api(&gw, "PATCH", "/junction/environment", gw.dev_key, patch, &resp), 400,
             resp, metadata[i]);
        assert_non_null(strstr(json_object_to_json_string(resp), "metadata"));
        json_object_put(resp);
    }
    /* Nor anything internal the operator does not admit (this gateway: loopback only). */
    const char *outside[] = {"10.0.0.0/8", "127.0.0.1, 192.168.0.0/16", "fc00::/8"};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        char patch[128];
        snprintf(patch, sizeof patch, "{\"egress_allowlist\":\"%s\"}", outside[i]);
        must(jn_test_api(&gw, "PATCH", "/junction/environment", gw.dev_key, patch, &resp), 400,
             resp, outside[i]);
        if (!strstr(json_object_to_json_string(resp), "JUNCTION_EGRESS_ADMISSIBLE"))
            fail_msg("%s: %s", outside[i], json_object_to_json_string(resp));
        json_object_put(resp);
    }
    must(jn_test_api(&gw, "GET", "/junction/environment", gw.dev_key, NULL, &resp), 200, resp,
         "environment");
    json_object *data = NULL, *list = NULL;
    assert_true(json_object_object_get_ex(resp, "data", &data));
    assert_true(json_object_object_get_ex(data, "egress_allowlist", &list));
    assert_string_equal(json_object_get_string(list), "127.0.0.0/8");
    json_object_put(resp);
    st = proxy_call(gw.dev_key, "GET", "/api/me", NULL, NULL, &body);
    if (st != 200)
        fail_msg("allowed proxy call: %ld %s", st, body);
    free(body);

    /* prod has no allow-list: every spelling of an internal address is refused. */
    char overrides[][160] = {"", "", "", "", "", ""};
    snprintf(overrides[0], 160, "Base-Url-Override: http://2130706433:%d", fake_port);
    snprintf(overrides[1], 160, "Base-Url-Override: http://0x7f000001:%d", fake_port);
    snprintf(overrides[2], 160, "Base-Url-Override: http://[::ffff:127.0.0.1]:%d", fake_port);
    snprintf(overrides[3], 160, "Base-Url-Override: http://localhost:%d", fake_port);
    snprintf(overrides[4], 160, "Base-Url-Override: http://169.254.169.254");
    snprintf(overrides[5], 160, "Base-Url-Override: http://0177.0.0.1:%d", fake_port);
    long before = api_requests();
    for (int i = 0; i < 6; i++) {
        const char *extra[] = {overrides[i], NULL};
        st = proxy_call(gw.prod_key, "GET", "/api/me", extra, NULL, &body);
        if (st != 400 || !strstr(body, "refused"))
            fail_msg("%s: %ld %s", overrides[i], st, body);
        free(body);
    }
    const char *scheme[] = {"Base-Url-Override: file:///etc/passwd", NULL};
    st = proxy_call(gw.prod_key, "GET", "/x", scheme, NULL, &body);
    assert_int_equal(st, 400);
    free(body);
    assert_int_equal(api_requests(), before);
}

/* A provider with a verification request: bad credentials are refused before the
 * connection is saved. */
/* A connect session of the dev environment; its token. */
static void connect_token(char *token, size_t cap)
{
    json_object *resp = NULL;
    must(jn_test_api(&gw, "POST", "/connect/sessions", gw.dev_key,
                     "{\"end_user\":{\"id\":\"proxy-user\"}}", &resp),
         201, resp, "connect session");
    snprintf(token, cap, "%s", jn_test_json_str(resp, "data.token"));
    json_object_put(resp);
}

static void test_credentials_verified_on_save(void **state)
{
    (void)state;
    char def[2048];
    snprintf(def, sizeof def,
             "{\"display_name\":\"Fake verified\",\"categories\":[\"dev-tools\"],"
             "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
             "\"proxy\":{\"base_url\":\"%s\",\"headers\":{\"x-api-key\":\"${apiKey}\"},"
             "\"verification\":{\"method\":\"GET\",\"endpoints\":[\"/api/me\"]}},"
             "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\"}}}",
             fake_url);
    json_object *resp = NULL;
    must(jn_test_api(&gw, "PUT", "/junction/providers/fake-verified", gw.dev_key, def, &resp), 201,
         resp, "provider");
    json_object_put(resp);
    must(jn_test_api(&gw, "POST", "/integrations", gw.dev_key,
                     "{\"provider\":\"fake-verified\",\"unique_key\":\"verified\"}", &resp),
         200, resp, "integration");
    json_object_put(resp);
    /* An import stores what it is given without asking the provider (as Nango's does:
     * a bulk migration is never blocked by a provider). */
    long api_before = api_requests();
    must(jn_test_api(&gw, "POST", "/connections", gw.dev_key,
                     "{\"provider_config_key\":\"verified\",\"connection_id\":\"v0\","
                     "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"wrong-key\"}}",
                     &resp),
         201, resp, "import");
    json_object_put(resp);
    assert_int_equal(api_requests(), api_before);
    /* An end user's connect flow verifies: a wrong key stores nothing. */
    char token[128], path[512];
    connect_token(token, sizeof token);
    snprintf(path, sizeof path, "/api-auth/api-key/verified?connect_session_token=%s", token);
    must(jn_test_api(&gw, "POST", path, NULL, "{\"apiKey\":\"wrong-key\"}", &resp), 400, resp,
         "wrong key");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "connection_test_failed");
    assert_non_null(strstr(jn_test_json_str(resp, "error.message"), "401"));
    json_object_put(resp);
    char *n = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM connections c JOIN integrations i "
                                           "ON i.id = c.integration_id WHERE i.unique_key = "
                                           "'verified' AND c.connection_id <> 'v0'");
    assert_string_equal(n, "0");
    free(n);
    must(jn_test_api(&gw, "POST", path, NULL, "{\"apiKey\":\"k-123\"}", &resp), 200, resp,
         "right key");
    json_object_put(resp);
}

static void test_injection_and_pass_through(void **state)
{
    (void)state;
    char *body = NULL;
    const char *extra[] = {"Nango-Proxy-X-Custom: hello", "Nango-Proxy-X-Api-Key: attacker", NULL};
    long st = proxy_call(gw.dev_key, "GET", "/api/me?a=1&b=two%20words", extra, NULL, &body);
    assert_int_equal(st, 200);
    json_object *o = json_tokener_parse(body);
    assert_string_equal(jn_test_json_str(o, "headers.x-api-key"), "k-123"); /* not overridden */
    assert_string_equal(jn_test_json_str(o, "headers.x-custom"), "hello");
    assert_string_equal(jn_test_json_str(o, "query.a"), "1");
    assert_string_equal(jn_test_json_str(o, "query.b"), "two words");
    assert_null(jn_test_json_str(o, "headers.connection-id"));
    json_object_put(o);
    free(body);

    st = proxy_call(gw.dev_key, "POST", "/api/echo",
                    (const char *[]){"Content-Type: text/plain", NULL}, "raw body bytes", &body);
    assert_int_equal(st, 200);
    o = json_tokener_parse(body);
    assert_string_equal(jn_test_json_str(o, "body_length"), "14");
    assert_string_equal(jn_test_json_str(o, "content_type"), "text/plain");
    json_object_put(o);
    free(body);

    /* A body the provider calls JSON but is not passes through untouched. */
    st = proxy_call(gw.dev_key, "GET", "/api/garbage", NULL, NULL, &body);
    assert_int_equal(st, 200);
    assert_null(json_tokener_parse(body));
    free(body);

    /* Bad headers. */
    char url[256], auth[200];
    snprintf(url, sizeof url, "%s/proxy/api/me", gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
    const char *missing[] = {auth, "Provider-Config-Key: fake", NULL};
    assert_int_equal(jn_test_http("GET", url, missing, NULL, 0, &body), 400);
    assert_non_null(strstr(body, "Connection-Id"));
    free(body);
    const char *bad_retries[] = {"Retries: lots", NULL};
    assert_int_equal(proxy_call(gw.dev_key, "GET", "/api/me", bad_retries, NULL, &body), 400);
    assert_non_null(strstr(body, "Retries"));
    free(body);
    const char *unknown[] = {auth, "Connection-Id: nope", "Provider-Config-Key: fake", NULL};
    assert_int_equal(jn_test_http("GET", url, unknown, NULL, 0, NULL), 404);
}

static void test_retry_rules(void **state)
{
    (void)state;
    char *body = NULL;
    /* 503 bursts: retried, up to Retries. */
    fake_admin("/_admin/config", "{\"fail_next\":{\"count\":2,\"status\":503}}");
    long before = api_requests();
    const char *three[] = {"Retries: 3", NULL};
    assert_int_equal(proxy_call(gw.dev_key, "GET", "/api/me", three, NULL, &body), 200);
    free(body);
    assert_int_equal(api_requests(), before + 3);
    /* Without Retries the 503 comes back as is. */
    fake_admin("/_admin/config", "{\"fail_next\":{\"count\":1,\"status\":503}}");
    assert_int_equal(proxy_call(gw.dev_key, "GET", "/api/me", NULL, NULL, &body), 503);
    free(body);

    /* 429 with Retry-After: 1 — the wait is honoured. */
    fake_admin("/_admin/config",
               "{\"fail_next\":{\"count\":1,\"status\":429,\"headers\":{\"retry-after\":\"1\"}}}");
    const char *one[] = {"Retries: 1", NULL};
    double t0 = now_s();
    assert_int_equal(proxy_call(gw.dev_key, "GET", "/api/me", one, NULL, &body), 200);
    double waited = now_s() - t0;
    free(body);
    if (waited < 0.95)
        fail_msg("Retry-After: 1 was not honoured (%.3f s)", waited);

    /* Rate-limit headers: remaining 0 and a reset time in the future. */
    fake_admin("/_admin/config",
               "{\"rate_limit\":{\"limit\":1,\"window_ms\":1500,\"retry_after\":false}}");
    assert_int_equal(proxy_call(gw.dev_key, "GET", "/api/me", NULL, NULL, &body), 200);
    free(body);
    t0 = now_s();
    assert_int_equal(proxy_call(gw.dev_key, "GET", "/api/me", one, NULL, &body), 200);
    waited = now_s() - t0;
    free(body);
    if (waited < 0.3)
        fail_msg("the reset-time header was not honoured (%.3f s)", waited);
    fake_admin("/_admin/config", "{\"rate_limit\":null}");

    /* Retry-On adds a status the provider does not list. */
    fake_admin("/_admin/config", "{\"fail_next\":{\"count\":1,\"status\":418}}");
    const char *teapot[] = {"Retries: 1", "Retry-On: 418", NULL};
    assert_int_equal(proxy_call(gw.dev_key, "GET", "/api/me", teapot, NULL, &body), 200);
    free(body);
    fake_admin("/_admin/config", "{\"fail_next\":{\"count\":1,\"status\":418}}");
    assert_int_equal(proxy_call(gw.dev_key, "GET", "/api/me", one, NULL, &body), 418);
    free(body);

    /* A wait longer than the budget is not slept: the 429 comes back at once. */
    fake_admin(
        "/_admin/config",
        "{\"fail_next\":{\"count\":1,\"status\":429,\"headers\":{\"retry-after\":\"3600\"}}}");
    t0 = now_s();
    assert_int_equal(proxy_call(gw.dev_key, "GET", "/api/me", one, NULL, &body), 429);
    free(body);
    assert_true(now_s() - t0 < 5);
}

typedef struct {
    unsigned long long count;
    bool pattern_ok;
} download_t;

static size_t count_bytes(char *ptr, size_t size, size_t nmemb, void *ud)
{
    download_t *d = ud;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)ptr[i] != (unsigned char)((d->count + i) % 251))
            d->pattern_ok = false;
    }
    d->count += n;
    return n;
}

static long gateway_peak_rss_kb(void)
{
    return jn_test_status_kb(gw.proc.pid, "VmHWM");
}

static void test_100mb_download_streams(void **state)
{
    (void)state;
    long before_kb = gateway_peak_rss_kb();
    assert_true(before_kb > 0);
    const unsigned long long size = 100ull * 1024 * 1024;
    char url[256], auth[200];
    snprintf(url, sizeof url, "%s/proxy/api/large?bytes=%llu", gw.url, size);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Connection-Id: c1");
    h = curl_slist_append(h, "Provider-Config-Key: fake");
    CURL *curl = curl_easy_init();
    download_t d = {0, true};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, count_bytes);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 240L);
    double t0 = now_s();
    CURLcode rc = curl_easy_perform(curl);
    double seconds = now_s() - t0;
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(h);
    assert_int_equal(rc, CURLE_OK);
    assert_int_equal(status, 200);
    assert_true(d.count == size);
    assert_true(d.pattern_ok);
    long after_kb = gateway_peak_rss_kb();
    printf(
        "proxy: 100 MiB in %.2f s (%.0f MiB/s); gateway peak RSS %ld KiB before, %ld KiB after\n",
        seconds, 100.0 / seconds, before_kb, after_kb);
    /* Flat: the body never sits in memory (a buffered copy would add 100 MiB). */
    assert_true(after_kb - before_kb < 16 * 1024);
}

typedef struct {
    unsigned long long sent, size;
    EVP_MD_CTX *sha;
} upload_src_t;

static size_t produce(char *buf, size_t size, size_t nitems, void *ud)
{
    upload_src_t *u = ud;
    size_t n = size * nitems;
    if (n > u->size - u->sent)
        n = (size_t)(u->size - u->sent);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)((u->sent + i) * 7 % 256);
    EVP_DigestUpdate(u->sha, buf, n);
    u->sent += n;
    return n;
}

/* A 24 MiB upload streams through the proxy to the provider: the provider sees every
 * byte, and the gateway's memory does not grow by the body. */
static void test_large_upload_streams(void **state)
{
    (void)state;
    long before_kb = gateway_peak_rss_kb();
    const unsigned long long size = 24ull * 1024 * 1024;
    char url[256], auth[200], *answer = NULL;
    size_t answer_len = 0;
    snprintf(url, sizeof url, "%s/proxy/api/echo", gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Connection-Id: c1");
    h = curl_slist_append(h, "Provider-Config-Key: fake");
    h = curl_slist_append(h, "Content-Type: application/octet-stream");
    h = curl_slist_append(h, "Expect:");
    upload_src_t src = {0, size, EVP_MD_CTX_new()};
    EVP_DigestInit_ex(src.sha, EVP_sha256(), NULL);
    FILE *sink = open_memstream(&answer, &answer_len);
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "POST");
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, produce);
    curl_easy_setopt(curl, CURLOPT_READDATA, &src);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(h);
    fclose(sink);
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(src.sha, digest, &dlen);
    EVP_MD_CTX_free(src.sha);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    assert_int_equal(rc, CURLE_OK);
    if (status != 200)
        fail_msg("upload answered %ld: %s", status, answer);
    json_object *o = json_tokener_parse(answer);
    assert_string_equal(jn_test_json_str(o, "method"), "POST");
    assert_true(strtoull(jn_test_json_str(o, "body_length"), NULL, 10) == size);
    assert_string_equal(jn_test_json_str(o, "body_sha256"), hex);
    json_object_put(o);
    free(answer);
    long after_kb = gateway_peak_rss_kb();
    printf("proxy: 24 MiB upload; gateway peak RSS %ld KiB before, %ld KiB after\n", before_kb,
           after_kb);
    assert_true(after_kb - before_kb < 8 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_egress_is_refused_until_allowed),
        cmocka_unit_test(test_credentials_verified_on_save),
        cmocka_unit_test(test_injection_and_pass_through),
        cmocka_unit_test(test_retry_rules),
        cmocka_unit_test(test_100mb_download_streams),
        cmocka_unit_test(test_large_upload_streams),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
