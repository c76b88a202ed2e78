/*
 * script_ctx.c - the ctx object and the three entry points (action, sync, webhook).
 *
 * A run: new sandbox -> load and run the chunk -> read its declaration (the same
 * checks as at deploy time) -> check the input -> push exec, ctx and the argument ->
 * call -> check the output. Each step that touches the state runs protected, so no
 * allocation failure escapes; each C resource a method holds sits in a sandbox box.
 */
#include "script_ctx.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "scripts/luajson.h"
#include "script_http.h"

#define MAX_IDS 10000
#define IDS_BATCH 100
#define MAX_RECORD_ID 255
#define MAX_CHECKPOINT (64u << 10)
#define MAX_METADATA (1u << 20)

typedef enum { RUN_ACTION, RUN_SYNC, RUN_WEBHOOK } run_kind_t;

typedef struct {
    jn_script_http_env_t http; /* first: methods find the host through it */
    run_kind_t kind;
    const jn_declaration_t *decl;
    int log_lines;
} run_t;

static const char CTX_MT = 'c'; /* registry key: the address */

void jn_script_outcome_cleanup(jn_script_outcome_t *o)
{
    jn_script_error_cleanup(&o->error);
    json_object_put(o->output);
    memset(o, 0, sizeof *o);
}

static void json_free(void *p)
{
    json_object_put(p);
}

/* Zeroes every string of p (an object only the caller holds), then puts it. */
static void json_wipe_free(void *p)
{
    jn_json_wipe_strings(p);
    json_object_put(p);
}

/* ---- self, availability, errors ---- */

static run_t *self(lua_State *L, const char *method)
{
    bool ok = lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1);
    if (ok) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_MT);
        ok = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!ok)
        jn_sandbox_error(L, "ctx:%s: call it on ctx with a colon: ctx:%s(...)", method, method);
    return *(run_t **)lua_touserdata(L, 1);
}

static const jn_script_host_t *host(run_t *r)
{
    return r->http.host;
}

static void need(lua_State *L, bool available, const char *method)
{
    if (!available)
        jn_sandbox_error(L, "ctx:%s is not available in this run", method);
}

static void need_sync(lua_State *L, run_t *r, const char *method)
{
    if (r->kind == RUN_ACTION)
        jn_sandbox_error(L, "ctx:%s: only a sync has records and checkpoints", method);
}

static void host_failed(lua_State *L, run_t *r, jn_err_t err, const char *method, const char *why)
{
    char what[48];
    snprintf(what, sizeof what, "ctx:%s", method);
    jn_script_host_failure(L, &r->http, err, what, why);
}

/* Converts the value at idx to JSON (a script error when it has none). */
static json_object *to_json(lua_State *L, int idx, size_t max, const char *method, const char *what)
{
    jn_luajson_caps_t caps = jn_luajson_caps_default();
    caps.max_bytes = max;
    json_object *v = NULL;
    char why[320];
    if (jn_luajson_to_json(L, idx, &caps, &v, why, sizeof why))
        jn_sandbox_error(L, "ctx:%s: %s: %s", method, what, why);
    jn_sandbox_box(L, v, json_free);
    return v;
}

/* Pushes the new object v (taking it) as a Lua value; NULL pushes nil. */
static void push_owned(lua_State *L, json_object *v)
{
    if (!v) {
        lua_pushnil(L);
        return;
    }
    jn_sandbox_box_t *box = jn_sandbox_box(L, v, json_free);
    jn_luajson_push_value(L, v);
    jn_sandbox_box_release(box);
    lua_remove(L, -2);
}

/* ---- HTTP ---- */

static int l_get(lua_State *L)
{
    return jn_script_http_request(L, &self(L, "get")->http, "GET");
}
static int l_post(lua_State *L)
{
    return jn_script_http_request(L, &self(L, "post")->http, "POST");
}
static int l_put(lua_State *L)
{
    return jn_script_http_request(L, &self(L, "put")->http, "PUT");
}
static int l_patch(lua_State *L)
{
    return jn_script_http_request(L, &self(L, "patch")->http, "PATCH");
}
static int l_delete(lua_State *L)
{
    return jn_script_http_request(L, &self(L, "delete")->http, "DELETE");
}
static int l_proxy(lua_State *L)
{
    return jn_script_http_request(L, &self(L, "proxy")->http, NULL);
}
static int l_paginate(lua_State *L)
{
    return jn_script_http_paginate(L, &self(L, "paginate")->http);
}

/* ---- connection and metadata ---- */

/* Calls fn, a host function whose answer holds secrets (credentials, variables), and
 * pushes the answer; from then on the state's freed memory is zeroed. */
static int push_secrets(lua_State *L, run_t *r, const char *method,
                        jn_err_t (*fn)(void *ud, json_object **out, char *why, size_t why_len))
{
    need(L, fn != NULL, method);
    json_object *v = NULL;
    char why[512] = "";
    jn_err_t err = fn(host(r)->ud, &v, why, sizeof why);
    if (err)
        host_failed(L, r, err, method, why);
    jn_sandbox_wipe_on_free(r->http.sb);
    jn_sandbox_box_t *box = jn_sandbox_box(L, v, json_wipe_free);
    jn_luajson_push_value(L, v);
    jn_sandbox_box_release(box);
    return 1;
}

static int l_get_connection(lua_State *L)
{
    run_t *r = self(L, "get_connection");
    return push_secrets(L, r, "get_connection", host(r)->connection);
}

static int l_get_environment_variables(lua_State *L)
{
    run_t *r = self(L, "get_environment_variables");
    return push_secrets(L, r, "get_environment_variables", host(r)->environment_variables);
}

static int l_get_metadata(lua_State *L)
{
    run_t *r = self(L, "get_metadata");
    need(L, host(r)->get_metadata != NULL, "get_metadata");
    json_object *md = NULL;
    char why[512] = "";
    jn_err_t err = host(r)->get_metadata(host(r)->ud, &md, why, sizeof why);
    if (err)
        host_failed(L, r, err, "get_metadata", why);
    if (!md)
        md = json_object_new_object();
    push_owned(L, md);
    return 1;
}

static int set_metadata(lua_State *L, bool merge)
{
    const char *method = merge ? "update_metadata" : "set_metadata";
    run_t *r = self(L, method);
    need(L, host(r)->set_metadata != NULL, method);
    luaL_argexpected(L, lua_istable(L, 2), 2, "table");
    json_object *md = to_json(L, 2, MAX_METADATA, method, "metadata");
    if (!json_object_is_type(md, json_type_object))
        jn_sandbox_error(L, "ctx:%s: metadata must be a table of fields", method);
    jn_field_error_t e;
    if (r->decl->metadata &&
        jn_model_validate(r->decl->metadata, &md, "metadata", 1, merge ? JN_MODEL_PARTIAL : 0, &e))
        jn_sandbox_error(L, "ctx:%s: %s: %s", method, e.path, e.message);
    char why[512] = "";
    jn_err_t err = host(r)->set_metadata(host(r)->ud, md, merge, why, sizeof why);
    if (err)
        host_failed(L, r, err, method, why);
    return 0;
}

static int l_set_metadata(lua_State *L)
{
    return set_metadata(L, false);
}

static int l_update_metadata(lua_State *L)
{
    return set_metadata(L, true);
}

/* ---- log and failure ---- */

static jn_log_level_t parse_level(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return JN_LOG_INFO;
    if (lua_istable(L, idx)) { /* Nango's log(msg, {level = ...}) */
        lua_pushliteral(L, "level");
        lua_rawget(L, idx);
        lua_replace(L, idx);
        if (lua_isnil(L, idx))
            return JN_LOG_INFO;
    }
    jn_log_level_t level;
    const char *text = lua_tostring(L, idx);
    if (!text || jn_log_level_parse(text, &level) != JN_OK)
        jn_sandbox_error(L, "ctx:log: level must be \"debug\", \"info\", \"warn\" or \"error\"");
    return level;
}

static void log_line(run_t *r, jn_log_level_t level, const char *msg, size_t len)
{
    const jn_script_host_t *h = host(r);
    if (!h->log || r->log_lines > JN_SCRIPT_LOG_LINES_MAX)
        return;
    if (++r->log_lines > JN_SCRIPT_LOG_LINES_MAX) {
        static const char note[] = "log limit reached: further lines of this run are dropped";
        h->log(h->ud, JN_LOG_WARN, note, sizeof note - 1);
        return;
    }
    char line[JN_SCRIPT_LOG_LINE_MAX];
    size_t n = jn_sandbox_clean_text(line, sizeof line, msg, len);
    h->log(h->ud, level, line, n);
}

static void print_to_log(void *ud, const char *msg, size_t len)
{
    log_line(ud, JN_LOG_INFO, msg, len);
}

static int l_log(lua_State *L)
{
    run_t *r = self(L, "log");
    jn_log_level_t level = parse_level(L, 3);
    size_t len = 0;
    const char *msg;
    if (lua_istable(L, 2)) {
        jn_luajson_caps_t caps = jn_luajson_caps_default();
        caps.max_bytes = JN_SCRIPT_LOG_LINE_MAX;
        json_object *v = NULL;
        char why[64];
        if (jn_luajson_to_json(L, 2, &caps, &v, why, sizeof why) == JN_OK) {
            jn_sandbox_box_t *box = jn_sandbox_box(L, v, json_free);
            lua_pushstring(L, json_object_to_json_string_ext(
                                  v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
            jn_sandbox_box_release(box);
        } else {
            luaL_tolstring(L, 2, NULL);
        }
        msg = lua_tolstring(L, -1, &len);
    } else {
        msg = luaL_tolstring(L, 2, &len); /* may run __tostring */
    }
    log_line(r, level, msg, len);
    return 0;
}

static int l_action_error(lua_State *L)
{
    self(L, "action_error");
    lua_settop(L, 2);
    const char *message = "the action failed";
    if (lua_type(L, 2) == LUA_TSTRING) {
        message = lua_tostring(L, 2);
    } else if (lua_istable(L, 2)) {
        lua_pushliteral(L, "message");
        if (lua_rawget(L, 2) == LUA_TSTRING)
            message = lua_tostring(L, -1);
        lua_pop(L, 1); /* the table still holds the string */
    }
    char text[512];
    jn_sandbox_clean_text(text, sizeof text, message, strlen(message));
    lua_pushvalue(L, 2);
    return jn_sandbox_raise(L, JN_SCRIPT_ACTION_FAILED, 0, true, "%s", text);
}

/* ---- checkpoints ---- */

static int l_get_checkpoint(lua_State *L)
{
    run_t *r = self(L, "get_checkpoint");
    need_sync(L, r, "get_checkpoint");
    need(L, host(r)->get_checkpoint != NULL, "get_checkpoint");
    json_object *cp = NULL;
    char why[512] = "";
    jn_err_t err = host(r)->get_checkpoint(host(r)->ud, &cp, why, sizeof why);
    if (err)
        host_failed(L, r, err, "get_checkpoint", why);
    push_owned(L, cp);
    return 1;
}

static int l_save_checkpoint(lua_State *L)
{
    run_t *r = self(L, "save_checkpoint");
    need_sync(L, r, "save_checkpoint");
    need(L, host(r)->save_checkpoint != NULL, "save_checkpoint");
    luaL_argexpected(L, lua_istable(L, 2), 2, "table");
    json_object *cp = to_json(L, 2, MAX_CHECKPOINT, "save_checkpoint", "checkpoint");
    if (!json_object_is_type(cp, json_type_object))
        jn_sandbox_error(L, "ctx:save_checkpoint: a checkpoint is a table of fields");
    json_object_object_foreach(cp, key, value)
    {
        json_type t = json_object_get_type(value);
        if (t != json_type_string && t != json_type_int && t != json_type_double &&
            t != json_type_boolean)
            jn_sandbox_error(L,
                             "ctx:save_checkpoint: checkpoint.%s: a checkpoint is flat: strings, "
                             "numbers and booleans",
                             key);
    }
    jn_field_error_t e;
    if (r->decl->checkpoint && jn_model_validate(r->decl->checkpoint, &cp, "checkpoint", 1, 0, &e))
        jn_sandbox_error(L, "ctx:save_checkpoint: %s: %s", e.path, e.message);
    char why[512] = "";
    jn_err_t err = host(r)->save_checkpoint(host(r)->ud, cp, why, sizeof why);
    if (err)
        host_failed(L, r, err, "save_checkpoint", why);
    return 0;
}

static int l_clear_checkpoint(lua_State *L)
{
    run_t *r = self(L, "clear_checkpoint");
    need_sync(L, r, "clear_checkpoint");
    need(L, host(r)->save_checkpoint != NULL, "clear_checkpoint");
    char why[512] = "";
    jn_err_t err = host(r)->save_checkpoint(host(r)->ud, NULL, why, sizeof why);
    if (err)
        host_failed(L, r, err, "clear_checkpoint", why);
    return 0;
}

/* ---- records ---- */

static const jn_model_type_t *record_model(lua_State *L, run_t *r, int idx, const char *method)
{
    const char *model = luaL_checkstring(L, idx);
    const jn_model_type_t *t = jn_model_get(r->decl->models, model);
    if (!t) {
        char names[256] = "";
        size_t o = 0;
        for (size_t i = 0; i < jn_model_count(r->decl->models) && o < sizeof names - 1; i++) {
            int n = snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "",
                             jn_model_name(r->decl->models, i));
            o += n > 0 ? (size_t)n : 0;
        }
        jn_sandbox_error(L, "ctx:%s: unknown model '%s' (the script declares: %s)", method, model,
                         names);
    }
    return t;
}

/* The number of items of the list at idx; an error when it is not a list. */
static lua_Integer list_length(lua_State *L, int idx, const char *method, const char *what)
{
    luaL_argexpected(L, lua_istable(L, idx), idx, "table");
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n)
            jn_sandbox_error(L, "ctx:%s: %s must be a list (keys 1..n)", method, what);
    }
    if (count != n)
        jn_sandbox_error(L, "ctx:%s: %s must be a list without holes", method, what);
    return n;
}

static void check_record_id(lua_State *L, json_object *rec, lua_Integer i, const char *method)
{
    json_object *id = NULL;
    if (!json_object_object_get_ex(rec, "id", &id) || !id)
        jn_sandbox_error(L, "ctx:%s: records[%d].id: is required", method, (int)i);
    if (json_object_is_type(id, json_type_int))
        return;
    if (!json_object_is_type(id, json_type_string) || json_object_get_string_len(id) == 0 ||
        json_object_get_string_len(id) > MAX_RECORD_ID)
        jn_sandbox_error(L,
                         "ctx:%s: records[%d].id: must be a string of 1 to %d characters or an "
                         "integer",
                         method, (int)i, MAX_RECORD_ID);
}

static int batch(lua_State *L, jn_script_records_op_t op, const char *method)
{
    run_t *r = self(L, method);
    need_sync(L, r, method);
    need(L, host(r)->records != NULL, method);
    lua_Integer n = list_length(L, 2, method, "records");
    const jn_model_type_t *model = record_model(L, r, 3, method);
    const char *model_name = lua_tostring(L, 3);
    jn_sandbox_charge(L, (uint64_t)n * 100);
    for (lua_Integer start = 1; start <= n; start += JN_SCRIPT_RECORDS_BATCH) {
        json_object *list = json_object_new_array();
        jn_sandbox_box_t *box = jn_sandbox_box(L, list, json_free);
        lua_Integer end =
            start + JN_SCRIPT_RECORDS_BATCH - 1 < n ? start + JN_SCRIPT_RECORDS_BATCH - 1 : n;
        for (lua_Integer i = start; i <= end; i++) {
            lua_rawgeti(L, 2, i);
            if (!lua_istable(L, -1))
                jn_sandbox_error(L, "ctx:%s: records[%d]: must be a table", method, (int)i);
            char what[32];
            snprintf(what, sizeof what, "records[%d]", (int)i);
            json_object *rec = to_json(L, -1, 16u << 20, method, what);
            jn_sandbox_box_take(lua_touserdata(L, -1));
            lua_pop(L, 2);
            json_object_array_add(list, rec); /* the list owns it from here */
            if (!json_object_is_type(rec, json_type_object))
                jn_sandbox_error(L, "ctx:%s: %s: must be a table of fields", method, what);
            json_object_object_del(rec, "_nango_metadata");
            check_record_id(L, rec, i, method);
            jn_field_error_t e;
            json_object *checked = json_object_get(rec);
            jn_err_t err = JN_OK;
            if (op != JN_SCRIPT_RECORDS_DELETE)
                err = jn_model_validate(model, &checked, what, 1,
                                        op == JN_SCRIPT_RECORDS_UPDATE ? JN_MODEL_PARTIAL : 0, &e);
            if (checked != rec)
                json_object_array_put_idx(list, (size_t)(i - start), json_object_get(checked));
            json_object_put(checked);
            if (err)
                jn_sandbox_error(L, "ctx:%s: %s: %s", method, e.path, e.message);
        }
        char why[512] = "";
        jn_err_t err = host(r)->records(host(r)->ud, op, model_name, list, why, sizeof why);
        if (err)
            host_failed(L, r, err, method, why);
        jn_sandbox_box_release(box);
        lua_pop(L, 1);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_batch_save(lua_State *L)
{
    return batch(L, JN_SCRIPT_RECORDS_SAVE, "batch_save");
}

static int l_batch_update(lua_State *L)
{
    return batch(L, JN_SCRIPT_RECORDS_UPDATE, "batch_update");
}

static int l_batch_delete(lua_State *L)
{
    return batch(L, JN_SCRIPT_RECORDS_DELETE, "batch_delete");
}

static int l_get_records_by_ids(lua_State *L)
{
    const char *method = "get_records_by_ids";
    run_t *r = self(L, method);
    need_sync(L, r, method);
    need(L, host(r)->records_by_ids != NULL, method);
    lua_Integer n = list_length(L, 2, method, "ids");
    record_model(L, r, 3, method);
    const char *model = lua_tostring(L, 3);
    if (n > MAX_IDS)
        jn_sandbox_error(L, "ctx:%s: at most %d ids per call", method, MAX_IDS);
    lua_createtable(L, 0, (int)n);
    int result = lua_gettop(L);
    for (lua_Integer start = 1; start <= n; start += IDS_BATCH) {
        json_object *ids = json_object_new_array();
        jn_sandbox_box_t *box = jn_sandbox_box(L, ids, json_free);
        for (lua_Integer i = start; i < start + IDS_BATCH && i <= n; i++) {
            lua_rawgeti(L, 2, i);
            char num[32];
            size_t len = 0;
            const char *id = NULL;
            if (lua_type(L, -1) == LUA_TSTRING) {
                id = lua_tolstring(L, -1, &len);
            } else if (lua_isinteger(L, -1)) {
                snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, -1));
                id = num;
                len = strlen(num);
            }
            if (!id || len == 0 || len > MAX_RECORD_ID || memchr(id, '\0', len) ||
                !jn_utf8_valid(id, len))
                jn_sandbox_error(L, "ctx:%s: ids[%d]: must be a record id (a string or an integer)",
                                 method, (int)i);
            json_object_array_add(ids, json_object_new_string_len(id, (int)len));
            lua_pop(L, 1);
        }
        json_object *found = NULL;
        char why[512] = "";
        jn_err_t err = host(r)->records_by_ids(host(r)->ud, model, ids, &found, why, sizeof why);
        if (err)
            host_failed(L, r, err, method, why);
        if (found) {
            jn_sandbox_box_t *fbox = jn_sandbox_box(L, found, json_free);
            json_object_object_foreach(found, id, record)
            {
                jn_luajson_push(L, record);
                lua_setfield(L, result, id);
            }
            jn_sandbox_box_release(fbox);
            lua_pop(L, 1);
        }
        jn_sandbox_box_release(box);
        lua_pop(L, 1);
    }
    return 1;
}

/* ---- the ctx object ---- */

static const luaL_Reg methods[] = {
    {"get", l_get},
    {"post", l_post},
    {"put", l_put},
    {"patch", l_patch},
    {"delete", l_delete},
    {"proxy", l_proxy},
    {"paginate", l_paginate},
    {"get_connection", l_get_connection},
    {"get_environment_variables", l_get_environment_variables},
    {"get_metadata", l_get_metadata},
    {"set_metadata", l_set_metadata},
    {"update_metadata", l_update_metadata},
    {"log", l_log},
    {"action_error", l_action_error},
    {"get_checkpoint", l_get_checkpoint},
    {"save_checkpoint", l_save_checkpoint},
    {"clear_checkpoint", l_clear_checkpoint},
    {"batch_save", l_batch_save},
    {"batch_update", l_batch_update},
    {"batch_delete", l_batch_delete},
    {"get_records_by_ids", l_get_records_by_ids},
    {NULL, NULL},
};

/* __index: a method (from the methods table, upvalue 1) or a read-only field. */
static int ctx_index(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    run_t *r = *(run_t **)lua_touserdata(L, 1);
    const char *key = lua_tostring(L, 2);
    const jn_script_run_info_t *info = r->http.info;
    const char *value = NULL;
    if (!key)
        return 1;
    if (strcmp(key, "connection_id") == 0)
        value = info ? info->connection_id : NULL;
    else if (strcmp(key, "provider_config_key") == 0)
        value = info ? info->provider_config_key : NULL;
    else if (strcmp(key, "provider") == 0)
        value = info ? info->provider : NULL;
    else if (strcmp(key, "last_sync_date") == 0)
        value = info && r->kind != RUN_ACTION ? info->last_sync_date : NULL;
    else if (strcmp(key, "script") == 0)
        value = r->decl->name;
    else
        return 1;
    if (value)
        lua_pushstring(L, value);
    else
        lua_pushnil(L);
    return 1;
}

static int ctx_newindex(lua_State *L)
{
    return jn_sandbox_error(L, "ctx is read-only");
}

static int ctx_tostring(lua_State *L)
{
    lua_pushliteral(L, "ctx");
    return 1;
}

/* Pushes a new ctx for r (creating the shared metatable on first use). */
static void push_ctx(lua_State *L, run_t *r)
{
    run_t **p = lua_newuserdatauv(L, sizeof *p, 0);
    *p = r;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_MT) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 4);
        luaL_newlib(L, methods);
        lua_pushcclosure(L, ctx_index, 1);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ctx_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_pushcfunction(L, ctx_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "ctx");
        lua_setfield(L, -2, "__metatable");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &CTX_MT);
    }
    lua_setmetatable(L, -2);
}

/* ---- runs ---- */

typedef struct {
    run_t *run;
    jn_declaration_t *decl;
    char why[JN_SCRIPT_MESSAGE_MAX];
    jn_err_t err;
    json_object *arg; /* input or payload (borrowed) */
    bool has_arg;
    json_object *extra; /* a webhook's third argument (borrowed); NULL: none */
} step_t;

static int read_declaration(lua_State *L)
{
    step_t *s = lua_touserdata(L, 1);
    s->err =
        jn_declaration_read(L, 2, jn_sandbox_name(s->run->http.sb), s->decl, s->why, sizeof s->why);
    return 0;
}

/* Pushes the function to call, ctx and (for actions and webhooks) the argument. */
static int push_call(lua_State *L)
{
    step_t *s = lua_touserdata(L, 1);
    lua_pushstring(L,
                   s->run->kind == RUN_WEBHOOK ? JN_DECLARATION_ON_WEBHOOK : JN_DECLARATION_EXEC);
    lua_rawget(L, 2);
    push_ctx(L, s->run);
    if (!s->has_arg)
        return 2;
    jn_luajson_push_value(L, s->arg);
    if (!s->extra)
        return 3;
    jn_luajson_push_value(L, s->extra);
    return 4;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static jn_script_status_t fail(jn_script_outcome_t *out, jn_script_status_t status, const char *fmt,
                               ...) __attribute__((format(printf, 3, 4)));

static jn_script_status_t fail(jn_script_outcome_t *out, jn_script_status_t status, const char *fmt,
                               ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error.message, sizeof out->error.message, fmt, ap);
    va_end(ap);
    out->error.status = status;
    return status;
}

/* Checks the result on top of the stack against the declared output. */
static jn_script_status_t check_output(jn_sandbox_t *sb, const jn_declaration_t *d,
                                       const jn_sandbox_limits_t *lim, jn_script_outcome_t *out)
{
    lua_State *L = jn_sandbox_state(sb);
    jn_luajson_caps_t caps = jn_luajson_caps_default();
    size_t cap = lim->output_bytes ? lim->output_bytes : caps.max_bytes;
    caps.max_bytes = cap;
    char why[320];
    json_object *v = NULL;
    jn_err_t err = jn_luajson_to_json(L, -1, &caps, &v, why, sizeof why);
    if (err)
        return fail(out, JN_SCRIPT_INVALID_OUTPUT, "%s: output: %s", d->name, why);
    jn_field_error_t e;
    if (d->output && jn_model_validate(d->output, &v, "output", 1, 0, &e)) {
        json_object_put(v);
        return fail(out, JN_SCRIPT_INVALID_OUTPUT, "%s: %s: %s", d->name, e.path, e.message);
    }
    size_t len = 0;
    if (v)
        json_object_to_json_string_length(
            v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (len > cap) {
        json_object_put(v);
        return fail(out, JN_SCRIPT_INVALID_OUTPUT, "%s: output: larger than %zu bytes as JSON",
                    d->name, cap);
    }
    out->output = v;
    return JN_SCRIPT_OK;
}

static jn_script_status_t run(run_kind_t kind, const jn_script_source_t *script, json_object *arg,
                              const jn_script_host_t *h, const jn_script_run_info_t *info,
                              const jn_sandbox_limits_t *lim, jn_script_outcome_t *out)
{
    memset(out, 0, sizeof *out);
    int64_t started = now_ms();
    jn_sandbox_t *sb = jn_sandbox_new(script->name, lim);
    if (!sb)
        return out->status =
                   fail(out, JN_SCRIPT_MEMORY,
                        "%s: the sandbox cannot start within its memory limit", script->name);
    if (info)
        jn_sandbox_set_interrupt(sb, info->stop, info->lost);
    jn_declaration_t decl = {0};
    run_t r = {.http = {.host = h, .info = info, .sb = sb}, .kind = kind, .decl = &decl};
    if (h->log)
        jn_sandbox_set_print(sb, print_to_log, &r);
    lua_State *L = jn_sandbox_state(sb);
    step_t s = {.run = &r, .decl = &decl};
    jn_script_error_t *err = &out->error;
    json_object *arg_copy = NULL;
    const char *name = jn_sandbox_name(sb);

    if (jn_sandbox_load(sb, script->source, script->len, err) || jn_sandbox_call(sb, 0, 1, err))
        goto done;
    lua_pushvalue(L, -1);
    if (jn_sandbox_protect(sb, read_declaration, &s, 1, 0, err))
        goto done;
    if (s.err) {
        fail(out, JN_SCRIPT_ERROR, "%s", s.why);
        goto done;
    }
    if (kind == RUN_ACTION && decl.kind != JN_SCRIPT_ACTION) {
        fail(out, JN_SCRIPT_ERROR, "%s: this script is a sync; it cannot run as an action", name);
        goto done;
    }
    if (kind != RUN_ACTION && decl.kind != JN_SCRIPT_SYNC) {
        fail(out, JN_SCRIPT_ERROR, "%s: this script is an action; it cannot run as a sync", name);
        goto done;
    }
    if (kind == RUN_WEBHOOK && !decl.has_on_webhook) {
        fail(out, JN_SCRIPT_ERROR, "%s: this sync has no on_webhook function", name);
        goto done;
    }
    if (kind != RUN_SYNC) {
        if (arg && json_object_deep_copy(arg, &arg_copy, NULL) != 0)
            abort();
        jn_field_error_t e;
        if (kind == RUN_ACTION && decl.input &&
            jn_model_validate(decl.input, &arg_copy, "input", 0, 0, &e)) {
            fail(out, JN_SCRIPT_INVALID_INPUT, "%s: %s: %s", name, e.path, e.message);
            goto done;
        }
        s.arg = arg_copy;
        s.has_arg = true;
        if (kind == RUN_WEBHOOK && info && info->webhook)
            s.extra = info->webhook;
    }
    int nargs = 1 + s.has_arg + (s.extra != NULL);
    lua_pushvalue(L, -1);
    if (jn_sandbox_protect(sb, push_call, &s, 1, nargs + 1, err) ||
        jn_sandbox_call(sb, nargs, 1, err))
        goto done;
    if (kind == RUN_ACTION)
        check_output(sb, &decl, jn_sandbox_limits(sb), out);

done:
    out->status = out->error.status;
    if (out->status == JN_SCRIPT_HOST)
        out->host_err = r.http.last_host_err ? r.http.last_host_err : JN_ERR_UPSTREAM;
    out->instructions = jn_sandbox_instructions(sb);
    out->memory_peak = jn_sandbox_memory_peak(sb);
    jn_sandbox_free(sb);
    json_object_put(arg_copy);
    jn_declaration_cleanup(&decl);
    out->duration_ms = now_ms() - started;
    return out->status;
}

jn_script_status_t jn_script_run_action(const jn_script_source_t *script, json_object *input,
                                        const jn_script_host_t *host,
                                        const jn_script_run_info_t *info,
                                        const jn_sandbox_limits_t *limits, jn_script_outcome_t *out)
{
    jn_sandbox_limits_t lim = limits ? *limits : jn_sandbox_limits_action();
    return run(RUN_ACTION, script, input, host, info, &lim, out);
}

jn_script_status_t jn_script_run_sync(const jn_script_source_t *script,
                                      const jn_script_host_t *host,
                                      const jn_script_run_info_t *info,
                                      const jn_sandbox_limits_t *limits, jn_script_outcome_t *out)
{
    jn_sandbox_limits_t lim = limits ? *limits : jn_sandbox_limits_sync();
    return run(RUN_SYNC, script, NULL, host, info, &lim, out);
}

jn_script_status_t jn_script_run_webhook(const jn_script_source_t *script, json_object *payload,
                                         const jn_script_host_t *host,
                                         const jn_script_run_info_t *info,
                                         const jn_sandbox_limits_t *limits,
                                         jn_script_outcome_t *out)
{
    jn_sandbox_limits_t lim = limits ? *limits : jn_sandbox_limits_webhook();
    return run(RUN_WEBHOOK, script, payload, host, info, &lim, out);
}

/* The provider's headers a caller may see: its content type and rate-limit state, as
 * Nango passes them on (never cookies or anything else the provider sent). */
static json_object *upstream_headers(json_object *headers)
{
    json_object *out = json_object_new_object();
    json_object_object_foreach(headers, name, value)
    {
        if (strcmp(name, "content-type") == 0 || strncmp(name, "x-rate", 6) == 0 ||
            strcmp(name, "retry-after") == 0)
            json_object_object_add(out, name, json_object_get(value));
    }
    return out;
}

json_object *jn_script_outcome_error_json(const jn_script_outcome_t *o, int *http_status)
{
    const jn_script_error_t *e = &o->error;
    const char *code = "action_script_failure";
    int status = 500;
    json_object *payload = NULL, *upstream = NULL;
    switch (o->status) {
    case JN_SCRIPT_HTTP:
        code = "script_http_error";
        status = 424;
        upstream = json_object_new_object();
        json_object_object_add(upstream, "status", json_object_new_int(e->http_status));
        if (e->payload) {
            json_object *v = NULL;
            if (json_object_object_get_ex(e->payload, "headers", &v))
                json_object_object_add(upstream, "headers", upstream_headers(v));
            if (json_object_object_get_ex(e->payload, "data", &v)) {
                json_object_object_add(upstream, "body", json_object_get(v));
                payload = json_object_get(v);
            }
        }
        break;
    case JN_SCRIPT_ACTION_FAILED: payload = json_object_get(e->payload); break;
    case JN_SCRIPT_INVALID_INPUT:
        code = "invalid_action_input";
        status = 400;
        break;
    case JN_SCRIPT_HOST:
        code = "script_network_error";
        status = 502;
        break;
    default: break;
    }
    if (!payload) {
        payload = json_object_new_object();
        json_object_object_add(payload, "type",
                               json_object_new_string(jn_script_status_str(o->status)));
        json_object_object_add(payload, "message", json_object_new_string(e->message));
    }
    json_object *err = json_object_new_object();
    json_object_object_add(err, "code", json_object_new_string(code));
    json_object_object_add(err, "message", json_object_new_string(e->message));
    json_object_object_add(err, "payload", payload);
    if (upstream)
        json_object_object_add(err, "upstream", upstream);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "error", err);
    if (http_status)
        *http_status = status;
    return root;
}
