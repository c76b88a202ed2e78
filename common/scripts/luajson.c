/*
 * luajson.c - conversions between Lua values and json-c, and the json library.
 *
 * Lua -> JSON only reads the state (lua_next, lua_rawgeti, lua_tolstring on strings),
 * so it never allocates Lua memory and never raises; keys are sorted on the json-c
 * side. JSON -> Lua allocates and may raise a memory error, which the callers catch.
 */
#include "scripts/luajson.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "scripts/jpath.h"
#include "scripts/sandbox.h"

static const char ARRAY_MT = 'a'; /* registry key: the address */
static const char NULL_SENTINEL = 'n';

jn_luajson_caps_t jn_luajson_caps_default(void)
{
    return (jn_luajson_caps_t){16u << 20, JN_JSON_MAX_DEPTH};
}

int jn_luajson_is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA &&
           lua_touserdata(L, idx) == (void *)&NULL_SENTINEL;
}

static bool is_marked_array(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT);
    bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

int jn_luajson_is_array_mt(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT);
    int same = lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
    return same;
}

void jn_luajson_mark_array(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_getmetatable(L, idx)) {
        lua_pop(L, 1);
        return;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT);
    lua_setmetatable(L, idx);
}

/* ---- Lua -> JSON ---- */

/* What json-c holds for one value, about: the object, its slot in an array or its entry
 * in an object's table, and the allocator's overhead (measured on arrays of numbers and
 * of small objects). */
#define TREE_BYTES_PER_VALUE 96

typedef struct {
    lua_State *L;
    const jn_luajson_caps_t *caps;
    size_t bytes;
    size_t tree, tree_budget; /* the json-c tree's estimated C memory, and the run's room */
    size_t tree_budget_mb;    /* the run's cap, for messages */
    jn_jpath_t path;
    char *why;
    size_t why_len;
} enc_t;

static jn_err_t enc_fail(enc_t *e, jn_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static jn_err_t enc_fail(enc_t *e, jn_err_t err, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->why && e->why_len) {
        const char *p = jn_jpath_str(&e->path);
        if (*p)
            snprintf(e->why, e->why_len, "%s: %s", p, msg);
        else
            snprintf(e->why, e->why_len, "%s", msg);
    }
    return err;
}

static jn_err_t charge(enc_t *e, size_t n)
{
    e->bytes += n;
    if (e->bytes > e->caps->max_bytes)
        return enc_fail(e, JN_ERR_TOO_LARGE, "larger than %zu bytes as JSON", e->caps->max_bytes);
    return JN_OK;
}

static jn_err_t check_text(enc_t *e, const char *s, size_t len, const char *what)
{
    if (memchr(s, '\0', len))
        return enc_fail(e, JN_ERR_INVALID, "%s contains a NUL character", what);
    if (!jn_utf8_valid(s, len))
        return enc_fail(e, JN_ERR_INVALID, "%s is not valid UTF-8", what);
    return JN_OK;
}

static json_object *new_double(double d)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".eE")) {
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, ".0");
    }
    return json_object_new_double_s(d, buf);
}

static jn_err_t enc_value(enc_t *e, int idx, int depth, json_object **out);

static int by_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A copy of obj with its keys in byte order (obj is released). */
static json_object *sorted_object(json_object *obj, size_t n)
{
    if (n < 2)
        return obj;
    const char **keys = malloc(n * sizeof *keys);
    if (!keys)
        abort();
    size_t k = 0;
    json_object_object_foreach(obj, key, value)
    {
        (void)value;
        keys[k++] = key;
    }
    qsort(keys, k, sizeof *keys, by_key);
    json_object *sorted = json_object_new_object();
    for (size_t i = 0; i < k; i++) {
        json_object *child = json_object_object_get(obj, keys[i]);
        json_object_object_add(sorted, keys[i], json_object_get(child));
    }
    free(keys);
    json_object_put(obj);
    return sorted;
}

static jn_err_t enc_table(enc_t *e, int idx, int depth, json_object **out)
{
    lua_State *L = e->L;
    if (depth >= e->caps->max_depth)
        return enc_fail(e, JN_ERR_TOO_LARGE,
                        "nested deeper than %d levels (a table that contains "
                        "itself?)",
                        e->caps->max_depth);
    if (!lua_checkstack(L, 4))
        return enc_fail(e, JN_ERR_TOO_LARGE, "nested too deeply");
    size_t nkeys = 0, nstr = 0, nint = 0;
    lua_Integer max_index = 0;
    int odd_type = LUA_TNONE;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        nkeys++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            nstr++;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            nint++;
            if (lua_tointeger(L, -1) > max_index)
                max_index = lua_tointeger(L, -1);
        } else if (odd_type == LUA_TNONE) {
            odd_type = lua_type(L, -1);
        }
    }
    bool marked = is_marked_array(L, idx);
    if (odd_type != LUA_TNONE)
        return enc_fail(e, JN_ERR_INVALID,
                        "a table with a %s key has no JSON form (keys must be strings, or 1..n "
                        "for an array)",
                        odd_type == LUA_TNUMBER ? "non-positive or fractional number"
                                                : lua_typename(L, odd_type));
    if (nstr && nint)
        return enc_fail(e, JN_ERR_INVALID,
                        "a table mixes string and integer keys (JSON has arrays or objects)");
    if (nint && (size_t)max_index != nint)
        return enc_fail(e, JN_ERR_INVALID,
                        "an array has holes: its largest index is %lld but it has %zu items "
                        "(use json.null for null)",
                        (long long)max_index, nint);
    if (nstr && marked)
        return enc_fail(e, JN_ERR_INVALID, "a table marked as an array has string keys");

    jn_err_t err;
    if (nint || (marked && nkeys == 0)) {
        if ((err = charge(e, 2)))
            return err;
        json_object *arr = json_object_new_array_ext((int)nint);
        for (lua_Integer i = 1; i <= max_index; i++) {
            lua_rawgeti(L, idx, i);
            size_t old = jn_jpath_index(&e->path, i);
            json_object *child = NULL;
            err = enc_value(e, lua_gettop(L), depth + 1, &child);
            lua_pop(L, 1);
            if (!err)
                err = charge(e, 1);
            if (err) {
                json_object_put(child);
                json_object_put(arr);
                return err;
            }
            jn_jpath_pop(&e->path, old);
            json_object_array_add(arr, child);
        }
        *out = arr;
        return JN_OK;
    }
    if ((err = charge(e, 2)))
        return err;
    json_object *obj = json_object_new_object();
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t klen;
        const char *key = lua_tolstring(L, -2, &klen); /* a string: no conversion */
        size_t old = jn_jpath_key(&e->path, key, klen);
        json_object *child = NULL;
        err = check_text(e, key, klen, "a key");
        if (!err)
            err = charge(e, klen + 4);
        if (!err)
            err = enc_value(e, lua_gettop(L), depth + 1, &child);
        lua_pop(L, 1);
        if (err) {
            lua_pop(L, 1);
            json_object_put(obj);
            return err;
        }
        jn_jpath_pop(&e->path, old);
        json_object_object_add_ex(obj, key, child, 0);
    }
    *out = sorted_object(obj, nstr);
    return JN_OK;
}

static jn_err_t enc_value(enc_t *e, int idx, int depth, json_object **out)
{
    /* The tree is C memory the run's cap does not see: it may take only the room left. */
    e->tree += TREE_BYTES_PER_VALUE;
    if (e->tree > e->tree_budget)
        return enc_fail(e, JN_ERR_TOO_LARGE,
                        "not enough memory to convert it (the limit is %zu MB, about %zu bytes "
                        "a value)",
                        e->tree_budget_mb, (size_t)TREE_BYTES_PER_VALUE);
    lua_State *L = e->L;
    *out = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return charge(e, 4);
    case LUA_TBOOLEAN: {
        jn_err_t err = charge(e, 5);
        if (!err)
            *out = json_object_new_boolean(lua_toboolean(L, idx));
        return err;
    }
    case LUA_TNUMBER: {
        jn_err_t err = charge(e, 24);
        if (err)
            return err;
        if (lua_isinteger(L, idx)) {
            *out = json_object_new_int64(lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d))
                return enc_fail(e, JN_ERR_INVALID, "%s has no JSON form",
                                isnan(d) ? "NaN" : "an infinite number");
            *out = new_double(d);
        }
        return JN_OK;
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        jn_err_t err = check_text(e, s, len, "a string");
        if (!err)
            err = charge(e, len + 2);
        if (!err)
            *out = json_object_new_string_len(s, (int)len);
        return err;
    }
    case LUA_TTABLE: return enc_table(e, idx, depth, out);
    case LUA_TLIGHTUSERDATA:
        if (jn_luajson_is_null(L, idx))
            return charge(e, 4);
        /* fall through */
    default: return enc_fail(e, JN_ERR_INVALID, "a %s has no JSON form", luaL_typename(L, idx));
    }
}

jn_err_t jn_luajson_to_json(lua_State *L, int idx, const jn_luajson_caps_t *caps, json_object **out,
                            char *why, size_t why_len)
{
    enc_t e = {.L = L, .caps = caps, .why = why, .why_len = why_len, .tree_budget = SIZE_MAX};
    const jn_sandbox_t *sb = jn_sandbox_of(L);
    if (sb) {
        size_t cap = jn_sandbox_limits(sb)->memory_bytes, used = jn_sandbox_memory(sb);
        e.tree_budget = used < cap ? cap - used : 0;
        e.tree_budget_mb = cap >> 20;
    }
    if (why && why_len)
        why[0] = '\0';
    *out = NULL;
    int top = lua_gettop(L);
    jn_err_t err = enc_value(&e, lua_absindex(L, idx), 0, out);
    lua_settop(L, top);
    return err;
}

/* ---- JSON -> Lua ---- */

static void push_any(lua_State *L, json_object *v, bool null_as_sentinel)
{
    luaL_checkstack(L, 4, "JSON nested too deeply");
    switch (json_object_get_type(v)) {
    case json_type_null:
        if (null_as_sentinel)
            lua_pushlightuserdata(L, (void *)&NULL_SENTINEL);
        else
            lua_pushnil(L);
        break;
    case json_type_boolean: lua_pushboolean(L, json_object_get_boolean(v)); break;
    case json_type_int: {
        int64_t i = json_object_get_int64(v);
        if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
            lua_pushnumber(L, (lua_Number)json_object_get_uint64(v));
        else
            lua_pushinteger(L, (lua_Integer)i);
        break;
    }
    case json_type_double: lua_pushnumber(L, json_object_get_double(v)); break;
    case json_type_string:
        lua_pushlstring(L, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_array: {
        size_t n = json_object_array_length(v);
        lua_createtable(L, n < 1u << 20 ? (int)n : 1 << 20, 0);
        for (size_t i = 0; i < n; i++) {
            push_any(L, json_object_array_get_idx(v, i), true);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT);
        lua_setmetatable(L, -2);
        break;
    }
    case json_type_object: {
        lua_createtable(L, 0, json_object_object_length(v));
        json_object_object_foreach(v, key, child)
        {
            if (!child)
                continue; /* a null member is left out */
            push_any(L, child, true);
            lua_setfield(L, -2, key);
        }
        break;
    }
    }
}

void jn_luajson_push(lua_State *L, json_object *v)
{
    push_any(L, v, true);
}

void jn_luajson_push_value(lua_State *L, json_object *v)
{
    push_any(L, v, false);
}

/* ---- the json library ---- */

static void put_json(void *p)
{
    json_object_put(p);
}

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    jn_luajson_caps_t caps = jn_luajson_caps_default();
    json_object *v = NULL;
    char why[320];
    if (jn_luajson_to_json(L, 1, &caps, &v, why, sizeof why) != JN_OK)
        return jn_sandbox_error(L, "json.encode: %s", why);
    if (!v) {
        lua_pushliteral(L, "null");
        return 1;
    }
    jn_sandbox_box_t *box = jn_sandbox_box(L, v, put_json);
    size_t len;
    const char *text = json_object_to_json_string_length(
        v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    lua_pushlstring(L, text, len);
    jn_sandbox_box_release(box);
    return 1;
}

static bool is_null_text(const char *s, size_t len)
{
    while (len && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++, len--;
    while (len &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    return len == 4 && memcmp(s, "null", 4) == 0;
}

/* The C memory a tree decoded from text takes at most, about: its strings' bytes and a
 * fixed cost per value (values counted by their separators outside strings). */
static size_t tree_bytes(const char *text, size_t len)
{
    size_t values = 1;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == ',' || c == ':' || c == '[' || c == '{') {
            values++;
        }
    }
    return len + values * TREE_BYTES_PER_VALUE;
}

json_object *jn_luajson_parse(lua_State *L, const char *text, size_t len, jn_sandbox_box_t **held,
                              jn_field_error_t *e)
{
    *held = jn_sandbox_reserve(L, tree_bytes(text, len));
    json_object *v = NULL;
    if (jn_json_parse(text, len, false, &v, e) != JN_OK) {
        jn_sandbox_box_release(*held);
        *held = NULL;
        lua_pop(L, 1);
        return NULL;
    }
    return v;
}

static int l_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    jn_luajson_caps_t caps = jn_luajson_caps_default();
    if (len > caps.max_bytes)
        return jn_sandbox_error(L, "json.decode: the text is larger than %zu bytes",
                                caps.max_bytes);
    jn_sandbox_charge(L, len / 16);
    if (is_null_text(text, len)) {
        lua_pushlightuserdata(L, (void *)&NULL_SENTINEL);
        return 1;
    }
    jn_field_error_t e;
    jn_sandbox_box_t *held = NULL;
    json_object *v = jn_luajson_parse(L, text, len, &held, &e);
    if (!v)
        return jn_sandbox_error(L, "json.decode: %s%s%s", e.path, e.path[0] ? ": " : "", e.message);
    jn_sandbox_box_t *box = jn_sandbox_box(L, v, put_json);
    push_any(L, v, true);
    jn_sandbox_box_release(box);
    jn_sandbox_box_release(held);
    return 1;
}

static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getmetatable(L, 1)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT);
        if (!lua_rawequal(L, -1, -2))
            return jn_sandbox_error(L, "json.array: the table already has a metatable");
        lua_pop(L, 2);
    } else {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT);
        lua_setmetatable(L, 1);
    }
    lua_settop(L, 1);
    return 1;
}

static int l_object(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    if (is_marked_array(L, 1)) {
        lua_pushnil(L);
        lua_setmetatable(L, 1);
    }
    lua_settop(L, 1);
    return 1;
}

static int l_is_array(lua_State *L)
{
    if (!lua_istable(L, 1)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (is_marked_array(L, 1)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_Integer n = 0, max = 0;
    bool ok = true;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            ok = false;
            lua_pop(L, 1);
            break;
        }
        n++;
        if (lua_tointeger(L, -1) > max)
            max = lua_tointeger(L, -1);
    }
    lua_pushboolean(L, ok && n > 0 && n == max);
    return 1;
}

void jn_luajson_open(lua_State *L)
{
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "json.array");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "json.array");
    lua_setfield(L, -2, "__metatable"); /* shared by every array: scripts may not change it */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ARRAY_MT);

    static const luaL_Reg fns[] = {{"encode", l_encode},     {"decode", l_decode},
                                   {"array", l_array},       {"object", l_object},
                                   {"is_array", l_is_array}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, (void *)&NULL_SENTINEL);
    lua_setfield(L, -2, "null");
}
