/*
 * limits.c - checking and applying an environment's script limits (see the header).
 */
#include "scripts/limits.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    long long min, max_action, max_sync; /* max for action and webhook, max for sync */
} field_t;

enum { F_MEMORY, F_TIMEOUT, F_INSTRUCTIONS, F_OUTPUT, F_COUNT };

static const field_t fields[F_COUNT] = {
    {"memory_mb", 8, 1024, 1024},
    {"timeout_seconds", 1, 3600, 86400},
    {"instructions", 1000000LL, 10000000000000LL, 10000000000000LL},
    {"output_bytes", 1024, 16LL << 20, 0}, /* actions only */
};

static const char *const kinds[] = {"action", "sync", "webhook"};

static long long max_of(const field_t *f, int kind)
{
    return kind == JN_LIMITS_SYNC ? f->max_sync : f->max_action;
}

static bool allowed(int field, int kind)
{
    return field != F_OUTPUT || kind == JN_LIMITS_ACTION;
}

static jn_err_t check_kind(json_object *o, int kind, jn_field_error_t *e)
{
    if (!json_object_is_type(o, json_type_object))
        return jn_field_error(e, kinds[kind], "must be an object");
    json_object_object_foreach(o, key, value)
    {
        int f = 0;
        while (f < F_COUNT && (strcmp(fields[f].name, key) != 0 || !allowed(f, kind)))
            f++;
        char path[64];
        snprintf(path, sizeof path, "%s.%.40s", kinds[kind], key);
        if (f == F_COUNT)
            return jn_field_error(e, path, "is not a limit of %s runs", kinds[kind]);
        long long min = fields[f].min, max = max_of(&fields[f], kind);
        bool integral = json_object_is_type(value, json_type_int);
        long long v = integral ? json_object_get_int64(value) : 0;
        if (!integral || v < min || v > max)
            return jn_field_error(e, path, "must be an integer from %lld to %lld", min, max);
    }
    return JN_OK;
}

jn_err_t jn_script_limits_check(json_object *settings, jn_field_error_t *e)
{
    if (!json_object_is_type(settings, json_type_object))
        return jn_field_error(e, "", "must be an object with action, sync and webhook limits");
    json_object_object_foreach(settings, key, value)
    {
        int kind = 0;
        while (kind < 3 && strcmp(kinds[kind], key) != 0)
            kind++;
        if (kind == 3)
            return jn_field_error(e, key, "is not a kind of run (action, sync, webhook)");
        jn_err_t err = check_kind(value, kind, e);
        if (err)
            return err;
    }
    return JN_OK;
}

static jn_sandbox_limits_t defaults(jn_limits_kind_t kind)
{
    switch (kind) {
    case JN_LIMITS_SYNC: return jn_sandbox_limits_sync();
    case JN_LIMITS_WEBHOOK: return jn_sandbox_limits_webhook();
    case JN_LIMITS_ACTION: break;
    }
    return jn_sandbox_limits_action();
}

/* The value of field f for kind in settings when it is set and valid, else -1. */
static long long setting(json_object *settings, jn_limits_kind_t kind, int f)
{
    json_object *k = NULL, *v = NULL;
    if (!settings || !json_object_object_get_ex(settings, kinds[kind], &k) ||
        !json_object_object_get_ex(k, fields[f].name, &v) || !allowed(f, (int)kind))
        return -1;
    if (!json_object_is_type(v, json_type_int))
        return -1;
    long long n = json_object_get_int64(v);
    return n >= fields[f].min && n <= max_of(&fields[f], (int)kind) ? n : -1;
}

static json_object *parse(const char *settings_json)
{
    if (!settings_json || !*settings_json)
        return NULL;
    json_object *o = json_tokener_parse(settings_json);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static jn_sandbox_limits_t apply(json_object *settings, jn_limits_kind_t kind)
{
    jn_sandbox_limits_t l = defaults(kind);
    long long v;
    if ((v = setting(settings, kind, F_MEMORY)) > 0)
        l.memory_bytes = (size_t)v << 20;
    if ((v = setting(settings, kind, F_TIMEOUT)) > 0)
        l.wall_ms = v * 1000;
    if ((v = setting(settings, kind, F_INSTRUCTIONS)) > 0)
        l.instructions = (uint64_t)v;
    if ((v = setting(settings, kind, F_OUTPUT)) > 0)
        l.output_bytes = (size_t)v;
    return l;
}

jn_sandbox_limits_t jn_script_limits_for(const char *settings_json, jn_limits_kind_t kind)
{
    json_object *settings = parse(settings_json);
    jn_sandbox_limits_t l = apply(settings, kind);
    json_object_put(settings);
    return l;
}

json_object *jn_script_limits_effective(const char *settings_json)
{
    json_object *settings = parse(settings_json);
    json_object *out = json_object_new_object();
    for (int kind = 0; kind < 3; kind++) {
        jn_sandbox_limits_t l = apply(settings, (jn_limits_kind_t)kind);
        json_object *k = json_object_new_object();
        json_object_object_add(k, "memory_mb",
                               json_object_new_int64((int64_t)(l.memory_bytes >> 20)));
        json_object_object_add(k, "timeout_seconds", json_object_new_int64(l.wall_ms / 1000));
        json_object_object_add(k, "instructions", json_object_new_int64((int64_t)l.instructions));
        if (kind == JN_LIMITS_ACTION)
            json_object_object_add(k, "output_bytes",
                                   json_object_new_int64((int64_t)l.output_bytes));
        json_object_object_add(out, kinds[kind], k);
    }
    json_object_put(settings);
    return out;
}
