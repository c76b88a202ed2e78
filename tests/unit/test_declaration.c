/*
 * Unit tests for common/scripts/declaration.c and frequency.c: each declaration rule
 * with its message, the JSON form read back, frequencies, and every file of examples/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scripts/declaration.h"
#include "core/frequency.h"

#define ACTION_EXEC "exec = function(ctx, input) return input end"
#define SYNC_EXEC "exec = function(ctx) end"

static jn_script_status_t load(const char *name, const char *src, jn_declaration_t *d,
                               jn_script_error_t *err)
{
    return jn_declaration_load(name, src, strlen(src), NULL, d, err);
}

/* The declaration must be refused with exactly `want` as the start of the message. */
static void refused(const char *body, const char *want)
{
    char src[4096];
    snprintf(src, sizeof src, "return { %s }", body);
    jn_declaration_t d;
    jn_script_error_t err;
    jn_script_status_t st = load("note", src, &d, &err);
    if (st == JN_SCRIPT_OK) {
        jn_declaration_cleanup(&d);
        fail_msg("accepted: %s", body);
    }
    assert_int_equal(st, JN_SCRIPT_ERROR);
    if (strncmp(err.message, want, strlen(want)) != 0)
        fail_msg("%s\n -> '%s'\n    wanted '%s...'", body, err.message, want);
}

static void accepted(const char *body, jn_declaration_t *d)
{
    char src[4096];
    snprintf(src, sizeof src, "return { %s }", body);
    jn_script_error_t err;
    if (load("note", src, d, &err) != JN_SCRIPT_OK)
        fail_msg("%s\n -> %s", body, err.message);
}

static const char *str(json_object *j, const char *key)
{
    return json_object_get_string(json_object_object_get(j, key));
}

static void test_action(void **state)
{
    (void)state;
    jn_declaration_t d;
    accepted("type = 'action', description = 'Creates a note', version = '1.0.0', "
             "scopes = {'notes.write'}, input = { text = 'string', tags = 'string[]?' }, "
             "output = { id = 'string', text = 'string' }, "
             "endpoint = { method = 'POST', path = '/notes' }, " ACTION_EXEC,
             &d);
    assert_int_equal(d.kind, JN_SCRIPT_ACTION);
    assert_string_equal(d.name, "note");
    assert_string_equal(d.description, "Creates a note");
    assert_string_equal(d.version, "1.0.0");
    assert_non_null(d.input);
    assert_non_null(d.output);
    assert_null(d.metadata);
    assert_string_equal(
        json_object_to_json_string_ext(d.json,
                                       JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
        "{\"name\":\"note\",\"type\":\"action\",\"description\":\"Creates a "
        "note\",\"version\":\"1.0.0\",\"scopes\":[\"notes.write\"],\"endpoint\":{"
        "\"method\":\"POST\",\"path\":\"/notes\"},\"input\":{\"tags\":\"string[]?"
        "\",\"text\":\"string\"},\"output\":{\"id\":\"string\",\"text\":\"string\"},"
        "\"models\":{}}");
    jn_declaration_cleanup(&d);
    /* Defaults, and the string form of the endpoint. */
    accepted("type = 'action', description = 'x', endpoint = 'GET /notes/{id}', " ACTION_EXEC, &d);
    assert_string_equal(d.version, "0.0.1");
    assert_string_equal(str(json_object_object_get(d.json, "endpoint"), "path"), "/notes/{id}");
    assert_int_equal(json_object_array_length(json_object_object_get(d.json, "scopes")), 0);
    assert_null(d.input);
    jn_declaration_cleanup(&d);
}

static void test_sync(void **state)
{
    (void)state;
    jn_declaration_t d;
    accepted("type = 'sync', description = 'Items', frequency = 'every 5 minutes', "
             "models = { Item = { id = 'string', name = 'string?' } }, " SYNC_EXEC,
             &d);
    assert_int_equal(d.kind, JN_SCRIPT_SYNC);
    assert_int_equal(d.frequency_seconds, 300);
    assert_false(d.full_sync);
    assert_true(d.auto_start);
    assert_false(d.track_deletes);
    assert_false(d.has_on_webhook);
    assert_string_equal(str(d.json, "sync_type"), "incremental");
    assert_int_equal(json_object_get_int(json_object_object_get(d.json, "frequency_seconds")), 300);
    jn_declaration_cleanup(&d);
    accepted(
        "type = 'sync', description = 'Items', frequency = '1h', sync_type = 'full', "
        "track_deletes = true, auto_start = false, checkpoint = { since = 'date', page = "
        "'integer?' }, metadata = { owner = 'string' }, webhook_subscriptions = {'a.b'}, "
        "models = { Item = { id = 'integer' } }, on_webhook = function(ctx, p) end, " SYNC_EXEC,
        &d);
    assert_true(d.full_sync && d.track_deletes && !d.auto_start && d.has_on_webhook);
    assert_non_null(d.checkpoint);
    assert_non_null(d.metadata);
    assert_int_equal(d.frequency_seconds, 3600);
    jn_declaration_cleanup(&d);
}

static void test_rules(void **state)
{
    (void)state;
    refused("", "note: type: is required");
    refused("type = 'job', description = 'x', " ACTION_EXEC, "note: type: is required");
    refused("type = 'action', " ACTION_EXEC, "note: description: is required");
    refused("type = 'action', description = '', " ACTION_EXEC, "note: description: is required");
    refused("type = 'action', description = 3, " ACTION_EXEC, "note: description: is required");
    refused("type = 'action', description = 'x'", "note: exec: is required");
    refused("type = 'action', description = 'x', exec = 'run'", "note: exec: must be a function");
    refused("type = 'action', description = 'x', version = 'one point oh', " ACTION_EXEC,
            "note: version: must be a version");
    refused("type = 'action', description = 'x', frequncy = '1h', " ACTION_EXEC,
            "note: frequncy: unknown field");
    refused("type = 'action', description = 'x', frequency = '1h', " ACTION_EXEC,
            "note: frequency: only a sync has this field");
    refused("type = 'action', description = 'x', on_webhook = function() end, " ACTION_EXEC,
            "note: on_webhook: only a sync has this field");
    refused("type = 'action', description = 'x', scopes = 'repo', " ACTION_EXEC,
            "note: scopes: must be a list of strings");
    refused("type = 'action', description = 'x', scopes = {'a', 7}, " ACTION_EXEC,
            "note: scopes: item 2 must be a non-empty string");
    refused("type = 'action', description = 'x', input = { a = 'strin' }, " ACTION_EXEC,
            "note: input.a: unknown type 'strin'");
    refused("type = 'action', description = 'x', output = { a = function() end }, " ACTION_EXEC,
            "note: output: a: a function has no JSON form");
    refused("type = 'action', description = 'x', endpoint = { method = 'FETCH', path = '/a' "
            "}, " ACTION_EXEC,
            "note: endpoint.method: must be GET, POST, PUT, PATCH or DELETE");
    refused("type = 'action', description = 'x', endpoint = { method = 'GET', path = 'a b' "
            "}, " ACTION_EXEC,
            "note: endpoint.path: must start with /");
    refused("type = 'action', description = 'x', endpoint = 'GET', " ACTION_EXEC,
            "note: endpoint: write \"METHOD /path\"");
    refused("type = 'action', description = 'x', endpoint = { verb = 'GET' }, " ACTION_EXEC,
            "note: endpoint.verb");
    refused("type = 'action', description = 'x', [1] = 'y', " ACTION_EXEC,
            "note: the declaration has a key that is not a string");
    refused("type = 'action', description = 'x', models = { 7 }, " ACTION_EXEC,
            "note: models: must be a table of Name = fields");
    refused("type = 'action', description = 'x', models = { ['bad name'] = {} }, " ACTION_EXEC,
            "note: models.bad name: a model name");
    refused("type = 'action', description = 'x', checkpoint = { a = 'string' }, " ACTION_EXEC,
            "note: checkpoint: only a sync has this field");
}

static void test_sync_rules(void **state)
{
    (void)state;
    const char *m = "models = { Item = { id = 'string' } }, ";
    char body[1024];
#define SYNC(extra)                                                                                \
    (snprintf(body, sizeof body, "type = 'sync', description = 'x', %s" extra, m), body)
    refused(SYNC("" SYNC_EXEC), "note: frequency: is required");
    refused(SYNC("frequency = 'sometimes', " SYNC_EXEC),
            "note: frequency: 'sometimes' is not a frequency");
    refused(SYNC("frequency = 'every 10 seconds', " SYNC_EXEC),
            "note: frequency: 'every 10 seconds' is too frequent: at least 30 seconds");
    refused(SYNC("frequency = '40d', " SYNC_EXEC), "note: frequency: '40d' is too long");
    refused(SYNC("frequency = '1h', sync_type = 'delta', " SYNC_EXEC),
            "note: sync_type: must be \"incremental\" or \"full\"");
    refused(SYNC("frequency = '1h', track_deletes = true, " SYNC_EXEC),
            "note: track_deletes: only a full sync");
    refused(SYNC("frequency = '1h', auto_start = 'yes', " SYNC_EXEC), "note: auto_start");
    refused(SYNC("frequency = '1h', input = { a = 'string' }, " SYNC_EXEC),
            "note: input: only an action has this field");
    refused(SYNC("frequency = '1h', webhook_subscriptions = {'x'}, " SYNC_EXEC),
            "note: webhook_subscriptions: needs an on_webhook function");
    refused(SYNC("frequency = '1h', on_webhook = 'handler', " SYNC_EXEC),
            "note: on_webhook: must be a function");
    refused(SYNC("frequency = '1h', checkpoint = { a = 'string[]' }, " SYNC_EXEC),
            "note: checkpoint.a: a checkpoint field is a string, number");
    refused(SYNC("frequency = '1h', checkpoint = 'string', " SYNC_EXEC),
            "note: checkpoint: must be a table of fields");
#undef SYNC
    refused("type = 'sync', description = 'x', frequency = '1h', " SYNC_EXEC,
            "note: models: a sync declares at least one model");
    refused("type = 'sync', description = 'x', frequency = '1h', models = { Item = { name = "
            "'string' } }, " SYNC_EXEC,
            "note: models.Item.id: a record model needs a required id");
    refused("type = 'sync', description = 'x', frequency = '1h', models = { Item = { id = "
            "'string?' } }, " SYNC_EXEC,
            "note: models.Item.id: a record model needs a required id");
    refused("type = 'sync', description = 'x', frequency = '1h', models = { Item = { id = "
            "'boolean' } }, " SYNC_EXEC,
            "note: models.Item.id: a record model needs a required id");
    refused("type = 'sync', description = 'x', frequency = '1h', models = { Item = { id = "
            "'string', x = 'Other' } }, " SYNC_EXEC,
            "note: models.Item.x: unknown type 'Other'");
}

static void test_chunk_errors(void **state)
{
    (void)state;
    jn_declaration_t d;
    jn_script_error_t err;
    assert_int_equal(load("note", "local a = 1\nlocal b = = 2\nreturn {}", &d, &err),
                     JN_SCRIPT_ERROR);
    assert_non_null(strstr(err.message, "note:2: unexpected symbol near '='"));
    assert_int_equal(load("note", "local a = 1\nerror('boom')", &d, &err), JN_SCRIPT_ERROR);
    assert_string_equal(err.message, "note:2: boom");
    assert_int_equal(load("note", "return 42", &d, &err), JN_SCRIPT_ERROR);
    assert_string_equal(err.message,
                        "note: the script must return a table declaring it (it returned number)");
    assert_int_equal(load("note", "local x = 1", &d, &err), JN_SCRIPT_ERROR);
    assert_non_null(strstr(err.message, "it returned nil"));
    /* The top level runs under the declaration limits: a loop is stopped quickly. */
    assert_int_equal(load("note", "while true do end", &d, &err), JN_SCRIPT_CPU);
    assert_non_null(strstr(err.message, "note:1: cpu limit"));
    assert_int_equal(load("note", "local t = {} for i = 1, 1e9 do t[i] = i end", &d, &err),
                     JN_SCRIPT_MEMORY);
    assert_int_equal(load("note", "\x1bLua", &d, &err), JN_SCRIPT_ERROR);
    assert_non_null(strstr(err.message, "binary chunk"));
    /* Metamethods of the returned table are not run: fields are read raw. */
    assert_int_equal(load("note",
                          "return setmetatable({}, {__index = function() while true do end end})",
                          &d, &err),
                     JN_SCRIPT_ERROR);
    assert_non_null(strstr(err.message, "note: type: is required"));
}

static void test_json_form(void **state)
{
    (void)state;
    jn_declaration_t d, back;
    accepted("type = 'sync', description = 'Items', frequency = 'every 2 hours', "
             "models = { Item = { id = 'string', owner = 'User?' }, User = { id = 'integer' } }, "
             "endpoint = { method = 'GET', path = '/items', group = 'Items' }, " SYNC_EXEC,
             &d);
    char why[512];
    json_object *copy = json_tokener_parse(json_object_to_json_string(d.json));
    assert_int_equal(jn_declaration_from_json(copy, &back, why, sizeof why), JN_OK);
    json_object_put(copy);
    assert_int_equal(back.kind, JN_SCRIPT_SYNC);
    assert_int_equal(back.frequency_seconds, 7200);
    assert_non_null(jn_model_get(back.models, "User"));
    assert_true(json_object_equal(back.json, d.json));
    jn_declaration_cleanup(&back);
    /* A stored form that no longer passes is refused the same way. */
    json_object *bad = json_tokener_parse(json_object_to_json_string(d.json));
    json_object_object_add(bad, "frequency", json_object_new_string("5s"));
    assert_int_equal(jn_declaration_from_json(bad, &back, why, sizeof why), JN_ERR_INVALID);
    assert_non_null(strstr(why, "note: frequency: '5s' is too frequent"));
    json_object_put(bad);
    bad = json_tokener_parse("{\"type\":\"action\"}");
    assert_int_equal(jn_declaration_from_json(bad, &back, why, sizeof why), JN_ERR_INVALID);
    json_object_put(bad);
    jn_declaration_cleanup(&d);
}

static void test_frequency(void **state)
{
    (void)state;
    struct {
        const char *text;
        int64_t seconds;
    } good[] = {
        {"every 5 minutes", 300},
        {"5m", 300},
        {"5 min", 300},
        {"1h", 3600},
        {"every hour", 3600},
        {"every day", 86400},
        {"Every Day", 86400},
        {"30s", 30},
        {"every 30 seconds", 30},
        {"1.5h", 5400},
        {"every half hour", 1800},
        {"every quarter hour", 900},
        {"every half day", 43200},
        {"every week", 604800},
        {"2w", 1209600},
        {"every month", 2592000},
        {" every 2 hours ", 7200},
        {"0.5m", 30},
        {"31d", 2678400},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t s = -1;
        char why[256];
        if (jn_frequency_parse(good[i].text, &s, why, sizeof why) != JN_OK)
            fail_msg("'%s' refused: %s", good[i].text, why);
        if (s != good[i].seconds)
            fail_msg("'%s' gave %lld, wanted %lld", good[i].text, (long long)s,
                     (long long)good[i].seconds);
    }
    const char *poor[] = {
        "",     "every",       "5",       "minutes", "5 parsecs",    "-5m",
        "1e3s", "1.2345h",     "every 1", "29s",     "every second", "every minute fast",
        "32d",  "9999999999s", "5m5s",    "1..5h"};
    for (size_t i = 0; i < sizeof poor / sizeof poor[0]; i++) {
        int64_t s = -1;
        char why[256];
        if (jn_frequency_parse(poor[i], &s, why, sizeof why) == JN_OK)
            fail_msg("'%s' accepted as %lld", poor[i], (long long)s);
    }
    char why[256];
    int64_t s;
    assert_int_equal(jn_frequency_parse("every minute", &s, why, sizeof why), JN_OK);
    assert_int_equal(s, 60);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void test_examples_load(void **state)
{
    (void)state;
    struct {
        const char *file;
        const char *name;
        jn_script_kind_t kind;
    } examples[] = {
        {"fake-provider/fetch-items.lua", "fetch-items", JN_SCRIPT_SYNC},
        {"fake-provider/sync-items-incremental.lua", "sync-items-incremental", JN_SCRIPT_SYNC},
        {"fake-provider/post-note.lua", "post-note", JN_SCRIPT_ACTION},
        {"github/fetch-issues.lua", "fetch-issues", JN_SCRIPT_SYNC},
        {"github/create-issue.lua", "create-issue", JN_SCRIPT_ACTION},
        {"hubspot/fetch-contacts.lua", "fetch-contacts", JN_SCRIPT_SYNC},
        {"hubspot/create-contact.lua", "create-contact", JN_SCRIPT_ACTION},
        {"slack/send-message.lua", "send-message", JN_SCRIPT_ACTION},
        {"slack/fetch-channels.lua", "fetch-channels", JN_SCRIPT_SYNC},
    };
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, examples[i].file);
        size_t len;
        char *src = read_file(path, &len);
        jn_declaration_t d;
        jn_script_error_t err;
        if (jn_declaration_load(examples[i].name, src, len, NULL, &d, &err) != JN_SCRIPT_OK)
            fail_msg("%s: %s", examples[i].file, err.message);
        assert_int_equal(d.kind, examples[i].kind);
        jn_declaration_cleanup(&d);
        free(src);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action),       cmocka_unit_test(test_sync),
        cmocka_unit_test(test_rules),        cmocka_unit_test(test_sync_rules),
        cmocka_unit_test(test_chunk_errors), cmocka_unit_test(test_json_form),
        cmocka_unit_test(test_frequency),    cmocka_unit_test(test_examples_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
