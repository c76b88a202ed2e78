/*
 * Integration: deploying functions (Lua scripts) to integrations through the real
 * gateway and PostgreSQL. A deployment is all or nothing, keeps the previous version of
 * what it changes, never crosses environments, and every bad request leaves the stored
 * rows exactly as they were.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static jn_test_gateway_t gw;

static char *read_example(const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, file);
    return jn_test_read_file(path);
}

static void must(long got, long want, json_object *resp, const char *what)
{
    if (got != want)
        fail_msg("%s: status %ld, wanted %ld: %s", what, got, want,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
}

static void create_integration(const char *key, const char *secret, const char *unique_key)
{
    char body[256];
    snprintf(body, sizeof body, "{\"provider\":\"github\",\"unique_key\":\"%s\"}", unique_key);
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "POST", "/integrations", key ? key : secret, body, &resp);
    must(st, 200, resp, "create integration");
    json_object_put(resp);
}

static int setup(void **state)
{
    (void)state;
    const char *env[] = {"JUNCTION_MAX_BODY_BYTES=2097152", NULL};
    jn_test_gateway_start(&gw, GATEWAY_BIN, env);
    create_integration(gw.dev_key, NULL, "notes");
    create_integration(gw.dev_key, NULL, "dev-only");
    create_integration(gw.prod_key, NULL, "notes");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_gateway_stop(&gw);
    return 0;
}

/* A fingerprint of every stored function row. */
static char *snapshot(void)
{
    return jn_test_sql_value(gw.db_url, "SELECT md5(coalesce(string_agg(f::text, '|' ORDER BY "
                                        "f.id), '')) FROM functions f");
}

/* {"functions":[{"name": names[i], "source": sources[i]}...]} */
static char *deploy_body(const char *const *names, const char *const *sources, size_t n)
{
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(names[i]));
        json_object_object_add(o, "source", json_object_new_string(sources[i]));
        json_object_array_add(list, o);
    }
    json_object *body = json_object_new_object();
    json_object_object_add(body, "functions", list);
    char *text = strdup(json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
    json_object_put(body);
    return text;
}

static long deploy(const char *key, const char *integration, const char *const *names,
                   const char *const *sources, size_t n, json_object **resp)
{
    char path[256];
    snprintf(path, sizeof path, "/junction/integrations/%s/functions", integration);
    char *body = deploy_body(names, sources, n);
    long st = jn_test_api(&gw, "PUT", path, key, body, resp);
    free(body);
    return st;
}

static const char *str(json_object *o, const char *path)
{
    return jn_test_json_str(o, path);
}

static size_t array_len(json_object *o, const char *key)
{
    json_object *a = NULL;
    json_object_object_get_ex(o, key, &a);
    return a ? json_object_array_length(a) : 0;
}

static void expect_error(long got, long want, json_object *resp, const char *code,
                         const char *mention, const char *what)
{
    must(got, want, resp, what);
    const char *c = str(resp, "error.code");
    if (!c || strcmp(c, code) != 0)
        fail_msg("%s: code %s, wanted %s: %s", what, c ? c : "(none)", code,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
    const char *m = str(resp, "error.message");
    if (mention && (!m || !strstr(m, mention)))
        fail_msg("%s: message '%s' does not mention '%s'", what, m ? m : "", mention);
}

static void test_deploy_read_and_versions(void **state)
{
    (void)state;
    char *note = read_example("fake-provider/post-note.lua");
    char *items = read_example("fake-provider/fetch-items.lua");
    const char *names[] = {"post-note", "fetch-items"};
    const char *sources[] = {note, items};
    json_object *resp = NULL;
    long st = deploy(gw.dev_key, "notes", names, sources, 2, &resp);
    must(st, 200, resp, "first deployment");
    json_object *data = json_object_object_get(resp, "data");
    assert_int_equal(array_len(data, "added"), 2);
    assert_int_equal(array_len(data, "functions"), 2);
    assert_string_equal(str(resp, "data.functions.0.name"), "fetch-items");
    assert_string_equal(str(resp, "data.functions.0.type"), "sync");
    assert_string_equal(str(resp, "data.functions.1.version"), "1.0.0");
    assert_null(str(resp, "data.functions.1.previous"));
    char first_checksum[80];
    snprintf(first_checksum, sizeof first_checksum, "%s", str(resp, "data.functions.1.checksum"));
    json_object_put(resp);

    /* The same set again: nothing changes, no previous version appears. */
    char *before = snapshot();
    st = deploy(gw.dev_key, "notes", names, sources, 2, &resp);
    must(st, 200, resp, "same deployment");
    assert_int_equal(array_len(json_object_object_get(resp, "data"), "unchanged"), 2);
    assert_int_equal(array_len(json_object_object_get(resp, "data"), "added"), 0);
    json_object_put(resp);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* A new version of one function, the other dropped. */
    char *note2 = strdup(note);
    char *v = strstr(note2, "version = \"1.0.0\"");
    assert_non_null(v);
    memcpy(v, "version = \"1.0.1\"", 17);
    const char *names2[] = {"post-note"};
    const char *sources2[] = {note2};
    st = deploy(gw.dev_key, "notes", names2, sources2, 1, &resp);
    must(st, 200, resp, "second deployment");
    data = json_object_object_get(resp, "data");
    assert_int_equal(array_len(data, "changed"), 1);
    assert_int_equal(array_len(data, "removed"), 1);
    assert_string_equal(str(resp, "data.removed.0"), "fetch-items");
    json_object_put(resp);

    st = jn_test_api(&gw, "GET", "/junction/integrations/notes/functions/post-note", gw.dev_key,
                     NULL, &resp);
    must(st, 200, resp, "get function");
    assert_string_equal(str(resp, "data.version"), "1.0.1");
    assert_string_equal(str(resp, "data.previous.version"), "1.0.0");
    assert_string_equal(str(resp, "data.previous.checksum"), first_checksum);
    assert_string_equal(str(resp, "data.declaration.input.text"), "string");
    assert_string_equal(str(resp, "data.declaration.endpoint.method"), "POST");
    json_object_put(resp);

    char url[512], *code = NULL;
    snprintf(url, sizeof url, "%s/junction/integrations/notes/functions/post-note/code", gw.url);
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
    const char *headers[] = {auth, NULL};
    assert_int_equal(jn_test_http("GET", url, headers, NULL, 0, &code), 200);
    assert_string_equal(code, note2);
    free(code);
    snprintf(url, sizeof url,
             "%s/junction/integrations/notes/functions/post-note/code?version=previous", gw.url);
    assert_int_equal(jn_test_http("GET", url, headers, NULL, 0, &code), 200);
    assert_string_equal(code, note);
    free(code);
    snprintf(url, sizeof url, "%s/junction/integrations/notes/functions/post-note/code?version=v9",
             gw.url);
    assert_int_equal(jn_test_http("GET", url, headers, NULL, 0, &code), 400);
    free(code);

    st = jn_test_api(&gw, "GET", "/junction/integrations/notes/functions", gw.dev_key, NULL, &resp);
    must(st, 200, resp, "list");
    assert_int_equal(json_object_array_length(json_object_object_get(resp, "data")), 1);
    json_object_put(resp);

    /* Delete one function, then it is gone; deleting again is 404. */
    st = jn_test_api(&gw, "DELETE", "/junction/integrations/notes/functions/post-note", gw.dev_key,
                     NULL, &resp);
    must(st, 200, resp, "delete");
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/junction/integrations/notes/functions/post-note", gw.dev_key,
                     NULL, &resp);
    expect_error(st, 404, resp, "not_found", "post-note", "get deleted");
    json_object_put(resp);
    st = jn_test_api(&gw, "DELETE", "/junction/integrations/notes/functions/post-note", gw.dev_key,
                     NULL, &resp);
    expect_error(st, 404, resp, "not_found", NULL, "delete again");
    json_object_put(resp);
    free(note);
    free(note2);
    free(items);
}

static void test_one_bad_file_stores_nothing(void **state)
{
    (void)state;
    char *note = read_example("fake-provider/post-note.lua");
    char *items = read_example("fake-provider/fetch-items.lua");
    const char *names[] = {"post-note", "fetch-items"};
    const char *sources[] = {note, items};
    json_object *resp = NULL;
    long deployed = deploy(gw.dev_key, "notes", names, sources, 2, &resp);
    must(deployed, 200, resp, "good deployment");
    json_object_put(resp);
    char *before = snapshot();

    struct {
        const char *source;
        const char *mention;
    } bad[] = {
        {"return {\n  type = 'action',\n  description = = 'x',\n}", "broken:3: unexpected symbol"},
        {"local x = nil\nreturn x.y", "broken:2: attempt to index a nil value"},
        {"return { type = 'sync', description = 'x', frequency = '10s', models = { A = { id = "
         "'string' } }, exec = function() end }",
         "broken: frequency: '10s' is too frequent"},
        {"return { type = 'action', description = 'x', exec = function() end, oops = 1 }",
         "broken: oops: unknown field"},
        {"while true do end", "broken:1: cpu limit"},
        {"return 5", "broken: the script must return a table"},
        {"\x1bLuaT", "broken: attempt to load a binary chunk"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* The bad file sits between two good ones. */
        const char *n3[] = {"post-note", "broken", "fetch-items-2"};
        const char *s3[] = {note, bad[i].source, items};
        long st = deploy(gw.dev_key, "notes", n3, s3, 3, &resp);
        expect_error(st, 400, resp, "invalid_body", bad[i].mention, bad[i].source);
        assert_string_equal(str(resp, "error.errors.0.path.0"), "functions");
        assert_string_equal(str(resp, "error.errors.0.path.1"), "1");
        assert_string_equal(str(resp, "error.errors.0.path.2"), "source");
        json_object_put(resp);
        char *after = snapshot();
        assert_string_equal(before, after);
        free(after);
    }
    free(before);
    free(note);
    free(items);
}

static void test_bad_bodies(void **state)
{
    (void)state;
    char *before = snapshot();
    char big[700000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *too_big = NULL;
    {
        const char *n[] = {"big"};
        const char *s[] = {big};
        too_big = deploy_body(n, s, 1);
    }
    struct {
        const char *body;
        const char *mention;
    } cases[] = {
        {"not json", "invalid JSON"},
        {"[]", "object"},
        {"{}", "functions: is required"},
        {"{\"functions\":{}}", "functions: is required"},
        {"{\"functions\":[1]}", "functions.0: must be an object"},
        {"{\"functions\":[{\"name\":7,\"source\":\"x\"}]}", "functions.0.name"},
        {"{\"functions\":[{\"name\":\"a\"}]}", "functions.0.source: "},
        {"{\"functions\":[{\"name\":\"a\",\"source\":\"\"}]}", "functions.0.source"},
        {"{\"functions\":[{\"name\":\"../etc\",\"source\":\"x\"}]}", "functions.0.name: '../etc'"},
        {"{\"functions\":[{\"name\":\"a b\",\"source\":\"x\"}]}", "functions.0.name"},
        {"{\"functions\":[{\"name\":\"x\",\"source\":\"x\",\"extra\":1}]}", "extra"},
        {"{\"functions\":[],\"x\":1}", "x"},
        {"{\"functions\":[{\"name\":"
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
         "\"source\":\"x\"}]}",
         "functions.0.name"},
        {too_big, "functions.0.source: must be at most"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *resp = NULL;
        long st = jn_test_api(&gw, "PUT", "/junction/integrations/notes/functions", gw.dev_key,
                              cases[i].body, &resp);
        expect_error(st, 400, resp, "invalid_body", cases[i].mention, cases[i].body);
        json_object_put(resp);
    }
    free(too_big);
    /* Duplicate names, and too many functions. */
    const char *dn[] = {"same", "same"};
    const char *ds[] = {"return {}", "return {}"};
    json_object *resp = NULL;
    long st = deploy(gw.dev_key, "notes", dn, ds, 2, &resp);
    expect_error(st, 400, resp, "invalid_body", "functions.1.name: 'same' appears twice",
                 "duplicates");
    json_object_put(resp);
    const char *many_names[101], *many_sources[101];
    char name_buf[101][16];
    for (int i = 0; i < 101; i++) {
        snprintf(name_buf[i], sizeof name_buf[i], "f%d", i);
        many_names[i] = name_buf[i];
        many_sources[i] = "return {}";
    }
    st = deploy(gw.dev_key, "notes", many_names, many_sources, 101, &resp);
    expect_error(st, 400, resp, "invalid_body", "at most 100 functions", "too many");
    json_object_put(resp);
    /* Past the server's body cap. */
    char *huge = malloc(3u << 20);
    memset(huge, ' ', 3u << 20);
    huge[(3u << 20) - 1] = '\0';
    st = jn_test_api(&gw, "PUT", "/junction/integrations/notes/functions", gw.dev_key, huge, &resp);
    assert_int_equal(st, 413);
    json_object_put(resp);
    free(huge);
    /* An unknown integration. */
    const char *gn[] = {"x"};
    const char *gs[] = {"return {}"};
    st = deploy(gw.dev_key, "nope", gn, gs, 1, &resp);
    expect_error(st, 404, resp, "not_found", "nope", "unknown integration");
    json_object_put(resp);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_environments_are_isolated(void **state)
{
    (void)state;
    char *note = read_example("fake-provider/post-note.lua");
    const char *names[] = {"post-note"};
    const char *sources[] = {note};
    json_object *resp = NULL;
    long deployed = deploy(gw.dev_key, "dev-only", names, sources, 1, &resp);
    must(deployed, 200, resp, "dev deployment");
    json_object_put(resp);
    char *before = snapshot();
    /* prod has no integration "dev-only": every route answers 404. */
    long st = jn_test_api(&gw, "GET", "/junction/integrations/dev-only/functions", gw.prod_key,
                          NULL, &resp);
    expect_error(st, 404, resp, "not_found", NULL, "prod list");
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/junction/integrations/dev-only/functions/post-note", gw.prod_key,
                     NULL, &resp);
    expect_error(st, 404, resp, "not_found", NULL, "prod get");
    json_object_put(resp);
    st = jn_test_api(&gw, "DELETE", "/junction/integrations/dev-only/functions/post-note",
                     gw.prod_key, NULL, &resp);
    expect_error(st, 404, resp, "not_found", NULL, "prod delete");
    json_object_put(resp);
    st = deploy(gw.prod_key, "dev-only", names, sources, 1, &resp);
    expect_error(st, 404, resp, "not_found", NULL, "prod deploy");
    json_object_put(resp);
    /* prod's own "notes" is not dev's "notes". */
    st = jn_test_api(&gw, "GET", "/junction/integrations/notes/functions/post-note", gw.prod_key,
                     NULL, &resp);
    expect_error(st, 404, resp, "not_found", NULL, "prod get by shared key");
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/scripts/config", gw.prod_key, NULL, &resp);
    must(st, 200, resp, "prod config");
    for (size_t i = 0; i < json_object_array_length(resp); i++) {
        const char *k = str(json_object_array_get_idx(resp, i), "providerConfigKey");
        assert_string_not_equal(k, "dev-only");
    }
    json_object_put(resp);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* And no request without a key reaches anything. */
    const char *routes[][2] = {
        {"PUT", "/junction/integrations/notes/functions"},
        {"GET", "/junction/integrations/notes/functions"},
        {"GET", "/junction/integrations/notes/functions/post-note"},
        {"GET", "/junction/integrations/notes/functions/post-note/code"},
        {"DELETE", "/junction/integrations/notes/functions/post-note"},
        {"GET", "/scripts/config"},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        st = jn_test_api(&gw, routes[i][0], routes[i][1], NULL, "{}", &resp);
        expect_error(st, 401, resp, "missing_auth_header", NULL, routes[i][1]);
        json_object_put(resp);
    }
    free(note);
}

static void test_scripts_config(void **state)
{
    (void)state;
    char *note = read_example("fake-provider/post-note.lua");
    char *items = read_example("fake-provider/fetch-items.lua");
    const char *names[] = {"post-note", "fetch-items"};
    const char *sources[] = {note, items};
    json_object *resp = NULL;
    long deployed = deploy(gw.prod_key, "notes", names, sources, 2, &resp);
    must(deployed, 200, resp, "prod deployment");
    json_object_put(resp);
    long st = jn_test_api(&gw, "GET", "/scripts/config", gw.prod_key, NULL, &resp);
    must(st, 200, resp, "config");
    assert_true(json_object_is_type(resp, json_type_array));
    assert_int_equal(json_object_array_length(resp), 1);
    json_object *entry = json_object_array_get_idx(resp, 0);
    assert_string_equal(str(entry, "providerConfigKey"), "notes");
    assert_string_equal(str(entry, "provider"), "github");
    assert_int_equal(json_object_array_length(json_object_object_get(entry, "on-events")), 0);
    json_object *sync = json_object_array_get_idx(json_object_object_get(entry, "syncs"), 0);
    assert_string_equal(str(sync, "name"), "fetch-items");
    assert_string_equal(str(sync, "type"), "sync");
    assert_string_equal(str(sync, "runs"), "every 5 minutes");
    assert_string_equal(str(sync, "sync_type"), "full");
    assert_string_equal(str(sync, "returns.0"), "Item");
    assert_string_equal(str(sync, "models.0.name"), "Item");
    assert_non_null(str(sync, "last_deployed"));
    assert_string_equal(str(sync, "json_schema.definitions.Item.type"), "object");
    assert_true(json_object_get_boolean(json_object_object_get(sync, "track_deletes")));
    assert_true(json_object_get_boolean(json_object_object_get(sync, "auto_start")));
    json_object *act = json_object_array_get_idx(json_object_object_get(entry, "actions"), 0);
    assert_string_equal(str(act, "name"), "post-note");
    assert_string_equal(str(act, "type"), "action");
    assert_string_equal(str(act, "input"), "PostNoteInput"); /* 0.71's: the model's name */
    assert_string_equal(str(act, "source"), "standalone");
    assert_true(json_object_get_int64(json_object_object_get(act, "id")) > 0);
    assert_int_equal(json_object_array_length(json_object_object_get(act, "features")), 0);
    assert_null(json_object_object_get(act, "runs")); /* a sync's fields only on syncs */
    assert_string_equal(str(act, "returns.0"), "PostNoteOutput");
    assert_string_equal(str(act, "endpoints.0.method"), "POST");
    assert_string_equal(str(act, "endpoints.0.path"), "/notes");
    assert_string_equal(str(act, "version"), "1.0.0");
    assert_string_equal(str(act, "json_schema.definitions.PostNoteInput.properties.text.type"),
                        "string");
    json_object_put(resp);

    st = jn_test_api(&gw, "GET", "/scripts/config?format=openai", gw.prod_key, NULL, &resp);
    must(st, 200, resp, "openai config");
    /* As Nango: the syncs too (they take no parameters), then the actions. */
    assert_int_equal(json_object_array_length(json_object_object_get(resp, "data")), 2);
    assert_string_equal(str(resp, "data.0.name"), "fetch-items");
    assert_int_equal(json_object_array_length(jn_test_json_get(resp, "data.0.parameters.required")),
                     0);
    assert_string_equal(str(resp, "data.1.name"), "post-note");
    assert_string_equal(str(resp, "data.1.parameters.type"), "object");
    assert_string_equal(str(resp, "data.1.parameters.properties.text.type"), "string");
    assert_string_equal(str(resp, "data.1.parameters.required.0"), "text");
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/scripts/config?format=yaml", gw.prod_key, NULL, &resp);
    expect_error(st, 400, resp, "invalid_query_params", "format", "bad format");
    json_object_put(resp);
    free(note);
    free(items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deploy_read_and_versions),
        cmocka_unit_test(test_one_bad_file_stores_nothing),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_environments_are_isolated),
        cmocka_unit_test(test_scripts_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
