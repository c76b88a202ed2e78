/*
 * function_shapes.c - Nango's JSON shapes of a function (see the header).
 */
#include "function_shapes.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define IO_NAME_MAX 96

/* What Nango's shapes share: the model names a function is described by and the JSON
 * Schema of every model they name. */
typedef struct {
    const char *input; /* an action's input, a sync's metadata; NULL when none */
    const char *output;
    const jn_model_type_t *input_type;
    char in_buf[IO_NAME_MAX], out_buf[IO_NAME_MAX];
    json_object *returns;     /* new: model names */
    json_object *models;      /* new: [{name, fields}] */
    json_object *json_schema; /* new: {"$schema", "definitions"} */
} described_t;

/* "create-note" -> "CreateNote" + suffix. */
static void pascal(const char *name, const char *suffix, char *out, size_t cap)
{
    size_t o = 0;
    bool up = true;
    for (const char *p = name; *p && o + 1 < cap; p++) {
        if (!isalnum((unsigned char)*p)) {
            up = true;
            continue;
        }
        out[o++] = up ? (char)toupper((unsigned char)*p) : *p;
        up = false;
    }
    out[o] = '\0';
    snprintf(out + o, cap - o, "%s", suffix);
}

static json_object *nango_model(const char *name, const jn_model_type_t *t)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "name", json_object_new_string(name));
    json_object_object_add(m, "fields", jn_model_nango_fields(t));
    return m;
}

/* The name a declared input/output is known by: its model's, or a made-up one for an
 * inline table of fields; NULL when it is not an object. */
static const char *io_name(json_object *spec, const jn_model_type_t *t, const char *fname,
                           const char *suffix, char *buf, size_t cap)
{
    if (!t || !jn_model_is_object(t))
        return NULL;
    if (json_object_is_type(spec, json_type_string)) {
        snprintf(buf, cap, "%s", json_object_get_string(spec));
        size_t n = strlen(buf);
        if (n && buf[n - 1] == '?')
            buf[n - 1] = '\0';
        return buf;
    }
    pascal(fname, suffix, buf, cap);
    return buf;
}

static void describe(const char *name, const jn_declaration_t *d, described_t *out)
{
    memset(out, 0, sizeof *out);
    json_object *j = d->json;
    bool sync = d->kind == JN_SCRIPT_SYNC;
    out->input_type = sync ? d->metadata : d->input;
    out->input = io_name(json_object_object_get(j, sync ? "metadata" : "input"), out->input_type,
                         name, sync ? "Metadata" : "Input", out->in_buf, sizeof out->in_buf);
    out->output = sync ? NULL
                       : io_name(json_object_object_get(j, "output"), d->output, name, "Output",
                                 out->out_buf, sizeof out->out_buf);
    out->returns = json_object_new_array();
    out->models = json_object_new_array();
    json_object *defs = json_object_new_object();
    for (size_t i = 0; i < jn_model_count(d->models); i++) {
        const char *m = jn_model_name(d->models, i);
        json_object_array_add(out->models, nango_model(m, jn_model_get(d->models, m)));
        json_object_object_add(defs, m, jn_model_json_schema(jn_model_get(d->models, m)));
        if (sync)
            json_object_array_add(out->returns, json_object_new_string(m));
    }
    if (out->input && !jn_model_get(d->models, out->input)) {
        json_object_array_add(out->models, nango_model(out->input, out->input_type));
        json_object_object_add(defs, out->input, jn_model_json_schema(out->input_type));
    }
    if (out->output && !jn_model_get(d->models, out->output)) {
        json_object_array_add(out->models, nango_model(out->output, d->output));
        json_object_object_add(defs, out->output, jn_model_json_schema(d->output));
    }
    if (out->output)
        json_object_array_add(out->returns, json_object_new_string(out->output));
    out->json_schema = json_object_new_object();
    json_object_object_add(out->json_schema, "$schema",
                           json_object_new_string("http://json-schema.org/draft-07/schema#"));
    json_object_object_add(out->json_schema, "definitions", defs);
}

static void described_cleanup(described_t *dd)
{
    json_object_put(dd->returns);
    json_object_put(dd->models);
    json_object_put(dd->json_schema);
}

static json_object *field_of(json_object *decl, const char *key)
{
    return json_object_get(json_object_object_get(decl, key));
}

json_object *jn_shape_function(const char *name, const char *type, const jn_declaration_t *d)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    if (!d) {
        json_object_object_add(o, "type", json_object_new_string(type));
        json_object_object_add(o, "returns", json_object_new_array());
        json_object_object_add(o, "json_schema", NULL);
        return o;
    }
    described_t dd;
    describe(name, d, &dd);
    bool sync = d->kind == JN_SCRIPT_SYNC;
    json_object_object_add(o, "description", json_object_new_string(d->description));
    json_object *scopes = field_of(d->json, "scopes");
    if (scopes)
        json_object_object_add(o, "scopes", scopes);
    json_object_object_add(o, "type", json_object_new_string(sync ? "sync" : "action"));
    if (dd.input)
        json_object_object_add(o, "input", json_object_new_string(dd.input));
    json_object_object_add(o, "returns", json_object_get(dd.returns));
    json_object_object_add(o, "json_schema", json_object_get(dd.json_schema));
    if (sync) {
        json_object_object_add(o, "runs", field_of(d->json, "frequency"));
        json_object_object_add(o, "auto_start", json_object_new_boolean(d->auto_start));
        json_object_object_add(o, "track_deletes", json_object_new_boolean(d->track_deletes));
    }
    described_cleanup(&dd);
    return o;
}

json_object *jn_shape_listed_function(const jn_function_t *f, const jn_declaration_t *d)
{
    json_object *o = jn_shape_function(f->name, f->type, d);
    json_object_object_add(o, "id", json_object_new_int64(f->id));
    json_object_object_add(o, "enabled", json_object_new_boolean(1));
    json_object_object_add(o, "last_deployed", json_object_new_string(f->deployed_at));
    /* Deployed through the API, one integration's set at a time, and deletable one by one
     * (DELETE .../functions/:name): what Nango calls a standalone function. */
    json_object_object_add(o, "source", json_object_new_string("standalone"));
    return o;
}

json_object *jn_shape_script_config(const jn_function_t *f, const jn_declaration_t *d)
{
    json_object *j = d->json, *o = json_object_new_object();
    bool sync = d->kind == JN_SCRIPT_SYNC;
    described_t dd;
    describe(f->name, d, &dd);
    json_object *endpoints = json_object_new_array();
    json_object *endpoint = json_object_object_get(j, "endpoint");
    if (endpoint)
        json_object_array_add(endpoints, json_object_get(endpoint));
    json_object *metadata = json_object_new_object();
    json_object_object_add(metadata, "description", field_of(j, "description"));
    json_object_object_add(metadata, "scopes", field_of(j, "scopes"));
    json_object *scopes = field_of(j, "scopes");

    json_object_object_add(o, "id", json_object_new_int64(f->id));
    json_object_object_add(o, "name", json_object_new_string(f->name));
    json_object_object_add(o, "type", json_object_new_string(f->type));
    json_object_object_add(o, "returns", json_object_get(dd.returns));
    json_object_object_add(o, "description", json_object_new_string(d->description));
    json_object_object_add(o, "attributes", json_object_new_object());
    json_object_object_add(o, "scopes", scopes ? scopes : json_object_new_array());
    json_object_object_add(o, "metadata", metadata);
    json_object_object_add(o, "version", json_object_new_string(d->version));
    json_object_object_add(o, "source", json_object_new_string("standalone"));
    json_object_object_add(o, "endpoints", endpoints);
    if (dd.input)
        json_object_object_add(o, "input", json_object_new_string(dd.input));
    json_object_object_add(o, "enabled", json_object_new_boolean(1));
    json_object_object_add(o, "last_deployed", json_object_new_string(f->deployed_at));
    json_object_object_add(o, "webhookSubscriptions",
                           sync && json_object_object_get(j, "webhook_subscriptions")
                               ? json_object_get(json_object_object_get(j, "webhook_subscriptions"))
                               : json_object_new_array());
    json_object_object_add(o, "json_schema", json_object_get(dd.json_schema));
    json_object_object_add(o, "sdk_version", NULL);
    json_object_object_add(o, "models", json_object_get(dd.models));
    json_object_object_add(o, "features", json_object_new_array());
    if (sync) {
        json_object_object_add(o, "sync_type",
                               json_object_new_string(d->full_sync ? "full" : "incremental"));
        json_object_object_add(o, "auto_start", json_object_new_boolean(d->auto_start));
        json_object_object_add(o, "runs", field_of(j, "frequency"));
        json_object_object_add(o, "track_deletes", json_object_new_boolean(d->track_deletes));
    }
    described_cleanup(&dd);
    return o;
}

/* Adds the descriptions a function's description gives its parameters, as Nango reads
 * them: lines "- name: what it is". Only for properties the input declares. */
static void describe_parameters(const char *description, json_object *properties)
{
    const char *line = description;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        while (len && isspace((unsigned char)*line)) {
            line++;
            len--;
        }
        const char *colon = len && *line == '-' ? memchr(line, ':', len) : NULL;
        if (colon) {
            const char *n = line + 1, *n_end = colon;
            while (n < n_end && isspace((unsigned char)*n))
                n++;
            while (n_end > n && isspace((unsigned char)n_end[-1]))
                n_end--;
            const char *v = colon + 1, *v_end = line + len;
            while (v < v_end && isspace((unsigned char)*v))
                v++;
            while (v_end > v && isspace((unsigned char)v_end[-1]))
                v_end--;
            char key[JN_MODEL_NAME_MAX * 2];
            json_object *prop = NULL;
            if ((size_t)(n_end - n) < sizeof key) {
                snprintf(key, sizeof key, "%.*s", (int)(n_end - n), n);
                prop = json_object_object_get(properties, key);
            }
            if (prop && json_object_is_type(prop, json_type_object))
                json_object_object_add(prop, "description",
                                       json_object_new_string_len(v, (int)(v_end - v)));
        }
        line = end ? end + 1 : NULL;
    }
}

json_object *jn_shape_openai_function(const char *name, const char *provider,
                                      const jn_declaration_t *d)
{
    bool sync = d->kind == JN_SCRIPT_SYNC;
    json_object *properties = NULL, *required = NULL;
    if (!sync) {
        char buf[IO_NAME_MAX];
        json_object *spec = json_object_object_get(d->json, "input");
        const char *in = io_name(spec, d->input, name, "Input", buf, sizeof buf);
        /* A named model is described inline: the function stands alone. */
        json_object *schema = !in ? NULL
                                  : jn_model_json_schema(json_object_is_type(spec, json_type_string)
                                                             ? jn_model_get(d->models, in)
                                                             : d->input);
        properties = json_object_get(json_object_object_get(schema, "properties"));
        required = json_object_get(json_object_object_get(schema, "required"));
        json_object_put(schema);
    }
    if (!properties)
        properties = json_object_new_object();
    if (!required)
        required = json_object_new_array();
    if (!sync)
        describe_parameters(d->description, properties);
    json_object *params = json_object_new_object();
    json_object_object_add(params, "type", json_object_new_string("object"));
    json_object_object_add(params, "properties", properties);
    json_object_object_add(params, "required", required);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    if (d->description && *d->description) {
        json_object_object_add(o, "description", json_object_new_string(d->description));
    } else {
        char text[256];
        snprintf(text, sizeof text, "Execute the %s %s for %s", name, sync ? "sync" : "action",
                 provider ? provider : "");
        json_object_object_add(o, "description", json_object_new_string(text));
    }
    json_object_object_add(o, "parameters", params);
    return o;
}
