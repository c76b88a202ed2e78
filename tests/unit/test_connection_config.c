/* Unit tests for common/providers/connection_config.c: who may set which connection_config
 * values, the hosts a value may lead to, enum and pattern at run time, the fail-closed
 * answer for a host field without an allow-list, and the shared rules cache under threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/catalog.h"
#include "providers/connection_config.h"

static jn_catalog_t *catalog;

static int setup(void **state)
{
    (void)state;
    char why[512] = "";
    if (jn_catalog_load_builtin(&catalog, why, sizeof why) != JN_OK)
        fail_msg("%s", why);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_catalog_free(catalog);
    return 0;
}

static json_object *provider(const char *name)
{
    json_object *p = jn_catalog_get(catalog, name);
    if (!p)
        fail_msg("no provider '%s'", name);
    return p;
}

/* Checks {key: value} from source; want JN_OK or JN_ERR_INVALID, and on refusal the field
 * error names the field and mentions `mention` (when not NULL). */
static void expect(json_object *p, const char *key, const char *value, jn_conncfg_source_t source,
                   jn_err_t want, const char *mention)
{
    json_object *config = json_object_new_object();
    json_object_object_add(config, key, json_object_new_string(value));
    jn_field_error_t e = {{0}, {0}};
    jn_err_t err = jn_connection_config_check(p, config, source, &e);
    json_object_put(config);
    if (err != want)
        fail_msg("%s='%s' (source %d): got %s, want %s (%s: %s)", key, value, (int)source,
                 jn_err_str(err), jn_err_str(want), e.path, e.message);
    if (err) {
        char path[160];
        snprintf(path, sizeof path, "connection_config.%s", key);
        if (strcmp(e.path, path) != 0)
            fail_msg("%s='%s': error names '%s'", key, value, e.path);
        if (mention && !strstr(e.message, mention))
            fail_msg("%s='%s': '%s' does not mention '%s'", key, value, e.message, mention);
    }
}

/* The review's first finding: the end user chose where the developer's client secret went. */
static void test_salesforce_hostname_is_held_to_salesforce(void **state)
{
    (void)state;
    json_object *sf = provider("salesforce");
    static const char *const refused[] = {
        "attacker.example.com",
        "my.salesforce.com",                       /* the suffix alone is no org */
        "acme.my.salesforce.com.attacker.example", /* a suffix is matched at the end */
        "acmemy.salesforce.com",
        "login.salesforce.com.attacker.example",
        "attacker.example.com#.my.salesforce.com",
        "attacker.example.com/.my.salesforce.com",
        "attacker.example.com:443",
        "user@acme.my.salesforce.com",
        "acme.lightning.force.com",
        "127.0.0.1",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        expect(sf, "hostname", refused[i], JN_CONNCFG_END_USER, JN_ERR_INVALID, NULL);
        expect(sf, "hostname", refused[i], JN_CONNCFG_DEVELOPER, JN_ERR_INVALID, NULL);
        expect(sf, "hostname", refused[i], JN_CONNCFG_VALUES, JN_ERR_INVALID, NULL);
    }
    expect(sf, "hostname", "attacker.example.com", JN_CONNCFG_END_USER, JN_ERR_INVALID,
           "'attacker.example.com' is not a host this provider allows");
    static const char *const admitted[] = {
        "login.salesforce.com", "test.salesforce.com", "acme.my.salesforce.com",
        "acme.sandbox.my.salesforce.com", "ACME.My.Salesforce.com"};
    for (size_t i = 0; i < sizeof admitted / sizeof admitted[0]; i++)
        expect(sf, "hostname", admitted[i], JN_CONNCFG_END_USER, JN_OK, NULL);
    /* Empty means "not given": the template falls back to login.salesforce.com. */
    expect(sf, "hostname", "", JN_CONNCFG_END_USER, JN_OK, NULL);
}

static void test_every_catalog_host_field_is_held(void **state)
{
    (void)state;
    static const struct {
        const char *provider, *key, *good, *bad;
    } cases[] = {
        {"zendesk", "subdomain", "acme", "evil.com/x?"},
        {"zendesk", "subdomain", "acme", "evil.com#"},
        {"shopify", "subdomain", "acme-store", "evil.example"},
        {"auth0-cc", "hostname", "acme.us.auth0.com", "attacker.example.com"},
        {"gitlab-pat", "hostname", "acme.gitlab-dedicated.com", "gitlab.attacker.example"},
        {"salesforce-cc", "hostname", "acme.my.salesforce.com", "login.salesforce.com"},
        {"sentry", "hostname", "de.sentry.io", "sentry.attacker.example"},
        {"intercom", "region", "eu", "attacker.example/"},
        {"mailgun", "region", "api.eu", "attacker.example"},
        {"posthog", "subdomain", "eu", "attacker"},
        {"algolia", "APP_ID", "ABCDEF1234", "EVIL.EXAMPLE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *p = provider(cases[i].provider);
        expect(p, cases[i].key, cases[i].good, JN_CONNCFG_END_USER, JN_OK, NULL);
        expect(p, cases[i].key, cases[i].bad, JN_CONNCFG_END_USER, JN_ERR_INVALID, NULL);
    }
}

/* enum was declared but never enforced: Datadog's site took any domain. */
static void test_enum_is_enforced(void **state)
{
    (void)state;
    json_object *dd = provider("datadog");
    expect(dd, "siteParameter", "datadoghq.eu", JN_CONNCFG_END_USER, JN_OK, NULL);
    expect(dd, "siteParameter", "ap2.datadoghq.com", JN_CONNCFG_DEVELOPER, JN_OK, NULL);
    expect(dd, "siteParameter", "evil.example", JN_CONNCFG_END_USER, JN_ERR_INVALID,
           "'evil.example' is not one of 'datadoghq.com'");
    expect(dd, "siteParameter", "evil.example", JN_CONNCFG_DEVELOPER, JN_ERR_INVALID, NULL);
    expect(dd, "siteParameter", "evil.example", JN_CONNCFG_VALUES, JN_ERR_INVALID, NULL);
    expect(dd, "siteParameter", "DATADOGHQ.EU", JN_CONNCFG_END_USER, JN_ERR_INVALID, NULL);
    /* The application key is a credential now, not a setting. */
    expect(dd, "applicationKey", "0123456789abcdef0123456789abcdef01234567", JN_CONNCFG_END_USER,
           JN_ERR_INVALID, "is not a setting of this provider");
}

/* Who may set what. */
static void test_sources(void **state)
{
    (void)state;
    json_object *sf = provider("salesforce");
    /* automated: filled from the token answer, never by the end user */
    expect(sf, "instance_url", "https://acme.my.salesforce.com", JN_CONNCFG_END_USER,
           JN_ERR_INVALID, "filled in automatically");
    expect(sf, "instance_url", "https://acme.my.salesforce.com", JN_CONNCFG_DEVELOPER, JN_OK, NULL);
    expect(sf, "instance_url", "https://acme.my.salesforce.com", JN_CONNCFG_PROVIDER, JN_OK, NULL);
    expect(sf, "instance_url", "https://attacker.example", JN_CONNCFG_DEVELOPER, JN_ERR_INVALID,
           "'attacker.example'");
    expect(sf, "instance_url", "https://attacker.example", JN_CONNCFG_PROVIDER, JN_ERR_INVALID,
           NULL);
    /* undeclared keys */
    for (int s = JN_CONNCFG_END_USER; s <= JN_CONNCFG_PROVIDER; s++)
        expect(sf, "subdomain", "acme", (jn_conncfg_source_t)s, JN_ERR_INVALID,
               "is not a setting of this provider");
    expect(sf, "subdomain", "acme", JN_CONNCFG_VALUES, JN_OK, NULL);
    /* a token answer may bring what token_response_metadata lists, declared or not */
    json_object *pd = provider("pipedrive");
    expect(pd, "api_domain", "https://acme.pipedrive.com", JN_CONNCFG_PROVIDER, JN_OK, NULL);
    expect(pd, "api_domain", "https://acme.pipedrive.com", JN_CONNCFG_END_USER, JN_ERR_INVALID,
           NULL);
    expect(pd, "api_domain", "https://attacker.example", JN_CONNCFG_PROVIDER, JN_ERR_INVALID,
           "would send requests to 'attacker.example'");
    json_object *qb = provider("quickbooks");
    expect(qb, "realmId", "123456", JN_CONNCFG_DEVELOPER, JN_OK, NULL);
    expect(qb, "realmId", "123456", JN_CONNCFG_END_USER, JN_ERR_INVALID, NULL);

    json_object *custom =
        json_tokener_parse("{\"token_response_metadata\": [\"team.id\"], \"connection_config\": "
                           "{\"region\": {\"type\": \"string\", \"optional\": true}}}");
    expect(custom, "team.id", "T123", JN_CONNCFG_PROVIDER, JN_OK, NULL);
    expect(custom, "team.id", "T123", JN_CONNCFG_DEVELOPER, JN_ERR_INVALID, NULL);
    expect(custom, "region", "eu", JN_CONNCFG_END_USER, JN_OK, NULL);
    json_object_put(custom);
}

/* A value that comes with a whole origin (scheme and host). */
static void test_origin_values(void **state)
{
    (void)state;
    json_object *pd = provider("pipedrive");
    static const char *const refused[] = {
        "acme.pipedrive.com",              /* no scheme */
        "ftp://acme.pipedrive.com",        /* not http(s) */
        "https://acme.pipedrive.com:8443", /* a port */
        "https://user@acme.pipedrive.com", /* user info */
        "https://acme.pipedrive.com.attacker.example",
        "https://attacker.example?.pipedrive.com", /* the host ends at '?' */
        "https://pipedrive.com",                   /* the suffix alone */
        "https://",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        expect(pd, "api_domain", refused[i], JN_CONNCFG_DEVELOPER, JN_ERR_INVALID, NULL);
}

static void test_value_basics(void **state)
{
    (void)state;
    json_object *z = provider("zendesk");
    expect(z, "subdomain", "ac\r\nme", JN_CONNCFG_DEVELOPER, JN_ERR_INVALID, "control characters");
    /* Headers get config values too: no line breaks, whatever the pattern. */
    json_object *custom =
        json_tokener_parse("{\"connection_config\": {\"tenant\": {\"type\": \"string\"}}}");
    expect(custom, "tenant", "a\r\nX-Injected: 1", JN_CONNCFG_VALUES, JN_ERR_INVALID,
           "control characters");
    char big[JN_CONNCFG_VALUE_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect(custom, "tenant", big, JN_CONNCFG_END_USER, JN_ERR_INVALID, "longer than");
    big[JN_CONNCFG_VALUE_MAX] = '\0';
    expect(custom, "tenant", big, JN_CONNCFG_END_USER, JN_OK, NULL);
    json_object_put(custom);

    json_object *config = json_tokener_parse("{\"subdomain\": 5}");
    jn_field_error_t e;
    assert_int_equal(jn_connection_config_check(z, config, JN_CONNCFG_DEVELOPER, &e),
                     JN_ERR_INVALID);
    assert_string_equal(e.path, "connection_config.subdomain");
    assert_non_null(strstr(e.message, "must be a string"));
    json_object_put(config);
    config = json_tokener_parse("[\"subdomain\"]");
    assert_int_equal(jn_connection_config_check(z, config, JN_CONNCFG_DEVELOPER, &e),
                     JN_ERR_INVALID);
    assert_string_equal(e.path, "connection_config");
    json_object_put(config);
    assert_int_equal(jn_connection_config_check(z, NULL, JN_CONNCFG_END_USER, &e), JN_OK);
    /* pattern, at run time */
    expect(provider("bamboohr-basic"), "subdomain", "../admin", JN_CONNCFG_END_USER, JN_ERR_INVALID,
           "does not match");
}

/* A provider defined before host_suffixes existed (or never validated) fails closed. */
static void test_unconstrained_host_admits_nothing(void **state)
{
    (void)state;
    json_object *old = json_tokener_parse(
        "{\"auth_mode\": \"OAUTH2\", \"token_url\": \"https://${connectionConfig.host}/token\","
        " \"proxy\": {\"base_url\": \"https://${connectionConfig.sub}.example.com\"},"
        " \"connection_config\": {\"host\": {\"type\": \"string\", \"pattern\": \"^[a-z.]+$\"}}}");
    for (int s = JN_CONNCFG_END_USER; s <= JN_CONNCFG_VALUES; s++)
        expect(old, "host", "example.com", (jn_conncfg_source_t)s, JN_ERR_INVALID,
               "neither enum nor host_suffixes");
    /* an undeclared field in a host: even a stored value is refused */
    expect(old, "sub", "acme", JN_CONNCFG_VALUES, JN_ERR_INVALID, "does not declare 'sub'");
    json_object_put(old);

    json_object *two = json_tokener_parse(
        "{\"token_url\": \"https://${connectionConfig.a}${connectionConfig.b}.example.com\","
        " \"connection_config\": {\"a\": {\"type\": \"string\", \"host_suffixes\": [\".a.com\"]},"
        "                         \"b\": {\"type\": \"string\", \"host_suffixes\": "
        "[\".a.com\"]}}}");
    expect(two, "a", "x", JN_CONNCFG_VALUES, JN_ERR_INVALID, "cannot be judged");
    json_object_put(two);
}

static void test_require(void **state)
{
    (void)state;
    jn_field_error_t e;
    json_object *config = json_tokener_parse("{\"subdomain\": \"\"}");
    assert_int_equal(jn_connection_config_require(provider("zendesk"), config, &e), JN_ERR_INVALID);
    assert_string_equal(e.path, "connection_config.subdomain");
    assert_non_null(strstr(e.message, "required"));
    assert_int_equal(jn_connection_config_require(provider("zendesk"), NULL, &e), JN_ERR_INVALID);
    json_object_put(config);
    /* optional and automated fields are not required */
    assert_int_equal(jn_connection_config_require(provider("salesforce"), NULL, &e), JN_OK);
    assert_int_equal(jn_connection_config_require(provider("github"), NULL, &e), JN_OK);
}

static void test_from_token(void **state)
{
    (void)state;
    json_object *p = json_tokener_parse(
        "{\"token_response_metadata\": [\"instance_url\", \"team.id\", \"team.admin\","
        " \"missing.x\", \"count\", \"deep.a.b.c\"]}");
    json_object *answer = json_tokener_parse(
        "{\"access_token\": \"at\", \"instance_url\": \"https://acme.my.salesforce.com\","
        " \"team\": {\"id\": \"T1\", \"admin\": true}, \"count\": 3, \"deep\": {\"a\": \"flat\"}}");
    json_object *meta = jn_connection_config_from_token(p, answer);
    assert_string_equal(json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE),
                        "{\"instance_url\":\"https://acme.my.salesforce.com\",\"team.id\":\"T1\","
                        "\"team.admin\":\"true\"}");
    json_object_put(meta);
    meta = jn_connection_config_from_token(provider("github"), answer);
    assert_int_equal(json_object_object_length(meta), 0);
    json_object_put(meta);
    meta = jn_connection_config_from_token(p, NULL);
    assert_int_equal(json_object_object_length(meta), 0);
    json_object_put(meta);
    json_object_put(answer);
    json_object_put(p);
}

/* Writes each slot as field[before|after] or field(origin) after what got holds. */
static jn_err_t describe_slot(const jn_conncfg_host_slot_t *s, void *ud)
{
    char *got = ud;
    size_t n = strlen(got);
    if (s->origin)
        snprintf(got + n, 256 - n, "%s%s(origin)", n ? " " : "", s->field);
    else
        snprintf(got + n, 256 - n, "%s%s[%.*s|%.*s]", n ? " " : "", s->field, (int)s->before_len,
                 s->before, (int)s->after_len, s->after);
    return JN_OK;
}

static void test_host_slots(void **state)
{
    (void)state;
    static const struct {
        const char *tmpl, *want;
    } cases[] = {
        {"https://${connectionConfig.sub}.zendesk.com/api", "sub[|.zendesk.com]"},
        {"https://api.${connectionConfig.site}/api", "site[api.|]"},
        {"${connectionConfig.origin}/api || https://${connectionConfig.host}",
         "origin(origin) host[|]"},
        {"https://${connectionConfig.h}:8443/x", "h[|]"},
        {"https://a.com/${connectionConfig.path}", ""},
        {"https://a.com?q=${connectionConfig.q}", ""},
        {"http://x-${connectionConfig.a}-y.example.com || https://b.com", "a[x-|-y.example.com]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[256] = "", why[256] = "";
        if (jn_connection_config_host_slots(cases[i].tmpl, describe_slot, got, why, sizeof why))
            fail_msg("'%s': %s", cases[i].tmpl, why);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("'%s': got '%s', want '%s'", cases[i].tmpl, got, cases[i].want);
    }
    static const char *const refused[] = {
        "https://${connectionConfig.a}.${connectionConfig.b}.com",
        "${connectionConfig.a}.example.com",
        "https://${credentials.x}.example.com",
        "https://${base64(x)}.example.com",
        "https://u:${connectionConfig.p}@example.com",
        "https://example.com:${connectionConfig.port}/x",
        "https://${connectionConfig.h}:1@example.com",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char got[256] = "", why[256] = "";
        assert_int_equal(
            jn_connection_config_host_slots(refused[i], describe_slot, got, why, sizeof why),
            JN_ERR_INVALID);
        assert_true(why[0] != '\0');
    }
}

/* ---- the shared rules cache under threads ---- */

#define THREADS 8
#define ENTRIES 300 /* more than the cache holds: entries are evicted while in use */

static json_object *entries[ENTRIES];

static void *hammer(void *arg)
{
    size_t seed = (size_t)(uintptr_t)arg;
    for (int round = 0; round < 2000; round++) {
        size_t i = (seed * 7919 + (size_t)round * 104729) % ENTRIES;
        json_object *config = json_object_new_object();
        char good[32];
        snprintf(good, sizeof good, "t%zu", i);
        bool bad = round % 3 == 0;
        json_object_object_add(config, "sub", json_object_new_string(bad ? "evil.com/x" : good));
        jn_field_error_t e;
        jn_err_t err = jn_connection_config_check(entries[i], config, JN_CONNCFG_END_USER, &e);
        json_object_put(config);
        if ((err == JN_OK) == bad)
            return (void *)1;
    }
    return NULL;
}

static void test_cache_under_threads(void **state)
{
    (void)state;
    for (size_t i = 0; i < ENTRIES; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{\"proxy\": {\"base_url\": \"https://${connectionConfig.sub}.e%zu.example.com\"},"
                 " \"connection_config\": {\"sub\": {\"type\": \"string\","
                 " \"pattern\": \"^t%zu$|^evil\", \"host_suffixes\": [\".e%zu.example.com\"]}}}",
                 i, i, i);
        entries[i] = json_tokener_parse(text);
        assert_non_null(entries[i]);
    }
    pthread_t t[THREADS];
    for (size_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)(i + 1));
    int failures = 0;
    for (size_t i = 0; i < THREADS; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        failures += r != NULL;
    }
    for (size_t i = 0; i < ENTRIES; i++)
        json_object_put(entries[i]);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_salesforce_hostname_is_held_to_salesforce),
        cmocka_unit_test(test_every_catalog_host_field_is_held),
        cmocka_unit_test(test_enum_is_enforced),
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_origin_values),
        cmocka_unit_test(test_value_basics),
        cmocka_unit_test(test_unconstrained_host_admits_nothing),
        cmocka_unit_test(test_require),
        cmocka_unit_test(test_from_token),
        cmocka_unit_test(test_host_slots),
        cmocka_unit_test(test_cache_under_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
