/* Unit tests for common/providers/provider_request.c: URLs, credential injection per auth mode,
 * which caller headers may override which provider headers, and refused headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <strings.h>

#include "providers/provider_request.h"

static const char *header(const jn_built_request_t *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->header_count; i++) {
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return r->headers[i] + n + 2;
    }
    return NULL;
}

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
          "\"headers\":{\"accept\":\"application/json\"}}}",
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
          "${connectionConfig.sub}.example.com\"}}",
          NULL, "{}", NULL, "/", NULL, NULL, &r, JN_ERR_INVALID);
    build("{\"auth_mode\":\"NONE\",\"proxy\":{\"base_url\":\"https://a.example.com\"}}", NULL, NULL,
          "ftp://internal/", "/", NULL, NULL, &r, JN_ERR_INVALID);
    /* The fallback picks the second alternative. */
    build("{\"auth_mode\":\"NONE\",\"proxy\":{\"base_url\":\"https://${connectionConfig.host} || "
          "https://b.example.com\"}}",
          NULL, "{}", NULL, "/z", NULL, NULL, &r, JN_OK);
    assert_string_equal(r.url, "https://b.example.com/z");
    jn_built_request_cleanup(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oauth_bearer_and_url),
        cmocka_unit_test(test_api_key_templates_and_overrides),
        cmocka_unit_test(test_basic_and_base64_template),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
