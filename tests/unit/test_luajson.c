/*
 * Unit tests for common/scripts/luajson.c: the documented rules for arrays, objects,
 * empty tables and null; round trips; caps; and errors that name the place.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lauxlib.h>
#include <string.h>

#include "scripts/luajson.h"
#include "scripts/sandbox.h"

/* Runs src in a sandbox; it must return the string expected. */
static void lua_expect(const char *src, const char *expected)
{
    jn_sandbox_limits_t lim = jn_sandbox_limits_action();
    jn_sandbox_t *sb = jn_sandbox_new("j", &lim);
    jn_script_error_t err;
    if (jn_sandbox_load(sb, src, strlen(src), &err) || jn_sandbox_call(sb, 0, 1, &err))
        fail_msg("%s\n -> %s", src, err.message);
    const char *got = lua_tostring(jn_sandbox_state(sb), -1);
    if (!got || strcmp(got, expected) != 0)
        fail_msg("%s\n -> '%s', wanted '%s'", src, got ? got : "(not a string)", expected);
    jn_script_error_cleanup(&err);
    jn_sandbox_free(sb);
}

/* Runs src; it must fail with a message containing part. */
static void lua_fails(const char *src, const char *part)
{
    jn_sandbox_limits_t lim = jn_sandbox_limits_action();
    jn_sandbox_t *sb = jn_sandbox_new("j", &lim);
    jn_script_error_t err;
    if (jn_sandbox_load(sb, src, strlen(src), &err) == JN_SCRIPT_OK &&
        jn_sandbox_call(sb, 0, 1, &err) == JN_SCRIPT_OK)
        fail_msg("%s\n -> succeeded, wanted an error with '%s'", src, part);
    if (!strstr(err.message, part))
        fail_msg("%s\n -> '%s' does not contain '%s'", src, err.message, part);
    jn_script_error_cleanup(&err);
    jn_sandbox_free(sb);
}

static void test_encode_scalars(void **state)
{
    (void)state;
    lua_expect("return json.encode(42)", "42");
    lua_expect("return json.encode(-7)", "-7");
    lua_expect("return json.encode(0.1)", "0.1");
    lua_expect("return json.encode(3.0)", "3.0");
    lua_expect("return json.encode(1e300)", "1e+300");
    lua_expect("return json.encode(1/3)", "0.3333333333333333");
    lua_expect("return json.encode(true) .. json.encode(false)", "truefalse");
    lua_expect("return json.encode(nil) .. json.encode(json.null)", "nullnull");
    lua_expect("return json.encode('a\"b\\\\c\\n/é')", "\"a\\\"b\\\\c\\n/é\"");
    lua_expect("return json.encode(math.maxinteger)", "9223372036854775807");
}

static void test_encode_tables(void **state)
{
    (void)state;
    lua_expect("return json.encode({1, 2, 3})", "[1,2,3]");
    lua_expect("return json.encode({b = 1, a = {c = true}, ['z z'] = 'x'})",
               "{\"a\":{\"c\":true},\"b\":1,\"z z\":\"x\"}");
    lua_expect("return json.encode({})", "{}");
    lua_expect("return json.encode(json.array())", "[]");
    lua_expect("return json.encode(json.array({}))", "[]");
    lua_expect("return json.encode({json.null, 2})", "[null,2]");
    lua_expect("return json.encode({a = json.null})", "{\"a\":null}");
    lua_expect("return json.encode({{}, {x = {}}})", "[{},{\"x\":{}}]");
    lua_expect("return json.encode(json.object(json.decode('[]')))", "{}");
    /* Equal tables give equal text whatever their insertion order. */
    lua_expect("local a = {} a.x = 1 a.y = 2 a.z = 3 local b = {} b.z = 3 b.x = 1 b.y = 2\n"
               "return tostring(json.encode(a) == json.encode(b))",
               "true");
}

static void test_encode_errors_name_the_place(void **state)
{
    (void)state;
    lua_fails("return json.encode({1, 2, nil, 4})", "an array has holes");
    lua_fails("return json.encode({1, 2, x = 3})", "mixes string and integer keys");
    lua_fails("return json.encode({[1.5] = 1})", "fractional number key");
    lua_fails("return json.encode({[true] = 1})", "a table with a boolean key");
    lua_fails("return json.encode({a = {b = {function() end}}})",
              "a.b[1]: a function has no JSON form");
    lua_fails("return json.encode({items = {{id = 1}, {id = 0/0}}})", "items[2].id: NaN");
    lua_fails("return json.encode(1/0)", "an infinite number");
    lua_fails("return json.encode({['odd key'] = coroutine.create(print or tostring)})",
              "[\"odd key\"]: a thread has no JSON form");
    lua_fails("return json.encode('\\255')", "not valid UTF-8");
    lua_fails("return json.encode('a\\0b')", "NUL");
    lua_fails("return json.encode({['a\\0'] = 1})", "a key contains a NUL");
    lua_fails("local t = {} t.self = t return json.encode(t)", "nested deeper than 32 levels");
    lua_fails("local t = json.array({1}) t.x = 1 return json.encode(t)",
              "mixes string and integer keys");
}

static void test_decode_counts_its_c_memory(void **state)
{
    (void)state;
    /* 2 MB of text, a million values: ~75 MB of json-c tree before the Lua values are
     * made. Counted against the 64 MB cap, it is refused before it is built. */
    lua_fails("local s = '[' .. string.rep('0,', 1000000) .. '0]' return #json.decode(s)",
              "not enough memory");
    /* A refusal can be caught, and what it reserved is given back. */
    lua_expect("local s = '[' .. string.rep('0,', 1000000) .. '0]'\n"
               "for i = 1, 5 do assert(not pcall(json.decode, s)) end\n"
               "return tostring(#json.decode('[' .. string.rep('0,', 10000) .. '0]'))",
               "10001");
    /* Encoding builds the same tree from Lua values: it may take only the room left. */
    lua_fails("local t = {} for i = 1, 1000000 do t[i] = 0 end return #json.encode(t)",
              "not enough memory to convert it");
    lua_expect("local t = {} for i = 1, 10000 do t[i] = 0 end return tostring(#json.encode(t))",
               "20001");
    /* Commas inside strings are not values. */
    lua_expect("return tostring(#json.decode('\"' .. string.rep('a,', 4000000) .. '\"'))",
               "8000000");
}

static void test_decode(void **state)
{
    (void)state;
    lua_expect("local v = json.decode('{\"a\":1,\"b\":[1,2.5,\"x\"],\"c\":null}')\n"
               "return math.type(v.a) .. math.type(v.b[2]) .. v.b[3] .. tostring(v.c) .. #v.b",
               "integerfloatxnil3");
    lua_expect("local v = json.decode('[1,null,3]') return tostring(v[2] == json.null) .. #v",
               "true3");
    lua_expect("return tostring(json.decode('null') == json.null)", "true");
    lua_expect("return tostring(json.decode(' 12 '))", "12");
    lua_expect("return math.type(json.decode('18446744073709551615'))", "float");
    lua_expect("return tostring(json.is_array(json.decode('[]'))) .. "
               "tostring(json.is_array(json.decode('{}'))) .. tostring(json.is_array({1, 2}))",
               "truefalsetrue");
    lua_expect("return getmetatable(json.decode('[1]'))", "json.array");
    lua_expect("local s = json.decode('\"\\\\u00e9\\\\n\"') return s", "é\n");
    lua_fails("return json.decode('{\"a\":}')", "json.decode: invalid JSON");
    lua_fails("return json.decode('[1] x')", "invalid JSON at byte 4");
    lua_fails("return json.decode('\"\\\\u0000\"')", "json.decode");
    lua_fails("return json.decode(string.rep('[', 40) .. string.rep(']', 40))",
              "nested deeper than 32 levels");
    lua_fails("return json.decode('')", "empty");
}

static void test_round_trips(void **state)
{
    (void)state;
    const char *docs[] = {
        "{}",
        "[]",
        "[[],{}]",
        "{\"a\":[1,2,{\"b\":\"c\"}],\"d\":true,\"e\":false}",
        "[null,null]",
        "{\"n\":-0.5,\"u\":\"\\u263a\",\"x\":1.0}",
        "[1,\"two\",3.25,[4,[5,[6]]]]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        char src[512];
        snprintf(src, sizeof src, "return json.encode(json.decode(%s))",
                 i == 5 ? "'{\"n\":-0.5,\"u\":\"\\\\u263a\",\"x\":1.0}'" : "");
        if (i != 5) {
            snprintf(src, sizeof src, "return json.encode(json.decode([==[%s]==]))", docs[i]);
            lua_expect(src, docs[i]);
        } else {
            lua_expect(src, "{\"n\":-0.5,\"u\":\"\xe2\x98\xba\",\"x\":1.0}");
        }
    }
    /* A member whose value is null is left out (documented), so it does not round-trip. */
    lua_expect("return json.encode(json.decode('{\"a\":null,\"b\":1}'))", "{\"b\":1}");
}

static void test_caps_from_c(void **state)
{
    (void)state;
    jn_sandbox_limits_t lim = jn_sandbox_limits_action();
    jn_sandbox_t *sb = jn_sandbox_new("c", &lim);
    lua_State *L = jn_sandbox_state(sb);
    jn_script_error_t err;
    const char *src = "return {list = {string.rep('x', 1000), string.rep('y', 1000)}}";
    assert_int_equal(jn_sandbox_load(sb, src, strlen(src), &err), JN_SCRIPT_OK);
    assert_int_equal(jn_sandbox_call(sb, 0, 1, &err), JN_SCRIPT_OK);
    jn_luajson_caps_t caps = jn_luajson_caps_default();
    caps.max_bytes = 1500;
    json_object *v = NULL;
    char why[256];
    assert_int_equal(jn_luajson_to_json(L, -1, &caps, &v, why, sizeof why), JN_ERR_TOO_LARGE);
    assert_null(v);
    assert_non_null(strstr(why, "list[2]: larger than 1500 bytes"));
    caps.max_bytes = 4000;
    assert_int_equal(jn_luajson_to_json(L, -1, &caps, &v, why, sizeof why), JN_OK);
    assert_int_equal(json_object_array_length(json_object_object_get(v, "list")), 2);
    json_object_put(v);
    caps.max_depth = 1;
    assert_int_equal(jn_luajson_to_json(L, -1, &caps, &v, why, sizeof why), JN_ERR_TOO_LARGE);
    assert_non_null(strstr(why, "nested deeper than 1 levels"));
    /* The conversion reads only: the stack is as it was. */
    assert_int_equal(lua_gettop(L), 1);
    jn_sandbox_free(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_scalars),
        cmocka_unit_test(test_encode_tables),
        cmocka_unit_test(test_encode_errors_name_the_place),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_decode_counts_its_c_memory),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_caps_from_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
