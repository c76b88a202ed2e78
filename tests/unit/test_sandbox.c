/*
 * Unit tests for common/scripts/sandbox.c: every hostile script is contained with a
 * classified error that names the line, and the process (and the next sandbox) is
 * healthy afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scripts/luajson.h"
#include "scripts/sandbox.h"

static jn_sandbox_limits_t test_limits(void)
{
    jn_sandbox_limits_t lim = jn_sandbox_limits_action();
    lim.instructions = 20000000; /* ~0.1 s of Lua */
    lim.wall_ms = 5000;
    lim.memory_bytes = 16u << 20;
    return lim;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs src as chunk "t" with lim; returns the status and copies the message (or the
 * result's tostring on success) into msg. */
static jn_script_status_t run_with(const jn_sandbox_limits_t *lim, const char *src, char *msg,
                                   size_t cap)
{
    jn_sandbox_t *sb = jn_sandbox_new("t", lim);
    assert_non_null(sb);
    jn_script_error_t err;
    jn_script_status_t st = jn_sandbox_load(sb, src, strlen(src), &err);
    if (st == JN_SCRIPT_OK)
        st = jn_sandbox_call(sb, 0, 1, &err);
    if (st == JN_SCRIPT_OK) {
        lua_State *L = jn_sandbox_state(sb);
        const char *s = lua_tostring(L, -1);
        snprintf(msg, cap, "%s", s ? s : luaL_typename(L, -1));
        lua_pop(L, 1);
    } else {
        snprintf(msg, cap, "%s", err.message);
        assert_int_equal(err.status, st);
    }
    jn_script_error_cleanup(&err);
    jn_sandbox_free(sb);
    return st;
}

static jn_script_status_t run(const char *src, char *msg, size_t cap)
{
    jn_sandbox_limits_t lim = test_limits();
    return run_with(&lim, src, msg, cap);
}

/* Expects status and a message that starts with prefix and contains part. */
static void expect(const char *src, jn_script_status_t status, const char *prefix, const char *part)
{
    char msg[JN_SCRIPT_MESSAGE_MAX];
    jn_script_status_t st = run(src, msg, sizeof msg);
    if (st != status)
        fail_msg("%s\n -> %s (%s), wanted %s", src, jn_script_status_str(st), msg,
                 jn_script_status_str(status));
    if (prefix && strncmp(msg, prefix, strlen(prefix)) != 0)
        fail_msg("%s\n -> '%s' does not start with '%s'", src, msg, prefix);
    if (part && !strstr(msg, part))
        fail_msg("%s\n -> '%s' does not contain '%s'", src, msg, part);
}

/* After a hostile script, a fresh sandbox still works normally. */
static void expect_healthy(void)
{
    expect("local s = 0 for i = 1, 1000 do s = s + i end return tostring(s)", JN_SCRIPT_OK,
           "500500", NULL);
}

static void test_ordinary_script(void **state)
{
    (void)state;
    expect("return 'hello ' .. ('world'):upper()", JN_SCRIPT_OK, "hello WORLD", NULL);
    expect("local t = {3, 1, 2} table.sort(t) return table.concat(t, ',')", JN_SCRIPT_OK, "1,2,3",
           NULL);
    expect("return string.format('%05.1f|%d', math.pi, utf8.len('héllo'))", JN_SCRIPT_OK, "003.1|5",
           NULL);
    expect("return os.date('!%Y-%m-%d', 0)", JN_SCRIPT_OK, "1970-01-01", NULL);
    expect("return tostring(type(os.time()))", JN_SCRIPT_OK, "number", NULL);
}

static void test_runtime_error_names_line(void **state)
{
    (void)state;
    expect("local x\n\nreturn x.y", JN_SCRIPT_ERROR, "t:3: ", "attempt to index a nil value");
    expect("local a = 1\nerror('boom')", JN_SCRIPT_ERROR, "t:2: boom", NULL);
    expect("error('no position', 0)", JN_SCRIPT_ERROR, "t:1: no position", NULL);
    expect("error({code = 7})", JN_SCRIPT_ERROR, "t:1: ", "table value");
    expect("error({message = 'from a table'})", JN_SCRIPT_ERROR, "t:1: from a table", NULL);
    expect("local function f()\n  error('deep')\nend\nf()", JN_SCRIPT_ERROR, "t:2: deep", NULL);
}

static void test_syntax_error_names_line(void **state)
{
    (void)state;
    expect("local a = 1\nlocal = 2", JN_SCRIPT_ERROR, "t:2: ", "near '='");
    expect("return {", JN_SCRIPT_ERROR, "t:1: ", NULL);
}

static void test_infinite_loop(void **state)
{
    (void)state;
    int64_t t0 = mono_ms();
    expect("local n = 0\nwhile true do n = n + 1 end", JN_SCRIPT_CPU, "t:2: cpu limit", NULL);
    assert_true(mono_ms() - t0 < 3000);
    expect_healthy();
}

static void test_loop_inside_pcall_cannot_be_caught(void **state)
{
    (void)state;
    expect("local ok, e = pcall(function()\n  while true do end\nend)\nreturn 'survived: ' .. "
           "tostring(e)",
           JN_SCRIPT_CPU, "t:2: cpu limit", NULL);
    /* Catching again and again does not help: every instruction raises once dead. */
    expect("for i = 1, 100 do\n  pcall(function() while true do end end)\nend\nreturn 'x'",
           JN_SCRIPT_CPU, "t:2: cpu limit", NULL);
    expect("local ok = xpcall(function() while true do end end, function(m) return m end)\n"
           "while true do end",
           JN_SCRIPT_CPU, "t:1: cpu limit", NULL);
    /* An error handler that loops is stopped too, even when the error it handles is
     * the limit itself (the hook runs handlers with hooks off). */
    expect("xpcall(function() error('x') end, function() while true do end end)\nreturn 'x'",
           JN_SCRIPT_CPU, NULL, "cpu limit");
    expect("xpcall(function() while true do end end, function() while true do end end)\n"
           "return 'x'",
           JN_SCRIPT_CPU, "t:1: cpu limit", NULL);
    expect("local ok, v = xpcall(function(a, b) return a + b end, debug, 40, 2)\nreturn v",
           JN_SCRIPT_ERROR, NULL, "bad argument #2 to 'xpcall'");
    expect("local ok, v = xpcall(function(a, b) return a + b end, print or tostring, 40, 2)\n"
           "return tostring(ok) .. v",
           JN_SCRIPT_OK, "true42", NULL);
    expect("local ok, v = xpcall(error, function(m) return 'handled: ' .. m end, 'e', 0)\n"
           "return v",
           JN_SCRIPT_OK, "handled: e", NULL);
    /* To-be-closed variables whose __close loops: in a coroutine, and at the top. */
    expect("local co = coroutine.wrap(function()\n"
           "  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
           "  while true do end\nend)\nco()",
           JN_SCRIPT_CPU, NULL, "cpu limit");
    expect("local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
           "while true do end",
           JN_SCRIPT_CPU, "t:2: cpu limit", NULL);
    expect("local co = coroutine.create(function()\n"
           "  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
           "  coroutine.yield()\nend)\ncoroutine.resume(co)\ncoroutine.close(co)\nreturn 'x'",
           JN_SCRIPT_CPU, NULL, "cpu limit");
    expect_healthy();
}

static void test_wall_clock(void **state)
{
    (void)state;
    jn_sandbox_limits_t lim = test_limits();
    lim.instructions = UINT64_MAX;
    lim.wall_ms = 200;
    char msg[JN_SCRIPT_MESSAGE_MAX];
    int64_t t0 = mono_ms();
    assert_int_equal(run_with(&lim, "while true do end", msg, sizeof msg), JN_SCRIPT_TIMEOUT);
    int64_t took = mono_ms() - t0;
    assert_true(took >= 190 && took < 2000);
    assert_non_null(strstr(msg, "t:1: timeout"));
    /* A C-heavy loop (string work, little Lua) is stopped by the clock as well. */
    t0 = mono_ms();
    assert_int_equal(run_with(&lim,
                              "local s = string.rep('x', 1 << 20)\n"
                              "while true do local u = s:upper() end",
                              msg, sizeof msg),
                     JN_SCRIPT_TIMEOUT);
    assert_true(mono_ms() - t0 < 2000);
    expect_healthy();
}

typedef struct {
    atomic_bool flag;
    int after_ms;
} stopper_t;

static void *stop_later(void *arg)
{
    stopper_t *st = arg;
    struct timespec ts = {st->after_ms / 1000, (long)(st->after_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(&st->flag, true);
    return NULL;
}

/* Another thread stops a run (a draining worker, a lost lease): a pure Lua loop, even one
 * that swallows errors, ends at once. */
static void test_interrupt_from_another_thread(void **state)
{
    (void)state;
    jn_sandbox_limits_t lim = test_limits();
    lim.instructions = UINT64_MAX;
    lim.wall_ms = 60000;
    const char *srcs[] = {"while true do end",
                          "while true do pcall(function() while true do end end) end"};
    for (size_t i = 0; i < 2; i++) {
        stopper_t st = {.after_ms = 100};
        atomic_init(&st.flag, false);
        jn_sandbox_t *sb = jn_sandbox_new("t", &lim);
        assert_non_null(sb);
        jn_sandbox_set_interrupt(sb, NULL, &st.flag);
        pthread_t t;
        pthread_create(&t, NULL, stop_later, &st);
        int64_t t0 = mono_ms();
        jn_script_error_t err;
        jn_script_status_t status = jn_sandbox_load(sb, srcs[i], strlen(srcs[i]), &err);
        if (status == JN_SCRIPT_OK)
            status = jn_sandbox_call(sb, 0, 1, &err);
        int64_t took = mono_ms() - t0;
        pthread_join(t, NULL);
        assert_int_equal(status, JN_SCRIPT_TIMEOUT);
        assert_non_null(strstr(err.message, "stopped"));
        assert_true(took >= 90 && took < 2000);
        assert_int_equal(jn_sandbox_remaining_ms(sb), 0);
        jn_script_error_cleanup(&err);
        jn_sandbox_free(sb);
    }
    expect_healthy();
}

static void test_memory_bomb(void **state)
{
    (void)state;
    expect("local t = {}\nfor i = 1, 1e9 do t[i] = i end", JN_SCRIPT_MEMORY,
           "t:2: ", "not enough memory");
    expect("local parts = {}\nfor i = 1, 1e6 do parts[i] = string.rep('x', 1000) .. i end",
           JN_SCRIPT_MEMORY, "t:2: ", "not enough memory");
    expect("local s = 'x'\nwhile true do s = s .. s end", JN_SCRIPT_MEMORY,
           "t:2: ", "not enough memory");
    expect_healthy();
}

static void test_huge_string_rep(void **state)
{
    (void)state;
    /* Past Lua's own size limit, or past the memory cap: both contained, with the line. */
    expect("local n = 1e10\nreturn string.rep('x', n)", JN_SCRIPT_ERROR,
           "t:2: ", "resulting string too large");
    expect("local n = 1e9\nreturn string.rep('x', n)", JN_SCRIPT_MEMORY,
           "t:2: ", "not enough memory");
    expect_healthy();
}

static void test_memory_error_can_be_handled(void **state)
{
    (void)state;
    /* A refused allocation is an ordinary error: the cap holds and garbage is freed. */
    expect("local ok, e = pcall(string.rep, 'x', 1e9)\n"
           "local again = string.rep('y', 1000)\n"
           "return tostring(ok) .. ' ' .. #again",
           JN_SCRIPT_OK, "false 1000", NULL);
}

static void test_deep_recursion(void **state)
{
    (void)state;
    char msg[JN_SCRIPT_MESSAGE_MAX];
    jn_sandbox_limits_t lim = test_limits();
    lim.memory_bytes = 64u << 20; /* room for Lua's whole stack: its own limit comes first */
    assert_int_equal(run_with(&lim, "local function f(n)\n  return 1 + f(n + 1)\nend\nreturn f(1)",
                              msg, sizeof msg),
                     JN_SCRIPT_ERROR);
    assert_non_null(strstr(msg, "t:2: stack overflow"));
    /* With less memory the cap comes first: contained all the same. */
    expect("local function f(n)\n  return 1 + f(n + 1)\nend\nreturn f(1)", JN_SCRIPT_MEMORY,
           "t:2: ", "not enough memory");
    expect("local mt = {}\nmt.__index = function(s, k) return s[k] end\n"
           "local t = setmetatable({}, mt)\nreturn t.x",
           JN_SCRIPT_ERROR, NULL, "stack overflow");
    expect("local function f() return pcall(f) end\nreturn tostring(f())", JN_SCRIPT_OK, NULL,
           NULL);
    expect_healthy();
}

static void test_no_os_io_require(void **state)
{
    (void)state;
    expect("os.execute('echo pwned')", JN_SCRIPT_ERROR, "t:1: ", "field 'execute'");
    expect("os.exit(1)", JN_SCRIPT_ERROR, "t:1: ", "field 'exit'");
    expect("return os.getenv('HOME')", JN_SCRIPT_ERROR, "t:1: ", "field 'getenv'");
    expect("local f = io.open('/etc/passwd')", JN_SCRIPT_ERROR, "t:1: ", "global 'io'");
    expect("local m = require('os')", JN_SCRIPT_ERROR, "t:1: ", "global 'require'");
    expect("return package.loadlib", JN_SCRIPT_ERROR, "t:1: ", "global 'package'");
    expect("return debug.getregistry()", JN_SCRIPT_ERROR, "t:1: ", "global 'debug'");
    expect("dofile('/etc/passwd')", JN_SCRIPT_ERROR, "t:1: ", "global 'dofile'");
    expect("loadfile('/etc/passwd')", JN_SCRIPT_ERROR, "t:1: ", "global 'loadfile'");
    expect("collectgarbage('stop')", JN_SCRIPT_ERROR, "t:1: ", "global 'collectgarbage'");
    expect("print('x')", JN_SCRIPT_ERROR, "t:1: ", "global 'print'");
}

static void test_no_bytecode(void **state)
{
    (void)state;
    expect("return tostring(string.dump)", JN_SCRIPT_OK, "nil", NULL);
    /* A binary chunk is refused whatever mode the script asks for. */
    expect("local f, e = load('\\27Lua\\84\\0', 'x', 'b')\nreturn e", JN_SCRIPT_OK,
           "attempt to load a binary chunk (mode is 't')", NULL);
    expect("local f, e = load(function() return '\\27Lua' end)\nreturn e", JN_SCRIPT_OK, NULL,
           "binary chunk");
    /* Text still loads, and the source may not be bytecode either. */
    expect("return load('return 40 + 2')()", JN_SCRIPT_OK, "42", NULL);
    jn_sandbox_limits_t lim = test_limits();
    jn_sandbox_t *sb = jn_sandbox_new("bin", &lim);
    jn_script_error_t err;
    assert_int_equal(jn_sandbox_load(sb, "\x1bLua\x54", 5, &err), JN_SCRIPT_ERROR);
    assert_non_null(strstr(err.message, "bin: attempt to load a binary chunk"));
    jn_sandbox_free(sb);
}

static void test_metatables_are_snapshots(void **state)
{
    (void)state;
    /* __concat is refused (Lua 5.4.4 reads freed stack when a __concat call grows the
     * stack), and it cannot be added afterwards either. */
    expect("local e = setmetatable({}, {__concat = function() return 'x' end})", JN_SCRIPT_ERROR,
           "t:1: ", "__concat metamethods are not allowed");
    expect("local mt = {}\nlocal e = setmetatable({}, mt)\nmt.__concat = function() return 'x' "
           "end\nreturn 'a' .. e",
           JN_SCRIPT_ERROR, "t:4: ", "attempt to concatenate a table value");
    expect("getmetatable('').__concat = function() return 'x' end", JN_SCRIPT_ERROR,
           "t:1: ", "index a string value");
    expect("return getmetatable('') .. getmetatable(json.array())", JN_SCRIPT_OK,
           "stringjson.array", NULL);
    /* Classes work as usual; getmetatable answers the script's own table. */
    expect("local C = {}\nC.__index = C\nC.__tostring = function(s) return 'C' .. s.v end\n"
           "function C.new(v) return setmetatable({v = v}, C) end\n"
           "function C:twice() return self.v * 2 end\nlocal o = C.new(21)\n"
           "return tostring(getmetatable(o) == C) .. o:twice() .. tostring(o)",
           JN_SCRIPT_OK, "true42C21", NULL);
    expect("local t = setmetatable({}, {__metatable = 'locked'})\nsetmetatable(t, {})",
           JN_SCRIPT_ERROR, "t:2: ", "cannot change a protected metatable");
    expect("local t = setmetatable({}, {})\nsetmetatable(t, nil)\nreturn tostring(getmetatable(t))",
           JN_SCRIPT_OK, "nil", NULL);
    expect("local w = setmetatable({}, {__mode = 'k'})\nw[{}] = 1\nreturn 'weak'", JN_SCRIPT_OK,
           "weak", NULL);
    expect("local t = setmetatable({}, {__add = function(a, b) return 40 + b end})\nreturn t + 2",
           JN_SCRIPT_OK, "42", NULL);
}

static void test_no_finalizers(void **state)
{
    (void)state;
    expect("setmetatable({}, {__gc = function() while true do end end})", JN_SCRIPT_ERROR,
           "t:1: ", "__gc metamethods are not allowed");
    /* Adding __gc later does not mark the table for finalization (Lua's rule). */
    expect("local mt = {}\nlocal t = setmetatable({}, mt)\nmt.__gc = function() while true do end "
           "end\nt = nil\nreturn 'ok'",
           JN_SCRIPT_OK, "ok", NULL);
}

static void test_coroutine_cannot_hide(void **state)
{
    (void)state;
    /* The loop inside the coroutine hits the limit there; the caller then dies too. */
    expect("local co = coroutine.create(function() while true do end end)\n"
           "local ok, e = coroutine.resume(co)\n"
           "while true do end",
           JN_SCRIPT_CPU, "t:1: cpu limit", NULL);
    /* Many short-lived coroutines, each below the hook's period, are still counted. */
    int64_t t0 = mono_ms();
    expect("local n = 0\nwhile true do\n"
           "  local co = coroutine.create(function() for i = 1, 90 do n = n + 1 end end)\n"
           "  coroutine.resume(co)\nend",
           JN_SCRIPT_CPU, NULL, "cpu limit");
    assert_true(mono_ms() - t0 < 3000);
    expect("local f = coroutine.wrap(function() while true do coroutine.yield() end end)\n"
           "while true do f() end",
           JN_SCRIPT_CPU, NULL, "cpu limit");
    expect("local co = coroutine.wrap(function() error('inner') end)\nco()", JN_SCRIPT_ERROR,
           "t:1: inner", NULL);
    expect("local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 "
           "end)\nreturn co(1) .. ',' .. co(5)",
           JN_SCRIPT_OK, "2,10", NULL);
    expect_healthy();
}

static void test_yield_outside_coroutine(void **state)
{
    (void)state;
    expect("local x = 1\ncoroutine.yield(x)", JN_SCRIPT_ERROR,
           "t:2: ", "attempt to yield from outside a coroutine");
    /* A yield inside a C function's callback cannot cross the C call. */
    expect("local co = coroutine.wrap(function()\n"
           "  table.sort({3, 2, 1}, function(a, b) coroutine.yield() return a < b end)\nend)\nco()",
           JN_SCRIPT_ERROR, NULL, "attempt to yield across a C-call boundary");
    expect("local co = coroutine.wrap(function()\n"
           "  return ('abc'):gsub('.', function(c) coroutine.yield(c) end)\nend)\nco()",
           JN_SCRIPT_ERROR, NULL, "attempt to yield across a C-call boundary");
}

static void test_pattern_bomb_is_charged(void **state)
{
    (void)state;
    int64_t t0 = mono_ms();
    expect("local s = string.rep('a', 40000)\nreturn s:find(string.rep('a-', 30) .. 'b')",
           JN_SCRIPT_CPU, "t:2: cpu limit", NULL);
    expect("local s = string.rep('a', 40000)\nreturn s:match(string.rep('.*', 20) .. 'b')",
           JN_SCRIPT_CPU, "t:2: cpu limit", NULL);
    expect("local s = string.rep('a', 40000)\nreturn select(2, s:gsub(string.rep('a*', 20) .. 'b', "
           "''))",
           JN_SCRIPT_CPU, "t:2: cpu limit", NULL);
    assert_true(mono_ms() - t0 < 5000);
    expect_healthy();
}

static void test_library_work_is_charged(void **state)
{
    (void)state;
    int64_t t0 = mono_ms();
    /* table.move over a huge range moves nothing (nils) but would loop for hours. */
    expect("local t = {}\ntable.move(t, 1, 1e15, 1)", JN_SCRIPT_CPU, "t:2: cpu limit", NULL);
    expect("local t = {}\nfor i = 1, 2e5 do t[i] = i end\nwhile true do table.sort(t) end",
           JN_SCRIPT_CPU, "t:3: cpu limit", NULL);
    expect("local s = string.rep('é', 1 << 20)\nwhile true do utf8.len(s) end", JN_SCRIPT_CPU,
           "t:2: cpu limit", NULL);
    /* Functions that make strings are charged by what they make: a loop of them runs
     * into the instruction budget, not on to the deadline. */
    const char *makers[] = {
        "while true do local t = string.rep('x', 4e6) end",
        "local s = string.rep('x', 4e6)\nwhile true do local t = s:upper() end",
        "local s = string.rep('x', 4e6)\nwhile true do local t = s:reverse() end",
        "local s = string.rep('x', 4e6)\nwhile true do local t = s:sub(2) end",
        "local s = string.rep('x', 4e6)\nwhile true do local t = string.format('%s', s) end",
    };
    for (size_t i = 0; i < sizeof makers / sizeof makers[0]; i++)
        expect(makers[i], JN_SCRIPT_CPU, "t:", "cpu limit");
    /* So does what the VM copies: '..' of two 4 MB strings is one instruction. */
    expect("local s = string.rep('x', 4e6)\nwhile true do local t = s .. s end", JN_SCRIPT_CPU,
           "t:", "cpu limit");
    expect("local s = string.rep('x', 4e6)\nwhile true do local t = s .. 1 end", JN_SCRIPT_CPU,
           "t:", "cpu limit");
    /* Small results cost next to nothing. */
    expect("local s = string.rep('x', 4e6) local n = 0\n"
           "for i = 1, 100000 do n = n + #s:sub(i, i) end return n",
           JN_SCRIPT_OK, "100000", NULL);
    assert_true(mono_ms() - t0 < 5000);
}

/* All sandboxes of a process share one budget: past it an allocation fails the script that
 * asked (a memory error naming the worker), and memory given back is usable again. */
static void test_process_budget(void **state)
{
    (void)state;
    jn_sandbox_limits_t lim = test_limits();
    lim.memory_bytes = 64u << 20;
    size_t base = jn_sandbox_process_memory();
    /* Making a 16 MB string takes up to twice that for a moment (the buffer, then the
     * string), so 44 MB lets one such run through, not two. */
    jn_sandbox_set_process_budget(base + (44u << 20));

    /* The first holds 16 MB. */
    jn_sandbox_t *a = jn_sandbox_new("a", &lim);
    assert_non_null(a);
    jn_script_error_t err;
    const char *hold = "held = string.rep('x', 16 * 1024 * 1024) return #held";
    assert_int_equal(jn_sandbox_load(a, hold, strlen(hold), &err), JN_SCRIPT_OK);
    if (jn_sandbox_call(a, 0, 1, &err) != JN_SCRIPT_OK)
        fail_msg("holding 16 MB: %s", err.message);
    assert_true(jn_sandbox_process_memory() >= base + (16u << 20));

    /* The second, well within its own 64 MB, finds the worker's budget spent. */
    char msg[512];
    jn_script_status_t st =
        run_with(&lim, "return #string.rep('y', 16 * 1024 * 1024)", msg, sizeof msg);
    assert_int_equal(st, JN_SCRIPT_MEMORY);
    assert_non_null(strstr(msg, "scripts running in this worker"));

    /* Once the first is gone, the same run fits. */
    jn_sandbox_free(a);
    assert_int_equal(jn_sandbox_process_memory(), base);
    st = run_with(&lim, "return #string.rep('y', 16 * 1024 * 1024)", msg, sizeof msg);
    assert_int_equal(st, JN_SCRIPT_OK);
    assert_string_equal(msg, "16777216");
    assert_int_equal(jn_sandbox_process_memory(), base);
    jn_sandbox_set_process_budget(0);
}

static void test_dead_sandbox_stays_dead(void **state)
{
    (void)state;
    jn_sandbox_limits_t lim = test_limits();
    jn_sandbox_t *sb = jn_sandbox_new("d", &lim);
    jn_script_error_t err;
    const char *src = "return function() while true do end end";
    assert_int_equal(jn_sandbox_load(sb, src, strlen(src), &err), JN_SCRIPT_OK);
    assert_int_equal(jn_sandbox_call(sb, 0, 1, &err), JN_SCRIPT_OK);
    lua_State *L = jn_sandbox_state(sb);
    lua_pushvalue(L, -1);
    assert_int_equal(jn_sandbox_call(sb, 0, 0, &err), JN_SCRIPT_CPU);
    assert_int_equal(jn_sandbox_dead(sb), JN_SCRIPT_CPU);
    /* Any later call fails at once with the same limit. */
    assert_int_equal(jn_sandbox_call(sb, 0, 0, &err), JN_SCRIPT_CPU);
    assert_non_null(strstr(err.message, "d:1: cpu limit"));
    assert_int_equal(jn_sandbox_remaining_ms(sb), 0);
    jn_sandbox_free(sb);
}

static void test_globals_are_private(void **state)
{
    (void)state;
    /* A global set by one run is not seen by the next: each run has its own state. */
    expect("secret = 'kept?'\nstring.upper = nil\nreturn 'set'", JN_SCRIPT_OK, "set", NULL);
    expect("return tostring(secret) .. ' ' .. ('x'):upper()", JN_SCRIPT_OK, "nil X", NULL);
}

static void test_memory_is_accounted(void **state)
{
    (void)state;
    jn_sandbox_limits_t lim = test_limits();
    jn_sandbox_t *sb = jn_sandbox_new("m", &lim);
    size_t base = jn_sandbox_memory(sb);
    assert_true(base > 0 && base < 256 * 1024);
    jn_script_error_t err;
    const char *src = "big = string.rep('x', 4 << 20) return #big";
    assert_int_equal(jn_sandbox_load(sb, src, strlen(src), &err), JN_SCRIPT_OK);
    assert_int_equal(jn_sandbox_call(sb, 0, 1, &err), JN_SCRIPT_OK);
    assert_true(jn_sandbox_memory_peak(sb) >= (4u << 20));
    assert_true(jn_sandbox_memory(sb) <= lim.memory_bytes);
    jn_sandbox_free(sb);
}

static int raise_action(lua_State *L)
{
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, 7);
    lua_setfield(L, -2, "code");
    return jn_sandbox_raise(L, JN_SCRIPT_ACTION_FAILED, 0, true, "went %s", "wrong");
}

static int raise_http(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, 404);
    lua_setfield(L, -2, "status");
    lua_newtable(L);
    lua_setfield(L, -2, "headers");
    lua_pushliteral(L, "nope");
    lua_setfield(L, -2, "data");
    return jn_sandbox_raise(L, JN_SCRIPT_HTTP, 404, true, "HTTP 404");
}

static int install_raisers(lua_State *L)
{
    lua_pushcfunction(L, raise_action);
    lua_setglobal(L, "fail");
    lua_pushcfunction(L, raise_http);
    lua_setglobal(L, "http_fail");
    return 0;
}

/* Runs src with fail() and http_fail() defined; returns the status, fills err. */
static jn_script_status_t run_raisers(const char *src, jn_script_error_t *err, char *out,
                                      size_t cap)
{
    jn_sandbox_limits_t lim = test_limits();
    jn_sandbox_t *sb = jn_sandbox_new("e", &lim);
    assert_int_equal(jn_sandbox_protect(sb, install_raisers, NULL, 0, 0, err), JN_SCRIPT_OK);
    jn_script_status_t st = jn_sandbox_load(sb, src, strlen(src), err);
    if (st == JN_SCRIPT_OK)
        st = jn_sandbox_call(sb, 0, 1, err);
    if (st == JN_SCRIPT_OK) {
        snprintf(out, cap, "%s", lua_tostring(jn_sandbox_state(sb), -1));
    }
    jn_sandbox_free(sb);
    return st;
}

static void test_error_objects(void **state)
{
    (void)state;
    jn_script_error_t err;
    char out[256] = "";
    assert_int_equal(run_raisers("local x = 1\nfail()", &err, out, sizeof out),
                     JN_SCRIPT_ACTION_FAILED);
    assert_string_equal(err.message, "e:2: went wrong");
    assert_string_equal(json_object_to_json_string_ext(err.payload, JSON_C_TO_STRING_PLAIN),
                        "{\"code\":7}");
    jn_script_error_cleanup(&err);

    /* Caught: a table with kind, message and payload, whose tostring is the message. */
    assert_int_equal(run_raisers("local ok, e = pcall(fail)\nreturn e.kind .. '|' .. tostring(e) "
                                 ".. '|' .. e.payload.code .. '|' .. getmetatable(e)",
                                 &err, out, sizeof out),
                     JN_SCRIPT_OK);
    assert_string_equal(out, "action|e:1: went wrong|7|error");
    /* Raised again, it keeps its class. */
    assert_int_equal(run_raisers("local ok, e = pcall(fail)\nerror(e)", &err, out, sizeof out),
                     JN_SCRIPT_ACTION_FAILED);
    jn_script_error_cleanup(&err);
    /* Its metatable is locked. */
    assert_int_equal(
        run_raisers("local ok, e = pcall(fail)\nsetmetatable(e, {})", &err, out, sizeof out),
        JN_SCRIPT_ERROR);
    assert_non_null(strstr(err.message, "protected metatable"));

    assert_int_equal(run_raisers("\nhttp_fail()", &err, out, sizeof out), JN_SCRIPT_HTTP);
    assert_int_equal(err.http_status, 404);
    assert_string_equal(err.message, "e:2: HTTP 404");
    assert_string_equal(json_object_to_json_string_ext(err.payload, JSON_C_TO_STRING_PLAIN),
                        "{\"data\":\"nope\",\"headers\":{},\"status\":404}");
    jn_script_error_cleanup(&err);
    assert_int_equal(run_raisers("local ok, e = pcall(http_fail)\nreturn e.status .. ' ' .. e.data",
                                 &err, out, sizeof out),
                     JN_SCRIPT_OK);
    assert_string_equal(out, "404 nope");
}

static void put_json(void *p)
{
    json_object_put(p);
}

/* Boxes a malloc'd resource and a parsed JSON document, then builds Lua values from
 * them: any allocation may fail on the way. */
static int boxed_work(lua_State *L)
{
    char *scratch = malloc(256);
    jn_sandbox_box_t *a = jn_sandbox_box(L, scratch, free);
    json_object *doc = json_tokener_parse("{\"items\":[1,2,3,{\"a\":\"b\"}],\"s\":\"text\"}");
    jn_sandbox_box_t *b = jn_sandbox_box(L, doc, put_json);
    jn_luajson_push(L, doc);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        lua_pushfstring(L, "value %d", i);
        lua_setfield(L, -2, key);
    }
    jn_sandbox_box_release(b);
    jn_sandbox_box_release(a);
    return 1;
}

static int install_work(lua_State *L)
{
    lua_pushcfunction(L, boxed_work);
    lua_setglobal(L, "work");
    return 0;
}

static void test_allocation_failures_anywhere(void **state)
{
    (void)state;
    /* Fail the 1st, 2nd, ... allocation of a run that boxes C resources: every run ends
     * classified, and (under the sanitizer) nothing leaks. */
    const char *src = "local out = {}\nfor i = 1, 3 do\n  local ok, v = pcall(work)\n"
                      "  out[i] = ok and #v.items or 0\nend\nreturn json.encode(work())";
    int failed = 0;
    for (uint64_t nth = 1; nth <= 400; nth++) {
        jn_sandbox_limits_t lim = test_limits();
        jn_sandbox_t *sb = jn_sandbox_new("f", &lim);
        jn_script_error_t err;
        assert_int_equal(jn_sandbox_protect(sb, install_work, NULL, 0, 0, &err), JN_SCRIPT_OK);
        jn_sandbox_fail_allocation(sb, nth);
        jn_script_status_t st = jn_sandbox_load(sb, src, strlen(src), &err);
        if (st == JN_SCRIPT_OK)
            st = jn_sandbox_call(sb, 0, 1, &err);
        if (st != JN_SCRIPT_OK && st != JN_SCRIPT_MEMORY)
            fail_msg("allocation %llu: %s: %s", (unsigned long long)nth, jn_script_status_str(st),
                     err.message);
        failed += st == JN_SCRIPT_MEMORY;
        jn_script_error_cleanup(&err);
        jn_sandbox_free(sb);
    }
    assert_true(failed > 0);
}

static void test_messages_are_clean_text(void **state)
{
    (void)state;
    char msg[JN_SCRIPT_MESSAGE_MAX];
    assert_int_equal(run("error('bad \\255 bytes \\1 here')", msg, sizeof msg), JN_SCRIPT_ERROR);
    assert_string_equal(msg, "t:1: bad ? bytes ? here");
    assert_int_equal(run("error(string.rep('x', 5000))", msg, sizeof msg), JN_SCRIPT_ERROR);
    assert_true(strlen(msg) < JN_SCRIPT_MESSAGE_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ordinary_script),
        cmocka_unit_test(test_runtime_error_names_line),
        cmocka_unit_test(test_syntax_error_names_line),
        cmocka_unit_test(test_infinite_loop),
        cmocka_unit_test(test_loop_inside_pcall_cannot_be_caught),
        cmocka_unit_test(test_wall_clock),
        cmocka_unit_test(test_interrupt_from_another_thread),
        cmocka_unit_test(test_memory_bomb),
        cmocka_unit_test(test_huge_string_rep),
        cmocka_unit_test(test_memory_error_can_be_handled),
        cmocka_unit_test(test_deep_recursion),
        cmocka_unit_test(test_no_os_io_require),
        cmocka_unit_test(test_no_bytecode),
        cmocka_unit_test(test_metatables_are_snapshots),
        cmocka_unit_test(test_no_finalizers),
        cmocka_unit_test(test_coroutine_cannot_hide),
        cmocka_unit_test(test_yield_outside_coroutine),
        cmocka_unit_test(test_pattern_bomb_is_charged),
        cmocka_unit_test(test_library_work_is_charged),
        cmocka_unit_test(test_dead_sandbox_stays_dead),
        cmocka_unit_test(test_process_budget),
        cmocka_unit_test(test_globals_are_private),
        cmocka_unit_test(test_memory_is_accounted),
        cmocka_unit_test(test_error_objects),
        cmocka_unit_test(test_allocation_failures_anywhere),
        cmocka_unit_test(test_messages_are_clean_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
