/* Unit tests for common/providers/provider_request.c: URLs, credential injection per auth mode,
 * which caller headers may override which provider headers, and refused headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "providers/provider_request.h"

/* connection_config.sub, allowed in hosts under example.com. */
#define SUB_SPEC                                                                                   \
    "\"connection_config\":{\"sub\":{\"type\":\"string\",\"pattern\":\"^[a-z0-9-]+$\","            \
    "\"host_suffixes\":[\".example.com\"]}}"

static const char *header(const jn_built_request_t *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->header_count; i++) {
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return r->headers[i] + n + 2;
    }
    return NULL;
}

static char last_why[256];

static void build(const char *provider, const char *creds, const char *config, const char *override,
                  const char *endpoint, const char *query, const char *const *headers,
                  jn_built_request_t *out, jn_err_t want)
{
    json_object *p = json_tokener_parse(provider), *c = creds ? json_tokener_parse(creds) : NULL;
    json_object *cc = config ? json_tokener_parse(config) : NULL;
    jn_provider_target_t t = {"test", p, c, cc};
    char why[256] = "";
    jn_err_t err = jn_provider_build(&t, override, endpoint, query, headers, out, why, sizeof why);
    if (err != want)
        fail_msg("build returned %d (%s), wanted %d", err, why, want);
    snprintf(last_why, sizeof last_why, "%s", why);
    if (err) {
        assert_null(out->url);
        assert_int_equal(out->header_count, 0);
    }
    json_object_put(p);
    json_object_put(c);
    json_object_put(cc);
}

static void test_oauth_bearer_and_url(void **state)
{
    (void)state;
    jn_built_request_t r;
    build("{\"auth_mode\":\"OAUTH2\",\"proxy\":{\"base_url\":\"https://"
          "${connectionConfig.sub}.example.com/api/\","
          "\"headers\":{\"accept\":\"application/json\"}}," SUB_SPEC "}",
          "{\"type\":\"OAUTH2\",\"access_token\":\"tok\"}", "{\"sub\":\"acme\"}", NULL,
          "v1/items?x=1", "y=2", NULL, &r, JN_OK);
    assert_string_equal(r.url, "https://acme.example.com/api/v1/items?x=1&y=2");
    assert_string_equal(header(&r, "Authorization"), "Bearer tok");
    assert_string_equal(header(&r, "accept"), "application/json");
    jn_built_request_cleanup(&r);
}

static void test_api_key_templates_and_overrides(void **state)
{
    (void)state;
    jn_built_request_t r;
    const char *caller[] = {"x-api-key: attacker", "accept: text/csv", "X-Extra: 1", NULL};
    build("{\"auth_mode\":\"API_KEY\",\"proxy\":{\"base_url\":\"https://api.example.com\","
          "\"headers\":{\"x-api-key\":\"${apiKey}\",\"accept\":\"application/json\","
          "\"x-optional\":\"${connectionConfig.missing}\"},\"query\":{\"key\":\"${apiKey}\"}}}",
          "{\"type\":\"API_KEY\",\"apiKey\":\"s3cret\"}", NULL, NULL, "/x", NULL, caller, &r,
          JN_OK);
    assert_string_equal(r.url, "https://api.example.com/x?key=s3cret");
    assert_string_equal(header(&r, "x-api-key"), "s3cret"); /* credentials cannot be overridden */
    assert_string_equal(header(&r, "accept"), "text/csv");  /* defaults can */
    assert_string_equal(header(&r, "X-Extra"), "1");
    assert_null(header(&r, "x-optional")); /* unresolved: left out */
    assert_null(header(&r, "Authorization"));
    jn_built_request_cleanup(&r);
}

static void test_basic_and_base64_template(void **state)
{
    (void)state;
    jn_built_request_t r;
    build("{\"auth_mode\":\"BASIC\",\"proxy\":{\"base_url\":\"https://api.example.com\"}}",
          "{\"type\":\"BASIC\",\"username\":\"user\",\"password\":\"pw\"}", NULL, NULL, "/", NULL,
          NULL, &r, JN_OK);
    assert_string_equal(header(&r, "Authorization"), "Basic dXNlcjpwdw==");
    jn_built_request_cleanup(&r);
    build("{\"auth_mode\":\"API_KEY\",\"proxy\":{\"base_url\":\"https://api.example.com\","
          "\"headers\":{\"authorization\":\"Basic ${base64(${apiKey}:)}\"}}}",
          "{\"apiKey\":\"key\"}", NULL, NULL, "/", NULL, NULL, &r, JN_OK);
    assert_string_equal(header(&r, "authorization"), "Basic a2V5Og==");
    jn_built_request_cleanup(&r);
}

static void test_refusals(void **state)
{
    (void)state;
    jn_built_request_t r;
    const char *crlf[] = {"X-A: ok\r\nX-Injected: 1", NULL};
    build("{\"auth_mode\":\"NONE\",\"proxy\":{\"base_url\":\"https://a.example.com\"}}", NULL, NULL,
          NULL, "/", NULL, crlf, &r, JN_ERR_INVALID);
    const char *no_colon[] = {"garbage", NULL};
    build("{\"auth_mode\":\"NONE\",\"proxy\":{\"base_url\":\"https://a.example.com\"}}", NULL, NULL,
          NULL, "/", NULL, no_colon, &r, JN_ERR_INVALID);
    /* A base URL whose connection value is missing cannot be sent anywhere. */
    build("{\"auth_mode\":\"NONE\",\"proxy\":{\"base_url\":\"https://"
          "${connectionConfig.sub}.example.com\"}," SUB_SPEC "}",
          NULL, "{}", NULL, "/", NULL, NULL, &r, JN_ERR_INVALID);
    build("{\"auth_mode\":\"NONE\",\"proxy\":{\"base_url\":\"https://a.example.com\"}}", NULL, NULL,
          "ftp://internal/", "/", NULL, NULL, &r, JN_ERR_INVALID);
    /* The fallback picks the second alternative. */
    build("{\"auth_mode\":\"NONE\",\"proxy\":{\"base_url\":\"https://${connectionConfig.host} || "
          "https://b.example.com\"},\"connection_config\":{\"host\":{\"type\":\"string\","
          "\"host_suffixes\":[\".example.com\"]}}}",
          NULL, "{}", NULL, "/z", NULL, NULL, &r, JN_OK);
    assert_string_equal(r.url, "https://b.example.com/z");
    jn_built_request_cleanup(&r);
}

/* A custom provider with n header templates (x-h0 ... ), for auth_mode, as JSON text. */
static char *many_headers(const char *auth_mode, int n)
{
    json_object *p = json_object_new_object(), *proxy = json_object_new_object(),
                *headers = json_object_new_object();
    json_object_object_add(p, "auth_mode", json_object_new_string(auth_mode));
    json_object_object_add(proxy, "base_url", json_object_new_string("https://api.example.com"));
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "x-h%d", i);
        json_object_object_add(headers, name, json_object_new_string("v"));
    }
    json_object_object_add(proxy, "headers", headers);
    json_object_object_add(p, "proxy", proxy);
    char *text = strdup(json_object_to_json_string(p));
    json_object_put(p);
    return text;
}

/* The review's out-of-bounds write: 64 header templates filled the fixed array, and the
 * bearer token's flag was written one past its end (and the header itself dropped). */
static void test_many_headers(void **state)
{
    (void)state;
    jn_built_request_t r;
    char *p = many_headers("OAUTH2", 64);
    const char *caller[] = {"x-h3: mine", "X-Caller: 1", NULL};
    build(p, "{\"access_token\":\"tok\"}", NULL, NULL, "/", NULL, caller, &r, JN_OK);
    assert_int_equal(r.header_count, 66);
    assert_string_equal(header(&r, "Authorization"), "Bearer tok");
    assert_string_equal(header(&r, "x-h63"), "v");
    assert_string_equal(header(&r, "x-h3"), "mine");
    assert_string_equal(header(&r, "X-Caller"), "1");
    jn_built_request_cleanup(&r);
    free(p);

    /* Past the cap: refused, with nothing left behind. */
    p = many_headers("OAUTH2", JN_PROVIDER_MAX_HEADERS);
    build(p, "{\"access_token\":\"tok\"}", NULL, NULL, "/", NULL, NULL, &r, JN_ERR_TOO_LARGE);
    assert_non_null(strstr(last_why, "more than 128 headers"));
    free(p);
    p = many_headers("NONE", JN_PROVIDER_MAX_HEADERS - 1);
    const char *two[] = {"a: 1", "b: 2", NULL};
    build(p, NULL, NULL, NULL, "/", NULL, two, &r, JN_ERR_TOO_LARGE);
    free(p);
}

/* n bytes of 't' (caller frees). */
static char *filled(size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 't', n);
    s[n] = '\0';
    return s;
}

/* Credentials were cut to fixed buffers (8300 bytes for a bearer token, 4200 for
 * user:password): the provider got a different credential. */
static void test_credentials_are_never_cut(void **state)
{
    (void)state;
    jn_built_request_t r;
    size_t n = 20000;
    char *token = filled(n);
    json_object *creds = json_object_new_object();
    json_object_object_add(creds, "access_token", json_object_new_string(token));
    build("{\"auth_mode\":\"OAUTH2\",\"proxy\":{\"base_url\":\"https://api.example.com\"}}",
          json_object_to_json_string(creds), NULL, NULL, "/", NULL, NULL, &r, JN_OK);
    const char *bearer = header(&r, "Authorization");
    assert_int_equal(strlen(bearer), 7 + n);
    assert_int_equal(strncmp(bearer + 7, token, n), 0);
    jn_built_request_cleanup(&r);
    json_object_put(creds);

    /* A long password, base64-encoded whole. */
    creds = json_object_new_object();
    json_object_object_add(creds, "username", json_object_new_string("user"));
    json_object_object_add(creds, "password", json_object_new_string(token));
    build("{\"auth_mode\":\"BASIC\",\"proxy\":{\"base_url\":\"https://api.example.com\"}}",
          json_object_to_json_string(creds), NULL, NULL, "/", NULL, NULL, &r, JN_OK);
    const char *basic = header(&r, "Authorization");
    assert_true(strncmp(basic, "Basic ", 6) == 0);
    unsigned char *plain = malloc(n + 16);
    size_t plain_len = 0;
    assert_int_equal(jn_base64_decode(basic + 6, strlen(basic + 6), plain, n + 16, &plain_len),
                     JN_OK);
    assert_int_equal(plain_len, 5 + n);
    assert_memory_equal(plain, "user:", 5);
    assert_memory_equal(plain + 5, token, n);
    free(plain);
    jn_built_request_cleanup(&r);
    json_object_put(creds);
    free(token);

    /* Larger than a header may be: refused and said so, not cut. */
    n = JN_PROVIDER_MAX_HEADER_BYTES;
    token = filled(n);
    creds = json_object_new_object();
    json_object_object_add(creds, "access_token", json_object_new_string(token));
    build("{\"auth_mode\":\"OAUTH2\",\"proxy\":{\"base_url\":\"https://api.example.com\"}}",
          json_object_to_json_string(creds), NULL, NULL, "/", NULL, NULL, &r, JN_ERR_TOO_LARGE);
    assert_non_null(strstr(last_why, "Authorization"));
    assert_non_null(strstr(last_why, "credential is too large"));
    json_object_put(creds);
    creds = json_object_new_object();
    json_object_object_add(creds, "username", json_object_new_string("user"));
    json_object_object_add(creds, "password", json_object_new_string(token));
    build("{\"auth_mode\":\"BASIC\",\"proxy\":{\"base_url\":\"https://api.example.com\"}}",
          json_object_to_json_string(creds), NULL, NULL, "/", NULL, NULL, &r, JN_ERR_TOO_LARGE);
    json_object_put(creds);
    free(token);
}

/* What a connection holds is checked again where it is used. */
static void test_stored_values_are_checked(void **state)
{
    (void)state;
    jn_built_request_t r;
    /* A host outside the provider's allow-list, stored before the allow-list existed. */
    build("{\"auth_mode\":\"NONE\",\"proxy\":{\"base_url\":\"https://"
          "${connectionConfig.sub}.example.com\"}," SUB_SPEC "}",
          NULL, "{\"sub\":\"evil.com/x?\"}", NULL, "/", NULL, NULL, &r, JN_ERR_INVALID);
    assert_non_null(strstr(last_why, "connection_config.sub"));
    /* A host field the provider does not hold to any hosts: nothing is sent. */
    build("{\"auth_mode\":\"NONE\",\"proxy\":{\"base_url\":\"https://"
          "${connectionConfig.host}\"},\"connection_config\":{\"host\":{\"type\":\"string\"}}}",
          NULL, "{\"host\":\"attacker.example.com\"}", NULL, "/", NULL, NULL, &r, JN_ERR_INVALID);
    assert_non_null(strstr(last_why, "neither enum nor host_suffixes"));
    /* A line break in a rendered header value is never sent. */
    build("{\"auth_mode\":\"API_KEY\",\"proxy\":{\"base_url\":\"https://api.example.com\","
          "\"headers\":{\"x-api-key\":\"${apiKey}\"}}}",
          "{\"apiKey\":\"k\\r\\nX-Injected: 1\"}", NULL, NULL, "/", NULL, NULL, &r, JN_ERR_INVALID);
    assert_non_null(strstr(last_why, "line break"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oauth_bearer_and_url),
        cmocka_unit_test(test_api_key_templates_and_overrides),
        cmocka_unit_test(test_basic_and_base64_template),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_many_headers),
        cmocka_unit_test(test_credentials_are_never_cut),
        cmocka_unit_test(test_stored_values_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
