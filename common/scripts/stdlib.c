/*
 * stdlib.c - the libraries a script sees, opened and restricted.
 *
 * Lua's own libraries, minus what reaches outside the state or escapes the limits,
 * with wrappers where a stock function would let a script run unbounded C work or
 * code with hooks off. Everything here goes through the sandbox's public interface.
 */
#include "scripts/stdlib.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "scripts/luajson.h"
#include "scripts/sandbox.h"
#include "scripts/strmatch.h"

#define PRINT_MAX 8192

static const char SNAPSHOTS = 's'; /* registry key: weak table snapshot -> the script's table */

/* ---- library wrappers ---- */

/* load() compiles text only, whatever mode the script asks for. */
static int safe_load(lua_State *L)
{
    if (lua_gettop(L) < 3)
        lua_settop(L, 3);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* setmetatable(t, mt) gives t a snapshot of mt: a copy whose __metatable is mt, so
 * getmetatable(t) still answers mt while later changes to mt do not reach t. Two
 * metamethods are refused: __gc (finalizers run with hooks off, where no limit stops
 * them) and __concat (Lua 5.4.4 reads a stale stack pointer when a __concat call grows
 * the stack). A snapshot is the only way to keep either from being added later. */
static int safe_setmetatable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    lua_settop(L, 2);
    if (lua_getmetatable(L, 1)) {            /* 3: the current one; may it be replaced? */
        if (!jn_luajson_is_array_mt(L, 3)) { /* json's array mark always may */
            /* A snapshot is as protected as the table it was taken of. */
            lua_rawgetp(L, LUA_REGISTRYINDEX, &SNAPSHOTS);
            lua_pushvalue(L, 3);
            if (lua_rawget(L, 4) == LUA_TNIL) {
                lua_pop(L, 1);
                lua_pushvalue(L, 3);
            }
            lua_pushliteral(L, "__metatable");
            if (lua_rawget(L, 5) != LUA_TNIL)
                return luaL_error(L, "cannot change a protected metatable");
        }
        lua_settop(L, 2);
    }
    if (t == LUA_TNIL) {
        lua_setmetatable(L, 1);
        return 1;
    }
    const char *refused[] = {"__gc", "__concat"};
    for (int i = 0; i < 2; i++) {
        lua_pushstring(L, refused[i]);
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: %s metamethods are not allowed in scripts",
                              refused[i]);
        lua_pop(L, 1);
    }
    lua_newtable(L); /* 3: the snapshot */
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 3);
    }
    lua_pushliteral(L, "__metatable");
    if (lua_rawget(L, 3) == LUA_TNIL) {
        lua_pushliteral(L, "__metatable");
        lua_pushvalue(L, 2);
        lua_rawset(L, 3);
    }
    lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &SNAPSHOTS);
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 2);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    jn_sandbox_charge(L, 16);
    lua_setmetatable(L, 1);
    lua_settop(L, 1);
    return 1;
}

int jn_stdlib_print(lua_State *L)
{
    char line[PRINT_MAX];
    size_t total = 0;
    int n = lua_gettop(L);
    for (int i = 1; i <= n && total < sizeof line; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1)
            line[total++] = '\t';
        if (len > sizeof line - total)
            len = sizeof line - total;
        memcpy(line + total, s, len);
        total += len;
        lua_pop(L, 1);
    }
    jn_sandbox_print(L, line, total);
    return 0;
}

/* What a charged library function costs, from its arguments. */
enum {
    COST_SORT,
    COST_LEN1,
    COST_RANGE_MOVE,
    COST_RANGE_UNPACK,
    COST_RANGE_CONCAT,
    COST_BYTES,
    COST_RESULT_BYTES /* charged after the call, by the bytes of the strings it made */
};

static lua_Integer int_arg(lua_State *L, int i, lua_Integer def)
{
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, i, &ok);
    return ok ? v : def;
}

static uint64_t span(lua_Integer from, lua_Integer to)
{
    if (to < from)
        return 0;
    /* Unsigned arithmetic cannot overflow the difference of two lua_Integers. */
    return (uint64_t)to - (uint64_t)from + 1;
}

static uint64_t table_len(lua_State *L, int i)
{
    return lua_type(L, i) == LUA_TTABLE ? (uint64_t)lua_rawlen(L, i) : 0;
}

static int charged(lua_State *L)
{
    uint64_t cost = 0;
    switch ((int)lua_tointeger(L, lua_upvalueindex(2))) {
    case COST_SORT: {
        uint64_t n = table_len(L, 1), log = 1;
        while ((1ull << log) < n && log < 63)
            log++;
        cost = n * log;
        break;
    }
    case COST_LEN1: cost = table_len(L, 1); break;
    case COST_RANGE_MOVE: cost = span(int_arg(L, 2, 1), int_arg(L, 3, 0)); break;
    case COST_RANGE_UNPACK:
        cost = span(int_arg(L, 2, 1), int_arg(L, 3, (lua_Integer)table_len(L, 1)));
        break;
    case COST_RANGE_CONCAT:
        cost = span(int_arg(L, 3, 1), int_arg(L, 4, (lua_Integer)table_len(L, 1)));
        break;
    case COST_BYTES: {
        size_t len = 0;
        if (lua_type(L, 1) == LUA_TSTRING)
            lua_tolstring(L, 1, &len);
        cost = len / 16;
        break;
    }
    }
    jn_sandbox_charge(L, cost);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    if ((int)lua_tointeger(L, lua_upvalueindex(2)) == COST_RESULT_BYTES) {
        uint64_t made = 0;
        for (int i = 1; i <= lua_gettop(L); i++) {
            size_t len = 0;
            if (lua_type(L, i) == LUA_TSTRING)
                lua_tolstring(L, i, &len);
            made += len;
        }
        jn_sandbox_charge(L, made / 16);
    }
    return lua_gettop(L);
}

/* Replaces table[name] (table on top) with a charged wrapper of itself. */
static void charge_field(lua_State *L, const char *name, int kind)
{
    lua_getfield(L, -1, name);
    lua_pushinteger(L, kind);
    lua_pushcclosure(L, charged, 2);
    lua_setfield(L, -2, name);
}

/* ---- coroutines: resume and wrap that go through the sandbox's accounting ---- */

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co != NULL, 1, "coroutine");
    int r = jn_sandbox_resume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

static int co_wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = jn_sandbox_resume(L, co, lua_gettop(L));
    if (r >= 0)
        return r;
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) /* failed: close its to-be-closed variables */
        jn_sandbox_close_thread(co, L);
    if (lua_type(L, -1) == LUA_TSTRING && !jn_sandbox_has_position(lua_tostring(L, -1))) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int co_close(lua_State *L)
{
    jn_sandbox_charge(L, 0); /* raises once the sandbox is dead */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* xpcall's message handler runs before the stack unwinds, with hooks off when the
 * error came from the hook: once the sandbox is dead the script's handler is skipped. */
static int guarded_handler(lua_State *L)
{
    if (jn_sandbox_dead(jn_sandbox_of(L)))
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int xpcall_done(lua_State *L, int status, lua_KContext base)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)base;
}

/* xpcall(f, msgh, ...) with msgh guarded; yieldable like the original. */
static int safe_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1); /* the first result when f succeeds */
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* [f, handler, true, f, args...] */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
    return xpcall_done(L, status, 2);
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, co_wrapped, 1);
    return 1;
}

/* ---- set-up ---- */

static void open_lib(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_requiref(L, name, open, 1);
    lua_pop(L, 1);
}

static void remove_field(lua_State *L, const char *name)
{
    lua_pushnil(L);
    lua_setfield(L, -2, name);
}

static void wrap_field(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_getfield(L, -1, name);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, name);
}

void jn_stdlib_open(lua_State *L)
{
    open_lib(L, LUA_GNAME, luaopen_base);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
    open_lib(L, LUA_COLIBNAME, luaopen_coroutine);

    lua_pushglobaltable(L);
    const char *gone[] = {"dofile", "loadfile", "collectgarbage", "print", "warn", "require"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        remove_field(L, gone[i]);
    wrap_field(L, "load", safe_load);
    lua_pushcfunction(L, safe_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, safe_xpcall);
    lua_setfield(L, -2, "xpcall");

    /* os: only the clock and calendar functions. */
    luaopen_os(L);
    lua_createtable(L, 0, 4);
    const char *os_keep[] = {"time", "date", "clock", "difftime"};
    for (size_t i = 0; i < 4; i++) {
        lua_getfield(L, -2, os_keep[i]);
        lua_setfield(L, -2, os_keep[i]);
    }
    lua_setfield(L, -3, "os");
    lua_pop(L, 1);

    /* The strings' metatable is shared by every string: scripts may not change it. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushliteral(L, "string");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &SNAPSHOTS);

    lua_getfield(L, -1, LUA_STRLIBNAME);
    remove_field(L, "dump");
    jn_strmatch_install(L);
    charge_field(L, "byte", COST_BYTES);
    charge_field(L, "len", COST_BYTES);
    /* The work of these is the string they make (string.rep of 30 MB in a loop would
     * otherwise run to the deadline on a budget of a few instructions). */
    const char *makers[] = {"rep", "upper", "lower", "reverse", "sub", "format", "char", "pack"};
    for (size_t i = 0; i < sizeof makers / sizeof makers[0]; i++)
        charge_field(L, makers[i], COST_RESULT_BYTES);
    lua_pop(L, 1);

    lua_getfield(L, -1, LUA_TABLIBNAME);
    charge_field(L, "sort", COST_SORT);
    charge_field(L, "insert", COST_LEN1);
    charge_field(L, "remove", COST_LEN1);
    charge_field(L, "move", COST_RANGE_MOVE);
    charge_field(L, "unpack", COST_RANGE_UNPACK);
    charge_field(L, "concat", COST_RANGE_CONCAT);
    lua_pop(L, 1);

    lua_getfield(L, -1, LUA_UTF8LIBNAME);
    charge_field(L, "len", COST_BYTES);
    charge_field(L, "offset", COST_BYTES);
    charge_field(L, "codepoint", COST_BYTES);
    lua_pop(L, 1);

    lua_getfield(L, -1, LUA_COLIBNAME);
    lua_pushcfunction(L, co_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, co_wrap);
    lua_setfield(L, -2, "wrap");
    wrap_field(L, "close", co_close);
    lua_pop(L, 1);

    jn_luajson_open(L);
    lua_setfield(L, -2, "json");
    lua_pop(L, 1);
}
