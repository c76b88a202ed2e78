/* Unit tests for common/providers/oauth_request.c: token requests as data (URL, headers, body,
 * client authentication per provider), reading token answers (which failures mean the grant
 * is dead, which are worth retrying), and token_response_metadata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "providers/oauth_request.h"

static const char *header(const jn_oauth_request_t *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->header_count; i++) {
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return r->headers[i] + n + 2;
    }
    return NULL;
}

static const jn_oauth_client_t client = {"my id", "s3cret&more", NULL};

static void test_refresh_form_with_body_auth(void **state)
{
    (void)state;
    json_object *p = json_tokener_parse(
        "{\"token_url\":\"https://${connectionConfig.subdomain}.example.com/oauth/token\","
        "\"refresh_params\":{\"grant_type\":\"refresh_token\",\"audience\":\"api\"},"
        "\"connection_config\":{\"subdomain\":{\"type\":\"string\",\"title\":\"Subdomain\","
        "\"host_suffixes\":[\".example.com\"]}}}");
    json_object *config = json_tokener_parse("{\"subdomain\":\"acme\"}");
    jn_oauth_request_t req;
    jn_oauth_error_t e;
    assert_int_equal(jn_oauth_request_refresh(p, &client, config, "rt/1+2", &req, &e), JN_OK);
    assert_int_equal(req.grant, JN_OAUTH_GRANT_REFRESH);
    assert_string_equal(req.url, "https://acme.example.com/oauth/token"); /* no refresh_url */
    assert_string_equal(header(&req, "Content-Type"), "application/x-www-form-urlencoded");
    assert_string_equal(header(&req, "Accept"), "application/json");
    assert_null(header(&req, "Authorization"));
    assert_string_equal(req.body, "grant_type=refresh_token&audience=api&refresh_token=rt%2F1%2B2"
                                  "&client_id=my%20id&client_secret=s3cret%26more");
    assert_int_equal(req.body_len, strlen(req.body));
    jn_oauth_request_cleanup(&req);
    assert_null(req.body);

    /* A template that cannot be resolved is a configuration error, said once. */
    json_object *empty = json_object_new_object();
    assert_int_equal(jn_oauth_request_refresh(p, &client, empty, "rt", &req, &e), JN_ERR_INVALID);
    assert_non_null(strstr(e.message, "connection_config"));
    assert_false(e.grant_dead);
    assert_null(req.url);
    json_object_put(empty);
    json_object_put(config);
    json_object_put(p);
}

static void test_basic_auth_and_json_body(void **state)
{
    (void)state;
    json_object *p = json_tokener_parse(
        "{\"token_url\":\"https://example.com/token\",\"refresh_url\":\"https://example.com/r\","
        "\"token_request_auth_method\":\"basic\",\"token_request_body_format\":\"json\"}");
    jn_oauth_request_t req;
    jn_oauth_error_t e;
    assert_int_equal(jn_oauth_request_refresh(p, &client, NULL, "rt", &req, &e), JN_OK);
    assert_string_equal(req.url, "https://example.com/r");
    assert_string_equal(header(&req, "Content-Type"), "application/json");
    /* base64("my id:s3cret&more") */
    assert_string_equal(header(&req, "Authorization"), "Basic bXkgaWQ6czNjcmV0Jm1vcmU=");
    json_object *body = json_tokener_parse(req.body);
    assert_non_null(body);
    assert_string_equal(json_object_get_string(json_object_object_get(body, "grant_type")),
                        "refresh_token");
    assert_string_equal(json_object_get_string(json_object_object_get(body, "refresh_token")),
                        "rt");
    assert_null(json_object_object_get(body, "client_secret")); /* in the header only */
    json_object_put(body);
    jn_oauth_request_cleanup(&req);
    json_object_put(p);
}

static void test_code_and_client_credentials(void **state)
{
    (void)state;
    json_object *p = json_tokener_parse(
        "{\"token_url\":\"https://example.com/token\",\"scope_separator\":\",\","
        "\"default_scopes\":[\"a\",\"b\"],\"token_params\":{\"grant_type\":\"password\"}}");
    jn_oauth_request_t req;
    jn_oauth_error_t e;
    assert_int_equal(
        jn_oauth_request_code(p, &client, NULL, "c0de", "https://gw/cb", "verifier", &req, &e),
        JN_OK);
    assert_int_equal(req.grant, JN_OAUTH_GRANT_CODE);
    assert_non_null(strstr(req.body, "grant_type=authorization_code&"));
    assert_non_null(strstr(req.body, "code=c0de&redirect_uri=https%3A%2F%2Fgw%2Fcb"));
    assert_non_null(strstr(req.body, "code_verifier=verifier"));
    jn_oauth_request_cleanup(&req);
    /* The provider's grant_type wins; scopes default to the provider's, joined its way. */
    assert_int_equal(jn_oauth_request_client_credentials(p, &client, NULL, NULL, &req, &e), JN_OK);
    assert_int_equal(req.grant, JN_OAUTH_GRANT_CLIENT_CREDENTIALS);
    assert_non_null(strstr(req.body, "grant_type=password"));
    assert_null(strstr(req.body, "client_credentials"));
    assert_non_null(strstr(req.body, "scope=a%2Cb"));
    jn_oauth_request_cleanup(&req);
    assert_int_equal(jn_oauth_request_client_credentials(p, &client, NULL, " x , y", &req, &e),
                     JN_OK);
    assert_non_null(strstr(req.body, "scope=x%2Cy"));
    jn_oauth_request_cleanup(&req);
    json_object_put(p);
}

/* Parses body (with status) as the answer to a request of grant. */
static jn_err_t parse(jn_oauth_grant_t grant, long status, const char *body, jn_oauth_token_t *t,
                      jn_oauth_error_t *e)
{
    jn_oauth_request_t req = {.grant = grant};
    return jn_oauth_request_parse(&req, status, body, body ? strlen(body) : 0, t, e);
}

static void test_parse_success(void **state)
{
    (void)state;
    jn_oauth_token_t t;
    jn_oauth_error_t e;
    long long now = (long long)time(NULL);
    assert_int_equal(parse(JN_OAUTH_GRANT_REFRESH, 200,
                           "{\"access_token\":\"at\",\"refresh_token\":\"rt\",\"expires_in\":"
                           "\"3600\",\"instance_url\":\"https://x\"}",
                           &t, &e),
                     JN_OK);
    assert_string_equal(t.access_token, "at");
    assert_string_equal(t.refresh_token, "rt");
    assert_int_equal(t.expires_in, 3600);
    assert_true(t.expires_at >= now + 3600 && t.expires_at <= now + 3602);
    assert_string_equal(json_object_get_string(json_object_object_get(t.raw, "instance_url")),
                        "https://x");
    jn_oauth_token_cleanup(&t);
    assert_null(t.access_token);

    /* No expiry, no refresh token. */
    assert_int_equal(parse(JN_OAUTH_GRANT_REFRESH, 200, "{\"access_token\":\"at\"}", &t, &e),
                     JN_OK);
    assert_null(t.refresh_token);
    assert_int_equal(t.expires_in, 0);
    assert_int_equal(t.expires_at, 0);
    jn_oauth_token_cleanup(&t);
}

static void expect_failure(jn_oauth_grant_t grant, long status, const char *body, jn_err_t want,
                           bool dead, const char *mentions)
{
    jn_oauth_token_t t = {0};
    jn_oauth_error_t e;
    jn_err_t err = parse(grant, status, body, &t, &e);
    if (err != want || e.grant_dead != dead)
        fail_msg("%ld %s: got %d dead=%d (%s), wanted %d dead=%d", status, body ? body : "(none)",
                 err, e.grant_dead, e.message, want, dead);
    assert_int_equal(e.http_status, status);
    assert_null(t.access_token);
    if (mentions && !strstr(e.message, mentions))
        fail_msg("'%s' does not mention '%s'", e.message, mentions);
}

static void test_parse_failures(void **state)
{
    (void)state;
    const jn_oauth_grant_t R = JN_OAUTH_GRANT_REFRESH, CC = JN_OAUTH_GRANT_CLIENT_CREDENTIALS;
    /* The grant is gone: re-authorisation needed. */
    expect_failure(R, 400, "{\"error\":\"invalid_grant\",\"error_description\":\"revoked\"}",
                   JN_ERR_INVALID, true, "invalid_grant: revoked");
    expect_failure(R, 200, "{\"ok\":false,\"error\":\"invalid_refresh_token\"}", JN_ERR_INVALID,
                   true, "invalid_refresh_token");
    expect_failure(R, 400, "{\"error\":\"token_revoked\"}", JN_ERR_INVALID, true, NULL);
    /* For client credentials the client is the grant; for a refresh it is the integration's
     * configuration, which can be fixed without the end user. */
    expect_failure(CC, 401, "{\"error\":\"invalid_client\"}", JN_ERR_INVALID, true, NULL);
    expect_failure(R, 401, "{\"error\":\"invalid_client\"}", JN_ERR_INVALID, false, NULL);
    expect_failure(R, 400, "{\"error\":\"invalid_scope\"}", JN_ERR_INVALID, false, NULL);
    /* The provider's trouble: worth retrying later. */
    expect_failure(R, 503, "<html>down</html>", JN_ERR_UPSTREAM, false, "HTTP 503");
    expect_failure(R, 500, "{\"error\":\"server_error\"}", JN_ERR_UPSTREAM, false, "server_error");
    expect_failure(R, 429, "{\"error\":\"slow_down\"}", JN_ERR_UPSTREAM, false, NULL);
    /* Garbage and half answers. */
    expect_failure(R, 200, "{\"token_type\":\"bearer\"}", JN_ERR_INVALID, false, "access_token");
    expect_failure(R, 200, "[1,2]", JN_ERR_INVALID, false, "JSON object");
    expect_failure(R, 200, "{\"access_token\":\"at\"", JN_ERR_INVALID, false, "JSON object");
    expect_failure(R, 200, NULL, JN_ERR_INVALID, false, "JSON object");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refresh_form_with_body_auth),
        cmocka_unit_test(test_basic_auth_and_json_body),
        cmocka_unit_test(test_code_and_client_credentials),
        cmocka_unit_test(test_parse_success),
        cmocka_unit_test(test_parse_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
