/*
 * Integration: the fake provider (tests/support/fake_provider) behaves as the other
 * integration tests rely on - the OAuth 2 code flow with PKCE, refresh with and without
 * rotation, revocation, client credentials, client authentication by Basic or body,
 * injected token failures, the four paginations, injected API failures and rate limits,
 * streamed bodies, the echo endpoints, counters, reset, and a clean exit on SIGTERM.
 *
 * One fake_provider process serves the whole file; each test starts from
 * POST /_admin/reset. Nothing here needs PostgreSQL or Kafka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/crypto.h"
#include "harness.h"
#include "core/json_util.h"

#define ITEMS 250
#define BASIC_DEFAULT                                                                              \
    "Authorization: Basic dGVzdC1jbGllbnQ6dGVzdC1zZWNyZXQ=" /* test-client:test-secret */
#define CLIENT_BODY "client_id=test-client&client_secret=test-secret"
#define REDIRECT_URI "http://127.0.0.1:9/callback?from=test"
#define REDIRECT_URI_ENC "http%3A%2F%2F127.0.0.1%3A9%2Fcallback%3Ffrom%3Dtest"
/* RFC 7636 appendix B. */
#define VERIFIER "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
#define CHALLENGE "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

static jn_test_process_t proc;
static char base[64];

/* ---- HTTP with response headers (the harness's jn_test_http keeps none) ---- */

typedef struct {
    long status;
    char *body;
    size_t len;
    char *head; /* the raw header block */
    size_t head_len;
    json_object *json; /* body parsed, or NULL */
} resp_t;

static size_t append(char **buf, size_t *len, const char *data, size_t n)
{
    char *grown = realloc(*buf, *len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + *len, data, n);
    *len += n;
    grown[*len] = '\0';
    *buf = grown;
    return n;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    resp_t *r = ud;
    return append(&r->body, &r->len, ptr, size * nmemb);
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    resp_t *r = ud;
    return append(&r->head, &r->head_len, ptr, size * nmemb);
}

static void resp_free(resp_t *r)
{
    free(r->body);
    free(r->head);
    json_object_put(r->json);
    memset(r, 0, sizeof *r);
}

/* Sends method url_or_path (a path is relative to the fake provider) with headers
 * (NULL-terminated, may be NULL) and body (may be NULL); fills *r, returns the status. */
static long call(resp_t *r, const char *method, const char *url_or_path, const char *const *headers,
                 const char *body, size_t body_len)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%s", url_or_path[0] == '/' ? base : "", url_or_path);
    memset(r, 0, sizeof *r);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    if (!r->body)
        r->body = calloc(1, 1);
    if (r->len > 0)
        r->json = json_tokener_parse(r->body);
    return r->status;
}

/* The value of response header name (last one wins) into out; false when absent. */
static bool header(const resp_t *r, const char *name, char *out, size_t cap)
{
    bool found = false;
    size_t n = strlen(name);
    for (const char *line = r->head; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        size_t line_len = eol ? (size_t)(eol - line) : strlen(line);
        if (line_len > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(line_len - (size_t)(v - line)), v);
            found = true;
        }
        line = eol ? eol + 2 : line + line_len;
    }
    return found;
}

static const char *str(json_object *o, const char *path)
{
    return jn_test_json_str(o, path);
}

static int64_t num(json_object *o, const char *path)
{
    const char *s = jn_test_json_str(o, path);
    return s ? strtoll(s, NULL, 10) : -1;
}

static bool has(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v);
}

static void post_json(const char *path, const char *body, long want)
{
    const char *h[] = {"Content-Type: application/json", NULL};
    resp_t r;
    long status = call(&r, "POST", path, h, body, strlen(body));
    if (status != want)
        fail_msg("POST %s %s: %ld %s", path, body, status, r.body);
    resp_free(&r);
}

static void configure(const char *knobs)
{
    post_json("/_admin/config", knobs, 200);
}

static long token_request(resp_t *r, const char *form, bool basic)
{
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded",
                       basic ? BASIC_DEFAULT : NULL, NULL};
    return call(r, "POST", "/oauth/token", h, form, strlen(form));
}

static void expect_oauth_error(resp_t *r, long status, const char *error)
{
    if (r->status != status || !r->json || !str(r->json, "error") ||
        strcmp(str(r->json, "error"), error) != 0)
        fail_msg("want %ld %s, got %ld %s", status, error, r->status, r->body);
}

/* A client_credentials access token for the default client. */
static void client_token(char out[128])
{
    resp_t r;
    assert_int_equal(token_request(&r, "grant_type=client_credentials&" CLIENT_BODY, false), 200);
    snprintf(out, 128, "%s", str(r.json, "access_token"));
    resp_free(&r);
}

static long api_get(resp_t *r, const char *path, const char *access_token)
{
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", access_token);
    const char *h[] = {auth, NULL};
    return call(r, "GET", path, h, NULL, 0);
}

/* The query argument name of a URL, percent-decoded, into out. */
static bool url_arg(const char *url, const char *name, char *out, size_t cap)
{
    const char *q = strchr(url, '?');
    size_t n = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, name, n) == 0 && p[1 + n] == '=') {
            const char *v = p + 2 + n;
            size_t len = strcspn(v, "&#");
            int out_len = 0;
            char *decoded = curl_easy_unescape(NULL, v, (int)len, &out_len);
            snprintf(out, cap, "%s", decoded);
            curl_free(decoded);
            return true;
        }
    }
    return false;
}

/* Runs /oauth/authorize with extra query text; returns the Location header. */
static void authorize(const char *extra, char *location, size_t cap)
{
    char path[1024];
    snprintf(path, sizeof path,
             "/oauth/authorize?response_type=code&client_id=test-client&redirect_uri=%s"
             "&state=st%%2Fa%%20b&scope=read%%20write%s",
             REDIRECT_URI_ENC, extra);
    resp_t r;
    long status = call(&r, "GET", path, NULL, NULL, 0);
    if (status != 302 || !header(&r, "Location", location, cap))
        fail_msg("authorize: %ld %s", status, r.body);
    resp_free(&r);
}

static void authorize_code(const char *extra, char *code, size_t cap)
{
    char location[1024];
    authorize(extra, location, sizeof location);
    if (!url_arg(location, "code", code, cap))
        fail_msg("no code in %s", location);
}

static long exchange(resp_t *r, const char *code, const char *verifier)
{
    char form[512];
    snprintf(form, sizeof form, "grant_type=authorization_code&code=%s&redirect_uri=%s%s%s&%s",
             code, REDIRECT_URI_ENC, verifier ? "&code_verifier=" : "", verifier ? verifier : "",
             CLIENT_BODY);
    return token_request(r, form, false);
}

static long refresh(resp_t *r, const char *refresh_token)
{
    char form[256];
    snprintf(form, sizeof form, "grant_type=refresh_token&refresh_token=%s", refresh_token);
    return token_request(r, form, true);
}

/* ---- lifecycle ---- */

static bool listening(void *ud)
{
    (void)ud;
    char *log = jn_test_read_log(&proc);
    const char *line = strstr(log, "listening on ");
    long port = 0;
    if (line) {
        char *end = NULL;
        port = strtol(line + 13, &end, 10);
        if (*end != '\n')
            port = 0;
    }
    if (port > 0)
        snprintf(base, sizeof base, "http://127.0.0.1:%ld", port);
    free(log);
    return port > 0;
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char name[96];
    jn_test_unique("fake_provider", name, sizeof name);
    const char *argv[] = {FAKE_PROVIDER_BIN, NULL};
    jn_test_spawn(&proc, argv, NULL, name);
    if (!jn_test_wait_until(listening, NULL, 20000)) {
        char *log = jn_test_read_log(&proc);
        jn_test_process_kill(&proc);
        fail_msg("fake_provider did not print its port:\n%s", log);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    jn_test_process_kill(&proc);
    curl_global_cleanup();
    return 0;
}

static int reset(void **state)
{
    (void)state;
    post_json("/_admin/reset", "{}", 200);
    return 0;
}

/* ---- OAuth ---- */

static void test_code_flow_with_pkce(void **state)
{
    (void)state;
    char location[1024], code[128], got_state[64];
    authorize("&code_challenge=" CHALLENGE "&code_challenge_method=S256", location,
              sizeof location);
    assert_memory_equal(location, REDIRECT_URI "&code=", strlen(REDIRECT_URI "&code="));
    assert_true(url_arg(location, "code", code, sizeof code));
    assert_true(url_arg(location, "state", got_state, sizeof got_state));
    assert_string_equal(got_state, "st/a b");

    resp_t r;
    assert_int_equal(exchange(&r, code, VERIFIER), 200);
    assert_memory_equal(str(r.json, "access_token"), "at_", 3);
    assert_memory_equal(str(r.json, "refresh_token"), "rt_", 3);
    assert_string_equal(str(r.json, "token_type"), "Bearer");
    assert_int_equal(num(r.json, "expires_in"), 3600);
    assert_string_equal(str(r.json, "scope"), "read write");
    char access[128], auth[200];
    snprintf(access, sizeof access, "%s", str(r.json, "access_token"));
    resp_free(&r);

    assert_int_equal(api_get(&r, "/api/me?probe=1", access), 200);
    assert_string_equal(str(r.json, "id"), "user-1");
    assert_string_equal(str(r.json, "token_kind"), "bearer");
    snprintf(auth, sizeof auth, "Bearer %s", access);
    assert_string_equal(str(r.json, "headers.authorization"), auth);
    assert_string_equal(str(r.json, "query.probe"), "1");
    resp_free(&r);

    /* The code is single use. */
    assert_int_equal(exchange(&r, code, VERIFIER), 400);
    expect_oauth_error(&r, 400, "invalid_grant");
    resp_free(&r);
}

static void test_code_checks(void **state)
{
    (void)state;
    char code[128];
    authorize_code("&code_challenge=" CHALLENGE "&code_challenge_method=S256", code, sizeof code);
    resp_t r;
    exchange(&r, code, "wrong-verifier-wrong-verifier-wrong-verifier");
    expect_oauth_error(&r, 400, "invalid_grant");
    resp_free(&r);
    exchange(&r, code, NULL);
    expect_oauth_error(&r, 400, "invalid_grant");
    resp_free(&r);
    /* Another redirect_uri than at authorize. */
    char form[512];
    snprintf(form, sizeof form,
             "grant_type=authorization_code&code=%s&redirect_uri=http%%3A%%2F%%2Fevil&code_"
             "verifier=" VERIFIER "&" CLIENT_BODY,
             code);
    token_request(&r, form, false);
    expect_oauth_error(&r, 400, "invalid_grant");
    resp_free(&r);
    /* Failed attempts do not consume the code; the first success does. */
    assert_int_equal(exchange(&r, code, VERIFIER), 200);
    resp_free(&r);
    exchange(&r, code, VERIFIER);
    expect_oauth_error(&r, 400, "invalid_grant");
    resp_free(&r);
    exchange(&r, "no-such-code", NULL);
    expect_oauth_error(&r, 400, "invalid_grant");
    resp_free(&r);
}

static void test_authorize_errors(void **state)
{
    (void)state;
    resp_t r;
    call(&r, "GET",
         "/oauth/authorize?response_type=code&client_id=nobody&redirect_uri=http%3A%2F%2Fx", NULL,
         NULL, 0);
    expect_oauth_error(&r, 400, "invalid_request");
    resp_free(&r);
    call(&r, "GET", "/oauth/authorize?response_type=code&client_id=test-client", NULL, NULL, 0);
    expect_oauth_error(&r, 400, "invalid_request");
    resp_free(&r);

    char location[1024], value[128];
    configure("{\"require_pkce\":true}");
    authorize("", location, sizeof location);
    assert_true(url_arg(location, "error", value, sizeof value));
    assert_string_equal(value, "invalid_request");
    assert_true(url_arg(location, "state", value, sizeof value));
    assert_string_equal(value, "st/a b");
    assert_false(url_arg(location, "code", value, sizeof value));

    configure("{\"require_pkce\":false,\"deny\":true}");
    authorize("", location, sizeof location);
    assert_true(url_arg(location, "error", value, sizeof value));
    assert_string_equal(value, "access_denied");
    assert_true(url_arg(location, "state", value, sizeof value));
}

static void test_refresh_without_rotation(void **state)
{
    (void)state;
    char code[128], rt[128];
    authorize_code("", code, sizeof code);
    resp_t r;
    assert_int_equal(exchange(&r, code, NULL), 200);
    snprintf(rt, sizeof rt, "%s", str(r.json, "refresh_token"));
    resp_free(&r);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(refresh(&r, rt), 200);
        assert_memory_equal(str(r.json, "access_token"), "at_", 3);
        assert_false(has(r.json, "refresh_token"));
        assert_string_equal(str(r.json, "scope"), "read write");
        resp_free(&r);
    }
}

static void test_refresh_with_rotation(void **state)
{
    (void)state;
    configure("{\"rotate_refresh_tokens\":true}");
    char code[128], rt1[128], rt2[128];
    authorize_code("", code, sizeof code);
    resp_t r;
    assert_int_equal(exchange(&r, code, NULL), 200);
    snprintf(rt1, sizeof rt1, "%s", str(r.json, "refresh_token"));
    resp_free(&r);
    assert_int_equal(refresh(&r, rt1), 200);
    assert_non_null(str(r.json, "refresh_token"));
    snprintf(rt2, sizeof rt2, "%s", str(r.json, "refresh_token"));
    assert_string_not_equal(rt1, rt2);
    resp_free(&r);
    refresh(&r, rt1);
    expect_oauth_error(&r, 400, "invalid_grant");
    resp_free(&r);
    assert_int_equal(refresh(&r, rt2), 200);
    resp_free(&r);
}

static void test_revoke(void **state)
{
    (void)state;
    char code[128], rt1[128], rt2[128], access[128], body[256];
    resp_t r;
    for (int i = 0; i < 2; i++) {
        authorize_code("", code, sizeof code);
        assert_int_equal(exchange(&r, code, NULL), 200);
        snprintf(i == 0 ? rt1 : rt2, 128, "%s", str(r.json, "refresh_token"));
        snprintf(access, sizeof access, "%s", str(r.json, "access_token"));
        resp_free(&r);
    }
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", rt1);
    post_json("/_admin/revoke", body, 200);
    refresh(&r, rt1);
    expect_oauth_error(&r, 400, "invalid_grant");
    assert_string_equal(str(r.json, "error_description"), "refresh token revoked");
    resp_free(&r);
    assert_int_equal(refresh(&r, rt2), 200);
    resp_free(&r);

    post_json("/_admin/revoke", "{\"all\":true}", 200);
    refresh(&r, rt2);
    expect_oauth_error(&r, 400, "invalid_grant");
    resp_free(&r);

    assert_int_equal(api_get(&r, "/api/me", access), 200);
    resp_free(&r);
    post_json("/_admin/revoke", "{\"access_tokens\":true}", 200);
    assert_int_equal(api_get(&r, "/api/me", access), 401);
    assert_string_equal(str(r.json, "message"), "bad token");
    resp_free(&r);
}

static void test_client_credentials_and_client_auth(void **state)
{
    (void)state;
    resp_t r, s;
    assert_int_equal(token_request(&r, "grant_type=client_credentials&scope=a+b", true), 200);
    assert_memory_equal(str(r.json, "access_token"), "at_", 3);
    assert_false(has(r.json, "refresh_token"));
    assert_string_equal(str(r.json, "scope"), "a b");
    resp_free(&r);
    assert_int_equal(call(&s, "GET", "/_admin/stats", NULL, NULL, 0), 200);
    assert_string_equal(str(s.json, "last_token_request.auth_method"), "basic");
    assert_string_equal(str(s.json, "last_token_request.client_id"), "test-client");
    resp_free(&s);

    assert_int_equal(token_request(&r, "grant_type=client_credentials&" CLIENT_BODY, false), 200);
    resp_free(&r);
    assert_int_equal(call(&s, "GET", "/_admin/stats", NULL, NULL, 0), 200);
    assert_string_equal(str(s.json, "last_token_request.auth_method"), "body");
    assert_string_equal(str(s.json, "last_token_request.params.client_secret"), "<redacted>");
    assert_string_equal(str(s.json, "last_token_request.params.client_id"), "test-client");
    assert_string_equal(str(s.json, "last_token_request.content_type"),
                        "application/x-www-form-urlencoded");
    resp_free(&s);

    /* JSON bodies are accepted too. */
    const char *json_h[] = {"Content-Type: application/json", NULL};
    const char *json_body = "{\"grant_type\":\"client_credentials\",\"client_id\":\"test-client\","
                            "\"client_secret\":\"test-secret\"}";
    assert_int_equal(call(&r, "POST", "/oauth/token", json_h, json_body, strlen(json_body)), 200);
    resp_free(&r);

    token_request(&r, "grant_type=client_credentials&client_id=test-client&client_secret=nope",
                  false);
    expect_oauth_error(&r, 401, "invalid_client");
    resp_free(&r);
    const char *bad_basic[] = {"Authorization: Basic dGVzdC1jbGllbnQ6bm9wZQ==", NULL}; /* :nope */
    const char *form = "grant_type=client_credentials";
    call(&r, "POST", "/oauth/token", bad_basic, form, strlen(form));
    expect_oauth_error(&r, 401, "invalid_client");
    resp_free(&r);
    token_request(&r, "grant_type=client_credentials", false);
    expect_oauth_error(&r, 401, "invalid_client");
    resp_free(&r);

    /* A registered client, its secret form-encoded inside Basic (RFC 6749 2.3.1). */
    post_json("/_admin/clients", "{\"client_id\":\"other\",\"client_secret\":\"p@ss:w+rd\"}", 201);
    char raw[64] = "other:p%40ss%3Aw%2Brd", b64[128], auth[160];
    jn_base64_encode((const unsigned char *)raw, strlen(raw), b64);
    snprintf(auth, sizeof auth, "Authorization: Basic %s", b64);
    const char *other[] = {auth, NULL};
    assert_int_equal(call(&r, "POST", "/oauth/token", other, form, strlen(form)), 200);
    resp_free(&r);
}

static void test_fail_token_requests_and_expiry(void **state)
{
    (void)state;
    configure("{\"fail_token_requests\":2}");
    resp_t r;
    for (int i = 0; i < 2; i++) {
        token_request(&r, "grant_type=client_credentials", true);
        expect_oauth_error(&r, 500, "server_error");
        resp_free(&r);
    }
    assert_int_equal(token_request(&r, "grant_type=client_credentials", true), 200);
    resp_free(&r);

    configure(
        "{\"expires_in\":0,\"extra_token_fields\":{\"instance_url\":\"https://eu.example\"}}");
    assert_int_equal(token_request(&r, "grant_type=client_credentials", true), 200);
    assert_false(has(r.json, "expires_in"));
    assert_string_equal(str(r.json, "instance_url"), "https://eu.example");
    resp_free(&r);

    configure("{\"issue_refresh_token\":false}");
    char code[128];
    authorize_code("", code, sizeof code);
    assert_int_equal(exchange(&r, code, NULL), 200);
    assert_false(has(r.json, "refresh_token"));
    resp_free(&r);
}

static long elapsed_ms_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000L + (now.tv_nsec - start->tv_nsec) / 1000000L;
}

static void test_latency(void **state)
{
    (void)state;
    char access[128];
    client_token(access);
    configure("{\"token_latency_ms\":200,\"latency_ms\":150}");
    struct timespec start;
    resp_t r;
    clock_gettime(CLOCK_MONOTONIC, &start);
    assert_int_equal(token_request(&r, "grant_type=client_credentials", true), 200);
    assert_true(elapsed_ms_since(&start) >= 200);
    resp_free(&r);
    clock_gettime(CLOCK_MONOTONIC, &start);
    assert_int_equal(api_get(&r, "/api/me", access), 200);
    assert_true(elapsed_ms_since(&start) >= 150);
    resp_free(&r);
}

static bool token_rejected(void *ud)
{
    resp_t r;
    long status = api_get(&r, "/api/me", ud);
    resp_free(&r);
    return status == 401;
}

static void test_access_token_expires(void **state)
{
    (void)state;
    configure("{\"expires_in\":1}");
    char access[128];
    client_token(access);
    resp_t r;
    assert_int_equal(api_get(&r, "/api/me", access), 200);
    resp_free(&r);
    assert_true(jn_test_wait_until(token_rejected, access, 5000));
}

/* ---- REST API ---- */

typedef struct {
    int seen[ITEMS + 2];
    int pages;
} walk_t;

/* Records the ids of a page's items; returns how many there were. */
static size_t collect(walk_t *w, json_object *page)
{
    json_object *items = NULL;
    assert_true(json_object_object_get_ex(page, "items", &items));
    size_t n = json_object_array_length(items);
    for (size_t i = 0; i < n; i++) {
        const char *id = str(json_object_array_get_idx(items, i), "id");
        assert_non_null(id);
        long seq = strtol(id + 5, NULL, 10);
        assert_memory_equal(id, "item-", 5);
        assert_in_range(seq, 1, ITEMS);
        assert_int_equal(num(json_object_array_get_idx(items, i), "seq"), seq);
        w->seen[seq]++;
    }
    w->pages++;
    assert_in_range(w->pages, 1, 100);
    return n;
}

static void assert_all_once(const walk_t *w)
{
    for (int i = 1; i <= ITEMS; i++)
        if (w->seen[i] != 1)
            fail_msg("item-%d seen %d times", i, w->seen[i]);
}

static void test_pagination_cursor(void **state)
{
    (void)state;
    char access[128], path[256];
    client_token(access);
    walk_t w = {0};
    snprintf(path, sizeof path, "/api/items?limit=37");
    for (;;) {
        resp_t r;
        assert_int_equal(api_get(&r, path, access), 200);
        collect(&w, r.json);
        const char *next = str(r.json, "next_cursor");
        assert_true(has(r.json, "next_cursor"));
        if (!next) {
            resp_free(&r);
            break;
        }
        snprintf(path, sizeof path, "/api/items?limit=37&cursor=%s", next);
        resp_free(&r);
    }
    assert_int_equal(w.pages, 7);
    assert_all_once(&w);
}

static void test_pagination_link(void **state)
{
    (void)state;
    char access[128], url[512], link[600];
    client_token(access);
    walk_t w = {0};
    snprintf(url, sizeof url, "/api/items/link");
    for (;;) {
        resp_t r;
        assert_int_equal(api_get(&r, url, access), 200);
        collect(&w, r.json);
        const char *next_url = str(r.json, "next_url");
        if (!header(&r, "Link", link, sizeof link)) {
            assert_null(next_url);
            resp_free(&r);
            break;
        }
        char *lt = strchr(link, '<'), *gt = strchr(link, '>');
        assert_non_null(lt);
        assert_non_null(gt);
        assert_non_null(strstr(gt, "; rel=\"next\""));
        snprintf(url, sizeof url, "%.*s", (int)(gt - lt - 1), lt + 1);
        assert_non_null(next_url);
        assert_string_equal(next_url, url);
        assert_memory_equal(url, base, strlen(base));
        resp_free(&r);
    }
    assert_int_equal(w.pages, 5);
    assert_all_once(&w);
}

static void test_pagination_offset_and_page(void **state)
{
    (void)state;
    char access[128], path[256];
    client_token(access);
    walk_t w = {0};
    for (int offset = 0;; offset += 100) {
        resp_t r;
        snprintf(path, sizeof path, "/api/items/offset?offset=%d&limit=100", offset);
        assert_int_equal(api_get(&r, path, access), 200);
        size_t n = collect(&w, r.json);
        resp_free(&r);
        if (n < 100)
            break;
    }
    assert_int_equal(w.pages, 3);
    assert_all_once(&w);

    walk_t p = {0};
    for (int page = 1;; page++) {
        resp_t r;
        snprintf(path, sizeof path, "/api/items/page?page=%d&per_page=60", page);
        assert_int_equal(api_get(&r, path, access), 200);
        size_t n = collect(&p, r.json);
        resp_free(&r);
        if (n == 0)
            break;
    }
    assert_int_equal(p.pages, 6); /* 60, 60, 60, 60, 10, then an empty page */
    assert_all_once(&p);

    resp_t r;
    assert_int_equal(api_get(&r, "/api/items/page?page=0", access), 400);
    resp_free(&r);
    /* Page size is capped at 100. */
    assert_int_equal(api_get(&r, "/api/items/offset?limit=1000", access), 200);
    assert_int_equal(json_object_array_length(json_object_object_get(r.json, "items")), 100);
    resp_free(&r);
}

static void test_fail_next(void **state)
{
    (void)state;
    char access[128], value[64];
    client_token(access);
    configure("{\"fail_next\":{\"count\":2,\"status\":429,\"headers\":{\"retry-after\":\"1\"},"
              "\"body\":\"{\\\"message\\\":\\\"slow down\\\"}\"}}");
    resp_t r;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(api_get(&r, "/api/me", access), 429);
        assert_true(header(&r, "Retry-After", value, sizeof value));
        assert_string_equal(value, "1");
        assert_string_equal(str(r.json, "message"), "slow down");
        resp_free(&r);
    }
    assert_int_equal(api_get(&r, "/api/me", access), 200);
    resp_free(&r);

    configure("{\"fail_next\":{\"count\":1,\"status\":503}}");
    assert_int_equal(api_get(&r, "/api/items", access), 503);
    resp_free(&r);
    assert_int_equal(api_get(&r, "/api/items", access), 200);
    resp_free(&r);
}

static bool window_reopened(void *ud)
{
    resp_t r;
    long status = api_get(&r, "/api/me", ud);
    resp_free(&r);
    return status == 200;
}

static void test_rate_limit(void **state)
{
    (void)state;
    char access[128], value[64];
    client_token(access);
    configure("{\"rate_limit\":{\"limit\":3,\"window_ms\":60000}}");
    long now = (long)time(NULL);
    resp_t r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(api_get(&r, "/api/me", access), 200);
        assert_true(header(&r, "x-ratelimit-remaining", value, sizeof value));
        assert_int_equal(strtol(value, NULL, 10), 2 - i);
        assert_true(header(&r, "x-ratelimit-reset", value, sizeof value));
        assert_in_range(strtol(value, NULL, 10), now + 59, now + 62);
        assert_false(header(&r, "Retry-After", value, sizeof value));
        resp_free(&r);
    }
    assert_int_equal(api_get(&r, "/api/me", access), 429);
    assert_true(header(&r, "Retry-After", value, sizeof value));
    assert_in_range(strtol(value, NULL, 10), 1, 60);
    assert_true(header(&r, "x-ratelimit-remaining", value, sizeof value));
    assert_string_equal(value, "0");
    resp_free(&r);

    /* Custom header names, no Retry-After, and a window that ends. */
    configure("{\"rate_limit\":{\"limit\":1,\"window_ms\":300,\"reset_header\":\"x-rl-reset\","
              "\"remaining_header\":\"x-rl-left\",\"retry_after\":false}}");
    assert_int_equal(api_get(&r, "/api/me", access), 200);
    assert_true(header(&r, "x-rl-left", value, sizeof value));
    assert_string_equal(value, "0");
    assert_true(header(&r, "x-rl-reset", value, sizeof value));
    resp_free(&r);
    assert_int_equal(api_get(&r, "/api/me", access), 429);
    assert_false(header(&r, "Retry-After", value, sizeof value));
    resp_free(&r);
    assert_true(jn_test_wait_until(window_reopened, access, 5000));
}

typedef struct {
    uint64_t count;
    uint64_t mismatches;
    uint64_t stop_after; /* 0 = read everything */
} pattern_sink_t;

static size_t check_pattern(char *ptr, size_t size, size_t nmemb, void *ud)
{
    pattern_sink_t *s = ud;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ptr[i] != (unsigned char)((s->count + i) % 251))
            s->mismatches++;
    s->count += n;
    if (s->stop_after && s->count >= s->stop_after)
        return 0; /* abort the transfer */
    return n;
}

/* Downloads path checking byte(i) = i % 251; returns the Content-Length announced. */
static curl_off_t download_pattern(const char *path, const char *access, pattern_sink_t *sink,
                                   long *status)
{
    char url[512], auth[200];
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", access);
    struct curl_slist *list = curl_slist_append(NULL, auth);
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, check_pattern);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
    curl_easy_perform(curl);
    curl_off_t length = -1;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    curl_easy_cleanup(curl);
    curl_slist_free_all(list);
    return length;
}

static void test_streamed_bodies(void **state)
{
    (void)state;
    char access[128];
    client_token(access);
    long status = 0;
    pattern_sink_t sink = {0};
    curl_off_t length = download_pattern("/api/large?bytes=10485760", access, &sink, &status);
    assert_int_equal(status, 200);
    assert_int_equal(length, 10485760);
    assert_int_equal(sink.count, 10485760);
    assert_int_equal(sink.mismatches, 0);

    /* 2 GiB is announced whole and produced on demand; read the first MiB only. */
    pattern_sink_t part = {.stop_after = 1 << 20};
    length = download_pattern("/api/large?bytes=2147483648", access, &part, &status);
    assert_int_equal(status, 200);
    assert_int_equal(length, INT64_C(2147483648));
    assert_true(part.count >= (1u << 20));
    assert_int_equal(part.mismatches, 0);

    pattern_sink_t drip = {0};
    length = download_pattern("/api/drip?bytes=100&interval_ms=5", access, &drip, &status);
    assert_int_equal(status, 200);
    assert_int_equal(length, 100);
    assert_int_equal(drip.count, 100);
    assert_int_equal(drip.mismatches, 0);

    resp_t r;
    assert_int_equal(api_get(&r, "/api/large", access), 400);
    resp_free(&r);
    assert_int_equal(api_get(&r, "/api/large?bytes=2147483649", access), 400);
    resp_free(&r);
}

static void test_garbage(void **state)
{
    (void)state;
    char access[128], value[128];
    client_token(access);
    resp_t r;
    assert_int_equal(api_get(&r, "/api/garbage", access), 200);
    assert_true(header(&r, "Content-Type", value, sizeof value));
    assert_string_equal(value, "application/json");
    assert_true(r.len > 0);
    json_object *parsed = NULL;
    jn_field_error_t e;
    assert_int_not_equal(jn_json_parse(r.body, r.len, false, &parsed, &e), JN_OK);
    resp_free(&r);
}

static void test_echo_and_api_keys(void **state)
{
    (void)state;
    char access[128], auth[200], expected[65];
    client_token(access);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", access);
    char body[1000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)(i * 7);
    unsigned char digest[32];
    jn_crypto_sha256(body, sizeof body, digest);
    jn_hex_encode(digest, sizeof digest, expected);
    const char *h[] = {auth, "Content-Type: application/octet-stream", "X-Trace: abc-123", NULL};
    resp_t r;
    assert_int_equal(call(&r, "POST", "/api/echo?a=1&b=two%20words", h, body, sizeof body), 200);
    assert_string_equal(str(r.json, "method"), "POST");
    assert_string_equal(str(r.json, "content_type"), "application/octet-stream");
    assert_int_equal(num(r.json, "body_length"), 1000);
    assert_string_equal(str(r.json, "body_sha256"), expected);
    assert_string_equal(str(r.json, "headers.x-trace"), "abc-123");
    assert_string_equal(str(r.json, "query.a"), "1");
    assert_string_equal(str(r.json, "query.b"), "two words");
    resp_free(&r);
    const char *methods[] = {"PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(call(&r, methods[i], "/api/echo", h, "x", 1), 200);
        assert_string_equal(str(r.json, "method"), methods[i]);
        resp_free(&r);
    }
    const char *none[] = {"Content-Type: text/plain", NULL};
    assert_int_equal(call(&r, "POST", "/api/echo", none, "x", 1), 401);
    resp_free(&r);

    const char *key[] = {"x-api-key: k-123", NULL};
    assert_int_equal(call(&r, "GET", "/api/me", key, NULL, 0), 401);
    resp_free(&r);
    post_json("/_admin/api_keys", "{\"key\":\"k-123\"}", 201);
    assert_int_equal(call(&r, "GET", "/api/me", key, NULL, 0), 200);
    assert_string_equal(str(r.json, "token_kind"), "api_key");
    assert_string_equal(str(r.json, "headers.x-api-key"), "k-123");
    resp_free(&r);

    configure("{\"require_auth\":false}");
    assert_int_equal(call(&r, "GET", "/api/me", NULL, NULL, 0), 200);
    resp_free(&r);
}

/* ---- admin ---- */

static void test_stats(void **state)
{
    (void)state;
    char access[128];
    client_token(access);
    resp_t r;
    refresh(&r, "rt_unknown");
    expect_oauth_error(&r, 400, "invalid_grant");
    resp_free(&r);
    exchange(&r, "bogus", "secret-verifier");
    resp_free(&r);
    api_get(&r, "/api/me", access);
    resp_free(&r);
    api_get(&r, "/api/me", access);
    resp_free(&r);
    api_get(&r, "/api/items", access);
    resp_free(&r);
    api_get(&r, "/api/items", "not-a-token");
    resp_free(&r);

    assert_int_equal(call(&r, "GET", "/_admin/stats", NULL, NULL, 0), 200);
    assert_int_equal(num(r.json, "token_requests"), 3);
    assert_int_equal(num(r.json, "token_requests_by_grant.client_credentials"), 1);
    assert_int_equal(num(r.json, "token_requests_by_grant.refresh_token"), 1);
    assert_int_equal(num(r.json, "token_requests_by_grant.authorization_code"), 1);
    assert_int_equal(num(r.json, "api_requests"), 4);
    assert_int_equal(num(r.json, "api_requests_by_path./api/me"), 2);
    assert_int_equal(num(r.json, "api_requests_by_path./api/items"), 2);
    assert_string_equal(str(r.json, "last_token_request.grant_type"), "authorization_code");
    assert_string_equal(str(r.json, "last_token_request.params.code_verifier"), "<redacted>");
    assert_string_equal(str(r.json, "last_token_request.params.client_secret"), "<redacted>");
    assert_string_equal(str(r.json, "last_token_request.params.code"), "bogus");
    resp_free(&r);
}

static void test_config_and_reset(void **state)
{
    (void)state;
    const char *h[] = {"Content-Type: application/json", NULL};
    resp_t r;
    const char *bad = "{\"items_count\":10,\"no_such_knob\":1}";
    call(&r, "POST", "/_admin/config", h, bad, strlen(bad));
    expect_oauth_error(&r, 400, "invalid_request");
    assert_non_null(strstr(str(r.json, "error_description"), "no_such_knob"));
    resp_free(&r);
    /* A rejected request changes nothing. */
    assert_int_equal(call(&r, "GET", "/_admin/config", NULL, NULL, 0), 200);
    assert_int_equal(num(r.json, "items_count"), 250);
    resp_free(&r);

    char access[128];
    client_token(access);
    post_json("/_admin/clients", "{\"client_id\":\"extra\",\"client_secret\":\"s\"}", 201);
    post_json("/_admin/api_keys", "{\"key\":\"k-reset\"}", 201);
    configure("{\"items_count\":10,\"deny\":true,\"latency_ms\":1}");
    assert_int_equal(api_get(&r, "/api/items/offset?limit=100", access), 200);
    assert_int_equal(json_object_array_length(json_object_object_get(r.json, "items")), 10);
    resp_free(&r);

    post_json("/_admin/reset", "{}", 200);
    assert_int_equal(call(&r, "GET", "/_admin/config", NULL, NULL, 0), 200);
    assert_int_equal(num(r.json, "items_count"), 250);
    assert_string_equal(str(r.json, "deny"), "false");
    assert_int_equal(num(r.json, "latency_ms"), 0);
    assert_int_equal(num(r.json, "expires_in"), 3600);
    resp_free(&r);
    assert_int_equal(call(&r, "GET", "/_admin/stats", NULL, NULL, 0), 200);
    assert_int_equal(num(r.json, "token_requests"), 0);
    assert_int_equal(num(r.json, "api_requests"), 0);
    resp_free(&r);
    assert_int_equal(api_get(&r, "/api/me", access), 401); /* tokens are gone */
    resp_free(&r);
    const char *key[] = {"x-api-key: k-reset", NULL};
    assert_int_equal(call(&r, "GET", "/api/me", key, NULL, 0), 401);
    resp_free(&r);
    token_request(&r, "grant_type=client_credentials&client_id=extra&client_secret=s", false);
    expect_oauth_error(&r, 401, "invalid_client");
    resp_free(&r);
    assert_int_equal(token_request(&r, "grant_type=client_credentials", true), 200);
    resp_free(&r);
}

/* Runs last: the process must exit 0 on SIGTERM. */
static void test_sigterm_exits_cleanly(void **state)
{
    (void)state;
    jn_test_signal(&proc, SIGTERM);
    assert_true(jn_test_process_wait(&proc, 15000));
    assert_int_equal(proc.exit_status, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_code_flow_with_pkce, reset),
        cmocka_unit_test_setup(test_code_checks, reset),
        cmocka_unit_test_setup(test_authorize_errors, reset),
        cmocka_unit_test_setup(test_refresh_without_rotation, reset),
        cmocka_unit_test_setup(test_refresh_with_rotation, reset),
        cmocka_unit_test_setup(test_revoke, reset),
        cmocka_unit_test_setup(test_client_credentials_and_client_auth, reset),
        cmocka_unit_test_setup(test_fail_token_requests_and_expiry, reset),
        cmocka_unit_test_setup(test_access_token_expires, reset),
        cmocka_unit_test_setup(test_latency, reset),
        cmocka_unit_test_setup(test_pagination_cursor, reset),
        cmocka_unit_test_setup(test_pagination_link, reset),
        cmocka_unit_test_setup(test_pagination_offset_and_page, reset),
        cmocka_unit_test_setup(test_fail_next, reset),
        cmocka_unit_test_setup(test_rate_limit, reset),
        cmocka_unit_test_setup(test_streamed_bodies, reset),
        cmocka_unit_test_setup(test_garbage, reset),
        cmocka_unit_test_setup(test_echo_and_api_keys, reset),
        cmocka_unit_test_setup(test_stats, reset),
        cmocka_unit_test_setup(test_config_and_reset, reset),
        cmocka_unit_test(test_sigterm_exits_cleanly),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
