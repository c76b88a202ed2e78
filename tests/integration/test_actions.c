/*
 * Integration: actions through the whole path - gateway -> Kafka -> worker -> the fake
 * provider -> PostgreSQL -> gateway - with real processes: two gateways on one database,
 * workers in one consumer group, the scheduler for recovery.
 *
 * Covers the answers (output, every error kind, async with retries, a caller that can
 * read its result from either gateway), hostile scripts contained with the worker still
 * serving, a poison message dead-lettered with its bytes, a synchronous call nobody runs
 * (cancelled with a timeout), and a worker killed in the middle of an action: another
 * finishes it and the provider sees the side effect once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_oauth.h"
#include "harness.h"

#define API_KEY "k-actions-1"

static jn_test_fake_t fake;
static jn_test_gateway_t gw;
static jn_test_process_t gw2_proc, worker, scheduler;
static char gw2_url[64], gw2_admin[64], worker_admin[64], scheduler_admin[64];

static const char *const service_env[] = {"JUNCTION_JOB_LEASE_SECONDS=5",
                                          "JUNCTION_WORKER_DRAIN_SECONDS=2",
                                          "JUNCTION_LOG_LEVEL=info", NULL};

/* ---- scripts ---- */

static const char *const scripts[][2] = {
    {"boom", "return {\n"
             "  type = 'action', description = 'fails on line 4',\n"
             "  exec = function(ctx, input)\n"
             "    error('kaboom')\n"
             "  end,\n"
             "}\n"},
    {"hang", "return {\n"
             "  type = 'action', description = 'waits on a provider that never answers',\n"
             "  exec = function(ctx, input)\n"
             "    return ctx:get{ endpoint = '/api/hang', retries = 10, raise = false }.status\n"
             "  end,\n"
             "}\n"},
    {"spin", "return {\n"
             "  type = 'action', description = 'never ends',\n"
             "  exec = function(ctx, input)\n"
             "    while true do end\n"
             "  end,\n"
             "}\n"},
    {"spin-pcall", "return {\n"
                   "  type = 'action', description = 'tries to swallow the limit',\n"
                   "  exec = function(ctx, input)\n"
                   "    for i = 1, 3 do pcall(function() while true do end end) end\n"
                   "    return { escaped = true }\n"
                   "  end,\n"
                   "}\n"},
    {"membomb", "return {\n"
                "  type = 'action', description = 'eats memory',\n"
                "  exec = function(ctx, input)\n"
                "    local t = {}\n"
                "    for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end\n"
                "  end,\n"
                "}\n"},
    {"huge-rep", "return {\n"
                 "  type = 'action', description = 'asks for 10 GB at once',\n"
                 "  exec = function(ctx, input)\n"
                 "    return { s = string.rep('x', 1e10) }\n"
                 "  end,\n"
                 "}\n"},
    {"escape",
     "return {\n"
     "  type = 'action', description = 'looks for a way out',\n"
     "  exec = function(ctx, input)\n"
     "    local found = {}\n"
     "    for _, name in ipairs({'os.execute', 'io', 'require', 'dofile', 'loadfile',\n"
     "                          'debug', 'package', 'collectgarbage'}) do\n"
     "      local ok, v = pcall(load('return ' .. name))\n"
     "      if ok and v ~= nil then found[#found + 1] = name end\n"
     "    end\n"
     "    local ok = pcall(load, string.dump and string.dump(function() end) or '\\27Lua')\n"
     "    local f = load('\\27Lua')\n"
     "    if f then found[#found + 1] = 'bytecode' end\n"
     "    pcall(setmetatable, ctx, { __index = function() return 'owned' end })\n"
     "    return { found = found }\n"
     "  end,\n"
     "}\n"},
    {"bigout", "return {\n"
               "  type = 'action', description = 'returns 3 MB',\n"
               "  exec = function(ctx, input)\n"
               "    return { s = string.rep('x', 3 * 1024 * 1024) }\n"
               "  end,\n"
               "}\n"},
    {"fail-http", "return {\n"
                  "  type = 'action', description = 'asks for what does not exist',\n"
                  "  exec = function(ctx, input)\n"
                  "    return ctx:get{ endpoint = '/api/nope' }.data\n"
                  "  end,\n"
                  "}\n"},
    {"flaky", "return {\n"
              "  type = 'action', description = 'posts once, no retries of its own',\n"
              "  input = { text = 'string' },\n"
              "  exec = function(ctx, input)\n"
              "    local res = ctx:post{ endpoint = '/api/echo', data = { body = input.text } }\n"
              "    return { sha256 = res.data.body_sha256 }\n"
              "  end,\n"
              "}\n"},
    {"slow-note",
     "return {\n"
     "  type = 'action', description = 'posts a note, then waits on a slow call',\n"
     "  input = { text = 'string' },\n"
     "  exec = function(ctx, input)\n"
     "    local res = ctx:post{ endpoint = '/api/echo', data = { body = input.text } }\n"
     "    ctx:get{ endpoint = '/api/drip', params = { bytes = '96', interval_ms = '500' } }\n"
     "    return { sha256 = res.data.body_sha256 }\n"
     "  end,\n"
     "}\n"},
    {"slow-spin", "return {\n"
                  "  type = 'action', description = 'computes for six seconds',\n"
                  "  exec = function(ctx, input)\n"
                  "    local t = os.clock()\n"
                  "    while os.clock() - t < 6 do end\n"
                  "    return { spun = true }\n"
                  "  end,\n"
                  "}\n"},
    {"paginate-fail", "return {\n"
                      "  type = 'action', description = 'errors while paginating',\n"
                      "  exec = function(ctx, input)\n"
                      "    local n = 0\n"
                      "    for page in ctx:paginate{ endpoint = '/api/items', paginate = {\n"
                      "        type = 'cursor', cursor_path_in_response = 'next_cursor',\n"
                      "        cursor_name_in_request = 'cursor', response_path = 'items' } } do\n"
                      "      n = n + 1\n"
                      "      if n == 2 then error('page two is bad') end\n"
                      "    end\n"
                      "  end,\n"
                      "}\n"},
};

static void api_ok(const char *method, const char *path, const char *body, long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, method, path, gw.dev_key, body, &resp);
    if (st != want)
        fail_msg("%s %s: %ld, wanted %ld: %s", method, path, st, want,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
    json_object_put(resp);
}

static void deploy(void)
{
    json_object *fns = json_object_new_array();
    char path[512];
    snprintf(path, sizeof path, "%s/fake-provider/post-note.lua", EXAMPLES_DIR);
    char *note = jn_test_read_file(path);
    json_object *f = json_object_new_object();
    json_object_object_add(f, "name", json_object_new_string("post-note"));
    json_object_object_add(f, "source", json_object_new_string(note));
    json_object_array_add(fns, f);
    free(note);
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        f = json_object_new_object();
        json_object_object_add(f, "name", json_object_new_string(scripts[i][0]));
        json_object_object_add(f, "source", json_object_new_string(scripts[i][1]));
        json_object_array_add(fns, f);
    }
    json_object *body = json_object_new_object();
    json_object_object_add(body, "functions", fns);
    api_ok("PUT", "/junction/integrations/notes/functions", json_object_to_json_string(body), 200);
    json_object_put(body);
}

static void start_worker(jn_test_process_t *p, char *admin, const char *name)
{
    jn_test_service_start(p, &gw, WORKER_BIN, name, service_env, admin);
}

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "actions_fake_provider");
    /* The first gateway lets an environment wait on two synchronous actions at once. */
    static const char *const gw_env[] = {
        "JUNCTION_JOB_LEASE_SECONDS=5", "JUNCTION_WORKER_DRAIN_SECONDS=2",
        "JUNCTION_LOG_LEVEL=info", "JUNCTION_ACTION_WAITS_PER_ENVIRONMENT=2", NULL};
    jn_test_gateway_start(&gw, GATEWAY_BIN, gw_env);
    char body[1024];
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", API_KEY);
    if (jn_test_fake_call(&fake, "POST", "/_admin/api_keys", body, NULL) != 201)
        fail_msg("cannot register the API key at the fake");
    snprintf(body, sizeof body,
             "{\"display_name\":\"Fake key\",\"categories\":[\"dev-tools\"],"
             "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
             "\"proxy\":{\"base_url\":\"%s\",\"headers\":{\"x-api-key\":\"${apiKey}\"}},"
             "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\","
             "\"secret\":true}}}",
             fake.url);
    api_ok("PUT", "/junction/providers/fake-key", body, 201);
    api_ok("POST", "/integrations", "{\"provider\":\"fake-key\",\"unique_key\":\"notes\"}", 200);
    api_ok("POST", "/connections",
           "{\"provider_config_key\":\"notes\",\"connection_id\":\"c1\","
           "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"" API_KEY "\"}}",
           201);
    jn_test_fake_allow(&gw);
    /* Small limits so that runaway scripts die in a second, not in fifteen minutes. */
    api_ok("PATCH", "/junction/environment",
           "{\"script_limits\":{\"action\":{\"timeout_seconds\":20,\"instructions\":200000000,"
           "\"memory_mb\":32}}}",
           200);
    deploy();

    start_worker(&worker, worker_admin, "actions_worker");
    jn_test_service_start(&scheduler, &gw, SCHEDULER_BIN, "actions_scheduler", service_env,
                          scheduler_admin);
    jn_test_gateway_beside(&gw2_proc, &gw, GATEWAY_BIN, "actions_second_gateway", gw2_url,
                           gw2_admin);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bool gw2_clean = jn_test_service_stop(&gw2_proc, 20000);
    bool worker_clean = jn_test_service_stop(&worker, 30000);
    bool scheduler_clean = jn_test_service_stop(&scheduler, 20000);
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    assert_true(gw2_clean);
    assert_true(worker_clean);
    assert_true(scheduler_clean);
    return 0;
}

/* ---- calling ---- */

typedef struct {
    long status;
    json_object *body;
    char location[256];
} answer_t;

/* POST /action/trigger through base (a gateway's URL) for connection c1. extra: more
 * header lines (NULL-terminated, may be NULL). */
static answer_t trigger_via(const char *base, const char *key, const char *cid, const char *body,
                            const char *const *extra)
{
    char url[128], auth[256], conn_h[300];
    snprintf(url, sizeof url, "%s/action/trigger", base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    snprintf(conn_h, sizeof conn_h, "Connection-Id: %s", cid);
    const char *headers[12] = {auth, conn_h, "Provider-Config-Key: notes",
                               "Content-Type: application/json"};
    size_t n = 4;
    for (size_t i = 0; extra && extra[i] && n < 11; i++)
        headers[n++] = extra[i];
    headers[n] = NULL;
    char *text = NULL, *head = NULL;
    answer_t a = {0};
    a.status = jn_test_http_headers("POST", url, headers, body, strlen(body), &text, &head);
    a.body = text ? json_tokener_parse(text) : NULL;
    if (head)
        jn_test_header_value(head, "Location", a.location, sizeof a.location);
    free(text);
    free(head);
    return a;
}

static answer_t trigger(const char *body, const char *const *extra)
{
    return trigger_via(gw.url, gw.dev_key, "c1", body, extra);
}

static void expect(const answer_t *a, long status, const char *code, const char *what)
{
    const char *got = a->body ? jn_test_json_str(a->body, "error.code") : NULL;
    if (a->status != status || (code && (!got || strcmp(got, code) != 0)))
        fail_msg("%s: %ld %s, wanted %ld %s", what, a->status,
                 a->body ? json_object_to_json_string(a->body) : "(not JSON)", status,
                 code ? code : "");
}

static long long sql_number(const char *sql)
{
    char *v = jn_test_sql_value(gw.db_url, sql);
    long long n = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return n;
}

/* Requests the fake has counted for path. */
static long long fake_count(const char *path)
{
    json_object *stats = NULL;
    if (jn_test_fake_call(&fake, "GET", "/_admin/stats", NULL, &stats) != 200)
        fail_msg("cannot read the fake's stats");
    json_object *by = NULL, *v = NULL;
    long long n = 0;
    if (json_object_object_get_ex(stats, "api_requests_by_path", &by) &&
        json_object_object_get_ex(by, path, &v))
        n = json_object_get_int64(v);
    json_object_put(stats);
    return n;
}

static bool worker_alive(void)
{
    char url[96];
    snprintf(url, sizeof url, "%s/livez", worker_admin);
    return jn_test_http("GET", url, NULL, NULL, 0, NULL) == 200;
}

static void expect_note_works(const char *what)
{
    answer_t a =
        trigger("{\"action_name\":\"post-note\",\"input\":{\"text\":\"still here\"}}", NULL);
    if (a.status != 200)
        fail_msg("%s: a normal action afterwards answered %ld %s", what, a.status,
                 a.body ? json_object_to_json_string(a.body) : "");
    json_object_put(a.body);
    assert_true(worker_alive());
}

/* ---- tests ---- */

static void test_sync_call_returns_the_output(void **state)
{
    (void)state;
    long long before = fake_count("/api/echo");
    answer_t a = trigger("{\"action_name\":\"post-note\",\"input\":{\"text\":\"hello\","
                         "\"tags\":[\"a\",\"b\"]}}",
                         NULL);
    expect(&a, 200, NULL, "post-note");
    assert_string_equal(jn_test_json_str(a.body, "method"), "POST");
    assert_non_null(jn_test_json_str(a.body, "sha256"));
    assert_string_equal(jn_test_json_str(a.body, "tags.1"), "b");
    json_object_put(a.body);
    assert_int_equal(fake_count("/api/echo"), before + 1);
    /* The job row holds the outcome. */
    assert_int_equal(sql_number("SELECT count(*) FROM jobs WHERE kind = 'action' AND "
                                "function_name = 'post-note' AND state = 'succeeded'"),
                     1);
}

static void test_bad_requests_queue_nothing(void **state)
{
    (void)state;
    long long jobs = sql_number("SELECT count(*) FROM jobs");
    answer_t a = trigger("{\"action_name\":\"post-note\",\"input\":{\"text\":5}}", NULL);
    expect(&a, 400, "invalid_action_input", "input of the wrong type");
    assert_string_equal(jn_test_json_str(a.body, "error.errors.0.path.1"), "text");
    json_object_put(a.body);
    a = trigger("{\"action_name\":\"post-note\"}", NULL);
    expect(&a, 400, "invalid_action_input", "no input for a declared one");
    json_object_put(a.body);
    a = trigger("{\"action_name\":\"no-such-action\",\"input\":{}}", NULL);
    expect(&a, 404, "unknown_action", "unknown action");
    json_object_put(a.body);
    a = trigger_via(gw.url, gw.dev_key, "nobody", "{\"action_name\":\"post-note\"}", NULL);
    expect(&a, 404, "unknown_connection", "unknown connection");
    json_object_put(a.body);
    a = trigger_via(gw.url, gw.prod_key, "c1",
                    "{\"action_name\":\"post-note\",\"input\":{\"text\":\"x\"}}", NULL);
    expect(&a, 404, "unknown_connection", "another environment's connection");
    json_object_put(a.body);
    a = trigger("{\"input\":{}}", NULL);
    expect(&a, 400, "invalid_body", "no action_name");
    json_object_put(a.body);
    a = trigger("{\"action_name\":\"post-note\",\"inptu\":{}}", NULL);
    expect(&a, 400, "invalid_body", "a misspelt field");
    json_object_put(a.body);
    a = trigger("[1,2]", NULL);
    expect(&a, 400, "invalid_body", "not an object");
    json_object_put(a.body);
    const char *bad_retries[] = {"X-Async: true", "X-Max-Retries: 9", NULL};
    a = trigger("{\"action_name\":\"post-note\",\"input\":{\"text\":\"x\"}}", bad_retries);
    expect(&a, 400, "invalid_headers", "X-Max-Retries out of range");
    json_object_put(a.body);
    const char *bad_async[] = {"X-Async: maybe", NULL};
    a = trigger("{\"action_name\":\"post-note\",\"input\":{\"text\":\"x\"}}", bad_async);
    expect(&a, 400, "invalid_headers", "X-Async not a boolean");
    json_object_put(a.body);
    a = trigger_via(gw.url, "wrong-key", "c1", "{\"action_name\":\"post-note\"}", NULL);
    assert_int_equal(a.status, 401);
    json_object_put(a.body);
    assert_int_equal(sql_number("SELECT count(*) FROM jobs"), jobs);
}

static void test_errors_of_a_run(void **state)
{
    (void)state;
    answer_t a = trigger("{\"action_name\":\"post-note\",\"input\":{\"text\":\"\"}}", NULL);
    expect(&a, 500, "action_script_failure", "action_error from the script");
    assert_string_equal(jn_test_json_str(a.body, "error.payload.field"), "text");
    json_object_put(a.body);

    a = trigger("{\"action_name\":\"fail-http\"}", NULL);
    expect(&a, 424, "script_http_error", "a provider 404");
    assert_string_equal(jn_test_json_str(a.body, "error.upstream.status"), "404");
    json_object_put(a.body);

    a = trigger("{\"action_name\":\"boom\"}", NULL);
    expect(&a, 500, "action_script_failure", "error()");
    const char *message = jn_test_json_str(a.body, "error.message");
    assert_non_null(message);
    assert_non_null(strstr(message, "boom:4:"));
    assert_non_null(strstr(message, "kaboom"));
    json_object_put(a.body);

    a = trigger("{\"action_name\":\"paginate-fail\"}", NULL);
    expect(&a, 500, "action_script_failure", "error while paginating");
    assert_non_null(strstr(jn_test_json_str(a.body, "error.message"), "page two is bad"));
    json_object_put(a.body);
}

static void test_hostile_scripts_are_contained(void **state)
{
    (void)state;
    static const struct {
        const char *name, *type;
    } cases[] = {
        {"spin", "cpu_limit"}, {"spin-pcall", "cpu_limit"},  {"membomb", "memory_limit"},
        {"huge-rep", NULL},    {"bigout", "invalid_output"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"action_name\":\"%s\"}", cases[i].name);
        answer_t a = trigger(body, NULL);
        expect(&a, 500, "action_script_failure", cases[i].name);
        const char *type = jn_test_json_str(a.body, "error.payload.type");
        const char *message = jn_test_json_str(a.body, "error.message");
        if (cases[i].type && (!type || strcmp(type, cases[i].type) != 0))
            fail_msg("%s: payload type %s, wanted %s", cases[i].name, type ? type : "(none)",
                     cases[i].type);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s:", cases[i].name);
        if (!message || !strstr(message, prefix))
            fail_msg("%s: the message does not name the script: %s", cases[i].name,
                     message ? message : "(none)");
        json_object_put(a.body);
        expect_note_works(cases[i].name);
    }
    /* Nothing outside the sandbox is reachable, and ctx cannot be rewired. */
    answer_t a = trigger("{\"action_name\":\"escape\"}", NULL);
    expect(&a, 200, NULL, "escape");
    json_object *found = json_object_object_get(a.body, "found");
    size_t n = json_object_is_type(found, json_type_array) ? json_object_array_length(found)
               : json_object_is_type(found, json_type_object)
                   ? (size_t)json_object_object_length(found)
                   : 1;
    if (n != 0)
        fail_msg("the sandbox let these through: %s", json_object_to_json_string(found));
    json_object_put(a.body);
}

static bool async_done(void *ud)
{
    const char **args = ud;
    char url[160], auth[256];
    snprintf(url, sizeof url, "%s%s", args[0], args[1]);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", args[2]);
    const char *headers[] = {auth, NULL};
    return jn_test_http("GET", url, headers, NULL, 0, NULL) != 404;
}

static void test_async_call_and_result_from_either_gateway(void **state)
{
    (void)state;
    const char *async[] = {"X-Async: true", NULL};
    answer_t a =
        trigger_via(gw2_url, gw.dev_key, "c1",
                    "{\"action_name\":\"post-note\",\"input\":{\"text\":\"async\"}}", async);
    expect(&a, 202, NULL, "async trigger");
    const char *id = jn_test_json_str(a.body, "id");
    const char *status_url = jn_test_json_str(a.body, "statusUrl");
    assert_non_null(id);
    char want[96];
    snprintf(want, sizeof want, "/action/%s", id);
    assert_string_equal(status_url, want);
    assert_string_equal(a.location, want);
    /* The other gateway answers once a worker is done. */
    const char *args[] = {gw.url, want, gw.dev_key};
    assert_true(jn_test_wait_until(async_done, args, 30000));
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "GET", want, gw.dev_key, NULL, &resp);
    jn_test_expect_status(st, 200, resp, "async result");
    assert_string_equal(jn_test_json_str(resp, "method"), "POST");
    json_object_put(resp);
    /* Another environment cannot read it; a malformed or unknown id is simply not found. */
    st = jn_test_api(&gw, "GET", want, gw.prod_key, NULL, &resp);
    jn_test_expect_status(st, 404, resp, "result from another environment");
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/action/not-a-uuid", gw.dev_key, NULL, &resp);
    jn_test_expect_status(st, 404, resp, "malformed id");
    json_object_put(resp);
    st = jn_test_api(&gw, "GET", "/action/00000000-0000-4000-8000-000000000000", gw.dev_key, NULL,
                     &resp);
    jn_test_expect_status(st, 404, resp, "unknown id");
    json_object_put(resp);
    json_object_put(a.body);

    /* A synchronous call through the second gateway too. */
    a = trigger_via(gw2_url, gw.dev_key, "c1",
                    "{\"action_name\":\"post-note\",\"input\":{\"text\":\"via two\"}}", NULL);
    expect(&a, 200, NULL, "sync through the second gateway");
    json_object_put(a.body);
}

static void test_async_retries_until_success(void **state)
{
    (void)state;
    /* The provider fails the next two calls; two retries make the third attempt succeed. */
    jn_test_fake_config(&fake, "{\"fail_next\":{\"count\":2,\"status\":503}}");
    const char *async[] = {"X-Async: true", "X-Max-Retries: 2", NULL};
    answer_t a = trigger("{\"action_name\":\"flaky\",\"input\":{\"text\":\"third time\"}}", async);
    expect(&a, 202, NULL, "async flaky");
    char path[96];
    snprintf(path, sizeof path, "/action/%s", jn_test_json_str(a.body, "id"));
    const char *args[] = {gw.url, path, gw.dev_key};
    assert_true(jn_test_wait_until(async_done, args, 60000));
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp);
    jn_test_expect_status(st, 200, resp, "flaky result");
    json_object_put(resp);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT attempts FROM jobs WHERE id = '%s'",
             jn_test_json_str(a.body, "id"));
    assert_int_equal(sql_number(sql), 3);
    json_object_put(a.body);

    /* Without retries, the first failure is the answer. */
    jn_test_fake_config(&fake, "{\"fail_next\":{\"count\":1,\"status\":503}}");
    const char *once[] = {"X-Async: true", NULL};
    a = trigger("{\"action_name\":\"flaky\",\"input\":{\"text\":\"once\"}}", once);
    expect(&a, 202, NULL, "async without retries");
    snprintf(path, sizeof path, "/action/%s", jn_test_json_str(a.body, "id"));
    assert_true(jn_test_wait_until(async_done, args, 30000));
    st = jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp);
    jn_test_expect_status(st, 424, resp, "failed async result");
    json_object_put(resp);
    json_object_put(a.body);
}

static void test_poison_message_is_dead_lettered(void **state)
{
    (void)state;
    char topic[160], dlq[160];
    snprintf(topic, sizeof topic, "%s.actions", gw.db);
    snprintf(dlq, sizeof dlq, "%s.dlq", gw.db);
    /* A consumer of the dead-letter topic, printing the reason header before each value. */
    jn_test_process_t consumer;
    const char *cargv[] = {KAFKA_PROBE_BIN, "consume", dlq, "actions-dlq-reader", "1",
                           "60000",         NULL};
    const char *cenv[] = {"JN_PROBE_HEADER=junction-dlq-reason", NULL};
    jn_test_spawn(&consumer, cargv, cenv, "actions_dlq_reader");
    jn_test_process_t producer;
    const char *pargv[] = {KAFKA_PROBE_BIN, "produce", topic, "poison", "{\"job_id\":42,", NULL};
    jn_test_spawn(&producer, pargv, NULL, "actions_poison_producer");
    assert_true(jn_test_process_wait(&producer, 60000));
    assert_int_equal(producer.exit_status, 0);
    assert_true(jn_test_process_wait(&consumer, 70000));
    char *out = jn_test_read_log(&consumer);
    /* "<reason>\t<the original bytes>" */
    char *tab = strchr(out, '\t');
    if (tab)
        *tab = '\0';
    if (consumer.exit_status != 0 || !tab || strncmp(tab + 1, "{\"job_id\":42,\n", 14) != 0 ||
        !strstr(out, "JSON"))
        fail_msg("dead-letter topic: exit %d, read:\n%s", consumer.exit_status, out);
    free(out);

    /* 400 KB of what JSON escaping grows most: its dead-letter copy is the same bytes, so
     * it fits the broker's limit as the original did, and the partition moves on. */
    const char *jargv[] = {KAFKA_PROBE_BIN, "produce-junk", topic, "junk", "409600", NULL};
    jn_test_process_t consumer2;
    const char *c2argv[] = {KAFKA_PROBE_BIN, "consume", dlq, "actions-dlq-reader-2", "2",
                            "60000",         NULL};
    jn_test_spawn(&consumer2, c2argv, NULL, "actions_dlq_reader_2");
    jn_test_spawn(&producer, jargv, NULL, "actions_junk_producer");
    assert_true(jn_test_process_wait(&producer, 60000));
    assert_int_equal(producer.exit_status, 0);
    expect_note_works("after a 400 KB poison message");
    assert_true(jn_test_process_wait(&consumer2, 70000));
    out = jn_test_read_log(&consumer2);
    /* The first poison message, then the 400 KB one, whole. */
    char *second = strchr(out, '\n');
    if (consumer2.exit_status != 0 || !second || strlen(second + 1) != 409600 + 1)
        fail_msg("dead-letter topic: exit %d, read %zu bytes", consumer2.exit_status, strlen(out));
    free(out);
}

/* A synchronous call that no worker takes is cancelled after its wait and never runs. */
static void test_sync_call_nobody_runs_times_out(void **state)
{
    (void)state;
    assert_true(jn_test_service_stop(&worker, 30000));
    api_ok("PATCH", "/junction/environment",
           "{\"script_limits\":{\"action\":{\"timeout_seconds\":1,\"instructions\":200000000,"
           "\"memory_mb\":32}}}",
           200);
    long long echo = fake_count("/api/echo");
    long t0 = jn_test_now_ms();
    answer_t a = trigger("{\"action_name\":\"flaky\",\"input\":{\"text\":\"nobody\"}}", NULL);
    long took = jn_test_now_ms() - t0;
    expect(&a, 504, "action_timeout", "nobody runs it");
    json_object_put(a.body);
    assert_true(took >= 5000 && took < 20000);
    assert_int_equal(sql_number("SELECT count(*) FROM jobs WHERE function_name = 'flaky' AND "
                                "state = 'cancelled'"),
                     1);
    api_ok("PATCH", "/junction/environment",
           "{\"script_limits\":{\"action\":{\"timeout_seconds\":20,\"instructions\":200000000,"
           "\"memory_mb\":32}}}",
           200);
    /* The stopped worker left its group, so the new one gets the partition at once
     * rather than after the old member's session timeout. */
    t0 = jn_test_now_ms();
    start_worker(&worker, worker_admin, "actions_worker_again");
    expect_note_works("after a restart");
    took = jn_test_now_ms() - t0;
    if (took > 15000)
        fail_msg("the restarted worker took %ld ms to run its first action", took);
    /* The cancelled job never ran. */
    assert_int_equal(fake_count("/api/echo"), echo + 1);
}

typedef struct {
    const char *id;
} job_arg_t;

static bool job_running_and_posted(void *ud)
{
    job_arg_t *j = ud;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'running'",
             j->id);
    return sql_number(sql) == 1 && fake_count("/api/echo") > 0;
}

/* A worker killed in the middle of an action: another member of the group finishes it,
 * and the provider saw the post once (the journal answers the repeated call). */
static void test_killed_worker_hands_the_action_over(void **state)
{
    (void)state;
    jn_test_process_t second;
    char second_admin[64];
    start_worker(&second, second_admin, "actions_worker_second");
    jn_test_fake_call(&fake, "POST", "/_admin/reset", NULL, NULL);
    char body[64];
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", API_KEY);
    jn_test_fake_call(&fake, "POST", "/_admin/api_keys", body, NULL);

    const char *async[] = {"X-Async: true", NULL};
    answer_t a =
        trigger("{\"action_name\":\"slow-note\",\"input\":{\"text\":\"exactly once\"}}", async);
    expect(&a, 202, NULL, "slow-note");
    job_arg_t j = {jn_test_json_str(a.body, "id")};
    assert_true(jn_test_wait_until(job_running_and_posted, &j, 30000));
    /* Kill whichever worker holds the lease. */
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT lease_owner FROM jobs WHERE id = '%s'", j.id);
    char *owner = jn_test_sql_value(gw.db_url, sql);
    assert_non_null(owner);
    char first_pid[32], second_pid[32];
    snprintf(first_pid, sizeof first_pid, "-%d", (int)worker.pid);
    snprintf(second_pid, sizeof second_pid, "-%d", (int)second.pid);
    size_t len = strlen(owner);
    bool first_holds =
        len > strlen(first_pid) && strcmp(owner + len - strlen(first_pid), first_pid) == 0;
    bool second_holds =
        len > strlen(second_pid) && strcmp(owner + len - strlen(second_pid), second_pid) == 0;
    if (!first_holds && !second_holds)
        fail_msg("lease owner %s is neither worker", owner);
    free(owner);
    jn_test_process_t *victim = first_holds ? &worker : &second;
    jn_test_signal(victim, SIGKILL);
    jn_test_process_wait(victim, 10000);

    char path[96];
    snprintf(path, sizeof path, "/action/%s", j.id);
    const char *args[] = {gw.url, path, gw.dev_key};
    assert_true(jn_test_wait_until(async_done, args, 90000));
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp);
    jn_test_expect_status(st, 200, resp, "the action after its worker died");
    json_object_put(resp);
    snprintf(sql, sizeof sql, "SELECT attempts FROM jobs WHERE id = '%s'", j.id);
    assert_int_equal(sql_number(sql), 2);
    assert_int_equal(fake_count("/api/echo"), 1);
    json_object_put(a.body);

    /* The survivor becomes "the worker" for the tests after this one. */
    if (first_holds) {
        worker = second;
        memcpy(worker_admin, second_admin, sizeof worker_admin);
    } else {
        assert_true(jn_test_service_stop(&second, 30000));
    }
    expect_note_works("after the kill");
}

static bool job_running(void *ud)
{
    job_arg_t *j = ud;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND state = 'running'",
             j->id);
    return sql_number(sql) == 1;
}

/* SIGTERM while an action computes (no host call to notice a stop): the worker waits its
 * drain time, stops the script, gives the job back (had the script not been stopped, it
 * would have finished and stored its outcome) and exits cleanly; another worker then runs
 * it whole, the given-back attempt not counted. */
static void test_draining_worker_gives_the_job_back(void **state)
{
    (void)state;
    api_ok("PATCH", "/junction/environment",
           "{\"script_limits\":{\"action\":{\"timeout_seconds\":20,\"instructions\":"
           "100000000000,\"memory_mb\":32}}}",
           200);
    const char *async[] = {"X-Async: true", NULL};
    answer_t a = trigger("{\"action_name\":\"slow-spin\"}", async);
    expect(&a, 202, NULL, "slow-spin");
    job_arg_t j = {jn_test_json_str(a.body, "id")};
    assert_true(jn_test_wait_until(job_running, &j, 30000));
    long t0 = jn_test_now_ms();
    jn_test_signal(&worker, SIGTERM);
    assert_true(jn_test_process_wait(&worker, 15000));
    long took = jn_test_now_ms() - t0;
    assert_int_equal(worker.exit_status, 0);
    /* JUNCTION_WORKER_DRAIN_SECONDS=2; the script alone would need 6 s of CPU. */
    if (took > 5500)
        fail_msg("the draining worker took %ld ms to stop", took);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT state || ':' || attempts FROM jobs WHERE id = '%s'", j.id);
    char *row = jn_test_sql_value(gw.db_url, sql);
    assert_string_equal(row, "queued:0");
    free(row);

    start_worker(&worker, worker_admin, "actions_worker_after_drain");
    char path[96];
    snprintf(path, sizeof path, "/action/%s", j.id);
    const char *args[] = {gw.url, path, gw.dev_key};
    assert_true(jn_test_wait_until(async_done, args, 60000));
    json_object *resp = NULL;
    long st = jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp);
    jn_test_expect_status(st, 200, resp, "the given-back action");
    json_object_put(resp);
    snprintf(sql, sizeof sql, "SELECT attempts FROM jobs WHERE id = '%s'", j.id);
    assert_int_equal(sql_number(sql), 1);
    json_object_put(a.body);
    api_ok("PATCH", "/junction/environment",
           "{\"script_limits\":{\"action\":{\"timeout_seconds\":20,\"instructions\":200000000,"
           "\"memory_mb\":32}}}",
           200);
}

static bool provider_call_hangs(void *ud)
{
    (void)ud;
    json_object *stats = NULL;
    if (jn_test_fake_call(&fake, "GET", "/_admin/stats", NULL, &stats) != 200)
        fail_msg("cannot read the fake's stats");
    long open = strtol(jn_test_json_str(stats, "hangs_open"), NULL, 10);
    json_object_put(stats);
    return open > 0;
}

/* SIGTERM while the script waits on a provider that never answers (with retries, for
 * many minutes): past its drain time the worker abandons the call, gives the job back
 * and exits, instead of waiting for the provider. */
static void test_draining_worker_abandons_a_hanging_call(void **state)
{
    (void)state;
    api_ok("PATCH", "/junction/environment",
           "{\"script_limits\":{\"action\":{\"timeout_seconds\":600,\"memory_mb\":32}}}", 200);
    const char *async[] = {"X-Async: true", NULL};
    answer_t a = trigger("{\"action_name\":\"hang\"}", async);
    expect(&a, 202, NULL, "hang");
    job_arg_t j = {jn_test_json_str(a.body, "id")};
    assert_true(jn_test_wait_until(job_running, &j, 30000));
    assert_true(jn_test_wait_until(provider_call_hangs, NULL, 30000));
    long t0 = jn_test_now_ms();
    jn_test_signal(&worker, SIGTERM);
    bool exited = jn_test_process_wait(&worker, 20000);
    long took = jn_test_now_ms() - t0;
    if (!exited) {
        jn_test_process_kill(&worker);
        fail_msg("the draining worker still waited on the provider after %ld ms", took);
    }
    assert_int_equal(worker.exit_status, 0);
    if (took > 5500) /* JUNCTION_WORKER_DRAIN_SECONDS=2 */
        fail_msg("the draining worker took %ld ms to stop", took);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT state FROM jobs WHERE id = '%s'", j.id);
    char *row = jn_test_sql_value(gw.db_url, sql);
    assert_string_equal(row, "queued");
    free(row);
    /* Nobody should wait on it again: cancel it before a worker comes back. */
    snprintf(sql, sizeof sql, "UPDATE jobs SET state = 'cancelled' WHERE id = '%s' RETURNING state",
             j.id);
    free(jn_test_sql_value(gw.db_url, sql));
    json_object_put(a.body);
    start_worker(&worker, worker_admin, "actions_worker_after_hang");
    api_ok("PATCH", "/junction/environment",
           "{\"script_limits\":{\"action\":{\"timeout_seconds\":20,\"instructions\":200000000,"
           "\"memory_mb\":32}}}",
           200);
}

static void *hold_call(void *arg)
{
    *(answer_t *)arg =
        trigger("{\"action_name\":\"slow-note\",\"input\":{\"text\":\"hold\"}}", NULL);
    return NULL;
}

static bool two_callers_wait(void *ud)
{
    (void)ud;
    return sql_number("SELECT count(*) FROM jobs WHERE function_name = 'slow-note' AND NOT async "
                      "AND input->>'text' = 'hold' AND state IN ('queued', 'running')") >= 2;
}

/* Each waiting caller holds a connection: an environment may keep only so many waiting
 * (two on this gateway); past that a synchronous call is refused at once with 429, an
 * async one still goes through, and the slots come back when the waits end. */
static void test_sync_waits_are_capped_per_environment(void **state)
{
    (void)state;
    pthread_t t[2];
    answer_t held[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hold_call, &held[i]), 0);
    bool waiting = jn_test_wait_until(two_callers_wait, NULL, 30000);
    answer_t third = {0};
    answer_t async = {0};
    if (waiting) {
        third = trigger("{\"action_name\":\"post-note\",\"input\":{\"text\":\"third\"}}", NULL);
        const char *hdr[] = {"X-Async: true", NULL};
        async = trigger("{\"action_name\":\"post-note\",\"input\":{\"text\":\"async\"}}", hdr);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_true(waiting);
    expect(&third, 429, "too_many_waiting_actions", "a third synchronous caller");
    expect(&async, 202, NULL, "an async call beside them");
    for (int i = 0; i < 2; i++) {
        expect(&held[i], 200, NULL, "a held caller");
        json_object_put(held[i].body);
    }
    json_object_put(third.body);
    json_object_put(async.body);
    /* The slots came back. */
    expect_note_works("after the capped waits");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_call_returns_the_output),
        cmocka_unit_test(test_sync_waits_are_capped_per_environment),
        cmocka_unit_test(test_bad_requests_queue_nothing),
        cmocka_unit_test(test_errors_of_a_run),
        cmocka_unit_test(test_hostile_scripts_are_contained),
        cmocka_unit_test(test_async_call_and_result_from_either_gateway),
        cmocka_unit_test(test_async_retries_until_success),
        cmocka_unit_test(test_poison_message_is_dead_lettered),
        cmocka_unit_test(test_sync_call_nobody_runs_times_out),
        cmocka_unit_test(test_killed_worker_hands_the_action_over),
        cmocka_unit_test(test_draining_worker_gives_the_job_back),
        cmocka_unit_test(test_draining_worker_abandons_a_hanging_call),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
