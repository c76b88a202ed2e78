/*
 * declaration.c - reading and checking a script's declaration.
 *
 * Both ways in (the table a chunk returns, the stored JSON form) end in check(), so a
 * rule exists once. The Lua way first turns every data field into JSON (luajson's
 * rules) and notes which functions exist; check() then validates and normalises the
 * JSON form in place (defaults filled in, endpoint as {method, path}).
 */
#include "scripts/declaration.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "core/frequency.h"
#include "scripts/luajson.h"

#define MAX_DESCRIPTION 2000
#define MAX_VERSION 32
#define MAX_LIST 100
#define MAX_LIST_ITEM 256
#define MAX_PATH 255

static const char *const common_fields[] = {"type",   "description", "version",  "scopes",
                                            "models", "metadata",    "endpoint", NULL};
static const char *const action_fields[] = {"input", "output", NULL};
static const char *const sync_fields[] = {"frequency",  "sync_type",  "track_deletes",
                                          "auto_start", "on_webhook", "webhook_subscriptions",
                                          "checkpoint", NULL};
/* Only in the JSON form. */
static const char *const stored_fields[] = {"name", "frequency_seconds", NULL};

static bool listed(const char *const *list, const char *key)
{
    for (; *list; list++) {
        if (strcmp(*list, key) == 0)
            return true;
    }
    return false;
}

static jn_err_t fail(char *why, size_t why_len, const char *name, const char *field,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static jn_err_t fail(char *why, size_t why_len, const char *name, const char *field,
                     const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (field && *field)
        snprintf(why, why_len, "%s: %s: %s", name, field, msg);
    else
        snprintf(why, why_len, "%s: %s", name, msg);
    return JN_ERR_INVALID;
}

static jn_err_t fail_field(char *why, size_t why_len, const char *name, const jn_field_error_t *e)
{
    return fail(why, why_len, name, e->path, "%s", e->message);
}

/* Whether key may appear in a declaration of this kind. */
static jn_err_t check_key(const char *key, jn_script_kind_t kind, bool stored, const char *name,
                          char *why, size_t why_len)
{
    if (listed(common_fields, key) || (stored && listed(stored_fields, key)))
        return JN_OK;
    if (kind == JN_SCRIPT_ACTION && listed(action_fields, key))
        return JN_OK;
    if (kind == JN_SCRIPT_SYNC && listed(sync_fields, key))
        return JN_OK;
    if (kind == JN_SCRIPT_ACTION && listed(sync_fields, key))
        return fail(why, why_len, name, key, "only a sync has this field");
    if (kind == JN_SCRIPT_SYNC && listed(action_fields, key))
        return fail(why, why_len, name, key,
                    "only an action has this field (a sync declares `models`, and the connection "
                    "metadata it reads as `metadata`)");
    if (!stored && strcmp(key, "exec") == 0)
        return JN_OK;
    return fail(why, why_len, name, key, "unknown field (see docs/scripts.md for the fields)");
}

/* A list of short strings; an empty object (an empty Lua table) is taken as []. */
static jn_err_t check_list(json_object *j, const char *key, const char *name, char *why,
                           size_t why_len)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(j, key, &v) || !v ||
        (json_object_is_type(v, json_type_object) && json_object_object_length(v) == 0)) {
        json_object_object_add(j, key, json_object_new_array());
        return JN_OK;
    }
    if (!json_object_is_type(v, json_type_array))
        return fail(why, why_len, name, key, "must be a list of strings");
    size_t n = json_object_array_length(v);
    if (n > MAX_LIST)
        return fail(why, why_len, name, key, "has more than %d items", MAX_LIST);
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(v, i);
        if (!json_object_is_type(item, json_type_string) || json_object_get_string_len(item) == 0 ||
            json_object_get_string_len(item) > MAX_LIST_ITEM)
            return fail(why, why_len, name, key,
                        "item %zu must be a non-empty string of at most %d characters", i + 1,
                        MAX_LIST_ITEM);
    }
    return JN_OK;
}

static bool valid_version(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > MAX_VERSION)
        return false;
    for (const char *p = v; *p; p++) {
        char c = *p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '-' || c == '+' || c == '_'))
            return false;
    }
    return true;
}

static bool valid_endpoint_path(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > MAX_PATH || p[0] != '/')
        return false;
    for (; *p; p++) {
        char c = *p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              strchr("/-_.:{}~", c)))
            return false;
    }
    return true;
}

/* endpoint: {method, path[, group]} or "METHOD /path"; stored as the object. */
static jn_err_t check_endpoint(json_object *j, const char *name, char *why, size_t why_len)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(j, "endpoint", &v) || !v)
        return JN_OK;
    const char *method = NULL, *path = NULL, *group = NULL;
    char buf[MAX_PATH + 16];
    if (json_object_is_type(v, json_type_string)) {
        snprintf(buf, sizeof buf, "%s", json_object_get_string(v));
        char *space = strchr(buf, ' ');
        if (!space)
            return fail(why, why_len, name, "endpoint",
                        "write \"METHOD /path\", e.g. \"POST /notes\"");
        *space = '\0';
        method = buf;
        path = space + 1;
        while (*path == ' ')
            path++;
    } else if (json_object_is_type(v, json_type_object)) {
        static const char *const keys[] = {"method", "path", "group", NULL};
        jn_field_error_t e;
        if (jn_json_only_keys(v, keys, "endpoint", &e) ||
            jn_json_string(v, "method", true, 16, &method, &e) ||
            jn_json_string(v, "path", true, MAX_PATH, &path, &e) ||
            jn_json_string(v, "group", false, 64, &group, &e)) {
            if (strncmp(e.path, "endpoint", 8) != 0)
                jn_field_error_nest(&e, "endpoint");
            return fail_field(why, why_len, name, &e);
        }
    } else {
        return fail(why, why_len, name, "endpoint", "must be {method = ..., path = ...}");
    }
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
    if (!listed(methods, method))
        return fail(why, why_len, name, "endpoint.method",
                    "must be GET, POST, PUT, PATCH or DELETE");
    if (!valid_endpoint_path(path))
        return fail(why, why_len, name, "endpoint.path",
                    "must start with / and use only letters, digits and / - _ . : { } ~ (at most "
                    "%d characters)",
                    MAX_PATH);
    json_object *norm = json_object_new_object();
    json_object_object_add(norm, "method", json_object_new_string(method));
    json_object_object_add(norm, "path", json_object_new_string(path));
    if (group)
        json_object_object_add(norm, "group", json_object_new_string(group));
    json_object_object_add(j, "endpoint", norm);
    return JN_OK;
}

/* A model field of the declaration (input, output, metadata, checkpoint). */
static jn_err_t compile_field(jn_declaration_t *d, json_object *j, const char *key,
                              const jn_model_type_t **out, char *why, size_t why_len)
{
    json_object *spec = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(j, key, &spec) || !spec)
        return JN_OK;
    jn_field_error_t e;
    if (jn_model_compile(d->models, spec, key, out, &e))
        return fail_field(why, why_len, d->name, &e);
    return JN_OK;
}

static jn_err_t check_checkpoint(jn_declaration_t *d, json_object *j, char *why, size_t why_len)
{
    if (!d->checkpoint)
        return JN_OK;
    json_object *spec = json_object_object_get(j, "checkpoint");
    if (!json_object_is_type(spec, json_type_object))
        return fail(why, why_len, d->name, "checkpoint",
                    "must be a table of fields (a checkpoint is a flat object)");
    json_object_object_foreach(spec, key, value)
    {
        (void)value;
        const jn_model_type_t *ft = jn_model_field(d->checkpoint, key);
        static const char *const flat[] = {"string", "number", "integer", "boolean", "date", NULL};
        char type[32] = "";
        if (json_object_is_type(value, json_type_string)) {
            snprintf(type, sizeof type, "%s", json_object_get_string(value));
            size_t n = strlen(type);
            if (n && type[n - 1] == '?')
                type[n - 1] = '\0';
        }
        if (!ft || !listed(flat, type)) {
            char field[160];
            snprintf(field, sizeof field, "checkpoint.%s", key);
            return fail(why, why_len, d->name, field,
                        "a checkpoint field is a string, number, integer, boolean or date");
        }
    }
    return JN_OK;
}

static jn_err_t check_sync(jn_declaration_t *d, json_object *j, char *why, size_t why_len)
{
    const char *name = d->name;
    jn_field_error_t e;
    const char *frequency = NULL, *sync_type = NULL;
    if (jn_json_string(j, "frequency", true, 64, &frequency, &e))
        return fail(why, why_len, name, "frequency",
                    "%s (e.g. \"every 5 minutes\", \"1h\", \"every day\")", e.message);
    char reason[256];
    if (jn_frequency_parse(frequency, &d->frequency_seconds, reason, sizeof reason))
        return fail(why, why_len, name, "frequency", "%s", reason);
    json_object_object_add(j, "frequency_seconds", json_object_new_int64(d->frequency_seconds));
    if (jn_json_string(j, "sync_type", false, 16, &sync_type, &e))
        return fail_field(why, why_len, name, &e);
    if (!sync_type)
        sync_type = "incremental";
    if (strcmp(sync_type, "incremental") != 0 && strcmp(sync_type, "full") != 0)
        return fail(why, why_len, name, "sync_type", "must be \"incremental\" or \"full\"");
    d->full_sync = strcmp(sync_type, "full") == 0;
    json_object_object_add(j, "sync_type", json_object_new_string(sync_type));
    bool present;
    d->auto_start = true;
    d->track_deletes = false;
    if (jn_json_bool(j, "auto_start", &d->auto_start, &present, &e) ||
        jn_json_bool(j, "track_deletes", &d->track_deletes, &present, &e))
        return fail_field(why, why_len, name, &e);
    if (d->track_deletes && !d->full_sync)
        return fail(why, why_len, name, "track_deletes",
                    "only a full sync (sync_type = \"full\") can detect deletes; an incremental "
                    "sync deletes with ctx:batch_delete");
    json_object_object_add(j, "auto_start", json_object_new_boolean(d->auto_start));
    json_object_object_add(j, "track_deletes", json_object_new_boolean(d->track_deletes));
    bool hook = false;
    if (jn_json_bool(j, "on_webhook", &hook, &present, &e))
        return fail(why, why_len, name, "on_webhook", "must be a function");
    d->has_on_webhook = hook;
    json_object_object_add(j, "on_webhook", json_object_new_boolean(hook));
    jn_err_t err = check_list(j, "webhook_subscriptions", name, why, why_len);
    if (err)
        return err;
    if (json_object_array_length(json_object_object_get(j, "webhook_subscriptions")) && !hook)
        return fail(why, why_len, name, "webhook_subscriptions",
                    "needs an on_webhook function to receive them");
    if (jn_model_count(d->models) == 0)
        return fail(why, why_len, name, "models",
                    "a sync declares at least one model (the records it saves)");
    for (size_t i = 0; i < jn_model_count(d->models); i++) {
        const char *model = jn_model_name(d->models, i);
        const jn_model_type_t *id = jn_model_field(jn_model_get(d->models, model), "id");
        json_object *id_spec = json_object_object_get(
            json_object_object_get(json_object_object_get(j, "models"), model), "id");
        const char *id_type = json_object_get_string(id_spec);
        bool ok =
            id && !jn_model_optional(id) && id_type &&
            (strcmp(id_type, "string") == 0 || strcmp(id_type, "integer") == 0 ||
             strcmp(id_type, "string|integer") == 0 || strcmp(id_type, "integer|string") == 0);
        if (!ok) {
            char field[96];
            snprintf(field, sizeof field, "models.%s.id", model);
            return fail(why, why_len, name, field,
                        "a record model needs a required id of type \"string\" or \"integer\"");
        }
    }
    return JN_OK;
}

/* j with its fields in one fixed order, so equal declarations store equal text. Takes j;
 * the values are shared, so pointers into them stay valid. */
static json_object *canonical(json_object *j)
{
    static const char *const order[] = {"name",
                                        "type",
                                        "description",
                                        "version",
                                        "scopes",
                                        "endpoint",
                                        "input",
                                        "output",
                                        "models",
                                        "metadata",
                                        "checkpoint",
                                        "frequency",
                                        "frequency_seconds",
                                        "sync_type",
                                        "track_deletes",
                                        "auto_start",
                                        "on_webhook",
                                        "webhook_subscriptions",
                                        NULL};
    json_object *out = json_object_new_object();
    for (const char *const *k = order; *k; k++) {
        json_object *v = NULL;
        if (json_object_object_get_ex(j, *k, &v))
            json_object_object_add(out, *k, json_object_get(v));
    }
    json_object_put(j);
    return out;
}

/* Validates and normalises j (taking it), filling d. */
static jn_err_t check(json_object *j, const char *name, bool stored, jn_declaration_t *d, char *why,
                      size_t why_len)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->json = j;
    jn_field_error_t e;
    const char *type = NULL;
    jn_err_t err = JN_OK;
    if (jn_json_string(j, "type", false, 16, &type, &e) || !type ||
        (strcmp(type, "action") != 0 && strcmp(type, "sync") != 0)) {
        err = fail(why, why_len, name, "type", "is required: \"action\" or \"sync\"");
        goto out;
    }
    d->kind = strcmp(type, "sync") == 0 ? JN_SCRIPT_SYNC : JN_SCRIPT_ACTION;
    json_object_object_foreach(j, key, value)
    {
        (void)value;
        if ((err = check_key(key, d->kind, stored, name, why, why_len)))
            goto out;
    }
    json_object_object_add(j, "name", json_object_new_string(name));
    if (jn_json_string(j, "description", true, MAX_DESCRIPTION, &d->description, &e) ||
        !*d->description) {
        err = fail(why, why_len, name, "description",
                   "is required: a non-empty string of at most %d characters", MAX_DESCRIPTION);
        goto out;
    }
    if (jn_json_string(j, "version", false, MAX_VERSION, &d->version, &e) ||
        (d->version && !valid_version(d->version))) {
        err = fail(why, why_len, name, "version",
                   "must be a version such as \"1.0.0\" (letters, digits, . - + _)");
        goto out;
    }
    if (!d->version)
        json_object_object_add(j, "version", json_object_new_string("0.0.1"));
    if ((err = check_list(j, "scopes", name, why, why_len)) ||
        (err = check_endpoint(j, name, why, why_len)))
        goto out;
    json_object *models = json_object_object_get(j, "models");
    if (models && json_object_is_type(models, json_type_object) == 0)
        models = NULL, err = fail(why, why_len, name, "models", "must be a table of Name = fields");
    if (err)
        goto out;
    if (jn_model_set_new(models, &d->models, &e)) {
        err = fail_field(why, why_len, name, &e);
        goto out;
    }
    if (!models)
        json_object_object_add(j, "models", json_object_new_object());
    if ((err = compile_field(d, j, "input", &d->input, why, why_len)) ||
        (err = compile_field(d, j, "output", &d->output, why, why_len)) ||
        (err = compile_field(d, j, "metadata", &d->metadata, why, why_len)) ||
        (err = compile_field(d, j, "checkpoint", &d->checkpoint, why, why_len)) ||
        (err = check_checkpoint(d, j, why, why_len)))
        goto out;
    if (d->kind == JN_SCRIPT_SYNC)
        err = check_sync(d, j, why, why_len);
    if (!err) {
        d->json = canonical(j);
        d->description = json_object_get_string(json_object_object_get(d->json, "description"));
        d->version = json_object_get_string(json_object_object_get(d->json, "version"));
    }
out:
    if (err)
        jn_declaration_cleanup(d);
    return err;
}

void jn_declaration_cleanup(jn_declaration_t *d)
{
    json_object_put(d->json);
    jn_model_set_free(d->models);
    memset(d, 0, sizeof *d);
}

jn_err_t jn_declaration_from_json(json_object *json, jn_declaration_t *out, char *why,
                                  size_t why_len)
{
    const char *name = json_object_get_string(json_object_object_get(json, "name"));
    if (!json_object_is_type(json, json_type_object) || !name)
        return fail(why, why_len, "declaration", "name", "is required");
    char copy[JN_SCRIPT_NAME_MAX];
    snprintf(copy, sizeof copy, "%s", name);
    return check(json_object_get(json), copy, true, out, why, why_len);
}

jn_err_t jn_declaration_read(lua_State *L, int idx, const char *name, jn_declaration_t *out,
                             char *why, size_t why_len)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        return fail(why, why_len, name, NULL,
                    "the script must return a table declaring it (it returned %s)",
                    lua_isnone(L, idx) ? "nothing" : luaL_typename(L, idx));
    lua_pushliteral(L, "type");
    lua_rawget(L, idx);
    const char *type = lua_tostring(L, -1);
    jn_script_kind_t kind = type && strcmp(type, "sync") == 0 ? JN_SCRIPT_SYNC : JN_SCRIPT_ACTION;
    bool known_type = type && (strcmp(type, "sync") == 0 || strcmp(type, "action") == 0);
    lua_pop(L, 1);
    if (!known_type)
        return fail(why, why_len, name, "type", "is required: \"action\" or \"sync\"");

    json_object *j = json_object_new_object();
    bool has_exec = false, has_hook = false;
    jn_luajson_caps_t caps = jn_luajson_caps_default();
    caps.max_bytes = 1u << 20;
    jn_err_t err = JN_OK;
    lua_pushnil(L);
    while (!err && lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            err = fail(why, why_len, name, NULL, "the declaration has a key that is not a string");
            lua_pop(L, 2);
            break;
        }
        const char *key = lua_tostring(L, -2);
        bool is_fn = strcmp(key, "exec") == 0 || strcmp(key, "on_webhook") == 0;
        if ((err = check_key(key, kind, false, name, why, why_len))) {
            lua_pop(L, 2);
            break;
        }
        if (is_fn) {
            if (lua_type(L, -1) != LUA_TFUNCTION)
                err = fail(why, why_len, name, key, "must be a function");
            else if (strcmp(key, "exec") == 0)
                has_exec = true;
            else
                has_hook = true;
        } else {
            json_object *v = NULL;
            char reason[320];
            if (jn_luajson_to_json(L, -1, &caps, &v, reason, sizeof reason))
                err = fail(why, why_len, name, key, "%s", reason);
            else
                json_object_object_add(j, key, v);
        }
        lua_pop(L, 1);
        if (err)
            lua_pop(L, 1);
    }
    if (!err && !has_exec)
        err = fail(why, why_len, name, "exec",
                   "is required: function(ctx, input) for an action, function(ctx) for a sync");
    if (err) {
        json_object_put(j);
        return err;
    }
    if (has_hook)
        json_object_object_add(j, "on_webhook", json_object_new_boolean(1));
    return check(j, name, false, out, why, why_len);
}

typedef struct {
    const char *name;
    jn_declaration_t *out;
    char why[JN_SCRIPT_MESSAGE_MAX];
    jn_err_t err;
} read_t;

static int read_protected(lua_State *L)
{
    read_t *r = lua_touserdata(L, 1);
    r->err = jn_declaration_read(L, 2, r->name, r->out, r->why, sizeof r->why);
    return 0;
}

jn_script_status_t jn_declaration_load(const char *name, const char *source, size_t len,
                                       const jn_sandbox_limits_t *limits, jn_declaration_t *out,
                                       jn_script_error_t *err)
{
    jn_sandbox_limits_t lim = limits ? *limits : jn_sandbox_limits_declaration();
    memset(err, 0, sizeof *err);
    jn_sandbox_t *sb = jn_sandbox_new(name, &lim);
    if (!sb) {
        err->status = JN_SCRIPT_MEMORY;
        snprintf(err->message, sizeof err->message,
                 "%s: the sandbox cannot start within its memory limit", name);
        return err->status;
    }
    jn_declaration_t d;
    read_t r = {.name = jn_sandbox_name(sb), .out = &d};
    if (jn_sandbox_load(sb, source, len, err) == JN_SCRIPT_OK &&
        jn_sandbox_call(sb, 0, 1, err) == JN_SCRIPT_OK &&
        jn_sandbox_protect(sb, read_protected, &r, 1, 0, err) == JN_SCRIPT_OK && r.err) {
        err->status = JN_SCRIPT_ERROR;
        snprintf(err->message, sizeof err->message, "%s", r.why);
    }
    jn_sandbox_free(sb);
    if (err->status == JN_SCRIPT_OK)
        *out = d;
    return err->status;
}
