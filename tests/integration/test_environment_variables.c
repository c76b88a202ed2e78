/*
 * Integration: an environment's variables through the real gateway, worker, Kafka and
 * PostgreSQL - set with /junction/environment/variables, read with Nango's
 * GET /environment-variables and by scripts with ctx:get_environment_variables().
 *
 * Proves: Nango's shapes; every bad name, value or body is refused with a clear error and
 * changes nothing stored; the count cap holds under concurrent writers; values are sealed
 * at rest and bound to their environment and name; one environment never reads, changes
 * or deletes another's (API and scripts alike); and no value ever reaches a log line of
 * the gateway or the worker, even at debug level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAX_SECRETS 64

static jn_test_gateway_t gw;
static jn_test_process_t worker;
static char worker_admin[64];
static char token[48];                /* unique to this run: every secret value carries it */
static char secrets[MAX_SECRETS][96]; /* every value this file stores, for the log check */
static int secret_count;

static const char *const service_env[] = {"JUNCTION_LOG_LEVEL=debug", NULL};

/* An action that reports what it sees without returning a value as such: each value
 * reversed, so that it proves the script read it whole. */
static const char read_env[] =
    "return {\n"
    "  type = 'action', description = 'reports the environment variables it sees',\n"
    "  exec = function(ctx)\n"
    "    local seen = json.array()\n"
    "    for i, v in ipairs(ctx:get_environment_variables()) do\n"
    "      seen[i] = { name = v.name, reversed = v.value:reverse(), length = #v.value }\n"
    "    end\n"
    "    return { seen = seen }\n"
    "  end,\n"
    "}\n";

/* A new secret value (remembered for the log check). */
static const char *secret(const char *label)
{
    if (secret_count == MAX_SECRETS)
        fail_msg("too many secrets in one test file");
    char *s = secrets[secret_count++];
    snprintf(s, sizeof secrets[0], "sv-%s-%s-%d", token, label, secret_count);
    return s;
}

/* A request with the raw answer: status, *text (new; free it) and *json (new or NULL). */
static long call(const char *key, const char *method, const char *path, const char *body,
                 char **text, json_object **json)
{
    char url[2048], auth[256];
    snprintf(url, sizeof url, "%s%s", gw.url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    char *out = NULL;
    long st = jn_test_http(method, url, headers, body, body ? strlen(body) : 0, &out);
    if (json)
        *json = out ? json_tokener_parse(out) : NULL;
    if (text)
        *text = out;
    else
        free(out);
    return st;
}

static void must(long got, long want, json_object *resp, const char *what)
{
    jn_test_expect_status(got, want, resp, what);
}

static void api_ok(const char *key, const char *method, const char *path, const char *body,
                   long want)
{
    json_object *resp = NULL;
    long st = call(key, method, path, body, NULL, &resp);
    must(st, want, resp, path);
    json_object_put(resp);
}

/* {"variables":[{"name": n, "value": v}...]} with n/v pairs from a NULL-terminated list. */
static char *set_body(const char *const *pairs)
{
    json_object *list = json_object_new_array();
    for (size_t i = 0; pairs[i]; i += 2) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(pairs[i]));
        json_object_object_add(o, "value", json_object_new_string(pairs[i + 1]));
        json_object_array_add(list, o);
    }
    json_object *body = json_object_new_object();
    json_object_object_add(body, "variables", list);
    char *text = strdup(json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
    json_object_put(body);
    return text;
}

static void replace_all(const char *key, const char *const *pairs)
{
    char *body = set_body(pairs);
    api_ok(key, "PUT", "/junction/environment/variables", body, 200);
    free(body);
}

/* The value Nango's GET /environment-variables gives name in key's environment, or NULL
 * (a new string). */
static char *public_value(const char *key, const char *name)
{
    json_object *resp = NULL;
    long st = call(key, "GET", "/environment-variables", NULL, NULL, &resp);
    must(st, 200, resp, "GET /environment-variables");
    assert_true(json_object_is_type(resp, json_type_array));
    char *out = NULL;
    for (size_t i = 0; i < json_object_array_length(resp); i++) {
        json_object *v = json_object_array_get_idx(resp, i);
        assert_int_equal(json_object_object_length(v), 2); /* exactly {name, value} */
        if (strcmp(jn_test_json_str(v, "name"), name) == 0)
            out = strdup(jn_test_json_str(v, "value"));
    }
    json_object_put(resp);
    return out;
}

static char *snapshot(void)
{
    return jn_test_sql_value(gw.db_url, "SELECT md5(coalesce(string_agg(v::text, '|' ORDER BY "
                                        "v.environment_id, v.name), '')) FROM "
                                        "environment_variables v");
}

/* An integration "reader" on the unauthenticated provider with connection c1 and the
 * read-env action, in key's environment. */
static void reader_for(const char *key)
{
    api_ok(key, "POST", "/integrations",
           "{\"provider\":\"unauthenticated\",\"unique_key\":\"reader\"}", 200);
    api_ok(key, "POST", "/connections",
           "{\"provider_config_key\":\"reader\",\"connection_id\":\"c1\","
           "\"credentials\":{\"type\":\"NONE\"}}",
           201);
    json_object *fn = json_object_new_object();
    json_object_object_add(fn, "name", json_object_new_string("read-env"));
    json_object_object_add(fn, "source", json_object_new_string(read_env));
    json_object *fns = json_object_new_array();
    json_object_array_add(fns, fn);
    json_object *body = json_object_new_object();
    json_object_object_add(body, "functions", fns);
    api_ok(key, "PUT", "/junction/integrations/reader/functions", json_object_to_json_string(body),
           200);
    json_object_put(body);
}

static int setup(void **state)
{
    (void)state;
    jn_test_unique("ev", token, sizeof token);
    jn_test_gateway_start(&gw, GATEWAY_BIN, service_env);
    reader_for(gw.dev_key);
    reader_for(gw.prod_key);
    jn_test_service_start(&worker, &gw, WORKER_BIN, "envvars_worker", service_env, worker_admin);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bool worker_clean = jn_test_service_stop(&worker, 30000);
    jn_test_gateway_stop(&gw);
    assert_true(worker_clean);
    return 0;
}

/* ---- the API ---- */

static void test_set_read_and_delete(void **state)
{
    (void)state;
    const char *api = secret("api"), *region = secret("region");
    const char *pairs[] = {"API_KEY", api, "region.eu-1", region, NULL};
    char *body = set_body(pairs);
    char *text = NULL;
    json_object *resp = NULL;
    long st = call(gw.dev_key, "PUT", "/junction/environment/variables", body, &text, &resp);
    free(body);
    must(st, 200, resp, "replace");
    /* The /junction answers name variables, never their values. */
    assert_null(strstr(text, api));
    assert_int_equal(json_object_array_length(jn_test_json_get(resp, "data")), 2);
    assert_string_equal(jn_test_json_str(resp, "data.0.name"), "API_KEY");
    assert_non_null(jn_test_json_str(resp, "data.0.created_at"));
    assert_null(jn_test_json_get(resp, "data.0.value"));
    free(text);
    json_object_put(resp);

    char *got = public_value(gw.dev_key, "API_KEY");
    assert_non_null(got);
    assert_string_equal(got, api);
    free(got);

    /* One more, then a new value for it: 201, then 200 keeping its creation date. */
    const char *one = secret("one"), *two = secret("two");
    char b[256];
    snprintf(b, sizeof b, "{\"value\":\"%s\"}", one);
    st = call(gw.dev_key, "PUT", "/junction/environment/variables/ONE", b, &text, &resp);
    must(st, 201, resp, "create one");
    assert_null(strstr(text, one));
    assert_string_equal(jn_test_json_str(resp, "data.name"), "ONE");
    char created[64];
    snprintf(created, sizeof created, "%s", jn_test_json_str(resp, "data.created_at"));
    free(text);
    json_object_put(resp);
    snprintf(b, sizeof b, "{\"value\":\"%s\"}", two);
    st = call(gw.dev_key, "PUT", "/junction/environment/variables/ONE", b, NULL, &resp);
    must(st, 200, resp, "update one");
    assert_string_equal(jn_test_json_str(resp, "data.created_at"), created);
    json_object_put(resp);
    got = public_value(gw.dev_key, "ONE");
    assert_string_equal(got, two);
    free(got);

    st = call(gw.dev_key, "GET", "/junction/environment/variables", NULL, &text, &resp);
    must(st, 200, resp, "names");
    assert_int_equal(json_object_array_length(jn_test_json_get(resp, "data")), 3);
    assert_null(strstr(text, two));
    free(text);
    json_object_put(resp);

    api_ok(gw.dev_key, "DELETE", "/junction/environment/variables/ONE", NULL, 200);
    st = call(gw.dev_key, "DELETE", "/junction/environment/variables/ONE", NULL, NULL, &resp);
    must(st, 404, resp, "delete twice");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "not_found");
    json_object_put(resp);
    assert_null(public_value(gw.dev_key, "ONE"));

    /* A replacement keeps the creation date of a name it keeps and drops the others. */
    const char *api2 = secret("api2");
    const char *pairs2[] = {"API_KEY", api2, NULL};
    replace_all(gw.dev_key, pairs2);
    got = public_value(gw.dev_key, "API_KEY");
    assert_string_equal(got, api2);
    free(got);
    assert_null(public_value(gw.dev_key, "region.eu-1"));

    /* Nango's route takes no query and no body; every route wants the secret key. */
    st = call(gw.dev_key, "GET", "/environment-variables?env=dev", NULL, NULL, &resp);
    must(st, 400, resp, "query");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "invalid_query_params");
    json_object_put(resp);
    st = call(gw.dev_key, "GET", "/environment-variables", "{}", NULL, &resp);
    must(st, 400, resp, "body");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "invalid_body");
    json_object_put(resp);
    const char *routes[][2] = {{"GET", "/environment-variables"},
                               {"GET", "/junction/environment/variables"},
                               {"PUT", "/junction/environment/variables"},
                               {"PUT", "/junction/environment/variables/X"},
                               {"DELETE", "/junction/environment/variables/API_KEY"}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        st = jn_test_api(&gw, routes[i][0], routes[i][1], NULL, "{}", &resp);
        must(st, 401, resp, routes[i][1]);
        json_object_put(resp);
        st = jn_test_api(&gw, routes[i][0], routes[i][1], "not-a-key", "{}", &resp);
        must(st, 401, resp, routes[i][1]);
        json_object_put(resp);
    }
    got = public_value(gw.dev_key, "API_KEY");
    assert_string_equal(got, api2);
    free(got);
}

/* ---- bad input ---- */

/* tmpl with its first "%s" replaced by value. */
static void fill(char *out, size_t cap, const char *tmpl, const char *value)
{
    const char *at = strstr(tmpl, "%s");
    if (!at) {
        snprintf(out, cap, "%s", tmpl);
        return;
    }
    snprintf(out, cap, "%.*s%s%s", (int)(at - tmpl), tmpl, value, at + 2);
}

static void test_bad_input_changes_nothing(void **state)
{
    (void)state;
    const char *keep = secret("keep");
    const char *pairs[] = {"KEEP", keep, NULL};
    replace_all(gw.dev_key, pairs);
    char *before = snapshot();
    const char *hidden = secret("hidden"); /* sent in bad requests: never echoed */

    char long_name[300], long_value[4100 * 2 + 1], over_value[4001 + 1], body[12000];
    memset(long_name, 'n', 257);
    long_name[257] = '\0';
    memset(over_value, 'v', 4001);
    over_value[4001] = '\0';
    /* 4000 two-byte characters: at the limit in characters though 8000 bytes. */
    for (int i = 0; i < 4000; i++)
        memcpy(long_value + 2 * i, "\xc3\xa9", 2);
    long_value[8000] = '\0';

    struct {
        const char *method, *path;
        const char *body;
        long status;
        const char *code;
    } cases[] = {
        {"PUT", "/junction/environment/variables", "not json", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables", "[]", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables", "{}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables", "{\"variables\":{}}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables", "{\"variables\":[],\"x\":1}", 400,
         "invalid_body"},
        {"PUT", "/junction/environment/variables", "{\"variables\":[5]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables", "{\"variables\":[{\"name\":\"A\"}]}", 400,
         "invalid_body"},
        {"PUT", "/junction/environment/variables", "{\"variables\":[{\"value\":\"%s\"}]}", 400,
         "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"A\",\"value\":\"%s\",\"extra\":1}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"1A\",\"value\":\"%s\"}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"a/b\",\"value\":\"%s\"}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"a b\",\"value\":\"%s\"}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"\\u00e9t\\u00e9\",\"value\":\"%s\"}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"\",\"value\":\"%s\"}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"A\",\"value\":\"%s\"},{\"name\":\"A\",\"value\":\"x\"}]}",
         400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"A\",\"value\":\"\"}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables", "{\"variables\":[{\"name\":\"A\",\"value\":5}]}",
         400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"A\",\"value\":null}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"A\",\"value\":\"%s\\u0000x\"}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables",
         "{\"variables\":[{\"name\":\"A\",\"value\":\"%s\xff\xfe\"}]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables/A", "{\"value\":\"\"}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables/A", "{\"value\":[\"%s\"]}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables/A", "{\"value\":\"%s\",\"name\":\"B\"}", 400,
         "invalid_body"},
        {"PUT", "/junction/environment/variables/A", "{\"Value\":\"%s\"}", 400, "invalid_body"},
        {"PUT", "/junction/environment/variables/1A", "{\"value\":\"%s\"}", 400,
         "invalid_uri_params"},
        {"PUT", "/junction/environment/variables/a%2Fb", "{\"value\":\"%s\"}", 400,
         "invalid_uri_params"},
        {"PUT", "/junction/environment/variables/%2E%2E", "{\"value\":\"%s\"}", 400,
         "invalid_uri_params"},
        {"PUT", "/junction/environment/variables/a%0Ab", "{\"value\":\"%s\"}", 400,
         "invalid_uri_params"},
        {"PUT", "/junction/environment/variables/A", "{\"value\":\"%s\\ud800\"}", 400,
         "invalid_body"},
        {"DELETE", "/junction/environment/variables/NOPE", NULL, 404, "not_found"},
        {"DELETE", "/junction/environment/variables/..%2F..%2Fintegrations", NULL, 404,
         "not_found"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].body)
            fill(body, sizeof body, cases[i].body, hidden);
        char *text = NULL;
        json_object *resp = NULL;
        long st = call(gw.dev_key, cases[i].method, cases[i].path, cases[i].body ? body : NULL,
                       &text, &resp);
        if (st != cases[i].status || !jn_test_json_str(resp, "error.code") ||
            strcmp(jn_test_json_str(resp, "error.code"), cases[i].code) != 0 ||
            !jn_test_json_str(resp, "error.message"))
            fail_msg("case %zu (%s %s %s): %ld %s", i, cases[i].method, cases[i].path,
                     cases[i].body ? body : "", st, text ? text : "");
        if (strstr(text, hidden))
            fail_msg("case %zu: the error shows the value: %s", i, text);
        free(text);
        json_object_put(resp);
        char *now = snapshot();
        if (strcmp(now, before) != 0)
            fail_msg("case %zu changed what is stored", i);
        free(now);
    }

    /* Sizes: a name of 257 characters, a value of 4001, and the whole set of 101. */
    const char *size_cases[3];
    char b1[600], b2[4200];
    snprintf(b1, sizeof b1, "{\"variables\":[{\"name\":\"%s\",\"value\":\"x\"}]}", long_name);
    snprintf(b2, sizeof b2, "{\"variables\":[{\"name\":\"A\",\"value\":\"%s\"}]}", over_value);
    json_object *many = json_object_new_array();
    for (int i = 0; i < 101; i++) {
        char n[16];
        snprintf(n, sizeof n, "V%d", i);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(n));
        json_object_object_add(o, "value", json_object_new_string("x"));
        json_object_array_add(many, o);
    }
    json_object *many_body = json_object_new_object();
    json_object_object_add(many_body, "variables", many);
    size_cases[0] = b1;
    size_cases[1] = b2;
    size_cases[2] = json_object_to_json_string(many_body);
    for (size_t i = 0; i < 3; i++) {
        json_object *resp = NULL;
        long st =
            call(gw.dev_key, "PUT", "/junction/environment/variables", size_cases[i], NULL, &resp);
        must(st, 400, resp, "size");
        assert_string_equal(jn_test_json_str(resp, "error.code"), "invalid_body");
        json_object_put(resp);
        char *now = snapshot();
        assert_string_equal(now, before);
        free(now);
    }
    json_object_put(many_body);
    char path[400];
    snprintf(path, sizeof path, "/junction/environment/variables/%s", long_name);
    json_object *resp = NULL;
    long st = call(gw.dev_key, "PUT", path, "{\"value\":\"x\"}", NULL, &resp);
    must(st, 400, resp, "a long name in the path");
    json_object_put(resp);
    st = call(gw.dev_key, "DELETE", path, NULL, NULL, &resp);
    must(st, 400, resp, "deleting a long name");
    json_object_put(resp);
    /* A body past the server's cap for JSON (1 MiB here) is refused before it is read whole;
     * one value of the largest size fits the route for one. */
    size_t big_len = (1u << 20) + 64;
    char *big = malloc(big_len + 1);
    int head = snprintf(big, big_len, "{\"variables\":[{\"name\":\"A\",\"value\":\"");
    memset(big + head, 'x', big_len - (size_t)head - 4);
    memcpy(big + big_len - 4, "\"}]}", 5);
    st = call(gw.dev_key, "PUT", "/junction/environment/variables", big, NULL, &resp);
    must(st, 413, resp, "over 1 MiB");
    json_object_put(resp);
    free(big);
    char *after = snapshot();
    assert_string_equal(after, before);
    free(after);

    /* At the limits: a 256-character name and 4000 characters of 2 bytes each. */
    long_name[256] = '\0';
    snprintf(body, sizeof body, "{\"variables\":[{\"name\":\"%s\",\"value\":\"%s\"}]}", long_name,
             long_value);
    st = call(gw.dev_key, "PUT", "/junction/environment/variables", body, NULL, &resp);
    must(st, 200, resp, "at the limits");
    json_object_put(resp);
    char *got = public_value(gw.dev_key, long_name);
    assert_non_null(got);
    assert_string_equal(got, long_value);
    free(got);
    free(before);
}

/* ---- the count cap ---- */

typedef struct {
    int n;
    long status;
} setter_t;

static void *set_one(void *arg)
{
    setter_t *s = arg;
    char path[96];
    snprintf(path, sizeof path, "/junction/environment/variables/RACE_%d", s->n);
    s->status = call(gw.dev_key, "PUT", path, "{\"value\":\"x\"}", NULL, NULL);
    return NULL;
}

static void test_count_cap(void **state)
{
    (void)state;
    /* 95 stored, 20 writers at once: exactly 5 get in. */
    json_object *list = json_object_new_array();
    for (int i = 0; i < 95; i++) {
        char n[16];
        snprintf(n, sizeof n, "V%d", i);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(n));
        json_object_object_add(o, "value", json_object_new_string("x"));
        json_object_array_add(list, o);
    }
    json_object *body = json_object_new_object();
    json_object_object_add(body, "variables", list);
    api_ok(gw.dev_key, "PUT", "/junction/environment/variables", json_object_to_json_string(body),
           200);
    json_object_put(body);
    enum { WRITERS = 20 };
    setter_t s[WRITERS];
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        s[i] = (setter_t){i, 0};
        pthread_create(&t[i], NULL, set_one, &s[i]);
    }
    int created = 0, refused = 0;
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
        created += s[i].status == 201;
        refused += s[i].status == 409;
    }
    assert_int_equal(created, 5);
    assert_int_equal(refused, WRITERS - 5);
    char *count = jn_test_sql_value(gw.db_url, "SELECT count(*) FROM environment_variables v JOIN "
                                               "environments e ON e.id = v.environment_id WHERE "
                                               "e.name = 'dev'");
    assert_string_equal(count, "100");
    free(count);
    /* Full: a new one is refused with a clear code, a stored one may still change. */
    json_object *resp = NULL;
    long st = call(gw.dev_key, "PUT", "/junction/environment/variables/ONE_MORE",
                   "{\"value\":\"x\"}", NULL, &resp);
    must(st, 409, resp, "the 101st");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "too_many_variables");
    json_object_put(resp);
    api_ok(gw.dev_key, "PUT", "/junction/environment/variables/V0", "{\"value\":\"y\"}", 200);
    /* Another environment has its own room. */
    api_ok(gw.prod_key, "PUT", "/junction/environment/variables/ONE_MORE", "{\"value\":\"x\"}",
           201);
    api_ok(gw.prod_key, "DELETE", "/junction/environment/variables/ONE_MORE", NULL, 200);
    const char *none[] = {NULL};
    replace_all(gw.dev_key, none);
}

/* ---- isolation and sealing ---- */

static void test_environments_are_isolated(void **state)
{
    (void)state;
    const char *dev_shared = secret("dev-shared"), *dev_only = secret("dev-only");
    const char *prod_shared = secret("prod-shared");
    const char *dev_pairs[] = {"SHARED", dev_shared, "DEV_ONLY", dev_only, NULL};
    const char *prod_pairs[] = {"SHARED", prod_shared, NULL};
    replace_all(gw.dev_key, dev_pairs);
    replace_all(gw.prod_key, prod_pairs);

    char *text = NULL;
    json_object *resp = NULL;
    long st = call(gw.prod_key, "GET", "/environment-variables", NULL, &text, &resp);
    must(st, 200, resp, "prod's variables");
    assert_int_equal(json_object_array_length(resp), 1);
    assert_string_equal(jn_test_json_str(resp, "0.value"), prod_shared);
    assert_null(strstr(text, dev_shared));
    assert_null(strstr(text, dev_only));
    free(text);
    json_object_put(resp);
    st = call(gw.prod_key, "GET", "/junction/environment/variables", NULL, &text, NULL);
    assert_int_equal(st, 200);
    assert_null(strstr(text, "DEV_ONLY"));
    free(text);

    /* prod can neither delete nor change dev's. */
    st = call(gw.prod_key, "DELETE", "/junction/environment/variables/DEV_ONLY", NULL, NULL, &resp);
    must(st, 404, resp, "prod deletes dev's");
    json_object_put(resp);
    api_ok(gw.prod_key, "PUT", "/junction/environment/variables/SHARED",
           "{\"value\":\"prod-changed\"}", 200);
    char *got = public_value(gw.dev_key, "SHARED");
    assert_string_equal(got, dev_shared);
    free(got);
    got = public_value(gw.dev_key, "DEV_ONLY");
    assert_string_equal(got, dev_only);
    free(got);
    const char *prod_again[] = {"SHARED", prod_shared, NULL};
    replace_all(gw.prod_key, prod_again);

    /* Sealed at rest: no stored row holds a value in clear. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM environment_variables v WHERE v::text LIKE '%%%s%%'", token);
    char *clear = jn_test_sql_value(gw.db_url, sql);
    assert_string_equal(clear, "0");
    free(clear);
    /* ... and bound to its row: dev's sealed value copied into prod's row does not open
     * there (a 500 that shows nothing), and prod's is fine once put back. */
    char *prod_sealed = jn_test_sql_value(
        gw.db_url, "SELECT value_sealed FROM environment_variables v JOIN environments e ON "
                   "e.id = v.environment_id WHERE e.name = 'prod' AND v.name = 'SHARED'");
    free(jn_test_sql_value(gw.db_url,
                           "UPDATE environment_variables p SET value_sealed = d.value_sealed FROM "
                           "environment_variables d, environments pe, environments de WHERE "
                           "pe.id = p.environment_id AND pe.name = 'prod' AND de.id = "
                           "d.environment_id AND de.name = 'dev' AND p.name = 'SHARED' AND "
                           "d.name = 'SHARED' RETURNING p.name"));
    st = call(gw.prod_key, "GET", "/environment-variables", NULL, &text, &resp);
    must(st, 500, resp, "a value moved between tenants");
    assert_string_equal(jn_test_json_str(resp, "error.code"), "server_error");
    assert_null(strstr(text, dev_shared));
    free(text);
    json_object_put(resp);
    snprintf(sql, sizeof sql,
             "UPDATE environment_variables v SET value_sealed = '%s' FROM environments e WHERE "
             "e.id = v.environment_id AND e.name = 'prod' AND v.name = 'SHARED' RETURNING v.name",
             prod_sealed);
    free(jn_test_sql_value(gw.db_url, sql));
    free(prod_sealed);
    got = public_value(gw.prod_key, "SHARED");
    assert_string_equal(got, prod_shared);
    free(got);
}

/* ---- scripts ---- */

/* Triggers read-env on key's connection c1; returns its output (new). */
static json_object *run_reader(const char *key)
{
    char url[128], auth[256];
    snprintf(url, sizeof url, "%s/action/trigger", gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *headers[] = {auth, "Connection-Id: c1", "Provider-Config-Key: reader",
                             "Content-Type: application/json", NULL};
    const char *body = "{\"action_name\":\"read-env\",\"input\":{}}";
    char *text = NULL;
    long st = jn_test_http("POST", url, headers, body, strlen(body), &text);
    json_object *out = text ? json_tokener_parse(text) : NULL;
    if (st != 200)
        fail_msg("read-env: %ld %s", st, text ? text : "");
    free(text);
    return out;
}

/* The reversed value read-env saw for name, or NULL. */
static const char *seen(json_object *out, const char *name)
{
    json_object *list = jn_test_json_get(out, "seen");
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *v = json_object_array_get_idx(list, i);
        if (strcmp(jn_test_json_str(v, "name"), name) == 0)
            return jn_test_json_str(v, "reversed");
    }
    return NULL;
}

static char *reversed(const char *s)
{
    size_t n = strlen(s);
    char *r = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        r[i] = s[n - 1 - i];
    r[n] = '\0';
    return r;
}

static void test_scripts_read_their_environment(void **state)
{
    (void)state;
    const char *dev_value = secret("script-dev"), *prod_value = secret("script-prod");
    const char *dev_pairs[] = {"TOKEN", dev_value, "DEV_ONLY", dev_value, NULL};
    const char *prod_pairs[] = {"TOKEN", prod_value, NULL};
    replace_all(gw.dev_key, dev_pairs);
    replace_all(gw.prod_key, prod_pairs);

    json_object *dev = run_reader(gw.dev_key);
    char *want = reversed(dev_value);
    assert_int_equal(json_object_array_length(jn_test_json_get(dev, "seen")), 2);
    assert_string_equal(seen(dev, "TOKEN"), want);
    free(want);
    json_object_put(dev);

    json_object *prod = run_reader(gw.prod_key);
    want = reversed(prod_value);
    assert_int_equal(json_object_array_length(jn_test_json_get(prod, "seen")), 1);
    assert_string_equal(seen(prod, "TOKEN"), want);
    assert_null(seen(prod, "DEV_ONLY"));
    free(want);
    json_object_put(prod);

    /* A change is seen by the next run, without restarting anything. */
    const char *later = secret("script-later");
    char body[256];
    snprintf(body, sizeof body, "{\"value\":\"%s\"}", later);
    api_ok(gw.prod_key, "PUT", "/junction/environment/variables/TOKEN", body, 200);
    prod = run_reader(gw.prod_key);
    want = reversed(later);
    assert_string_equal(seen(prod, "TOKEN"), want);
    free(want);
    json_object_put(prod);
    const char *none[] = {NULL};
    replace_all(gw.prod_key, none);
    prod = run_reader(gw.prod_key);
    assert_int_equal(json_object_array_length(jn_test_json_get(prod, "seen")), 0);
    json_object_put(prod);
}

/* ---- logs (last: it checks what every test before it did) ---- */

static void test_values_never_logged(void **state)
{
    (void)state;
    assert_true(secret_count > 5);
    jn_test_process_t *procs[] = {&gw.proc, &worker};
    const char *names[] = {"gateway", "worker"};
    /* What shows that each logged the work (by name) it did with the values. */
    const char *evidence[] = {"variable ONE created", "action read-env on reader/c1"};
    for (size_t p = 0; p < 2; p++) {
        char *log = jn_test_read_log(procs[p]);
        if (!strstr(log, evidence[p]))
            fail_msg("the %s's log does not show '%s'", names[p], evidence[p]);
        for (int i = 0; i < secret_count; i++) {
            if (strstr(log, secrets[i]))
                fail_msg("the %s's log shows the value %s", names[p], secrets[i]);
        }
        /* No value under any name: the token every value carries appears nowhere. */
        if (strstr(log, token))
            fail_msg("the %s's log shows a value (token %s)", names[p], token);
        free(log);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_read_and_delete),
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_count_cap),
        cmocka_unit_test(test_environments_are_isolated),
        cmocka_unit_test(test_scripts_read_their_environment),
        cmocka_unit_test(test_values_never_logged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
