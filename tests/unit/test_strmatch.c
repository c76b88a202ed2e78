/*
 * Unit tests for common/scripts/strmatch.c: the charged matcher must behave exactly
 * like Lua's own string.find/match/gmatch/gsub. Each case runs both (the stock library
 * in the same state) and compares every result and every error message; then a seeded
 * fuzzer does the same for thousands of random patterns and subjects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "scripts/sandbox.h"
#include "scripts/strmatch.h"

/* Lua helpers: run(f, ...) gives a comparable text of f's results or error; same(...)
 * compares the stock function with ours. */
static const char *const prelude =
    "local function show(ok, ...)\n"
    "  local n = select('#', ...)\n"
    "  local parts = {ok and 'ok' or 'err'}\n"
    "  for i = 1, n do\n"
    "    local v = select(i, ...)\n"
    "    local s = type(v) == 'string' and ('%q'):format(v) or tostring(v)\n"
    "    if not ok then s = s:gsub(\"to '[^']*'\", \"to 'f'\") end\n"
    "    parts[#parts + 1] = math.type(v) or s\n"
    "    parts[#parts + 1] = s\n"
    "  end\n"
    "  return table.concat(parts, ' ')\n"
    "end\n"
    "local function gm(f, s, p, init)\n"
    "  local out = {}\n"
    "  for a, b, c in f(s, p, init) do out[#out + 1] = tostring(a) .. '|' .. tostring(b) .. '|' "
    "..\n"
    "    tostring(c) if #out > 1000 then break end end\n"
    "  return table.concat(out, ',')\n"
    "end\n"
    "function same(name, ...)\n"
    "  local a, b\n"
    "  if name == 'gmatch' then\n"
    "    a = show(pcall(gm, string.gmatch, ...))\n"
    "    b = show(pcall(gm, ours.gmatch, ...))\n"
    "  else\n"
    "    a = show(pcall(string[name], ...))\n"
    "    b = show(pcall(ours[name], ...))\n"
    "  end\n"
    "  if a ~= b then\n"
    "    local args = {}\n"
    "    for i = 1, select('#', ...) do args[i] = ('%q'):format(tostring(select(i, ...))) end\n"
    "    error(name .. '(' .. table.concat(args, ', ') .. '):\\n stock: ' .. a .. '\\n ours:  ' "
    ".. b, 0)\n"
    "  end\n"
    "end\n";

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    jn_strmatch_install(L);
    lua_setglobal(L, "ours");
    if (luaL_dostring(L, prelude) != LUA_OK)
        fail_msg("prelude: %s", lua_tostring(L, -1));
    return L;
}

static void check(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != LUA_OK)
        fail_msg("%s", lua_tostring(L, -1));
}

static void test_find_and_match(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check(L, "same('find', 'hello world', 'o w')\n"
             "same('find', 'hello world', 'l+')\n"
             "same('find', 'hello world', 'l', 5)\n"
             "same('find', 'hello world', 'l', -2)\n"
             "same('find', 'hello world', 'l', -100)\n"
             "same('find', 'hello world', '', 20)\n"
             "same('find', 'hello world', '', 12)\n"
             "same('find', 'hello', '')\n"
             "same('find', 'a.b', '.', 1, true)\n"
             "same('find', 'a+b', '+', 1, true)\n"
             "same('find', 'abc', '^b')\n"
             "same('find', 'abc', '^a')\n"
             "same('find', 'abc', 'c$')\n"
             "same('find', 'abc', 'b$')\n"
             "same('find', 'a$c', '$c')\n"
             "same('find', 'key = value', '(%w+)%s*=%s*(%w+)')\n"
             "same('find', 'hello', '()ll()')\n"
             "same('match', '  trim me  ', '^%s*(.-)%s*$')\n"
             "same('match', 'THE (quick) fox', '%((%a+)%)')\n"
             "same('match', 'f(a(b)c)d', '%b()')\n"
             "same('match', 'THE (quick) fox', '%f[%a]%a+')\n"
             "same('match', 'hello hello', '(h%a+) %1')\n"
             "same('match', '2024-01-31', '^(%d%d%d%d)-(%d%d)-(%d%d)$')\n"
             "same('match', 'x = [[a]]', '%[%[(.-)%]%]')\n"
             "same('match', 'abc', '[%a-z]+')\n"
             "same('match', 'a-z', '[a%-z]+')\n"
             "same('match', ']]]', '[]]+')\n"
             "same('match', 'xy^', '[^^x]+')\n"
             "same('match', 'aaab', 'a-b')\n"
             "same('match', 'aaab', 'a*')\n"
             "same('match', 'aaab', 'a?a?b')\n"
             "same('match', 'AbC', '%u%l%u')\n"
             "same('match', '\\0a\\0', '%z')\n"
             "same('match', 'a\\0b', 'a%Z*')\n"
             "same('match', 'a\\0b', '\\0b')\n"
             "same('match', '\\1\\2', '%c+')\n"
             "same('match', 'héllo', '[\\128-\\255]+')\n"
             "same('match', 'x', '%x', 1)\n"
             "same('match', 'abc', '.', 4)\n"
             "same('match', 'abc', '()', 4)\n");
    lua_close(L);
}

static void test_errors_are_the_same(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check(L, "same('find', 'abc', '%')\n"
             "same('find', 'abc', '[a')\n"
             "same('find', 'abc', '[')\n"
             "same('find', 'abc', '[^')\n"
             "same('find', 'abc', '(()')\n"
             "same('find', 'abc', 'a)')\n"
             "same('find', 'abc', '%1')\n"
             "same('find', 'abc', '(a)%2')\n"
             "same('find', 'abc', '(a%1)')\n"
             "same('find', 'abc', '%b')\n"
             "same('find', 'abc', '%bx')\n"
             "same('find', 'abc', '%f')\n"
             "same('find', 'abc', '%fa')\n"
             "same('match', 'abc', string.rep('(', 40) .. 'a' .. string.rep(')', 40))\n"
             "same('match', string.rep('a', 300), string.rep('a?', 300))\n"
             "same('gsub', 'abc', 'b', '%2')\n"
             "same('gsub', 'abc', 'b', '%x')\n"
             "same('gsub', 'abc', 'b', '%')\n"
             "same('gsub', 'abc', 'b', true)\n"
             "same('gsub', 'abc', '(b)', function() return {} end)\n"
             "same('find', nil, 'a')\n"
             "same('find', 'a', {})\n"
             "same('gsub', 'a', 'a', 'b', 'x')\n");
    lua_close(L);
}

static void test_gmatch_and_gsub(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check(L, "same('gmatch', 'one two  three', '%a+')\n"
             "same('gmatch', 'k1=v1, k2=v2', '(%w+)=(%w+)')\n"
             "same('gmatch', 'abc', '')\n"
             "same('gmatch', 'abc', '()')\n"
             "same('gmatch', 'aaa', 'a*')\n"
             "same('gmatch', 'abab', '^ab')\n"
             "same('gmatch', 'hello world', '%a+', 3)\n"
             "same('gmatch', 'hello world', '%a+', -5)\n"
             "same('gmatch', 'hello', '.', 10)\n"
             "same('gsub', 'hello world', 'o', '0')\n"
             "same('gsub', 'hello world', 'o', '0', 1)\n"
             "same('gsub', 'hello world', 'o', '0', 0)\n"
             "same('gsub', 'hello world', '(%w+)', '<%1>')\n"
             "same('gsub', 'hello world', '%w+', '%0 %0')\n"
             "same('gsub', 'hello', '', '-')\n"
             "same('gsub', 'abc', '%w', '%%')\n"
             "same('gsub', 'hello world', '(o)', 7)\n"
             "same('gsub', 'hello world', '%w+', {hello = 'HI', world = false})\n"
             "same('gsub', 'hello world', '%w+', function(w) return w:upper() end)\n"
             "same('gsub', 'hello world', '%w+', function(w) return nil end)\n"
             "same('gsub', '$name is $age', '%$(%w+)', {name = 'Ann', age = 7})\n"
             "same('gsub', 'abc', '^a', 'x')\n"
             "same('gsub', 'aaa', '^a', 'x')\n"
             "same('gsub', 'abc', '()', '%1')\n"
             "same('gsub', 'abc', 'b*', '-')\n");
    lua_close(L);
}

static void test_fuzz_against_stock(void **state)
{
    (void)state;
    lua_State *L = new_state();
    check(L,
          "math.randomseed(20261129)\n"
          "local items = {'a', 'b', '.', '%a', '%d', '%s', '%w', '%A', '[ab]', '[^a]', '[a-c]',\n"
          "  '%%', '%.', '(', ')', '()', '%1', '%bab', '%f[a]', '^', '$', 'x', '[%d]'}\n"
          "local quants = {'', '', '', '*', '+', '-', '?'}\n"
          "local chars = {'a', 'b', 'c', ' ', '1', 'x', '.', '%', '(', ')'}\n"
          "local fns = {'find', 'match', 'gmatch', 'gsub'}\n"
          "for i = 1, 4000 do\n"
          "  local p = {}\n"
          "  for k = 1, math.random(1, 6) do\n"
          "    p[#p + 1] = items[math.random(#items)] .. quants[math.random(#quants)]\n"
          "  end\n"
          "  local s = {}\n"
          "  for k = 1, math.random(0, 12) do s[#s + 1] = chars[math.random(#chars)] end\n"
          "  local f = fns[math.random(#fns)]\n"
          "  local init = math.random(1, 4) == 1 and math.random(-5, 8) or nil\n"
          "  if f == 'gsub' then same(f, table.concat(s), table.concat(p), '<%0>')\n"
          "  else same(f, table.concat(s), table.concat(p), init) end\n"
          "end\n");
    lua_close(L);
}

static void test_charged_in_a_sandbox(void **state)
{
    (void)state;
    /* Inside a sandbox a long match spends the budget; outside nothing is charged. */
    jn_sandbox_limits_t lim = jn_sandbox_limits_action();
    lim.instructions = 50000000;
    jn_sandbox_t *sb = jn_sandbox_new("m", &lim);
    /* 'a-b' tries every start and every length: about 4.5 million steps on 3,000 chars. */
    const char *src = "local s = string.rep('a', 3000)\nreturn tostring(s:find('a-b'))";
    jn_script_error_t err;
    assert_int_equal(jn_sandbox_load(sb, src, strlen(src), &err), JN_SCRIPT_OK);
    assert_int_equal(jn_sandbox_call(sb, 0, 1, &err), JN_SCRIPT_OK);
    assert_string_equal(lua_tostring(jn_sandbox_state(sb), -1), "nil");
    assert_true(jn_sandbox_instructions(sb) >= 4000000);
    jn_sandbox_free(sb);

    lim.instructions = 5000000;
    sb = jn_sandbox_new("m", &lim);
    const char *heavy =
        "local s = string.rep('a', 3000)\nreturn s:find(string.rep('a-', 3) .. 'b')";
    assert_int_equal(jn_sandbox_load(sb, heavy, strlen(heavy), &err), JN_SCRIPT_OK);
    assert_int_equal(jn_sandbox_call(sb, 0, 1, &err), JN_SCRIPT_CPU);
    assert_non_null(strstr(err.message, "m:2: cpu limit"));
    jn_sandbox_free(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_and_match),       cmocka_unit_test(test_errors_are_the_same),
        cmocka_unit_test(test_gmatch_and_gsub),      cmocka_unit_test(test_fuzz_against_stock),
        cmocka_unit_test(test_charged_in_a_sandbox),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
