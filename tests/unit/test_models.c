/*
 * Unit tests for common/scripts/models.c: every type, nesting, optional fields, arrays,
 * references, unions, and errors that name the index and the field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "scripts/models.h"

static const char *const MODELS =
    "{\"Contact\": {\"id\": \"string\", \"email\": \"string?\", \"address\": \"Address?\","
    "  \"tags\": \"string[]\", \"score\": \"number?\"},"
    " \"Address\": {\"street\": \"string\", \"zip\": \"string|integer\"},"
    " \"Tree\": {\"id\": \"integer\", \"children\": \"Tree[]?\"}}";

typedef struct {
    jn_model_set_t *set;
    const jn_model_type_t *type;
} compiled_t;

static compiled_t compile(const char *models, const char *spec)
{
    compiled_t c = {0};
    jn_field_error_t e;
    json_object *m = models ? json_tokener_parse(models) : NULL;
    if (jn_model_set_new(m, &c.set, &e))
        fail_msg("models: %s: %s", e.path, e.message);
    json_object_put(m);
    json_object *s = json_tokener_parse(spec);
    assert_non_null(s);
    if (jn_model_compile(c.set, s, "value", &c.type, &e))
        fail_msg("%s: %s: %s", spec, e.path, e.message);
    json_object_put(s);
    return c;
}

/* Validates value (JSON text) against spec; expects an error containing want (NULL for
 * success). Returns the validated value as text in out. */
static void check_base(const char *spec, const char *value, const char *want, int base,
                       unsigned flags, char *out, size_t cap)
{
    compiled_t c = compile(MODELS, spec);
    json_object *v = json_tokener_parse(value);
    if (!v && strcmp(value, "null") != 0)
        fail_msg("bad test JSON %s", value);
    jn_field_error_t e;
    jn_err_t err = jn_model_validate(c.type, &v, "value", base, flags, &e);
    char full[512];
    snprintf(full, sizeof full, "%s: %s", e.path, e.message);
    if (want && err == JN_OK)
        fail_msg("%s accepted %s, wanted an error '%s'", spec, value, want);
    if (!want && err)
        fail_msg("%s refused %s: %s", spec, value, full);
    if (want && !strstr(full, want))
        fail_msg("%s with %s: '%s' does not contain '%s'", spec, value, full, want);
    if (out)
        snprintf(out, cap, "%s",
                 v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN) : "null");
    json_object_put(v);
    jn_model_set_free(c.set);
}

static void ok(const char *spec, const char *value)
{
    check_base(spec, value, NULL, 0, 0, NULL, 0);
}

static void bad(const char *spec, const char *value, const char *want)
{
    check_base(spec, value, want, 0, 0, NULL, 0);
}

static void test_scalars(void **state)
{
    (void)state;
    ok("\"string\"", "\"x\"");
    bad("\"string\"", "3", "value: expected a string, got a number");
    ok("\"number\"", "3");
    ok("\"number\"", "3.5");
    bad("\"number\"", "\"3\"", "expected a number, got a string");
    ok("\"integer\"", "-7");
    bad("\"integer\"", "3.5", "expected an integer, got a number");
    ok("\"boolean\"", "false");
    bad("\"boolean\"", "0", "expected a boolean");
    ok("\"object\"", "{\"anything\": [1]}");
    bad("\"object\"", "[]", "expected an object, got an array");
    ok("\"any\"", "[1, {\"a\": null}]");
    ok("\"any\"", "null");
    ok("\"null\"", "null");
    bad("\"null\"", "1", "expected null");
    ok("\"'open'|'closed'\"", "\"open\"");
    bad("\"'open'|'closed'\"", "\"pending\"", "expected 'open' or 'closed', got a string");
    ok("\"string|number\"", "1");
    bad("\"string|number\"", "true", "expected a string or a number, got a boolean");
    bad("\"string\"", "null", "expected a string, got null");
    ok("\"string?\"", "null");
}

static void test_integer_from_float(void **state)
{
    (void)state;
    char out[64];
    check_base("\"integer\"", "3.0", NULL, 0, 0, out, sizeof out);
    assert_string_equal(out, "3");
}

static void test_dates(void **state)
{
    (void)state;
    const char *good[] = {"2024-01-31",
                          "2024-02-29",
                          "2024-01-31T10:00:00Z",
                          "2024-01-31T10:00Z",
                          "2024-01-31T10:00:00.123456Z",
                          "2024-01-31T10:00:00+02:00",
                          "2024-01-31T10:00:00-0530",
                          "2024-01-31 10:00:00",
                          "2024-01-31T23:59:60Z"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!jn_model_is_date(good[i], strlen(good[i])))
            fail_msg("'%s' refused", good[i]);
    }
    const char *poor[] = {"2023-02-29",
                          "2024-13-01",
                          "2024-01-32",
                          "2024-1-31",
                          "2024-01-31T24:00:00Z",
                          "2024-01-31T10:60Z",
                          "2024-01-31T10:00:00+25:00",
                          "2024-01-31T10",
                          "yesterday",
                          "",
                          "2024-01-31Z",
                          "2024-01-31T10:00:00.Z",
                          "2024-01-31T10:00:00Zjunk"};
    for (size_t i = 0; i < sizeof poor / sizeof poor[0]; i++) {
        if (jn_model_is_date(poor[i], strlen(poor[i])))
            fail_msg("'%s' accepted", poor[i]);
    }
    ok("\"date\"", "\"2024-05-01T12:00:00Z\"");
    bad("\"date\"", "\"05/01/2024\"", "expected a date (ISO 8601), got a string");
}

static void test_fields_and_nesting(void **state)
{
    (void)state;
    const char *spec =
        "{\"id\": \"string\", \"meta\": {\"size\": \"integer\", \"note\": \"string?\"},"
        " \"lines\": [{\"sku\": \"string\", \"qty\": \"integer\"}]}";
    ok(spec, "{\"id\": \"a\", \"meta\": {\"size\": 1}, \"lines\": [{\"sku\": \"x\", \"qty\": 2}]}");
    bad(spec, "{\"meta\": {\"size\": 1}, \"lines\": []}", "value.id: is required");
    bad(spec, "{\"id\": \"a\", \"meta\": {\"size\": \"1\"}, \"lines\": []}",
        "value.meta.size: expected an integer, got a string");
    bad(spec,
        "{\"id\": \"a\", \"meta\": {\"size\": 1}, \"lines\": [{\"sku\": \"x\", \"qty\": 2}, "
        "{\"sku\": 5, \"qty\": 1}]}",
        "value.lines[1].sku: expected a string, got a number");
    bad(spec, "{\"id\": \"a\", \"meta\": {\"size\": 1}, \"lines\": [], \"extra\": 1}",
        "value.extra: is not a field of the model");
    bad(spec, "{\"id\": \"a\", \"meta\": {\"size\": 1, \"odd key\": 1}, \"lines\": []}",
        "value.meta[\"odd key\"]: is not a field");
    bad(spec, "[]", "value: expected an object, got an array");
    /* Optional fields may be absent or null. */
    ok(spec, "{\"id\": \"a\", \"meta\": {\"size\": 1, \"note\": null}, \"lines\": []}");
}

static void test_index_base(void **state)
{
    (void)state;
    /* From a script (1-based, Lua's lists) or from an API client (0-based JSON). */
    check_base("\"integer[]\"", "[1, 2, \"x\"]", "value[3]: expected an integer", 1, 0, NULL, 0);
    check_base("\"integer[]\"", "[1, 2, \"x\"]", "value[2]: expected an integer", 0, 0, NULL, 0);
}

static void test_arrays(void **state)
{
    (void)state;
    ok("\"string[]\"", "[\"a\", \"b\"]");
    ok("\"string[]\"", "[]");
    bad("\"string[]\"", "[\"a\", null]", "value[1]: expected a string, got null");
    ok("\"string[][]\"", "[[\"a\"], []]");
    bad("\"string[][]\"", "[[\"a\"], [1]]", "value[1][0]: expected a string");
    ok("[\"integer\"]", "[1, 2]");
    bad("\"string[]\"", "\"a\"", "expected an array, got a string");
    ok("\"string[]?\"", "null");
    /* An empty object (an empty Lua table) stands for an empty array. */
    char out[64];
    check_base("{\"tags\": \"string[]\"}", "{\"tags\": {}}", NULL, 1, 0, out, sizeof out);
    assert_string_equal(out, "{\"tags\":[]}");
    check_base("\"string[]\"", "{}", NULL, 1, 0, out, sizeof out);
    assert_string_equal(out, "[]");
}

static void test_references(void **state)
{
    (void)state;
    ok("\"Contact\"", "{\"id\": \"c1\", \"tags\": [], \"address\": {\"street\": \"Main\", "
                      "\"zip\": 12345}}");
    bad("\"Contact\"", "{\"id\": \"c1\", \"tags\": [], \"address\": {\"street\": \"Main\"}}",
        "value.address.zip: is required");
    bad("\"Contact[]\"",
        "[{\"id\": \"c1\", \"tags\": []}, {\"id\": \"c2\", \"tags\": [],"
        " \"email\": 3}]",
        "value[1].email: expected a string, got a number");
    bad("\"Contact\"", "{\"id\": \"c1\", \"tags\": [], \"nope\": 1}",
        "value.nope: is not a field of model Contact");
    /* A recursive model: the walk follows the value, which is finite. */
    ok("\"Tree\"", "{\"id\": 1, \"children\": [{\"id\": 2}, {\"id\": 3, \"children\": "
                   "[{\"id\": 4}]}]}");
    bad("\"Tree\"", "{\"id\": 1, \"children\": [{\"id\": 2, \"children\": [{\"id\": \"x\"}]}]}",
        "value.children[0].children[0].id: expected an integer");
}

static void test_rest_fields(void **state)
{
    (void)state;
    ok("{\"*\": \"number\"}", "{\"a\": 1, \"b\": 2.5}");
    bad("{\"*\": \"number\"}", "{\"a\": 1, \"b\": \"x\"}", "value.b: expected a number");
    ok("{\"id\": \"string\", \"*\": \"any\"}", "{\"id\": \"x\", \"whatever\": [1]}");
    bad("{\"id\": \"string\", \"*\": \"any\"}", "{\"whatever\": [1]}", "value.id: is required");
}

static void test_partial(void **state)
{
    (void)state;
    /* For updates: required fields of the top object may be missing, types still hold. */
    check_base("\"Contact\"", "{\"email\": \"a@b.c\"}", NULL, 1, JN_MODEL_PARTIAL, NULL, 0);
    check_base("\"Contact\"", "{\"email\": 3}", "value.email: expected a string", 1,
               JN_MODEL_PARTIAL, NULL, 0);
    check_base("\"Contact\"", "{\"address\": {\"zip\": 1}}", "value.address.street: is required", 1,
               JN_MODEL_PARTIAL, NULL, 0);
}

static void compile_fails(const char *models, const char *spec, const char *want)
{
    jn_model_set_t *set = NULL;
    jn_field_error_t e;
    json_object *m = models ? json_tokener_parse(models) : NULL;
    jn_err_t err = jn_model_set_new(m, &set, &e);
    json_object_put(m);
    if (!err && spec) {
        json_object *s = json_tokener_parse(spec);
        const jn_model_type_t *t;
        err = jn_model_compile(set, s, "input", &t, &e);
        json_object_put(s);
    }
    jn_model_set_free(set);
    if (!err)
        fail_msg("%s / %s compiled, wanted '%s'", models ? models : "-", spec ? spec : "-", want);
    char full[512];
    snprintf(full, sizeof full, "%s: %s", e.path, e.message);
    if (!strstr(full, want))
        fail_msg("'%s' does not contain '%s'", full, want);
}

static void test_compile_errors(void **state)
{
    (void)state;
    compile_fails(NULL, "\"strin\"", "input: unknown type 'strin'");
    compile_fails(NULL, "{\"a\": {\"b\": \"Nope[]\"}}", "input.a.b: unknown type 'Nope'");
    compile_fails(NULL, "\"string?[]\"", "'?' may only end a type");
    compile_fails(NULL, "\"'open\"", "a literal is not closed");
    compile_fails(NULL, "\"string|\"", "a type is missing");
    compile_fails(NULL, "[\"a\", \"b\"]", "exactly one element");
    compile_fails(NULL, "3", "a model is a type");
    compile_fails(NULL, "{\"\": \"string\"}", "1 to 128 characters");
    compile_fails("{\"string\": {}}", NULL, "models.string: a model name");
    compile_fails("{\"9lives\": {}}", NULL, "models.9lives: a model name");
    compile_fails("{\"A\": \"string\"}", NULL, "models.A: a model must be a table of fields");
    compile_fails("{\"A\": {\"b\": \"B\"}}", NULL, "models.A.b: unknown type 'B'");
    compile_fails("[]", NULL, "models: must be a table");
}

static void test_descriptions(void **state)
{
    (void)state;
    compiled_t c = compile(MODELS, "{\"id\": \"string\", \"tags\": \"string[]?\", "
                                   "\"contact\": \"Contact\", \"n\": \"integer|null\"}");
    json_object *schema = jn_model_json_schema(c.type);
    assert_string_equal(json_object_to_json_string_ext(schema, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE),
                        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                        "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
                        "\"contact\":{\"$ref\":\"#/definitions/Contact\"},"
                        "\"n\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"null\"}]}},"
                        "\"required\":[\"id\",\"contact\",\"n\"],\"additionalProperties\":false}");
    json_object_put(schema);
    json_object *fields = jn_model_nango_fields(c.type);
    assert_string_equal(json_object_to_json_string_ext(fields, JSON_C_TO_STRING_PLAIN),
                        "[{\"name\":\"id\",\"value\":\"string\"},"
                        "{\"name\":\"tags\",\"array\":true,\"value\":\"string\",\"optional\":true},"
                        "{\"name\":\"contact\",\"value\":\"Contact\",\"model\":true},"
                        "{\"name\":\"n\",\"union\":true,\"value\":[{\"name\":\"0\",\"value\":"
                        "\"number\",\"tsType\":true},{\"name\":\"1\",\"value\":\"null\"}]}]");
    json_object_put(fields);
    assert_int_equal(jn_model_count(c.set), 3);
    assert_string_equal(jn_model_name(c.set, 0), "Contact");
    assert_true(jn_model_is_object(jn_model_get(c.set, "Address")));
    assert_non_null(jn_model_field(jn_model_get(c.set, "Contact"), "email"));
    assert_null(jn_model_field(jn_model_get(c.set, "Contact"), "nope"));
    jn_model_set_free(c.set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),      cmocka_unit_test(test_integer_from_float),
        cmocka_unit_test(test_dates),        cmocka_unit_test(test_fields_and_nesting),
        cmocka_unit_test(test_index_base),   cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_references),   cmocka_unit_test(test_rest_fields),
        cmocka_unit_test(test_partial),      cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_descriptions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
