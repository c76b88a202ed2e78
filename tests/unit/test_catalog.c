/* Unit tests for common/providers/catalog.c: the built-in catalog, lookups, and one test per kind
 * of defect the validator must catch, each made from a valid entry with one change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/catalog.h"

/* ---- valid base entries, one per auth mode ---- */

static const char oauth2_base[] =
    "{\"name\": \"acme\", \"display_name\": \"Acme\", \"categories\": [\"crm\"],"
    " \"docs\": \"https://developer.acme.com/api\", \"auth_mode\": \"OAUTH2\","
    " \"authorization_url\": \"https://${connectionConfig.subdomain}.acme.com/oauth/authorize\","
    " \"authorization_params\": {\"prompt\": \"consent\"},"
    " \"token_url\": \"https://${connectionConfig.subdomain}.acme.com/oauth/token\","
    " \"token_params\": {\"grant_type\": \"authorization_code\"},"
    " \"refresh_params\": {\"grant_type\": \"refresh_token\"},"
    " \"scope_separator\": \",\", \"default_scopes\": [\"read\"], \"pkce\": true,"
    " \"token_request_auth_method\": \"basic\", \"token_request_body_format\": \"json\","
    " \"token_expiration_buffer\": 600, \"token_response_metadata\": [\"team.id\"],"
    " \"proxy\": {"
    "   \"base_url\": \"https://${connectionConfig.subdomain}.acme.com/api\","
    "   \"headers\": {\"accept\": \"application/json\"},"
    "   \"retry\": {\"at\": [\"x-ratelimit-reset\"], \"after\": [\"retry-after\"],"
    "             \"remaining\": \"x-ratelimit-remaining\", \"error_code\": [\"429\", \"5xx\"]},"
    "   \"paginate\": {\"type\": \"cursor\", \"cursor_path_in_response\": \"meta.next\","
    "                \"cursor_name_in_request\": \"cursor\", \"limit_name_in_request\": \"limit\","
    "                \"response_path\": \"data\"},"
    "   \"verification\": {\"method\": \"GET\", \"endpoints\": [\"/me\"]}},"
    " \"connection_config\": {\"subdomain\": {\"type\": \"string\", \"title\": \"Subdomain\","
    "   \"description\": \"The part before .acme.com.\", \"example\": \"tenant-1\","
    "   \"pattern\": \"^[a-z0-9-]+$\", \"host_suffixes\": [\".acme.com\"],"
    "   \"prefix\": \"https://\", \"suffix\": \".acme.com\"}}}";

static const char cc_base[] =
    "{\"name\": \"acme-cc\", \"display_name\": \"Acme (client credentials)\","
    " \"categories\": [\"crm\", \"iam\"], \"docs\": \"https://developer.acme.com/api\","
    " \"auth_mode\": \"OAUTH2_CC\", \"token_url\": \"https://auth.acme.com/oauth/token\","
    " \"token_params\": {\"grant_type\": \"client_credentials\","
    "                    \"audience\": \"${connectionConfig.audience} || https://api.acme.com\"},"
    " \"proxy\": {\"base_url\": \"https://api.acme.com\"},"
    " \"connection_config\": {\"audience\": {\"type\": \"string\", \"optional\": true}},"
    " \"credentials\": {\"client_id\": {\"type\": \"string\", \"title\": \"Client ID\"},"
    "   \"client_secret\": {\"type\": \"string\", \"title\": \"Client secret\", \"secret\": "
    "true}}}";

static const char api_key_base[] =
    "{\"name\": \"acme-key\", \"display_name\": \"Acme (API key)\", \"categories\": [\"crm\"],"
    " \"docs\": \"https://developer.acme.com/api\", \"auth_mode\": \"API_KEY\","
    " \"proxy\": {\"base_url\": \"https://api.acme.com\","
    "   \"headers\": {\"authorization\": \"Bearer ${apiKey}\"},"
    "   \"paginate\": {\"type\": \"link\", \"link_rel_in_response_header\": \"next\"},"
    "   \"verification\": {\"endpoints\": [\"/v1/me\", \"/v1/keys/${apiKey}\"]}},"
    " \"credentials\": {\"apiKey\": {\"type\": \"string\", \"title\": \"API key\","
    "   \"secret\": true, \"example\": \"ak_...\", \"pattern\": \"^ak_[A-Za-z0-9]+$\"}}}";

static const char basic_base[] =
    "{\"name\": \"acme-basic\", \"display_name\": \"Acme (Basic)\", \"categories\": [\"crm\"],"
    " \"docs\": \"https://developer.acme.com/api\", \"auth_mode\": \"BASIC\","
    " \"proxy\": {\"base_url\": \"https://api.acme.com\","
    "   \"paginate\": {\"type\": \"offset\", \"offset_name_in_request\": \"offset\","
    "                \"offset_calculation_method\": \"per-page\"}},"
    " \"credentials\": {\"username\": {\"type\": \"string\", \"title\": \"API key\"},"
    "   \"password\": {\"type\": \"string\", \"title\": \"Password\", \"hidden\": true,"
    "                  \"default\": \"X\"}}}";

static const char none_base[] =
    "{\"name\": \"acme-open\", \"display_name\": \"Acme (open data)\", \"categories\": [\"other\"],"
    " \"docs\": \"https://developer.acme.com/open\", \"auth_mode\": \"NONE\","
    " \"proxy\": {\"base_url\": \"http://open.acme.com\","
    "   \"paginate\": {\"type\": \"page\", \"page_name_in_request\": \"page\"}}}";

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    if (!o)
        fail_msg("test JSON does not parse: %s", text);
    return o;
}

/* Sets the dotted path in root to the JSON value (creating objects on the way), or deletes
 * it when value is NULL. */
static void set_path(json_object *root, const char *path, const char *value)
{
    json_object *o = root;
    const char *p = path;
    for (const char *dot = strchr(p, '.'); dot; p = dot + 1, dot = strchr(p, '.')) {
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(dot - p), p);
        json_object *next = NULL;
        if (!json_object_object_get_ex(o, key, &next)) {
            next = json_object_new_object();
            json_object_object_add(o, key, next);
        }
        o = next;
    }
    if (value)
        json_object_object_add(o, p, strcmp(value, "null") == 0 ? NULL : parse(value));
    else
        json_object_object_del(o, p);
}

/* ---- the built-in catalog ---- */

static void test_builtin_loads(void **state)
{
    (void)state;
    jn_catalog_t *cat = NULL;
    char why[512] = "";
    jn_err_t err = jn_catalog_load_builtin(&cat, why, sizeof why);
    if (err)
        fail_msg("%s", why);
    assert_true(jn_catalog_count(cat) >= 50);

    static const char *const expected[] = {
        "github",       "slack",       "hubspot",   "salesforce", "google-calendar",
        "google-drive", "google-mail", "outlook",   "notion",     "linear",
        "jira",         "zendesk",     "intercom",  "stripe",     "shopify",
        "airtable",     "asana",       "pipedrive", "zoom"};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        json_object *e = jn_catalog_get(cat, expected[i]);
        if (!e)
            fail_msg("provider '%s' missing", expected[i]);
        json_object *name = NULL;
        assert_true(json_object_object_get_ex(e, "name", &name));
        assert_string_equal(json_object_get_string(name), expected[i]);
    }
    assert_null(jn_catalog_get(cat, "no-such-provider"));
    assert_null(jn_catalog_get(cat, ""));
    assert_null(jn_catalog_at(cat, jn_catalog_count(cat)));

    /* Sorted, every auth mode present, every entry valid on its own, text matches. */
    static const char *const modes[] = {"OAUTH2", "OAUTH2_CC", "API_KEY", "BASIC", "NONE"};
    int seen[5] = {0};
    const char *prev = "";
    for (size_t i = 0; i < jn_catalog_count(cat); i++) {
        json_object *e = jn_catalog_at(cat, i), *v = NULL;
        assert_true(json_object_object_get_ex(e, "name", &v));
        const char *name = json_object_get_string(v);
        assert_true(strcmp(prev, name) < 0);
        prev = name;
        assert_ptr_equal(jn_catalog_get(cat, name), e);
        assert_true(json_object_object_get_ex(e, "auth_mode", &v));
        for (int m = 0; m < 5; m++)
            seen[m] += strcmp(json_object_get_string(v), modes[m]) == 0;
        assert_int_equal(jn_catalog_validate(e, name, why, sizeof why), JN_OK);
        json_object *back = parse(jn_catalog_json_at(cat, i));
        assert_true(json_object_equal(back, e));
        json_object_put(back);
    }
    for (int m = 0; m < 5; m++) {
        if (!seen[m])
            fail_msg("no provider with auth_mode %s", modes[m]);
    }
    jn_catalog_free(cat);
}

static void test_bases_are_valid(void **state)
{
    (void)state;
    const char *bases[] = {oauth2_base, cc_base, api_key_base, basic_base, none_base};
    for (size_t i = 0; i < 5; i++) {
        json_object *e = parse(bases[i]);
        char why[512] = "";
        if (jn_catalog_validate(e, NULL, why, sizeof why) != JN_OK)
            fail_msg("base %zu: %s", i, why);
        json_object_put(e);
    }
}

static void test_add_get_conflict(void **state)
{
    (void)state;
    jn_catalog_t *cat = jn_catalog_new();
    char why[512];
    json_object *a = parse(oauth2_base), *b = parse(api_key_base), *c = parse(cc_base);
    assert_int_equal(jn_catalog_count(cat), 0);
    assert_null(jn_catalog_get(cat, "acme"));
    assert_int_equal(jn_catalog_add(cat, b, why, sizeof why), JN_OK);
    assert_int_equal(jn_catalog_add(cat, c, why, sizeof why), JN_OK);
    assert_int_equal(jn_catalog_add(cat, a, why, sizeof why), JN_OK);
    assert_int_equal(jn_catalog_count(cat), 3);
    /* Sorted by name whatever the order of adding. */
    assert_ptr_equal(jn_catalog_at(cat, 0), a);
    assert_ptr_equal(jn_catalog_at(cat, 1), c);
    assert_ptr_equal(jn_catalog_at(cat, 2), b);
    assert_ptr_equal(jn_catalog_get(cat, "acme-key"), b);

    /* The same name again. */
    json_object *dup = parse(oauth2_base);
    assert_int_equal(jn_catalog_add(cat, dup, why, sizeof why), JN_ERR_CONFLICT);
    assert_non_null(strstr(why, "'acme'"));
    assert_non_null(strstr(why, "already"));
    /* An invalid entry is not added. */
    set_path(dup, "name", "\"acme-2\"");
    set_path(dup, "auth_mode", "\"OAUTH3\"");
    assert_int_equal(jn_catalog_add(cat, dup, why, sizeof why), JN_ERR_INVALID);
    assert_int_equal(jn_catalog_count(cat), 3);
    assert_null(jn_catalog_get(cat, "acme-2"));

    /* The catalog holds its own references. */
    json_object_put(a);
    json_object_put(b);
    json_object_put(c);
    json_object_put(dup);
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(jn_catalog_get(cat, "acme"), "display_name", &v));
    assert_string_equal(json_object_get_string(v), "Acme");
    jn_catalog_free(cat);
    jn_catalog_free(NULL);
}

/* ---- one defect at a time ---- */

typedef struct {
    const char *base;
    const char *path;  /* what to change, dotted */
    const char *value; /* new JSON value, or NULL to delete */
    const char *want;  /* must appear in why: the field path */
    const char *also;  /* and this, when not NULL */
} defect_t;

static const defect_t defects[] = {
    /* unknown fields, at every level */
    {oauth2_base, "tokn_url", "\"https://x.com\"", "tokn_url:", "did you mean 'token_url'"},
    {oauth2_base, "logo", "\"x.png\"", "logo: unknown field", NULL},
    {oauth2_base, "proxy.retry.retry_after", "[\"x\"]", "proxy.retry.retry_after:", NULL},
    {oauth2_base, "proxy.base", "\"x\"", "proxy.base:", "unknown field"},
    {oauth2_base, "proxy.paginate.cursor_path", "\"x\"", "proxy.paginate.cursor_path:", NULL},
    {oauth2_base, "proxy.verification.methods", "[\"GET\"]", "proxy.verification.methods:", NULL},
    {oauth2_base, "connection_config.subdomain.regex", "\"^a$\"",
     "connection_config.subdomain.regex:", "unknown field"},
    {api_key_base, "credentials.apiKey.secrett", "true",
     "credentials.apiKey.secrett:", "did you mean 'secret'"},
    {api_key_base, "credentials.apiKey.enum", "[\"a\"]",
     "credentials.apiKey.enum:", "unknown field"},
    /* types */
    {oauth2_base, "display_name", "42", "display_name:", "must be a string, not an integer"},
    {oauth2_base, "categories", "\"crm\"", "categories:", "must be an array"},
    {oauth2_base, "pkce", "\"true\"", "pkce:", "must be a boolean"},
    {oauth2_base, "token_expiration_buffer", "1.5",
     "token_expiration_buffer:", "must be an integer"},
    {oauth2_base, "token_expiration_buffer", "90000", "token_expiration_buffer:", "86400"},
    {oauth2_base, "token_params", "[\"grant_type\"]", "token_params:", "must be an object"},
    {oauth2_base, "token_params.grant_type", "7", "token_params.grant_type:", "a string"},
    {oauth2_base, "proxy.headers.accept", "null", "proxy.headers.accept:", "not null"},
    {oauth2_base, "default_scopes", "[\"read\", 1]", "default_scopes[1]:", NULL},
    {oauth2_base, "connection_config.subdomain.optional", "\"yes\"",
     "connection_config.subdomain.optional:", "boolean"},
    {oauth2_base, "connection_config.subdomain.type", "\"number\"",
     "connection_config.subdomain.type:", NULL},
    {oauth2_base, "connection_config.subdomain.type", NULL,
     "connection_config.subdomain.type:", "missing"},
    {oauth2_base, "scope_separator", "\"\"", "scope_separator:", "must not be empty"},
    {oauth2_base, "token_request_auth_method", "\"header\"", "token_request_auth_method:", NULL},
    {oauth2_base, "token_request_body_format", "\"xml\"", "token_request_body_format:", NULL},
    /* identity */
    {oauth2_base, "auth_mode", "\"OAUTH\"", "auth_mode:", "OAUTH2_CC"},
    {oauth2_base, "name", "\"Acme\"", "name:", "lowercase"},
    {oauth2_base, "name", "\"acme--x\"", "name:", NULL},
    {oauth2_base, "display_name", "\"\"", "display_name:", "empty"},
    {oauth2_base, "docs", "\"http://developer.acme.com\"", "docs:", "https"},
    {oauth2_base, "categories", "[]", "categories:", "empty"},
    {oauth2_base, "categories", "[\"crm\", \"games\"]", "categories[1]:", "unknown category"},
    {oauth2_base, "categories", "[\"crm\", \"crm\"]", "categories[1]:", "twice"},
    /* auth modes */
    {oauth2_base, "token_url", NULL, "token_url:", "required when auth_mode is OAUTH2"},
    {oauth2_base, "authorization_url", NULL, "authorization_url:", "required"},
    {oauth2_base, "credentials", "{\"apiKey\": {\"type\": \"string\"}}",
     "credentials:", "not allowed"},
    {cc_base, "authorization_url", "\"https://auth.acme.com/authorize\"",
     "authorization_url:", "not allowed when auth_mode is OAUTH2_CC"},
    {cc_base, "pkce", "false", "pkce:", "OAUTH2_CC"},
    {cc_base, "refresh_params", "{\"grant_type\": \"refresh_token\"}",
     "refresh_params:", "not allowed"},
    {cc_base, "token_params", "{\"audience\": \"x\"}", "token_params.grant_type:", "missing"},
    {cc_base, "credentials.client_secret", NULL, "credentials.client_secret:", "missing"},
    {api_key_base, "credentials.secondKey", "{\"type\": \"string\", \"secret\": true}",
     "credentials.secondKey:", "proxy.headers"},
    {api_key_base, "credentials", NULL, "credentials:", "missing"},
    {api_key_base, "token_url", "\"https://x.com/token\"",
     "token_url:", "only allowed when auth_mode is OAUTH2"},
    {api_key_base, "proxy.base_url", NULL, "proxy.base_url:", "missing"},
    {basic_base, "credentials.password", NULL, "credentials.password:", "missing"},
    {basic_base, "credentials.password.default", NULL, "credentials.password.hidden:", "default"},
    {none_base, "credentials", "{\"apiKey\": {\"type\": \"string\"}}",
     "credentials:", "not allowed"},
    {oauth2_base, "refresh_params.grant_type", "\"authorization_code\"",
     "refresh_params.grant_type:", "refresh_token"},
    /* placeholders */
    {oauth2_base, "proxy.base_url", "\"https://${connectionConfig.region}.acme.com\"",
     "proxy.base_url:", "connection_config does not declare 'region'"},
    {api_key_base, "proxy.headers.authorization", "\"Bearer ${accessToken}\"",
     "proxy.headers.authorization:", "${accessToken}"},
    {oauth2_base, "proxy.headers.x-key", "\"${apiKey}\"", "proxy.headers.x-key:", "${apiKey}"},
    {api_key_base, "proxy.headers.authorization", "\"Bearer ${credentials.token}\"",
     "proxy.headers.authorization:", "credentials does not declare 'token'"},
    {api_key_base, "proxy.headers.x-user", "\"${user}\"",
     "proxy.headers.x-user:", "unknown placeholder ${user}"},
    {oauth2_base, "proxy.headers.accept", "\"${sha1(x)}\"",
     "proxy.headers.accept:", "unknown function 'sha1'"},
    {oauth2_base, "token_params.code", "\"${credentials.x\"",
     "token_params.code:", "unclosed ${ at offset 0"},
    /* patterns */
    {oauth2_base, "connection_config.subdomain.pattern", NULL,
     "authorization_url:", "connection_config.subdomain must declare a pattern"},
    {oauth2_base, "connection_config.subdomain.pattern", "\"^[a-z\"",
     "connection_config.subdomain.pattern:", "does not compile"},
    {oauth2_base, "connection_config.subdomain.pattern", "\"^\\\\d+$\"",
     "connection_config.subdomain.pattern:", "[0-9]"},
    {oauth2_base, "connection_config.subdomain.pattern", "\"^[a-z\\\\-]+$\"",
     "connection_config.subdomain.pattern:", "backslash"},
    {oauth2_base, "connection_config.subdomain.example", "\"Tenant_1\"",
     "connection_config.subdomain.example:", "does not match"},
    {oauth2_base, "connection_config.subdomain.enum", "[\"eu\", \"US\"]",
     "connection_config.subdomain.enum[1]:", "does not match"},
    /* values in host names */
    {oauth2_base, "connection_config.subdomain.host_suffixes", NULL,
     "authorization_url:", "must declare enum or host_suffixes"},
    {api_key_base, "proxy.base_url", "\"https://${connectionConfig.host}\"",
     "proxy.base_url:", "connection_config does not declare 'host'"},
    {oauth2_base, "connection_config.subdomain.host_suffixes", "[\".com\"]",
     "connection_config.subdomain.host_suffixes[0]:", "'.com' is not a host"},
    {oauth2_base, "connection_config.subdomain.host_suffixes", "[\"*.acme.com\"]",
     "connection_config.subdomain.host_suffixes[0]:", "not a host"},
    {oauth2_base, "connection_config.subdomain.host_suffixes", "[\".Acme.com\"]",
     "connection_config.subdomain.host_suffixes[0]:", "lowercase"},
    {oauth2_base, "connection_config.subdomain.host_suffixes", "[\"127.0.0.1\"]",
     "connection_config.subdomain.host_suffixes[0]:", "top-level domain"},
    {oauth2_base, "connection_config.subdomain.host_suffixes", "[\".acme.com/x\"]",
     "connection_config.subdomain.host_suffixes[0]:", NULL},
    {oauth2_base, "connection_config.subdomain.host_suffixes", "[\".acme.com\", \".acme.com\"]",
     "connection_config.subdomain.host_suffixes[1]:", "twice"},
    {oauth2_base, "connection_config.subdomain.host_suffixes", "[]",
     "connection_config.subdomain.host_suffixes:", "empty"},
    {oauth2_base, "connection_config.subdomain.host_suffixes", "[\".other.com\"]",
     "connection_config.subdomain.example:", "'tenant-1.acme.com'"},
    {oauth2_base, "connection_config.subdomain.enum", "[\"eu\", \"-us\"]",
     "connection_config.subdomain.enum[1]:", "not a valid host name"},
    {cc_base, "connection_config.audience.host_suffixes", "[\".acme.com\"]",
     "connection_config.audience.host_suffixes:", "only for a field placed in the host"},
    {oauth2_base, "proxy.base_url",
     "\"https://${connectionConfig.subdomain}-${connectionConfig.subdomain}.acme.com\"",
     "proxy.base_url:", "a host may hold one"},
    {oauth2_base, "proxy.base_url", "\"${connectionConfig.subdomain}.acme.com/api\"",
     "proxy.base_url:", "whole origin"},
    {oauth2_base, "proxy.base_url", "\"https://x@${connectionConfig.subdomain}.acme.com\"",
     "proxy.base_url:", "user info"},
    {api_key_base, "proxy.base_url", "\"https://${apiKey}.acme.com\"",
     "proxy.base_url:", "${apiKey} cannot be used in a URL's host"},
    {api_key_base, "proxy.base_url", "\"https://${base64(${apiKey})}.acme.com\"",
     "proxy.base_url:", "base64() cannot be used in a URL's host"},
    /* credentials never come from connection_config */
    {oauth2_base, "proxy.headers.dd-application-key", "\"${connectionConfig.subdomain}\"",
     "proxy.headers.dd-application-key:", "declare it under credentials"},
    {oauth2_base, "proxy.headers.authorization", "\"Bearer ${connectionConfig.subdomain}\"",
     "proxy.headers.authorization:", "carries a credential"},
    {oauth2_base, "proxy.headers.x-tenant", "\"${connectionConfig.subdomain}:${accessToken}\"",
     "proxy.headers.x-tenant:", "${connectionConfig.subdomain}"},
    {oauth2_base, "proxy.query.access_token", "\"${connectionConfig.subdomain}\"",
     "proxy.query.access_token:", "carries a credential"},
    {oauth2_base, "token_params.client_secret", "\"${connectionConfig.subdomain}\"",
     "token_params.client_secret:", "carries a credential"},
    {oauth2_base, "authorization_params.session", "\"${connectionConfig.subdomain}\"",
     "authorization_params.session:", "carries a credential"},

    /* URLs and paths */
    {oauth2_base, "token_url", "\"ftp://acme.com/token\"", "token_url:", "not an http(s) URL"},
    {oauth2_base, "token_url", "\"https://${connectionConfig.subdomain}.acme.com || acme.com\"",
     "token_url:", "not an http(s) URL: 'acme.com'"},
    {oauth2_base, "authorization_url", "\"https:///oauth\"", "authorization_url:", "no host"},
    {oauth2_base, "refresh_url", "\"https://acme.com/oauth token\"", "refresh_url:", "spaces"},
    {oauth2_base, "proxy.base_url", "\"https://api.acme.com/\"",
     "proxy.base_url:", "must not end with '/'"},
    {oauth2_base, "proxy.verification.endpoints", "[\"/me\", \"me\"]",
     "proxy.verification.endpoints[1]:", "must start with '/'"},
    {oauth2_base, "proxy.verification.endpoints", "[]", "proxy.verification.endpoints:", "empty"},
    {oauth2_base, "proxy.verification.method", "\"PUT\"", "proxy.verification.method:", "GET"},
    /* retry, headers */
    {oauth2_base, "proxy.retry.error_code", "[\"429\", \"4x9\"]",
     "proxy.retry.error_code[1]:", "'4x9'"},
    {oauth2_base, "proxy.retry.error_code", "[\"600\"]", "proxy.retry.error_code[0]:", NULL},
    {oauth2_base, "proxy.retry.error_code", "[\"6xx\"]", "proxy.retry.error_code[0]:", NULL},
    {oauth2_base, "proxy.retry.at", "[\"X-RateLimit-Reset\"]", "proxy.retry.at[0]:", "lowercase"},
    {oauth2_base, "proxy.headers.Accept", "\"x\"", "proxy.headers.Accept:", "lowercase"},
    /* pagination */
    {oauth2_base, "proxy.paginate.cursor_name_in_request", NULL,
     "proxy.paginate.cursor_name_in_request:", "required when type is 'cursor'"},
    {oauth2_base, "proxy.paginate.page_name_in_request", "\"page\"",
     "proxy.paginate.page_name_in_request:", "not allowed when type is 'cursor'"},
    {oauth2_base, "proxy.paginate.type", "\"token\"", "proxy.paginate.type:", NULL},
    {api_key_base, "proxy.paginate.link_rel_in_response_header", NULL,
     "proxy.paginate:", "link_path_in_response_body"},
    {basic_base, "proxy.paginate.offset_calculation_method", "\"by-page\"",
     "proxy.paginate.offset_calculation_method:", NULL},
    {oauth2_base, "token_response_metadata", "[\"team..id\"]", "token_response_metadata[0]:", NULL},
};

static void test_defects(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof defects / sizeof defects[0]; i++) {
        const defect_t *d = &defects[i];
        json_object *e = parse(d->base), *name = NULL;
        set_path(e, d->path, d->value);
        json_object_object_get_ex(e, "name", &name);
        char provider[80], why[512] = "";
        snprintf(provider, sizeof provider, "provider '%s'", json_object_get_string(name));
        jn_err_t err = jn_catalog_validate(e, NULL, why, sizeof why);
        if (err != JN_ERR_INVALID)
            fail_msg("defect %zu (%s): got %s, want invalid", i, d->path, jn_err_str(err));
        if (!strstr(why, provider) || !strstr(why, d->want) || (d->also && !strstr(why, d->also)))
            fail_msg("defect %zu (%s): why '%s' lacks '%s' / '%s' / '%s'", i, d->path, why,
                     provider, d->want, d->also ? d->also : "");
        if (strchr(why, '\n'))
            fail_msg("defect %zu: why is not one line", i);
        json_object_put(e);
    }
}

static void test_expected_name_and_shape(void **state)
{
    (void)state;
    char why[512];
    json_object *e = parse(oauth2_base);
    assert_int_equal(jn_catalog_validate(e, "acme", why, sizeof why), JN_OK);
    assert_int_equal(jn_catalog_validate(e, "acme-crm", why, sizeof why), JN_ERR_INVALID);
    assert_non_null(strstr(why, "provider 'acme-crm'"));
    assert_non_null(strstr(why, "name:"));
    assert_non_null(strstr(why, "'acme'"));
    /* why may be NULL. */
    assert_int_equal(jn_catalog_validate(e, "other", NULL, 0), JN_ERR_INVALID);
    json_object_put(e);

    /* Not an object; no name. */
    json_object *arr = parse("[1]");
    assert_int_equal(jn_catalog_validate(arr, NULL, why, sizeof why), JN_ERR_INVALID);
    assert_non_null(strstr(why, "must be a JSON object"));
    json_object_put(arr);
    e = parse(oauth2_base);
    json_object_object_del(e, "name");
    assert_int_equal(jn_catalog_validate(e, NULL, why, sizeof why), JN_ERR_INVALID);
    assert_non_null(strstr(why, "name: missing"));
    json_object_put(e);

    /* Control characters and long values are not echoed as they are. */
    e = parse(oauth2_base);
    set_path(e, "categories", "[\"a\\nb\"]");
    assert_int_equal(jn_catalog_validate(e, NULL, why, sizeof why), JN_ERR_INVALID);
    assert_null(strchr(why, '\n'));
    assert_non_null(strstr(why, "'a?b'"));
    json_object_put(e);

    /* A small buffer is cut, still NUL-terminated. */
    char tiny[16];
    e = parse(oauth2_base);
    set_path(e, "logo", "1");
    assert_int_equal(jn_catalog_validate(e, NULL, tiny, sizeof tiny), JN_ERR_INVALID);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    json_object_put(e);
}

static void test_valid_variants(void **state)
{
    (void)state;
    /* Things the schema allows that a too-strict validator might refuse. */
    static const struct {
        const char *base, *path, *value;
    } ok[] = {
        /* exact hosts beside suffixes; a host that ends with a port */
        {oauth2_base, "connection_config.subdomain.host_suffixes",
         "[\"acme.com\", \".acme.com\", \".acme-eu.co.uk\"]"},
        {oauth2_base, "proxy.base_url", "\"https://${connectionConfig.subdomain}.acme.com:8443\""},
        /* a non-secret value beside credentials, in a header whose name is not a secret's */
        {oauth2_base, "proxy.headers.x-tenant", "\"${connectionConfig.subdomain}\""},
        {oauth2_base, "proxy.headers.accept",
         "\"application/json; tenant=${connectionConfig.subdomain}\""},
        /* a connection_config value in a path needs a pattern too, and has one */
        {oauth2_base, "proxy.verification.endpoints", "[\"/t/${connectionConfig.subdomain}\"]"},
        /* header-only values need no pattern: audience in cc_base has none */
        {cc_base, "default_scopes", "[\"a\", \"b\"]"},
        {api_key_base, "proxy.query", "{\"key\": \"${apiKey}\"}"},
        {api_key_base, "proxy.headers",
         "{\"authorization\": \"Basic ${base64(${apiKey}:)}\", \"x-a\": \"\"}"},
        {oauth2_base, "proxy.headers.x-shopify-access-token", "\"${accessToken}\""},
        {oauth2_base, "token_expiration_buffer", "0"},
        {oauth2_base, "proxy.retry.error_code", "[\"403\", \"1xx\", \"599\"]"},
        {oauth2_base, "connection_config.subdomain.pattern",
         "\"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\\\\.[a-z]+)*$\""},
        {oauth2_base, "connection_config.subdomain.pattern", "\"^[]a-z0-9-]+$\""},
        {none_base, "proxy", NULL},
        {basic_base, "credentials.password.default", "\"\""},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        json_object *e = parse(ok[i].base);
        char why[512] = "";
        set_path(e, ok[i].path, ok[i].value);
        if (jn_catalog_validate(e, NULL, why, sizeof why) != JN_OK)
            fail_msg("variant %zu (%s): %s", i, ok[i].path, why);
        json_object_put(e);
    }
    /* Variants that need a field of their own. */
    static const struct {
        const char *base, *path, *value, *field, *spec;
    } ok2[] = {
        /* a URL alternative that starts with a placeholder holding the origin */
        {oauth2_base, "proxy.base_url", "\"${connectionConfig.origin} || https://api.acme.com\"",
         "connection_config.origin",
         "{\"type\": \"string\", \"pattern\": \"^https://[a-z0-9.-]+$\", \"automated\": true,"
         " \"host_suffixes\": [\".acme.com\"], \"example\": \"https://eu.acme.com\"}"},
        /* a field in a host held to an enum rather than host_suffixes */
        {oauth2_base, "proxy.base_url", "\"https://api.${connectionConfig.region}.acme.com\"",
         "connection_config.region",
         "{\"type\": \"string\", \"enum\": [\"eu\", \"us\"], \"pattern\": \"^(eu|us)$\"}"},
    };
    for (size_t i = 0; i < sizeof ok2 / sizeof ok2[0]; i++) {
        json_object *e = parse(ok2[i].base);
        char why[512] = "";
        set_path(e, ok2[i].path, ok2[i].value);
        set_path(e, ok2[i].field, ok2[i].spec);
        if (jn_catalog_validate(e, NULL, why, sizeof why) != JN_OK)
            fail_msg("variant with a field %zu (%s): %s", i, ok2[i].field, why);
        json_object_put(e);
    }
}

/* proxy.headers, proxy.query and the *_params objects are capped, so a custom provider
 * cannot make request building grow without bound. */
static void test_template_maps_capped(void **state)
{
    (void)state;
    static const char *const maps[] = {"proxy.headers", "proxy.query", "authorization_params",
                                       "token_params", "refresh_params"};
    for (size_t m = 0; m < sizeof maps / sizeof maps[0]; m++) {
        for (int n = JN_CATALOG_MAX_TEMPLATES; n <= JN_CATALOG_MAX_TEMPLATES + 1; n++) {
            json_object *e = parse(oauth2_base), *map = json_object_new_object();
            if (strcmp(maps[m], "refresh_params") == 0)
                json_object_object_add(map, "grant_type", json_object_new_string("refresh_token"));
            for (int i = json_object_object_length(map); i < n; i++) {
                char name[32];
                snprintf(name, sizeof name, "x-h%d", i);
                json_object_object_add(map, name, json_object_new_string("v"));
            }
            const char *dot = strchr(maps[m], '.');
            json_object *parent = e;
            if (dot)
                json_object_object_get_ex(e, "proxy", &parent);
            json_object_object_add(parent, dot ? dot + 1 : maps[m], map);
            char why[512] = "";
            jn_err_t err = jn_catalog_validate(e, NULL, why, sizeof why);
            if (n <= JN_CATALOG_MAX_TEMPLATES && err != JN_OK)
                fail_msg("%s with %d entries: %s", maps[m], n, why);
            if (n > JN_CATALOG_MAX_TEMPLATES &&
                (err != JN_ERR_INVALID || !strstr(why, maps[m]) || !strstr(why, "at most 32")))
                fail_msg("%s with %d entries: %s", maps[m], n, why);
            json_object_put(e);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_loads),           cmocka_unit_test(test_bases_are_valid),
        cmocka_unit_test(test_add_get_conflict),        cmocka_unit_test(test_defects),
        cmocka_unit_test(test_expected_name_and_shape), cmocka_unit_test(test_valid_variants),
        cmocka_unit_test(test_template_maps_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
