/*
 * Unit: Nango's shapes of a function (api-gateway/function_shapes.c), from declarations
 * read exactly as a deployment reads them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "function_shapes.h"

static jn_declaration_t load(const char *name, const char *src)
{
    jn_declaration_t d;
    jn_script_error_t err;
    jn_sandbox_limits_t lim = jn_sandbox_limits_declaration();
    if (jn_declaration_load(name, src, strlen(src), &lim, &d, &err) != JN_SCRIPT_OK)
        fail_msg("%s", err.message);
    return d;
}

static const char *at(json_object *o, const char *path)
{
    char copy[128];
    snprintf(copy, sizeof copy, "%s", path);
    char *save = NULL;
    for (char *part = strtok_r(copy, ".", &save); part && o; part = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)strtol(part, NULL, 10));
        else if (!json_object_object_get_ex(o, part, &o))
            return NULL;
    }
    return o ? json_object_get_string(o) : NULL;
}

static const char action[] =
    "return { type = 'action', description = 'Creates a note\\n- text: what the note says\\n"
    "  -  tags :  labels to file it under\\n- nothing: not an input field',\n"
    "  scopes = { 'notes:write' },\n"
    "  models = { Receipt = { id = 'string' } },\n"
    "  input = { text = 'string', tags = 'string[]?' }, output = 'Receipt',\n"
    "  exec = function(ctx, input) return { id = 'x' } end }";

static const char sync[] =
    "return { type = 'sync', description = 'Fetches items', frequency = 'every hour',\n"
    "  sync_type = 'full', track_deletes = true, auto_start = false,\n"
    "  metadata = { owner = 'string' },\n"
    "  models = { Item = { id = 'string' }, Tag = { id = 'string' } },\n"
    "  exec = function(ctx) end }";

static void test_action_shapes(void **state)
{
    (void)state;
    jn_declaration_t d = load("create-note", action);
    json_object *f = jn_shape_function("create-note", "action", &d);
    assert_string_equal(at(f, "type"), "action");
    assert_string_equal(at(f, "input"), "CreateNoteInput"); /* inline: named after it */
    assert_string_equal(at(f, "returns.0"), "Receipt");     /* named model: its own name */
    assert_string_equal(at(f, "scopes.0"), "notes:write");
    assert_string_equal(at(f, "json_schema.definitions.CreateNoteInput.properties.text.type"),
                        "string");
    assert_string_equal(at(f, "json_schema.definitions.Receipt.type"), "object");
    assert_null(json_object_object_get(f, "runs"));
    json_object_put(f);

    /* OpenAI: the input's properties, described by the description's "- name: text" lines,
     * only for fields the input has. */
    json_object *o = jn_shape_openai_function("create-note", "notes", &d);
    assert_string_equal(at(o, "parameters.type"), "object");
    assert_string_equal(at(o, "parameters.properties.text.description"), "what the note says");
    assert_string_equal(at(o, "parameters.properties.tags.description"), "labels to file it under");
    assert_null(at(o, "parameters.properties.nothing"));
    assert_string_equal(at(o, "parameters.required.0"), "text");
    assert_null(at(o, "parameters.required.1"));
    json_object_put(o);
    jn_declaration_cleanup(&d);
}

static void test_sync_shapes(void **state)
{
    (void)state;
    jn_declaration_t d = load("fetch-items", sync);
    json_object *f = jn_shape_function("fetch-items", "sync", &d);
    assert_string_equal(at(f, "runs"), "every hour");
    assert_false(json_object_get_boolean(json_object_object_get(f, "auto_start")));
    assert_true(json_object_get_boolean(json_object_object_get(f, "track_deletes")));
    assert_string_equal(at(f, "input"), "FetchItemsMetadata");
    assert_string_equal(at(f, "returns.0"), "Item");
    assert_string_equal(at(f, "returns.1"), "Tag");
    json_object_put(f);

    jn_function_t row = {.id = 42, .name = "fetch-items", .type = "sync"};
    snprintf(row.deployed_at, sizeof row.deployed_at, "2026-01-01T00:00:00.000Z");
    json_object *c = jn_shape_script_config(&row, &d);
    assert_string_equal(at(c, "id"), "42");
    assert_string_equal(at(c, "sync_type"), "full");
    assert_string_equal(at(c, "input"), "FetchItemsMetadata");
    assert_string_equal(at(c, "models.2.name"), "FetchItemsMetadata");
    assert_string_equal(at(c, "source"), "standalone");
    assert_null(at(c, "sdk_version"));
    json_object_put(c);

    /* A sync takes no parameters; its description stays its own. */
    json_object *o = jn_shape_openai_function("fetch-items", "notes", &d);
    assert_string_equal(at(o, "description"), "Fetches items");
    assert_string_equal(at(o, "parameters.properties"), "{ }");
    assert_string_equal(at(o, "parameters.required"), "[ ]");
    json_object_put(o);
    jn_declaration_cleanup(&d);

    /* A stored declaration that could not be read: what the row alone tells. */
    json_object *l = jn_shape_listed_function(&row, NULL);
    assert_string_equal(at(l, "name"), "fetch-items");
    assert_string_equal(at(l, "type"), "sync");
    assert_string_equal(at(l, "id"), "42");
    assert_string_equal(at(l, "last_deployed"), "2026-01-01T00:00:00.000Z");
    assert_int_equal(json_object_array_length(json_object_object_get(l, "returns")), 0);
    json_object_put(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action_shapes),
        cmocka_unit_test(test_sync_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
