/*
 * Integration: Nango's public routes over deployed functions
 * (GET /integrations/:uniqueKey/functions[/:name[/code]], DELETE .../:name?type=), the
 * provider templates (GET /providers/:provider/templates) and the quickstart refusal,
 * through the real gateway and PostgreSQL.
 *
 * Proves Nango's shapes, filters and pagination; every malformed query or path (unknown
 * or repeated parameters, path tricks, sizes) answers Nango's 400 and touches nothing;
 * a function of another environment is never seen nor deleted; a deletion by the wrong
 * type removes nothing; and every example script is offered as a template.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static jn_test_gateway_t gw;

static const char action_src[] = "return { type = 'action', description = 'inline', exec = "
                                 "function(ctx) return {} end }\n";

static char *read_example(const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, file);
    return jn_test_read_file(path);
}

static void must(long got, long want, json_object *resp, const char *what)
{
    jn_test_expect_status(got, want, resp, what);
}

static void api_ok(const char *key, const char *method, const char *path, const char *body,
                   long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, method, path, key, body, &resp);
    must(st, want, resp, path);
    json_object_put(resp);
}

/* Deploys name/source pairs (NULL-terminated) to key's integration. */
static void deploy(const char *key, const char *integration, const char *const *pairs)
{
    json_object *list = json_object_new_array();
    for (size_t i = 0; pairs[i]; i += 2) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(pairs[i]));
        json_object_object_add(o, "source", json_object_new_string(pairs[i + 1]));
        json_object_array_add(list, o);
    }
    json_object *body = json_object_new_object();
    json_object_object_add(body, "functions", list);
    char path[256];
    snprintf(path, sizeof path, "/junction/integrations/%s/functions", integration);
    api_ok(key, "PUT", path, json_object_to_json_string(body), 200);
    json_object_put(body);
}

static int setup(void **state)
{
    (void)state;
    jn_test_gateway_start(&gw, GATEWAY_BIN, NULL);
    api_ok(gw.dev_key, "POST", "/integrations",
           "{\"provider\":\"github\",\"unique_key\":\"notes\"}", 200);
    api_ok(gw.dev_key, "POST", "/integrations",
           "{\"provider\":\"github\",\"unique_key\":\"other\"}", 200);
    api_ok(gw.prod_key, "POST", "/integrations",
           "{\"provider\":\"github\",\"unique_key\":\"notes\"}", 200);
    char *note = read_example("fake-provider/post-note.lua");
    char *items = read_example("fake-provider/fetch-items.lua");
    char *incremental = read_example("fake-provider/sync-items-incremental.lua");
    const char *dev[] = {"post-note", note,       "fetch-items", items, "sync-items-incremental",
                         incremental, "a_b",      action_src,    "aXb", action_src,
                         "scratch",   action_src, NULL};
    deploy(gw.dev_key, "notes", dev);
    const char *other[] = {"dev-other", action_src, NULL};
    deploy(gw.dev_key, "other", other);
    const char *prod[] = {"prod-only", action_src, "post-note", note, NULL};
    deploy(gw.prod_key, "notes", prod);
    free(note);
    free(items);
    free(incremental);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_gateway_stop(&gw);
    return 0;
}

static char *snapshot(void)
{
    return jn_test_sql_value(gw.db_url, "SELECT md5(coalesce(string_agg(f::text, '|' ORDER BY "
                                        "f.id), '')) FROM functions f");
}

static const char *str(json_object *o, const char *path)
{
    return jn_test_json_str(o, path);
}

static size_t len_at(json_object *o, const char *path)
{
    json_object *a = jn_test_json_get(o, path);
    return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

/* GET path as dev; checks the status and returns the answer (new). */
static json_object *get(const char *key, const char *path, long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "GET", path, key, NULL, &resp);
    must(st, want, resp, path);
    return resp;
}

static void expect_code(json_object *resp, const char *code, const char *what)
{
    const char *got = str(resp, "error.code");
    if (!got || strcmp(got, code) != 0 || !str(resp, "error.message"))
        fail_msg("%s: wanted %s: %s", what, code, json_object_to_json_string(resp));
}

/* ---- listing ---- */

static void test_list_shapes_and_order(void **state)
{
    (void)state;
    json_object *r = get(gw.dev_key, "/integrations/notes/functions", 200);
    assert_int_equal(len_at(r, "data"), 6);
    assert_string_equal(str(r, "pagination.total"), "6");
    assert_string_equal(str(r, "pagination.page"), "0");
    assert_string_equal(str(r, "pagination.limit"), "20");
    /* Nango's order: by type (actions first), then name. */
    const char *order[] = {"aXb",     "a_b",         "post-note",
                           "scratch", "fetch-items", "sync-items-incremental"};
    for (size_t i = 0; i < 6; i++) {
        char path[32];
        snprintf(path, sizeof path, "data.%zu.name", i);
        assert_string_equal(str(r, path), order[i]);
    }
    /* An action: ListedNangoActionFunction. */
    json_object *note = jn_test_json_get(r, "data.2");
    assert_string_equal(str(note, "type"), "action");
    assert_string_equal(str(note, "input"), "PostNoteInput");
    assert_string_equal(str(note, "returns.0"), "PostNoteOutput");
    assert_string_equal(str(note, "json_schema.definitions.PostNoteInput.properties.text.type"),
                        "string");
    assert_non_null(str(note, "description"));
    assert_true(json_object_get_int64(jn_test_json_get(note, "id")) > 0);
    assert_true(json_object_get_boolean(jn_test_json_get(note, "enabled")));
    assert_non_null(str(note, "last_deployed"));
    assert_string_equal(str(note, "source"), "standalone");
    assert_null(jn_test_json_get(note, "runs"));
    /* A sync: ListedNangoSyncFunction. */
    json_object *items = jn_test_json_get(r, "data.4");
    assert_string_equal(str(items, "type"), "sync");
    assert_string_equal(str(items, "runs"), "every 5 minutes");
    assert_true(json_object_get_boolean(jn_test_json_get(items, "auto_start")));
    assert_true(json_object_get_boolean(jn_test_json_get(items, "track_deletes")));
    assert_string_equal(str(items, "returns.0"), "Item");
    assert_string_equal(str(items, "json_schema.definitions.Item.type"), "object");
    assert_null(jn_test_json_get(items, "input")); /* no metadata model */
    json_object_put(r);

    /* Another integration and another environment list their own. */
    r = get(gw.dev_key, "/integrations/other/functions", 200);
    assert_int_equal(len_at(r, "data"), 1);
    assert_string_equal(str(r, "data.0.name"), "dev-other");
    json_object_put(r);
    r = get(gw.prod_key, "/integrations/notes/functions", 200);
    assert_int_equal(len_at(r, "data"), 2);
    assert_string_equal(str(r, "data.0.name"), "post-note");
    assert_string_equal(str(r, "data.1.name"), "prod-only");
    json_object_put(r);
}

static void test_list_filters_and_pages(void **state)
{
    (void)state;
    struct {
        const char *query;
        const char *names; /* the page, comma-separated */
        const char *total;
    } cases[] = {
        {"type=sync", "fetch-items,sync-items-incremental", "2"},
        {"type=action&limit=2", "aXb,a_b", "4"},
        {"type=on-event", "", "0"},
        {"search=ITEMS", "fetch-items,sync-items-incremental", "2"},
        {"search=%20%20note%20", "post-note", "1"},
        /* The search is text, never a pattern: _ and % are themselves. */
        {"search=a_b", "a_b", "1"},
        {"search=%25", "", "0"},
        {"search=%5C", "", "0"},
        {"limit=2", "aXb,a_b", "6"},
        {"limit=2&page=1", "post-note,scratch", "6"},
        {"limit=2&page=2", "fetch-items,sync-items-incremental", "6"},
        {"limit=2&page=3", "", "6"},
        {"page=1000000", "", "6"},
        {"limit=100", "aXb,a_b,post-note,scratch,fetch-items,sync-items-incremental", "6"},
        {"type=sync&search=incremental&page=0&limit=1", "sync-items-incremental", "1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "/integrations/notes/functions?%s", cases[i].query);
        json_object *r = get(gw.dev_key, path, 200);
        char names[512] = "";
        for (size_t k = 0; k < len_at(r, "data"); k++) {
            char at[32];
            snprintf(at, sizeof at, "data.%zu.name", k);
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", k ? "," : "", str(r, at));
        }
        if (strcmp(names, cases[i].names) != 0 ||
            strcmp(str(r, "pagination.total"), cases[i].total) != 0)
            fail_msg("?%s: got [%s] of %s, wanted [%s] of %s", cases[i].query, names,
                     str(r, "pagination.total"), cases[i].names, cases[i].total);
        json_object_put(r);
    }
}

/* ---- errors ---- */

static void test_bad_requests_touch_nothing(void **state)
{
    (void)state;
    char *before = snapshot();
    char long_name[300], long_path[400], long_search[400];
    snprintf(long_search, sizeof long_search, "/integrations/notes/functions?search=");
    memset(long_search + strlen(long_search), 'e', 256);
    long_search[strlen("/integrations/notes/functions?search=") + 256] = '\0';
    memset(long_name, 'n', 256);
    long_name[256] = '\0';
    struct {
        const char *method, *path;
        long status;
        const char *code;
    } cases[] = {
        {"GET", "/integrations/notes/functions?limit=0", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?limit=101", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?limit=1.5", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?page=-1", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?page=x", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?page=99999999999999999999", 400,
         "invalid_query_params"},
        {"GET", "/integrations/notes/functions?type=webhook", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?type=", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?search=%20%20", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?bogus=1", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?env=dev", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions?type=sync&type=action", 400, "invalid_query_params"},
        {"GET", "/integrations/no%2Fsuch/functions", 400, "invalid_uri_params"},
        {"GET", "/integrations/a%3Cb/functions", 400, "invalid_uri_params"},
        {"GET", "/integrations/nobody/functions", 404, "not_found"},
        {"GET", "/integrations/notes/functions/post-note?type=sync", 404, "not_found"},
        {"GET", "/integrations/notes/functions/post-note?type=on-event", 404, "not_found"},
        {"GET", "/integrations/notes/functions/post-note?type=x", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions/post-note?verbose=1", 400, "invalid_query_params"},
        {"GET", "/integrations/notes/functions/nobody", 404, "not_found"},
        {"GET", "/integrations/nobody/functions/post-note", 404, "not_found"},
        {"GET", "/integrations/notes/functions/..%2F..%2Fconnections", 400, "invalid_uri_params"},
        {"GET", "/integrations/notes/functions/%2E%2E", 400, "invalid_uri_params"},
        {"GET", "/integrations/notes/functions/post.note", 400, "invalid_uri_params"},
        {"GET", "/integrations/notes/functions/post%20note", 400, "invalid_uri_params"},
        {"GET", "/integrations/notes/functions/post-note%0A", 400, "invalid_uri_params"},
        {"GET", "/integrations/notes/functions/post-note/code?type=sync", 404, "not_found"},
        {"GET", "/integrations/notes/functions/post-note/code?version=previous", 400,
         "invalid_query_params"},
        {"GET", "/integrations/notes/functions/%2E%2E/code", 400, "invalid_uri_params"},
        {"DELETE", "/integrations/notes/functions/scratch", 400, "invalid_query_params"},
        {"DELETE", "/integrations/notes/functions/scratch?type=on-event", 400,
         "invalid_query_params"},
        {"DELETE", "/integrations/notes/functions/scratch?type=sync", 404, "not_found"},
        {"DELETE", "/integrations/notes/functions/fetch-items?type=action", 404, "not_found"},
        {"DELETE", "/integrations/notes/functions/scratch?type=action&x=1", 400,
         "invalid_query_params"},
        {"DELETE", "/integrations/notes/functions/nobody?type=action", 404, "not_found"},
        {"DELETE", "/integrations/nobody/functions/scratch?type=action", 404, "not_found"},
        {"DELETE", "/integrations/notes/functions/..%2Fother%2Ffunctions%2Fdev-other?type=action",
         400, "invalid_uri_params"},
        {"PUT", "/integrations/notes/functions/scratch", 405, "method_not_allowed"},
        {"POST", "/integrations/notes/functions", 405, "method_not_allowed"},
        {"GET", long_path, 404, "not_found"},
        {"GET", long_search, 400, "invalid_query_params"},
    };
    /* 255 characters are a name Nango's pattern allows (not found); 256 are not. */
    long_name[255] = '\0';
    snprintf(long_path, sizeof long_path, "/integrations/notes/functions/%s", long_name);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *resp = NULL;
        long st = jn_test_api(&gw, cases[i].method, cases[i].path, gw.dev_key, NULL, &resp);
        if (st != cases[i].status)
            fail_msg("case %zu (%s %s): %ld %s", i, cases[i].method, cases[i].path, st,
                     resp ? json_object_to_json_string(resp) : "");
        expect_code(resp, cases[i].code, cases[i].path);
        json_object_put(resp);
        char *now = snapshot();
        if (strcmp(now, before) != 0)
            fail_msg("case %zu changed the stored functions", i);
        free(now);
    }
    long_name[255] = 'n';
    snprintf(long_path, sizeof long_path, "/integrations/notes/functions/%s", long_name);
    json_object *resp = get(gw.dev_key, long_path, 400);
    expect_code(resp, "invalid_uri_params", "256 characters");
    json_object_put(resp);

    /* What curl would tidy away, sent raw: dot segments and a NUL stay what they are. */
    int port = jn_test_url_port(gw.url);
    char req[1024];
    const char *raw[][2] = {
        {"/integrations/../functions", "404"},
        {"/integrations/notes/functions/..", "400"},
        {"/integrations/notes/functions/../../../environment-variables", "404"},
        {"/integrations/notes/functions/post-note%00", "400"},
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: "
                 "close\r\n\r\n",
                 raw[i][0], gw.dev_key);
        jn_test_response_t r;
        int st = jn_test_raw_request(port, req, strlen(req), 5000, &r);
        if (st != atoi(raw[i][1]) || !r.body || !strstr(r.body, "\"error\""))
            fail_msg("raw %s: %d %s", raw[i][0], st, r.body ? r.body : "");
        jn_test_response_cleanup(&r);
    }

    /* Every route wants the secret key. */
    const char *routes[][2] = {{"GET", "/integrations/notes/functions"},
                               {"GET", "/integrations/notes/functions/post-note"},
                               {"GET", "/integrations/notes/functions/post-note/code"},
                               {"DELETE", "/integrations/notes/functions/scratch?type=action"},
                               {"GET", "/providers/github/templates"}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        long st = jn_test_api(&gw, routes[i][0], routes[i][1], NULL, NULL, &resp);
        must(st, 401, resp, routes[i][1]);
        json_object_put(resp);
    }
    char *now = snapshot();
    assert_string_equal(now, before);
    free(now);
    free(before);
}

/* ---- one function ---- */

static void test_get_code_and_delete(void **state)
{
    (void)state;
    json_object *r = get(gw.dev_key, "/integrations/notes/functions/post-note", 200);
    assert_string_equal(str(r, "data.name"), "post-note");
    assert_string_equal(str(r, "data.type"), "action");
    assert_string_equal(str(r, "data.source"), "standalone");
    json_object_put(r);
    r = get(gw.dev_key, "/integrations/notes/functions/fetch-items?type=sync", 200);
    assert_string_equal(str(r, "data.runs"), "every 5 minutes");
    json_object_put(r);

    char *note = read_example("fake-provider/post-note.lua");
    r = get(gw.dev_key, "/integrations/notes/functions/post-note/code", 200);
    assert_int_equal(json_object_object_length(r), 2);
    assert_string_equal(str(r, "type"), "action");
    assert_string_equal(str(r, "code"), note);
    json_object_put(r);
    r = get(gw.dev_key, "/integrations/notes/functions/post-note/code?type=action", 200);
    assert_string_equal(str(r, "code"), note);
    json_object_put(r);
    free(note);

    /* Deleted by Nango's route: gone from both APIs, the others untouched. */
    r = NULL;
    long st = jn_test_api(&gw, "DELETE", "/integrations/notes/functions/scratch?type=action",
                          gw.dev_key, NULL, &r);
    must(st, 200, r, "delete");
    assert_string_equal(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN),
                        "{\"data\":{\"success\":true}}");
    json_object_put(r);
    r = get(gw.dev_key, "/integrations/notes/functions/scratch", 404);
    json_object_put(r);
    r = get(gw.dev_key, "/junction/integrations/notes/functions/scratch", 404);
    json_object_put(r);
    r = get(gw.dev_key, "/integrations/notes/functions", 200);
    assert_string_equal(str(r, "pagination.total"), "5");
    json_object_put(r);
    r = NULL;
    st = jn_test_api(&gw, "DELETE", "/integrations/notes/functions/scratch?type=action", gw.dev_key,
                     NULL, &r);
    must(st, 404, r, "delete again");
    json_object_put(r);
    /* A sync is deleted with type=sync. */
    const char *pairs[] = {"temp-sync",
                           "return { type = 'sync', description = 's', frequency = '1h', models "
                           "= { T = { id = 'string' } }, exec = function(ctx) end }",
                           NULL};
    deploy(gw.dev_key, "other", pairs);
    api_ok(gw.dev_key, "DELETE", "/integrations/other/functions/temp-sync?type=sync", NULL, 200);
    r = get(gw.dev_key, "/integrations/other/functions", 200);
    assert_string_equal(str(r, "pagination.total"), "0");
    json_object_put(r);
    const char *back[] = {"dev-other", action_src, NULL};
    deploy(gw.dev_key, "other", back);
}

/* ---- isolation ---- */

static void test_other_environments_functions_are_unseen(void **state)
{
    (void)state;
    char *before = snapshot();
    /* dev's "other" integration does not exist for prod, by any route. */
    const char *paths[][2] = {
        {"GET", "/integrations/other/functions"},
        {"GET", "/integrations/other/functions/dev-other"},
        {"GET", "/integrations/other/functions/dev-other/code"},
        {"DELETE", "/integrations/other/functions/dev-other?type=action"},
        /* A name of dev's under prod's integration of the same key. */
        {"GET", "/integrations/notes/functions/fetch-items"},
        {"GET", "/integrations/notes/functions/fetch-items/code"},
        {"DELETE", "/integrations/notes/functions/fetch-items?type=sync"},
        {"DELETE", "/integrations/notes/functions/a_b?type=action"},
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        json_object *resp = NULL;
        char *text = NULL;
        char url[512], auth[256];
        snprintf(url, sizeof url, "%s%s", gw.url, paths[i][1]);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.prod_key);
        const char *headers[] = {auth, NULL};
        long st = jn_test_http(paths[i][0], url, headers, NULL, 0, &text);
        resp = json_tokener_parse(text);
        if (st != 404)
            fail_msg("prod %s %s: %ld %s", paths[i][0], paths[i][1], st, text);
        expect_code(resp, "not_found", paths[i][1]);
        /* Nothing of dev's function in the answer. */
        assert_null(strstr(text, "Fetches every item"));
        free(text);
        json_object_put(resp);
    }
    json_object *r = get(gw.prod_key, "/integrations/notes/functions?search=items", 200);
    assert_int_equal(len_at(r, "data"), 0);
    json_object_put(r);
    char *now = snapshot();
    assert_string_equal(now, before);
    free(now);
    free(before);
}

/* ---- templates ---- */

static void test_templates(void **state)
{
    (void)state;
    /* Every example is a template of its provider, with its source. */
    DIR *top = opendir(EXAMPLES_DIR);
    assert_non_null(top);
    int providers = 0, files = 0;
    for (struct dirent *p; (p = readdir(top));) {
        if (p->d_name[0] == '.')
            continue;
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", EXAMPLES_DIR, p->d_name);
        DIR *d = opendir(dir);
        if (!d)
            continue;
        providers++;
        char path[512];
        snprintf(path, sizeof path, "/providers/%s/templates", p->d_name);
        json_object *r = get(gw.dev_key, path, 200);
        size_t listed = len_at(r, "data"), here = 0;
        for (struct dirent *f; (f = readdir(d));) {
            size_t n = strlen(f->d_name);
            if (n < 5 || strcmp(f->d_name + n - 4, ".lua") != 0)
                continue;
            here++;
            files++;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(n - 4), f->d_name);
            json_object *found = NULL;
            for (size_t k = 0; k < listed; k++) {
                json_object *t = json_object_array_get_idx(jn_test_json_get(r, "data"), k);
                if (strcmp(str(t, "name"), name) == 0)
                    found = t;
            }
            if (!found)
                fail_msg("%s/%s is not offered as a template", p->d_name, f->d_name);
            const char *type = str(found, "type");
            assert_true(strcmp(type, "action") == 0 || strcmp(type, "sync") == 0);
            assert_non_null(str(found, "json_schema.$schema"));
            assert_non_null(jn_test_json_get(found, "returns"));
            assert_null(jn_test_json_get(found, "id")); /* a template, not deployed */
            char code_path[1024], file[600];
            snprintf(code_path, sizeof code_path, "%s/junction/providers/%s/templates/%s/code",
                     gw.url, p->d_name, name);
            snprintf(file, sizeof file, "%s/%s", p->d_name, f->d_name);
            char auth[256], *text = NULL;
            snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
            const char *headers[] = {auth, NULL};
            long st = jn_test_http("GET", code_path, headers, NULL, 0, &text);
            assert_int_equal(st, 200);
            char *source = read_example(file);
            assert_string_equal(text, source);
            free(source);
            free(text);
        }
        assert_int_equal(listed, here);
        /* Actions first, then syncs. */
        bool seen_sync = false;
        for (size_t k = 0; k < listed; k++) {
            char at[32];
            snprintf(at, sizeof at, "data.%zu.type", k);
            bool sync = strcmp(str(r, at), "sync") == 0;
            assert_false(seen_sync && !sync);
            seen_sync |= sync;
        }
        json_object_put(r);
        closedir(d);
    }
    closedir(top);
    assert_true(providers >= 3 && files >= 6);

    json_object *r = get(gw.dev_key, "/providers/github/templates", 200);
    assert_string_equal(str(r, "data.0.name"), "create-issue");
    assert_string_equal(str(r, "data.0.input"), "CreateIssueInput");
    assert_string_equal(str(r, "data.0.scopes.0"), "repo");
    assert_string_equal(str(r, "data.1.name"), "fetch-issues");
    assert_string_equal(str(r, "data.1.type"), "sync");
    assert_non_null(jn_test_json_get(r, "data.1.runs"));
    json_object_put(r);
    /* A provider without templates has none, as in Nango. */
    r = get(gw.dev_key, "/providers/nobody-knows/templates", 200);
    assert_int_equal(len_at(r, "data"), 0);
    json_object_put(r);
    r = get(gw.dev_key, "/providers/git%2Fhub/templates", 400);
    expect_code(r, "invalid_uri_params", "slash");
    json_object_put(r);
    r = get(gw.dev_key, "/providers/github/templates?limit=1", 400);
    expect_code(r, "invalid_query_params", "query");
    json_object_put(r);
    r = get(gw.dev_key, "/junction/providers/github/templates/nobody/code", 404);
    expect_code(r, "not_found", "unknown template");
    json_object_put(r);
    r = get(gw.dev_key, "/junction/providers/github/templates/..%2F..%2Fslack%2Fsend-message/code",
            404);
    json_object_put(r);
}

/* ---- quickstart ---- */

static void test_quickstart_is_refused_clearly(void **state)
{
    (void)state;
    struct {
        const char *body;
        const char *mention; /* in the message, or NULL for a field error */
    } cases[] = {
        {"{\"provider\":\"github\",\"unique_key\":\"qs\"}", "developer app"},
        {"{\"provider\":\"openai\",\"unique_key\":\"qs\"}", "needs none"},
        {"{\"provider\":\"nobody\",\"unique_key\":\"qs\"}", "provider"},
        {"{\"provider\":\"github\"}", "unique_key"},
        {"{\"provider\":\"github\",\"unique_key\":\"qs\",\"credentials\":{}}", "credentials"},
        {"{\"provider\":\"github\",\"unique_key\":\"q/s\"}", "unique_key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *resp = NULL;
        long st =
            jn_test_api(&gw, "POST", "/integrations/quickstart", gw.dev_key, cases[i].body, &resp);
        must(st, 400, resp, cases[i].body);
        expect_code(resp, "invalid_body", cases[i].body);
        if (!strstr(str(resp, "error.message"), cases[i].mention))
            fail_msg("%s: the message does not mention %s: %s", cases[i].body, cases[i].mention,
                     json_object_to_json_string(resp));
        json_object_put(resp);
    }
    json_object *r = get(gw.dev_key, "/integrations/qs", 404);
    json_object_put(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_shapes_and_order),
        cmocka_unit_test(test_list_filters_and_pages),
        cmocka_unit_test(test_bad_requests_touch_nothing),
        cmocka_unit_test(test_get_code_and_delete),
        cmocka_unit_test(test_other_environments_functions_are_unseen),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_quickstart_is_refused_clearly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
